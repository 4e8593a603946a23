"""The blocking face: drives the core's effects with plain calls and ``switch.wait``."""

from __future__ import annotations

from typing import Any, TypeVar

from safeguard.guard.core import Answer, Effect, Reply, Send, Steps, Woke
from safeguard.guard.face import Face, permit, response_headers
from safeguard.guard.orders import CallKind

T = TypeVar("T")


class GuardedExchange(Face):
    """A ccxt exchange behind the guard. Use it exactly like the ccxt exchange it wraps."""

    def _run(self, steps: Steps[T]) -> T:
        reply: Reply = None
        while True:
            try:
                effect = steps.send(reply)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            reply = self._perform(effect)

    def _perform(self, effect: Effect) -> Reply:
        clock = self._rt.clock
        if not isinstance(effect, Send):
            sleep = self._rt.sleep or self._rt.switch.wait
            return Woke(clock.time(), early=sleep(effect.seconds))
        started = clock.time()
        try:
            with permit(self._rt.switch, effect.permit):
                value = getattr(self._raw, effect.method)(*effect.args, **effect.kwargs)
        except Exception as exc:
            return Answer(None, exc, response_headers(self._raw), started, clock.time())
        return Answer(value, None, response_headers(self._raw), started, clock.time())

    def _guarded(self, kind: CallKind, name: str) -> Any:
        core = self._rt.core

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(core.call(kind, name, args, kwargs, self._now()))

        call.__name__ = name
        return call

    # --- the order paths ---------------------------------------------------------------------

    def create_order(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Any:
        """ccxt's ``create_order``, after the verdict and the kill switch; never sent twice."""
        intent = self._intent(symbol, type, side, amount, price, params)
        return self._run(self._rt.core.place(intent, self._now()))

    def edit_order(
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
        return self._run(self._rt.core.place(intent, self._now()))

    def create_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        """Each order through the full guard, in order; all are checked before any is sent."""
        intents = self._batch(orders, params, edits=False)
        return self._run(self._rt.core.place_all(intents, self._now()))

    def edit_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        intents = self._batch(orders, params, edits=True)
        return self._run(self._rt.core.place_all(intents, self._now()))

    def preview(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Any:
        """The pre-trade verdict for this order, without sending anything."""
        intent = self._intent(symbol, type, side, amount, price, params, sending=False)
        return self._run(self._rt.core.preview(intent, self._now()))

    def reconcile(self) -> list[tuple[str, Any]]:
        """Settle orders a previous run left unresolved (look-ups only; nothing is sent)."""
        return self._run(self._rt.core.reconcile(self._now()))


__all__ = ["GuardedExchange"]
