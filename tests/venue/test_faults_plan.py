"""The fault plan as configuration and as a seeded, time-driven decision maker."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard._errors import ConfigError
from safeguard.venue._faults import (
    BanRule,
    DropRule,
    ErrorRule,
    FaultInjector,
    FaultPlan,
    LatencyRule,
    SpikeRule,
    ThrottleRule,
    TimeoutRule,
)
from safeguard.venue._ratelimit import RateLimits

T0 = 1_700_000_000.0
ORDER = "POST /fapi/v1/order"
TICKER = "GET /fapi/v1/ticker/24hr"

TOML_PLAN = """
seed = 11

[[rules]]
kind = "latency"
endpoint = "GET /fapi/v1/ticker/24hr"
distribution = "uniform"
ms = 10
high_ms = 20

[[rules]]
kind = "error"
endpoint = "POST /fapi/v1/order"
status = 503
code = -1001
count = 2

[[rules]]
kind = "timeout_after_accept"
endpoint = "/fapi/v1/order"
count = 1

[[rules]]
kind = "spike"
symbol = "BTCUSDT"
pct = 5.0
duration_s = 30
at_s = 10

[[rules]]
kind = "throttle"
orders_per_10s = 3
start_s = 60
end_s = 120
"""


def test_plan_loads_from_toml_and_json_identically(tmp_path: Path) -> None:
    toml_file = tmp_path / "plan.toml"
    toml_file.write_text(TOML_PLAN)
    plan = FaultPlan.load(toml_file)
    assert plan.seed == 11
    assert [type(r) for r in plan.rules] == [
        LatencyRule,
        ErrorRule,
        TimeoutRule,
        SpikeRule,
        ThrottleRule,
    ]
    json_file = tmp_path / "plan.json"
    json_file.write_text(json.dumps(plan.model_dump(mode="json")))
    assert FaultPlan.load(json_file) == plan


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        ({"kind": "nonsense"}, "rules.0"),
        ({"kind": "error", "status": 200}, "status"),
        ({"kind": "error", "sttus": 503}, "sttus"),
        ({"kind": "latency", "ms": float("nan")}, "ms"),
        ({"kind": "latency", "ms": -1}, "ms"),
        ({"kind": "latency", "distribution": "uniform", "ms": 5}, "rules.0"),
        ({"kind": "error", "probability": 1.5}, "probability"),
        ({"kind": "error", "count": 0}, "count"),
        ({"kind": "error", "start_s": 10, "end_s": 5}, "rules.0"),
        ({"kind": "spike", "symbol": "BTCUSDT", "pct": 0, "duration_s": 1}, "rules.0"),
        ({"kind": "throttle", "orders_per_10s": 0}, "orders_per_10s"),
        ({"kind": "stream_stall", "start_s": 10, "end_s": 5}, "rules.0"),
        ({"kind": "stream_delay"}, "ms"),
        ({"kind": "depth_gap", "symbol": "BTCUSDT", "mode": "shuffle"}, "mode"),
        ({"kind": "stream_disconnect", "at_s": -1}, "at_s"),
        ({"kind": "listen_key_expire", "when": 3}, "when"),
    ],
)
def test_bad_plans_are_config_errors_naming_the_key(rule: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        FaultPlan.parse({"rules": [rule]})
    assert key in str(exc.value)


def test_unparseable_and_missing_files_are_config_errors(tmp_path: Path) -> None:
    bad = tmp_path / "plan.toml"
    bad.write_text("rules = [")
    with pytest.raises(ConfigError, match="does not parse"):
        FaultPlan.load(bad)
    with pytest.raises(ConfigError, match="not found"):
        FaultPlan.load(tmp_path / "absent.toml")


def test_count_limits_firing_and_endpoint_matching_is_by_method_and_path() -> None:
    plan = FaultPlan.parse(
        {"rules": [{"kind": "error", "endpoint": ORDER, "status": 502, "body": "html", "count": 2}]}
    )
    injector = FaultInjector(plan, installed_at=T0)
    assert injector.on_request(TICKER, T0).answer is None
    assert injector.on_request("GET /fapi/v1/order", T0).answer is None
    answers = [injector.on_request(ORDER, T0).answer for _ in range(4)]
    assert [a is not None for a in answers] == [True, True, False, False]
    assert injector.fired == [2]


def test_path_only_and_glob_patterns() -> None:
    plan = FaultPlan.parse(
        {
            "rules": [
                {"kind": "drop", "endpoint": "/fapi/v1/order"},
                {"kind": "ban", "endpoint": "GET /fapi/v3/*"},
            ]
        }
    )
    injector = FaultInjector(plan, installed_at=T0)
    assert isinstance(injector.on_request("DELETE /fapi/v1/order", T0).answer, DropRule)
    assert isinstance(injector.on_request("GET /fapi/v3/account", T0).answer, BanRule)
    assert injector.on_request("GET /fapi/v1/time", T0).answer is None


def test_time_window_and_skip() -> None:
    plan = FaultPlan.parse({"rules": [{"kind": "error", "start_s": 10, "end_s": 20, "skip": 1}]})
    injector = FaultInjector(plan, installed_at=T0)
    assert injector.on_request(TICKER, T0 + 5).answer is None  # before the window
    assert injector.on_request(TICKER, T0 + 10).answer is None  # skipped
    assert injector.on_request(TICKER, T0 + 15).answer is not None
    assert injector.on_request(TICKER, T0 + 20).answer is None  # window closed


def test_probability_is_seeded_and_reproducible() -> None:
    plan = FaultPlan.parse({"seed": 3, "rules": [{"kind": "error", "probability": 0.3}]})

    def run() -> list[bool]:
        injector = FaultInjector(plan, installed_at=T0)
        return [injector.on_request(TICKER, T0).answer is not None for _ in range(400)]

    first = run()
    assert first == run()
    assert 80 < sum(first) < 160  # ~120 expected
    other = FaultInjector(plan.model_copy(update={"seed": 4}), installed_at=T0)
    assert [other.on_request(TICKER, T0).answer is not None for _ in range(400)] != first


def test_latency_adds_up_and_keeps_to_its_distribution() -> None:
    plan = FaultPlan.parse(
        {
            "rules": [
                {"kind": "latency", "ms": 100},
                {"kind": "latency", "distribution": "uniform", "ms": 10, "high_ms": 20},
                {"kind": "error", "endpoint": ORDER},
            ]
        }
    )
    injector = FaultInjector(plan, installed_at=T0)
    for _ in range(50):
        injection = injector.on_request(TICKER, T0)
        assert injection.answer is None
        assert 0.110 <= injection.latency_s <= 0.120
    assert isinstance(injector.on_request(ORDER, T0).answer, ErrorRule)


@pytest.mark.parametrize("distribution", ["exponential", "lognormal"])
def test_skewed_latency_is_positive_with_a_plausible_centre(distribution: str) -> None:
    plan = FaultPlan.parse({"rules": [{"kind": "latency", "distribution": distribution, "ms": 50}]})
    injector = FaultInjector(plan, installed_at=T0)
    draws = sorted(injector.on_request(TICKER, T0).latency_s for _ in range(2000))
    assert draws[0] >= 0
    median = draws[len(draws) // 2]
    assert 0.025 < median < 0.060


def test_market_events_fire_once_when_due() -> None:
    plan = FaultPlan.parse(
        {"rules": [{"kind": "spike", "symbol": "BTCUSDT", "pct": -10, "duration_s": 5, "at_s": 30}]}
    )
    injector = FaultInjector(plan, installed_at=T0)
    assert injector.due_events(T0 + 29) == []
    due = injector.due_events(T0 + 31)
    assert len(due) == 1
    assert isinstance(due[0], SpikeRule)
    assert due[0].pct == -10
    assert injector.due_events(T0 + 100) == []


def test_throttle_tightens_limits_only_inside_its_window() -> None:
    plan = FaultPlan.parse(
        {"rules": [{"kind": "throttle", "orders_per_10s": 3, "start_s": 60, "end_s": 120}]}
    )
    injector = FaultInjector(plan, installed_at=T0)
    base = RateLimits()
    assert injector.limits(base, T0 + 59) == base
    assert injector.limits(base, T0 + 60).orders_per_10s == 3
    assert injector.limits(base, T0 + 120) == base


def test_describe_reports_the_plan_and_counts() -> None:
    plan = FaultPlan.parse({"rules": [{"kind": "error", "count": 1}]})
    injector = FaultInjector(plan, installed_at=T0)
    injector.on_request(TICKER, T0)
    state = injector.describe()
    assert state["fired"] == [1]
    assert FaultPlan.parse(state["plan"]) == plan


def test_a_rule_can_target_one_api_key() -> None:
    plan = FaultPlan.parse({"rules": [{"kind": "error", "api_key": "bot-a"}]})
    injector = FaultInjector(plan, installed_at=T0)
    assert injector.on_request(TICKER, T0, "bot-b").answer is None
    assert injector.on_request(TICKER, T0).answer is None
    assert isinstance(injector.on_request(TICKER, T0, "bot-a").answer, ErrorRule)


def test_stream_faults_hold_in_their_window_and_events_fire_once() -> None:
    plan = FaultPlan.parse(
        {
            "rules": [
                {"kind": "stream_stall", "symbol": "BTCUSDT", "start_s": 5, "end_s": 10},
                {"kind": "stream_disconnect", "at_s": 7},
                {"kind": "error", "endpoint": "*"},
            ]
        }
    )
    injector = FaultInjector(plan, installed_at=100.0)
    assert injector.stream_windows(104.0) == []
    [stall] = injector.stream_windows(105.0)
    assert stall.covers("BTCUSDT")
    assert not stall.covers("ETHUSDT")
    assert injector.stream_windows(110.0) == []
    assert injector.due_stream_events(106.0) == []
    assert [r.kind for r in injector.due_stream_events(107.0)] == ["stream_disconnect"]
    assert injector.due_stream_events(200.0) == []
    # Stream rules never answer a REST request; the error rule still does.
    assert injector.on_request("GET /fapi/v1/time", 107.0).answer is plan.rules[2]
