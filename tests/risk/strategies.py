"""Hypothesis strategies for the risk core: valid tier tables and positions on them.

Others may import these (``from tests.risk.strategies import tier_tables``, or relatively).
Every table drawn passes :class:`~safeguard.risk._tiers.TierTable` validation by construction:
contiguous, MMR non-decreasing in (0, 0.5], leverage non-increasing and below 1/MMR, cum from the
recurrence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from hypothesis import strategies as st

from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._tiers import TierTable


@st.composite
def tier_tables(
    draw: st.DrawFn,
    *,
    first_cap: tuple[float, float] = (1e3, 1e6),
    max_tiers: int = 8,
    open_ended: bool | None = None,
) -> TierTable:
    """A valid ladder; ``first_cap`` bounds the first tier's maxNotional (log-uniform)."""
    count = draw(st.integers(1, max_tiers))
    low_exp, high_exp = math.log10(first_cap[0]), math.log10(first_cap[1])
    cap = 10 ** draw(st.floats(low_exp, high_exp))
    rate = draw(st.floats(0.001, 0.05))
    leverage = math.floor(min(200.0, 0.9 / rate))
    rows: list[tuple[float, float, float, float]] = []
    floor = 0.0
    for index in range(count):
        last = index == count - 1
        unbounded = draw(st.booleans()) if open_ended is None else open_ended
        ceiling = math.inf if last and unbounded else cap
        rows.append((floor, ceiling, rate, float(leverage)))
        floor = cap
        cap *= draw(st.floats(1.5, 10.0))
        rate = min(0.5, rate * draw(st.floats(1.0, 3.0)))
        leverage = max(1, min(leverage, math.floor(0.9 / rate)))
    return TierTable.from_rows(rows)


@dataclass(frozen=True)
class Scenario:
    """A target leg and the account around it, as a liquidation model takes them."""

    target: PositionLeg
    wallet_balance: float
    others: tuple[PositionLeg, ...] = ()

    def with_more_collateral(self, amount: float) -> Scenario:
        if self.target.isolated_wallet is not None:
            target = replace(self.target, isolated_wallet=self.target.isolated_wallet + amount)
            return replace(self, target=target)
        return replace(self, wallet_balance=self.wallet_balance + amount)


def first_cap_low(inverse: bool) -> float:
    return 0.5 if inverse else 1e3


def _price(draw: st.DrawFn, inverse: bool) -> float:
    return float(10 ** draw(st.floats(2.0, 5.0) if inverse else st.floats(-1.0, 5.0)))


@st.composite
def legs(
    draw: st.DrawFn,
    *,
    symbol: str,
    inverse: bool,
    side: int | None = None,
    position_side: str = "BOTH",
    mark: float | None = None,
    at_entry: bool = False,
) -> tuple[PositionLeg, float]:
    """A cross leg on a random valid ladder, and the initial margin it was opened with."""
    table = draw(tier_tables(first_cap=(0.5, 50.0) if inverse else (1e3, 1e6)))
    mark = _price(draw, inverse) if mark is None else mark
    entry = mark if at_entry else mark * draw(st.floats(0.8, 1.25))
    index = draw(st.integers(0, len(table.tiers) - 1))
    tier = table.tiers[index]
    if math.isfinite(tier.max_notional):
        high = tier.max_notional
        low = tier.min_notional if index else high * 0.01
    else:
        low = tier.min_notional if index else first_cap_low(inverse)
        high = low * 5.0
    notional = low + (high - low) * draw(st.floats(0.01, 0.99))
    quantity = notional * mark if inverse else notional / mark
    side = draw(st.sampled_from((1, -1))) if side is None else side
    leverage = draw(st.floats(1.0, tier.max_leverage))
    entry_value = quantity / entry if inverse else quantity * entry
    leg = PositionLeg(
        symbol,
        side,
        quantity,
        entry,
        mark,
        table,
        position_side,
        inverse=inverse,  # type: ignore[arg-type]
    )
    return leg, entry_value / leverage


@st.composite
def scenarios(
    draw: st.DrawFn,
    *,
    inverse: bool,
    cross: bool,
    hedge: bool = False,
    others: int = 2,
    at_entry: bool = False,
) -> Scenario:
    """A target leg with isolated or cross margin; cross adds other symbols and a hedge twin.

    Margin is the opening margin at a random leverage up to the tier's cap, times a factor in
    [0.3, 3]: some accounts are under maintenance from the start, most are not.
    """
    settle = "BTC" if inverse else "USDT"
    quote = "USD" if inverse else "USDT"
    side = draw(st.sampled_from((1, -1)))
    position_side = ("LONG" if side > 0 else "SHORT") if hedge else "BOTH"
    target, margin = draw(
        legs(
            symbol=f"AAA/{quote}:{settle}",
            inverse=inverse,
            side=side,
            position_side=position_side,
            at_entry=at_entry,
        )
    )
    factor = draw(st.floats(0.3, 3.0))
    if not cross:
        isolated = replace(target, isolated_wallet=margin * factor)
        return Scenario(isolated, draw(st.floats(0.0, 1e6)))
    extra: list[PositionLeg] = []
    total = margin
    if hedge:
        twin, twin_margin = draw(
            legs(
                symbol=target.symbol,
                inverse=inverse,
                side=-side,
                position_side="SHORT" if side > 0 else "LONG",
                mark=target.mark_price,
            )
        )
        extra.append(twin)
        total += twin_margin
    for number in range(draw(st.integers(0, others))):
        # Inverse cross wallets are per coin: other coin-margined symbols settle in BTC too.
        other, other_margin = draw(legs(symbol=f"O{number}/{quote}:{settle}", inverse=inverse))
        extra.append(other)
        total += other_margin
    return Scenario(target, total * factor, tuple(extra))
