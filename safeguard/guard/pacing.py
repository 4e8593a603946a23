"""The core's :class:`~safeguard.guard.core.Pacer` on guard-components' :class:`RateBudget`.

Two things only the guard knows are decided here: what a ccxt call *weighs* on Binance USD-M
(ccxt does not say per unified method), and which budget class it draws from. Reads the user
makes are plain READs (held at the hard threshold: :class:`~safeguard.errors.ThrottleHold`);
look-ups and the data behind a verdict are ESSENTIAL_READs; cancels and reduce-only orders may
spend the reserve.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from safeguard import errors
from safeguard.guard.classify import ErrorClass
from safeguard.guard.core import Answer, Send
from safeguard.guard.orders import CallKind
from safeguard.guard.throttle import Banned, Go, Hold, RateBudget, RequestKind, Wait

# Request weight per unified method on Binance USD-M (the venue's documentation is the
# authority; these follow it). Orders weigh 0 on the IP and 1 on the account's order counts.
_WEIGHTS: Mapping[str, float] = {
    "load_markets": 1,
    "fetch_markets": 1,
    "fetch_time": 1,
    "fetch_ticker": 1,
    "fetch_tickers": 40,
    "fetch_bids_asks": 5,
    "fetch_trades": 20,
    "fetch_funding_rate": 1,
    "fetch_funding_rates": 10,
    "fetch_balance": 5,
    "fetch_positions": 6,  # positionRisk 5 (+ leverageBracket 1 the first time)
    "fetch_leverage_tiers": 1,
    "fetch_leverages": 5,  # symbolConfig
    "fetch_order": 1,
    "fetch_orders": 5,
    "fetch_my_trades": 5,
    "cancel_order": 1,
    "cancel_all_orders": 1,
    "set_leverage": 1,
    "set_margin_mode": 1,
    "create_order": 0,
    "edit_order": 1,
}
_DEPTH = ((50, 2), (100, 5), (500, 10), (1000, 20))


def weight(send: Send) -> float:
    """What ``send`` costs in request weight."""
    method = send.method
    if method == "fetch_order_book":
        limit = send.args[1] if len(send.args) > 1 else send.kwargs.get("limit")
        limit = 500 if limit is None else int(limit)
        return next((w for cap, w in _DEPTH if limit <= cap), 20)
    if method == "fetch_open_orders":
        return 1 if (send.args and send.args[0]) or send.kwargs.get("symbol") else 40
    return _WEIGHTS.get(method, 1)


def request_kind(kind: CallKind, send: Send) -> RequestKind:
    if kind is CallKind.CANCEL:
        return RequestKind.CANCEL
    if kind is CallKind.ORDER:
        reduces = send.permit is not None and send.permit.reduces_only
        return RequestKind.REDUCE_ONLY if reduces else RequestKind.ORDER
    if kind is CallKind.READ:
        return RequestKind.ESSENTIAL_READ if send.essential else RequestKind.READ
    # Settings and other writes place no order (no order count) and never use the reserve.
    return RequestKind.ESSENTIAL_READ


@dataclass
class BudgetPacer:
    """Paces one guarded exchange on a (possibly shared) :class:`RateBudget`."""

    budget: RateBudget
    default_ban_s: float = 120.0
    on_wait: Callable[[str, float, Any], None] | None = None
    """Told ``(action, seconds, decision)`` whenever the budget holds a request back
    (``wait``, ``hold``, ``banned``) or the venue throttled (``429``) or banned (``418``) us."""

    def before(self, kind: CallKind, send: Send, now: float) -> float:
        rk = request_kind(kind, send)
        decision = self.budget.decide(rk, weight(send), now)
        if isinstance(decision, Go):
            return 0.0
        if isinstance(decision, Wait):
            self._told("wait", decision.seconds, decision)
            # A zero wait would spin: the budget's spacing always moves forward in time.
            return max(decision.seconds, 1e-3)
        if isinstance(decision, Hold):
            self._told("hold", decision.retry_after, decision)
            raise errors.ThrottleHold(
                f"{send.method} held: {decision.limit} is at {decision.usage:.0%}; the rest is "
                f"kept for orders, cancels and reduce-only orders "
                f"(retry in {decision.retry_after:.1f}s)",
                retry_after=decision.retry_after,
            )
        assert isinstance(decision, Banned)
        self._told("banned", decision.until - now, decision)
        stamp = datetime.fromtimestamp(decision.until, UTC).isoformat(timespec="seconds")
        raise errors.VenueBanned(
            f"{send.method} not sent: the venue banned this client until {stamp}",
            until=decision.until,
        )

    def after(self, send: Send, answer: Answer, ec: ErrorClass | None) -> None:
        now = answer.now
        self.budget.observe(answer.headers, now, sent_at=answer.started)
        if ec is None:
            return
        if ec.banned:
            if ec.banned_until is not None:
                until = ec.banned_until
            else:
                until = now + (ec.retry_after if ec.retry_after is not None else self.default_ban_s)
            self.budget.record_ban(until, now)
            self._told("418", until - now, ec)
        elif ec.throttled:
            self.budget.record_throttle(429, ec.retry_after, now)
            self._told("429", ec.retry_after or 0.0, ec)

    def _told(self, action: str, seconds: float, decision: Any) -> None:
        if self.on_wait is not None:
            self.on_wait(action, seconds, decision)


__all__ = ["BudgetPacer", "request_kind", "weight"]
