"""Venue health: escalation, hysteresis, cooling, data age, and no flapping on noise."""

from __future__ import annotations

import random
from typing import Any

import pytest

from safeguard._config import DegradationConfig
from safeguard.guard._degradation import HealthMonitor, RequestOutcome, VenueHealth
from safeguard.guard._events import EventKind, Hooks, StateChangeEvent

CONFIG = DegradationConfig(
    window_s=60.0,
    degraded_latency_p95_s=1.0,
    severe_latency_p95_s=3.0,
    degraded_error_rate=0.1,
    severe_error_rate=0.3,
    degraded_throttle_rate=0.05,
    severe_throttle_rate=0.2,
    degraded_data_age_s=2.0,
    severe_data_age_s=10.0,
    recovery_ratio=0.7,
    cooling_period_s=30.0,
    min_samples=10,
)
T = 1_700_000_000.0


def feed(
    monitor: HealthMonitor,
    start: float,
    seconds: float,
    latency: Any,
    *,
    every: float = 0.5,
    outcome: Any = "ok",
    endpoint: str = "GET /fapi/v1/ticker/24hr",
) -> float:
    """Record one request every ``every`` seconds; ``latency``/``outcome`` may be callables."""
    now = start
    while now < start + seconds:
        lat = latency(now) if callable(latency) else latency
        out = outcome(now) if callable(outcome) else outcome
        monitor.record(endpoint, lat, out, now)
        now += every
    return now


def test_median_and_p95_per_endpoint() -> None:
    monitor = HealthMonitor(CONFIG)
    for i, latency in enumerate([0.1] * 18 + [0.5, 2.0]):
        monitor.record("GET /depth", latency, "ok", T + i * 0.1)
    monitor.record("POST /order", 0.3, "ok", T + 2)
    metrics = monitor.metrics(T + 2)
    assert metrics.latency["GET /depth"].median_s == 0.1
    assert metrics.latency["GET /depth"].p95_s == 0.5  # nearest rank: the 19th of 20
    assert metrics.latency["POST /order"].samples == 1
    assert metrics.latency_p95_s == 0.5  # the order endpoint has too few samples to count
    assert metrics.samples == 21


def test_old_samples_leave_the_window() -> None:
    monitor = HealthMonitor(CONFIG)
    feed(monitor, T, 10, 5.0)
    assert monitor.metrics(T + 10).latency_p95_s == 5.0
    assert monitor.metrics(T + 75).latency == {}


def test_latency_escalates_at_once_and_straight_to_severe() -> None:
    monitor = HealthMonitor(CONFIG)
    feed(monitor, T, 10, 0.2)
    assert monitor.state(T + 10) is VenueHealth.NORMAL
    feed(monitor, T + 10, 10, 4.0)
    assert monitor.state(T + 20) is VenueHealth.SEVERE


def test_recovery_needs_the_ratio_and_the_cooling_period_and_goes_one_step_at_a_time() -> None:
    events: list[StateChangeEvent] = []
    monitor = HealthMonitor(CONFIG, on_change=events.append)
    now = feed(monitor, T, 20, 1.2)  # p95 1.2 > 1.0
    assert monitor.state(now) is VenueHealth.DEGRADED
    # 0.9 is under the threshold but above 0.7 x 1.0: not recovered, however long it lasts.
    now = feed(monitor, now, 180, 0.9)
    assert monitor.state(now) is VenueHealth.DEGRADED
    # Recovered values: still DEGRADED until the window has forgotten the slow samples.
    now = feed(monitor, now, 70, 0.3)
    assert monitor.state(now) is VenueHealth.NORMAL
    assert [(e.previous, e.current, e.metric) for e in events] == [
        ("NORMAL", "DEGRADED", "latency_p95"),
        ("DEGRADED", "NORMAL", "latency_p95"),
    ]
    assert events[0].value == 1.2
    assert events[0].threshold == 1.0


def test_cooling_period_holds_even_when_signals_recover_at_once() -> None:
    monitor = HealthMonitor(CONFIG)
    monitor.record_data_age(12.0, T)  # severe
    assert monitor.state(T) is VenueHealth.SEVERE
    for at, expected in [
        (T + 1, VenueHealth.SEVERE),  # fresh data again, but cooling
        (T + 20, VenueHealth.SEVERE),
        (T + 31, VenueHealth.DEGRADED),  # one step
        (T + 40, VenueHealth.DEGRADED),  # and that step's own cooling
        (T + 61, VenueHealth.NORMAL),
    ]:
        monitor.record_data_age(0.1, at)
        assert monitor.state(at) is expected, at - T


def test_a_frozen_feed_ages_on_its_own() -> None:
    monitor = HealthMonitor(CONFIG)
    monitor.record_data_age(0.5, T)
    assert monitor.state(T + 1) is VenueHealth.NORMAL
    assert monitor.state(T + 2) is VenueHealth.DEGRADED  # 2.5 s old, nothing new arrived
    assert monitor.state(T + 10) is VenueHealth.SEVERE
    assert monitor.metrics(T + 10).data_age_s == pytest.approx(10.5)


def test_error_and_throttle_rates() -> None:
    monitor = HealthMonitor(CONFIG)
    feed(monitor, T, 10, 0.1, outcome=lambda now: "error" if int((now - T) * 2) % 5 == 0 else "ok")
    metrics = monitor.metrics(T + 10)
    assert metrics.error_rate == pytest.approx(0.2)
    assert monitor.state(T + 10) is VenueHealth.DEGRADED
    throttled = HealthMonitor(CONFIG)
    feed(
        throttled,
        T,
        10,
        0.1,
        outcome=lambda now: "throttled" if int((now - T) * 2) % 4 == 0 else "ok",
    )
    assert throttled.metrics(T + 10).throttle_rate == pytest.approx(0.25)
    assert throttled.state(T + 10) is VenueHealth.SEVERE


def test_too_few_samples_change_nothing() -> None:
    monitor = HealthMonitor(CONFIG)
    for i in range(5):
        monitor.record("POST /order", 9.0, "error", T + i)
    assert monitor.metrics(T + 5).error_rate is None
    assert monitor.state(T + 5) is VenueHealth.NORMAL


def test_a_noisy_signal_does_not_flap() -> None:
    """Latency that wanders around the DEGRADED threshold for ten minutes."""
    rng = random.Random(42)
    changes: list[StateChangeEvent] = []
    monitor = HealthMonitor(CONFIG, on_change=changes.append)
    naive_flips = 0
    naive = VenueHealth.NORMAL
    now = T
    while now < T + 600:
        # Each minute the latency sits just under or just over the line, with jitter.
        base = 1.1 if int((now - T) / 60) % 2 else 0.85
        monitor.record("GET /depth", max(0.0, base + rng.gauss(0, 0.05)), "ok", now)
        # What a threshold without hysteresis or cooling would do on the same p95:
        p95 = monitor.metrics(now).latency_p95_s
        if p95 is not None:
            plain = VenueHealth.DEGRADED if p95 >= 1.0 else VenueHealth.NORMAL
            naive_flips += plain is not naive
            naive = plain
        monitor.state(now)
        now += 0.25
    assert naive_flips >= 8  # the signal really is noisy around the line
    assert len(changes) <= 1  # the monitor escalated once and stayed put


def test_state_changes_reach_hooks_and_a_broken_observer_breaks_nothing() -> None:
    hooks = Hooks()
    seen: list[Any] = []
    hooks.subscribe(EventKind.STATE_CHANGE, seen.append)

    def broken(event: Any) -> None:
        raise RuntimeError("observer bug")

    monitor = HealthMonitor(CONFIG, hooks=hooks, on_change=broken)
    monitor.record_data_age(3.0, T)  # must not raise
    assert [e.current for e in seen] == ["DEGRADED"]
    assert seen[0].metric == "data_age"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.record("", 0.1, "ok", T), "endpoint"),
        (lambda m: m.record("e", float("nan"), "ok", T), "latency_s"),
        (lambda m: m.record("e", -0.1, "ok", T), "latency_s"),
        (lambda m: m.record("e", 0.1, "fine", T), "outcome"),
        (lambda m: m.record("e", 0.1, RequestOutcome.OK, float("inf")), "now"),
        (lambda m: m.record_data_age(float("inf"), T), "age_s"),
        (lambda m: m.state(float("nan")), "now"),
    ],
)
def test_bad_inputs_are_refused_by_name(call: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        call(HealthMonitor(CONFIG))


def test_errors_on_an_endpoint_gone_quiet_leave_the_window_while_others_are_busy() -> None:
    fast = DegradationConfig(**{**CONFIG.model_dump(), "cooling_period_s": 0.0})
    monitor = HealthMonitor(fast)
    now = feed(monitor, T, 10, 0.05, outcome="error", endpoint="POST /fapi/v1/order")
    assert monitor.state(now) is VenueHealth.SEVERE
    # Only the ticker is asked from now on; the order endpoint's errors age out all the same.
    now = feed(monitor, now, 70, 0.05, endpoint="GET /fapi/v1/ticker/24hr")
    metrics = monitor.metrics(now)
    assert "POST /fapi/v1/order" not in metrics.latency
    assert metrics.error_rate == 0.0
    assert monitor.state(now + 1) is VenueHealth.NORMAL


def test_the_signals_each_request_is_judged_on_match_a_full_recount() -> None:
    """Random traffic over several endpoints, with samples leaving the window: after every
    request the state equals what the full per-endpoint recount (``metrics``) calls for."""
    quick = DegradationConfig(**{**CONFIG.model_dump(), "cooling_period_s": 0.0})
    monitor = HealthMonitor(quick)
    rng = random.Random(7)
    now = T
    endpoints = ["GET /a", "GET /b", "POST /c"]
    for _ in range(3_000):
        now += rng.choice([0.0, 0.01, 0.2, 1.0, 5.0])
        latency = rng.choice([0.01, 0.05, 0.2, 1.5, 4.0]) if rng.random() < 0.1 else 0.02
        outcome = rng.choices(["ok", "error", "throttled"], [0.9, 0.07, 0.03])[0]
        monitor.record(rng.choice(endpoints), latency, outcome, now)
        state = monitor.state(now)
        m = monitor.metrics(now)
        ripe = [s.p95_s for s in m.latency.values() if s.samples >= quick.min_samples]
        assert m.latency_p95_s == (max(ripe) if ripe else None)
        worst = 0
        for value, degraded, severe in (
            (m.latency_p95_s, quick.degraded_latency_p95_s, quick.severe_latency_p95_s),
            (m.error_rate, quick.degraded_error_rate, quick.severe_error_rate),
            (m.throttle_rate, quick.degraded_throttle_rate, quick.severe_throttle_rate),
        ):
            if value is not None:
                worst = max(worst, 2 if value >= severe else 1 if value >= degraded else 0)
        # Worse at once; better one step per evaluation (no cooling here), never below worst.
        assert state.rank >= worst
        if worst == 2:
            assert state is VenueHealth.SEVERE
