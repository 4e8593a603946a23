"""How fast a fleet shares a kill switch and a rate budget through Redis.

1. **Propagation** (``--runs`` times): four bot processes (tests/fleet/bot.py, real guard and
   ccxt over loopback HTTP to one venue) send orders; bot 0 engages. Measured from the moment
   bot 0 calls ``engage()``:
   - *slowest adoption*: the last of the other bots has the new state (its switch refuses);
   - *engage returned*: every live bot confirmed it adopted and drained its sends in flight.
   The venue's own order log is checked: no order stamped after the engage returned.
2. **Order-path cost**: what a bot pays per order for the shared switch (``version()`` and
   ``load()`` read a local copy) and per request for the shared budget (one Lua script round
   trip), against the in-process equivalents.
3. **Budget use**: four bot processes poll one venue with a 600/min weight limit through one
   shared budget for two venue minutes (the venue's clock runs ``--scale`` times wall speed):
   weight used per minute, 429s and 418s.

Needs redis-server. Run: ``.venv/bin/python benchmarks/bench_fleet.py`` (``--help``). Uses
``SG_TEST_REDIS_URL`` if set, else starts a private redis-server.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from safeguard._config import Policy, ThrottleConfig
from safeguard.fleet._budget import RedisRateBudget
from safeguard.fleet._redis_store import RedisStateStore
from safeguard.guard._throttle import RateBudget, RequestKind

HERE = Path(__file__).resolve().parent
ENGAGE_TARGET_S = 1.0
"""An engage in one bot returns (every bot adopted it and drained its sends) within this."""
BUDGET_USE_TARGET = 0.8
"""Four bots sharing one budget use at least this share of the limit in every full minute."""
HARNESS = HERE.parent / "tests" / "fleet" / "harness.py"


def _harness() -> Any:
    spec = importlib.util.spec_from_file_location("fleet_harness", HARNESS)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _redis(directory: Path) -> tuple[str, subprocess.Popen[bytes] | None]:
    shared = os.environ.get("SG_TEST_REDIS_URL")
    if shared:
        return shared, None
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    options = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)]
    process = subprocess.Popen(
        [server, "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.01)
    return f"redis://127.0.0.1:{port}/0", process


def _ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (
        f"median {statistics.median(ordered) * 1e3:6.1f} ms   p95 {p95 * 1e3:6.1f} ms   "
        f"max {ordered[-1] * 1e3:6.1f} ms"
    )


def propagation(harness: Any, launcher: Any, url: str, tmp: Path, runs: int) -> None:
    adoption, returned = [], []
    late_orders = 0
    for run in range(runs):
        state = tmp / f"kill-{run}"
        state.mkdir()
        results, orders = harness.run_kill_fleet(launcher, url, uuid.uuid4().hex[:10], state)
        [engager] = [r for r in results if "engage_started" in r]
        started, done = engager["engage_started"], engager["engage_returned"]
        adoption.append(max(r["adopted_at"] for r in results if r is not engager) - started)
        returned.append(done - started)
        late_orders += sum(1 for o in orders if o["time"] > done * 1000 + 1)
    print(f"propagation, {harness.BOTS} bot processes, {runs} runs (from engage() called):")
    print(f"  slowest bot adopted    {_ms(adoption)}")
    print(f"  engage returned        {_ms(returned)}   (every bot confirmed)")
    print(f"  orders in the venue's log after the engage returned: {late_orders}")
    # The targets the fleet tests used to assert on wall time (they now assert only what holds
    # on any machine): checked here, where the machine's speed is what is measured.
    slowest = max(returned)
    verdict = "met" if slowest < ENGAGE_TARGET_S else "MISSED"
    print(
        f"  target: engage returned within {ENGAGE_TARGET_S:g} s in every run: {verdict} "
        f"(slowest {slowest * 1e3:.0f} ms)"
    )


def order_path(url: str, n: int) -> None:
    policy = Policy.build(fleet={"redis_url": url, "key_prefix": uuid.uuid4().hex[:10]})
    with RedisStateStore(policy.fleet) as store:
        start = time.perf_counter()
        for _ in range(n):
            store.version()
            store.load()
        local = (time.perf_counter() - start) / n
    throttle = ThrottleConfig(weight_limit_per_minute=10**9)
    shared = RedisRateBudget(policy.fleet, "ip", "acct", throttle=throttle)
    alone = RateBudget.standalone(throttle)
    now = time.time()
    timings = {}
    for name, budget in (("shared (Redis Lua)", shared), ("in-process", alone)):
        start = time.perf_counter()
        for i in range(n):
            budget.decide(RequestKind.READ, 1, now + i * 1e-6)
        timings[name] = (time.perf_counter() - start) / n
    shared.close()
    print(f"order path, {n} calls each:")
    print(f"  switch: version() + load() on the local copy   {local * 1e6:8.2f} µs")
    for name, seconds in timings.items():
        print(f"  budget.decide, {name:<20}           {seconds * 1e6:8.2f} µs")


def budget_use(harness: Any, launcher: Any, url: str, tmp: Path, scale: float) -> None:
    state = tmp / "budget"
    state.mkdir()
    limit = 600
    results, used, dialect, end = harness.run_budget_fleet(
        launcher, url, uuid.uuid4().hex[:10], state, limit=limit, scale=scale
    )
    throttled = sum(r["throttled"] for r in results)
    banned = sum(r["banned"] for r in results)
    shares = [len(r["answered"]) for r in results]
    print(f"budget, {len(results)} bot processes, weight limit {limit}/min, clock x{scale:g}:")
    for minute, weight in used.items():
        print(f"  venue minute {minute}: weight {weight:4d} = {weight / limit:.0%} of the limit")
    print(f"  429 answers: {throttled}   418 answers: {banned}   requests per bot: {shares}")
    venue_ban = dialect.limiter.banned_until("127.0.0.1", end)
    print(f"  venue ban at the end: {venue_ban}")
    lowest = min(used.values()) / limit
    verdict = "met" if lowest >= BUDGET_USE_TARGET else "MISSED"
    print(
        f"  target: at least {BUDGET_USE_TARGET:.0%} of the limit used in every full minute: "
        f"{verdict} (lowest {lowest:.0%})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="propagation runs (default 10)")
    parser.add_argument("--calls", type=int, default=5000, help="order-path calls")
    parser.add_argument("--scale", type=float, default=60.0, help="venue clock speed-up")
    args = parser.parse_args()
    harness = _harness()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        url, server = _redis(tmp)
        launcher = harness.Launcher()
        try:
            propagation(harness, launcher, url, tmp, args.runs)
            order_path(url, args.calls)
            budget_use(harness, launcher, url, tmp, args.scale)
        finally:
            launcher.close()
            if server is not None:
                server.kill()
                server.wait()


if __name__ == "__main__":
    main()
