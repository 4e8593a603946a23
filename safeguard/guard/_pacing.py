"""The core's :class:`~safeguard.guard._core.Pacer` on a rate :class:`Budget`.

Two things only the guard knows are decided here: what a ccxt call *weighs* on Binance USD-M
(ccxt does not say per unified method), and which budget class it draws from. Reads the user
makes are plain READs (held at the hard threshold: :class:`~safeguard._errors.ThrottleHold`);
look-ups and the data behind a verdict are ESSENTIAL_READs; cancels and reduce-only orders may
spend the reserve.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from safeguard import _errors as errors
from safeguard._log import logger
from safeguard.guard._classify import ErrorClass, ban_end
from safeguard.guard._core import Answer, Send
from safeguard.guard._orders import CallKind
from safeguard.guard._throttle import (
    Banned,
    Budget,
    Go,
    Hold,
    LimitType,
    NeverFits,
    RateLimit,
    RateLimits,
    RequestKind,
    Wait,
    never_fitting,
)

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
    "fetch_trading_fee": 20,  # commissionRate
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
        depth = _depth(limit)
        return next((w for cap, w in _DEPTH if depth <= cap), _DEPTH[-1][1])
    if method == "fetch_open_orders":
        return 1 if (send.args and send.args[0]) or send.kwargs.get("symbol") else 40
    return _WEIGHTS.get(method, 1)


def _depth(limit: object) -> float:
    """The book depth a ``limit`` asks for: 500 (Binance's default) when none; one that is
    not a number is weighed as the deepest, and ccxt or the venue answers it."""
    if limit is None:
        return 500.0
    try:
        depth = float(limit)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf
    return depth if math.isfinite(depth) else math.inf


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


# Calls whose answer is Binance's ``exchangeInfo``, where the venue publishes its limits. ccxt
# keeps only the markets of it, so the face hands the raw document over as ``Answer.body``.
_PUBLISHES_LIMITS = frozenset({"load_markets", "fetch_markets"})

# What Binance says in a 429 about the limit it enforced: "current limit of IP(1.2.3.4) is 2400
# requests per minute", "current limit is 300 orders per TEN_SECONDS" (spot: "per 10 SECOND").
_WEIGHT_REFUSAL = re.compile(r"(?i)current limit of IP\(.*?\) is (\d+) requests per (\w+)")
_ORDER_REFUSAL = re.compile(r"(?i)current limit is (\d+) orders per (\d+ )?(\w+)")
_KNOWN = frozenset(LimitType.__members__)
LEARNED_LIMIT_HOLD_S = 300.0
"""How long a limit taught by one 429 holds before the limit it replaced is paced on again.

A 429's "current limit is 5 requests per minute" is the venue's word for now, not for ever: a
venue that tightened a limit for a while and lifted it would otherwise be paced on the tight
number for the rest of the run (a bot that only reads never re-reads ``exchangeInfo``). If the
venue still enforces it, its next 429 teaches it again: one refusal per hold, each with its
pause honoured, far from the repeated 429s that earn a ban.

It is also how often the guard asks the venue again, when a request is refused outright ("can
never fit") by a limit narrower than Binance's published one (or the policy's) that no 429 is
holding: a throttle window's ``exchangeInfo`` is the venue's word too, not for ever. Before the
refusal the guard re-reads ``exchangeInfo`` (weight 1, inside the narrow limit: nothing goes
past what the venue enforces), at most once per this period per guarded exchange, counted from
its last read of the venue's limits. A limit the venue lifted thus lets such a request go at
most this long after the guard last read the narrow one."""
_UNIT_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_TEN = {"TEN_SECONDS": 10}


def refused_limit(message: str) -> RateLimit | None:
    """The limit a Binance 429 names in its message, or None (another venue, another text).

    The venue enforcing a number we did not know is the surest sign its limits changed: the
    budget learns it from the refusal itself, without spending weight on ``exchangeInfo``.
    """
    match = _WEIGHT_REFUSAL.search(message)
    if match is not None:
        seconds = _interval(None, match.group(2))
        kind = LimitType.REQUEST_WEIGHT
    else:
        match = _ORDER_REFUSAL.search(message)
        if match is None:
            return None
        seconds = _interval(match.group(2), match.group(3))
        kind = LimitType.ORDERS
    limit = int(match.group(1))
    if seconds is None or limit <= 0:
        return None
    return RateLimit(kind, seconds, limit)


def _interval(count: str | None, unit: str) -> int | None:
    name = unit.upper()
    if name in _TEN:
        return _TEN[name]
    seconds = _UNIT_SECONDS.get(name.removesuffix("S"))
    if seconds is None:
        return None
    return seconds * (int(count) if count else 1)


_LADDER_KINDS: Mapping[str, RequestKind] = {
    "create_order": RequestKind.REDUCE_ONLY,  # the ladder's flatten orders are reduce-only
    "fapiPrivatePostCountdownCancelAll": RequestKind.CANCEL,
    "dapiPrivatePostCountdownCancelAll": RequestKind.CANCEL,
    "cancel_all_orders_after": RequestKind.CANCEL,
}


def ladder_pace(budget: Budget) -> Callable[[str, tuple[Any, ...], float], float]:
    """The kill ladder's pace on ``budget`` (see :func:`~safeguard.killswitch._ladder.run_ladder`):
    seconds ``exchange.method(*args)`` must wait at ``now``, 0 once it is charged. Cancels and
    flatten orders draw on the reserve kept for them; a ban is waited out to its end, never
    fired into (the venue refuses everything then, and each refusal risks a longer ban)."""

    def pace(method: str, args: tuple[Any, ...], now: float) -> float:
        send = Send(method, args)
        kind = _LADDER_KINDS.get(
            method,
            RequestKind.CANCEL if method.startswith("cancel") else RequestKind.ESSENTIAL_READ,
        )
        decision = budget.decide(kind, weight(send), now)
        if isinstance(decision, Go):
            return 0.0
        if isinstance(decision, Wait):
            return max(decision.seconds, 1e-3)  # a zero wait would spin
        if isinstance(decision, Hold):
            return max(decision.retry_after, 1e-3)
        return max(decision.until - now, 1e-3)

    return pace


@dataclass
class BudgetPacer:
    """Paces one guarded exchange on a (possibly shared) rate :class:`Budget`."""

    budget: Budget
    default_ban_s: float = 120.0
    on_wait: Callable[[str, float, Any], None] | None = None
    """Told ``(action, seconds, decision)`` whenever the budget holds a request back
    (``wait``, ``hold``, ``banned``) or the venue throttled (``429``) or banned (``418``) us."""
    _published_at: float = field(default=-math.inf, init=False)
    """``serverTime`` of the newest ``exchangeInfo`` learned: an older one (ccxt answered
    ``load_markets`` from its cache) must not undo what a newer one or a 429 taught."""
    _taught: dict[tuple[LimitType, int], tuple[RateLimit, float]] = field(
        default_factory=dict, init=False
    )
    """Per window, the limit a 429 tightened and when it is paced on again (see
    :data:`LEARNED_LIMIT_HOLD_S`)."""
    _limits_read_at: float = field(default=-math.inf, init=False)
    """When the venue's published limits were last read (or asked for again): the next
    re-read for a request they refuse outright is :data:`LEARNED_LIMIT_HOLD_S` after it."""

    def recheck(self, kind: CallKind, send: Send, now: float) -> Send | None:
        """The read to make before refusing ``send`` outright: ``exchangeInfo`` again, when a
        limit narrower than the published or the policy's one leaves ``send`` no room, no 429
        holds it, and the venue's limits were last read :data:`LEARNED_LIMIT_HOLD_S` ago or
        more (the venue may have lifted it since). None otherwise."""
        if send.method in _PUBLISHES_LIMITS or now < self._limits_read_at + LEARNED_LIMIT_HOLD_S:
            return None
        blocking = never_fitting(
            self.budget.limits, self.budget.config, request_kind(kind, send), weight(send)
        )
        if blocking is None:
            return None
        key = (blocking.type, blocking.interval_s)
        # Paced on without the venue's word: Binance's published limits, or the policy's own.
        usual = {
            (lim.type, lim.interval_s): lim.limit
            for lim in RateLimits.from_config(self.budget.config).limits
        }
        if key in self._taught or blocking.limit >= usual.get(key, math.inf):
            return None  # a 429's hold gives it back; the policy's own number stays
        # Counted from the asking, whatever the answer: one re-read per period, not a storm of
        # them while the venue keeps the limit narrow or the re-read itself fails.
        self._limits_read_at = now
        return Send("load_markets", (True,))

    def before(self, kind: CallKind, send: Send, now: float, deadline: float = math.inf) -> float:
        if self._taught:
            self._give_back(now)
        rk = request_kind(kind, send)
        # The kind and weight are the guard's own: a budget that can skip checking them does.
        decide = getattr(self.budget, "decide_unchecked", None) or self.budget.decide
        try:
            decision = decide(rk, weight(send), now)
        except NeverFits as exc:
            raise errors.RequestBlocked(
                f"{send.method} not sent: {exc}; the venue's limit leaves no room for it"
            ) from None
        if isinstance(decision, Go):
            return 0.0
        if isinstance(decision, Wait):
            self._told("wait", decision.seconds, decision)
            # A zero wait would spin: the budget's spacing always moves forward in time.
            wait = max(decision.seconds, 1e-3)
            if now + wait > deadline:
                raise errors.ThrottleHold(
                    _past_deadline(send, rk, decision, wait), retry_after=wait
                )
            return wait
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

    def after(self, send: Send, answer: Answer, ec: ErrorClass | None) -> float:
        """Learn from an answer; returns how long the budget now keeps requests back."""
        now = answer.now
        self.budget.observe(answer.headers, now, sent_at=answer.started)
        if ec is None:
            if send.method in _PUBLISHES_LIMITS:
                self._learn_published(answer.body, now)
            return 0.0
        if ec.banned:
            until, capped = ban_end(ec, now, self.default_ban_s)
            if capped:
                logger.error(
                    "the venue's 418 named a ban past Binance's longest; capped at 3 days, "
                    "until {} (banned_until={}, Retry-After={})",
                    datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
                    ec.banned_until,
                    ec.retry_after,
                )
            self.budget.record_ban(until, now)
            self._told("418", until - now, ec)
            return max(until - now, 0.0)
        if ec.throttled:
            named = refused_limit(str(answer.error)) if answer.error is not None else None
            if named is not None:
                self._learn_refusal(named, now)
            blocked = self.budget.record_throttle(429, ec.retry_after, now)
            self._told("429", ec.retry_after or 0.0, ec)
            return blocked
        return 0.0

    def _learn_refusal(self, named: RateLimit, now: float) -> None:
        key = (named.type, named.interval_s)
        replaced = next(
            (lim for lim in self.budget.limits if (lim.type, lim.interval_s) == key), None
        )
        if replaced is not None and named.limit >= replaced.limit:
            # A 429 says we went past the venue's limit: a number at or above the one paced
            # on cannot be why, and taking it would pace past the real limit into a ban.
            return
        if not self.budget.learn(RateLimits((named,))):
            return
        until = now + LEARNED_LIMIT_HOLD_S
        if replaced is not None and named.limit < replaced.limit:
            # Given back later to what it replaced before any 429 (a second 429 while one is
            # held extends the hold; it does not make the tight number the one to return to).
            original = self._taught.get(key, (replaced, until))[0]
            self._taught[key] = (original, until)
        logger.warning(
            "the venue enforces {} at {} (learned from its 429; held for {:g} s)",
            named.label,
            named.limit,
            LEARNED_LIMIT_HOLD_S,
        )

    def _give_back(self, now: float) -> None:
        """Pace again on the limits a 429 replaced once their hold is over."""
        for key, (original, until) in list(self._taught.items()):
            if now < until or self._taught.pop(key, None) is None:
                continue  # still held, or another thread gave it back first
            if self.budget.learn(RateLimits((original,))):
                logger.info(
                    "pacing on {} at {} again: the limit a 429 taught was held {:g} s",
                    original.label,
                    original.limit,
                    LEARNED_LIMIT_HOLD_S,
                )

    def _learn_published(self, body: Any, now: float) -> None:
        if not isinstance(body, Mapping) or not isinstance(body.get("rateLimits"), list):
            return
        stamp = body.get("serverTime")
        published_at = float(stamp) if isinstance(stamp, int | float) else None
        if published_at is not None and published_at <= self._published_at:
            return
        rows = body["rateLimits"]
        if not any(isinstance(r, Mapping) and r.get("rateLimitType") in _KNOWN for r in rows):
            return  # nothing this budget counts (parsing it would give the defaults back)
        try:
            limits = RateLimits.from_exchange_info(rows)
        except ValueError as exc:
            # Pacing goes on with the limits it had; the defaults are Binance's own.
            logger.warning("exchangeInfo.rateLimits ignored: {}", exc)
            return
        if published_at is not None:
            self._published_at = published_at
        self._limits_read_at = max(self._limits_read_at, now)
        # The venue's newer word on every limit it publishes: nothing taught before it is
        # given back over it later.
        for row in limits.limits:
            self._taught.pop((row.type, row.interval_s), None)
        if self.budget.learn(limits):
            logger.info(
                "pacing on the venue's published limits: {}",
                ", ".join(f"{lim.label}={lim.limit}" for lim in self.budget.limits),
            )

    def _told(self, action: str, seconds: float, decision: Any) -> None:
        if self.on_wait is not None:
            self.on_wait(action, seconds, decision)


def _past_deadline(send: Send, kind: RequestKind, decision: Wait, wait: float) -> str:
    """Why a request is not sent at all: the wait it needs ends after its call's budget."""
    if decision.limit.startswith("429 "):
        why = (
            f"the venue answered 429 on {decision.limit[4:]}, a limit it charges cancels too, "
            "so it would refuse this one as well until the pause it asked for ends"
        )
    elif decision.limit == "429":
        why = (
            "the venue answered 429 without it being traced to a full order-count window, "
            "so every request, cancels included, waits out the pause"
        )
    else:
        why = f"{decision.limit} is at {decision.usage:.0%} until its window rolls"
        if kind is RequestKind.CANCEL:
            why += (
                "; the venue counts this weight for cancels too, so it would refuse this one "
                "as well"
            )
    return f"{send.method} not sent: it would wait {wait:.1f}s, past its call's time budget ({why})"


__all__ = ["BudgetPacer", "refused_limit", "request_kind", "weight"]
