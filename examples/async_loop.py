"""Embedding the guard in an asyncio strategy loop.

The same guard over ``ccxt.async_support``: every venue call is awaited, and one guarded
exchange is shared by a task per symbol (``asyncio.gather``), as a bot trading several markets
would. Each task runs a small momentum rule: long above its moving average with a declared stop
and a reduce-only stop order behind the position, flat below it.

The venue misbehaves (slow answers, 503s, an order answer that never arrives); the guard retries
reads, resolves ambiguous orders by client order id, and its journal writes (fsynced on a live
bot) run off the event loop.

Live: ``exchange = guard(ccxt.async_support.binanceusdm({...}), Policy.load(...))``, then
``await exchange.close()`` at the end (``exchange.exchange`` is the raw ccxt client).

    python examples/async_loop.py [--hours 4] [--seed 11]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from safeguard import OrderDenied, OutcomeUnknown, Policy, SafeguardError, TradingHalted
from safeguard.testing import paper_account

BAR_S = 300.0
AVERAGE_BARS = 12
STOP_DISTANCE = 0.03
RISK_SHARE = 0.5  # notional per symbol, as a share of equity: 1x leverage across both

FAULTS = {
    "seed": 1,
    "rules": [
        {"kind": "latency", "distribution": "exponential", "ms": 80},
        {"kind": "error", "endpoint": "GET /fapi/v1/premiumIndex", "status": 503,
         "probability": 0.15},
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "processed": True,
         "probability": 0.2},
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order", "probability": 0.2},
    ],
}  # fmt: skip


@dataclass
class Momentum:
    """Long above the moving average (with a stop), flat below. One per symbol."""

    symbol: str
    prices: list[float] = field(default_factory=list)
    stop_id: str | None = None
    trades: int = 0

    async def on_bar(self, exchange: Any) -> None:
        ticker = await exchange.fetch_ticker(self.symbol)
        price = float(ticker["last"])
        self.prices = [*self.prices[-(AVERAGE_BARS - 1) :], price]
        if len(self.prices) < AVERAGE_BARS:
            return
        average = sum(self.prices) / len(self.prices)
        held = await self._held(exchange)
        if price > average and not held:
            await self._enter(exchange, price)
        elif price < average and held > 0:
            await self._exit(exchange, held)

    async def _held(self, exchange: Any) -> float:
        positions = await exchange.fetch_positions([self.symbol])
        return sum(float(p["contracts"] or 0) for p in positions if p["side"] == "long")

    async def _enter(self, exchange: Any, price: float) -> None:
        balance = await exchange.fetch_balance()
        amount = float(
            exchange.amount_to_precision(self.symbol, RISK_SHARE * balance["USDT"]["total"] / price)
        )
        stop = float(exchange.price_to_precision(self.symbol, price * (1 - STOP_DISTANCE)))
        # The declared stop is what the pre-trade verdict prices against liquidation...
        entry = await exchange.create_order(
            self.symbol, "market", "buy", amount, None, {"stopLoss": {"triggerPrice": stop}}
        )
        self.trades += 1
        # ...and this reduce-only stop order is what actually protects the position.
        protect = await exchange.create_order(
            self.symbol, "market", "sell", entry["filled"], None,
            {"stopLossPrice": stop, "reduceOnly": True},
        )  # fmt: skip
        self.stop_id = str(protect["id"])
        print(f"{self.symbol}: long {entry['filled']} at {entry['average']}, stop {stop}")

    async def _exit(self, exchange: Any, held: float) -> None:
        await exchange.create_order(self.symbol, "market", "sell", held, None, {"reduceOnly": True})
        self.trades += 1
        self.stop_id = None
        # Flat: every stop left on the symbol protects nothing any more.
        stops = await exchange.fetch_open_orders(self.symbol, None, None, {"trigger": True})
        for stop in stops:
            # Already fired or gone meanwhile: either way it is not resting any more.
            with contextlib.suppress(SafeguardError):
                await exchange.cancel_order(stop["id"], self.symbol, {"trigger": True})
        print(f"{self.symbol}: flat (sold {held})")


async def run(hours: float, seed: int) -> int:
    account = paper_account(seed=seed, symbols=("BTCUSDT", "ETHUSDT"), faults=FAULTS)
    exchange = account.guarded(Policy.build(risk={"max_leverage": 5.0}), asyncio=True)
    strategies = [Momentum("BTC/USDT:USDT"), Momentum("ETH/USDT:USDT")]
    outcomes: Counter[str] = Counter()
    try:
        await exchange.load_markets()
        for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
            await exchange.set_leverage(2, symbol)
        for _ in range(int(hours * 3600 / BAR_S)):
            account.advance(BAR_S)
            results = await asyncio.gather(
                *(s.on_bar(exchange) for s in strategies), return_exceptions=True
            )
            for strategy, result in zip(strategies, results, strict=True):
                if isinstance(result, OrderDenied):
                    outcomes[f"denied {result.code}"] += 1
                elif isinstance(result, OutcomeUnknown):
                    outcomes["outcome unknown"] += 1
                    print(f"{strategy.symbol}: {result.client_order_id} unknown; reconciling")
                    await exchange.reconcile()
                elif isinstance(result, TradingHalted):
                    print(f"kill switch {result.state}: {result.reason}")
                    return 1
                elif isinstance(result, SafeguardError):
                    outcomes[type(result).__name__] += 1
                elif isinstance(result, BaseException):
                    raise result  # a bug, not a venue problem: let it surface
        fired = account.faults_fired()
        account.clear_faults()
        await exchange.reconcile()
        client_ids = [o["clientOrderId"] for o in account.orders()]
        print(f"simulated {hours:g} h, two symbols on one guarded exchange")
        print(
            f"trades: {sum(s.trades for s in strategies)}; orders on the venue: {len(client_ids)}"
        )
        print(f"duplicate client order ids: {len(client_ids) - len(set(client_ids))}")
        print(f"faults fired per rule: {fired}; other outcomes: {dict(sorted(outcomes.items()))}")
        print(f"positions: {account.positions()}; equity: {account.equity():,.2f} USDT")
        return 0 if len(client_ids) == len(set(client_ids)) else 1
    finally:
        await exchange.close()
        await account.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=4.0, help="simulated hours (default 4)")
    parser.add_argument("--seed", type=int, default=11, help="market seed (default 11)")
    args = parser.parse_args()
    return asyncio.run(run(args.hours, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
