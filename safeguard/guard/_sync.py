"""The blocking face: drives the core's effects with plain calls and ``switch.wait``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from safeguard import _errors as errors
from safeguard.guard._core import Effect, Record, Reply, Send, Sleep, Steps, driven
from safeguard.guard._events import later
from safeguard.guard._face import Face, delaying, permit
from safeguard.guard._holder import StreamHolder
from safeguard.guard._keeper import ViewKeeper, scheduled_read_failed
from safeguard.guard._orders import CallKind
from safeguard.killswitch._state import Engage

T = TypeVar("T")


class GuardedExchange(Face):
    """A ccxt exchange behind the guard. Use it exactly like the ccxt exchange it wraps."""

    def _run(self, steps: Steps[T]) -> T:
        # Closed however the drive ends: steps cut short (cancelled, interrupted, an effect
        # that failed) then settle what they had under way (GuardCore._abandon).
        core = self._rt.core
        with later(core.hooks) as held, core.collecting() as trips:
            steps = driven(steps, trips, held)
            # core.step written out: resuming the steps is the innermost loop of every call.
            # Only the resume is inside the ``except StopIteration``: one escaping an effect
            # (ccxt code, a hook) is an error, not the steps' end.
            send = steps.send
            try:
                try:
                    effect = send(None)
                except StopIteration as done:
                    return done.value  # type: ignore[no-any-return]
                while True:
                    reply = self._perform(effect)
                    try:
                        effect = send(reply)
                    except StopIteration as done:
                        return done.value  # type: ignore[no-any-return]
            finally:
                steps.close()
                if trips.pending:  # the call was cut short: what it tripped engages still
                    self._engage(trips.take())

    def _perform(self, effect: Effect) -> Reply:
        if effect.__class__ is not Send:
            if isinstance(effect, Record):
                effect.run()
                return None
            if isinstance(effect, Engage):
                self._engage((effect,))
                return None
            assert isinstance(effect, Sleep)
            if self._rt.sleep is not None:
                return self._woke(effect, self._rt.sleep(effect.seconds))
            early = self._rt.switch.wait(effect.seconds, **delaying(effect.permit))
            return self._woke(effect, early)
        started = self._rt.clock.time()
        try:
            if effect.permit is None:  # a read: no permit to take (and no context to enter)
                value = getattr(self._raw, effect.method)(*effect.args, **effect.kwargs)
            else:
                with permit(self._rt.switch, effect.permit):
                    value = getattr(self._raw, effect.method)(*effect.args, **effect.kwargs)
        except Exception as exc:
            return self._answer(effect, started, None, exc)
        return self._answer(effect, started, value, None)

    def _engage(self, trips: Sequence[Engage]) -> None:
        for trip in trips:
            self._rt.switch.engage(trip.reason, by=trip.by, state=trip.state, code=trip.code)

    async def _stream_engage(self, trips: Sequence[Engage]) -> None:
        """A held stream's trips, engaged on its thread before it takes the next message (a
        blocking engage there waits for the order path's sends on the bot's threads)."""
        self._engage(trips)

    def _guarded(self, kind: CallKind, name: str) -> Any:
        core = self._rt.core

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._run(core.call(kind, name, args, kwargs, self._now()))

        call.__name__ = name
        return call

    # --- the order paths (signatures: ccxt's; the steps live in Face) -----------------------

    def create_order(self, *args: Any, **kwargs: Any) -> Any:
        """ccxt's ``create_order(symbol, type, side, amount, price=None, params=None)``, after
        the verdict and the kill switch; never sent twice."""
        return self._run(self._create_steps(*args, **kwargs))

    def edit_order(self, *args: Any, **kwargs: Any) -> Any:
        """ccxt's ``edit_order(id, symbol, type, side, amount=None, price=None, params=None)``."""
        return self._run(self._edit_steps(*args, **kwargs))

    def create_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        """Each order through the full guard, in order; all are checked before any is sent."""
        return self._run(self._batch_steps(orders, params, edits=False))

    def edit_orders(self, orders: list[Any], params: Any = None) -> list[Any]:
        return self._run(self._batch_steps(orders, params, edits=True))

    def preview(self, *args: Any, **kwargs: Any) -> Any:
        """The pre-trade verdict for ``(symbol, type, side, amount, price, params)``; sends no
        order (it may read market data the verdict needs)."""
        return self._run(self._preview_steps(*args, **kwargs))

    def hold_streams(
        self, symbols: list[str], client: Any, *, account: bool = True, retry_s: float = 1.0
    ) -> StreamHolder:
        """Let the guard hold the streams its view needs: ``client`` is a ccxt.pro exchange
        on the same account (the blocking ccxt has no websockets), run on a background thread
        that owns its own event loop (:mod:`safeguard.guard._holder` says why a thread). The
        mark price, order book and ticker of each of ``symbols`` and (``account``) the
        user-data stream feed this exchange's view. ``holder.close()`` stops the thread and
        closes ``client``."""
        if not self._raw.markets:
            self.load_markets()  # the symbols are checked against the venue's listing
        return self._holder(client, symbols, account, retry_s).start_thread()

    def keep_fresh(self, symbols: list[str], *, every_s: float | None = None) -> ViewKeeper:
        """Keep the view of ``symbols`` (and of the account) fresh on a schedule, for a bot
        without streams: a daemon thread reads each piece at half the age its verdict allows,
        every ``every_s`` seconds (a quarter of ``risk.max_market_data_age_s`` unless given),
        so the order path finds it fresh and sends only the order
        (:mod:`safeguard.guard._keeper`). The first pass is made before this returns.
        ``keeper.close()`` stops the thread."""
        if not self._raw.markets:
            self.load_markets()  # the symbols are checked against the venue's listing
        view, listed, period = self._schedule_parts(symbols, every_s)
        keeper = ViewKeeper(view, listed, self._now, period, self._scheduled_reads)
        keeper.tick()
        return keeper.start()

    def _scheduled_reads(self, sends: list[Send]) -> None:
        core = self._rt.core
        for send in sends:
            try:
                self._run(core.scheduled_read(send, self._now()))
            except errors.SafeguardError as exc:
                scheduled_read_failed(send, exc)

    def reconcile(self) -> list[tuple[str, Any]]:
        """Settle orders a previous run left unresolved (look-ups only; nothing is sent)."""
        return self._run(self._rt.core.reconcile(self._now()))


__all__ = ["GuardedExchange"]
