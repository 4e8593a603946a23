"""Embedding the guard in a synchronous strategy loop.

A trend follower (safeguard's built-in ``TrendFollower``: pyramids into a trend, trails a
stop) runs bar by bar on the mock Binance USD-M venue while the venue misbehaves: JSON 503s,
orders carried out whose answer says 503, answers that never arrive. The loop shows what to
catch and why each branch differs:

* ``OrderDenied``: a pre-trade check said no before anything was sent; log the code, go on.
* ``TradingHalted``: the kill switch is engaged; stop opening positions until a human resumes.
* ``OutcomeUnknown``: the order may exist. Never resend it; ``reconcile()`` settles it by its
  client order id once the venue answers again.
* ``RetriesExhausted``: a read kept failing within its budget; this bar is lost, not the bot.

Live, the only change is where the exchange comes from::

    exchange = guard(ccxt.binanceusdm({"apiKey": ..., "secret": ...}), Policy.load("policy.toml"))

and the loop sleeps until the next bar instead of advancing a simulated clock.

    python examples/sync_loop.py [--hours 4] [--seed 7]
"""

from __future__ import annotations

import argparse
from collections import Counter

from safeguard import (
    OrderDenied,
    OutcomeUnknown,
    Policy,
    RetriesExhausted,
    SafeguardError,
    TradingHalted,
)
from safeguard.guard import EventKind, Hooks, RetryEvent
from safeguard.paper import Bar, TrendFollower
from safeguard.testing import paper_account

SYMBOLS = ("BTC/USDT:USDT",)
BAR_S = 120.0

# A bad hour, over and over: what a real venue does on a busy day, compressed.
FAULTS = {
    "seed": 3,
    "rules": [
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "probability": 0.4},
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "processed": True,
         "probability": 0.4},
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/algoOrder",
         "probability": 0.2},
        {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 502, "body": "html",
         "probability": 0.1},
    ],
}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours (default 4)")
    parser.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    args = parser.parse_args()

    account = paper_account(seed=args.seed, symbols=("BTCUSDT",), wallet=10_000.0, faults=FAULTS)
    retries: Counter[str] = Counter()

    def on_retry(event: RetryEvent) -> None:
        retries[event.reason] += 1

    hooks = Hooks()
    hooks.subscribe(EventKind.RETRY, on_retry)
    policy = Policy.build(risk={"max_leverage": 15.0})
    exchange = account.guarded(policy, hooks=hooks)
    strategy = TrendFollower(SYMBOLS)

    denials: Counter[str] = Counter()
    unknown: list[str] = []
    lost_bars = 0
    halted = False
    for index in range(int(args.hours * 3600 / BAR_S)):
        now = account.advance(BAR_S)
        if unknown:
            # The venue may answer again now: settle orders whose outcome we could not see.
            for client_id, order in exchange.reconcile():
                found = "exists" if order is not None else "never reached the venue"
                print(f"reconciled {client_id}: {found}")
            unknown.clear()
        try:
            strategy.on_bar(exchange, Bar(index, now, SYMBOLS))
        except OrderDenied as exc:
            denials[exc.code] += 1
            print(f"bar {index}: denied {exc.code}: {exc.reason}")
        except TradingHalted as exc:
            print(f"bar {index}: kill switch {exc.state} ({exc.reason}); stopping the loop")
            halted = True
            break
        except OutcomeUnknown as exc:
            unknown.append(exc.client_order_id)
            print(f"bar {index}: outcome unknown for {exc.client_order_id}; will reconcile")
        except RetriesExhausted as exc:
            lost_bars += 1
            print(f"bar {index}: gave up after {exc.attempts} attempts: {exc}")
        except SafeguardError as exc:
            # The venue refused (InvalidOrder, InsufficientFunds, ...): nothing was created.
            denials[exc.code] += 1
            print(f"bar {index}: {type(exc).__name__} {exc.code}: {exc}")

    fired = account.faults_fired()
    account.clear_faults()
    exchange.reconcile()
    on_venue = account.orders()
    client_ids = [o["clientOrderId"] for o in on_venue]
    unresolved = exchange.runtime.core.journal.unresolved()
    print(f"simulated {args.hours:g} h in {BAR_S:g}-second bars; halted: {halted}")
    print(f"orders on the venue: {len(on_venue)}, unresolved in the journal: {len(unresolved)}")
    print(f"duplicate client order ids: {len(client_ids) - len(set(client_ids))}")
    print(f"retries by reason: {dict(sorted(retries.items()))}")
    print(f"denials by code: {dict(sorted(denials.items()))}; bars lost: {lost_bars}")
    print(f"faults fired per rule: {fired}")
    print(f"positions: {account.positions()}; equity: {account.equity():,.2f} USDT")
    account.close()
    return 1 if unresolved or len(client_ids) != len(set(client_ids)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
