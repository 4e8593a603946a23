"""A strategy written on ``watch_*`` (ccxt.pro), the way real bots are written, behind the guard.

The bot keeps four watches running: the ticker (its signal), the order book (where to rest its
entry), the mark price (where its stop goes) and its own orders (the fills). Each watch passes
straight through the guarded exchange, and the same answers feed the guard's view: the
verdict judges the bot's orders on what the streams said, and the order path sends only the
order, no REST re-read, however far apart the orders are.

Half-way, the venue's market streams stall for 30 s (the connection stays up, nothing is
sent). The guard sees the stall as stale data: the bot asks for a verdict each step of it, and
new exposure is denied once the streams have been quiet longer than the policy allows, until
they deliver again; the guard does not paper over the stall with a REST read.

Live: ``exchange = guard(ccxt.pro.binanceusdm({...}), Policy.load(...))``; the watches are
ccxt.pro's own. ``exchange.hold_streams([...])`` has the guard hold them itself instead.

    python examples/stream_strategy.py [--minutes 10] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import Counter
from typing import Any

from safeguard import OrderDenied, Policy
from safeguard.guard import EventKind, Hooks, RequestEvent
from safeguard.testing import paper_account

SYMBOL = "BTC/USDT:USDT"
STOP = {"stopLossPrice": 80_000.0}
STEP_S = 2.5
AVERAGE_TICKS = 12
STOP_DISTANCE = 0.02
STALL_S = 30.0
STALL = {"rules": [{"kind": "stream_stall", "start_s": 0, "end_s": STALL_S}]}


class Bot:
    """What the bot's watches last said, and its rule: long above the average, flat below."""

    def __init__(self, exchange: Any) -> None:
        self.exchange = exchange
        self.prices: list[float] = []
        self.best_bid: float | None = None
        self.mark: float | None = None
        self.mark_time = 0
        self.fills: list[str] = []
        self.held = 0.0

    async def watch(self, method: str, apply: Any) -> None:
        while True:
            apply(await getattr(self.exchange, method)(SYMBOL))

    def on_ticker(self, ticker: Any) -> None:
        self.prices = [*self.prices[-(AVERAGE_TICKS - 1) :], float(ticker["last"])]

    def on_book(self, book: Any) -> None:
        self.best_bid = float(book["bids"][0][0]) if book["bids"] else None

    def on_mark(self, mark: Any) -> None:
        self.mark = float(mark["markPrice"])
        self.mark_time = int(mark["timestamp"])

    async def heard(self, now: float) -> None:
        """Until the mark stream (one message a second) delivered the venue's step: the
        other watches have had the step's messages by then too."""
        for _ in range(2_000):
            if self.mark_time >= int(now * 1000):
                return
            await asyncio.sleep(0.001)

    def on_orders(self, orders: Any) -> None:
        for order in orders:
            if order["status"] == "closed" and order["filled"]:
                self.fills.append(f"{order['side']} {order['filled']} at {order['average']}")

    async def decide(self) -> str | None:
        if len(self.prices) < AVERAGE_TICKS or self.mark is None or self.best_bid is None:
            return None
        average = sum(self.prices) / len(self.prices)
        last = self.prices[-1]
        if last > average and not self.held:
            stop = float(self.exchange.price_to_precision(SYMBOL, self.mark * (1 - STOP_DISTANCE)))
            order = await self.exchange.create_order(
                SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": stop}
            )
            self.held = float(order["filled"] or 0.0)
            return f"long {self.held} (stop {stop})"
        if last < average and self.held:
            await self.exchange.create_order(
                SYMBOL, "market", "sell", self.held, None, {"reduceOnly": True}
            )
            self.held = 0.0
            await self.exchange.cancel_all_orders(SYMBOL, {"trigger": True})
            return "flat"
        return None


async def run(minutes: float, seed: int) -> int:
    account = paper_account(seed=seed, symbols=("BTCUSDT",), wallet=10_000.0)
    account.advance(6 * 3600)  # a day's range for the verdict's volatility
    hooks = Hooks()
    order_path: Counter[str] = Counter()
    exchange = account.guarded(
        Policy.build(risk={"require_stop": True}), pro=True, hooks=hooks, seed=seed
    )
    bot = Bot(exchange)
    main = asyncio.current_task()
    deciding = False

    def request(event: Any) -> None:
        # The requests the guard makes inside the bot's orders (the order path), not those
        # of the stream's path (its schedule, made after stream messages).
        if isinstance(event, RequestEvent) and deciding and asyncio.current_task() is main:
            order_path[event.method] += 1

    hooks.subscribe(EventKind.REQUEST, request)
    watches = [
        asyncio.ensure_future(bot.watch(method, apply))
        for method, apply in (
            ("watch_ticker", bot.on_ticker),
            ("watch_order_book", bot.on_book),
            ("watch_mark_price", bot.on_mark),
            ("watch_orders", bot.on_orders),
        )
    ]
    outcomes: Counter[str] = Counter()
    steps = int(minutes * 60 / STEP_S)
    try:
        await exchange.load_markets()
        stall_from, stall_steps = steps // 2, int(STALL_S / STEP_S)
        for step in range(steps):
            if step == stall_from:
                account.set_faults(STALL)
                print(f"venue: market streams stall for {STALL_S:g} s")
            account.advance(STEP_S)
            if stall_from <= step < stall_from + stall_steps:
                verdict = await exchange.preview(SYMBOL, "market", "buy", 0.01, None, STOP)
                outcomes[f"stall verdict {verdict.decision}"] += 1
                continue
            await bot.heard(account.clock.time())
            if outcomes["orders"] == 1 and "first" not in order_path:
                order_path.clear()
                order_path["first"] = 1  # count from after the first order's reads
            deciding = True
            try:
                done = await bot.decide()
            except OrderDenied as denied:
                outcomes[f"denied {denied.code}"] += 1
                continue
            finally:
                deciding = False
            if done is not None:
                outcomes["orders"] += 1
                if outcomes["orders"] <= 4:
                    print(f"{SYMBOL}: {done}")
        order_path.pop("first", None)
        reads = sum(n for method, n in order_path.items() if method.startswith("fetch"))
        print(f"simulated {minutes:g} min in {STEP_S:g} s steps, the bot on watch_* only")
        print(f"orders: {outcomes['orders']}; fills seen on watch_orders: {len(bot.fills)}")
        print(f"REST reads on the order path after the first order: {reads}")
        print(
            f"verdicts while the streams stalled: {outcomes['stall verdict DENY']} DENY, "
            f"{outcomes['stall verdict ALLOW']} ALLOW"
        )
        print(f"positions: {account.positions()}; equity: {account.equity():,.2f} USDT")
        return 0
    finally:
        for task in watches:
            task.cancel()
        for task in watches:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await account.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="simulated minutes")
    parser.add_argument("--seed", type=int, default=7, help="market seed (default 7)")
    args = parser.parse_args()
    return asyncio.run(run(args.minutes, args.seed))


if __name__ == "__main__":
    raise SystemExit(main())
