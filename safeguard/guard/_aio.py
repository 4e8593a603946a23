"""The asyncio face: drives the core's effects with awaits and ``switch.wait_async``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

from safeguard import _errors as errors
from safeguard.guard._core import (
    Done,
    Effect,
    Record,
    Reply,
    Send,
    Steps,
    driven,
    step,
)
from safeguard.guard._events import later
from safeguard.guard._face import Face, delaying, permit
from safeguard.guard._holder import StreamHolder
from safeguard.guard._keeper import AsyncViewKeeper, scheduled_read_failed
from safeguard.guard._orders import CallKind
from safeguard.killswitch._state import Engage

T = TypeVar("T")


class AsyncGuardedExchange(Face):
    """A ``ccxt.async_support`` exchange behind the guard; every venue method is awaitable."""

    async def _run(self, steps: Steps[T]) -> T:
        # Closed however the drive ends: steps cut short (cancelled, interrupted, an effect
        # that failed) then settle what they had under way (GuardCore._abandon).
        core = self._rt.core
        with later(core.hooks) as held, core.collecting() as trips:
            steps = driven(steps, trips, held)
            try:
                effect = step(steps, None)
                while not isinstance(effect, Done):
                    effect = step(steps, await self._perform(effect))
                return effect.value
            finally:
                steps.close()
                if trips.pending:
                    # The call was cut short (cancelled, most likely): what it tripped engages
                    # now, finished by tasks of their own rather than awaited by a dead call.
                    self._engaging(trips.take())

    async def _perform(self, effect: Effect) -> Reply:
        clock = self._rt.clock
        if isinstance(effect, Record):
            # An fsync takes milliseconds: off the event loop, but finished before the send.
            await asyncio.to_thread(effect.run)
            return None
        if isinstance(effect, Engage):
            await self._engage((effect,))
            return None
        if not isinstance(effect, Send):
            if self._rt.sleep_async is not None:
                return self._woke(effect, await self._rt.sleep_async(effect.seconds))
            early = await self._rt.switch.wait_async(effect.seconds, **delaying(effect.permit))
            return self._woke(effect, early)
        started = clock.time()
        try:
            with permit(self._rt.switch, effect.permit):
                value = await getattr(self._raw, effect.method)(*effect.args, **effect.kwargs)
        except Exception as exc:
            return self._answer(effect, started, None, exc)
        return self._answer(effect, started, value, None)

    def _engaging(self, trips: Sequence[Engage]) -> list[asyncio.Future[Any]]:
        """Close the latch for each trip now, in order; each drain, persisting and announcing
        runs on a task of its own (``engage_async``) that never blocks the loop."""
        switch = self._rt.switch
        return [
            switch.engage_async(trip.reason, by=trip.by, state=trip.state, code=trip.code)
            for trip in trips
        ]

    async def _engage(self, trips: Sequence[Engage]) -> None:
        for engaged in self._engaging(trips):
            await engaged

    _stream_engage = _engage

    def _guarded(self, kind: CallKind, name: str) -> Any:
        core = self._rt.core

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await self._run(core.call(kind, name, args, kwargs, self._now()))

        call.__name__ = name
        return call

    # --- the order paths (signatures: ccxt's; the steps live in Face) -----------------------

    async def create_order(self, *args: Any, **kwargs: Any) -> Any:
        """ccxt's ``create_order(symbol, type, side, amount, price=None, params=None)``, after
        the verdict and the kill switch; never sent twice."""
        return await self._run(self._create_steps(*args, **kwargs))

    async def edit_order(self, *args: Any, **kwargs: Any) -> Any:
        """ccxt's ``edit_order(id, symbol, type, side, amount=None, price=None, params=None)``."""
        return await self._run(self._edit_steps(*args, **kwargs))

    async def create_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        """Each order through the full guard, in order; all are checked before any is sent."""
        return await self._run(self._batch_steps(orders, params, edits=False))

    async def edit_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        return await self._run(self._batch_steps(orders, params, edits=True))

    async def preview(self, *args: Any, **kwargs: Any) -> Any:
        """The pre-trade verdict for ``(symbol, type, side, amount, price, params)``; sends no
        order (it may read market data the verdict needs)."""
        return await self._run(self._preview_steps(*args, **kwargs))

    async def hold_streams(
        self, symbols: list[str], *, account: bool = True, retry_s: float = 1.0
    ) -> StreamHolder:
        """Let the guard hold the streams its view needs itself: the mark price, order book
        and ticker of each of ``symbols`` and (``account``) the user-data stream, as tasks on
        the running event loop, on this exchange (a ccxt.pro client). The view is then fresh
        whatever the bot itself watches. ``await holder.aclose()`` stops them."""
        if not self._raw.markets:
            await self.load_markets()  # the symbols are checked against the venue's listing
        return self._holder(self._raw, symbols, account, retry_s).start_tasks()

    async def keep_fresh(
        self, symbols: list[str], *, every_s: float | None = None
    ) -> AsyncViewKeeper:
        """Keep the view of ``symbols`` (and of the account) fresh on a schedule, for a bot
        without streams: a task on the running loop reads each piece at half the age its
        verdict allows, every ``every_s`` seconds (a quarter of
        ``risk.max_market_data_age_s`` unless given), so the order path finds it fresh and
        sends only the order (:mod:`safeguard.guard._keeper`). The first pass is made before
        this returns. ``await keeper.aclose()`` stops the task."""
        if not self._raw.markets:
            await self.load_markets()  # the symbols are checked against the venue's listing
        view, listed, period = self._schedule_parts(symbols, every_s)
        keeper = AsyncViewKeeper(view, listed, self._now, period, self._scheduled_reads)
        await keeper.tick()
        return keeper.start()

    async def _scheduled_reads(self, sends: list[Send]) -> None:
        core = self._rt.core
        for send in sends:
            try:
                await self._run(core.scheduled_read(send, self._now()))
            except errors.SafeguardError as exc:
                scheduled_read_failed(send, exc)

    async def reconcile(self) -> list[tuple[str, Any]]:
        """Settle orders a previous run left unresolved (look-ups only; nothing is sent)."""
        return await self._run(self._rt.core.reconcile(self._now()))


__all__ = ["AsyncGuardedExchange"]
