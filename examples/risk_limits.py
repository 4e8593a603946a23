"""Personal risk limits from a TOML policy, and the kill switch tripping and being resumed.

``examples/policy.toml`` caps leverage at 5x, requires a stop on every entry (and that the stop
clears liquidation by 2 %), limits the day's loss to 150 USDT and the drawdown to 10 %. This
script walks a bot into each limit on the mock venue, on simulated time:

1. three orders denied before anything is sent: leverage above the policy, no stop, a stop
   the venue would liquidate the position before reaching;
2. an entry that passes, then a flash crash: the day's loss goes past its limit, the trigger
   engages the kill switch, and the bot's next order is refused with the trip's reason;
3. a resume refused during the cooling period, then a resume to REDUCING (positions may only
   shrink), the bot flattening, and the operator accepting the loss and re-arming to ACTIVE.

From a shell, against a live bot's state directory, the same steps are
``safeguard kill``, ``safeguard status`` and ``safeguard resume`` (see ``safeguard --help``).

    python examples/risk_limits.py [--policy examples/policy.toml]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from safeguard import OrderDenied, Policy, TradingHalted
from safeguard.killswitch import EquityUpdate, ResumeRefused, RiskMonitor, TradingState
from safeguard.testing import paper_account, sandbox_policy

SYMBOL = "BTC/USDT:USDT"
HERE = Path(__file__).resolve().parent


def entry(exchange: Any, amount: float, stop_fraction: float | None) -> Any:
    """A market buy; ``stop_fraction`` below the last price is the declared stop."""
    params = {}
    if stop_fraction is not None:
        last = float(exchange.fetch_ticker(SYMBOL)["last"])
        stop = float(exchange.price_to_precision(SYMBOL, last * (1 - stop_fraction)))
        params = {"stopLoss": {"triggerPrice": stop}}
    return exchange.create_order(SYMBOL, "market", "buy", amount, None, params)


def try_entry(label: str, exchange: Any, amount: float, stop_fraction: float | None) -> None:
    try:
        order = entry(exchange, amount, stop_fraction)
    except OrderDenied as exc:
        print(f"{label}: denied {exc.code}: {exc.reason}")
    except TradingHalted as exc:
        print(f"{label}: refused {exc.code} (kill switch {exc.state}: {exc.reason})")
    else:
        print(f"{label}: filled order {order['id']}, {order['filled']} at {order['average']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default=str(HERE / "policy.toml"), help="policy TOML file")
    args = parser.parse_args()

    state_dir = tempfile.mkdtemp(prefix="safeguard-example-")
    # The limits come from the file; the state (latch, equity peak, journal) goes to a
    # scratch directory so the example never touches a real bot's kill switch.
    policy = sandbox_policy(state_dir, Policy.load(args.policy))
    limits = policy.kill_switch.triggers
    print(
        f"policy {policy.version}: max leverage {policy.risk.max_leverage}x, "
        f"daily loss {limits.max_daily_loss} USDT, drawdown {limits.max_drawdown_pct} %, "
        f"stops required: {policy.risk.require_stop}"
    )

    account = paper_account(symbols=("BTCUSDT",), wallet=5_000.0)
    monitor = RiskMonitor.from_policy(policy)
    exchange = account.guarded(policy, state_dir=state_dir, triggers=monitor)
    switch = exchange.runtime.switch

    def watch_equity() -> None:
        """What a bot's loop does each bar: feed the account's equity to the triggers."""
        equity = float(exchange.fetch_balance()["USDT"]["total"])
        for trip in monitor.observe(EquityUpdate(account.clock.time(), equity)):
            print(f"kill switch tripped: {trip.code}: {trip.reason}")
            switch.engage(
                trip.reason, by="trigger", state=TradingState(trip.action), code=trip.code
            )
        marks = monitor.marks
        start = f"{marks.day_start:,.2f}" if marks is not None else "?"
        print(f"equity {equity:,.2f} USDT (day start {start})")

    def resume(to: TradingState, reason: str) -> None:
        try:
            state = switch.resume(by="operator", to=to, reason=reason)
        except ResumeRefused as exc:
            wait = (exc.retry_at or 0.0) - account.clock.time()
            print(f"resume to {to} refused: {exc.code}, retry in {wait:.1f} s")
            account.advance(max(wait, 0.0))
            state = switch.resume(by="operator", to=to, reason=reason)
        print(f"resumed to {state.state} by {state.by} ({state.reason})")

    exchange.load_markets()
    # Isolated margin: the position can lose only its own margin, so leverage sets how far
    # liquidation is (at 5x, about 19 % below the entry).
    exchange.set_margin_mode("isolated", SYMBOL)
    exchange.set_leverage(10, SYMBOL)
    try_entry("10x leverage", exchange, 0.1, 0.05)
    exchange.set_leverage(5, SYMBOL)
    try_entry("no stop", exchange, 0.1, None)
    try_entry("stop 19.5% away at 5x", exchange, 0.1, 0.195)
    try_entry("stop 5% away at 5x", exchange, 0.1, 0.05)
    watch_equity()

    print("flash crash: BTC -4 % for 15 minutes")
    account.venue.spike("BTCUSDT", -4.0, duration_s=900)
    for _ in range(5):  # the bot's loop, one bar a minute
        account.advance(60)
        exchange.fetch_ticker(SYMBOL)
        watch_equity()
        if switch.state.state is not TradingState.ACTIVE:
            break
    try_entry("adding after the crash", exchange, 0.05, 0.05)

    try:
        switch.resume(by="operator")  # straight back in: refused while the switch cools
    except ResumeRefused as exc:
        wait = (exc.retry_at or 0.0) - account.clock.time()
        print(f"resume refused: {exc.code}, retry in {wait:.1f} s")
        account.advance(max(wait, 0.0))
    resume(TradingState.REDUCING, "flatten, then review")

    try_entry("new exposure while REDUCING", exchange, 0.05, 0.05)
    held = sum(float(p["contracts"]) for p in exchange.fetch_positions([SYMBOL]))
    close = exchange.create_order(SYMBOL, "market", "sell", held, None, {"reduceOnly": True})
    print(f"closed {close['filled']} with order {close['id']}; positions: {account.positions()}")

    # The loss is real and stays on today's books: re-arming means accepting it as the new
    # starting point, a deliberate operator decision (recorded in the state directory).
    equity = float(exchange.fetch_balance()["USDT"]["total"])
    monitor.restart_marks(equity, account.clock.time())
    monitor.resume(account.clock.time())
    resume(TradingState.ACTIVE, "loss reviewed; day restarted")
    watch_equity()
    try_entry("trading again", exchange, 0.05, 0.05)
    account.close()
    return 0 if switch.state.state is TradingState.ACTIVE else 1


if __name__ == "__main__":
    raise SystemExit(main())
