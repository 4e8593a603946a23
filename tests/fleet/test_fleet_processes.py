"""Fleets of real bot processes (tests/fleet/bot.py) on one venue and one Redis.

The venue runs in this process behind loopback HTTP; each bot is a separate Python process
with its own ccxt client, guard, kill switch and budget, sharing only Redis. The figures the
tests print are what docs/benchmarks.md reports (benchmarks/bench_fleet.py repeats them).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard.clock import SystemClock
from safeguard.codes import Code
from safeguard.venue import Venue, VenueConfig
from safeguard.venue.dialect import Dialect
from safeguard.venue.http import VenueServer
from safeguard.venue.ratelimit import RateLimits as VenueLimits

pytestmark = [pytest.mark.redis, pytest.mark.slow]

BOT = Path(__file__).with_name("bot.py")
KEY, SECRET = "fleet-key-0123456789", "fleet-secret-0123456789abcdef"
BOTS = 4


class Launcher:
    """One ``bot.py serve`` process: imports once, forks a fleet of bots per request."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(BOT), "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._expect("up")

    def _expect(self, word: str) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != word:
            self.close()
            raise AssertionError(f"bot launcher said {line!r}, not {word!r}")

    def _send(self, value: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(value) + "\n")
        self.process.stdin.flush()

    def start(self, mode: str, configs: list[dict[str, Any]]) -> None:
        """Fork the bots; returns once every one of them is connected and waiting."""
        self._send([mode, configs])
        self._expect("ready")

    def go(self, **said: Any) -> list[dict[str, Any]]:
        """Release the bots (each gets ``said``) and return their reports."""
        self._send(said)
        assert self.process.stdout is not None
        reports = json.loads(self.process.stdout.readline())
        assert isinstance(reports, list), f"bots failed: {reports}"
        return reports

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        _, err = self.process.communicate(timeout=10)
        if err.strip():
            print(err[-3000:], file=sys.stderr)


@pytest.fixture(scope="session")
def launcher() -> Iterator[Launcher]:
    started = Launcher()
    yield started
    started.close()


def _bot_module() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("fleet_bot", BOT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_kill_fleet(
    launcher: Launcher, redis_url: str, prefix: str, state_dir: Path, *, bots: int = BOTS
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run ``bots`` bots until bot 0 engages; return their reports and the venue's orders."""
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=SystemClock())
    venue.create_account(KEY, SECRET, wallet=1_000_000.0)
    huge = 10**7
    dialect = Dialect(
        venue,
        limits=VenueLimits(weight_per_minute=huge, orders_per_10s=huge, orders_per_minute=huge),
    )
    with VenueServer(venue, dialect=dialect) as server:
        base = {
            "venue": server.url,
            "redis": redis_url,
            "prefix": prefix,
            "state_dir": str(state_dir),
            "key": KEY,
            "secret": SECRET,
            "engager": 0,
            "engage_after": 5,
            "run_s": 20.0,
            "after_s": 0.2,
        }
        launcher.start("kill", [{**base, "index": i} for i in range(bots)])
        results = launcher.go()
        orders = venue.all_orders(KEY, symbol="ETHUSDT")
    return results, orders


def test_an_engage_in_one_bot_process_stops_all_of_them(
    launcher: Launcher, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    results, orders = run_kill_fleet(launcher, redis_url, prefix, tmp_path)
    [engager] = [r for r in results if "engage_started" in r]
    started, returned = engager["engage_started"], engager["engage_returned"]

    # Every bot was trading, then every bot refused, and none sent anything after refusing.
    assert all(r["sent"] > 0 for r in results)
    assert all(r["refused_code"] == Code.TRADING_HALTED for r in results)
    assert all(r["sent_after_refusal"] == 0 for r in results)
    # Every bot adopted the engage before the engage returned (each confirmed it), and the
    # venue's own log has no order stamped after the engage returned.
    adopted = [r["adopted_at"] for r in results if r is not engager]
    assert all(a is not None and started <= a <= returned for a in adopted)
    assert orders, "the venue saw no orders at all"
    assert max(o["time"] for o in orders) <= math.ceil(returned * 1000)
    propagation = max(adopted) - started
    print(
        f"\nfleet kill: {len(results)} bots, engage returned after {(returned - started) * 1e3:.1f}"
        f" ms, slowest bot adopted it after {propagation * 1e3:.1f} ms"
    )
    # Generous for a loaded 2-core CI machine; the measured figure is in docs/benchmarks.md.
    assert returned - started < 1.0


def run_budget_fleet(
    launcher: Launcher,
    redis_url: str,
    prefix: str,
    state_dir: Path,
    *,
    bots: int = BOTS,
    limit: int = 600,
    scale: float = 60.0,
    minutes: int = 2,
) -> tuple[list[dict[str, Any]], dict[int, int], Dialect, float]:
    """``bots`` bots poll one venue through one shared budget for ``minutes`` venue minutes
    (each lasting 60/``scale`` s). Returns their reports, weight answered per venue minute,
    the venue's dialect and the venue time at the end."""
    wall0 = time.time()
    venue0 = math.floor(wall0 / 60) * 60.0
    clock = _bot_module().ScaledClock(wall0, venue0, scale)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=10_000.0)
    dialect = Dialect(venue, limits=VenueLimits(weight_per_minute=limit))
    with VenueServer(venue, dialect=dialect) as server:
        base = {
            "venue": server.url,
            "redis": redis_url,
            "prefix": prefix,
            "state_dir": str(state_dir),
            "key": KEY,
            "secret": SECRET,
            "scale": scale,
            "wall0": wall0,
            "venue0": venue0,
            "limit": limit,
        }
        launcher.start("budget", [{**base, "index": i} for i in range(bots)])
        # Measure whole venue minutes from the first one that starts after the release.
        first_minute = math.floor(clock.time() / 60) + 1
        results = launcher.go(end=(first_minute + minutes) * 60.0)
        finished = clock.time()
    used: dict[int, int] = defaultdict(int)
    for result in results:
        for at in result["answered"]:
            used[math.floor(at / 60)] += 20
    return (
        results,
        {m: used[m] for m in range(first_minute, first_minute + minutes)},
        dialect,
        finished,
    )


def test_four_bot_processes_share_one_budget_without_a_429(
    launcher: Launcher, redis_url: str, prefix: str, tmp_path: Path
) -> None:
    limit = 600
    results, used, dialect, end = run_budget_fleet(
        launcher, redis_url, prefix, tmp_path, limit=limit
    )
    assert all(r["shared"] for r in results), "a bot fell back to its local slice"
    assert sum(r["throttled"] for r in results) == 0, "the venue answered 429"
    assert sum(r["banned"] for r in results) == 0
    assert all(s < 400 for r in results for s in r["statuses"])
    assert dialect.limiter.banned_until("127.0.0.1", end) is None
    # Every bot got a share, and together they used at least 80 % of every full minute.
    assert all(r["answered"] for r in results)
    print(f"\nfleet budget: weight answered per venue minute (limit {limit}): {used}")
    assert all(0.8 * limit <= u <= limit for u in used.values()), used
