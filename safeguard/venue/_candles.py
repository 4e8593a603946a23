"""Candles: what ``/fapi/v1/klines`` and its mark, index and premium siblings answer.

The venue keeps one row per simulated minute and symbol (:class:`~._state.MarketState`):
contract-price OHLC in ticks with the public tape's volume, trade count and taker-buy volume,
and the mark, index and premium OHLC the price process went through. A bar of any interval is
those minutes aggregated, so a candle's high is at least every trade printed in it and its
volume is the sum of their quantities.

Before the run starts there are no minutes. A strategy that asks for 500 candles at its first
tick still gets them: :func:`history` walks the index backwards from the starting price, seeded
per (seed, symbol, interval), so the same config always shows the same past. History bars carry
no volume (no trade of this venue happened then), and each interval's history is its own walk
(a synthetic 1h bar is not the sum of synthetic 1m bars); from the start on, all intervals are
aggregated from the same minutes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal, NamedTuple

from safeguard.venue._markets import MarketSpec

Kind = Literal["contract", "mark", "index", "premium"]

INTERVALS: dict[str, int] = {
    "1m": 60,
    "3m": 180,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "2h": 7200,
    "4h": 14_400,
    "6h": 21_600,
    "8h": 28_800,
    "12h": 43_200,
    "1d": 86_400,
    "3d": 259_200,
    "1w": 604_800,
}
"""Binance's kline intervals in seconds (``1M``, calendar months, is not offered)."""

_WEEK = 604_800
_WEEK_OFFSET = 4 * 86_400  # the epoch was a Thursday; Binance's weekly bars open on Mondays
_SECONDS_PER_YEAR = 365.0 * 86_400.0

# Minute row layout (contract): [minute, open, high, low, close, volume, quote volume,
# trade count, taker-buy volume, taker-buy quote volume], prices in ticks.
# Minute row layout (prices): [minute, mark o h l c, index o h l c, premium o h l c].
_PRICE_COLUMN = {"mark": 1, "index": 5, "premium": 9}


class Bar(NamedTuple):
    """One candle; prices are ticks for ``contract``, plain numbers otherwise."""

    open_s: int
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    quote: float = 0.0
    trade_count: int = 0
    taker_base: float = 0.0
    taker_quote: float = 0.0


def bar_open(t: float, interval_s: int) -> int:
    """Open time (epoch seconds) of the ``interval_s`` bar holding ``t``."""
    offset = _WEEK_OFFSET if interval_s == _WEEK else 0
    return int((t - offset) // interval_s) * interval_s + offset


def aggregate(
    rows: Sequence[Sequence[float]], kind: Kind, interval_s: int, first: int, last: int
) -> list[Bar]:
    """Bars opening in ``[first, last]`` (epoch seconds) from minute ``rows`` (oldest first)."""
    bars: list[Bar] = []
    column = _PRICE_COLUMN.get(kind, 1)
    current: list[float] | None = None
    current_open = 0
    for row in rows:
        opened = bar_open(row[0] * 60, interval_s)
        if opened < first:
            continue
        if opened > last:
            break
        o, h, lo, c = row[column], row[column + 1], row[column + 2], row[column + 3]
        if current is None or opened != current_open:
            if current is not None:
                bars.append(_bar(current_open, current))
            current_open = opened
            current = [o, h, lo, c, 0.0, 0.0, 0.0, 0.0, 0.0]
        else:
            current[1] = max(current[1], h)
            current[2] = min(current[2], lo)
            current[3] = c
        if kind == "contract":
            for i in range(5):
                current[4 + i] += row[5 + i]
    if current is not None:
        bars.append(_bar(current_open, current))
    return bars


def _bar(open_s: int, v: list[float]) -> Bar:
    return Bar(open_s, v[0], v[1], v[2], v[3], v[4], v[5], int(v[6]), v[7], v[8])


def history(
    *,
    key: str,
    interval_s: int,
    end_s: int,
    depth: int,
    index: float,
    premium: float,
    annual_vol: float,
    spec: MarketSpec,
) -> dict[Kind, list[Bar]]:
    """``depth`` seeded bars per kind ending at ``end_s`` (the first live bar's open).

    The last bar closes at ``index`` (the run's starting index), so history joins the live
    market without a gap. Bars opening before the epoch are left out.
    """
    rng = random.Random(f"{key}:history:{interval_s}")
    sigma = annual_vol * math.sqrt(interval_s / _SECONDS_PER_YEAR)
    tick = spec.tick_size
    factor = 1.0 + premium
    out: dict[Kind, list[Bar]] = {"contract": [], "mark": [], "index": [], "premium": []}
    close = index
    for k in range(1, depth + 1):
        opened = end_s - k * interval_s
        if opened < 0:
            break
        open_ = close * math.exp(-sigma * rng.gauss(0.0, 1.0))
        high = max(open_, close) * math.exp(abs(rng.gauss(0.0, 0.3)) * sigma)
        low = min(open_, close) * math.exp(-abs(rng.gauss(0.0, 0.3)) * sigma)
        out["index"].append(Bar(opened, open_, high, low, close))
        out["mark"].append(Bar(opened, open_ * factor, high * factor, low * factor, close * factor))
        out["premium"].append(Bar(opened, premium, premium, premium, premium))
        o_t, c_t = (max(round(p * factor / tick), 1) for p in (open_, close))
        h_t = max(round(high * factor / tick), o_t, c_t)
        l_t = max(min(round(low * factor / tick), o_t, c_t), 1)
        out["contract"].append(Bar(opened, o_t, h_t, l_t, c_t))
        close = open_
    for bars in out.values():
        bars.reverse()
    return out


def select(
    bars: Sequence[Bar], start_s: float | None, end_s: float | None, limit: int
) -> list[Bar]:
    """Binance's window rule: from ``startTime`` forwards, else the latest up to ``endTime``."""
    kept = [
        b
        for b in bars
        if (start_s is None or b.open_s >= start_s) and (end_s is None or b.open_s <= end_s)
    ]
    return kept[:limit] if start_s is not None else kept[-limit:]


def to_binance(
    bars: Sequence[Bar], kind: Kind, interval_s: int, spec: MarketSpec
) -> list[list[object]]:
    """Binance's array rows: ``[openT, o, h, l, c, vol, closeT, quoteVol, n, takerBase,
    takerQuote, "0"]``; mark, index and premium rows carry zero volumes as Binance's do."""
    rows: list[list[object]] = []
    for b in bars:
        if kind == "contract":
            prices = [spec.fmt_price(int(p)) for p in (b.open, b.high, b.low, b.close)]
            volumes = [format(b.volume, spec.qty_format), f"{b.quote:.8f}", b.trade_count]
            taker = [format(b.taker_base, spec.qty_format), f"{b.taker_quote:.8f}"]
        else:
            shape = spec.price_format if kind != "premium" else ".8f"
            prices = [format(p, shape) for p in (b.open, b.high, b.low, b.close)]
            volumes, taker = ["0", "0", 0], ["0", "0"]
        open_ms = b.open_s * 1000
        close_ms = open_ms + interval_s * 1000 - 1
        rows.append([open_ms, *prices, volumes[0], close_ms, *volumes[1:], *taker, "0"])
    return rows


def weight(limit: int) -> int:
    """Binance's klines weight by ``limit``."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    return 5 if limit <= 1000 else 10


__all__ = ["INTERVALS", "Bar", "Kind", "aggregate", "bar_open", "history", "select", "to_binance"]
