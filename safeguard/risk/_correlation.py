"""Correlation of returns, estimated from prices the guard has seen, and the history it keeps.

The cascade (:mod:`safeguard.risk._cascade`) moves every symbol with the shocked one through a
correlation. A configured number (``risk.stress.cascade_correlation``) is one guess for every
pair; :func:`estimate_correlation` measures each pair from recent returns instead, and
:class:`PriceHistory` keeps the prices to measure them from (the marks the guard already reads:
no request of its own).

**Samples.** Time is cut into buckets of ``interval_s``; a symbol's price in a bucket is the
last one seen in it (its close). A return is ``ln(p_k / p_{k-1})`` between *consecutive*
buckets, so two symbols' returns always span the same interval; a pair is measured on the
buckets where both have a return. A bucket the guard saw no price in breaks the returns around
it (no return is stretched over a gap).

**Fail closed.** Too few common returns, a symbol whose price did not move at all (a frozen
feed or a halted market), or anything not finite: that pair gets the *fallback* (the configured,
already stressed correlation), and the estimate says so in :attr:`PairEstimate.fallback_reason`.
Never a number the data does not support.

**Shrinkage.** A pair measured on ``n`` returns, between ``min_samples`` and ``full_samples``,
is shrunk toward the fallback: ``w * measured + (1 - w) * fallback`` with
``w = n / full_samples``; from ``full_samples`` on the measurement stands alone. A correlation
from thirty one-minute returns is noisy (its standard error is about ``1 / sqrt(n)``).

**Stress.** The measured correlation is of calm markets; in a crash correlations move toward
one (the hedges stop hedging). ``toward_one`` moves each measured value that share of the way
to one (``rho + t * (1 - rho)``) before the shrinkage, so a well-measured pair is stressed and a
poorly measured one lands on the configured stressed value.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from safeguard._config import StressConfig
from safeguard.risk import _inputs
from safeguard.risk._cascade import Correlation


@dataclass(frozen=True, slots=True)
class PairEstimate:
    """One pair's correlation and where it came from."""

    a: str
    b: str
    rho: float
    """The value the cascade uses: stressed, shrunk, or the fallback."""
    measured: float | None
    """Pearson correlation of the pair's common returns (``None``: not measurable)."""
    samples: int
    """Common returns the measurement used."""
    weight: float
    """Share of ``rho`` that is the (stressed) measurement; the rest is the fallback."""
    fallback_reason: str | None = None
    """Why the pair fell back to the configured correlation (``None``: it was measured)."""


@dataclass(frozen=True, slots=True)
class CorrelationEstimate:
    """Every pair's estimate, as the :class:`~safeguard.risk._cascade.Correlation` the cascade
    takes (pairs not estimated get the fallback as its default)."""

    correlation: Correlation
    pairs: tuple[PairEstimate, ...]
    fallback: float

    @property
    def fallbacks(self) -> tuple[PairEstimate, ...]:
        return tuple(pair for pair in self.pairs if pair.fallback_reason is not None)

    def describe(self, among: Iterable[str] | None = None) -> str:
        """Each pair (of ``among``, default all) for a finding or a table: the value and how
        it was reached."""
        wanted = None if among is None else set(among)
        parts = []
        for pair in self.pairs:
            if wanted is not None and not (pair.a in wanted and pair.b in wanted):
                continue
            where = f"{pair.a}~{pair.b} {pair.rho:.2f}"
            if pair.fallback_reason is not None:
                parts.append(f"{where} (configured: {pair.fallback_reason})")
            else:
                assert pair.measured is not None
                parts.append(
                    f"{where} (measured {pair.measured:.2f} on {pair.samples} returns, "
                    f"weight {pair.weight:.2f})"
                )
        return "; ".join(parts) if parts else f"no pair (configured {self.fallback:g})"


def log_returns(prices: Mapping[int, float]) -> dict[int, float]:
    """``ln(p_k / p_{k-1})`` for every bucket ``k`` whose predecessor also has a price; a price
    that is not finite and positive has no returns on either side."""
    good = {k: p for k, p in prices.items() if _price(p)}
    return {k: math.log(p / good[k - 1]) for k, p in good.items() if k - 1 in good}


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """The sample correlation of ``x`` and ``y`` (same length), or ``None`` when it is not
    defined: fewer than two points, a series with no variance, or anything not finite."""
    n = len(x)
    if n != len(y):
        raise ValueError(f"pearson needs series of one length, got {n} and {len(y)}")
    if n < 2:
        return None
    # Two passes (means first): returns are small and alike, where one-pass sums of squares
    # lose their digits. ``sumprod`` would be faster; it is Python 3.12.
    mean_x = math.fsum(x) / n
    mean_y = math.fsum(y) / n
    dx = [v - mean_x for v in x]
    dy = [v - mean_y for v in y]
    sxx: float = sum(map(operator.mul, dx, dx))
    syy: float = sum(map(operator.mul, dy, dy))
    sxy: float = sum(map(operator.mul, dx, dy))
    if not (math.isfinite(sxx) and math.isfinite(syy) and math.isfinite(sxy)):
        return None
    # Relative to the series' own scale: float noise in a flat series is not a variance.
    if sxx <= _FLAT * sum(map(operator.mul, x, x)) or syy <= _FLAT * sum(map(operator.mul, y, y)):
        return None
    if sxx == 0.0 or syy == 0.0:
        return None
    rho = sxy / math.sqrt(sxx * syy)
    return min(1.0, max(-1.0, rho))


_FLAT = 1e-20


def estimate_correlation(
    prices: Mapping[str, Mapping[int, float]],
    *,
    fallback: float,
    min_samples: int,
    full_samples: int,
    toward_one: float = 0.0,
    symbols: Iterable[str] | None = None,
    known: Mapping[tuple[str, str], PairEstimate] | None = None,
) -> CorrelationEstimate:
    """Each pair of ``symbols`` (default: every symbol of ``prices``) from its common returns.

    ``prices`` maps a symbol to its closes by bucket index (:meth:`PriceHistory.window`).
    See the module's description for the fallback, the shrinkage and ``toward_one``.
    ``known``: pairs (keyed ``(a, b)`` with ``a < b``) already estimated from these same
    prices and settings, taken as they are (the pairs grow as the square of the symbols: a
    caller judging orders in many symbols against one set of prices measures each pair once).
    """
    rho_fallback = _inputs.number("fallback", fallback)
    if not -1.0 <= rho_fallback <= 1.0:
        raise ValueError(f"fallback must be a correlation in [-1, 1], got {fallback!r}")
    least = _inputs.count("min_samples", min_samples)
    full = _inputs.count("full_samples", full_samples)
    if least < 2:
        raise ValueError(f"min_samples must be at least 2 (a correlation needs two), got {least}")
    if full < least:
        raise ValueError(f"full_samples ({full}) must not be below min_samples ({least})")
    stress = _inputs.number("toward_one", toward_one)
    if not 0.0 <= stress <= 1.0:
        raise ValueError(f"toward_one must be in [0, 1], got {toward_one!r}")
    # Sorted: each pair is named one way (``a < b``) whatever order the symbols came in.
    names = sorted(set(prices if symbols is None else symbols))
    reuse = known or {}
    returns: dict[str, dict[int, float]] = {}

    def returns_of(name: str) -> dict[int, float]:
        if name not in returns:
            returns[name] = log_returns(prices.get(name, {}))
        return returns[name]

    estimates: list[PairEstimate] = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            pair = reuse.get((a, b))
            if pair is None:
                pair = _pair(a, b, returns_of(a), returns_of(b), rho_fallback, least, full, stress)
            estimates.append(pair)
    correlation = Correlation(rho_fallback, {(e.a, e.b): e.rho for e in estimates})
    return CorrelationEstimate(correlation, tuple(estimates), rho_fallback)


def estimate_for_policy(
    closes: Mapping[str, Mapping[int, float]],
    config: StressConfig,
    symbols: Iterable[str],
    known: Mapping[tuple[str, str], PairEstimate] | None = None,
) -> CorrelationEstimate:
    """:func:`estimate_correlation` with the policy's settings (``risk.stress``): what the
    verdict's cascade uses and what the guard reports."""
    return estimate_correlation(
        closes,
        fallback=config.cascade_correlation,
        min_samples=config.correlation_min_samples,
        full_samples=config.correlation_full_samples,
        toward_one=config.correlation_toward_one,
        symbols=symbols,
        known=known,
    )


def _pair(
    a: str,
    b: str,
    returns_a: Mapping[int, float],
    returns_b: Mapping[int, float],
    fallback: float,
    least: int,
    full: int,
    stress: float,
) -> PairEstimate:
    common = sorted(returns_a.keys() & returns_b.keys())
    n = len(common)
    if n < least:
        return PairEstimate(a, b, fallback, None, n, 0.0, f"{n} common returns, {least} needed")
    measured = pearson([returns_a[k] for k in common], [returns_b[k] for k in common])
    if measured is None:
        flat = [s for s, r in ((a, returns_a), (b, returns_b)) if _flat(r[k] for k in common)]
        why = (
            f"{', '.join(flat)}'s returns did not vary over {n} buckets (a frozen, halted or "
            "pegged market)"
            if flat
            else f"no correlation defined over {n} returns"
        )
        return PairEstimate(a, b, fallback, None, n, 0.0, why)
    weight = min(1.0, n / full)
    stressed = measured + stress * (1.0 - measured)
    rho = weight * stressed + (1.0 - weight) * fallback
    return PairEstimate(a, b, min(1.0, max(-1.0, rho)), measured, n, weight)


def _flat(values: Iterable[float]) -> bool:
    seen = list(values)
    return max(seen) - min(seen) <= 1e-15 * max(1.0, *(abs(v) for v in seen))


def _price(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0.0
    )


@dataclass
class PriceHistory:
    """Per symbol, the last price seen in each bucket of ``interval_s`` seconds, for the last
    ``max_buckets`` buckets. Plain state: the caller hands in the time (the guard's clock).

    A price that is not finite and positive is not recorded; a time before the symbol's last
    recorded reading (a clock that stepped back) is not recorded either, until the clock has
    passed that reading again: a close is never rewritten by a reading stamped earlier. Once
    the clock has stepped back (a refused reading, or :meth:`clock_stepped_back` from a caller
    whose own time stands still until the clock catches up), the buckets after the step hold
    prices from later than their place says: each symbol's first reading recorded after it
    drops the close just before its bucket, so no return spans the jump.

    :meth:`window` hands out *completed* buckets only: the current one's close is not final
    (and its return would span part of an interval). So a window changes once per interval,
    and an estimate made from it can be kept that long (:attr:`revision`).
    """

    interval_s: float
    max_buckets: int
    _closes: dict[str, dict[int, float]] = field(default_factory=dict)
    _last_seen: dict[str, float] = field(default_factory=dict)
    """Per symbol, the time of the last recorded reading."""
    _newest: int | None = None
    """The latest bucket a reading or a window has reached."""
    _after_step: set[str] = field(default_factory=set)
    """Symbols whose next recorded reading follows a step back of the clock."""
    revision: int = 0
    """Bumped by a reading into a bucket some window may already have handed out as complete
    (only a clock that stepped back does that): a window memoised on ``(bucket, revision)``
    is the same window."""

    def __post_init__(self) -> None:
        _inputs.positive("interval_s", self.interval_s)
        if _inputs.count("max_buckets", self.max_buckets) < 2:
            raise ValueError("max_buckets must be at least 2 (a return needs two closes)")

    def bucket(self, now: float) -> int:
        """The bucket ``now`` falls in; :class:`ValueError` when there is none (a time over
        an interval too small to divide it into: the quotient overflows)."""
        quotient = now / self.interval_s
        if not math.isfinite(quotient):
            raise ValueError(f"no bucket of {self.interval_s:g} s holds the time {now!r}")
        return math.floor(quotient)

    def observe(self, symbol: str, price: object, now: float) -> bool:
        """Record ``price`` for ``symbol`` at ``now``; ``False`` when it was not recorded."""
        if not _price(price) or not (isinstance(now, int | float) and math.isfinite(now)):
            return False
        assert isinstance(price, int | float)
        if not math.isfinite(now / self.interval_s):
            return False  # no bucket holds it (an interval too small for this time)
        last = self._last_seen.get(symbol)
        if last is not None and now < last:
            self.clock_stepped_back()  # this reading's place in time is unknown
            return False
        self._last_seen[symbol] = now
        bucket = self.bucket(now)
        closes = self._closes.setdefault(symbol, {})
        if symbol in self._after_step:
            self._after_step.discard(symbol)
            if closes.pop(bucket - 1, None) is not None:
                self.revision += 1  # a window already handed out may hold that close
        closes[bucket] = float(price)
        if len(closes) > self.max_buckets + 1:
            oldest = bucket - self.max_buckets - 1
            for stale in [k for k in closes if k <= oldest]:
                del closes[stale]
        self._reach(bucket)
        return True

    def clock_stepped_back(self) -> None:
        """The clock went back (seen here, or by whoever stamps the readings): each symbol's
        next recorded reading is later than its bucket says, and drops the close before it."""
        self._after_step.update(self._closes)

    def _reach(self, bucket: int) -> None:
        if self._newest is None or bucket > self._newest:
            self._newest = bucket
        elif bucket < self._newest:
            self.revision += 1

    def window(self, now: float) -> dict[str, dict[int, float]]:
        """Every symbol's closes in the ``max_buckets`` completed buckets before ``now``'s: a
        symbol that stopped trading ages out, and a reading stamped at or after ``now``'s
        bucket is left out."""
        current = self.bucket(now)
        if self._newest is None or current > self._newest:
            self._newest = current
        last = current - 1
        first = last - self.max_buckets + 1
        return {
            symbol: {k: p for k, p in closes.items() if first <= k <= last}
            for symbol, closes in self._closes.items()
        }


__all__ = [
    "CorrelationEstimate",
    "PairEstimate",
    "PriceHistory",
    "estimate_correlation",
    "estimate_for_policy",
    "log_returns",
    "pearson",
]
