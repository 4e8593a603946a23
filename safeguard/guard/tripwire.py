"""What the guard sees, fed to the kill-switch triggers; a trip engages the switch.

The triggers (:mod:`safeguard.killswitch.triggers`) are pure and know nothing of the switch.
This is the one place that turns the guard's observations (each request's outcome, orders
placed, rejected and cancelled, leverage changes, bans, fresh marks, the account after each
re-read) into their events, and each :class:`~safeguard.killswitch.triggers.Trip` into
``switch.engage(trip.reason, code=trip.code, state=trip.action, by="trigger")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from safeguard._log import logger
from safeguard.codes import Code
from safeguard.guard.classify import ErrorClass, RetryClass, ban_end
from safeguard.guard.core import Answer, Send
from safeguard.guard.events import BandEvent, EventKind, Hooks, WarningEvent
from safeguard.killswitch import triggers as t
from safeguard.killswitch.switch import TradingState
from safeguard.killswitch.warnings import EarlyWarning, WarningMonitor
from safeguard.risk.cascade import liquidation_band
from safeguard.risk.models import Account
from safeguard.risk.positions import ExitMarket


class Engages(Protocol):
    def engage(
        self, reason: str, *, by: str = ..., state: TradingState = ..., code: str = ...
    ) -> Any: ...


@dataclass
class TripWire:
    monitor: t.RiskMonitor
    switch: Engages
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
                self.switch.engage(
                    f"early warning {warning.name}: {warning.message}",
                    by="warning",
                    state=TradingState(warning.escalate),
                    code=str(Code.EARLY_WARNING),
                )

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


__all__ = ["TripWire"]
