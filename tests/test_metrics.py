"""Prometheus metrics of a guarded bot, scraped over loopback HTTP after real traffic.

A real ``ccxt.binanceusdm`` trades in process on the real mock venue through the real guard
and kill switch; the metrics endpoint is the real prometheus-client server, and the exposition
text is parsed with prometheus-client's own parser.
"""

from __future__ import annotations

import importlib
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig, Policy
from safeguard._errors import ConfigError
from safeguard.guard import guard
from safeguard.guard._degradation import HealthMonitor
from safeguard.guard._events import (
    Event,
    EventKind,
    Hooks,
    KillEvent,
    RequestEvent,
    StateChangeEvent,
    ThrottleEvent,
)
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.observability import Metrics, MetricsServer, serve_guard_metrics, serve_metrics
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client

KEY, SECRET = "mx-key-0123456789", "mx-secret-0123456789abcdef"
SYMBOL, VENUE_SYMBOL = "ETH/USDT:USDT", "ETHUSDT"
MAX_NOTIONAL = 50_000.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: MetricsServer) -> Samples:
    """Every sample the endpoint serves, keyed by (sample name, labels)."""
    with urllib.request.urlopen(server.url, timeout=10) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def requests(samples: Samples, endpoint: str, outcome: str) -> float | None:
    return value(samples, "safeguard_requests_total", endpoint=endpoint, outcome=outcome)


@dataclass
class Rig:
    ex: Any
    venue: Venue
    switch: KillSwitch
    hooks: Hooks
    metrics: Metrics
    server: MetricsServer
    events: list[Event] = field(default_factory=list)

    def scrape(self) -> Samples:
        return scrape(self.server)


def _rig(tmp: Path, closers: list[Any], *, faults: dict[str, Any] | None = None) -> Rig:
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=(VENUE_SYMBOL,)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=100_000.0)
    dialect = Dialect(venue, faults=FaultPlan.parse(faults or {}))
    policy = Policy.build(
        risk={"require_stop": False, "max_notional_per_order": MAX_NOTIONAL},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.2},
        kill_switch={
            "state_dir": str(tmp / "state"),
            "watch_state_file": False,
            "cooling_period_s": 0.0,
        },
    )
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    closers.append(switch.close)
    hooks = Hooks()
    metrics = Metrics()
    metrics.attach(hooks)
    metrics.watch_switch(switch)
    server = serve_metrics(0, metrics.registry)
    closers.append(server.close)

    def sleep(seconds: float) -> bool:
        venue.advance(seconds)  # simulated time: backoffs cost nothing
        return False

    ex = guard(
        inprocess_client(dialect, KEY, SECRET),
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(policy.throttle),
        sleep=sleep,
    )
    closers.append(ex.runtime.core.journal.close)
    rig = Rig(ex, venue, switch, hooks, metrics, server)
    hooks.subscribe(None, rig.events.append)
    return rig


@pytest.fixture
def closers() -> Iterator[list[Any]]:
    stack: list[Any] = []
    yield stack
    for close in reversed(stack):
        close()


@pytest.fixture
def rig(tmp_path: Path, closers: list[Any]) -> Rig:
    return _rig(tmp_path, closers)


# --- requests, latency, weight ---------------------------------------------------------------


def test_each_read_is_one_request_sample_with_its_latency_and_the_venues_weight(rig: Rig) -> None:
    rig.ex.load_markets()
    reads = 7
    for _ in range(reads):
        rig.ex.fetch_ticker(SYMBOL)
    samples = rig.scrape()
    assert requests(samples, "fetch_ticker", "ok") == reads
    assert requests(samples, "fetch_ticker", "error") is None
    hist = "safeguard_request_latency_seconds"
    assert value(samples, f"{hist}_count", endpoint="fetch_ticker") == reads
    assert value(samples, f"{hist}_bucket", endpoint="fetch_ticker", le="+Inf") == reads
    # The gauge holds what the venue itself said in its last answer.
    last = rig.ex.exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"]
    assert value(samples, "safeguard_venue_used_weight", interval="1m") == float(last) > 0
    # Nothing was degraded, denied or engaged: the state gauges say so.
    assert value(samples, "safeguard_venue_health_state", state="NORMAL") == 1.0
    assert value(samples, "safeguard_kill_switch_state", state="ACTIVE") == 1.0
    assert value(samples, "safeguard_duplicates_prevented_total") == 0.0


async def test_the_async_face_feeds_the_same_metrics(tmp_path: Path) -> None:
    venue = Venue(VenueConfig(symbols=(VENUE_SYMBOL,)), clock=ManualClock(1_700_000_000.0))
    venue.create_account(KEY, SECRET, wallet=100_000.0)
    raw = inprocess_client(venue, KEY, SECRET, asyncio=True)
    policy = Policy.build(kill_switch={"state_dir": str(tmp_path), "watch_state_file": False})
    hooks = Hooks()
    with KillSwitch(policy.kill_switch, watch=False) as switch:
        _, server = serve_guard_metrics(0, hooks, switch=switch)
        ex = guard(raw, policy, kill_switch=switch, hooks=hooks,
                   journal_path=tmp_path / "orders.jsonl", durable_journal=False,
                   budget=RateBudget.standalone(policy.throttle))  # fmt: skip
        try:
            await ex.load_markets()
            for _ in range(3):
                await ex.fetch_ticker(SYMBOL)
            samples = scrape(server)
        finally:
            server.close()
            ex.runtime.core.journal.close()
            await raw.close()
    assert requests(samples, "fetch_ticker", "ok") == 3
    assert value(samples, "safeguard_kill_switch_state", state="ACTIVE") == 1.0


def test_a_venue_429_is_a_throttled_request_then_a_retry(
    tmp_path: Path, closers: list[Any]
) -> None:
    faults = {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 429,
                         "retry_after_s": 0, "count": 1}]}  # fmt: skip
    rig = _rig(tmp_path, closers, faults=faults)
    rig.ex.load_markets()
    assert rig.ex.fetch_ticker(SYMBOL)["symbol"] == SYMBOL
    samples = rig.scrape()
    assert requests(samples, "fetch_ticker", "throttled") == 1
    assert requests(samples, "fetch_ticker", "ok") == 1
    retries = [e for e in rig.events if e.kind is EventKind.RETRY]
    assert len(retries) == 1
    reason = retries[0].reason  # type: ignore[attr-defined]
    assert value(samples, "safeguard_retries_total", method="fetch_ticker", reason=reason) == 1


# --- verdicts -------------------------------------------------------------------------------


def test_a_denied_order_counts_once_under_its_code_and_an_allowed_one_under_allowed(
    rig: Rig,
) -> None:
    fat_finger = round(2 * MAX_NOTIONAL / rig.venue.mark_price(VENUE_SYMBOL), 2)
    with pytest.raises(errors.OrderDenied) as denied:
        rig.ex.create_order(SYMBOL, "market", "buy", fat_finger)
    assert denied.value.code == Code.NOTIONAL_PER_ORDER
    assert rig.venue.all_orders(KEY, symbol=VENUE_SYMBOL) == []
    rig.ex.create_order(SYMBOL, "market", "buy", 0.1)
    samples = rig.scrape()
    verdicts = "safeguard_verdicts_total"
    assert value(samples, verdicts, result="denied", code=Code.NOTIONAL_PER_ORDER) == 1
    assert value(samples, verdicts, result="allowed", code="") == 1
    assert requests(samples, "create_order", "ok") == 1


# --- the kill switch ------------------------------------------------------------------------


def test_an_engage_and_a_resume_move_the_kill_switch_gauge(rig: Rig) -> None:
    engaged = rig.switch.engage("ops says stop", by="pytest")
    samples = rig.scrape()
    assert value(samples, "safeguard_kill_switch_state", state="HALTED") == 1.0
    assert value(samples, "safeguard_kill_switch_state", state="ACTIVE") == 0.0
    assert value(samples, "safeguard_kill_switch_state", state="REDUCING") == 0.0
    assert value(samples, "safeguard_kill_switch_changes_total", state="HALTED", code="MANUAL") == 1
    assert value(samples, "safeguard_kill_switch_since_timestamp_seconds") == engaged.since
    with pytest.raises(errors.TradingHalted):
        rig.ex.create_order(SYMBOL, "market", "buy", 0.1)
    rig.switch.resume(by="pytest")
    samples = rig.scrape()
    assert value(samples, "safeguard_kill_switch_state", state="ACTIVE") == 1.0
    assert value(samples, "safeguard_kill_switch_state", state="HALTED") == 0.0
    assert value(samples, "safeguard_kill_switch_changes_total", state="ACTIVE", code="") == 1


def test_a_kill_event_and_the_switch_listener_for_one_change_count_it_once(rig: Rig) -> None:
    state = rig.switch.engage("stop", by="pytest", code=Code.DAILY_LOSS)
    # Should the guard also emit a KillEvent for the same engage, it is the same change.
    rig.hooks.emit(KillEvent(at=state.since, state="HALTED", reason="stop", code="DAILY_LOSS"))
    samples = rig.scrape()
    assert (
        value(samples, "safeguard_kill_switch_changes_total", state="HALTED", code="DAILY_LOSS")
        == 1
    )


def test_the_gauge_follows_an_engage_made_elsewhere_and_a_halt_on_an_unreadable_store(
    tmp_path: Path,
) -> None:
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False, cooling_period_s=0.0)
    metrics = Metrics()
    with KillSwitch(config, watch=False) as bot, KillSwitch(config, watch=False) as operator:
        metrics.watch_switch(bot)
        operator.engage("from the desk", by="cli:ops@desk", state=TradingState.REDUCING)
        bot.refresh()  # what its watcher thread does every poll_interval_s
        get = metrics.registry.get_sample_value
        assert get("safeguard_kill_switch_state", {"state": "REDUCING"}) == 1.0
        assert get("safeguard_kill_switch_state", {"state": "ACTIVE"}) == 0.0
        (tmp_path / "state.json").write_text("{ not json", encoding="utf-8")
        bot.refresh()
        assert get("safeguard_kill_switch_state", {"state": "HALTED"}) == 1.0
        assert get("safeguard_kill_switch_state", {"state": "REDUCING"}) == 0.0
        changes = {"state": "HALTED", "code": Code.STATE_STORE_UNAVAILABLE}
        assert get("safeguard_kill_switch_changes_total", changes) == 1


# --- idempotency ----------------------------------------------------------------------------


def test_an_order_whose_answer_was_lost_is_found_by_look_up_and_counted_as_a_duplicate_prevented(
    tmp_path: Path, closers: list[Any]
) -> None:
    faults = {"rules": [{"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order",
                         "count": 1}]}  # fmt: skip
    rig = _rig(tmp_path, closers, faults=faults)
    rig.ex.load_markets()
    order = rig.ex.create_order(SYMBOL, "market", "buy", 0.1)
    # The venue holds exactly one order under that client id: the look-up found it.
    [placed] = rig.venue.all_orders(KEY, symbol=VENUE_SYMBOL)
    assert placed["clientOrderId"] == order["clientOrderId"]
    samples = rig.scrape()
    assert value(samples, "safeguard_duplicates_prevented_total") == 1
    assert requests(samples, "create_order", "error") == 1
    assert requests(samples, "create_order", "ok") is None


def test_an_order_rejected_by_the_venue_is_no_duplicate_prevented(
    tmp_path: Path, closers: list[Any]
) -> None:
    faults = {"rules": [{"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 400,
                         "code": -1013, "count": 1}]}  # fmt: skip
    rig = _rig(tmp_path, closers, faults=faults)
    with pytest.raises(errors.VenueRejected):
        rig.ex.create_order(SYMBOL, "market", "buy", 0.1)
    samples = rig.scrape()
    assert value(samples, "safeguard_duplicates_prevented_total") == 0


# --- venue health ---------------------------------------------------------------------------


def test_failing_reads_degrade_the_health_gauge_and_count_errors_and_retries(
    tmp_path: Path, closers: list[Any]
) -> None:
    faults = {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 503,
                         "code": -1001}]}  # fmt: skip
    rig = _rig(tmp_path, closers, faults=faults)
    rig.ex.load_markets()
    for _ in range(4):
        with pytest.raises(errors.RetriesExhausted):
            rig.ex.fetch_ticker(SYMBOL)
    failed = [e for e in rig.events if isinstance(e, RequestEvent) and e.outcome == "error"]
    changes = [e for e in rig.events if isinstance(e, StateChangeEvent)]
    retries = [e for e in rig.events if e.kind is EventKind.RETRY]
    assert len(failed) >= 10
    assert changes
    assert changes[-1].current == "SEVERE"
    samples = rig.scrape()
    assert value(samples, "safeguard_venue_health_state", state="SEVERE") == 1.0
    assert value(samples, "safeguard_venue_health_state", state="NORMAL") == 0.0
    assert requests(samples, "fetch_ticker", "error") == len(failed)
    for error_type, count in Counter(e.error_type or "" for e in failed).items():
        counted = value(
            samples,
            "safeguard_request_errors_total",
            endpoint="fetch_ticker",
            error_type=error_type,
        )
        assert counted == count
    total_retries = sum(v for (name, _), v in samples.items() if name == "safeguard_retries_total")
    assert total_retries == len(retries) > 0
    for (state, metric), count in Counter((e.current, e.metric) for e in changes).items():
        changed = value(samples, "safeguard_venue_health_changes_total", state=state, metric=metric)
        assert changed == count


def test_health_monitor_transitions_reach_the_gauge() -> None:
    hooks = Hooks()
    metrics = Metrics()
    metrics.attach(hooks)
    monitor = HealthMonitor(Policy.build().degradation, hooks=hooks)
    for i in range(20):
        monitor.record("fetch_ticker", 5.0, "ok", 1000.0 + i)  # p95 of 5 s: SEVERE latency
    assert monitor.state(1020.0) == "SEVERE"
    gauge = metrics.registry.get_sample_value
    assert gauge("safeguard_venue_health_state", {"state": "SEVERE"}) == 1.0
    assert gauge("safeguard_venue_health_state", {"state": "NORMAL"}) == 0.0


# --- throttling -----------------------------------------------------------------------------


def test_throttle_events_count_waits_and_their_seconds_and_usage() -> None:
    # The guard's pacer reports through this event; this drives the metrics the same way.
    hooks = Hooks()
    metrics = Metrics()
    metrics.attach(hooks)
    with serve_metrics(0, metrics.registry) as server:
        hooks.emit(ThrottleEvent(at=1.0, action="wait", seconds=0.25, request_kind="READ",
                                 limit="REQUEST_WEIGHT/1m", usage=0.8))  # fmt: skip
        hooks.emit(ThrottleEvent(at=2.0, action="wait", seconds=0.5, limit="REQUEST_WEIGHT/1m",
                                 usage=0.9))  # fmt: skip
        hooks.emit(ThrottleEvent(at=3.0, action="hold", seconds=4.0, limit="ORDERS/10s",
                                 usage=1.0))  # fmt: skip
        hooks.emit(ThrottleEvent(at=4.0, action="418", seconds=120.0))
        samples = scrape(server)
    assert value(samples, "safeguard_throttle_events_total", action="wait") == 2
    assert value(samples, "safeguard_throttle_events_total", action="hold") == 1
    assert value(samples, "safeguard_throttle_events_total", action="418") == 1
    assert value(samples, "safeguard_throttle_wait_seconds_total") == pytest.approx(0.75)
    assert value(samples, "safeguard_rate_limit_usage_ratio", limit="REQUEST_WEIGHT/1m") == 0.9
    assert value(samples, "safeguard_rate_limit_usage_ratio", limit="ORDERS/10s") == 1.0


def test_nonsense_numbers_in_events_are_skipped_not_counted() -> None:
    hooks = Hooks()
    metrics = Metrics()
    metrics.attach(hooks)
    hooks.emit(RequestEvent(at=1.0, method="fetch_ticker", endpoint="fetch_ticker", attempt=1,
                            outcome="ok", latency_s=float("nan"),
                            weights={"X-MBX-USED-WEIGHT-1M": "lots"}))  # fmt: skip
    hooks.emit(ThrottleEvent(at=1.0, action="wait", seconds=float("inf")))
    get = metrics.registry.get_sample_value
    assert get("safeguard_requests_total", {"endpoint": "fetch_ticker", "outcome": "ok"}) == 1
    assert get("safeguard_request_latency_seconds_count", {"endpoint": "fetch_ticker"}) is None
    assert get("safeguard_venue_used_weight", {"interval": "1m"}) is None
    assert get("safeguard_throttle_wait_seconds_total") == 0.0


# --- opt-in, no global state ----------------------------------------------------------------


def test_each_metrics_has_its_own_registry_and_the_global_one_stays_clean() -> None:
    first, second = Metrics(), Metrics()  # the same names twice: no clash
    assert first.registry is not second.registry
    names = {m.name for m in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("safeguard") for name in names)


def test_detach_stops_counting() -> None:
    hooks = Hooks()
    metrics = Metrics()
    detach = metrics.attach(hooks)
    event = RequestEvent(at=1.0, method="m", endpoint="m", attempt=1, outcome="ok")
    hooks.emit(event)
    detach()
    hooks.emit(event)
    counted = metrics.registry.get_sample_value(
        "safeguard_requests_total", {"endpoint": "m", "outcome": "ok"}
    )
    assert counted == 1


def test_without_prometheus_client_asking_for_metrics_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    with pytest.raises(ConfigError, match=r"safeguard\[metrics\]"):
        Metrics()
    with pytest.raises(ConfigError, match=r"safeguard\[metrics\]"):
        serve_metrics(0, None)  # type: ignore[arg-type]


def test_the_metrics_modules_import_without_prometheus_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Importing (as safeguard's own modules and a bot's imports do) must not need the extra;
    # only building metrics does.
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    for name in [n for n in sys.modules if n.startswith("safeguard.observability")]:
        monkeypatch.delitem(sys.modules, name)
    fresh = importlib.import_module("safeguard.observability")
    venue_side = importlib.import_module("safeguard.observability._venue")
    with pytest.raises(ConfigError, match=r"safeguard\[metrics\]"):
        fresh.Metrics()
    with pytest.raises(ConfigError, match=r"safeguard\[metrics\]"):
        venue_side.VenueMetrics(Venue(VenueConfig(symbols=(VENUE_SYMBOL,))))


def test_serve_metrics_refuses_a_bad_port_a_busy_port_and_a_non_registry() -> None:
    registry = prometheus_client.CollectorRegistry()
    with pytest.raises(ConfigError, match="port"):
        serve_metrics(70_000, registry)
    with pytest.raises(ConfigError, match="CollectorRegistry"):
        serve_metrics(0, object())  # type: ignore[arg-type]
    with serve_metrics(0, registry) as server:
        assert server.url == f"http://127.0.0.1:{server.port}/metrics"
        with pytest.raises(ConfigError, match=f"cannot serve metrics on 127.0.0.1:{server.port}"):
            serve_metrics(server.port, registry)
    # closed: the port is free again
    with serve_metrics(server.port, registry) as again:
        assert again.port == server.port


def test_one_call_serves_a_runners_hooks_and_switch(tmp_path: Path) -> None:
    hooks = Hooks()
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False)
    with KillSwitch(config, watch=False) as switch:
        metrics, server = serve_guard_metrics(0, hooks, switch=switch)
        with server:
            hooks.emit(RequestEvent(at=1.0, method="m", endpoint="m", attempt=1, outcome="ok"))
            switch.engage("stop", by="pytest")
            samples = scrape(server)
    assert requests(samples, "m", "ok") == 1
    assert value(samples, "safeguard_kill_switch_state", state="HALTED") == 1.0
    halted = metrics.registry.get_sample_value("safeguard_kill_switch_state", {"state": "HALTED"})
    assert halted == 1.0  # the metrics returned are the ones the endpoint serves


def test_the_public_surface_is_pinned() -> None:
    import safeguard.observability._venue as venue_side
    from safeguard import observability

    assert observability.__all__ == [
        "HEALTH_STATES",
        "LATENCY_BUCKETS",
        "SWITCH_STATES",
        "Metrics",
        "MetricsServer",
        "require_prometheus",
        "serve_guard_metrics",
        "serve_metrics",
    ]
    assert venue_side.__all__ == ["MeteredDialect", "VenueMetrics"]
    for name in observability.__all__:
        assert getattr(observability, name) is not None
