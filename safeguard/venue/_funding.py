"""Funding: the premium that ties the perpetual to its index, paid between longs and shorts.

Binance's rule: over each interval the venue averages the premium index
``(mark - index) / index``; at the interval's end the rate is

    rate = clamp(P + clamp(I - P, -0.05 %, +0.05 %), -cap, +cap)

with ``I`` the interest rate per interval (0.01 % on USD-M). Each position then pays
``rate * qty * mark``: longs pay shorts when the rate is positive. Funding times are the
multiples of the interval since the epoch (00:00, 08:00, 16:00 UTC for 8 h).

The rule is the functions here; :class:`Funding` is the venue's collaborator that applies it at
each symbol's funding times, pays it through the :class:`~._ledger.Ledger`'s accounts and
answers ``/fapi/v1/fundingRate`` and ``fundingInfo``. It lives beside the rule because it is
small and has no other idea; the engine only tells it when a step reaches a funding time. What
it works on per symbol (the premium average, the next funding time, the settled history) stays
in the symbol's :class:`~._state.MarketState`, which the market data reads too.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from safeguard.venue._events import AccountChanged, FundingPayment
from safeguard.venue._markets import MONEY_SCALE

if TYPE_CHECKING:  # the market state imports PremiumAverage from here (a cycle at run time)
    from safeguard.venue._ledger import Ledger
    from safeguard.venue._state import MarketState
    from safeguard.venue._timeline import Timeline

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


class Funding:
    """Settles funding for every symbol and answers what it settled."""

    def __init__(self, ledger: Ledger, timeline: Timeline) -> None:
        self._ledger = ledger
        self._timeline = timeline

    def settle(self, m: MarketState, t: float) -> None:
        """Settle funding at the mark of the first step at or after the funding time.

        Payments are stamped with the funding time itself (00:00, 08:00, ...), as the venue's
        funding history shows them, even when the step grid does not land on it.
        """
        spec = m.spec
        when = m.next_funding
        rate = funding_rate(m.premium.value(), cap=spec.funding_cap)
        m.funding_rate = rate
        m.premium.reset()
        m.funding_history.append((int(when * 1000), rate, m.feed.mark))
        m.next_funding = next_funding_time(t, spec.funding_interval_s)
        mark = m.feed.mark
        ledger = self._ledger
        timeline = self._timeline
        for account in ledger.accounts.values():
            for side in ("BOTH", "LONG", "SHORT"):
                position = account.positions.get((spec.symbol, side))
                if position is None or not position.qty:
                    continue
                size = position.qty * spec.step_size
                amount = round(-rate * size * mark * MONEY_SCALE)
                account.wallet += amount
                ledger.book_income(account, spec.symbol, "FUNDING_FEE", amount, int(when * 1000))
                if ledger.isolated(account, spec.symbol):
                    position.isolated_margin += amount
                account.update_ms = int(t * 1000)
                timeline.record(
                    FundingPayment(
                        when,
                        account.api_key,
                        spec.symbol,
                        side,
                        rate,
                        mark,
                        spec.qty_of(position.qty),
                        amount,
                    )
                )
                if timeline.listeners:
                    timeline.notify(
                        AccountChanged(when, account.api_key, "FUNDING_FEE", (spec.symbol,), amount)
                    )

    def reschedule(self, m: MarketState, now: float) -> None:
        """Move the next funding time to the first boundary of ``m``'s (new) interval.

        A funding time the clock has reached but no step has settled yet is still paid (at the
        next step, which schedules the one after on the new interval).
        """
        if m.next_funding > now:
            m.next_funding = next_funding_time(now, m.spec.funding_interval_s)

    def history(
        self,
        markets: Sequence[MarketState],
        *,
        start_ms: Any,
        end_ms: Any,
        limit: int,
    ) -> list[dict[str, Any]]:
        """``/fapi/v1/fundingRate`` rows of ``markets``, oldest first (from ``start_ms``,
        else the latest ``limit``)."""
        rows = sorted(
            (when, m.spec.symbol, rate, mark)
            for m in markets
            for when, rate, mark in m.funding_history
            if (start_ms is None or when >= start_ms) and (end_ms is None or when <= end_ms)
        )
        kept = rows[:limit] if start_ms is not None else rows[-limit:]
        specs = {m.spec.symbol: m.spec for m in markets}
        return [
            {
                "symbol": name,
                "fundingRate": f"{rate:.8f}",
                "fundingTime": when,
                "markPrice": format(mark, specs[name].avg_price_format),
            }
            for when, name, rate, mark in kept
        ]

    def info(self, markets: Iterable[MarketState]) -> list[dict[str, Any]]:
        """``/fapi/v1/fundingInfo``: each symbol's cap, floor and interval."""
        return [
            {
                "symbol": spec.symbol,
                "adjustedFundingRateCap": f"{spec.funding_cap:.8f}",
                "adjustedFundingRateFloor": f"{-spec.funding_cap:.8f}",
                "fundingIntervalHours": round(spec.funding_interval_s / 3600),
                "disclaimer": False,
            }
            for spec in (m.spec for m in markets)
        ]


__all__ = [
    "INTEREST_PER_INTERVAL",
    "Funding",
    "PremiumAverage",
    "funding_rate",
    "next_funding_time",
    "payment",
]
