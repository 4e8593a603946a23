"""Where the venue's prices come from: an index, a contract (book) price, and the mark.

Three prices, as on a real perpetual venue:

- the **index**: the spot reference. Either a seeded process (geometric Brownian motion whose
  volatility switches between regimes, with Poisson jumps) or a replay of a CSV of prices;
- the **contract price**: where the venue's own book trades, ``index * (1 + premium)`` with a
  mean-reverting premium, displaced further while a spike is active (a wick on this venue
  alone, the index unmoved);
- the **mark**: ``index + basis`` where the basis is the contract-minus-index spread smoothed
  by an exponential moving average over ``mark_window_s``. A long window makes the mark lag a
  spike of the contract price; that lag is why stops on ``MARK_PRICE`` survive wicks that
  trigger stops on ``CONTRACT_PRICE``, and why liquidations follow the mark.

Every draw comes from the ``random.Random`` handed in, never the global one.
"""

from __future__ import annotations

import csv
import math
import random
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path

_SECONDS_PER_YEAR = 365.0 * 86_400.0


@dataclass(frozen=True, slots=True)
class RegimeSpec:
    """A volatility regime: annualised volatility and how long the market stays in it."""

    name: str
    annual_vol: float
    mean_duration_s: float


class IndexProcess:
    """Seeded GBM with regime switching and jumps. ``step(dt)`` returns the new index."""

    def __init__(
        self,
        initial: float,
        rng: random.Random,
        regimes: tuple[RegimeSpec, ...],
        *,
        jumps_per_day: float,
        jump_sigma: float,
    ) -> None:
        if not initial > 0 or math.isinf(initial):
            raise ValueError(f"initial index must be a finite price > 0, got {initial!r}")
        if not regimes:
            raise ValueError("regimes must hold at least one regime")
        self.price = initial
        self.regime = 0
        self._rng = rng
        self._regimes = regimes
        self._jump_rate = jumps_per_day / 86_400.0
        self._jump_sigma = jump_sigma
        self._dt = -1.0
        self._per_step: list[tuple[float, float, float]] = []
        self.market_loading = 0.0
        """``sqrt(correlation)``: how much of each step's shock is the market-wide one."""
        self.market_shock = 0.0
        """This step's market-wide standard normal draw (the engine sets it each step)."""

    @property
    def regime_name(self) -> str:
        return self._regimes[self.regime].name

    def step(self, dt: float) -> float:
        if dt != self._dt:
            # Per-regime (switch probability, sigma, drift) for this step length; the engine's
            # step is fixed, so this runs once.
            self._dt = dt
            self._per_step = [
                (
                    1.0 - math.exp(-dt / r.mean_duration_s),
                    r.annual_vol * math.sqrt(dt / _SECONDS_PER_YEAR),
                    -0.5 * r.annual_vol**2 * dt / _SECONDS_PER_YEAR,
                )
                for r in self._regimes
            ]
        rng = self._rng
        switch, sigma, drift = self._per_step[self.regime]
        if len(self._regimes) > 1 and rng.random() < switch:
            others = [i for i in range(len(self._regimes)) if i != self.regime]
            self.regime = rng.choice(others)
            switch, sigma, drift = self._per_step[self.regime]
        shock = rng.gauss(0.0, 1.0)
        loading = self.market_loading
        if loading:
            shock = loading * self.market_shock + math.sqrt(1.0 - loading * loading) * shock
        log_return = drift + sigma * shock
        if self._jump_rate > 0 and rng.random() < self._jump_rate * dt:
            log_return += rng.gauss(0.0, self._jump_sigma)
        self.price *= math.exp(log_return)
        return self.price


class ReplaySeries:
    """Index prices replayed from a CSV: the price at time ``t`` is the last row at or before it.

    The file has a header naming a time column and a ``price`` column. The time column is
    ``offset_s`` (seconds from the start of the simulation) or ``timestamp_ms`` / ``timestamp``
    (epoch milliseconds / seconds, re-based so the first row is offset 0). Rows must be in
    time order with finite prices > 0; a bad row is a ``ValueError`` naming its line.
    """

    def __init__(self, offsets: list[float], prices: list[float]) -> None:
        if not offsets or len(offsets) != len(prices):
            raise ValueError("a replay needs at least one (offset, price) row")
        self._offsets = offsets
        self._prices = prices

    @classmethod
    def from_csv(cls, path: str | Path) -> ReplaySeries:
        file = Path(path)
        with file.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            fields = reader.fieldnames or []
            scales = {"offset_s": 1.0, "timestamp_ms": 1e-3, "timestamp": 1.0}
            column = next((name for name in scales if name in fields), "")
            scale = scales.get(column, 0.0)
            if not column:
                raise ValueError(
                    f"{file}: needs a time column offset_s, timestamp_ms or timestamp; "
                    f"found {fields}"
                )
            if "price" not in fields:
                raise ValueError(f"{file}: needs a price column; found {fields}")
            offsets: list[float] = []
            prices: list[float] = []
            for line, row in enumerate(reader, start=2):
                try:
                    when = float(row[column]) * scale
                    price = float(row["price"])
                except (TypeError, ValueError):
                    raise ValueError(f"{file}:{line}: {column} and price must be numbers") from None
                if not math.isfinite(when) or not (math.isfinite(price) and price > 0):
                    raise ValueError(f"{file}:{line}: {column} finite, price finite and > 0")
                if offsets and when < offsets[-1]:
                    raise ValueError(f"{file}:{line}: {column} goes backwards")
                offsets.append(when)
                prices.append(price)
        if not offsets:
            raise ValueError(f"{file}: no rows")
        if column != "offset_s":
            start = offsets[0]
            offsets = [o - start for o in offsets]
        return cls(offsets, prices)

    @property
    def initial(self) -> float:
        return self._prices[0]

    def price_at(self, offset_s: float) -> float:
        index = bisect_right(self._offsets, offset_s) - 1
        return self._prices[max(index, 0)]


class PriceFeed:
    """One symbol's index, contract and mark prices, stepped by the engine."""

    def __init__(
        self,
        *,
        index: IndexProcess | None,
        replay: ReplaySeries | None,
        rng: random.Random,
        mark_window_s: float,
        premium_mean: float,
        premium_sd: float,
        premium_reversion_s: float,
    ) -> None:
        if (index is None) == (replay is None):
            raise ValueError("a price feed needs exactly one source: a process or a replay")
        self._process = index
        self._replay = replay
        self._rng = rng
        self.mark_window_s = mark_window_s
        self._premium_mean = premium_mean
        self._premium_reversion_s = premium_reversion_s
        # OU volatility giving a stationary standard deviation of premium_sd.
        self._premium_vol = premium_sd * math.sqrt(2.0 / premium_reversion_s)
        start = replay.initial if replay is not None else index.price  # type: ignore[union-attr]
        self.index = start
        self.premium = premium_mean
        self.spike_factor = 1.0
        self.impact = 1.0
        """Displacement of the contract price by forced flow (a factor), fading back to 1."""
        self.impact_half_life_s = 60.0
        self.basis = start * premium_mean
        self.mark = self.index + self.basis
        self._spikes: list[tuple[float, float, float]] = []  # (start, end, factor)
        self._dt = -1.0
        self._theta = 0.0
        self._shock = 0.0
        self._alpha = 1.0

    @property
    def contract(self) -> float:
        """Where the venue's own book is centred."""
        return self.index * (1.0 + self.premium) * self.spike_factor

    @property
    def regime(self) -> str:
        return self._process.regime_name if self._process is not None else "replay"

    def schedule_spike(self, start: float, pct: float, duration_s: float) -> None:
        """Displace the contract price by ``pct`` % from ``start`` for ``duration_s``."""
        self._spikes.append((start, start + duration_s, 1.0 + pct / 100.0))
        self._spikes.sort()

    def market_shock(self, draw: float) -> None:
        """This step's market-wide draw, for an index process loaded on it (a replay ignores
        it)."""
        if self._process is not None:
            self._process.market_shock = draw

    def displace(self, ratio: float) -> None:
        """Move the contract price by ``ratio`` from the next step on (forced flow's impact)."""
        if not (math.isfinite(ratio) and ratio > 0):
            raise ValueError(f"ratio must be a finite number > 0, got {ratio!r}")
        self.impact *= ratio

    def step(self, now: float, offset_s: float, dt: float) -> None:
        if self._replay is not None:
            self.index = self._replay.price_at(offset_s)
        else:
            self.index = self._process.step(dt)  # type: ignore[union-attr]
        if dt != self._dt:
            self._dt = dt
            self._theta = dt / self._premium_reversion_s
            self._shock = self._premium_vol * math.sqrt(dt)
            window = self.mark_window_s
            self._alpha = 1.0 if window <= 0 else 1.0 - math.exp(-dt / window)
        self.premium += self._theta * (self._premium_mean - self.premium) + self._shock * (
            self._rng.gauss(0.0, 1.0)
        )
        factor = 1.0
        if self.impact != 1.0:
            left = (self.impact - 1.0) * 0.5 ** (dt / self.impact_half_life_s)
            self.impact = 1.0 + left if abs(left) > 1e-12 else 1.0
            factor = self.impact
        if self._spikes:
            self._spikes = [s for s in self._spikes if s[1] > now]
            for start, _end, spike in self._spikes:
                if start <= now:
                    factor *= spike
        self.spike_factor = factor
        index = self.index
        target = index * (1.0 + self.premium) * factor - index
        self.basis += self._alpha * (target - self.basis)
        # A lagging basis must never carry the mark through zero after an index collapse.
        self.mark = max(index + self.basis, index * 0.01)


__all__ = ["IndexProcess", "PriceFeed", "RegimeSpec", "ReplaySeries"]
