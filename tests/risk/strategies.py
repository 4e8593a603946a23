"""Hypothesis strategies for the risk core: valid tier tables and positions on them.

Others may import these (``from tests.risk.strategies import tier_tables``, or relatively).
Every table drawn passes :class:`~safeguard.risk.tiers.TierTable` validation by construction:
contiguous, MMR non-decreasing in (0, 0.5], leverage non-increasing and below 1/MMR, cum from the
recurrence.
"""

from __future__ import annotations

import math

from hypothesis import strategies as st

from safeguard.risk.tiers import TierTable


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
