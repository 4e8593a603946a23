"""The rate budget: pace requests before the venue throttles, and never get banned.

Binance counts request weight per IP and orders per account in fixed windows aligned to the
clock (the minute, the 10 seconds), reports the running totals in every answer
(``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``, ``X-MBX-ORDER-COUNT-1M``), answers 429
beyond a limit and bans the IP with 418 when the 429s are ignored. The budget models exactly
that, and *predicts* rather than only reacts: a request that is allowed is charged at once, so
several requests in flight cannot each see the same stale header and overshoot together.

Per limit, with ``L`` the limit and ``u`` the weight used in the current window:

* below ``soft_threshold * L`` everything goes at once;
* above it, requests that can wait (reads, orders) are spaced so the capacity left is spread
  evenly over the rest of the window: the budget is used to the end, not burnt in a burst;
* reads that are not essential stop at ``hard_threshold * L``: :class:`Hold` until the window
  rolls (the client raises :class:`~safeguard._errors.ThrottleHold` or waits);
* orders and essential reads stop at ``L - reserve``, where ``reserve = reserve_fraction * L``
  is kept for cancels and reduce-only orders, which alone may spend it, up to ``L``;
* a 429 stops everything for its ``Retry-After`` (or until the offending window rolls), except
  cancels when a full order-count window explains it (cancels count no order); a 418 bans
  everything until the ban ends, persisted by :class:`~safeguard.guard._bans.BanStore` so a
  restarted process fails fast too.

Everything here is pure: time is an argument. :class:`RateBudget` is thread-safe because
several guarded exchanges sharing an IP or an API key share its windows: one
:class:`BudgetRegistry` per state directory in the process (:func:`registry_for`).
:class:`Budget` is what the guard draws on: a :class:`RateBudget`, or a fleet's
:class:`~safeguard.fleet._budget.RedisRateBudget`.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from requests.structures import CaseInsensitiveDict as _CaseInsensitive

from safeguard._config import ThrottleConfig
from safeguard._log import logger
from safeguard._profiles import BINANCE_USDM
from safeguard.guard._bans import BanStore
from safeguard.guard._classify import header
from safeguard.risk import _inputs


class RequestKind(StrEnum):
    """What a request is for, which decides how much of the budget it may use."""

    READ = "READ"
    """Market data and account reads that can wait or be skipped."""
    ESSENTIAL_READ = "ESSENTIAL_READ"
    """Reads safety depends on (resolving an ambiguous order, positions before a flatten)."""
    ORDER = "ORDER"
    CANCEL = "CANCEL"
    REDUCE_ONLY = "REDUCE_ONLY"


class LimitType(StrEnum):
    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    """Weight per IP; every request."""
    RAW_REQUESTS = "RAW_REQUESTS"
    """Request count per IP; every request counts 1."""
    ORDERS = "ORDERS"
    """Order placements per account; cancels do not count."""


_PER_IP = (LimitType.REQUEST_WEIGHT, LimitType.RAW_REQUESTS)
_INTERVAL_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}
_LETTER_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# The venue's headers and published limits come from its profile (safeguard._profiles).
_WEIGHT_HEADER = BINANCE_USDM.weight_header
_ORDER_HEADER = BINANCE_USDM.order_header
_PLACES_ORDERS = (RequestKind.ORDER, RequestKind.REDUCE_ONLY)
USES_RESERVE = (RequestKind.CANCEL, RequestKind.REDUCE_ONLY)
# Threads hand the budget times read moments apart; only a larger step back is the clock's.
_STEP_TOLERANCE_S = 1.0


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One published limit: at most ``limit`` units per fixed window of ``interval_s``."""

    type: LimitType
    interval_s: int
    limit: int

    def __post_init__(self) -> None:
        if not isinstance(self.interval_s, int) or self.interval_s <= 0:
            raise ValueError(
                f"rate limit interval_s must be a positive int, got {self.interval_s!r}"
            )
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit <= 0:
            raise ValueError(f"rate limit limit must be a positive int, got {self.limit!r}")

    @property
    def label(self) -> str:
        """``REQUEST_WEIGHT/1m``, ``ORDERS/10s``: the form the answer headers use."""
        for letter, seconds in (("d", 86400), ("h", 3600), ("m", 60)):
            if self.interval_s % seconds == 0:
                return f"{self.type}/{self.interval_s // seconds}{letter}"
        return f"{self.type}/{self.interval_s}s"


# Binance USD-M futures' published limits, used when neither the venue nor the policy says.
USDM_DEFAULT_LIMITS = tuple(
    RateLimit(LimitType(kind), seconds, limit) for kind, seconds, limit in BINANCE_USDM.limits
)


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The limits a budget enforces."""

    limits: tuple[RateLimit, ...] = USDM_DEFAULT_LIMITS

    @classmethod
    def from_exchange_info(
        cls, rate_limits: Sequence[Mapping[str, Any]] | None, config: ThrottleConfig | None = None
    ) -> RateLimits:
        """Parse ``exchangeInfo.rateLimits``; the policy's overrides win; USD-M defaults fill in.

        Raises ValueError naming the entry for an unknown interval, a non-positive limit or a
        malformed row: a limit silently ignored is a ban waiting to happen. Unknown
        ``rateLimitType`` values are skipped (they limit something this budget never sends).
        """
        parsed: list[RateLimit] = []
        for index, row in enumerate(rate_limits or ()):
            where = f"rateLimits[{index}]"
            if not isinstance(row, Mapping):
                raise ValueError(f"{where} must be an object, got {type(row).__name__}")
            kind = str(row.get("rateLimitType"))
            if kind not in LimitType.__members__:
                continue
            interval = _INTERVAL_SECONDS.get(str(row.get("interval")))
            if interval is None:
                raise ValueError(
                    f"{where}.interval is not a known interval: {row.get('interval')!r}"
                )
            number, limit = row.get("intervalNum", 1), row.get("limit")
            if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
                raise ValueError(f"{where}.intervalNum must be a positive int, got {number!r}")
            if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
                raise ValueError(f"{where}.limit must be a positive int, got {limit!r}")
            parsed.append(RateLimit(LimitType(kind), interval * number, limit))
        if not parsed:
            parsed = list(USDM_DEFAULT_LIMITS)
        return cls(tuple(parsed)).with_overrides(config)

    @classmethod
    def from_config(cls, config: ThrottleConfig | None = None) -> RateLimits:
        """USD-M defaults with the policy's overrides."""
        return cls().with_overrides(config)

    def with_overrides(self, config: ThrottleConfig | None) -> RateLimits:
        if config is None:
            return self
        limits = {(lim.type, lim.interval_s): lim for lim in self.limits}
        for (kind, interval), value in _overridden(config).items():
            limits[(kind, interval)] = RateLimit(kind, interval, value)
        return RateLimits(tuple(limits.values()))


def _overridden(config: ThrottleConfig) -> dict[tuple[LimitType, int], int]:
    """The limits the policy sets itself, by (type, interval)."""
    overrides = {
        (LimitType.REQUEST_WEIGHT, 60): config.weight_limit_per_minute,
        (LimitType.ORDERS, 10): config.orders_per_10s,
        (LimitType.ORDERS, 60): config.orders_per_minute,
    }
    return {key: value for key, value in overrides.items() if value is not None}


# --- decisions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Go:
    """Send now. The request has been charged to the budget."""


@dataclass(frozen=True, slots=True)
class Wait:
    """Ask again after ``seconds`` (pacing, or the window is full for this kind)."""

    seconds: float
    limit: str
    usage: float


@dataclass(frozen=True, slots=True)
class Hold:
    """A non-essential read refused: the rest of the window is reserved. Retry after."""

    retry_after: float
    limit: str
    usage: float


@dataclass(frozen=True, slots=True)
class Banned:
    """The venue banned this IP until ``until`` (epoch seconds). Send nothing."""

    until: float


Admission = Go | Wait | Hold | Banned
GO = Go()


# --- state --------------------------------------------------------------------------------


class _Window:
    """Usage of one limit in one scope (an IP or an account); mutated under the budget lock."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.window = -1
        self.used = 0.0
        self.next_at = 0.0

    def roll(self, now: float, skew: float) -> None:
        # A window is taken to have rolled only ``skew`` after our clock says so, in case the
        # venue's clock is behind ours: it is the venue's window that counts.
        window = math.floor((now - skew) / self.limit.interval_s)
        if window > self.window:
            self.window, self.used, self.next_at = window, 0.0, 0.0

    def stepped_back(self, now: float, skew: float, by: float) -> None:
        # Our clock stepped back ``by`` seconds; the venue's window went on. The one in
        # progress is the one now says (same count), and the pacing moves with the clock.
        self.window = min(self.window, math.floor((now - skew) / self.limit.interval_s))
        self.next_at = max(self.next_at - by, 0.0)

    def ends_at(self, skew: float) -> float:
        return (self.window + 1) * self.limit.interval_s + skew

    def usage(self) -> float:
        return self.used / self.limit.limit


class _Scope:
    """What a ban or a 429 blocks: one per IP."""

    def __init__(self) -> None:
        self.banned_until = 0.0
        self.hold_until = 0.0
        self.cancels_exempt = False
        self.hold_label = "429"
        """What the 429 hold is traced to (``429 REQUEST_WEIGHT/1m``), for the refusal's text."""
        self.latest = 0.0
        """The latest ``now`` this IP's budgets were asked at: a clock stepping back shows."""
        """The 429 hold was traced to a full window, which gates cancels by itself."""


def request_cost(limit: RateLimit, kind: RequestKind, weight: float, orders: int) -> float:
    """What a request of ``kind`` counts against ``limit``'s window (the fleet's budget too)."""
    if limit.type is LimitType.REQUEST_WEIGHT:
        return weight
    if limit.type is LimitType.RAW_REQUESTS:
        return 1.0
    return float(orders) if kind in _PLACES_ORDERS else 0.0


class NeverFits(ValueError):
    """A request costs more than a window's whole usable budget: waiting would never let it
    go. The guard refuses it by name (``RequestBlocked``); nothing is sent."""

    def __init__(
        self, kind: RequestKind, weight: float, cost: float, cap: float, limit: RateLimit
    ) -> None:
        super().__init__(
            f"weight {weight:g} of a {kind} request (costing {cost:g} there) can never fit "
            f"{limit.label} ({cap:g} of {limit.limit} usable after the reserve)"
        )
        self.kind = kind
        self.limit = limit


def never_fitting(
    limits: Sequence[RateLimit],
    config: ThrottleConfig,
    kind: RequestKind,
    weight: float,
    *,
    orders: int = 1,
) -> RateLimit | None:
    """The limit among ``limits`` whose whole usable window a request of ``kind`` and
    ``weight`` is bigger than (what :meth:`RateBudget.decide` refuses with
    :class:`NeverFits`), or None. Pure: charges nothing."""
    for limit in limits:
        if request_cost(limit, kind, weight, orders) > usable_share(config, limit.limit, kind):
            return limit
    return None


def usable_share(config: ThrottleConfig, limit: int, kind: RequestKind) -> float:
    """How much of a window of ``limit`` a request of ``kind`` may fill (the fleet's too):
    cancels and reduce-only orders may use the reserve, reads stop at the hard threshold."""
    reserve = config.reserve_fraction * limit
    if kind in USES_RESERVE:
        return float(limit)
    if kind is RequestKind.READ:
        return min(config.hard_threshold * limit, limit - reserve)
    return limit - reserve


class RateBudget:
    """The budget one guarded exchange draws on; its windows may be shared with others.

    Drive it from the client like this (all methods take ``now``, epoch seconds)::

        decision = budget.decide(RequestKind.READ, weight=5, now=now)
        # Go: send (already charged). Wait: sleep decision.seconds and ask again.
        # Hold: raise ThrottleHold(retry_after=decision.retry_after) (or wait it out).
        # Banned: raise VenueBanned(until=decision.until).
        budget.observe(answer_headers, now, sent_at=sent)   # after every answer, errors too
        budget.record_throttle(429, retry_after, now)      # on a 429
        budget.record_ban(until, now)                      # on a 418 (persisted)
    """

    def __init__(
        self,
        config: ThrottleConfig,
        windows: Sequence[_Window],
        scope: _Scope,
        lock: threading.RLock,
        on_ban: Callable[[float], None] | None = None,
        new_window: Callable[[RateLimit], _Window] | None = None,
    ) -> None:
        self.config = config
        self._windows = tuple(windows)
        self._scope = scope
        self._lock = lock
        self._on_ban = on_ban
        self._new_window = new_window or _Window
        self._caps: dict[tuple[int, RequestKind], float] = {}
        self._plans: dict[RequestKind, tuple[tuple[_Window, RateLimit, float], ...]] = {}

    @classmethod
    def standalone(
        cls, config: ThrottleConfig | None = None, limits: RateLimits | None = None
    ) -> RateBudget:
        """A budget shared with nobody (tests, one bot on its own IP)."""
        config = config or ThrottleConfig()
        limits = limits or RateLimits.from_config(config)
        windows = [_Window(lim) for lim in limits.limits]
        return cls(config, windows, _Scope(), threading.RLock())

    def _rebind(self, windows: Sequence[_Window], config: ThrottleConfig) -> None:
        with self._lock:
            self._windows = tuple(windows)
            self.config = config
            self._caps = {}
            self._plans = {}

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        return tuple(w.limit for w in self._windows)

    def learn(self, limits: RateLimits, *, policy_overrides: bool = True) -> bool:
        """Pace on the venue's ``limits`` from now on; returns whether any number changed.

        Each window of the same type and interval takes the new number and keeps its count
        (the venue tightened a limit mid-window: what was used still counts); a limit not
        counted yet gets a window of its own, shared like the others when this budget came
        from a :class:`BudgetRegistry`. Limits not named are kept: a venue that stops
        publishing one has not lifted it. The policy's overrides still win, unless
        ``policy_overrides`` is off (``limits`` are already what to pace on: a fleet member's
        slice of the shared limits).
        """
        learned = limits.with_overrides(self.config) if policy_overrides else limits
        with self._lock:
            by_key = {(w.limit.type, w.limit.interval_s): w for w in self._windows}
            changed = False
            added: list[_Window] = []
            for limit in learned.limits:
                window = by_key.get((limit.type, limit.interval_s))
                if window is None:
                    added.append(self._new_window(limit))
                    changed = True
                elif window.limit != limit:
                    window.limit = limit
                    changed = True
            if changed:
                self._windows = (*self._windows, *added)
                self._caps = {}
                self._plans = {}
            return changed

    def decide(self, kind: RequestKind, weight: float, now: float, *, orders: int = 1) -> Admission:
        """May a request of ``kind`` and ``weight`` go now? A ``Go`` charges it.

        ``orders`` is how many orders the request places (a batch), counted against the order
        limits for ORDER and REDUCE_ONLY. Raises ValueError naming the field for a weight that
        is negative, NaN or infinite, an unknown kind, or a bad ``now``; :class:`NeverFits`
        for a request bigger than a window's whole usable budget (a venue limit so low that
        the reserve leaves no room for it: no wait would ever let it go).
        """
        if kind.__class__ is not RequestKind:
            kind = RequestKind(kind)
        _inputs.non_negative("weight", weight)
        _inputs.non_negative("now", now)
        if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
            raise ValueError(f"orders must be an int >= 1, got {orders!r}")
        return self.decide_unchecked(kind, weight, now, orders=orders)

    def decide_unchecked(
        self, kind: RequestKind, weight: float, now: float, *, orders: int = 1
    ) -> Admission:
        """:meth:`decide` for a caller whose arguments are its own, already valid: a
        :class:`RequestKind`, a weight from its own table, ``now`` from its clock (the
        guard's pacer, on every request)."""
        skew = self.config.window_skew_s
        scope = self._scope
        with self._lock:
            if now != scope.latest:
                self._follow_clock(now)
            if scope.banned_until > now:
                return Banned(scope.banned_until)
            held = scope.hold_until > now
            if held and not (kind is RequestKind.CANCEL and scope.cancels_exempt):
                return Wait(scope.hold_until - now, scope.hold_label, 1.0)
            worst: Wait | Hold | None = None
            places = kind in _PLACES_ORDERS
            reserve = kind in USES_RESERVE
            charged: list[tuple[_Window, float]] = []
            # request_cost, _Window.roll and _check, written out: this runs for every request.
            for window, planned, planned_cap in self._plan(kind):
                limit = window.limit
                # A shared window another budget re-limited meanwhile: its cap is asked anew.
                cap = planned_cap if limit is planned else self._cap(limit.limit, kind)
                if limit.type is LimitType.REQUEST_WEIGHT:
                    cost = weight
                elif limit.type is LimitType.RAW_REQUESTS:
                    cost = 1.0
                else:
                    cost = float(orders) if places else 0.0
                index = math.floor((now - skew) / limit.interval_s)
                if index > window.window:
                    window.window, window.used, window.next_at = index, 0.0, 0.0
                if cost <= 0:
                    continue
                if cost > cap:
                    # It would wait for every window forever: refuse it by name instead.
                    raise NeverFits(kind, weight, cost, cap, limit)
                charged.append((window, cost))
                if window.used + cost <= cap and (reserve or now >= window.next_at):
                    continue  # this window lets it go (what _check answers with None)
                verdict = self._check(window, kind, cost, cap, now, skew)
                if isinstance(verdict, Hold):
                    worst = verdict if not isinstance(worst, Hold) else _later(worst, verdict)
                elif verdict is not None and not isinstance(worst, Hold):
                    worst = verdict if worst is None else _later(worst, verdict)
            if worst is not None:
                return worst
            soft = self.config.soft_threshold
            for window, cost in charged:
                window.used += cost
                if not reserve and window.used > soft * window.limit.limit:
                    self._space(window, kind, cost, now, skew)
            return GO

    def _follow_clock(self, now: float) -> None:
        """Shift what is held in absolute time when the clock stepped back (an NTP step, a
        VM restored): a 2 s pause must not become an hour because ``now`` went back an hour.
        The step is measured from the latest time seen, so it can be underestimated by the
        time that passed unseen (a sleep), never overestimated. Called under the lock."""
        scope = self._scope
        by = scope.latest - now
        if by > _STEP_TOLERANCE_S:
            scope.hold_until = max(scope.hold_until - by, 0.0)
            for window in self._windows:
                window.stepped_back(now, self.config.window_skew_s, by)
        if by > _STEP_TOLERANCE_S or now > scope.latest:
            scope.latest = now

    def _cap(self, limit: int, kind: RequestKind) -> float:
        # Asked for every window of every request, and the answer changes only with the
        # config: remembered per (limit, kind) until _rebind.
        try:
            return self._caps[(limit, kind)]
        except KeyError:
            cap = self._caps[(limit, kind)] = usable_share(self.config, limit, kind)
            return cap

    def _check(
        self, window: _Window, kind: RequestKind, cost: float, cap: float, now: float, skew: float
    ) -> Wait | Hold | None:
        # Labels and roll times are built only for a refusal: the common answer is None.
        if window.used + cost > cap:
            rolls_in = max(window.ends_at(skew) - now, 0.0)
            if kind is RequestKind.READ:
                return Hold(rolls_in, window.limit.label, window.usage())
            # Orders, essential reads and cancels wait for the window rather than fail: the
            # client's retry budget decides how long it is prepared to wait.
            return Wait(rolls_in, window.limit.label, window.usage())
        if kind not in USES_RESERVE and now < window.next_at:
            return Wait(window.next_at - now, window.limit.label, window.usage())
        return None

    def _plan(self, kind: RequestKind) -> tuple[tuple[_Window, RateLimit, float], ...]:
        """Each window with its limit and its cap for ``kind``: the table every decision
        walks, built once per kind until the limits or the config change (a window shared
        with another budget may take a new limit meanwhile: the walk checks)."""
        plan = self._plans.get(kind)
        if plan is None:
            plan = self._plans[kind] = tuple(
                (w, w.limit, self._cap(w.limit.limit, kind)) for w in self._windows
            )
        return plan

    def _space(
        self, window: _Window, kind: RequestKind, cost: float, now: float, skew: float
    ) -> None:
        # Past the soft threshold: space requests so the capacity left lasts the window.
        limit = window.limit.limit
        left = self._cap(limit, kind) - window.used
        rolls_in = window.ends_at(skew) - now
        spacing = rolls_in * cost / max(left + cost, cost)
        window.next_at = max(window.next_at, now) + spacing

    def refund(self, kind: RequestKind, weight: float, now: float, *, orders: int = 1) -> None:
        """Give back a ``Go`` that was never sent (the kill switch refused in between)."""
        kind = RequestKind(kind)
        _inputs.non_negative("weight", weight)
        with self._lock:
            self._follow_clock(now)
            for window in self._windows:
                window.roll(now, self.config.window_skew_s)
                cost = request_cost(window.limit, kind, weight, orders)
                window.used = max(0.0, window.used - cost)

    def observe(
        self, headers: Mapping[str, str] | None, now: float, *, sent_at: float | None = None
    ) -> None:
        """Learn the venue's counts from an answer's headers (any answer, errors included).

        A header only ever raises our estimate: requests still in flight are in our count but
        not yet in the venue's, and other processes on the same IP are in the venue's count
        but not in ours, so the larger of the two is the truth to plan with. ``sent_at`` (when
        the request left) discards a header that describes a window that has since rolled.
        """
        if not headers:
            return
        reported = reported_usage(headers)
        if not reported:
            return
        skew = self.config.window_skew_s
        with self._lock:
            if now != self._scope.latest:
                self._follow_clock(now)
            for window in self._windows:
                family = HEADER_FAMILY.get(window.limit.type)  # raw request counts: no header
                value = reported.get((family or "", window.limit.interval_s))
                if value is None:
                    continue
                window.roll(now, skew)
                if sent_at is not None:
                    sent_window = math.floor((sent_at - skew) / window.limit.interval_s)
                    if sent_window != window.window:
                        continue
                window.used = max(window.used, value)

    def record_throttle(self, status: int, retry_after: float | None, now: float) -> float:
        """A 429 (or -1003/-1015): stop sending. Returns how long everything now waits.

        Every window at or beyond the hard threshold is marked full, so it reopens when it
        rolls. Everything then waits ``Retry-After``, or without one, for the shortest window
        to roll if no window explains the 429: one we did not predict means someone else is
        using our budget, and another immediate request is how bans begin. Cancels alone are
        let through the wait when only order-count windows explain it: an order-count 429
        must not stop a cancel, which counts no order. A full request-weight window keeps
        them waiting too, for the venue's own ``Retry-After``: the venue charges a cancel's
        weight like any request's and would refuse it (and our idea of where its window
        ends may be off by the clock skew; its ``Retry-After`` is not).

        A ``Retry-After`` of 0 counts as none. One longer than the longest window is cut to
        that window: no limit we pace against needs a longer pause, and a garbled header must
        not stop every request, cancels included, for days. (A 418's ban length is not cut:
        that is ``record_ban``.)
        """
        if status != 429:
            raise ValueError(f"status must be 429 for a throttle, got {status!r}")
        _inputs.non_negative("now", now)
        if retry_after is not None:
            _inputs.non_negative("retry_after", retry_after)
        skew = self.config.window_skew_s
        with self._lock:
            self._follow_clock(now)
            for window in self._windows:
                window.roll(now, skew)
            full = [w for w in self._windows if w.usage() >= self.config.hard_threshold]
            for window in full:
                window.used = max(window.used, float(window.limit.limit))
            longest = max((w.limit.interval_s for w in self._windows), default=0)
            # "Retry-After: 0" on a 429 says nothing a missing header would not: held alike.
            hold = min(retry_after, float(longest)) if retry_after else None
            if hold is None:
                shortest = min(self._windows, key=lambda w: w.limit.interval_s, default=None)
                unexplained = not full and shortest is not None
                hold = max(shortest.ends_at(skew) - now, 0.0) if unexplained and shortest else 0.0
            per_ip = [w for w in full if w.limit.type in _PER_IP]
            # An unexplained hold still running keeps cancels waiting too.
            still_held = self._scope.hold_until > now
            self._scope.cancels_exempt = (
                bool(full) and not per_ip and (self._scope.cancels_exempt or not still_held)
            )
            if now + hold > self._scope.hold_until or not still_held:
                self._scope.hold_label = " ".join(["429", *(w.limit.label for w in per_ip)])
            self._scope.hold_until = max(self._scope.hold_until, now + hold)
            return max(self._scope.hold_until - now, self._full_for(now, skew))

    def _full_for(self, now: float, skew: float) -> float:
        full = [w for w in self._windows if w.used >= w.limit.limit]
        return max((w.ends_at(skew) - now for w in full), default=0.0)

    def record_ban(self, until: float, now: float) -> None:
        """A 418: nothing is sent until ``until`` (epoch seconds). Persisted via the registry."""
        _inputs.non_negative("until", until)
        _inputs.non_negative("now", now)
        with self._lock:
            self._scope.banned_until = max(self._scope.banned_until, until)
            effective = self._scope.banned_until
        if self._on_ban is not None:
            self._on_ban(effective)

    def banned_until(self, now: float) -> float | None:
        """The end of a ban in force at ``now``, or None."""
        with self._lock:
            until = self._scope.banned_until
        return until if until > now else None

    def usage(self, now: float) -> dict[str, float]:
        """Share of each limit used in its current window, by label (for logs and metrics)."""
        with self._lock:
            out = {}
            for window in self._windows:
                window.roll(now, self.config.window_skew_s)
                out[window.limit.label] = window.usage()
            return out


def _later(a: Wait | Hold, b: Wait | Hold) -> Wait | Hold:
    left = a.seconds if isinstance(a, Wait) else a.retry_after
    right = b.seconds if isinstance(b, Wait) else b.retry_after
    return a if left >= right else b


HEADER_FAMILY = {LimitType.REQUEST_WEIGHT: "weight", LimitType.ORDERS: "orders"}


def reported_usage(headers: Mapping[str, str]) -> dict[tuple[str, int], float]:
    reported: dict[tuple[str, int], float] = {}
    # ccxt's sync answers come as requests' CaseInsensitiveDict, whose items() goes through
    # the Mapping mixins (a Python call per header); its store (lower-case name -> (name,
    # value)) is read directly. The names are matched without regard to case either way.
    store = getattr(headers, "_store", None) if headers.__class__ is _CaseInsensitive else None
    if isinstance(store, dict):
        pairs: Iterable[tuple[Any, Any]] = [(name, pair[1]) for name, pair in store.items()]
    else:
        lower_items = getattr(headers, "lower_items", None)
        pairs = lower_items() if callable(lower_items) else headers.items()
    keys = _HEADER_KEYS
    for name, raw in pairs:
        key = keys.get(name, _UNSEEN) if name.__class__ is str else _UNSEEN
        if key is _UNSEEN:
            key = _header_key(name)
        if key is None:
            continue
        try:
            # float() takes surrounding whitespace itself: a str needs no strip().
            value = float(raw) if raw.__class__ is str else float(str(raw).strip())
        except ValueError:
            continue  # a garbled header teaches nothing; our own count still stands
        if math.isfinite(value) and value >= 0:
            reported[key] = value
    return reported


_HEADER_KEYS: dict[object, tuple[str, int] | None] = {}
_UNSEEN: Any = object()
_HEADER_KEYS_MAX = 1024


def _header_key(name: object) -> tuple[str, int] | None:
    """``(family, window seconds)`` of a rate-limit header name, or None for any other header.

    Every answer carries the same few names, so each is parsed once, not with two regular
    expressions per header per answer; the memo is bounded against a venue inventing names.
    """
    try:
        return _HEADER_KEYS[name]
    except KeyError:
        pass
    except TypeError:  # an unhashable name: parse it every time
        return _parse_header_key(name)
    key = _parse_header_key(name)
    if len(_HEADER_KEYS) < _HEADER_KEYS_MAX:
        _HEADER_KEYS[name] = key
    return key


def _parse_header_key(name: object) -> tuple[str, int] | None:
    for family, pattern in (("weight", _WEIGHT_HEADER), ("orders", _ORDER_HEADER)):
        match = pattern.match(str(name))
        if match:
            return family, int(match.group(1)) * _LETTER_SECONDS[match.group(2).lower()]
    return None


def rate_headers(headers: Mapping[str, str] | None) -> dict[str, str]:
    """The rate-limit headers of an answer, by their canonical names (for request logs)."""
    if not headers:
        return {}
    return {
        str(name).upper(): str(value)
        for name, value in headers.items()
        if _WEIGHT_HEADER.match(str(name)) or _ORDER_HEADER.match(str(name))
    } | ({"RETRY-AFTER": v} if (v := header(headers, "Retry-After")) is not None else {})


# --- sharing -----------------------------------------------------------------------------


def account_fingerprint(api_key: str | None) -> str:
    """A stable, non-reversible key for an API key (never keep the key itself as a dict key)."""
    if not api_key:
        return "anonymous"
    return hashlib.sha256(api_key.encode()).hexdigest()[:16]


class BudgetRegistry:
    """Budgets shared per IP (weight, bans) and per account (order counts) in one process.

    ``get(ip_key, account_key)`` returns the same :class:`RateBudget` for the same pair, and
    budgets for different accounts on one IP share that IP's weight windows and ban. With a
    :class:`~safeguard.guard._bans.BanStore`, bans are written through to disk and a new
    registry (a restarted process) starts out banned.
    """

    def __init__(self, config: ThrottleConfig | None = None, store: BanStore | None = None) -> None:
        self.config = config or ThrottleConfig()
        self.store = store
        self._lock = threading.RLock()
        self._windows: dict[tuple[str, LimitType, int], _Window] = {}
        self._scopes: dict[str, _Scope] = {}
        self._budgets: dict[tuple[str, str], RateBudget] = {}

    def get(
        self,
        ip_key: str,
        account_key: str,
        limits: RateLimits | None = None,
        *,
        config: ThrottleConfig | None = None,
    ) -> RateBudget:
        """The budget for ``ip_key`` (e.g. ``"binanceusdm@203.0.113.7"``) and ``account_key``
        (e.g. :func:`account_fingerprint` of the API key). Thread-safe.

        Windows are shared by what they limit (an IP's weight per minute, an account's orders
        per 10 s), not by the number: when ``limits`` differ from an earlier call's (the venue's
        ``exchangeInfo`` arrived), the shared windows take the newer numbers and keep counting.
        ``config`` (a policy's ``throttle`` section) sets this budget's thresholds and reserve
        over the shared counts; without it the registry's own config applies.
        """
        for name, value in (("ip_key", ip_key), ("account_key", account_key)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str, got {value!r}")
        chosen = config or self.config
        # Without ``limits`` a window another exchange on this IP or account already counts in
        # keeps the number it has (perhaps learned from the venue): a new client knows no
        # better than the defaults, and must not loosen what the venue published.
        given = limits is not None
        limits = limits or RateLimits.from_config(chosen)
        with self._lock:
            scopes = (ip_key, f"account:{account_key}")
            windows = {
                id(w): w
                for lim in limits.limits
                for w in (
                    self._window(
                        self._scope_of(lim, ip_key, account_key),
                        lim,
                        given or (lim.type, lim.interval_s) in _overridden(chosen),
                    ),
                )
            }
            for (scope, _, _), window in self._windows.items():
                if scope in scopes:
                    windows.setdefault(id(window), window)  # limits learned by another client
            budget = self._budgets.get((ip_key, account_key))
            if budget is None:
                budget = RateBudget(
                    chosen,
                    list(windows.values()),
                    self._scope(ip_key),
                    self._lock,
                    on_ban=self._persister(ip_key),
                    new_window=lambda lim: self._window(
                        self._scope_of(lim, ip_key, account_key), lim, True
                    ),
                )
                self._budgets[(ip_key, account_key)] = budget
            else:
                budget._rebind(list(windows.values()), chosen)
            return budget

    @staticmethod
    def _scope_of(limit: RateLimit, ip_key: str, account_key: str) -> str:
        return ip_key if limit.type in _PER_IP else f"account:{account_key}"

    def _window(self, scope: str, limit: RateLimit, replace: bool) -> _Window:
        key = (scope, limit.type, limit.interval_s)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(limit)
        elif replace:
            window.limit = limit
        return window

    def _scope(self, ip_key: str) -> _Scope:
        scope = self._scopes.get(ip_key)
        if scope is None:
            scope = _Scope()
            if self.store is not None:
                scope.banned_until = self.store.load().get(ip_key, 0.0)
            self._scopes[ip_key] = scope
        return scope

    def _persister(self, ip_key: str) -> Callable[[float], None] | None:
        store = self.store
        if store is None:
            return None

        def persist(until: float) -> None:
            try:
                store.record(ip_key, until)
            except OSError as exc:
                # The ban holds in this process all the same (the budget refuses every send
                # until it ends); only a restart or another process will not know of it. The
                # call that met the 418 must still end in VenueBanned, not in this OSError.
                logger.error(
                    "ban until {} not written to {} ({}): held in this process only",
                    datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
                    store.path,
                    exc,
                )

        return persist


class _Registries:
    """One registry per state directory in this process, so every guarded exchange sharing
    a directory shares its budgets and its ban file."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_dir: dict[str, BudgetRegistry] = {}


_registries = _Registries()


def registry_for(state_dir: str | os.PathLike[str]) -> BudgetRegistry:
    """The process-wide :class:`BudgetRegistry` persisting bans in ``state_dir``.

    Pass each exchange's policy ``throttle`` section to :meth:`BudgetRegistry.get` as
    ``config``; the registry itself only decides what is shared and where bans are written.
    """
    key = str(Path(state_dir).resolve())
    with _registries.lock:
        registry = _registries.by_dir.get(key)
        if registry is None:
            registry = _registries.by_dir[key] = BudgetRegistry(store=BanStore(state_dir))
        return registry


class Budget(Protocol):
    """A rate budget as the guard's pacer and the kill ladder draw on it: a process's
    :class:`RateBudget` (from :func:`registry_for`) or a fleet's
    :class:`~safeguard.fleet._budget.RedisRateBudget`. ``guard(budget=...)`` takes either."""

    @property
    def config(self) -> ThrottleConfig: ...

    @property
    def limits(self) -> tuple[RateLimit, ...]: ...

    def learn(self, limits: RateLimits) -> bool: ...

    def decide(
        self, kind: RequestKind, weight: float, now: float, *, orders: int = 1
    ) -> Admission: ...

    def refund(self, kind: RequestKind, weight: float, now: float, *, orders: int = 1) -> None: ...

    def observe(
        self, headers: Mapping[str, str] | None, now: float, *, sent_at: float | None = None
    ) -> None: ...

    def record_throttle(self, status: int, retry_after: float | None, now: float) -> float: ...

    def record_ban(self, until: float, now: float) -> None: ...

    def banned_until(self, now: float) -> float | None: ...

    def usage(self, now: float) -> dict[str, float]: ...


__all__ = [
    "GO",
    "HEADER_FAMILY",
    "USDM_DEFAULT_LIMITS",
    "USES_RESERVE",
    "Admission",
    "Banned",
    "Budget",
    "BudgetRegistry",
    "Go",
    "Hold",
    "LimitType",
    "NeverFits",
    "RateBudget",
    "RateLimit",
    "RateLimits",
    "RequestKind",
    "Wait",
    "account_fingerprint",
    "never_fitting",
    "rate_headers",
    "registry_for",
    "reported_usage",
    "request_cost",
    "usable_share",
]
