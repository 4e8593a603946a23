"""Unmodified ccxt.pro watches the venue's Binance USD-M streams, on loopback and in process.

``ccxt.pro.binanceusdm`` is configured exactly as the REST contract tests configure ccxt
(:func:`safeguard.venue._client.configure`: the venue's URLs and keys) and nothing more; in
process, only its sockets are in-memory pairs with the venue. The venue runs on simulated
time that the tests advance; every wait is for an event (a message, an update of the watched
value), with a generous timeout only as a guard against a hang.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import ccxt.pro
import pytest
import pytest_asyncio

from safeguard._clock import ManualClock
from safeguard.venue._client import configure
from safeguard.venue._dialect import Dialect
from safeguard.venue._engine import Venue
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
GUARD_S = 15.0
"""Only a hang reaches this: every wait below ends on an event."""
STEP_S = 5.0
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def venue() -> Venue:
    return Venue(clock=ManualClock(time.time()))


@pytest.fixture(scope="module")
def dialect(venue: Venue) -> Dialect:
    return Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))


@pytest.fixture(scope="module")
def server(venue: Venue, dialect: Dialect) -> Iterator[VenueServer]:
    with VenueServer(venue, dialect=dialect) as running:
        yield running


def new_account(venue: Venue, wallet: float = 10_000.0) -> tuple[str, str]:
    key = f"stream-key-{next(_keys)}"
    venue.create_account(key, "secret-" + key, wallet=wallet)
    return key, "secret-" + key


@pytest_asyncio.fixture(loop_scope="module", params=["loopback", "inprocess"])
async def pro(request: pytest.FixtureRequest, venue: Venue, dialect: Dialect) -> AsyncIterator[Any]:
    """A ccxt.pro client on a fresh account."""
    key, secret = new_account(venue)
    if request.param == "loopback":
        url = request.getfixturevalue("server").url
        exchange = configure(ccxt.pro.binanceusdm({"apiKey": key, "secret": secret}), url)
    else:
        exchange = inprocess_client(dialect, key, secret, pro=True)
    await exchange.load_markets()
    yield exchange
    await exchange.close()


async def settle(
    first: asyncio.Task[Any], read: Callable[[], Any], done: Callable[[Any], bool]
) -> Any:
    """After the started watch resolves, the client's cached value (``read()``) once ``done``.

    ccxt applies each message to its caches as it arrives, possibly several in one burst (in
    process: while the call that caused them runs), and a watch resolves once per burst: the
    cache, not the next watch, is what shows the latest state.
    """
    await asyncio.wait_for(first, GUARD_S)
    for _ in range(int(GUARD_S / 0.01)):
        value = read()
        if value is not None and done(value):
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("the client's cache never showed the update")


async def cached(first: asyncio.Task[Any], done: Callable[[], bool]) -> None:
    """:func:`settle` on a condition over the client's caches (orders, balance, positions)."""
    await settle(first, lambda: True, lambda _: done())


async def book_at(pro: Any, symbol: str, version: int) -> Any:
    """The client's book for ``symbol`` once it has applied the update ``version``.

    ccxt updates its book in place as updates arrive, possibly in one burst, so the test
    reads the book rather than waiting for the next watch (which a burst may never wake).
    """
    for _ in range(int(GUARD_S / 0.01)):
        book = (pro.orderbooks or {}).get(symbol)
        if book is not None and book["nonce"] is not None and book["nonce"] >= version:
            return book
        await asyncio.sleep(0.01)
    raise AssertionError(f"the client's book never reached update {version}")


def order_in_cache(pro: Any, order_id: str) -> dict[str, Any] | None:
    found = [o for o in (pro.orders or []) if o["id"] == order_id]
    return found[-1] if found else None


async def started(coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
    """Start a watch and let it subscribe (a few loop turns: the subscribe is one send)."""
    task = asyncio.ensure_future(coroutine)
    for _ in range(20):
        await asyncio.sleep(0.01)
    return task


def book_levels(raw: dict[str, Any]) -> tuple[list[list[float]], list[list[float]]]:
    def side(rows: list[list[str]]) -> list[list[float]]:
        return [[float(p), float(q)] for p, q in rows]

    return side(raw["bids"]), side(raw["asks"])


# --- market streams through ccxt.pro ----------------------------------------------------------


async def test_a_book_rebuilt_from_diffs_equals_the_venues_book(pro: Any, venue: Venue) -> None:
    book = await asyncio.wait_for(pro.watch_order_book(BTC), GUARD_S)
    for round_ in range(4):
        venue.advance(STEP_S)
        key, _ = new_account(venue)  # someone trades: the book changes within a step too
        venue.place_order(key, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.5)
        venue.place_order(
            key, symbol="BTCUSDT", side="SELL", type="LIMIT", quantity=0.2,
            price=venue.depth("BTCUSDT", 5)["asks"][0][0], time_in_force="GTC",
        )  # fmt: skip
        target = venue.book_version("BTCUSDT")
        book = await book_at(pro, BTC, target)
        assert book["nonce"] == target, round_
        bids, asks = book_levels(venue.depth("BTCUSDT", 1000))
        assert book["bids"] == bids
        assert book["asks"] == asks


async def test_ticker_trades_and_candles_parse(pro: Any, venue: Venue) -> None:
    trades_task = await started(pro.watch_trades(BTC))
    candles_task = await started(pro.watch_ohlcv(BTC, "1m"))
    key, _ = new_account(venue)
    before = venue.trades_since("BTCUSDT", -1)
    since = before[-1]["a"] if before else 0
    filled = venue.place_order(key, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.3)
    venue.advance(STEP_S)
    qty = float(filled["executedQty"])
    tape = venue.trades_since("BTCUSDT", since)
    ids = {str(r["t"] if "t" in r else r["a"]) for r in tape}

    def ours() -> list[dict[str, Any]]:
        return [t for t in pro.trades.get(BTC, []) if t["id"] in ids]

    await cached(trades_task, lambda: len(ours()) == len(tape))
    trades = ours()
    assert [t["price"] for t in trades] == [float(r["p"]) for r in tape]
    assert [t["amount"] for t in trades] == [float(r["q"]) for r in tape]
    # The tape also prints resting orders the market traded through while time moved.
    assert sum(t["amount"] for t in trades) >= qty - 1e-9
    assert trades[0]["side"] == "buy"

    await asyncio.wait_for(candles_task, GUARD_S)
    venue.advance(STEP_S)  # candles are published on a period of the venue's clock
    [opened, o, h, low, c, volume, *_] = venue.klines("BTCUSDT", interval="1m", limit=1)[-1]
    candles = await settle(
        candles_task,
        lambda: list(pro.ohlcvs.get(BTC, {}).get("1m") or []),
        lambda cs: bool(cs) and cs[-1][0] == opened and cs[-1][4] == float(c),
    )
    assert candles[-1][1:5] == [float(o), float(h), float(low), float(c)]
    assert candles[-1][5] == float(volume)

    ticker = await asyncio.wait_for(pro.watch_ticker(BTC), GUARD_S)
    rest = venue.ticker_24h("BTCUSDT")
    assert ticker["symbol"] == BTC
    assert ticker["last"] == float(rest["lastPrice"])
    assert ticker["high"] == float(rest["highPrice"])
    assert ticker["baseVolume"] == float(rest["volume"])


async def test_mark_price_and_bids_asks_parse(pro: Any, venue: Venue) -> None:
    mark_task = await started(pro.watch_mark_price(BTC))
    venue.advance(STEP_S)
    premium = venue.premium_index("BTCUSDT")
    assert isinstance(premium, dict)
    mark = await settle(
        mark_task,
        lambda: pro.tickers.get(BTC),
        lambda m: m["markPrice"] == float(premium["markPrice"]),
    )
    assert mark["markPrice"] == float(premium["markPrice"])
    assert mark["indexPrice"] == float(premium["indexPrice"])
    assert mark["info"]["r"] == premium["lastFundingRate"]
    assert mark["info"]["T"] == premium["nextFundingTime"]

    top_task = await started(pro.watch_bids_asks([BTC]))
    venue.advance(STEP_S)
    [row] = venue.book_ticker("BTCUSDT")
    top = await settle(
        top_task,
        lambda: pro.bidsasks.get(BTC),
        lambda t: t["bid"] == float(row["bidPrice"]),
    )
    assert (top["ask"], top["askVolume"]) == (float(row["askPrice"]), float(row["askQty"]))


async def test_a_liquidation_is_on_the_force_order_stream(pro: Any, venue: Venue) -> None:
    task = await started(pro.watch_liquidations(BTC))
    key, _ = new_account(venue, wallet=200.0)
    venue.set_leverage(key, symbol="BTCUSDT", leverage=100)
    venue.place_order(key, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.2)
    venue.spike("BTCUSDT", -5.0, duration_s=600)
    for _ in range(40):
        if any(e.api_key == key for e in venue.liquidations()):
            break
        venue.advance(STEP_S)
    [event] = [e for e in venue.liquidations() if e.api_key == key]
    [liquidation] = await asyncio.wait_for(task, GUARD_S)
    assert liquidation["symbol"] == BTC
    assert liquidation["side"] == "sell"
    assert liquidation["contracts"] == pytest.approx(event.close_qty)
    assert liquidation["price"] == pytest.approx(event.close_avg_price, abs=0.1)


# --- the user-data stream through ccxt.pro ----------------------------------------------------


async def test_an_order_placed_over_rest_shows_on_watch_orders_with_its_fills(pro: Any) -> None:
    orders_task = await started(pro.watch_orders(BTC))
    trades_task = await started(pro.watch_my_trades(BTC))
    placed = await pro.create_order(BTC, "market", "buy", 0.25)

    def closed() -> bool:
        order = order_in_cache(pro, placed["id"])
        return order is not None and order["status"] == "closed"

    await cached(orders_task, closed)
    order = order_in_cache(pro, placed["id"])
    assert order is not None
    assert order["filled"] == 0.25
    assert order["average"] == placed["average"]
    await cached(
        trades_task,
        lambda: sum(t["amount"] for t in pro.myTrades or []) >= 0.25 - 1e-9,
    )
    trades = list(pro.myTrades)
    rest = await pro.fetch_my_trades(BTC)
    assert [t["order"] for t in trades] == [placed["id"]] * len(trades)
    assert [t["id"] for t in trades] == [t["id"] for t in rest]
    assert [t["price"] for t in trades] == [t["price"] for t in rest]
    assert [t["fee"]["cost"] for t in trades] == pytest.approx([t["fee"]["cost"] for t in rest])
    assert trades[0]["fee"]["currency"] == "USDT"

    bid = (await pro.fetch_order_book(BTC, 5))["bids"][-1][0]
    resting_task = await started(pro.watch_orders(BTC))
    limit = await pro.create_order(BTC, "limit", "buy", 0.1, bid)
    await cached(
        resting_task,
        lambda: order_in_cache(pro, limit["id"]) is not None,
    )
    resting = order_in_cache(pro, limit["id"])
    assert resting is not None
    assert (resting["status"], resting["price"], resting["filled"]) == ("open", bid, 0.0)
    cancel_task = await started(pro.watch_orders(BTC))
    await pro.cancel_order(limit["id"], BTC)
    await cached(
        cancel_task,
        lambda: (order_in_cache(pro, limit["id"]) or {}).get("status") == "canceled",
    )


async def test_a_conditional_order_arrives_as_an_algo_update(pro: Any, venue: Venue) -> None:
    await pro.create_order(BTC, "market", "buy", 0.1)
    trigger = round(venue.mark_price("BTCUSDT") * 0.9, 1)
    task = await started(pro.watch_orders(BTC))
    stop = await pro.create_order(
        BTC, "market", "sell", 0.1, None, {"stopLossPrice": trigger, "reduceOnly": True}
    )
    await cached(task, lambda: order_in_cache(pro, stop["id"]) is not None)
    seen = order_in_cache(pro, stop["id"])
    assert seen is not None
    assert (seen["status"], seen["triggerPrice"]) == ("open", trigger)
    task = await started(pro.watch_orders(BTC))
    await pro.cancel_order(stop["id"], BTC, {"trigger": True})
    await cached(
        task,
        lambda: (order_in_cache(pro, stop["id"]) or {}).get("status") == "canceled",
    )


async def test_positions_and_balance_follow_fills_and_funding(pro: Any, venue: Venue) -> None:
    key = pro.apiKey
    balance_task = await started(pro.watch_balance())
    positions_task = await started(pro.watch_positions([BTC]))
    await pro.create_order(BTC, "market", "buy", 0.4)

    def total() -> float:
        # ccxt keeps a balance per account type ({"future": {...}} for USD-M).
        for balance in (pro.balance or {}).values():
            if isinstance(balance, dict) and "USDT" in balance:
                return float(balance["USDT"]["total"])
        return 0.0

    await cached(
        balance_task,
        lambda: total() == pytest.approx(venue.wallet(key), abs=1e-8),
    )
    assert total() < 10_000.0  # the fee

    def long_btc() -> list[dict[str, Any]]:
        caches = pro.positions.values() if isinstance(pro.positions, dict) else [pro.positions]
        return [p for c in caches for p in c or [] if p["symbol"] == BTC and p["contracts"]]

    await cached(positions_task, lambda: bool(long_btc()))
    [position] = long_btc()
    assert (position["contracts"], position["side"]) == (0.4, "long")
    [rest] = venue.position_risk(key, "BTCUSDT")
    assert position["entryPrice"] == pytest.approx(float(rest["entryPrice"]))

    # Funding: advance past the next funding time; the wallet moves and the stream says so.
    before = venue.wallet(key)
    funding_task = await started(pro.watch_balance())
    premium = venue.premium_index("BTCUSDT")
    assert isinstance(premium, dict)
    venue.advance(premium["nextFundingTime"] / 1000 - venue.clock.time() + STEP_S)
    after = venue.wallet(key)
    assert after != before
    await cached(funding_task, lambda: total() == pytest.approx(after, abs=1e-8))


async def step_until_the_watch_fails(
    pro: Any, symbol: str, watch: asyncio.Task[Any], venue: Venue, dialect: Dialect
) -> None:
    """Step the venue (one depth update a step), watching ``symbol``'s book again after each
    answer, until a watch raises; up to 20 steps."""
    for _ in range(20):
        venue.advance(STEP_S)
        dialect.tick()
        done, _ = await asyncio.wait({watch}, timeout=1.0)
        if done:
            watch.result()  # raises the gap once the client has seen it
            watch = asyncio.ensure_future(pro.watch_order_book(symbol))
    watch.cancel()


async def test_a_dropped_depth_update_is_a_gap_ccxt_detects(
    pro: Any, venue: Venue, dialect: Dialect
) -> None:
    await asyncio.wait_for(pro.watch_order_book(ETH), GUARD_S)
    dialect.set_fault_plan(
        FaultPlan.parse({"rules": [{"kind": "depth_gap", "symbol": "ETHUSDT", "at_s": 0}]})
    )
    watch = await started(pro.watch_order_book(ETH))
    try:
        # The first update after the plan is lost; every later one names a predecessor the
        # client never saw. The venue steps until the client says so: a watch may first
        # resolve on an update sent before the gap (how the loop's turns fell), and on a
        # loaded machine a step's update can still be on its way when the next step comes,
        # so the test steps on (each step one more update) rather than count on two.
        with pytest.raises(ccxt.ChecksumError):
            await step_until_the_watch_fails(pro, ETH, watch, venue, dialect)
    finally:
        dialect.set_fault_plan(None)
    # Watching again starts over from a new snapshot, and the book is exact again.
    venue.advance(STEP_S)
    target = venue.book_version("ETHUSDT")
    await asyncio.wait_for(pro.watch_order_book(ETH), GUARD_S)  # subscribes again
    book = await book_at(pro, ETH, target)
    bids, asks = book_levels(venue.depth("ETHUSDT", 1000))
    assert (book["bids"], book["asks"]) == (bids, asks)


async def test_tickers_for_several_symbols_parse(pro: Any, venue: Venue) -> None:
    task = await started(pro.watch_tickers([BTC, ETH]))
    venue.advance(STEP_S)
    rest = {symbol: venue.ticker_24h(symbol) for symbol in ("BTCUSDT", "ETHUSDT")}

    def both() -> dict[str, Any] | None:
        tickers = {s: pro.tickers.get(s) for s in (BTC, ETH)}
        return tickers if all(tickers.values()) else None

    tickers = await settle(
        task,
        both,
        lambda t: (
            t[BTC]["last"] == float(rest["BTCUSDT"]["lastPrice"])
            and t[ETH]["last"] == float(rest["ETHUSDT"]["lastPrice"])
        ),
    )
    assert tickers[ETH]["high"] == float(rest["ETHUSDT"]["highPrice"])
    assert tickers[BTC]["baseVolume"] == float(rest["BTCUSDT"]["volume"])


async def test_a_new_funding_interval_moves_the_mark_streams_next_funding_time(
    pro: Any, venue: Venue
) -> None:
    sol = "SOL/USDT:USDT"
    mark_task = await started(pro.watch_mark_price(sol))
    venue.advance(STEP_S)
    before = venue.premium_index("SOLUSDT")
    assert isinstance(before, dict)
    venue.set_funding_interval("SOLUSDT", 1)
    venue.advance(STEP_S)
    after = venue.premium_index("SOLUSDT")
    assert isinstance(after, dict)
    # The next whole hour now, not the next 8-hour boundary (unless they coincide).
    assert after["nextFundingTime"] % 3_600_000 == 0
    assert after["nextFundingTime"] - venue.clock.time() * 1000 <= 3_600_000
    mark = await settle(
        mark_task,
        lambda: pro.tickers.get(sol),
        lambda m: m["info"]["T"] == after["nextFundingTime"],
    )
    assert mark["info"]["T"] == after["nextFundingTime"]
    venue.set_funding_interval("SOLUSDT", 8)  # the module's venue is shared
