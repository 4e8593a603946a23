"""Unmodified ccxt.pro watches the venue's Binance USD-M streams on loopback.

``ccxt.pro.binanceusdm`` is configured exactly as the REST contract tests configure ccxt
(:func:`safeguard.venue.client.configure`: the venue's URLs and keys) and nothing more. The
venue runs on simulated time that the tests advance; every wait is for an event (a message,
an update of the watched value), with a generous timeout only as a guard against a hang.
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

from safeguard.clock import ManualClock
from safeguard.venue.client import configure
from safeguard.venue.dialect import Dialect
from safeguard.venue.engine import Venue
from safeguard.venue.http import VenueServer
from safeguard.venue.ratelimit import RateLimits

pytestmark = pytest.mark.asyncio(loop_scope="module")

BTC = "BTC/USDT:USDT"
GUARD_S = 15.0
"""Only a hang reaches this: every wait below ends on an event."""
STEP_S = 5.0
_keys = itertools.count(1)


@pytest.fixture(scope="module")
def venue() -> Venue:
    return Venue(clock=ManualClock(time.time()))


@pytest.fixture(scope="module")
def server(venue: Venue) -> Iterator[VenueServer]:
    dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
    with VenueServer(venue, dialect=dialect) as running:
        yield running


def new_account(venue: Venue, wallet: float = 10_000.0) -> tuple[str, str]:
    key = f"stream-key-{next(_keys)}"
    venue.create_account(key, "secret-" + key, wallet=wallet)
    return key, "secret-" + key


@pytest_asyncio.fixture(loop_scope="module")
async def pro(venue: Venue, server: VenueServer) -> AsyncIterator[Any]:
    """A ccxt.pro client on a fresh account."""
    key, secret = new_account(venue)
    exchange = configure(ccxt.pro.binanceusdm({"apiKey": key, "secret": secret}), server.url)
    await exchange.load_markets()
    yield exchange
    await exchange.close()


async def until(
    watch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], *, limit: int = 50
) -> Any:
    """Watch until ``done(value)``; each watch returns on the next update."""
    for _ in range(limit):
        value = await asyncio.wait_for(watch(), GUARD_S)
        if done(value):
            return value
    raise AssertionError(f"no update satisfied the condition in {limit} updates")


async def settle(
    first: asyncio.Task[Any], watch: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]
) -> Any:
    """The started watch's value if it is ``done`` already, else the first later one that is."""
    value = await asyncio.wait_for(first, GUARD_S)
    return value if done(value) else await until(watch, done)


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
        book = await until(lambda: pro.watch_order_book(BTC), lambda b, t=target: b["nonce"] >= t)
        assert book["nonce"] == target, round_
        bids, asks = book_levels(venue.depth("BTCUSDT", 1000))
        assert book["bids"] == bids
        assert book["asks"] == asks


async def test_ticker_trades_and_candles_parse(pro: Any, venue: Venue) -> None:
    trades_task = await started(pro.watch_trades(BTC))
    candles_task = await started(pro.watch_ohlcv(BTC, "1m"))
    key, _ = new_account(venue)
    filled = venue.place_order(key, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.3)
    venue.advance(STEP_S)
    qty = float(filled["executedQty"])
    await settle(
        trades_task,
        lambda: pro.watch_trades(BTC),
        lambda _: sum(t["amount"] for t in pro.trades[BTC]) >= qty - 1e-9,
    )
    trades = list(pro.trades[BTC])
    tape = venue.trades_since("BTCUSDT", int(trades[0]["id"]) - 1)
    assert [t["price"] for t in trades] == [float(r["p"]) for r in tape]
    assert [t["amount"] for t in trades] == [float(r["q"]) for r in tape]
    assert sum(t["amount"] for t in trades) == pytest.approx(qty)
    assert trades[0]["side"] == "buy"

    await asyncio.wait_for(candles_task, GUARD_S)
    venue.advance(STEP_S)  # candles are published on a period of the venue's clock
    [opened, o, h, low, c, volume, *_] = venue.klines("BTCUSDT", 60, 1)[-1]
    candles = await until(lambda: pro.watch_ohlcv(BTC, "1m"), lambda cs: cs[-1][0] == opened)
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
        lambda: pro.watch_mark_price(BTC),
        lambda m: m["markPrice"] == float(premium["markPrice"]),
    )
    assert mark["markPrice"] == float(premium["markPrice"])
    assert mark["indexPrice"] == float(premium["indexPrice"])
    assert mark["info"]["r"] == premium["lastFundingRate"]
    assert mark["info"]["T"] == premium["nextFundingTime"]

    top_task = await started(pro.watch_bids_asks([BTC]))
    venue.advance(STEP_S)
    [row] = venue.book_ticker("BTCUSDT")
    tops = await settle(
        top_task,
        lambda: pro.watch_bids_asks([BTC]),
        lambda t: BTC in t and t[BTC]["bid"] == float(row["bidPrice"]),
    )
    assert tops[BTC]["bid"] == float(row["bidPrice"])
    assert tops[BTC]["ask"] == float(row["askPrice"])
    assert tops[BTC]["askVolume"] == float(row["askQty"])


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
    orders = await settle(
        orders_task,
        lambda: pro.watch_orders(BTC),
        lambda os: any(o["id"] == placed["id"] and o["status"] == "closed" for o in os),
    )
    order = [o for o in orders if o["id"] == placed["id"]][-1]
    assert order["status"] == "closed"
    assert order["filled"] == 0.25
    assert order["average"] == placed["average"]
    trades = await asyncio.wait_for(trades_task, GUARD_S)
    rest = await pro.fetch_my_trades(BTC)
    assert trades[0]["order"] == placed["id"]
    assert trades[0]["price"] == rest[0]["price"]
    assert trades[0]["fee"]["cost"] == pytest.approx(rest[0]["fee"]["cost"])
    assert trades[0]["fee"]["currency"] == "USDT"

    resting_task = await started(pro.watch_orders(BTC))
    bid = (await pro.fetch_order_book(BTC, 5))["bids"][-1][0]
    limit = await pro.create_order(BTC, "limit", "buy", 0.1, bid)
    [resting] = [o for o in await asyncio.wait_for(resting_task, GUARD_S) if o["id"] == limit["id"]]
    assert resting["status"] == "open"
    assert resting["price"] == bid
    cancel_task = await started(pro.watch_orders(BTC))
    await pro.cancel_order(limit["id"], BTC)
    [cancelled] = [
        o for o in await asyncio.wait_for(cancel_task, GUARD_S) if o["id"] == limit["id"]
    ]
    assert cancelled["status"] == "canceled"


async def test_a_conditional_order_arrives_as_an_algo_update(pro: Any, venue: Venue) -> None:
    await pro.create_order(BTC, "market", "buy", 0.1)
    mark = venue.mark_price("BTCUSDT")
    task = await started(pro.watch_orders(BTC))
    stop = await pro.create_order(
        BTC,
        "market",
        "sell",
        0.1,
        None,
        {"stopLossPrice": round(mark * 0.9, 1), "reduceOnly": True},
    )
    orders = await asyncio.wait_for(task, GUARD_S)
    [seen] = [o for o in orders if o["id"] == stop["id"]]
    assert seen["status"] == "open"
    assert seen["triggerPrice"] == round(mark * 0.9, 1)
    task = await started(pro.watch_orders(BTC))
    await pro.cancel_order(stop["id"], BTC, {"trigger": True})
    [gone] = [o for o in await asyncio.wait_for(task, GUARD_S) if o["id"] == stop["id"]]
    assert gone["status"] == "canceled"


async def test_positions_and_balance_follow_fills_and_funding(pro: Any, venue: Venue) -> None:
    balance_task = await started(pro.watch_balance())
    positions_task = await started(pro.watch_positions([BTC]))
    await pro.create_order(BTC, "market", "buy", 0.4)
    key = pro.apiKey
    balance = await settle(
        balance_task,
        pro.watch_balance,
        lambda b: b["USDT"]["total"] == pytest.approx(venue.wallet(key), abs=1e-8),
    )
    assert balance["USDT"]["total"] < 10_000.0  # the fee
    positions = await settle(
        positions_task,
        lambda: pro.watch_positions([BTC]),
        lambda ps: any(p["contracts"] for p in ps),
    )
    [position] = [p for p in positions if p["symbol"] == BTC and p["contracts"]]
    assert position["contracts"] == 0.4
    assert position["side"] == "long"
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
    balance = await settle(
        funding_task,
        pro.watch_balance,
        lambda b: b["USDT"]["total"] == pytest.approx(after, abs=1e-8),
    )
    assert balance["USDT"]["total"] == pytest.approx(after, abs=1e-8)
