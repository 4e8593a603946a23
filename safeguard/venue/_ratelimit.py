"""The venue's rate limits, enforced for real: request weight per IP, order counts per account.

Binance counts request weight per client IP in fixed one-minute windows and new orders per
account in fixed ten-second and one-minute windows. Over a limit the answer is HTTP 429; an IP
that keeps sending after 429s is banned (HTTP 418 with ``Retry-After``), and each further ban
of the same IP lasts twice as long as the one before, from two minutes up to three days.

:class:`RateLimiter` is the bookkeeping only. It never reads a clock (``now`` is an argument)
and never sleeps; the dialect calls it under the venue's lock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

BAN_BASE_S = 120.0
BAN_MAX_S = 3 * 86_400.0


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The published limits (``exchangeInfo.rateLimits``)."""

    weight_per_minute: int = 2_400
    orders_per_10s: int = 300
    orders_per_minute: int = 1_200

    def __post_init__(self) -> None:
        for name in ("weight_per_minute", "orders_per_10s", "orders_per_minute"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")

    @classmethod
    def from_exchange_info(cls, rate_limits: Iterable[Mapping[str, Any]]) -> RateLimits:
        """Read the limits a venue publishes; absent entries keep Binance's defaults."""
        found: dict[str, int] = {}
        for entry in rate_limits:
            kind = entry.get("rateLimitType")
            seconds = _interval_seconds(entry.get("interval"), entry.get("intervalNum", 1))
            limit = entry.get("limit")
            if not isinstance(limit, int) or isinstance(limit, bool):
                raise ValueError(f"rateLimits entry has a non-integer limit: {entry!r}")
            if kind == "REQUEST_WEIGHT" and seconds == 60:
                found["weight_per_minute"] = limit
            elif kind == "ORDERS" and seconds == 10:
                found["orders_per_10s"] = limit
            elif kind == "ORDERS" and seconds == 60:
                found["orders_per_minute"] = limit
        return cls(**found)

    def tightened(
        self,
        *,
        weight_per_minute: int | None = None,
        orders_per_10s: int | None = None,
        orders_per_minute: int | None = None,
    ) -> RateLimits:
        """These limits, lowered (never raised) by whichever overrides are given."""
        return replace(
            self,
            weight_per_minute=_lower(self.weight_per_minute, weight_per_minute),
            orders_per_10s=_lower(self.orders_per_10s, orders_per_10s),
            orders_per_minute=_lower(self.orders_per_minute, orders_per_minute),
        )

    def as_exchange_info(self) -> list[dict[str, Any]]:
        """The ``rateLimits`` array in Binance's shape."""
        return [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.weight_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": self.orders_per_minute,
            },
            {
                "rateLimitType": "ORDERS",
                "interval": "SECOND",
                "intervalNum": 10,
                "limit": self.orders_per_10s,
            },
        ]


def _lower(limit: int, override: int | None) -> int:
    return limit if override is None else min(limit, override)


def _interval_seconds(interval: Any, num: Any) -> int | None:
    unit = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86_400}.get(str(interval))
    if unit is None or not isinstance(num, int):
        return None
    return unit * num


@dataclass(frozen=True, slots=True)
class Usage:
    """What the answer's headers report: the counts *after* this request."""

    weight_1m: int
    orders_10s: int | None = None
    orders_1m: int | None = None

    def headers(self) -> dict[str, str]:
        out = {"X-MBX-USED-WEIGHT-1M": str(self.weight_1m)}
        if self.orders_10s is not None and self.orders_1m is not None:
            out["X-MBX-ORDER-COUNT-10S"] = str(self.orders_10s)
            out["X-MBX-ORDER-COUNT-1M"] = str(self.orders_1m)
        return out


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request was not admitted: the HTTP status, Binance body and ``Retry-After``."""

    status: int
    code: int
    msg: str
    retry_after_s: int | None


@dataclass(frozen=True, slots=True)
class Admission:
    """The limiter's answer. ``refusal`` is ``None`` when the request may proceed."""

    usage: Usage
    refusal: Refusal | None = None


@dataclass(slots=True)
class _Window:
    index: int = -1
    count: int = 0

    def add(self, index: int, amount: int) -> int:
        if index != self.index:
            self.index, self.count = index, 0
        self.count += amount
        return self.count

    def peek(self, index: int) -> int:
        return self.count if index == self.index else 0


@dataclass(slots=True)
class _IpState:
    weight: _Window = field(default_factory=_Window)
    strikes: _Window = field(default_factory=_Window)
    banned_until: float = 0.0
    bans: int = 0


@dataclass(slots=True)
class _AccountState:
    orders_10s: _Window = field(default_factory=_Window)
    orders_1m: _Window = field(default_factory=_Window)


class RateLimiter:
    """Per-IP weight and per-account order counters, 429 strikes and escalating 418 bans.

    ``strikes_before_ban`` is how many 429 answers an IP may collect in one minute before the
    next request over the limit earns it a ban.
    """

    def __init__(
        self,
        *,
        strikes_before_ban: int = 5,
        ban_base_s: float = BAN_BASE_S,
        ban_max_s: float = BAN_MAX_S,
        order_limit_retry_after: bool = False,
    ) -> None:
        if isinstance(strikes_before_ban, bool) or not isinstance(strikes_before_ban, int):
            raise ValueError(f"strikes_before_ban must be an integer, got {strikes_before_ban!r}")
        if strikes_before_ban < 0:
            raise ValueError(f"strikes_before_ban must be >= 0, got {strikes_before_ban}")
        if not 0 < ban_base_s <= ban_max_s or not math.isfinite(ban_max_s):
            raise ValueError(
                f"ban_base_s and ban_max_s must satisfy 0 < base <= max < inf, "
                f"got {ban_base_s!r}, {ban_max_s!r}"
            )
        self.strikes_before_ban = strikes_before_ban
        self.ban_base_s = float(ban_base_s)
        self.ban_max_s = float(ban_max_s)
        self.order_limit_retry_after = order_limit_retry_after
        self._ips: dict[str, _IpState] = {}
        self._accounts: dict[str, _AccountState] = {}

    def ban(self, ip: str, now: float) -> float:
        """Ban ``ip`` now, for longer than its last ban; returns when the ban ends (epoch s)."""
        state = self._ips.setdefault(ip, _IpState())
        length = min(self.ban_base_s * 2.0**state.bans, self.ban_max_s)
        state.bans += 1
        state.banned_until = max(state.banned_until, now + length)
        return state.banned_until

    def banned_until(self, ip: str, now: float) -> float | None:
        """When the ban on ``ip`` ends, or ``None`` if it is not banned at ``now``."""
        state = self._ips.get(ip)
        if state is None or state.banned_until <= now:
            return None
        return state.banned_until

    def weight_used(self, ip: str, now: float) -> int:
        state = self._ips.get(ip)
        return 0 if state is None else state.weight.peek(_minute(now))

    def admit(
        self,
        *,
        ip: str,
        account: str | None,
        weight: int,
        orders: int,
        limits: RateLimits,
        now: float,
    ) -> Admission:
        """Count one request and say whether it may proceed.

        Refused requests still count: the venue charges the weight of everything it reads,
        which is what makes "keep sending after a 429" end in a ban.
        """
        state = self._ips.setdefault(ip, _IpState())
        minute = _minute(now)
        if state.banned_until > now:
            usage = Usage(state.weight.peek(minute))
            return Admission(usage, ban_refusal(state.banned_until, now))
        used = state.weight.add(minute, weight)
        order_usage: tuple[int, int] | None = None
        if orders > 0 and account is not None:
            acct = self._accounts.setdefault(account, _AccountState())
            order_usage = (
                acct.orders_10s.add(int(now // 10), orders),
                acct.orders_1m.add(minute, orders),
            )
        usage = Usage(used, *(order_usage or (None, None)))

        refusal: Refusal | None = None
        if used > limits.weight_per_minute:
            refusal = Refusal(
                429,
                -1003,
                f"Too many requests; current limit of IP({ip}) is {limits.weight_per_minute} "
                "requests per minute. Please use WebSocket Streams for live updates to avoid "
                "bans.",
                _seconds_until(60.0 * (minute + 1), now),
            )
        elif order_usage is not None and order_usage[0] > limits.orders_per_10s:
            refusal = self._order_refusal(limits.orders_per_10s, "TEN_SECONDS", 10.0, now)
        elif order_usage is not None and order_usage[1] > limits.orders_per_minute:
            refusal = self._order_refusal(limits.orders_per_minute, "MINUTE", 60.0, now)
        if refusal is None:
            return Admission(usage)
        strikes = state.strikes.add(minute, 1)
        if strikes > self.strikes_before_ban:
            until = self.ban(ip, now)
            return Admission(usage, ban_refusal(until, now))
        return Admission(usage, refusal)

    def _order_refusal(self, limit: int, interval: str, length: float, now: float) -> Refusal:
        retry = _seconds_until(length * (math.floor(now / length) + 1), now)
        return Refusal(
            429,
            -1015,
            f"Too many new orders; current limit is {limit} orders per {interval}.",
            retry if self.order_limit_retry_after else None,
        )


def _minute(now: float) -> int:
    return int(now // 60)


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now))


def ban_refusal(until: float, now: float) -> Refusal:
    """The 418 answer for an IP banned until ``until``."""
    return Refusal(
        418,
        -1003,
        f"Way too much request weight used; IP banned until {int(until * 1000)}. "
        "Please use WebSocket Streams for live updates to avoid bans.",
        _seconds_until(until, now),
    )


__all__ = [
    "BAN_BASE_S",
    "BAN_MAX_S",
    "Admission",
    "RateLimiter",
    "RateLimits",
    "Refusal",
    "Usage",
    "ban_refusal",
]
