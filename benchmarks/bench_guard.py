"""What the guard adds to a ccxt call: reads and orders, side by side with raw ccxt.

Both clients are real ``ccxt.binanceusdm`` instances on the in-process mock venue (no sockets),
on a frozen simulated clock so market data stays fresh and no backoff or pacing wait happens.
For every guarded call the time spent inside ccxt (and the venue behind it) is measured by
wrapping the ccxt methods the guard calls; the guard's overhead is the call's total minus that.
The raw column times the same ccxt call made directly, for scale::

    .venv/bin/python benchmarks/bench_guard.py              # 3,000 reads, 1,500 orders
    .venv/bin/python benchmarks/bench_guard.py --reads 500 --orders 300

Orders alternate buy/sell market 0.01 ETH. The guard applies each answer's fill to its
position view, but re-reads the wallet after a fill (Binance's order answer carries no
commission): that extra venue request is reported as a count, not as overhead, because it is
a round trip to the venue, not CPU the guard spends (``bench_requests_per_order.py`` counts
requests per order by endpoint). The journal is measured both ways: fsync per pending record
(the default) and without (``durable_journal=False``). A third run stubs out the rate budget
and the health monitor, to show what the guard's own core costs apart from those two.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._observe import AlwaysNormal
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client

KEY, SECRET = "bench-key-0123456789", "bench-secret-0123456789abcdef"
SYMBOL = "ETH/USDT:USDT"
TIMED = (
    "fetch_ticker",
    "create_order",
    "fetch_balance",
    "fetch_positions",
    "fetch_order_book",
    "fetch_funding_rate",
    "fetch_leverage_tiers",
    "load_markets",
    "fetch_open_orders",
)


class Inner:
    """Accumulates time spent inside the wrapped ccxt methods, and counts the calls."""

    def __init__(self) -> None:
        self.ns = 0
        self.calls = 0

    def wrap(self, raw: Any) -> None:
        for name in TIMED:
            setattr(raw, name, self._timed(getattr(raw, name)))

    def _timed(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return method(*args, **kwargs)
            finally:
                self.ns += time.perf_counter_ns() - start
                self.calls += 1

        return call


class _NoPacing:
    """Stands in for the rate budget in ``--isolate`` runs (the guard's own cost only)."""

    def before(self, kind: Any, send: Any, now: float, deadline: float = 0.0) -> float:
        return 0.0

    def after(self, send: Any, answer: Any, ec: Any) -> float:
        return 0.0


def _isolate(ex: Any) -> None:
    core = ex.runtime.core
    core.pacer = _NoPacing()
    core.observer.health = AlwaysNormal()
    core.gate.health = AlwaysNormal()


def _rig(tmp: Path, durable: bool, label: str) -> tuple[Any, Any, Inner]:
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=1_000_000.0)
    venue.create_account(KEY + "-raw", SECRET, wallet=1_000_000.0)
    dialect = Dialect(venue)
    raw_plain = inprocess_client(dialect, KEY + "-raw", SECRET, client_ip="10.0.0.2")
    raw_guarded = inprocess_client(dialect, KEY, SECRET, client_ip="10.0.0.3")
    # The venue's own limits would throttle a benchmark loop: lift them on both clients' IPs.
    dialect.limits = type(dialect.limits)(10**9, 10**9, 10**9)
    policy = Policy.build(
        risk={"require_stop": False, "max_open_orders": None},
        throttle={"weight_limit_per_minute": 10**9, "orders_per_10s": 10**9,
                  "orders_per_minute": 10**9},
        kill_switch={"state_dir": str(tmp / "state"), "watch_state_file": False},
    )  # fmt: skip
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    inner = Inner()
    inner.wrap(raw_guarded)
    ex = guard(
        raw_guarded,
        policy,
        kill_switch=switch,
        clock=clock,
        journal_path=tmp / f"orders-{label}.jsonl",  # one writer per journal: one per run
        durable_journal=durable,
        budget=RateBudget.standalone(policy.throttle),
    )
    raw_plain.load_markets()
    ex.load_markets()
    return raw_plain, ex, inner


def _median_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000.0


def _p90_us(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=10)[-1] / 1000.0


def bench(
    reads: int, orders: int, durable: bool, tmp: Path, *, isolate: bool = False
) -> dict[str, float]:
    raw, ex, inner = _rig(tmp, durable, f"{durable}-{isolate}")
    if isolate:
        _isolate(ex)
    ex.fetch_ticker(SYMBOL)  # warm both paths
    raw.fetch_ticker(SYMBOL)

    raw_reads, guarded_reads, read_overhead = [], [], []
    for _ in range(reads):
        t0 = time.perf_counter_ns()
        raw.fetch_ticker(SYMBOL)
        raw_reads.append(time.perf_counter_ns() - t0)
        before = inner.ns
        t0 = time.perf_counter_ns()
        ex.fetch_ticker(SYMBOL)
        total = time.perf_counter_ns() - t0
        guarded_reads.append(total)
        read_overhead.append(total - (inner.ns - before))

    raw_orders, guarded_orders, order_overhead = [], [], []
    calls_before = inner.calls
    for i in range(orders):
        side = "buy" if i % 2 == 0 else "sell"
        t0 = time.perf_counter_ns()
        raw.create_order(SYMBOL, "market", side, 0.01)
        raw_orders.append(time.perf_counter_ns() - t0)
        before = inner.ns
        t0 = time.perf_counter_ns()
        ex.create_order(SYMBOL, "market", side, 0.01)
        total = time.perf_counter_ns() - t0
        guarded_orders.append(total)
        order_overhead.append(total - (inner.ns - before))
    requests_per_order = (inner.calls - calls_before) / orders
    ex.runtime.switch.close()
    ex.runtime.core.journal.close()
    return {
        "read_raw_us": _median_us(raw_reads),
        "read_guarded_us": _median_us(guarded_reads),
        "read_overhead_us": _median_us(read_overhead),
        "read_overhead_p90_us": _p90_us(read_overhead),
        "order_raw_us": _median_us(raw_orders),
        "order_guarded_us": _median_us(guarded_orders),
        "order_overhead_us": _median_us(order_overhead),
        "order_overhead_p90_us": _p90_us(order_overhead),
        "requests_per_order": requests_per_order,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3_000)
    parser.add_argument("--orders", type=int, default=1_500)
    args = parser.parse_args(argv)
    gc.collect()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s), "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"reads={args.reads} orders={args.orders} (medians; overhead = total - time in ccxt)")
    runs = [
        (False, False, "journal no-fsync"),
        (True, False, "journal fsync (the default)"),
        (False, True, "journal no-fsync, rate budget and health monitor stubbed out"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for durable, isolate, label in runs:
            r = bench(args.reads, args.orders, durable, Path(tmp), isolate=isolate)
            print(f"\n[{label}]")
            print(f"  read  fetch_ticker : raw {r['read_raw_us']:8.1f} us | guarded "
                  f"{r['read_guarded_us']:8.1f} us | guard adds {r['read_overhead_us']:6.1f} us "
                  f"(p90 {r['read_overhead_p90_us']:.1f})")  # fmt: skip
            print(f"  order create_order : raw {r['order_raw_us']:8.1f} us | guarded "
                  f"{r['order_guarded_us']:8.1f} us | guard adds {r['order_overhead_us']:6.1f} us "
                  f"(p90 {r['order_overhead_p90_us']:.1f}), "
                  f"{r['requests_per_order']:.2f} venue requests per guarded order")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
