"""Funding: the premium that ties the perpetual to its index, paid between longs and shorts.

Binance's rule: over each interval the venue averages the premium index
``(mark - index) / index``; at the interval's end the rate is

    rate = clamp(P + clamp(I - P, -0.05 %, +0.05 %), -cap, +cap)

with ``I`` the interest rate per interval (0.01 % on USD-M). Each position then pays
``rate * qty * mark``: longs pay shorts when the rate is positive. Funding times are the
multiples of the interval since the epoch (00:00, 08:00, 16:00 UTC for 8 h).
"""

from __future__ import annotations

import math

INTEREST_PER_INTERVAL = 0.0001
_INTEREST_CLAMP = 0.0005


def funding_rate(
    average_premium: float, *, cap: float, interest: float = INTEREST_PER_INTERVAL
) -> float:
    """The rate for an interval whose time-weighted average premium was ``average_premium``."""
    if not math.isfinite(average_premium):
        raise ValueError(f"average_premium must be finite, got {average_premium!r}")
    if not cap > 0:
        raise ValueError(f"cap must be > 0, got {cap!r}")
    rate = average_premium + min(max(interest - average_premium, -_INTEREST_CLAMP), _INTEREST_CLAMP)
    return min(max(rate, -cap), cap)


def next_funding_time(now: float, interval_s: float) -> float:
    """The first funding time strictly after ``now`` (epoch seconds)."""
    return (math.floor(now / interval_s) + 1) * interval_s


def payment(rate: float, signed_qty: float, mark: float) -> float:
    """Quote received by a position of ``signed_qty`` (> 0 long): negative means it pays."""
    return -rate * signed_qty * mark


class PremiumAverage:
    """Time-weighted average of the premium index since the last funding time."""

    __slots__ = ("_seconds", "_weighted")

    def __init__(self) -> None:
        self._weighted = 0.0
        self._seconds = 0.0

    def add(self, premium: float, dt: float) -> None:
        self._weighted += premium * dt
        self._seconds += dt

    def value(self) -> float:
        return self._weighted / self._seconds if self._seconds > 0 else 0.0

    def reset(self) -> None:
        self._weighted = 0.0
        self._seconds = 0.0


__all__ = [
    "INTEREST_PER_INTERVAL",
    "PremiumAverage",
    "funding_rate",
    "next_funding_time",
    "payment",
]
