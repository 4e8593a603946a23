"""What the guard sees, fed to the kill-switch triggers; a trip becomes an :class:`Engage`.

The triggers (:mod:`safeguard.killswitch._triggers`) are pure and know nothing of the switch.
This is the one place that turns the guard's observations (each request's outcome, orders
placed, rejected and cancelled, leverage changes, bans, fresh marks, the account after each
re-read) into their events, and each :class:`~safeguard.killswitch._triggers.Trip` into an
:class:`~safeguard.killswitch._state.Engage`, recorded for the call or stream message that
caused it (:meth:`TripWire.collecting`), which performs it before it goes on. Engaging drains
sends, locks and fsyncs a file and calls webhooks: the faces and the stream path do that
(``switch.engage``, ``await switch.engage_async``), never the core's decisions.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from safeguard._codes import Code
from safeguard._log import logger
from safeguard.guard._classify import ErrorClass, RetryClass, ban_end
from safeguard.guard._core import Answer, Send, Trips
from safeguard.guard._events import BandEvent, EventKind, Hooks, WarningEvent
from safeguard.killswitch import _triggers as t
from safeguard.killswitch._early_warnings import EarlyWarning, WarningMonitor
from safeguard.killswitch._state import Engage, TradingState
from safeguard.risk._cascade import liquidation_band
from safeguard.risk._models import Account
from safeguard.risk._positions import ExitMarket


@dataclass
class TripWire:
    monitor: t.RiskMonitor
    warnings: WarningMonitor | None = None
    """Early warnings (``kill_switch.warnings``), fed from the same observations."""
    hooks: Hooks | None = None
    """Where warnings are delivered (``WarningEvent``)."""

    def warn(self, fired: list[EarlyWarning]) -> None:
        """Deliver each warning as an event; engage the switch for those the policy escalates."""
        for warning in fired:
            logger.warning(
                "early warning {} ({}): {}", warning.name, warning.severity, warning.message
            )
            if self.hooks is not None:
                self.hooks.emit(
                    WarningEvent(
                        at=warning.at,
                        name=warning.name,
                        severity=warning.severity,
                        message=warning.message,
                        value=warning.value,
                        threshold=warning.threshold,
                        symbol=warning.symbol,
                        escalate=warning.escalate,
                    )
                )
            if warning.escalate is not None:
                self._record(
                    Engage(
                        state=TradingState(warning.escalate),
                        reason=f"early warning {warning.name}: {warning.message}",
                        code=str(Code.EARLY_WARNING),
                        by="warning",
                    )
                )

    _unowned: deque[Engage] = field(default_factory=deque, init=False)
    """Trips recorded outside any call or stream message of this guard (none are known):
    the next one to collect performs them first."""

    @contextmanager
    def collecting(self) -> Iterator[Trips]:
        """Record the trips made in this thread or asyncio task, until the block ends, for
        the caller to perform: a guarded call (before its next effect) or a stream message
        (before the stream goes on). Per context, so a trip is engaged by the very call that
        caused it, before that call's next send, never by another thread's."""
        trips = Trips()
        while self._unowned:
            try:
                trips.pending.append(self._unowned.popleft())
            except IndexError:  # another call took the last one meanwhile
                break
        token = _COLLECTING.set((self, trips))
        try:
            yield trips
        finally:
            _COLLECTING.reset(token)

    def _record(self, trip: Engage) -> None:
        collecting = _COLLECTING.get()
        if collecting is not None and collecting[0] is self:
            collecting[1].pending.append(trip)
        else:
            self._unowned.append(trip)

    def feed(self, event: t.Observation) -> None:
        for trip in self.monitor.observe(event):
            logger.warning("kill-switch trigger {}: {}", trip.code, trip.reason)
            self._record(
                Engage(
                    state=TradingState(trip.action),
                    reason=trip.reason,
                    code=str(trip.code),
                    by="trigger",
                )
            )

    def request(self, send: Send, answer: Answer, ec: ErrorClass | None) -> None:
        """One attempt's outcome (called after the send, outside the permit)."""
        now = answer.now
        method = send.method
        if ec is None:
            self.feed(t.VenueOk(now))
            if method == "create_order":
                self.feed(t.OrderSubmitted(now))
            elif method.startswith("cancel_"):
                self.feed(t.OrderCanceled(now))
                if self.warnings is not None:
                    self.warn(self.warnings.cancelled(now))
            elif method == "set_leverage" and len(send.args) >= 2:
                self.feed(t.LeverageChanged(now, str(send.args[1])))
                if self.warnings is not None:
                    self.warn(self.warnings.leverage_changed(now, str(send.args[1])))
            return
        if ec.banned:
            until, _ = ban_end(ec, now, 0.0)
            self.feed(t.VenueBan(now, max(until, now)))
        elif ec.retry is RetryClass.NEVER:
            if method in ("create_order", "edit_order"):
                self.feed(t.OrderRejected(now))
        else:
            self.feed(t.VenueError(now))

    def mark(
        self, symbol: str, data_time: float | None, now: float, *, stale_since: float | None = None
    ) -> None:
        if data_time is not None and not data_time >= 0.0:
            data_time = 0.0  # a venue stamp before the epoch (or NaN): as old as can be
        self.feed(t.MarkUpdate(now, symbol, data_time, stale_since))

    def account(
        self,
        account: Account,
        stops: dict[str, float],
        now: float,
        exits: Mapping[str, ExitMarket] | None = None,
    ) -> None:
        self.feed(t.AccountUpdate(now, account, stops, dict(exits or {})))
        if self.hooks is not None and self.hooks.listening(EventKind.BAND):
            self._bands(account, now)

    def _bands(self, account: Account, now: float) -> None:
        """Each position's band as an event (the live metric). Prices only: the volatility
        that would time them is the verdict's, not the account's."""
        assert self.hooks is not None
        limits = self.monitor.limits
        try:
            bands, _ = liquidation_band(
                account,
                volatility=1.0,
                warning_ratio=limits.band_warning_ratio,
                partial_ratio=limits.band_partial_ratio,
            )
        except ValueError as exc:  # an inverse position: the band covers linear contracts
            logger.debug("no liquidation band for the account: {}", exc)
            return
        for band in bands:
            self.hooks.emit(
                BandEvent(
                    at=now,
                    symbol=band.subject,
                    mark=band.mark,
                    margin_ratio=band.margin_ratio,
                    warning=None if band.warning is None else band.warning.price,
                    partial=None if band.partial is None else band.partial.price,
                    liquidation=None if band.liquidation is None else band.liquidation.price,
                )
            )

    def unjudged(self, reason: str, now: float) -> None:
        self.feed(t.AccountUnjudged(now, reason))


_COLLECTING: ContextVar[tuple[TripWire, Trips] | None] = ContextVar(
    "safeguard_collecting_trips", default=None
)
"""The wire whose trips this thread or task is collecting now, and where they go."""


__all__ = ["TripWire"]
