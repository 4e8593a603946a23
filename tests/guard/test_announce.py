"""The rate budget's waits and the venue's throttling, and the kill switch's engages and resumes,
reach a hooks subscriber as ThrottleEvent and KillEvent, on real traffic to the mock venue."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._events import EventKind, Hooks, KillEvent, ThrottleEvent
from safeguard.guard._throttle import RateBudget, RateLimits
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._ratelimit import RateLimits as VenueLimits

KEY, SECRET = "an-key-0123456789", "an-secret-0123456789abcdef"
SYMBOL = "ETH/USDT:USDT"
ORDERS_PER_10S = 8


@pytest.fixture
def closers() -> Iterator[list[Any]]:
    stack: list[Any] = []
    yield stack
    for close in reversed(stack):
        close()


def _build(
    tmp: Path, closers: list[Any], faults: dict[str, Any] | None = None
) -> tuple[Any, Venue, KillSwitch, Hooks]:
    clock = ManualClock(1_700_000_010.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=100_000.0)
    dialect = Dialect(
        venue,
        limits=VenueLimits(orders_per_10s=ORDERS_PER_10S),
        faults=FaultPlan.parse(faults or {}),
    )
    policy = Policy.build(
        risk={"require_stop": False},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.2},
        throttle={"orders_per_10s": ORDERS_PER_10S},
        kill_switch={"state_dir": str(tmp / "state"), "watch_state_file": False},
    )
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    closers.append(switch.close)
    hooks = Hooks()

    def sleep(seconds: float) -> bool:
        venue.advance(seconds)
        return False

    ex = guard(
        inprocess_client(dialect, KEY, SECRET),
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(policy.throttle, RateLimits.from_config(policy.throttle)),
        sleep=sleep,
    )
    return ex, venue, switch, hooks


def test_a_paced_order_burst_is_reported_as_throttle_waits(
    tmp_path: Path, closers: list[Any]
) -> None:
    ex, _venue, _switch, hooks = _build(tmp_path, closers)
    seen: list[ThrottleEvent] = []
    hooks.subscribe(EventKind.THROTTLE, seen.append)
    placed = [
        ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01) for i in range(20)
    ]
    assert len({o["clientOrderId"] for o in placed}) == 20
    waits = [e for e in seen if e.action == "wait"]
    assert waits, [e.action for e in seen]
    assert all(e.seconds > 0 for e in waits)
    assert any(e.limit is not None and "ORDERS" in e.limit.upper() for e in waits), waits


def test_a_venue_429_is_reported(tmp_path: Path, closers: list[Any]) -> None:
    faults = {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 429,
                         "retry_after_s": 1, "count": 1}]}  # fmt: skip
    ex, _venue, _switch, hooks = _build(tmp_path, closers, faults)
    seen: list[ThrottleEvent] = []
    hooks.subscribe(EventKind.THROTTLE, seen.append)
    ticker = ex.fetch_ticker(SYMBOL)  # retried after the venue's 429
    assert ticker["last"] > 0
    assert "429" in [e.action for e in seen]


def test_engage_and_resume_are_kill_events(tmp_path: Path, closers: list[Any]) -> None:
    ex, venue, switch, hooks = _build(tmp_path, closers)
    seen: list[KillEvent] = []
    hooks.subscribe(EventKind.KILL, seen.append)
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    switch.engage("drawdown", by="risk-desk", state=TradingState.REDUCING, code="DRAWDOWN")
    with pytest.raises(errors.TradingHalted):
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    venue.advance(switch.config.cooling_period_s + 1)
    switch.resume(by="risk-desk")
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert [(e.state, e.reason, e.by, e.code) for e in seen] == [
        ("REDUCING", "drawdown", "risk-desk", "DRAWDOWN"),
        ("ACTIVE", "resumed", "risk-desk", seen[-1].code),
    ]
