"""Whether a freshly stamped price is fresh: a feed whose prices froze while its clock ran on.

A venue's timestamp proves that an answer was sent recently, not that the prices in it are
current. A feed can go on stamping the moment of sending on prices that stopped moving (the
mock venue's ``stale_prices`` freeze showed 90,009 "0 ms old" while trading went on at 85,496).
Two pure tests, each with the clock as input:

- **Frozen.** A published price (the mark, the last price, the book's mid) that has not changed
  over a span in which its own volatility predicts a move of ``risk.frozen_price_ticks`` ticks
  or more (and never before ``risk.frozen_price_min_s``). A quiet market with a coarse tick
  may stand still for minutes; BTC does not stand still for ten seconds. The span is measured
  between the reads that showed the price, on the reader's clock (the guard's: the venue's
  stamps are what is in doubt), never past ``now``.
- **Out of band.** A mark further than ``risk.max_mark_gap_pct`` from *both* the index and the
  last price: the mark is the odd one out. (A last price far from a mark that sits near the
  index is a wick, which is real, and a mark near the last price but far from the index is a
  premium, which is real too.)

Each finding names the input and the time from which it cannot be trusted: the verdict
denies new exposure on it (``STALE_MARKET_DATA``) and the stale-data trigger counts the feed as
old from then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from safeguard._config import RiskLimits
from safeguard.risk import _inputs
from safeguard.risk._trusted import trusted

PRICE_INPUTS = ("mark", "last", "book")
"""The published prices tracked: the mark, the last trade price, the book's mid."""


@dataclass(frozen=True, slots=True)
class PriceTrack:
    """One published price and the times of the reads that showed it unchanged: ``since`` the
    first, ``seen`` the latest (epoch seconds, on the reader's clock)."""

    input: str
    price: float
    since: float
    seen: float

    def __post_init__(self) -> None:
        _inputs.choice("input", self.input, PRICE_INPUTS)
        _inputs.positive("price", self.price)
        _inputs.non_negative("since", self.since)
        if _inputs.non_negative("seen", self.seen) < self.since:
            raise ValueError(f"seen ({self.seen!r}) is before since ({self.since!r})")

    @classmethod
    def start(cls, input: str, price: float, stamp: float) -> PriceTrack:
        return cls(input, price, stamp, stamp)

    def observe(self, price: float, stamp: float) -> PriceTrack:
        """The track after a read at ``stamp`` showing ``price``."""
        if price != self.price or stamp < self.since:
            # It moved; or the clock stepped back past the start, and a span measured across a
            # step back is no measure: start again from this read.
            return PriceTrack.start(self.input, price, stamp)
        seen = max(self.seen, stamp)
        if seen == self.seen:
            return self  # immutable: the same track
        # Every field comes from this valid track, and seen >= since: nothing to re-check.
        return _trusted_track(input=self.input, price=self.price, since=self.since, seen=seen)

    def still_for(self, now: float) -> float:
        """How long the price has stood still, never counted past ``now`` (a read stamped
        after ``now`` proves nothing about the time since)."""
        return max(0.0, min(self.seen, now) - self.since)


_trusted_track = trusted(PriceTrack)


@dataclass(frozen=True, slots=True)
class StalePrice:
    """A price that looks fresh and is not. ``since``: the time (on the reader's clock) from
    which it cannot be trusted."""

    input: str
    reason: str
    since: float
    values: Mapping[str, float] = field(default_factory=dict, hash=False)


def published_step(price: float) -> float:
    """The finest step ``price`` is written to (``90009.1`` -> 0.1): the resolution of a feed
    whose tick size is not known. Trailing zeros the venue sent are lost in the float, which
    only makes the step coarser, so a price is taken for frozen later, never sooner."""
    text = repr(float(price))
    if "e" in text or "E" in text:
        mantissa, exponent = text.lower().split("e")
        decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
        return 10.0 ** (int(exponent) - decimals)
    decimals = len(text.split(".")[1].rstrip("0")) if "." in text else 0
    return 10.0 ** (-decimals)


def frozen(
    track: PriceTrack,
    *,
    now: float,
    volatility: float,
    window_s: float,
    tick: float | None,
    limits: RiskLimits,
) -> StalePrice | None:
    """``track`` if its price has stood still longer than its volatility makes plausible.

    ``volatility`` is the standard deviation of returns over ``window_s``; ``tick`` the price's
    resolution (its published step when ``None``). The move expected over the still span is
    ``price x volatility x sqrt(span / window_s)``; at ``risk.frozen_price_ticks`` ticks or more,
    a price that shows no move at all is frozen.
    """
    ticks = limits.frozen_price_ticks
    if ticks is None:
        return None
    _inputs.positive("volatility", volatility)
    _inputs.positive("window_s", window_s)
    span = track.still_for(now)
    if span < limits.frozen_price_min_s:
        return None
    step = published_step(track.price) if tick is None else _inputs.positive("tick", tick)
    return _frozen_for(track, span, volatility, window_s, step, ticks)


def _frozen_for(
    track: PriceTrack, span: float, volatility: float, window_s: float, step: float, ticks: float
) -> StalePrice | None:
    """:func:`frozen` past its checks: ``track`` has stood still for ``span`` seconds."""
    expected = track.price * volatility * math.sqrt(span / window_s)
    if expected < ticks * step:
        return None
    return StalePrice(
        track.input,
        f"{track.input} has not moved from {track.price:,.10g} in {span:,.1f} s while its "
        f"volatility predicts a move of {expected / step:,.0f} ticks (a frozen feed); policy "
        f"allows {ticks:g} (risk.frozen_price_ticks)",
        track.since,
        {"still_s": span, "expected_ticks": expected / step, "max_ticks": ticks},
    )


def mark_out_of_band(
    mark: float | None,
    index: float | None,
    last: float | None,
    *,
    since: float,
    limits: RiskLimits,
) -> StalePrice | None:
    """The mark, if it sits further than ``risk.max_mark_gap_pct`` from both the index and the
    last price (``since``: when the three last agreed)."""
    band = limits.max_mark_gap_pct
    if band is None or mark is None or index is None or last is None:
        return None
    for name, value in (("mark", mark), ("index", index), ("last", last)):
        _inputs.positive(name, value)
    return _mark_gap(mark, index, last, since, band)


def _mark_gap(
    mark: float, index: float, last: float, since: float, band: float
) -> StalePrice | None:
    """:func:`mark_out_of_band` past its checks (three positive prices, a band)."""
    from_index = abs(mark / index - 1.0) * 100.0
    from_last = abs(mark / last - 1.0) * 100.0
    if from_index <= band or from_last <= band:
        return None
    return StalePrice(
        "mark",
        f"mark {mark:,.10g} is {from_index:.2f} % from the index {index:,.10g} and "
        f"{from_last:.2f} % from the last price {last:,.10g}; policy allows {band:g} % "
        "(risk.max_mark_gap_pct)",
        since,
        {"from_index_pct": from_index, "from_last_pct": from_last, "max_gap_pct": band},
    )


def frozen_prices(
    tracks: Iterable[PriceTrack],
    *,
    volatility: float | None,
    window_s: float,
    tick: float | None,
    limits: RiskLimits,
    now: float,
) -> tuple[StalePrice, ...]:
    """Every one of ``tracks`` (one market's prices) that is :func:`frozen`. Without a
    ``volatility`` none can be judged (the verdict denies for the missing volatility itself)."""
    _inputs.non_negative("now", now)
    if volatility is None:
        return ()
    found = (
        frozen(track, now=now, volatility=volatility, window_s=window_s, tick=tick, limits=limits)
        for track in tracks
    )
    return tuple(stale for stale in found if stale is not None)


def snapshot_staleness(
    tracks: tuple[PriceTrack, ...],
    *,
    mark: float | None,
    index: float | None,
    last: float | None,
    volatility: float | None,
    tick: float,
    limits: RiskLimits,
    now: float,
) -> tuple[StalePrice, ...]:
    """:func:`frozen_prices` then :func:`mark_out_of_band`, for inputs a validated
    :class:`~safeguard.risk._models.MarketSnapshot` and :class:`~safeguard._config.RiskLimits`
    already checked (prices and volatility positive, the tick and the window positive, ``now``
    a finite time >= 0): the verdict's, on every order, without checking them again."""
    found: list[StalePrice] = []
    ticks = limits.frozen_price_ticks
    if ticks is not None and volatility is not None:
        window_s, min_s = limits.volatility_window_s, limits.frozen_price_min_s
        for track in tracks:
            span = track.still_for(now)
            if span >= min_s:
                stale = _frozen_for(track, span, volatility, window_s, tick, ticks)
                if stale is not None:
                    found.append(stale)
    band = limits.max_mark_gap_pct
    if band is not None and mark is not None and index is not None and last is not None:
        gap = _mark_gap(mark, index, last, now, band)
        if gap is not None:
            found.append(gap)
    return tuple(found)


def untrusted_since(stale: Iterable[StalePrice]) -> float | None:
    """The earliest time from which any of ``stale`` cannot be trusted (``None``: all fresh)."""
    times = [s.since for s in stale]
    return min(times) if times else None


__all__ = [
    "PRICE_INPUTS",
    "PriceTrack",
    "StalePrice",
    "frozen",
    "frozen_prices",
    "mark_out_of_band",
    "published_step",
    "untrusted_since",
]
