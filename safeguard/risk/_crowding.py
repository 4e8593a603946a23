"""Crowding: basis, funding, its trend, realized volatility and open interest, read together.

No one of these says a market is crowded: a basis opens in a fast move, funding runs high in a
steady trend, open interest grows as a market matures. Together they do: a mark far above its
index, longs paying more every interval, open interest piling up and the price swinging is a
crowd of leveraged longs, the fuel of a long squeeze. :func:`crowding_score` turns a symbol's
recent readings into one score in [0, 1] with its parts, each part the reading over the level
the policy counts as fully crowded (``risk.crowding``), capped at one:

- ``basis``: ``|mark - index| / index`` over ``basis_full_pct``;
- ``funding``: ``|rate|`` over ``funding_full_rate`` (per interval);
- ``funding_trend``: how far the rate moved over the window *toward* the crowded side, over
  ``funding_trend_full_rate`` (a rate falling back toward zero counts nothing);
- ``volatility``: realized volatility (per ``risk.volatility_window_s``) over
  ``volatility_full``;
- ``open_interest``: open interest growth over the window (``now / oldest - 1``) over
  ``open_interest_growth_full`` (shrinking counts nothing).

The score is the weighted mean of the parts. Its ``side`` is who is crowded: +1 longs (mark
over index, longs paying funding), -1 shorts, 0 when basis and funding disagree or are flat.
The verdict tightens leverage and size caps for orders that add to the crowded side
(:func:`tightening`). Without open interest (a feed that has none) the score is the mean of
the other four. Everything here is pure; :class:`CrowdingMonitor` only keeps the readings.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from safeguard._config import CrowdingConfig
from safeguard.risk import _inputs

PARTS = ("basis", "funding", "funding_trend", "volatility", "open_interest")


@dataclass(frozen=True, slots=True)
class CrowdingReading:
    """One observation of a symbol: ``at`` epoch seconds; ``volatility`` per the policy's
    window (0.01 = 1 %); ``open_interest`` in any unit, the same for every reading."""

    at: float
    mark: float
    index: float
    funding_rate: float
    volatility: float
    open_interest: float | None = None
    """``None`` when the feed has none: the score is then made of the other parts."""

    def __post_init__(self) -> None:
        _inputs.non_negative("at", self.at)
        _inputs.positive("mark", self.mark)
        _inputs.positive("index", self.index)
        if abs(_inputs.number("funding_rate", self.funding_rate)) >= 1.0:
            raise ValueError(
                f"funding_rate must be a fraction in (-1, 1), got {self.funding_rate!r}"
            )
        _inputs.non_negative("volatility", self.volatility)
        if self.open_interest is not None:
            _inputs.non_negative("open_interest", self.open_interest)


@dataclass(frozen=True, slots=True)
class CrowdingScore:
    """A symbol's crowding: ``score`` in [0, 1], ``side`` (+1 longs, -1 shorts, 0 unclear) and
    each part's contribution in [0, 1] (:data:`PARTS`)."""

    score: float
    side: int
    parts: Mapping[str, float]
    at: float


def _part(value: float, full: float) -> float:
    return min(max(value / full, 0.0), 1.0)


def crowding_score(readings: Sequence[CrowdingReading], config: CrowdingConfig) -> CrowdingScore:
    """The score of ``readings`` (oldest first, at least one): the newest gives the levels, the
    oldest the trends."""
    if isinstance(readings, str | bytes) or not readings:
        raise ValueError("crowding needs at least one reading")
    for index, reading in enumerate(readings):
        if not isinstance(reading, CrowdingReading):
            raise ValueError(f"readings[{index}] must be a CrowdingReading, got {reading!r}")
    first, last = readings[0], readings[-1]
    if last.at < first.at:
        raise ValueError("readings must be oldest first")
    basis = (last.mark - last.index) / last.index
    rate = last.funding_rate
    # Who is crowded: the side the basis and the funding both point at (each scaled to its
    # full level, so neither wins by its unit alone).
    lean = basis / (config.basis_full_pct / 100.0) + rate / config.funding_full_rate
    side = 0 if lean == 0.0 else (1 if lean > 0.0 else -1)
    trend = (rate - first.funding_rate) * side
    parts = {
        "basis": _part(abs(basis), config.basis_full_pct / 100.0),
        "funding": _part(abs(rate), config.funding_full_rate),
        "funding_trend": _part(trend, config.funding_trend_full_rate),
        "volatility": _part(last.volatility, config.volatility_full),
    }
    first_oi, last_oi = first.open_interest, last.open_interest
    if first_oi is not None and last_oi is not None:
        growth = last_oi / first_oi - 1.0 if first_oi > 0 else 0.0
        parts["open_interest"] = _part(growth, config.open_interest_growth_full)
    given: dict[str, float] = {str(name): weight for name, weight in config.weights.items()}
    weights = {name: given.get(name, 1.0) for name in parts}
    total = sum(weights.values())
    score = sum(parts[name] * weights[name] for name in parts) / total if total > 0 else 0.0
    return CrowdingScore(score, side, parts, last.at)


def tightening(score: CrowdingScore | None, config: CrowdingConfig) -> float:
    """The factor (in (0, 1]) the verdict multiplies leverage and size caps by: 1 up to
    ``tighten_from``, falling linearly to ``1 - max_tightening`` at a score of one."""
    if score is None or score.score <= config.tighten_from:
        return 1.0
    span = 1.0 - config.tighten_from
    reach = 1.0 if span <= 0.0 else (score.score - config.tighten_from) / span
    return 1.0 - config.max_tightening * min(reach, 1.0)


class CrowdingMonitor:
    """Per symbol, the readings of the last ``config.window_s`` seconds and their score.

    Not thread-safe (one feed per monitor); the arithmetic is :func:`crowding_score`'s.
    """

    def __init__(self, config: CrowdingConfig) -> None:
        if not isinstance(config, CrowdingConfig):
            raise ValueError(f"config must be a CrowdingConfig, got {type(config).__name__}")
        self.config = config
        self._readings: dict[str, deque[CrowdingReading]] = {}

    def observe(self, symbol: str, reading: CrowdingReading) -> CrowdingScore:
        """Add ``reading`` (a reading older than the newest is refused) and score the window."""
        if not isinstance(reading, CrowdingReading):
            raise ValueError(f"reading must be a CrowdingReading, got {reading!r}")
        kept = self._readings.setdefault(symbol, deque())
        if kept and reading.at < kept[-1].at:
            raise ValueError(
                f"{symbol}: a reading at {reading.at!r} is older than the last ({kept[-1].at!r})"
            )
        kept.append(reading)
        horizon = reading.at - self.config.window_s
        while len(kept) > 1 and kept[1].at <= horizon:
            kept.popleft()  # keep one reading at or before the horizon: the trend's start
        return crowding_score(tuple(kept), self.config)

    def score(self, symbol: str) -> CrowdingScore | None:
        kept = self._readings.get(symbol)
        return None if not kept else crowding_score(tuple(kept), self.config)


__all__ = [
    "PARTS",
    "CrowdingMonitor",
    "CrowdingReading",
    "CrowdingScore",
    "crowding_score",
    "tightening",
]
