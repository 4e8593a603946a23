"""The asyncio face: drives the core's effects with awaits and ``switch.wait_async``."""

from __future__ import annotations

from typing import Any, TypeVar

from safeguard.guard.core import Answer, Effect, Reply, Send, Steps, Woke
from safeguard.guard.face import Face, permit, response_headers
from safeguard.guard.orders import CallKind

T = TypeVar("T")


class AsyncGuardedExchange(Face):
    """A ``ccxt.async_support`` exchange behind the guard; every venue method is awaitable."""

    async def _run(self, steps: Steps[T]) -> T:
        reply: Reply = None
        while True:
            try:
                effect = steps.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = await self._perform(effect)

    async def _perform(self, effect: Effect) -> Reply:
        clock = self._rt.clock
        if not isinstance(effect, Send):
            return Woke(clock.time(), early=await self._rt.switch.wait_async(effect.seconds))
        started = clock.time()
        try:
            with permit(self._rt.switch, effect.permit):
                value = await getattr(self._raw, effect.method)(*effect.args, **effect.kwargs)
        except Exception as exc:
            return Answer(None, exc, response_headers(self._raw), started, clock.time())
        return Answer(value, None, response_headers(self._raw), started, clock.time())

    def _guarded(self, kind: CallKind, name: str) -> Any:
        core = self._rt.core

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(core.call(kind, name, args, kwargs, self._now()))

        call.__name__ = name
        return call

    # --- the order paths ---------------------------------------------------------------------

    async def create_order(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Any:
        """ccxt's ``create_order``, after the verdict and the kill switch; never sent twice."""
        intent = self._intent(symbol, type, side, amount, price, params)
        return await self._run(self._rt.core.place(intent, self._now()))

    async def edit_order(
        self,
        id: str,
        symbol: str,
        type: str,
        side: str,
        amount: Any = None,
        price: Any = None,
        params: Any = None,
    ) -> Any:
        intent = self._intent(symbol, type, side, amount, price, params, edit_of=id)
        return await self._run(self._rt.core.place(intent, self._now()))

    async def create_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        """Each order through the full guard, in order; all are checked before any is sent."""
        intents = self._batch(orders, params, edits=False)
        return await self._run(self._rt.core.place_all(intents, self._now()))

    async def edit_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        intents = self._batch(orders, params, edits=True)
        return await self._run(self._rt.core.place_all(intents, self._now()))

    async def preview(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Any:
        """The pre-trade verdict for this order, without sending anything."""
        intent = self._intent(symbol, type, side, amount, price, params, sending=False)
        return await self._run(self._rt.core.preview(intent, self._now()))

    async def reconcile(self) -> list[tuple[str, Any]]:
        """Settle orders a previous run left unresolved (look-ups only; nothing is sent)."""
        return await self._run(self._rt.core.reconcile(self._now()))

    async def close(self) -> None:
        """Close the wrapped exchange's HTTP session."""
        await self._raw.close()


__all__ = ["AsyncGuardedExchange"]
