"""Liquidation price cost per call, for the pre-trade verdict's budget (~30 µs in all).

Run: ``.venv/bin/python benchmarks/bench_liquidation.py``. Prints the best of five runs, in
microseconds of CPU time per call (process time, so a busy shared machine distorts it less than
wall time), for each model and account shape. Timings are machine-dependent and are reported,
never asserted.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import LiquidationOptions, PositionLeg, get_model
from safeguard.risk._tiers import (
    BINANCE_BTCUSD_COINM_TIERS,
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
)

BTC = "BTC/USDT:USDT"
FUNDING = FundingEstimate(0.0001, 28_800.0, 28_800.0, 1_000.0, 0.0)
OPTIONS = LiquidationOptions(closing_fee_rate=0.0005, safety_buffer_rate=0.001, funding=FUNDING)


def isolated() -> PositionLeg:
    return PositionLeg(BTC, 1, 2.0, 60_000.0, 60_100.0, BINANCE_BTCUSDT_TIERS, "BOTH", 12_000.0)


ISOLATED = isolated()
CROSS = PositionLeg(BTC, 1, 2.0, 60_000.0, 60_100.0, BINANCE_BTCUSDT_TIERS)
OTHERS = (
    PositionLeg("ETH/USDT:USDT", -1, 30.0, 3_000.0, 3_050.0, BINANCE_ETHUSDT_TIERS),
    PositionLeg("SOL/USDT:USDT", 1, 500.0, 150.0, 149.0, BINANCE_SOLUSDT_TIERS),
    PositionLeg("ETH/USDT:USDT", 1, 10.0, 3_100.0, 3_050.0, BINANCE_ETHUSDT_TIERS, "LONG"),
)
HEDGE_LONG = PositionLeg(BTC, 1, 2.0, 60_000.0, 60_100.0, BINANCE_BTCUSDT_TIERS, "LONG")
HEDGE_SHORT = PositionLeg(BTC, -1, 0.5, 61_000.0, 60_100.0, BINANCE_BTCUSDT_TIERS, "SHORT")
COIN = PositionLeg(
    "BTC/USD:BTC", 1, 200_000.0, 60_000.0, 60_100.0, BINANCE_BTCUSD_COINM_TIERS, "BOTH", 0.5,
    inverse=True,
)  # fmt: skip


def cases() -> dict[str, Callable[[], object]]:
    usdm, coinm = get_model("binanceusdm"), get_model("binancecoinm")
    bybit, okx, generic = get_model("bybit"), get_model("okx"), get_model("generic")
    return {
        "PositionLeg(...) construction": isolated,
        "binanceusdm isolated": lambda: usdm.liquidation_price(ISOLATED, wallet_balance=0.0),
        "binanceusdm isolated + fee/buffer/funding": lambda: usdm.liquidation_price(
            ISOLATED, wallet_balance=0.0, options=OPTIONS
        ),
        "binanceusdm cross, 3 other legs": lambda: usdm.liquidation_price(
            CROSS, wallet_balance=50_000.0, others=OTHERS
        ),
        "binanceusdm cross hedge (2 legs move)": lambda: usdm.liquidation_price(
            HEDGE_LONG, wallet_balance=50_000.0, others=(HEDGE_SHORT,)
        ),
        "binancecoinm isolated": lambda: coinm.liquidation_price(COIN, wallet_balance=0.0),
        "bybit isolated": lambda: bybit.liquidation_price(ISOLATED, wallet_balance=0.0),
        "okx isolated": lambda: okx.liquidation_price(ISOLATED, wallet_balance=0.0),
        "generic (bisection) isolated": lambda: generic.liquidation_price(
            ISOLATED, wallet_balance=0.0
        ),
        "generic (bisection) cross, 3 other legs": lambda: generic.liquidation_price(
            CROSS, wallet_balance=50_000.0, others=OTHERS
        ),
    }


def main() -> None:
    for name, call in cases().items():
        number = 200 if name.startswith("generic") else 5_000
        runs = timeit.repeat(call, number=number, repeat=5, timer=time.process_time)
        best = min(runs) / number
        print(f"{name:45s} {best * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
