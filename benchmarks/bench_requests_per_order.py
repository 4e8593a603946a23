"""Venue requests and CPU per order: a guarded ``ccxt.binanceusdm`` beside raw ccxt, one run.

Both clients are real ``ccxt.binanceusdm`` instances on the same in-process mock venue (no
sockets), each with its own account. The venue counts every request it answers, by client and
endpoint, so what the guard sends is seen from the venue's side, not from the guard's own
bookkeeping. Time is simulated (a ManualClock the venue and the guard share)::

    .venv/bin/python benchmarks/bench_requests_per_order.py            # 100 orders per case
    .venv/bin/python benchmarks/bench_requests_per_order.py --orders 50

Cases (each the same orders for both clients):

- ``first order``: the first order after ``load_markets`` (the guard reads what its verdict
  needs; raw ccxt sends the order alone).
- ``resting limit``: post-only limits far from the mark, buy and sell alternately; none fills.
- ``market``: market orders, buy and sell alternately (each one fills at once).
- ``market + stop``: a market buy with a protective stop (``stopLossPrice``): the guard sends
  the stop as its own order, raw ccxt the same stop as a second call; then a market sell
  closing it and the stop cancelled, raw and guarded alike.
- ``limit, 2.5 s apart``: resting limits with the simulated clock moved 2.5 s between orders.

A REST-only guarded client with its view kept on the schedule (``keep_fresh``) runs the same
cases: its requests are split into the order path's and the schedule's passes.

With ``--streams`` a third client runs: the guarded ``ccxt.pro.binanceusdm`` whose strategy
keeps ``watch_mark_price``, ``watch_order_book``, ``watch_ticker`` and ``watch_orders`` running
(in process, on the same venue): the streams feed the guard's view. Its requests are split into
the order path's (made inside ``create_order``) and the stream path's (the reconcile schedule,
made after stream messages, between orders). It also times, in process, a venue event (the
mark moving as the venue's clock steps) to the guard's view showing it (``perf_counter``).

CPU per order is ``time.process_time`` over the case's loop (the venue's own work included,
the same for both), reported as the guard's extra CPU over raw ccxt's, as a multiple of raw's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.killswitch._switch import KillSwitch
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect, Request, Response
from safeguard.venue._inprocess import inprocess_client

KEY, SECRET = "bench-key-0123456789", "bench-secret-0123456789abcdef"
RAW_KEY = KEY + "-raw"
RAW_IP, GUARDED_IP = "10.0.0.2", "10.0.0.3"
SYMBOL = "ETH/USDT:USDT"
START = 1_700_000_000.0


class CountingDialect(Dialect):
    """The venue's request handling, counting each request by client address and endpoint
    (the address, not the API key: public reads carry no key)."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.requests: Counter[tuple[str, str]] = Counter()

    def handle(self, request: Request) -> Response:
        self.requests[(request.client_ip, f"{request.method} {request.path}")] += 1
        return super().handle(request)

    def of(self, client_ip: str) -> Counter[str]:
        return Counter({path: n for (ip, path), n in self.requests.items() if ip == client_ip})


class Rig:
    def __init__(self, tmp: Path, label: str) -> None:
        self.clock = ManualClock(START)
        venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=self.clock)
        venue.create_account(KEY, SECRET, wallet=1_000_000.0)
        venue.create_account(RAW_KEY, SECRET, wallet=1_000_000.0)
        self.venue = venue
        self.dialect = CountingDialect(venue)
        # The venue's own limits would throttle a benchmark loop: lift them.
        self.dialect.limits = type(self.dialect.limits)(10**9, 10**9, 10**9)
        self.raw = inprocess_client(self.dialect, RAW_KEY, SECRET, client_ip=RAW_IP)
        inner = inprocess_client(self.dialect, KEY, SECRET, client_ip=GUARDED_IP)
        policy = Policy.build(
            risk={"require_stop": False, "max_open_orders": None},
            throttle={"weight_limit_per_minute": 10**9, "orders_per_10s": 10**9,
                      "orders_per_minute": 10**9},
            kill_switch={"state_dir": str(tmp / "state"), "watch_state_file": False},
        )  # fmt: skip
        self.switch = KillSwitch(policy.kill_switch, clock=self.clock, watch=False)
        self.guarded = guard(
            inner,
            policy,
            kill_switch=self.switch,
            clock=self.clock,
            journal_path=tmp / f"orders-{label}.jsonl",
            durable_journal=False,
        )
        self.raw.load_markets()
        self.guarded.load_markets()
        mark = float(self.raw.fetch_ticker(SYMBOL)["last"])
        self.low, self.high = round(mark * 0.97, 2), round(mark * 1.03, 2)
        self.stop_below = round(mark * 0.9, 2)

    def close(self) -> None:
        self.guarded.runtime.switch.close()
        self.guarded.runtime.core.journal.close()


Order = Callable[[Any, "Rig", int], None]


def resting_limit(ex: Any, rig: Rig, i: int) -> None:
    side, price = ("buy", rig.low) if i % 2 == 0 else ("sell", rig.high)
    ex.create_order(SYMBOL, "limit", side, 0.01, price, {"timeInForce": "GTX"})


def market(ex: Any, rig: Rig, i: int) -> None:
    ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01)


def market_with_stop(ex: Any, rig: Rig, i: int) -> None:
    if ex is rig.raw:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
        ex.create_order(
            SYMBOL, "market", "sell", 0.01, None, {"stopPrice": rig.stop_below, "reduceOnly": True}
        )
    else:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": rig.stop_below})


def spaced_limit(ex: Any, rig: Rig, i: int) -> None:
    resting_limit(ex, rig, i)


CASES: list[tuple[str, Order, float]] = [
    ("resting limit", resting_limit, 0.0),
    ("market", market, 0.0),
    ("market + stop", market_with_stop, 0.0),
    ("limit, 2.5 s apart", spaced_limit, 2.5),
]


def _run(
    rig: Rig, ex: Any, client_ip: str, order: Order, n: int, step_s: float
) -> tuple[int, float]:
    before = rig.dialect.of(client_ip)
    gc.collect()
    cpu = 0.0
    for i in range(n):
        if step_s:
            rig.clock.advance(step_s)
        t0 = time.process_time()
        order(ex, rig, i)
        cpu += time.process_time() - t0
    sent = sum((rig.dialect.of(client_ip) - before).values())
    return sent, cpu


def _first_order(tmp: Path) -> tuple[Counter[str], Counter[str]]:
    rig = Rig(tmp, "first")
    try:
        raw0, guarded0 = rig.dialect.of(RAW_IP), rig.dialect.of(GUARDED_IP)
        market(rig.raw, rig, 0)
        market(rig.guarded, rig, 0)
        return rig.dialect.of(RAW_IP) - raw0, rig.dialect.of(GUARDED_IP) - guarded0
    finally:
        rig.close()


def bench(orders: int, tmp: Path) -> list[dict[str, Any]]:
    raw_first, guarded_first = _first_order(tmp)
    rows: list[dict[str, Any]] = [
        {
            "case": "first order (market)",
            "raw_requests": raw_first.total(),
            "guarded_requests": guarded_first.total(),
            "raw_cpu_us": float("nan"),
            "guarded_cpu_us": float("nan"),
            "guarded_endpoints": dict(guarded_first),
        }
    ]
    for label, order, step_s in CASES:
        rig = Rig(tmp, label.replace(" ", "-").replace(",", ""))
        try:
            # Warm both clients on this case's orders (the guard's first reads are not steady).
            order(rig.raw, rig, 0)
            order(rig.guarded, rig, 0)
            before = rig.dialect.of(GUARDED_IP)
            raw_sent, raw_cpu = _run(rig, rig.raw, RAW_IP, order, orders, step_s)
            guarded_sent, guarded_cpu = _run(rig, rig.guarded, GUARDED_IP, order, orders, step_s)
            extra = rig.dialect.of(GUARDED_IP) - before
            rows.append(
                {
                    "case": label,
                    "raw_requests": raw_sent / orders,
                    "guarded_requests": guarded_sent / orders,
                    "raw_cpu_us": raw_cpu / orders * 1e6,
                    "guarded_cpu_us": guarded_cpu / orders * 1e6,
                    "guarded_endpoints": {k: v / orders for k, v in extra.items()},
                }
            )
        finally:
            rig.close()
    return rows


def _bench_kept(orders: int, tmp: Path) -> dict[str, dict[str, float]]:
    """REST only, the view kept on its schedule (``keep_fresh``): per case, the requests each
    order's own call makes (the order path) and all the guard's requests, the schedule's
    passes included. The passes are made by hand between orders (``keeper.tick()``, where
    the keeper's thread would have made them while the simulated clock stood still), and
    are neither timed nor counted in the order path."""
    kept: dict[str, dict[str, float]] = {}
    first = Rig(tmp, "kept-first")
    try:
        start = first.dialect.of(GUARDED_IP)
        keeper = first.guarded.keep_fresh([SYMBOL])  # its first pass reads the view
        keeper.close()
        before = first.dialect.of(GUARDED_IP)
        market(first.guarded, first, 0)
        n = sum((first.dialect.of(GUARDED_IP) - before).values())
        every = sum((first.dialect.of(GUARDED_IP) - start).values())
        kept["first order (market)"] = {"order_path": n, "all": every}
    finally:
        first.close()
    for label, order, step_s in CASES:
        rig = Rig(tmp, "kept-" + label.replace(" ", "-").replace(",", ""))
        try:
            keeper = rig.guarded.keep_fresh([SYMBOL])
            keeper.close()  # passes by hand, on the simulated clock
            order(rig.guarded, rig, 0)
            start = rig.dialect.of(GUARDED_IP)
            order_path = 0
            for i in range(orders):
                if step_s:
                    rig.clock.advance(step_s)
                keeper.tick()
                at = rig.dialect.of(GUARDED_IP)
                order(rig.guarded, rig, i)
                order_path += sum((rig.dialect.of(GUARDED_IP) - at).values())
            every = sum((rig.dialect.of(GUARDED_IP) - start).values())
            kept[label] = {"order_path": order_path / orders, "all": every / orders}
        finally:
            rig.close()
    return kept


class StreamRig:
    """The guarded ccxt.pro client on its own account, its watches running as tasks."""

    def __init__(self, tmp: Path) -> None:
        self.clock = ManualClock(START)
        venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=self.clock)
        venue.create_account(KEY, SECRET, wallet=1_000_000.0)
        self.venue = venue
        self.dialect = CountingDialect(venue)
        self.dialect.limits = type(self.dialect.limits)(10**9, 10**9, 10**9)
        inner = inprocess_client(self.dialect, KEY, SECRET, client_ip=GUARDED_IP, pro=True)
        policy = Policy.build(
            risk={"require_stop": False, "max_open_orders": None},
            throttle={"weight_limit_per_minute": 10**9, "orders_per_10s": 10**9,
                      "orders_per_minute": 10**9},
            kill_switch={"state_dir": str(tmp / "state-streams"), "watch_state_file": False},
        )  # fmt: skip
        self.switch = KillSwitch(policy.kill_switch, clock=self.clock, watch=False)
        self.guarded = guard(
            inner,
            policy,
            kill_switch=self.switch,
            clock=self.clock,
            journal_path=tmp / "orders-streams.jsonl",
            durable_journal=False,
        )
        self.tasks: list[asyncio.Task[None]] = []
        self.order_path = False
        self.path_requests: Counter[str] = Counter()

    async def start(self) -> None:
        await self.guarded.load_markets()
        mark = float((await self.guarded.fetch_ticker(SYMBOL))["last"])
        self.low, self.high = round(mark * 0.97, 2), round(mark * 1.03, 2)
        self.stop_below = round(mark * 0.9, 2)
        for method in ("watch_mark_price", "watch_order_book", "watch_ticker", "watch_orders"):
            self.tasks.append(asyncio.ensure_future(self._keep(method)))
        await self.heard()

    async def _keep(self, method: str) -> None:
        while True:
            await getattr(self.guarded, method)(SYMBOL)

    async def heard(self) -> None:
        """Until the mark stream delivered at the venue's current time (an event)."""
        feeds = self.guarded.runtime.view.cache.feeds
        for _ in range(100_000):
            feed = feeds.get(("mark", SYMBOL))
            if feed is not None and feed.last_message == self.clock.time():
                return
            await asyncio.sleep(0)
        raise RuntimeError("the mark stream never delivered")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.guarded.exchange.close()
        self.switch.close()
        self.guarded.runtime.core.journal.close()


async def _stream_order(rig: StreamRig, case: str, i: int) -> None:
    ex = rig.guarded
    if case == "market":
        await ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01)
    elif case == "market + stop":
        await ex.create_order(
            SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": rig.stop_below}
        )
    else:
        side, price = ("buy", rig.low) if i % 2 == 0 else ("sell", rig.high)
        await ex.create_order(SYMBOL, "limit", side, 0.01, price, {"timeInForce": "GTX"})


async def _bench_streams(orders: int, tmp: Path) -> dict[str, Any]:
    """Requests per order with streams feeding the view: the order path's and the stream
    path's, per case; and the venue-event-to-view latency."""
    rows: dict[str, Any] = {}
    for label, step_s in [("first order (market)", 0.0), *[(c, s) for c, _, s in CASES]]:
        rig = StreamRig(tmp / label.replace(" ", "-").replace(",", "").replace("(", ""))
        (tmp / label.replace(" ", "-").replace(",", "").replace("(", "")).mkdir(exist_ok=True)
        try:
            await rig.start()
            case = "market" if label.startswith("first") else label
            count = 1 if label.startswith("first") else orders
            if not label.startswith("first"):
                await _stream_order(rig, case, 0)  # warm, as for the REST clients
            before = rig.dialect.of(GUARDED_IP)
            order_path = 0
            for i in range(count):
                if step_s:
                    rig.clock.advance(step_s)
                    rig.venue.advance(0.0)
                    await rig.heard()
                    await asyncio.sleep(0)
                    await asyncio.sleep(0)
                at = rig.dialect.of(GUARDED_IP)
                await _stream_order(rig, case, i)
                order_path += sum((rig.dialect.of(GUARDED_IP) - at).values())
            total = rig.dialect.of(GUARDED_IP) - before
            rows[label] = {
                "order_path": order_path / count,
                "all": total.total() / count,
                "endpoints": {k: v / count for k, v in total.items()},
            }
        finally:
            await rig.close()
    rows["latency"] = await _latency(tmp)
    return rows


async def _latency(tmp: Path, samples: int = 100) -> list[float]:
    """Seconds from the venue's mark event (its clock stepping publishes a ``markPriceUpdate``
    stamped with the step's time, and the step's book and ticker messages with it) to the
    guard's view holding that event, through ccxt.pro and the guard's watch path, in process.
    Timed from the end of the venue's step (its matching and publishing are not counted)."""
    rig = StreamRig(tmp / "latency")
    (tmp / "latency").mkdir(exist_ok=True)
    try:
        await rig.start()
        funding = rig.guarded.runtime.view.cache.funding
        out = []
        for _ in range(samples):
            rig.venue.advance(1.0)  # the mark stream publishes the step's mark, stamped now
            t0 = time.perf_counter()  # published (the venue's own step is not counted)
            stamp = rig.clock.time()
            for _ in range(1_000_000):
                seen = funding.get(SYMBOL)
                if seen is not None and seen.venue_time == stamp:
                    break
                await asyncio.sleep(0)
            else:
                raise RuntimeError("the view never showed the mark event")
            out.append(time.perf_counter() - t0)
        return out
    finally:
        await rig.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--streams", action="store_true", help="add the with-streams column")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s), "
        f"load {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"orders per case={args.orders}; requests counted by the venue; CPU = process_time")
    with tempfile.TemporaryDirectory() as tmp:
        rows = bench(args.orders, Path(tmp))
        kept = _bench_kept(args.orders, Path(tmp))
        streamed = asyncio.run(_bench_streams(args.orders, Path(tmp))) if args.streams else {}
    print(
        f"{'case':<22} {'raw req':>8} {'guarded req':>12} {'extra':>6} "
        f"{'raw CPU us':>11} {'guarded CPU us':>15} {'overhead':>9}"
    )
    for row in rows:
        raw_cpu, guarded_cpu = row["raw_cpu_us"], row["guarded_cpu_us"]
        overhead = (guarded_cpu - raw_cpu) / raw_cpu if not math.isnan(raw_cpu) else float("nan")
        print(
            f"{row['case']:<22} {row['raw_requests']:>8.2f} {row['guarded_requests']:>12.2f} "
            f"{row['guarded_requests'] - row['raw_requests']:>+6.2f} {raw_cpu:>11.0f} "
            f"{guarded_cpu:>15.0f} {overhead:>8.2f}x"
        )
    print("guarded requests per order, by endpoint:")
    for row in rows:
        parts = ", ".join(f"{path} {n:g}" for path, n in sorted(row["guarded_endpoints"].items()))
        print(f"  {row['case']}: {parts}")
    print("REST only, the view kept on its schedule (keep_fresh): requests per order")
    print(f"{'case':<22} {'order path':>11} {'all (incl. schedule)':>24}")
    for case, row in kept.items():
        print(f"{case:<22} {row['order_path']:>11.2f} {row['all']:>24.2f}")
    if streamed:
        latency = sorted(streamed.pop("latency"))
        print("with streams (guarded ccxt.pro, watches running): requests per order")
        print(f"{'case':<22} {'order path':>11} {'all (incl. stream path)':>24}")
        for case, row in streamed.items():
            print(f"{case:<22} {row['order_path']:>11.2f} {row['all']:>24.2f}")
        for case, row in streamed.items():
            parts = ", ".join(f"{path} {n:g}" for path, n in sorted(row["endpoints"].items()))
            print(f"  {case}: {parts}")
        n = len(latency)
        print(
            f"venue mark event -> guard's view, in process ({n} samples): min "
            f"{latency[0] * 1e6:,.0f} us, median "
            f"{latency[n // 2] * 1e6:,.0f} us, p90 {latency[int(n * 0.9)] * 1e6:,.0f} us, "
            f"max {latency[-1] * 1e6:,.0f} us"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
