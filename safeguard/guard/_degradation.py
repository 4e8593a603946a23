"""Venue health as a state: NORMAL, DEGRADED or SEVERE, with hysteresis and a cooling period.

Four signals, each compared with a DEGRADED and a SEVERE threshold from
:class:`~safeguard._config.DegradationConfig`: the worst endpoint's 95th-percentile latency, the
error rate and the throttle rate over ``window_s``, and the age of the market data (which keeps
growing while no fresh data arrives, so a frozen feed degrades the state on its own).

Getting worse is immediate: the state jumps to the worst level any signal reaches. Getting
better is deliberate, so the state does not flap on a noisy signal: every signal must have
fallen below ``recovery_ratio`` x the threshold it crossed, the state must have held for
``cooling_period_s``, and it steps down one level at a time (SEVERE -> DEGRADED -> NORMAL),
each step with its own cooling period.

Pure: time is an argument; a state change is reported as a
:class:`~safeguard.guard._events.StateChangeEvent` naming the signal that caused it.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from safeguard._config import DegradationConfig
from safeguard.guard._events import Hooks, StateChangeEvent
from safeguard.risk import _inputs


class VenueHealth(StrEnum):
    NORMAL = "NORMAL"
    DEGRADED = "DEGRADED"
    SEVERE = "SEVERE"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {VenueHealth.NORMAL: 0, VenueHealth.DEGRADED: 1, VenueHealth.SEVERE: 2}
_BY_RANK = {rank: health for health, rank in _RANK.items()}


class RequestOutcome(StrEnum):
    OK = "ok"
    ERROR = "error"
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class EndpointLatency:
    samples: int
    median_s: float
    p95_s: float


@dataclass(frozen=True, slots=True)
class HealthMetrics:
    """The signals at one moment. A value is None while there are too few samples."""

    latency: dict[str, EndpointLatency]
    latency_p95_s: float | None
    """The worst p95 among endpoints with enough samples."""
    error_rate: float | None
    throttle_rate: float | None
    data_age_s: float | None
    samples: int


_MAX_SAMPLES_PER_ENDPOINT = 10_000


class _Series:
    """One endpoint's samples in arrival order, plus their latencies kept sorted, so a
    percentile is an index rather than a sort on every request. The monitor adds and drops
    samples (it keeps running totals over every series)."""

    __slots__ = ("errors", "samples", "sorted", "throttled")

    def __init__(self) -> None:
        self.samples: deque[tuple[float, float, RequestOutcome]] = deque()
        self.sorted: list[float] = []
        self.errors = 0
        self.throttled = 0


class HealthMonitor:
    """Watches one venue's health. Thread-safe; every method takes ``now`` (epoch seconds).

    The client calls :meth:`record` after every answer (and every failure), and
    :meth:`record_data_age` whenever it learns how old its market data is; :meth:`state`
    says which fill model and which orders apply. State changes go to ``hooks`` (and
    ``on_change``) as they happen.
    """

    def __init__(
        self,
        config: DegradationConfig | None = None,
        *,
        hooks: Hooks | None = None,
        on_change: Callable[[StateChangeEvent], None] | None = None,
    ) -> None:
        self.config = config or DegradationConfig()
        self._hooks = hooks
        # A private Hooks gives ``on_change`` the same isolation: a broken observer is logged.
        self._own_hooks = Hooks()
        if on_change is not None:
            self._own_hooks.subscribe(None, on_change)
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._data_age: tuple[float, float] | None = None  # (age at report, when reported)
        self._state = VenueHealth.NORMAL
        self._since: float | None = None
        self._thresholds: tuple[tuple[str, float, float], ...] = ()
        self._thresholds_of: DegradationConfig | None = None
        self._floors: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        # Running totals over every series, so a request costs O(1) rather than a pass over
        # every endpoint: samples, errors, throttles, each ripe series' p95 (the worst is the
        # signal), and the oldest sample's time (nothing expires before the window passes it).
        self._total = 0
        self._errors = 0
        self._throttled = 0
        self._p95: dict[str, float] = {}
        self._oldest = math.inf
        self._ripe_at = self.config.min_samples

    def record(
        self, endpoint: str, latency_s: float, outcome: RequestOutcome | str, now: float
    ) -> None:
        """One request's latency and outcome (``ok``, ``error`` or ``throttled``)."""
        if not isinstance(endpoint, str) or not endpoint:
            raise ValueError(f"endpoint must be a non-empty str, got {endpoint!r}")
        _inputs.non_negative("latency_s", latency_s)
        _inputs.non_negative("now", now)
        self.record_sample(endpoint, float(latency_s), _outcome(outcome), now)

    def record_sample(
        self, endpoint: str, latency_s: float, outcome: RequestOutcome, now: float
    ) -> None:
        """:meth:`record` for a caller whose values are its own, already checked: a non-empty
        endpoint name, finite non-negative floats from its clock, a :class:`RequestOutcome` (the
        guard's observer, on every request)."""
        with self._lock:
            series = self._series.get(endpoint)
            if series is None:
                series = self._series[endpoint] = _Series()
            self._add(endpoint, series, now, latency_s, outcome)
            event = self._evaluate(now)
        if event is not None:
            self._emit(event)

    def record_data_age(self, age_s: float, now: float) -> None:
        """The market data in use was ``age_s`` old at ``now``; it ages on from there."""
        _inputs.non_negative("age_s", age_s)
        _inputs.non_negative("now", now)
        with self._lock:
            self._data_age = (float(age_s), now)
            event = self._evaluate(now)
        self._emit(event)

    def state(self, now: float) -> VenueHealth:
        """The state at ``now``, after any transition the signals call for."""
        _inputs.non_negative("now", now)
        with self._lock:
            event = self._evaluate(now)
            current = self._state
        self._emit(event)
        return current

    def metrics(self, now: float) -> HealthMetrics:
        """The signals at ``now`` (for logs, dashboards and the tests)."""
        _inputs.non_negative("now", now)
        with self._lock:
            return self._metrics(now)

    # --- internals (called with the lock held) -------------------------------------------

    def _metrics(self, now: float) -> HealthMetrics:
        self._expire(now)
        enough = self.config.min_samples
        latency: dict[str, EndpointLatency] = {}
        total = errors = throttled = 0
        for endpoint, series in self._series.items():
            count = len(series.sorted)
            if not count:
                continue
            latency[endpoint] = EndpointLatency(
                count, _percentile(series.sorted, 0.5), _percentile(series.sorted, 0.95)
            )
            total += count
            errors += series.errors
            throttled += series.throttled
        ripe = [stats.p95_s for stats in latency.values() if stats.samples >= enough]
        age = None
        if self._data_age is not None:
            reported, at = self._data_age
            age = reported + max(0.0, now - at)
        return HealthMetrics(
            latency=latency,
            latency_p95_s=max(ripe) if ripe else None,
            error_rate=errors / total if total >= enough else None,
            throttle_rate=throttled / total if total >= enough else None,
            data_age_s=age,
            samples=total,
        )

    def _values(self, now: float) -> _Values:
        """The four signals' values at ``now``, as :meth:`_metrics` has them, from the running
        totals (no per-endpoint medians or result objects: this runs on every request)."""
        if self._ripe_at != self.config.min_samples:
            self._ripe_at = self.config.min_samples
            for endpoint, series in self._series.items():
                self._rank(endpoint, series)
        if self._oldest < now - self.config.window_s:
            self._expire(now)
        enough = self._ripe_at
        total = self._total
        age = None
        if self._data_age is not None:
            reported, at = self._data_age
            age = reported + max(0.0, now - at)
        return (
            max(self._p95.values()) if self._p95 else None,
            self._errors / total if total >= enough else None,
            self._throttled / total if total >= enough else None,
            age,
        )

    # --- the samples (with the lock held) --------------------------------------------------

    def _add(
        self, endpoint: str, series: _Series, now: float, latency: float, outcome: RequestOutcome
    ) -> None:
        if len(series.samples) >= _MAX_SAMPLES_PER_ENDPOINT:
            self._drop(series)
        series.samples.append((now, latency, outcome))
        self._oldest = min(self._oldest, now)
        bisect.insort(series.sorted, latency)
        self._total += 1
        if outcome is not RequestOutcome.OK:
            error = outcome is RequestOutcome.ERROR
            series.errors += error
            series.throttled += not error
            self._errors += error
            self._throttled += not error
        self._rank(endpoint, series)

    def _drop(self, series: _Series) -> None:
        _, latency, outcome = series.samples.popleft()
        # Equal latencies are interchangeable: remove the rightmost, so a run of equal values
        # (a coarse clock, a simulated one) is trimmed at the end, not shifted from the front.
        del series.sorted[bisect.bisect_right(series.sorted, latency) - 1]
        self._total -= 1
        if outcome is not RequestOutcome.OK:
            error = outcome is RequestOutcome.ERROR
            series.errors -= error
            series.throttled -= not error
            self._errors -= error
            self._throttled -= not error

    def _expire(self, now: float) -> None:
        """Drop every sample older than the window at ``now``."""
        horizon = now - self.config.window_s
        oldest = math.inf
        for endpoint, series in self._series.items():
            samples = series.samples
            if samples and samples[0][0] < horizon:
                while samples and samples[0][0] < horizon:
                    self._drop(series)
                self._rank(endpoint, series)
            if samples and samples[0][0] < oldest:
                oldest = samples[0][0]
        self._oldest = oldest

    def _rank(self, endpoint: str, series: _Series) -> None:
        """Keep ``endpoint``'s p95 among the ripe ones (enough samples), or out of them."""
        count = len(series.sorted)
        if count and count >= self._ripe_at:
            self._p95[endpoint] = _percentile(series.sorted, 0.95)
        else:
            self._p95.pop(endpoint, None)

    def _signals(self, values: _Values) -> list[tuple[str, float | None, float, float]]:
        self._read_config()
        return [
            (name, value, degraded, severe)
            for (name, degraded, severe), value in zip(self._thresholds, values, strict=True)
        ]

    def _read_config(self) -> None:
        c = self.config
        if self._thresholds_of is not c:  # the config is read once, not on every request
            self._thresholds = (
                ("latency_p95", c.degraded_latency_p95_s, c.severe_latency_p95_s),
                ("error_rate", c.degraded_error_rate, c.severe_error_rate),
                ("throttle_rate", c.degraded_throttle_rate, c.severe_throttle_rate),
                ("data_age", c.degraded_data_age_s, c.severe_data_age_s),
            )
            # The lowest value of each signal that reaches a level (DEGRADED or SEVERE).
            low = [min(degraded, severe) for _, degraded, severe in self._thresholds]
            self._floors = (low[0], low[1], low[2], low[3])
            self._thresholds_of = c

    def _evaluate(self, now: float) -> StateChangeEvent | None:
        if self._since is None:
            self._since = now
        values = self._values(now)
        if self._state is VenueHealth.NORMAL:
            # The usual case, on every request: NORMAL stays NORMAL unless a signal reaches a
            # level (nothing to improve, so the recovery thresholds do not matter).
            self._read_config()
            latency, error_rate, throttle_rate, age = values
            lat_floor, error_floor, throttle_floor, age_floor = self._floors
            if (
                (latency is None or latency < lat_floor)
                and (error_rate is None or error_rate < error_floor)
                and (throttle_rate is None or throttle_rate < throttle_floor)
                and (age is None or age < age_floor)
            ):
                return None
        ratio = self.config.recovery_ratio
        worst: tuple[int, str, float, float] = (0, "", 0.0, 0.0)
        holding: tuple[int, str, float, float] = (0, "", 0.0, 0.0)
        for name, value, degraded, severe in self._signals(values):
            if value is None:
                continue
            level = _level(value, degraded, severe, 1.0)
            if level > worst[0]:
                worst = (level, name, value, severe if level == 2 else degraded)
            # A signal still above ratio x threshold keeps the state from improving.
            kept = _level(value, degraded, severe, ratio)
            if kept > holding[0]:
                holding = (kept, name, value, (severe if kept == 2 else degraded) * ratio)
        current = self._state.rank
        if worst[0] > current:
            return self._move(worst[0], worst[1], worst[2], worst[3], now)
        cooled = now - self._since >= self.config.cooling_period_s
        if current > 0 and holding[0] < current and cooled:
            # One step at a time; name the strongest remaining signal (or the one that cleared).
            name, value, threshold = holding[1:] if holding[0] else self._closest(values)
            return self._move(current - 1, name, value, threshold, now)
        return None

    def _move(
        self, rank: int, metric: str, value: float, threshold: float, now: float
    ) -> StateChangeEvent:
        previous = self._state
        self._state = _BY_RANK[rank]
        self._since = now
        return StateChangeEvent(
            at=now,
            previous=str(previous),
            current=str(self._state),
            metric=metric,
            value=value,
            threshold=threshold,
        )

    def listen(self, callback: Callable[[StateChangeEvent], None]) -> Callable[[], None]:
        """Tell ``callback`` of this monitor's own state changes (as ``on_change``, for a
        listener built after the monitor); returns the unsubscribe. Isolated like a hook: a
        failing listener is logged, not raised."""
        return self._own_hooks.subscribe(None, callback)

    def _emit(self, event: StateChangeEvent | None) -> None:
        if event is None:
            return
        if self._hooks is not None:
            self._hooks.emit(event)
        self._own_hooks.emit(event)

    def _closest(self, values: _Values) -> tuple[str, float, float]:
        """For a step down with every signal recovered: the signal nearest its recovery line
        (the one that held the state longest), with that line."""
        ratio = self.config.recovery_ratio
        best = ("none", 0.0, 0.0)
        best_share = -1.0
        for name, value, degraded, _ in self._signals(values):
            if value is None:
                continue
            share = value / (degraded * ratio)
            if share > best_share:
                best, best_share = (name, value, degraded * ratio), share
        return best


_Values = tuple[float | None, float | None, float | None, float | None]
"""latency p95, error rate, throttle rate, data age (None: too few samples / no report)."""

_OUTCOMES = {str(outcome): outcome for outcome in RequestOutcome}


def _outcome(outcome: RequestOutcome | str) -> RequestOutcome:
    try:
        found = _OUTCOMES.get(outcome)  # a dict look-up: RequestOutcome(...) costs a microsecond
    except TypeError:  # unhashable
        found = None
    if found is not None:
        return found
    try:
        return RequestOutcome(outcome)
    except ValueError:
        raise ValueError(f"outcome must be one of ok, error, throttled; got {outcome!r}") from None


def _level(value: float, degraded: float, severe: float, scale: float) -> int:
    if value >= severe * scale:
        return 2
    if value >= degraded * scale:
        return 1
    return 0


def _percentile(ordered: list[float], q: float) -> float:
    # Nearest rank: an observed latency, never an interpolation between two.
    index = max(0, math.ceil(q * len(ordered)) - 1)
    return ordered[index]


__all__ = [
    "EndpointLatency",
    "HealthMetrics",
    "HealthMonitor",
    "RequestOutcome",
    "VenueHealth",
]
