"""Cost of the stress grid and of feeding the risk monitor, for the order path's budget.

Run: ``.venv/bin/python benchmarks/bench_stress_triggers.py``. Prints the best of five runs per
case. Timings are machine-dependent and are reported, never asserted.

- ``survives_grid`` is what a verdict with ``require_stress_survival`` pays per order.
- ``stress_test`` adds the bisection for each regime's smallest liquidating shock (the CLI).
- Monitor events are what the guard pays per order, per mark update and per account update;
  a new equity high also writes the peak file (fsync), measured separately on a real directory.
"""

from __future__ import annotations

import tempfile
import timeit
from collections.abc import Callable

from safeguard._config import Policy, TriggerConfig
from safeguard.killswitch._equity import EquityStore
from safeguard.killswitch._triggers import (
    AccountUpdate,
    EquityUpdate,
    MarkUpdate,
    OrderSubmitted,
    RiskMonitor,
)
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._stress import DepthProfile, StressGrid, stress_test, survives_grid
from safeguard.risk._tiers import (
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
)

T0 = 1_763_700_000.0
TABLES = (BINANCE_BTCUSDT_TIERS, BINANCE_ETHUSDT_TIERS, BINANCE_SOLUSDT_TIERS)
DEPTH = DepthProfile(((0.0002, 1.0), (0.001, 4.0), (0.003, 15.0), (0.01, 60.0)))


def account(legs: int) -> Account:
    positions = tuple(
        PositionLeg(
            f"SYM{i}/USDT:USDT",
            1 if i % 2 == 0 else -1,
            1.0 + i,
            1_000.0,
            1_000.0 * (1.0 + 0.01 * i),
            TABLES[i % 3],
            isolated_wallet=300.0 if i % 4 == 3 else None,
        )
        for i in range(legs)
    )
    return Account(wallet_balance=5_000.0 * legs, positions=positions)


def grid(acct: Account) -> StressGrid:
    policy = Policy.build()
    depth = {leg.symbol: DEPTH for leg in acct.positions}
    return StressGrid.from_config(policy.risk.stress, depth=depth, taker_fee=0.0005)


def best(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    print("stress grid: 22 shocks x 3 regimes (the policy default)")
    for legs in (1, 3, 5, 10):
        acct = account(legs)
        g = grid(acct)
        survive = best(lambda a=acct, g=g: survives_grid(a, g), 20)  # type: ignore[misc]
        full = best(lambda a=acct, g=g: stress_test(a, g), 5)  # type: ignore[misc]
        print(
            f"  {legs:2d} positions: survives_grid {survive * 1e3:7.2f} ms"
            f"   stress_test (with breakpoints) {full * 1e3:7.2f} ms"
        )

    print("risk monitor, per event (memory only)")
    config = TriggerConfig(max_drawdown_pct=20.0, max_daily_loss=1e9, max_orders_per_window=10**6)
    monitor = RiskMonitor(config)
    for i in range(20):
        monitor.observe(MarkUpdate(T0, f"SYM{i}/USDT:USDT"))
    clock = iter(range(10**9))
    order = best(lambda: monitor.observe(OrderSubmitted(T0 + next(clock) * 1e-3)), 20_000)
    mark = best(lambda: monitor.observe(MarkUpdate(T0 + 1, "SYM0/USDT:USDT")), 20_000)
    equity = best(lambda: monitor.observe(EquityUpdate(T0 + 1, 1.0)), 20_000)
    acct = account(5)
    update = best(lambda: monitor.observe(AccountUpdate(T0 + 1, acct)), 2_000)
    print(f"  order submitted (20 feeds watched) {order * 1e6:8.1f} us")
    print(f"  mark update                        {mark * 1e6:8.1f} us")
    print(f"  equity update, no new high         {equity * 1e6:8.1f} us")
    print(f"  account update, 5 positions        {update * 1e6:8.1f} us (liquidation + limits)")

    with tempfile.TemporaryDirectory() as directory:
        persisted = RiskMonitor(config, store=EquityStore(directory))
        rising = iter(range(1, 10**9))
        high = best(lambda: persisted.observe(EquityUpdate(T0, 1_000.0 + next(rising))), 200)
        print(f"  equity update, new high (fsync'd)  {high * 1e6:8.1f} us")


if __name__ == "__main__":
    main()
