"""Runs fleets of bot processes (bot.py) against a venue served from the calling process.

Used by test_fleet_processes.py and benchmarks/bench_fleet.py (both load it by path).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from safeguard._clock import SystemClock
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._ratelimit import RateLimits as VenueLimits
from safeguard.venue._server import VenueServer

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
        self.release(**said)
        return self.reports()

    def release(self, **said: Any) -> None:
        """Release the bots (each gets ``said``) without waiting for them."""
        self._send(said)

    def reports(self) -> list[dict[str, Any]]:
        """The bots' reports, once every one of them has finished."""
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


def bot_module() -> Any:
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
            "bots": bots,
            "run_s": 20.0,
            "after_s": 0.2,
        }
        launcher.start("kill", [{**base, "index": i} for i in range(bots)])
        results = launcher.go()
        orders = venue.all_orders(KEY, symbol="ETHUSDT")
    return results, orders


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
    clock = bot_module().ScaledClock(wall0, venue0, scale)
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


def _wait_for(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _seen_states(state_dir: Path, index: int) -> list[list[Any]]:
    """What bot ``index`` has seen so far: ``[time, state, code, link up]`` per change."""
    try:
        text = (state_dir / f"states-{index}.jsonl").read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    # A line still being written is not whole yet: the next look reads it.
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


def run_outage_fleet(
    launcher: Launcher,
    redis: Any,
    prefix: str,
    state_dir: Path,
    *,
    on_disconnect: str = "REDUCING",
    bots: int = BOTS,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]:
    """Bots trade while ``redis`` (a killable server) dies and comes back empty twice: once
    with the fleet ACTIVE, once after bot 0 engaged. Returns the bots' reports, the venue's
    orders and the test's own timeline (wall clock)."""
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=SystemClock())
    venue.create_account(KEY, SECRET, wallet=1_000_000.0)
    huge = 10**7
    dialect = Dialect(
        venue,
        limits=VenueLimits(weight_per_minute=huge, orders_per_10s=huge, orders_per_minute=huge),
    )
    marks: dict[str, float] = {}
    unsafe = (on_disconnect, "STATE_STORE_UNAVAILABLE")
    halted = ("HALTED", "MANUAL")
    with VenueServer(venue, dialect=dialect) as server:
        base = {
            "venue": server.url,
            "redis": redis.url,
            "prefix": prefix,
            "state_dir": str(state_dir),
            "key": KEY,
            "secret": SECRET,
            "engager": 0,
            "on_disconnect": on_disconnect,
            "run_s": 120.0,  # an upper bound: the bots stop when stop.flag appears
        }
        launcher.start("outage", [{**base, "index": i} for i in range(bots)])
        launcher.release()  # the reports come once stop.flag appears
        prefixes = [f"b{i}-" for i in range(bots)]

        def every_bot_sent_since(moment: float) -> bool:
            orders = venue.all_orders(KEY, symbol="ETHUSDT")
            recent = [o["clientOrderId"] for o in orders if o["time"] / 1000 > moment]
            return all(any(c.startswith(p) for c in recent) for p in prefixes)

        def every_bot_saw_since(moment: float, what: Any) -> bool:
            return all(
                any(at > moment and what(state, code, up) for at, state, code, up in seen)
                for seen in (_seen_states(state_dir, i) for i in range(bots))
            )

        # Each phase starts once every bot has visibly lived through the last one (each bot
        # appends what its switch and link say as it happens): events, not pauses.
        marks["trading"] = time.time()
        _wait_for(lambda: every_bot_sent_since(marks["trading"]), "every bot trading")
        marks["first_kill"] = time.time()
        redis.kill()
        _wait_for(
            lambda: every_bot_saw_since(
                marks["first_kill"],
                lambda state, code, up: not up and (state, code) == unsafe,
            ),
            "every bot in the safe state with Redis dead",
        )
        marks["first_restart"] = time.time()
        redis.start()
        _wait_for(lambda: every_bot_sent_since(marks["first_restart"]), "every bot trading again")
        marks["engage"] = time.time()
        (state_dir / "engage.flag").touch()
        _wait_for((state_dir / "engaged.flag").exists, "the engage")
        _wait_for(
            lambda: every_bot_saw_since(marks["engage"], lambda state, code, up: state == "HALTED"),
            "every bot halted",
        )
        marks["second_kill"] = time.time()
        redis.kill()
        _wait_for(
            lambda: every_bot_saw_since(marks["second_kill"], lambda state, code, up: not up),
            "every bot seeing Redis dead while halted",
        )
        marks["second_restart"] = time.time()
        redis.start()
        _wait_for(
            lambda: every_bot_saw_since(
                marks["second_restart"], lambda state, code, up: up and (state, code) == halted
            ),
            "every bot back on the empty Redis, still halted by the engage",
        )
        (state_dir / "stop.flag").touch()
        marks["stop"] = time.time()
        reports = launcher.reports()
        orders = venue.all_orders(KEY, symbol="ETHUSDT")
    return reports, orders, marks
