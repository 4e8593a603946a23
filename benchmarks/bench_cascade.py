"""Cost of a cascade grid: 3 symbols, 10 shocks x 10 correlations x 3 book depths (300 cells).

Run: ``.venv/bin/python benchmarks/bench_cascade.py [--runs 30]``. Target (issue 14): the whole
grid in under 50 ms on the project's machine. Each run builds the grid from scratch (inputs
checked, ladders built, every cell's cascade stepped to its end); ``sum(range(200))`` is timed
in the same process, interleaved with the runs, to calibrate the machine's speed at that moment.
Prints the load average, the median and the best run, in wall time and in this thread's CPU
time (which leaves out the time spent waiting for a core on a busy machine). Timings are
reported, never asserted; the script does assert the grid is not trivial (cells that survive,
cells that cascade).

Also timed: the correlation estimate the verdict's cascade reads under
``risk.stress.correlation_source = "estimated"`` (every pair of the 3 symbols from 240
one-minute closes, :func:`safeguard.risk._correlation.estimate_correlation`), which a guard makes
once per interval, not per verdict.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import random
import statistics
import time
import timeit

from safeguard.risk._cascade import (
    CascadeGrid,
    CascadeMarket,
    CascadeSymbol,
    CrowdPosition,
    cascade_grid,
    crowd_from_open_interest,
)
from safeguard.risk._correlation import estimate_correlation
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._stress import DepthProfile
from safeguard.risk._tiers import (
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
)

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
MARKS = {BTC: 60_000.0, ETH: 3_000.0, SOL: 150.0}
VOLS = {BTC: 0.6, ETH: 0.8, SOL: 1.1}  # annualized; only the ratios matter
TIERS = {BTC: BINANCE_BTCUSDT_TIERS, ETH: BINANCE_ETHUSDT_TIERS, SOL: BINANCE_SOLUSDT_TIERS}
# Book depth in units of each symbol, as (offset from the mark, quantity) levels.
DEPTH = {
    BTC: DepthProfile(((0.0005, 2.0), (0.002, 6.0), (0.006, 15.0), (0.015, 30.0))),
    ETH: DepthProfile(((0.0005, 30.0), (0.002, 90.0), (0.006, 250.0), (0.015, 500.0))),
    SOL: DepthProfile(((0.0008, 400.0), (0.003, 1_200.0), (0.008, 3_000.0), (0.02, 6_000.0))),
}
LEVERAGE = [(5.0, 0.3), (10.0, 0.3), (20.0, 0.25), (50.0, 0.15)]
OPEN_INTEREST = {BTC: 4_000_000.0, ETH: 2_000_000.0, SOL: 800_000.0}

SHOCKS = [-x / 100 for x in (1, 2, 3, 5, 7, 10, 13, 16, 20, 25)]
CORRELATIONS = [-0.2, 0.0, 0.2, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
DEPTHS = [0.25, 1.0, 4.0]


def inputs() -> tuple[Account, CascadeMarket, tuple[CrowdPosition, ...]]:
    account = Account(
        wallet_balance=15_000.0,
        positions=(
            PositionLeg(BTC, 1, 2.0, 60_500.0, MARKS[BTC], TIERS[BTC]),
            PositionLeg(ETH, 1, 30.0, 3_050.0, MARKS[ETH], TIERS[ETH]),
            PositionLeg(SOL, -1, 400.0, 148.0, MARKS[SOL], TIERS[SOL]),  # the "hedge"
        ),
    )
    market = CascadeMarket(
        {s: CascadeSymbol(MARKS[s], VOLS[s], DEPTH[s], TIERS[s]) for s in MARKS},
        latency=0.5,
        refill_rate=0.2,
        taker_fee=0.0005,
    )
    crowd = tuple(
        member
        for symbol, oi in OPEN_INTEREST.items()
        for member in crowd_from_open_interest(symbol, oi, LEVERAGE, long_share=0.6)
    )
    return account, market, crowd


def build(account: Account, market: CascadeMarket, crowd: tuple[CrowdPosition, ...]) -> CascadeGrid:
    return cascade_grid(
        account,
        market,
        shock_symbol=BTC,
        shocks=SHOCKS,
        correlations=CORRELATIONS,
        depth_multipliers=DEPTHS,
        crowd=crowd,
    )


def closes() -> dict[str, dict[int, float]]:
    """240 one-minute closes per symbol, correlated through a seeded market factor."""
    rng = random.Random(14)
    prices = {symbol: {0: mark} for symbol, mark in MARKS.items()}
    for minute in range(1, 240):
        market = rng.gauss(0.0, 1.0)
        for series in prices.values():
            shock = 0.9 * market + math.sqrt(1 - 0.81) * rng.gauss(0.0, 1.0)
            series[minute] = series[minute - 1] * math.exp(0.001 * shock)
    return prices


def estimate(window: dict[str, dict[int, float]]) -> None:
    estimate_correlation(window, fallback=0.8, min_samples=30, full_samples=120, toward_one=0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    account, market, crowd = inputs()
    grid = build(account, market, crowd)  # warm-up, and the sanity checks below
    cells = len(grid.paths)
    cascading = sum(1 for p in grid.paths.values() if p.closes)
    liquidating = sum(1 for p in grid.paths.values() if not p.survives)
    longest = max(p.steps for p in grid.paths.values())
    assert cells == 300, cells
    assert 0 < liquidating < cells, liquidating
    grid_ms: list[float] = []
    cpu_ms: list[float] = []  # CPU time of this thread: the wall time minus waiting for a core
    calibration_us: list[float] = []
    gc.disable()
    try:
        for _ in range(args.runs):
            calibration_us.append(
                min(timeit.repeat("sum(range(200))", number=2_000, repeat=3)) / 2_000 * 1e6
            )
            start, cpu = time.perf_counter(), time.thread_time()
            build(account, market, crowd)
            grid_ms.append((time.perf_counter() - start) * 1e3)
            cpu_ms.append((time.thread_time() - cpu) * 1e3)
        window = closes()
        estimate_ms: list[float] = []
        estimate_cpu_ms: list[float] = []
        for _ in range(args.runs):
            start, cpu = time.perf_counter(), time.thread_time()
            estimate(window)
            estimate_ms.append((time.perf_counter() - start) * 1e3)
            estimate_cpu_ms.append((time.thread_time() - cpu) * 1e3)
    finally:
        gc.enable()
    load = os.getloadavg()
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, cpus: {os.cpu_count()}")
    print(
        f"grid: {cells} cells (10 shocks x 10 correlations x 3 depths), 3 symbols, "
        f"{len(account.positions)} account positions + {len(crowd)} crowd positions; "
        f"{cascading} cells cascade, {liquidating} liquidate the account, longest path "
        f"{longest} steps"
    )
    print(
        f"calibration sum(range(200)): median {statistics.median(calibration_us):.2f} us, "
        f"best {min(calibration_us):.2f} us"
    )
    print(
        f"cascade grid: median {statistics.median(grid_ms):.1f} ms, best {min(grid_ms):.1f} ms, "
        f"worst {max(grid_ms):.1f} ms over {args.runs} runs (target < 50 ms)"
    )
    print(
        f"cascade grid, CPU time: median {statistics.median(cpu_ms):.1f} ms, "
        f"best {min(cpu_ms):.1f} ms"
    )
    print(
        f"correlation estimate (3 pairs, 240 closes each): median "
        f"{statistics.median(estimate_ms):.2f} ms, CPU median "
        f"{statistics.median(estimate_cpu_ms):.2f} ms, best {min(estimate_cpu_ms):.2f} ms"
    )


if __name__ == "__main__":
    main()
