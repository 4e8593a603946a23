"""Fleets of real bot processes (tests/fleet/bot.py) on one venue and one Redis.

The venue runs in this process behind loopback HTTP; each bot is a separate process with its
own ccxt client, guard, kill switch and budget, sharing only Redis. The figures the tests
print are what docs/benchmarks.md reports (benchmarks/bench_fleet.py repeats them).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _harness() -> Any:
    spec = importlib.util.spec_from_file_location(
        "fleet_harness", Path(__file__).with_name("harness.py")
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


harness = _harness()


@pytest.fixture(scope="session")
def launcher() -> Iterator[Any]:
    started = harness.Launcher()
    yield started
    started.close()


def test_an_engage_in_one_bot_process_stops_all_of_them(
    launcher: Any, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    results, orders = harness.run_kill_fleet(launcher, redis_url, prefix, tmp_path)
    [engager] = [r for r in results if "engage_started" in r]
    started, returned = engager["engage_started"], engager["engage_returned"]

    # Every bot was trading, then every bot refused, and none sent anything after refusing.
    assert all(r["sent"] > 0 for r in results)
    assert all(r["refused_code"] == Code.TRADING_HALTED for r in results)
    assert all(r["sent_after_refusal"] == 0 for r in results)
    # Every bot adopted the engage, and the venue's own log has no order stamped after the
    # engage returned (it returns once every bot confirmed it drained its sends).
    adopted = [r["adopted_at"] for r in results if r is not engager]
    assert all(a is not None and started <= a for a in adopted)
    assert orders, "the venue saw no orders at all"
    assert max(o["time"] for o in orders) <= math.ceil(returned * 1000)
    propagation = max(adopted) - started
    # How fast is a benchmark's claim (benchmarks/bench_fleet.py, docs/benchmarks.md), not
    # this test's: on a loaded machine it only takes longer, and stays right.
    print(
        f"\nfleet kill: {len(results)} bots, engage returned after {(returned - started) * 1e3:.1f}"
        f" ms, slowest bot adopted it after {propagation * 1e3:.1f} ms"
    )


def test_four_bot_processes_share_one_budget_without_a_429(
    launcher: Any, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    limit = 600
    # A venue minute lasts 3 s of wall time (scale 20).
    results, used, dialect, end = harness.run_budget_fleet(
        launcher, redis_url, prefix, tmp_path, limit=limit, scale=20.0
    )
    assert all(r["shared"] for r in results), "a bot fell back to its local slice"
    assert sum(r["throttled"] for r in results) == 0, "the venue answered 429"
    assert sum(r["banned"] for r in results) == 0
    assert all(s < 400 for r in results for s in r["statuses"])
    assert dialect.limiter.banned_until("127.0.0.1", end) is None
    # Every bot got a share, and no venue minute went over the limit. How much of the limit
    # the fleet manages to use depends on the machine's speed: benchmarks/bench_fleet.py
    # measures it (docs/benchmarks.md).
    assert all(r["answered"] for r in results)
    print(f"\nfleet budget: weight answered per venue minute (limit {limit}): {used}")
    assert all(0 < u <= limit for u in used.values()), used


def _phase(states: list[list[Any]], start: float, end: float) -> list[tuple[str, str]]:
    """The (state, code) pairs a bot was in between ``start`` and ``end`` (wall clock)."""
    before = [s for s in states if s[0] <= start]
    during = [s for s in states if start < s[0] <= end]
    return [(s[1], s[2]) for s in (before[-1:] + during)]


def test_bot_processes_survive_redis_dying_and_coming_back_empty(
    launcher: Any, redis_server: Any, prefix: str, tmp_path: Path
) -> None:
    reports, orders, marks = harness.run_outage_fleet(
        launcher, redis_server, prefix, tmp_path, on_disconnect="REDUCING"
    )
    [engager] = [r for r in reports if "engage_returned" in r]
    engaged = engager["engage_returned"]
    unsafe = ("REDUCING", Code.STATE_STORE_UNAVAILABLE)
    halted = ("HALTED", Code.MANUAL)
    for report in reports:
        states = report["states"]
        # When the venue accepted this bot's orders (its own log; each bot has its own
        # client order id prefix).
        sent = [
            o["time"] / 1000
            for o in orders
            if o["clientOrderId"].startswith(f"b{report['index']}-")
        ]
        # Trading, then the configured safe state while Redis was dead (no opening order),
        # then trading again once it came back empty: the fleet was ACTIVE before.
        assert any(marks["trading"] < t < marks["first_kill"] for t in sent)
        assert unsafe in _phase(states, marks["first_kill"], marks["first_restart"])
        # From the moment this bot saw Redis dead until Redis was back, the venue took no
        # order of its (its loop finishes one order before it looks at the switch again).
        noticed = min(
            at for at, *seen in states if at > marks["first_kill"] and tuple(seen[:2]) == unsafe
        )
        assert not [t for t in sent if noticed < t < marks["first_restart"]]
        assert any(marks["first_restart"] < t < marks["engage"] for t in sent)
        # Once engaged, HALTED through the second death and the empty restart: never ACTIVE
        # again, and the restored state is the engage itself, not a fresh one.
        assert _phase(states, engaged, marks["stop"])[-1] == halted
        after = [state for at, state, *_ in states if at > engaged]
        assert all(state == "HALTED" for state in after), states
    # Nothing after the engage returned (the venue stamps whole milliseconds).
    for order in orders:
        assert order["time"] <= math.ceil(engaged * 1000), order
