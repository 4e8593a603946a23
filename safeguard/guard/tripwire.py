"""What the guard sees, fed to the kill-switch triggers; a trip engages the switch.

The triggers (:mod:`safeguard.killswitch.triggers`) are pure and know nothing of the switch.
This is the one place that turns the guard's observations (each request's outcome, orders
placed, rejected and cancelled, leverage changes, bans, fresh marks, the account after each
re-read) into their events, and each :class:`~safeguard.killswitch.triggers.Trip` into
``switch.engage(trip.reason, code=trip.code, state=trip.action, by="trigger")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from safeguard._log import logger
from safeguard.guard.classify import ErrorClass, RetryClass, ban_end
from safeguard.guard.core import Answer, Send
from safeguard.killswitch import triggers as t
from safeguard.killswitch.switch import TradingState
from safeguard.risk.models import Account


class Engages(Protocol):
    def engage(
        self, reason: str, *, by: str = ..., state: TradingState = ..., code: str = ...
    ) -> Any: ...


@dataclass
class TripWire:
    monitor: t.RiskMonitor
    switch: Engages

    def feed(self, event: t.Event) -> None:
        for trip in self.monitor.observe(event):
            logger.warning("kill-switch trigger {}: {}", trip.code, trip.reason)
            self.switch.engage(
                trip.reason, by="trigger", state=TradingState(trip.action), code=str(trip.code)
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
            elif method == "set_leverage" and len(send.args) >= 2:
                self.feed(t.LeverageChanged(now, str(send.args[1])))
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
        self.feed(t.MarkUpdate(now, symbol, data_time, stale_since))

    def account(self, account: Account, stops: dict[str, float], now: float) -> None:
        self.feed(t.AccountUpdate(now, account, stops))

    def unjudged(self, reason: str, now: float) -> None:
        self.feed(t.AccountUnjudged(now, reason))


__all__ = ["TripWire"]
