"""A realistic sample market for ``safeguard check``, the verdict benchmark and examples.

BTC/USDT:USDT on Binance USD-M: the venue's twelve-bracket ladder (the first five are the
published ones in :data:`safeguard.risk._tiers.BINANCE_BTCUSDT_TIERS`; the rest follow the shape
Binance publishes for its largest brackets), tick 0.1, step 0.001, and a synthetic 50-level book
that, like real books, is thin at the touch and thickens away from it.
"""

from __future__ import annotations

import math

from safeguard.risk import _inputs
from safeguard.risk._book import OrderBook
from safeguard.risk._models import MarketRules, MarketSnapshot
from safeguard.risk._tiers import TierTable

SYMBOL = "BTC/USDT:USDT"

BTCUSDT_TIERS_12 = TierTable.from_rows(
    [
        (0.0, 300_000.0, 0.004, 150.0),
        (300_000.0, 800_000.0, 0.005, 100.0),
        (800_000.0, 3_000_000.0, 0.0065, 75.0),
        (3_000_000.0, 12_000_000.0, 0.01, 50.0),
        (12_000_000.0, 70_000_000.0, 0.02, 25.0),
        (70_000_000.0, 100_000_000.0, 0.025, 20.0),
        (100_000_000.0, 230_000_000.0, 0.05, 10.0),
        (230_000_000.0, 480_000_000.0, 0.1, 5.0),
        (480_000_000.0, 600_000_000.0, 0.125, 4.0),
        (600_000_000.0, 800_000_000.0, 0.15, 3.0),
        (800_000_000.0, 1_200_000_000.0, 0.25, 2.0),
        (1_200_000_000.0, 1_800_000_000.0, 0.5, 1.0),
    ],
    currency="USDT",
)
"""Twelve BTC/USDT:USDT brackets (cum by the recurrence)."""

TICK = 0.1
STEP = 0.001


def synthetic_book(
    mark: float,
    *,
    levels: int = 50,
    gap: float = 2.0,
    top_size: float = 0.1,
    size_growth: float = 0.04,
    timestamp: float | None = None,
) -> OrderBook:
    """A book around ``mark``: best bid and ask one tick either side, ``gap`` between levels,
    sizes growing by ``size_growth`` per level from ``top_size`` at the touch."""
    _inputs.positive("mark", mark)
    best_bid = round((math.ceil(mark / TICK - 1e-9) - 1) * TICK, 1)
    best_ask = round(best_bid + 2 * TICK, 1)
    bids = tuple(
        (round(best_bid - i * gap, 1), round(top_size + size_growth * i, 3)) for i in range(levels)
    )
    asks = tuple(
        (round(best_ask + i * gap, 1), round(top_size + size_growth * i, 3)) for i in range(levels)
    )
    return OrderBook(bids=bids, asks=asks, timestamp=timestamp)


def sample_rules(now: float, *, model: str = "binanceusdm") -> MarketRules:
    return MarketRules(
        tiers=BTCUSDT_TIERS_12,
        tick_size=TICK,
        step_size=STEP,
        min_qty=0.001,
        max_qty=1_000.0,
        min_notional=100.0,
        updated_at=now - 60.0,
        liquidation_model=model,
    )


def sample_market(
    now: float,
    *,
    mark: float = 60_000.0,
    last: float | None = None,
    volatility: float = 0.01,
    funding_rate: float = 0.0001,
    model: str = "binanceusdm",
) -> MarketSnapshot:
    """A fresh snapshot at ``now``: mark and book 0.2 s old, rules a minute old, funding due at
    the next 8-hour boundary, 1 % hourly volatility."""
    interval = 8 * 3600.0
    return MarketSnapshot(
        symbol=SYMBOL,
        mark=mark,
        mark_time=now - 0.2,
        index=mark,
        last=mark if last is None else last,
        book=synthetic_book(mark, timestamp=now - 0.2),
        rules=sample_rules(now, model=model),
        volatility=volatility,
        funding_rate=funding_rate,
        next_funding_time=(now // interval + 1) * interval,
        funding_interval_s=interval,
    )


__all__ = [
    "BTCUSDT_TIERS_12",
    "STEP",
    "SYMBOL",
    "TICK",
    "sample_market",
    "sample_rules",
    "synthetic_book",
]
