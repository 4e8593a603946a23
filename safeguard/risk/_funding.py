"""Funding a position expects to pay over a holding horizon.

A perpetual swap settles funding at fixed timestamps (every 8 h by default; some symbols 4 h or
1 h). At each one a position pays ``side * rate * value``: a positive rate means longs pay
shorts. Value is ``quantity * mark`` in quote for a linear contract and ``USD size / mark`` in
coin for an inverse one; the current mark stands in for the unknown future marks.

For a pre-trade liquidation estimate over a horizon ``H`` the payments the position expects to
**make** at the timestamps inside ``[now, now + H]`` come off its wallet; payments it expects to
**receive** are not credited, because the rate can flip before they arrive. The first timestamp
is the venue's ``nextFundingTime`` (ccxt ``fetch_funding_rate()["nextFundingTimestamp"]`` / 1000);
if that is already in the past the schedule is rolled forward by whole intervals.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from safeguard.risk import _inputs


@dataclass(frozen=True, slots=True)
class FundingEstimate:
    """The funding schedule of one symbol. Times are epoch seconds; ``now`` is an argument."""

    rate: float
    """Per interval, as a fraction (0.0001 is 0.01 %); > 0 means longs pay."""
    interval_s: float
    horizon_s: float
    """How long the position is expected to be held."""
    next_funding_time: float
    now: float

    def __post_init__(self) -> None:
        rate = _inputs.number("funding.rate", self.rate)
        if abs(rate) >= 1.0:
            raise ValueError(f"funding.rate must be a fraction below 1 in size, got {rate!r}")
        _inputs.positive("funding.interval_s", self.interval_s)
        _inputs.non_negative("funding.horizon_s", self.horizon_s)
        _inputs.non_negative("funding.next_funding_time", self.next_funding_time)
        _inputs.non_negative("funding.now", self.now)

    @property
    def payments(self) -> int:
        """How many funding timestamps fall inside ``[now, now + horizon_s]``."""
        first = self.next_funding_time
        if first < self.now:
            first += math.ceil((self.now - first) / self.interval_s) * self.interval_s
        end = self.now + self.horizon_s
        if first > end:
            return 0
        return int((end - first) // self.interval_s) + 1

    def cost(self, side: int, quantity: float, mark_price: float, *, inverse: bool) -> float:
        """Funding the position expects to pay over the horizon (>= 0; receipts count as 0)."""
        value = quantity / mark_price if inverse else quantity * mark_price
        per_payment = side * self.rate * value
        if per_payment <= 0.0:
            return 0.0
        return self.payments * per_payment


__all__ = ["FundingEstimate"]
