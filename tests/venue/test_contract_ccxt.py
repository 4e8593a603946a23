"""Unmodified ccxt (sync and async) trades on the mock venue through every unified call.

One scenario suite runs over four clients: loopback HTTP and in-process, each sync and async.
The same assertions passing on all four is what proves the transports cannot disagree. Each
test opens its own account (a fresh API key), so tests do not see each other's orders.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from safeguard._clock import ManualClock
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._engine import Venue
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
TRANSPORTS = ["http-sync", "http-async", "inprocess-sync", "inprocess-async"]
_keys = itertools.count(1)


@contextlib.contextmanager
def raises_exactly(cls: type[Exception], match: str | None = None) -> Iterator[Any]:
    """``pytest.raises`` that also refuses subclasses: the error table names exact classes."""
    with pytest.raises(cls, match=match) as info:
        yield info
    assert type(info.value) is cls, f"{type(info.value).__name__} is not {cls.__name__}"


async def call(result: Any) -> Any:
    """Await an async ccxt call; pass a sync one's result through."""
    return await result if inspect.isawaitable(result) else result


@pytest.fixture(scope="module")
def venue() -> Venue:
    # Simulated time that starts at wall time: ccxt signs with wall time.
    return Venue(clock=ManualClock(time.time()))


@pytest.fixture(scope="module")
def dialect(venue: Venue) -> Dialect:
    # This suite is about answers, not throttling: limits high enough never to bite.
    return Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))


@pytest.fixture(scope="module")
def server(venue: Venue, dialect: Dialect) -> Iterator[VenueServer]:
    with VenueServer(venue, dialect=dialect) as running:
        yield running


class Client:
    """A ccxt instance on one transport, logged into a fresh account per test."""

    def __init__(self, venue: Venue, exchange: Any, transport: str) -> None:
        self.venue = venue
        self.ex = exchange
        self.transport = transport
        self.api_key = ""

    @property
    def asynchronous(self) -> bool:
        return self.transport.endswith("async")

    def open_account(self, *, wallet: float = 10_000.0) -> str:
        key = f"key-{next(_keys)}"
        self.venue.create_account(key, "secret-" + key, wallet=wallet)
        self.login(key, "secret-" + key)
        return key

    def login(self, api_key: str, secret: str) -> None:
        self.ex.apiKey, self.ex.secret, self.api_key = api_key, secret, api_key

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await call(getattr(self.ex, method)(*args, **kwargs))

    async def close(self) -> None:
        if self.asynchronous:
            await self.ex.close()


def _new_client(transport: str, request: pytest.FixtureRequest, venue: Venue) -> Client:
    asynchronous = transport.endswith("async")
    dialect = request.getfixturevalue("dialect")
    if transport.startswith("http"):
        url = request.getfixturevalue("server").url
        exchange = ccxt_client(url, "placeholder", "placeholder", asyncio=asynchronous)
    else:
        exchange = inprocess_client(dialect, "placeholder", "placeholder", asyncio=asynchronous)
    return Client(venue, exchange, transport)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=TRANSPORTS)
async def session(request: pytest.FixtureRequest, venue: Venue) -> AsyncIterator[Client]:
    # One ccxt instance per transport for the whole module (markets loaded once); each test
    # logs it into a new account, which is all the isolation the tests need.
    made = _new_client(str(request.param), request, venue)
    made.open_account()
    await made("load_markets")
    yield made
    await made.close()


@pytest.fixture
def client(session: Client) -> Client:
    session.open_account()
    return session


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(
    request: pytest.FixtureRequest, venue: Venue, session: Client
) -> AsyncIterator[Client]:
    """A new ccxt instance that has never authenticated (ccxt turns a -2015 after a
    successful login into DDoSProtection, so "unknown key" needs a virgin instance)."""
    made = _new_client(session.transport, request, venue)
    made.ex.set_markets(session.ex.markets.values())
    yield made
    await made.close()


# --- market data --------------------------------------------------------------------------


async def test_load_markets_matches_the_engine_specs(client: Client) -> None:
    markets = client.ex.markets
    assert {BTC, ETH} <= set(markets)
    for symbol, market in markets.items():
        spec = client.venue.markets[market["id"]]
        assert market["swap"] is True
        assert market["linear"] is True
        assert market["settle"] == "USDT"
        assert market["precision"]["price"] == pytest.approx(spec.tick_size)
        assert market["precision"]["amount"] == pytest.approx(spec.step_size)
        assert market["limits"]["amount"]["min"] == pytest.approx(spec.min_qty)
        assert market["limits"]["cost"]["min"] == pytest.approx(spec.min_notional)
        assert symbol == f"{spec.base}/{spec.quote}:{spec.quote}"


async def test_fetch_time_is_the_venue_clock(client: Client) -> None:
    assert await client("fetch_time") == client.venue.server_time()


async def test_fetch_ticker(client: Client) -> None:
    ticker = await client("fetch_ticker", BTC)
    assert ticker["symbol"] == BTC
    assert ticker["last"] == pytest.approx(client.venue.last_price("BTCUSDT"))
    assert ticker["timestamp"] == client.venue.server_time()


async def test_fetch_bids_asks(client: Client) -> None:
    quotes = await client("fetch_bids_asks", [BTC, ETH])
    for symbol in (BTC, ETH):
        raw = client.venue.book_ticker(client.ex.market(symbol)["id"])[0]
        assert quotes[symbol]["bid"] == float(raw["bidPrice"])
        assert quotes[symbol]["ask"] == float(raw["askPrice"])
        assert quotes[symbol]["bid"] < quotes[symbol]["ask"]


async def test_fetch_order_book(client: Client) -> None:
    book = await client("fetch_order_book", BTC, 5)
    assert len(book["bids"]) == len(book["asks"]) == 5
    bids = [price for price, _ in book["bids"]]
    asks = [price for price, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    raw = client.venue.depth("BTCUSDT", 5)
    assert book["bids"][0] == [float(raw["bids"][0][0]), float(raw["bids"][0][1])]
    assert book["nonce"] == raw["lastUpdateId"]


async def test_fetch_trades_sees_a_fill(client: Client) -> None:
    order = await client("create_order", ETH, "market", "buy", 0.01)
    trades = await client("fetch_trades", ETH)
    assert trades, "a market order must leave a public trade"
    last = trades[-1]
    assert last["symbol"] == ETH
    assert last["price"] == pytest.approx(order["average"])
    assert last["side"] == "buy"


async def test_fetch_funding_rate(client: Client) -> None:
    rate = await client("fetch_funding_rate", BTC)
    raw = client.venue.premium_index("BTCUSDT")
    assert isinstance(raw, dict)
    assert rate["fundingRate"] == float(raw["lastFundingRate"])
    assert rate["markPrice"] == pytest.approx(float(raw["markPrice"]))
    assert rate["fundingTimestamp"] == raw["nextFundingTime"]


# --- account ------------------------------------------------------------------------------


async def test_fetch_balance(client: Client) -> None:
    balance = await client("fetch_balance")
    assert balance["USDT"]["total"] == pytest.approx(10_000.0)
    assert balance["USDT"]["free"] == pytest.approx(10_000.0)
    await client("create_order", BTC, "limit", "buy", 0.01, _passive_bid(client, BTC))
    after = await client("fetch_balance")
    assert after["USDT"]["used"] > 0
    assert after["USDT"]["free"] < 10_000.0


async def test_fetch_positions_after_a_fill(client: Client) -> None:
    assert await client("fetch_positions") == []
    order = await client("create_order", BTC, "market", "buy", 0.01)
    positions = await client("fetch_positions")
    assert len(positions) == 1
    position = positions[0]
    assert position["symbol"] == BTC
    assert position["side"] == "long"
    assert position["contracts"] == pytest.approx(0.01)
    assert position["entryPrice"] == pytest.approx(order["average"])
    assert position["marginMode"] == "cross"
    assert position["notional"] == pytest.approx(0.01 * client.venue.mark_price("BTCUSDT"))


async def test_fetch_leverage_tiers(client: Client) -> None:
    tiers = (await client("fetch_leverage_tiers", [BTC]))[BTC]
    table = client.venue.markets["BTCUSDT"].tiers
    assert len(tiers) == len(table)
    for row, tier in zip(tiers, table, strict=True):
        assert row["maxLeverage"] == tier.max_leverage
        assert row["maintenanceMarginRate"] == pytest.approx(tier.maintenance_margin_rate)
        assert row["minNotional"] == pytest.approx(tier.min_notional)


async def test_set_leverage(client: Client) -> None:
    answer = await client("set_leverage", 7, BTC)
    assert answer["leverage"] == 7
    assert answer["symbol"] == "BTCUSDT"
    await client("create_order", BTC, "market", "buy", 0.01)
    (position,) = await client("fetch_positions")
    assert position["leverage"] == 7
    with raises_exactly(ccxt.BadRequest):
        await client("set_leverage", 500, BTC)


async def test_set_margin_mode(client: Client) -> None:
    answer = await client("set_margin_mode", "isolated", ETH)
    assert answer == {"code": 200, "msg": "success"}
    with raises_exactly(ccxt.MarginModeAlreadySet):
        await client("set_margin_mode", "isolated", ETH)


# --- orders -------------------------------------------------------------------------------


def _passive_bid(client: Client, symbol: str, offset: float = 0.9) -> float:
    market_id = client.ex.market(symbol)["id"]
    bid = float(client.venue.book_ticker(market_id)[0]["bidPrice"])
    return float(client.ex.price_to_precision(symbol, bid * offset))


def _crossing_ask(client: Client, symbol: str) -> float:
    market_id = client.ex.market(symbol)["id"]
    ask = float(client.venue.book_ticker(market_id)[0]["askPrice"])
    return float(client.ex.price_to_precision(symbol, ask * 1.01))


async def test_limit_gtc_rests_and_is_found_by_id_and_client_id(client: Client) -> None:
    price = _passive_bid(client, BTC)
    order = await client(
        "create_order", BTC, "limit", "buy", 0.01, price, {"clientOrderId": "gtc-1"}
    )
    assert order["status"] == "open"
    assert order["price"] == price
    assert order["amount"] == 0.01
    assert order["clientOrderId"] == "gtc-1"
    assert order["timeInForce"] == "GTC"
    by_id = await client("fetch_order", order["id"], BTC)
    assert by_id["clientOrderId"] == "gtc-1"
    by_client = await client("fetch_order", None, BTC, {"clientOrderId": "gtc-1"})
    assert by_client["id"] == order["id"]
    assert [o["id"] for o in await client("fetch_open_orders", BTC)] == [order["id"]]


async def test_limit_ioc_that_cannot_fill_expires_without_resting(client: Client) -> None:
    order = await client(
        "create_order", BTC, "limit", "buy", 0.01, _passive_bid(client, BTC), {"timeInForce": "IOC"}
    )
    assert order["timeInForce"] == "IOC"
    assert order["status"] == "expired"
    assert order["filled"] == 0
    assert await client("fetch_open_orders", BTC) == []


async def test_limit_fok_that_cannot_fill_is_refused(client: Client) -> None:
    with raises_exactly(ccxt.OrderNotFillable):  # -5021
        await client(
            "create_order",
            BTC,
            "limit",
            "buy",
            0.01,
            _passive_bid(client, BTC),
            {"timeInForce": "FOK"},
        )
    assert await client("fetch_open_orders", BTC) == []


async def test_limit_fok_that_can_fill_fills_completely(client: Client) -> None:
    order = await client(
        "create_order",
        BTC,
        "limit",
        "buy",
        0.01,
        _crossing_ask(client, BTC),
        {"timeInForce": "FOK"},
    )
    assert order["status"] == "closed"
    assert order["filled"] == pytest.approx(0.01)


async def test_limit_ioc_that_crosses_fills(client: Client) -> None:
    price = _crossing_ask(client, BTC)
    order = await client("create_order", BTC, "limit", "buy", 0.01, price, {"timeInForce": "IOC"})
    assert order["status"] == "closed"
    assert order["filled"] == pytest.approx(0.01)
    assert order["average"] <= price


async def test_post_only_gtx_rests_when_passive_and_is_refused_when_it_would_take(
    client: Client,
) -> None:
    resting = await client(
        "create_order", BTC, "limit", "buy", 0.01, _passive_bid(client, BTC), {"postOnly": True}
    )
    assert resting["status"] == "open"
    assert resting["postOnly"] is True
    with raises_exactly(ccxt.OrderNotFillable):
        await client(
            "create_order",
            BTC,
            "limit",
            "buy",
            0.01,
            _crossing_ask(client, BTC),
            {"postOnly": True},
        )
    assert len(await client("fetch_open_orders", BTC)) == 1


async def test_market_order_fills_and_reduce_only_closes(client: Client) -> None:
    opened = await client("create_order", BTC, "market", "buy", 0.02)
    assert opened["status"] == "closed"
    assert opened["filled"] == pytest.approx(0.02)
    assert opened["side"] == "buy"
    assert opened["average"] > 0
    closed = await client("create_order", BTC, "market", "sell", 0.02, None, {"reduceOnly": True})
    assert closed["reduceOnly"] is True
    assert closed["filled"] == pytest.approx(0.02)
    assert await client("fetch_positions") == []
    with raises_exactly(ccxt.InvalidOrder):  # -2022: nothing left to reduce
        await client("create_order", BTC, "market", "sell", 0.01, None, {"reduceOnly": True})


@pytest.mark.parametrize(("kind", "offset"), [("STOP_MARKET", 0.9), ("TAKE_PROFIT_MARKET", 1.1)])
async def test_stop_orders_with_client_order_id(client: Client, kind: str, offset: float) -> None:
    await client("create_order", BTC, "market", "buy", 0.01)
    mark = client.venue.mark_price("BTCUSDT")
    trigger = float(client.ex.price_to_precision(BTC, mark * offset))
    order = await client(
        "create_order",
        BTC,
        kind,
        "sell",
        0.01,
        None,
        {
            "stopPrice": trigger,
            "reduceOnly": True,
            "workingType": "MARK_PRICE",
            "clientOrderId": f"stop-{kind}",
        },
    )
    assert order["status"] == "open"
    assert order["triggerPrice"] == trigger
    assert order["clientOrderId"] == f"stop-{kind}"
    assert order["reduceOnly"] is True
    assert order["info"]["orderType"] == kind
    assert order["info"]["workingType"] == "MARK_PRICE"
    by_client = {"clientOrderId": f"stop-{kind}", "trigger": True}
    found = await client("fetch_order", None, BTC, by_client)
    assert found["id"] == order["id"]
    assert found["status"] == "open"
    listed = await client("fetch_open_orders", BTC, None, None, {"trigger": True})
    assert [o["id"] for o in listed] == [order["id"]]
    canceled = await client("cancel_order", order["id"], BTC, {"trigger": True})
    assert canceled["id"] == order["id"]
    after = await client("fetch_order", order["id"], BTC, {"trigger": True})
    assert after["status"] == "canceled"


async def test_cancel_order_and_cancel_all(client: Client) -> None:
    price = _passive_bid(client, BTC)
    first = await client("create_order", BTC, "limit", "buy", 0.01, price)
    second = await client("create_order", BTC, "limit", "buy", 0.01, price)
    canceled = await client("cancel_order", first["id"], BTC)
    assert canceled["status"] == "canceled"
    assert canceled["id"] == first["id"]
    assert [o["id"] for o in await client("fetch_open_orders", BTC)] == [second["id"]]
    with raises_exactly(ccxt.OrderNotFound):  # -2011
        await client("cancel_order", first["id"], BTC)
    answer = await client("cancel_all_orders", BTC)
    assert answer[0]["info"]["code"] == 200
    assert await client("fetch_open_orders", BTC) == []
    assert (await client("fetch_order", second["id"], BTC))["status"] == "canceled"


# --- the error table ----------------------------------------------------------------------


async def test_unknown_order_is_order_not_found(client: Client) -> None:
    with raises_exactly(ccxt.OrderNotFound):  # -2013
        await client("fetch_order", "999999", BTC)


async def test_insufficient_margin(client: Client) -> None:
    client.open_account(wallet=10.0)
    with raises_exactly(ccxt.InsufficientFunds):  # -2019
        await client("create_order", BTC, "market", "buy", 1.0)
    assert await client("fetch_positions") == []


async def test_notional_too_small_is_invalid_order(client: Client) -> None:
    with raises_exactly(ccxt.InvalidOrder, match="-4164"):
        await client("create_order", BTC, "limit", "buy", 0.001, 1000.0)
    assert await client("fetch_open_orders", BTC) == []


async def test_duplicate_client_order_id_is_invalid_order(client: Client) -> None:
    price = _passive_bid(client, BTC)
    await client("create_order", BTC, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
    with raises_exactly(ccxt.InvalidOrder, match="-4116"):
        await client("create_order", BTC, "limit", "buy", 0.01, price, {"clientOrderId": "dup-1"})
    assert len(await client("fetch_open_orders", BTC)) == 1


async def test_precision_and_filter_failures_are_bad_requests(client: Client) -> None:
    # ccxt rounds amounts itself, so the raw endpoint is used to send what a buggy bot might.
    price = client.ex.price_to_precision(BTC, _passive_bid(client, BTC))
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with raises_exactly(ccxt.BadRequest, match="-1111"):
        await client("fapiPrivatePostOrder", base | {"quantity": "0.0100001", "price": price})
    with raises_exactly(ccxt.BadRequest, match=r"-4014|-1111"):
        await client("fapiPrivatePostOrder", base | {"quantity": "0.01", "price": price + "3"})
    with raises_exactly(ccxt.BadRequest, match="-1100"):
        await client("fapiPrivatePostOrder", base | {"quantity": "-1", "price": price})
    with raises_exactly(ccxt.BadRequest, match="-1100"):
        await client("fapiPrivatePostOrder", base | {"quantity": "1e-2", "price": price})
    with raises_exactly(ccxt.BadRequest, match="-4003"):
        await client("fapiPrivatePostOrder", base | {"quantity": "0", "price": price})
    with raises_exactly(ccxt.BadRequest, match="-1130"):
        await client(
            "fapiPrivatePostOrder",
            base | {"quantity": "0.01", "price": price, "closePosition": "x"},
        )
    with raises_exactly(ccxt.BadRequest, match="-1104"):
        await client(
            "fapiPrivatePostOrder",
            base | {"quantity": "0.01", "price": price, "priceProtect": "TRUE"},
        )
    with raises_exactly(ccxt.BadSymbol):  # -1121
        await client("fapiPrivatePostOrder", base | {"symbol": "DOGEUSDT", "quantity": "1"})
    assert await client("fetch_open_orders", BTC) == []


async def test_stale_timestamp_is_invalid_nonce(client: Client) -> None:
    stale = int(time.time() * 1000) - 60_000
    with raises_exactly(ccxt.InvalidNonce):  # -1021
        await client("fetch_balance", {"timestamp": stale})


async def test_wrong_secret_is_authentication_error(client: Client) -> None:
    client.login(client.api_key, "wrong-secret")
    with raises_exactly(ccxt.AuthenticationError, match="-1022"):
        await client("fetch_balance")


async def test_unknown_key_is_authentication_error(fresh: Client) -> None:
    fresh.login("nobody", "whatever")
    with raises_exactly(ccxt.AuthenticationError, match="-2015"):
        await fresh("fetch_balance")


async def test_unknown_path_is_a_404_exchange_error_not_a_network_error(client: Client) -> None:
    with raises_exactly(ccxt.ExchangeError) as exc:
        await client("fapiPublicGetConstituents", {"symbol": "BTCUSDT"})
    assert not isinstance(exc.value, ccxt.NetworkError)
    assert "-5000" in str(exc.value)


async def test_answers_carry_the_weight_header(client: Client) -> None:
    await client("fetch_ticker", BTC)
    headers = client.ex.last_response_headers
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    await client("create_order", BTC, "market", "buy", 0.01)
    headers = client.ex.last_response_headers
    assert int(headers["X-MBX-ORDER-COUNT-10S"]) >= 1
    assert int(headers["X-MBX-ORDER-COUNT-1M"]) >= 1


async def test_position_mode_round_trip(client: Client) -> None:
    assert (await client("fetch_position_mode", BTC))["hedged"] is False
    answer = await client("set_position_mode", True)
    assert answer == {"code": 200, "msg": "success"}
    assert (await client("fetch_position_mode", BTC))["hedged"] is True
    with raises_exactly(ccxt.OperationRejected):  # -4059: no need to change
        await client("set_position_mode", True)


# --- candles ------------------------------------------------------------------------------


async def test_fetch_ohlcv_serves_500_candles_at_the_first_tick(client: Client) -> None:
    candles = await client("fetch_ohlcv", BTC, "1m", None, 500)
    assert len(candles) == 500
    opens = [c[0] for c in candles]
    assert opens == list(range(opens[0], opens[0] + 500 * 60_000, 60_000))
    now = client.venue.server_time()
    assert opens[-1] <= now < opens[-1] + 60_000, "the last candle is the one now open"
    for _, o, h, low, c, volume in candles:
        assert low <= min(o, c) <= max(o, c) <= h
        assert volume >= 0
    assert candles[-1][4] == pytest.approx(client.venue.last_price("BTCUSDT"))


async def test_fetch_ohlcv_candles_hold_every_trade(client: Client) -> None:
    for side in ("buy", "sell", "buy"):
        await client("create_order", ETH, "market", side, 0.05)
    candles = await client("fetch_ohlcv", ETH, "1m", None, 30)
    trades = await client("fetch_trades", ETH, None, 1000)
    assert 3 <= len(trades) < 1000, "the tape still holds every trade of the run"
    checked = 0
    for open_ms, _, high, low, _, volume in candles:
        inside = [t for t in trades if open_ms <= t["timestamp"] < open_ms + 60_000]
        assert all(low <= t["price"] <= high for t in inside)
        assert volume == pytest.approx(sum(t["amount"] for t in inside))
        checked += len(inside)
    assert checked >= 3


async def test_fetch_ohlcv_honours_since_until_and_limit(client: Client) -> None:
    latest = await client("fetch_ohlcv", BTC, "1h", None, 50)
    since = latest[10][0]
    window = await client("fetch_ohlcv", BTC, "1h", since, 5)
    assert window == latest[10:15]
    until = latest[20][0]
    ending = await client("fetch_ohlcv", BTC, "1h", None, 4, {"until": until})
    assert ending == latest[17:21]


@pytest.mark.parametrize("price", ["mark", "index"])
async def test_fetch_ohlcv_mark_and_index_candles(client: Client, price: str) -> None:
    candles = await client("fetch_ohlcv", BTC, "5m", None, 100, {"price": price})
    assert len(candles) == 100
    current = client.venue.mark_price if price == "mark" else client.venue.index_price
    assert candles[-1][4] == pytest.approx(current("BTCUSDT"), rel=1e-6)
    assert all(c[5] == 0 for c in candles), "mark and index candles carry no volume"


async def test_premium_and_continuous_klines_answer_binance_rows(client: Client) -> None:
    premium = await client(
        "fapiPublicGetPremiumIndexKlines", {"symbol": "BTCUSDT", "interval": "1h"}
    )
    continuous = await client(
        "fapiPublicGetContinuousKlines",
        {"pair": "BTCUSDT", "contractType": "PERPETUAL", "interval": "1m", "limit": 3},
    )
    plain = await client("fapiPublicGetKlines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 3})
    assert len(premium) == 500
    assert all(len(row) == 12 for row in premium + continuous)
    assert continuous == plain
    assert abs(float(premium[-1][4])) < 0.01, "a premium is a small ratio, not a price"


async def test_klines_refuse_an_unknown_interval(client: Client) -> None:
    with raises_exactly(ccxt.BadRequest, match="-1120"):
        await client("fapiPublicGetKlines", {"symbol": "BTCUSDT", "interval": "7m"})


# --- trades and market data ---------------------------------------------------------------


@pytest.mark.parametrize("method", ["fapiPublicGetTrades", "fapiPublicGetHistoricalTrades"])
async def test_fetch_trades_by_trade_list(client: Client, method: str) -> None:
    order = await client("create_order", ETH, "market", "sell", 0.03)
    trades = await client("fetch_trades", ETH, None, 50, {"fetchTradesMethod": method})
    last = trades[-1]
    assert last["price"] == pytest.approx(order["average"])
    assert last["amount"] == pytest.approx(0.03)
    assert last["side"] == "sell"
    assert last["cost"] == pytest.approx(order["average"] * 0.03)
    assert int(last["id"]) == client.venue.trades("ETHUSDT", 1)[0]["id"]
    ids = [int(t["id"]) for t in trades]
    assert ids == sorted(ids)


async def test_historical_trades_from_an_id(client: Client) -> None:
    await client("create_order", ETH, "market", "buy", 0.01)
    await client("create_order", ETH, "market", "buy", 0.02)
    newest = client.venue.trades("ETHUSDT", 2)
    trades = await client(
        "fetch_trades",
        ETH,
        None,
        10,
        {"fetchTradesMethod": "fapiPublicGetHistoricalTrades", "fromId": newest[0]["id"]},
    )
    assert [t["amount"] for t in trades] == [0.01, 0.02]


async def test_fetch_last_prices(client: Client) -> None:
    prices = await client("fetch_last_prices", [BTC, ETH])
    for symbol, venue_id in ((BTC, "BTCUSDT"), (ETH, "ETHUSDT")):
        assert prices[symbol]["price"] == pytest.approx(client.venue.last_price(venue_id))
    one = await client("fapiPublicGetTickerPrice", {"symbol": "BTCUSDT"})
    assert float(one["price"]) == pytest.approx(client.venue.last_price("BTCUSDT"))
    assert one["time"] == client.venue.server_time()


async def test_fetch_open_interest_counts_the_longs(client: Client) -> None:
    before = await client("fetch_open_interest", ETH)
    await client("create_order", ETH, "market", "buy", 0.05)
    after = await client("fetch_open_interest", ETH)
    assert after["openInterestAmount"] == pytest.approx(before["openInterestAmount"] + 0.05)
    assert after["symbol"] == ETH


async def test_fetch_funding_rate_history_and_intervals(client: Client) -> None:
    venue = client.venue
    before = await client("fetch_funding_rate_history", BTC)
    venue.advance(venue.markets["BTCUSDT"].funding_interval_s)
    history = await client("fetch_funding_rate_history", BTC)
    assert len(history) == len(before) + 1
    newest = history[-1]
    assert newest["symbol"] == BTC
    assert newest["timestamp"] % (8 * 3_600_000) == 0
    assert newest["timestamp"] <= venue.server_time()
    assert abs(newest["fundingRate"]) <= venue.markets["BTCUSDT"].funding_cap
    since = await client("fetch_funding_rate_history", BTC, newest["timestamp"])
    assert [r["timestamp"] for r in since] == [newest["timestamp"]]
    intervals = await client("fetch_funding_intervals", [BTC, ETH])
    assert intervals[BTC]["interval"] == "8h"


# --- account reports ----------------------------------------------------------------------


async def test_income_sums_to_the_wallet_change(client: Client) -> None:
    venue = client.venue
    await client("create_order", BTC, "market", "buy", 0.02)
    venue.advance(venue.markets["BTCUSDT"].funding_interval_s)  # one funding payment
    await client("create_order", BTC, "market", "sell", 0.02)
    ledger = await client("fetch_ledger", "USDT", 0, 1000)
    kinds = {entry["type"] for entry in ledger}
    assert {"transfer", "trade", "commission", "fee"} <= kinds, kinds  # ccxt: FUNDING_FEE is fee
    total = sum(e["amount"] if e["direction"] == "in" else -e["amount"] for e in ledger)
    assert total == pytest.approx(venue.wallet(client.api_key), abs=1e-8)
    ids = [e["id"] for e in ledger]
    assert len(set(ids)) == len(ids), "every income row has its own tranId"
    raw = await client("fapiPrivateGetIncome", {"startTime": 0, "limit": 1000})
    units = sum(round(float(r["income"]) * 10**8) for r in raw)
    assert units == venue.wallet_units(client.api_key)
    commissions = [r for r in raw if r["incomeType"] == "COMMISSION"]
    assert len(commissions) == 2
    assert all(r["tradeId"] and r["symbol"] == "BTCUSDT" for r in commissions)
    funding = await client("fetch_funding_history", BTC, 0)
    assert len(funding) == 1
    [paid] = [r for r in raw if r["incomeType"] == "FUNDING_FEE"]
    assert funding[0]["amount"] == pytest.approx(float(paid["income"]))


async def test_fetch_trading_fee_is_the_commission_rate(client: Client) -> None:
    fee = await client("fetch_trading_fee", BTC)
    spec = client.venue.markets["BTCUSDT"]
    assert fee["maker"] == pytest.approx(spec.maker_fee)
    assert fee["taker"] == pytest.approx(spec.taker_fee)


async def test_v2_balance_account_and_position_risk(client: Client) -> None:
    order = await client("create_order", ETH, "market", "buy", 0.1)
    [balance] = await client("fapiPrivateV2GetBalance")
    v3 = client.venue.account_v3(client.api_key)
    assert balance["balance"] == v3["assets"][0]["walletBalance"]
    assert balance["availableBalance"] == v3["assets"][0]["availableBalance"]
    # As an option, not a param: ccxt 4.5.90 forwards a useV2 param to leverageBracket too.
    options = client.ex.options
    options["fetchAccountPositions"] = options["fetchPositionsRisk"] = {"useV2": True}
    try:
        positions = await client("fetch_account_positions")
        risk = await client("fetch_positions_risk")
    finally:
        del options["fetchAccountPositions"], options["fetchPositionsRisk"]
    [eth] = [p for p in positions if p["symbol"] == ETH and p["contracts"]]
    assert eth["entryPrice"] == pytest.approx(order["average"])
    assert eth["leverage"] == 20
    [held] = [p for p in risk if p["contracts"]]
    assert held["symbol"] == ETH
    assert held["side"] == "long"
    raw = await client("fapiPrivateV2GetPositionRisk")
    flat = {r["symbol"] for r in raw if float(r["positionAmt"]) == 0}
    assert flat == set(client.venue.markets) - {"ETHUSDT"}, "v2 lists flat symbols too"


async def test_account_config_status_and_order_limits(client: Client) -> None:
    config = await client("fapiPrivateGetAccountConfig")
    assert config["dualSidePosition"] is False
    assert config["canTrade"] is True
    assert await client("fapiPrivateGetMultiAssetsMargin") == {"multiAssetsMargin": False}
    status = await client("fapiPrivateGetApiTradingStatus")
    assert status["indicators"] == {}
    limits = await client("fapiPrivateGetRateLimitOrder")
    assert {(r["interval"], r["intervalNum"]) for r in limits} == {("MINUTE", 1), ("SECOND", 10)}
    assert all(r["rateLimitType"] == "ORDERS" for r in limits)


async def test_adl_rank_of_an_open_position(client: Client) -> None:
    await client("create_order", BTC, "market", "sell", 0.01)
    ranks = await client("fetch_positions_adl_rank", [BTC])
    [rank] = ranks
    assert rank["symbol"] == BTC
    assert 1 <= rank["rank"] <= 4  # one-way mode: ccxt reads the queue place from BOTH
    raw = await client("fapiPrivateGetAdlQuantile", {"symbol": "BTCUSDT"})
    assert 1 <= raw[0]["adlQuantile"]["SHORT"] <= 4
    assert raw[0]["adlQuantile"]["LONG"] == 0


async def test_no_liquidations_is_an_empty_list(client: Client) -> None:
    assert await client("fetch_my_liquidations", BTC) == []


async def test_add_and_reduce_isolated_margin(client: Client) -> None:
    await client("set_margin_mode", "isolated", ETH)
    await client("create_order", ETH, "market", "buy", 0.1)
    before = float(client.venue.position_risk(client.api_key, "ETHUSDT")[0]["isolatedWallet"])
    added = await client("add_margin", ETH, 25)
    assert added["amount"] == 25
    assert added["type"] == "add"
    after = float(client.venue.position_risk(client.api_key, "ETHUSDT")[0]["isolatedWallet"])
    assert after == pytest.approx(before + 25)
    await client("reduce_margin", ETH, 10)
    final = float(client.venue.position_risk(client.api_key, "ETHUSDT")[0]["isolatedWallet"])
    assert final == pytest.approx(before + 15)
    with raises_exactly(ccxt.InsufficientFunds):  # -4051: that would leave it under-margined
        await client("reduce_margin", ETH, before + 15)


# --- order routes -------------------------------------------------------------------------


async def test_edit_order_keeps_the_id_and_changes_the_price(client: Client) -> None:
    price = _passive_bid(client, BTC)
    order = await client("create_order", BTC, "limit", "buy", 0.01, price)
    new_price = _passive_bid(client, BTC, 0.85)
    edited = await client("edit_order", order["id"], BTC, "limit", "buy", 0.02, new_price)
    assert edited["id"] == order["id"]
    assert edited["price"] == new_price
    assert edited["amount"] == pytest.approx(0.02)
    assert edited["status"] == "open"
    [listed] = await client("fetch_open_orders", BTC)
    assert (listed["id"], listed["price"]) == (order["id"], new_price)


async def test_edit_order_that_now_crosses_fills(client: Client) -> None:
    order = await client("create_order", ETH, "limit", "buy", 0.05, _passive_bid(client, ETH))
    edited = await client(
        "edit_order", order["id"], ETH, "limit", "buy", 0.05, _crossing_ask(client, ETH)
    )
    assert edited["id"] == order["id"]
    assert edited["status"] == "closed"
    assert edited["filled"] == pytest.approx(0.05)


async def test_create_orders_places_a_batch_of_two(client: Client) -> None:
    orders = await client(
        "create_orders",
        [
            {
                "symbol": BTC,
                "type": "limit",
                "side": "buy",
                "amount": 0.01,
                "price": _passive_bid(client, BTC),
            },
            {"symbol": ETH, "type": "market", "side": "buy", "amount": 0.02},
        ],
    )
    assert len(orders) == 2
    assert orders[0]["status"] == "open"
    assert orders[1]["status"] == "closed"
    assert orders[1]["filled"] == pytest.approx(0.02)
    open_ids = {o["id"] for o in await client("fetch_open_orders", BTC)}
    assert orders[0]["id"] in open_ids


async def test_a_batch_answers_each_refusal_in_its_place(client: Client) -> None:
    batch = [
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "STOP_MARKET",
            "quantity": "0.01",
            "stopPrice": "1000",
        },
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
    ]
    answer = await client("fapiPrivatePostBatchOrders", {"batchOrders": batch})
    assert [item.get("code") for item in answer] == [-4164, -4120, None]
    assert answer[2]["status"] == "FILLED"


async def test_cancel_all_trigger_orders_leaves_plain_orders(client: Client) -> None:
    await client("create_order", BTC, "market", "buy", 0.01)
    limit = await client("create_order", BTC, "limit", "buy", 0.01, _passive_bid(client, BTC))
    trigger = float(client.ex.price_to_precision(BTC, client.venue.mark_price("BTCUSDT") * 0.9))
    await client(
        "create_order",
        BTC,
        "market",
        "sell",
        0.01,
        None,
        {"stopLossPrice": trigger, "reduceOnly": True},
    )
    assert len(await client("fetch_open_orders", BTC, None, None, {"trigger": True})) == 1
    answer = await client("cancel_all_orders", BTC, {"trigger": True})
    assert [a["info"]["code"] for a in answer] == [200]
    assert await client("fetch_open_orders", BTC, None, None, {"trigger": True}) == []
    assert [o["id"] for o in await client("fetch_open_orders", BTC)] == [limit["id"]]


async def test_fetch_open_order(client: Client) -> None:
    order = await client("create_order", BTC, "limit", "buy", 0.01, _passive_bid(client, BTC))
    found = await client("fetch_open_order", order["id"], BTC)
    assert found["id"] == order["id"]
    assert found["status"] == "open"
    await client("cancel_order", order["id"], BTC)
    with raises_exactly(ccxt.OrderNotFound):
        await client("fetch_open_order", order["id"], BTC)


async def test_order_test_checks_and_places_nothing(client: Client) -> None:
    assert (
        await client(
            "fapiPrivatePostOrderTest",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
        )
        == {}
    )
    assert client.venue.position_risk(client.api_key) == []
    with raises_exactly(ccxt.InvalidOrder, match="-4164"):
        await client(
            "fapiPrivatePostOrderTest",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"},
        )


# --- today's rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"]
)
async def test_conditional_types_on_the_order_endpoint_are_minus_4120(
    client: Client, kind: str
) -> None:
    request = {
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": kind,
        "quantity": "0.01",
        "stopPrice": "1000",
        "newOrderRespType": "RESULT",
    }
    with raises_exactly(ccxt.InvalidOrder, match="-4120"):
        await client("fapiPrivatePostOrder", request)


async def test_new_order_answers_ack_by_default_and_result_on_request(client: Client) -> None:
    market = {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    ack = await client("fapiPrivatePostOrder", market)
    assert (ack["status"], ack["executedQty"]) == ("NEW", "0")
    result = await client("fapiPrivatePostOrder", {**market, "newOrderRespType": "RESULT"})
    assert (result["status"], result["executedQty"]) == ("FILLED", "0.010")
    # The order did fill: ACK only answers before the fill.
    found = await client("fetch_order", str(ack["orderId"]), ETH)
    assert found["status"] == "closed"


async def test_a_stop_limit_order_rests_as_a_limit_once_triggered(client: Client) -> None:
    await client("create_order", BTC, "market", "buy", 0.02)
    last = client.venue.last_price("BTCUSDT")  # a CONTRACT_PRICE trigger watches the last
    trigger = float(client.ex.price_to_precision(BTC, last * 1.01))
    limit = float(client.ex.price_to_precision(BTC, last * 1.04))  # above the spike: rests
    order = await client(
        "create_order",
        BTC,
        "limit",
        "sell",
        0.02,
        limit,
        {"takeProfitPrice": trigger, "reduceOnly": True},
    )
    assert order["status"] == "open"
    assert order["info"]["orderType"] == "TAKE_PROFIT"
    assert order["price"] == limit
    assert order["triggerPrice"] == trigger
    client.venue.spike("BTCUSDT", 2.0, 60)
    client.venue.advance(10)
    [resting] = client.venue.open_orders(client.api_key, symbol="BTCUSDT")
    assert resting["orderId"] == int(order["id"])
    assert (resting["type"], resting["origType"]) == ("LIMIT", "TAKE_PROFIT")
    assert float(resting["price"]) == limit
    await client("cancel_order", order["id"], BTC)


async def test_a_stop_waits_in_the_algo_service_apart_from_the_open_orders(client: Client) -> None:
    # Since 2025-12-09 Binance keeps an untriggered conditional order in its algo service:
    # GET openOrders and openOrder do not show it, DELETE allOpenOrders leaves it, and only
    # the algo routes (ccxt's {"trigger": True}) list and cancel it. A venue that listed and
    # cancelled it with the rest passed a bot on paper that left its stops live in production.
    await client("create_order", BTC, "market", "buy", 0.02)
    mark = client.venue.mark_price("BTCUSDT")
    stop_price = float(client.ex.price_to_precision(BTC, mark * 0.9))
    stop = await client(
        "create_order", BTC, "market", "sell", 0.02, None,
        {"stopLossPrice": stop_price, "reduceOnly": True},
    )  # fmt: skip
    bid = float(client.ex.price_to_precision(BTC, mark * 0.8))
    limit = await client("create_order", BTC, "limit", "buy", 0.01, bid)

    assert [o["id"] for o in await client("fetch_open_orders", BTC)] == [limit["id"]]
    triggers = await client("fetch_open_orders", BTC, None, None, {"trigger": True})
    assert [o["id"] for o in triggers] == [stop["id"]]
    with raises_exactly(ccxt.OrderNotFound, match="-2013"):
        await client("fapiPrivateGetOpenOrder", {"symbol": "BTCUSDT", "orderId": stop["id"]})

    await client("cancel_all_orders", BTC)  # DELETE allOpenOrders: the limit only
    assert await client("fetch_open_orders", BTC) == []
    triggers = await client("fetch_open_orders", BTC, None, None, {"trigger": True})
    assert [o["id"] for o in triggers] == [stop["id"]]
    await client("cancel_all_orders", BTC, {"trigger": True})  # DELETE algoOpenOrders
    assert await client("fetch_open_orders", BTC, None, None, {"trigger": True}) == []
    await client("create_order", BTC, "market", "sell", 0.02, None, {"reduceOnly": True})


async def test_the_plain_order_routes_do_not_know_a_stop_by_its_algo_id(client: Client) -> None:
    # GET and DELETE /fapi/v1/order (ccxt's fetch_order / cancel_order without {"trigger":
    # True}) and DELETE batchOrders answer as Binance does for an id only its algo service
    # holds: -2013 and -2011. A venue that answered there let a bot cancel its stops the old
    # way on paper and leave them working live.
    await client("create_order", BTC, "market", "buy", 0.02)
    mark = client.venue.mark_price("BTCUSDT")
    stop_price = float(client.ex.price_to_precision(BTC, mark * 0.9))
    stop = await client(
        "create_order", BTC, "market", "sell", 0.02, None,
        {"stopLossPrice": stop_price, "reduceOnly": True, "clientOrderId": "algo-only"},
    )  # fmt: skip
    with raises_exactly(ccxt.OrderNotFound, match="-2013"):
        await client("fetch_order", stop["id"], BTC)
    with raises_exactly(ccxt.OrderNotFound, match="-2013"):
        await client("fetch_order", None, BTC, {"origClientOrderId": "algo-only"})
    with raises_exactly(ccxt.OrderNotFound, match="-2011"):
        await client("cancel_order", stop["id"], BTC)
    with raises_exactly(ccxt.OrderNotFound, match="-2011"):
        await client("cancel_order", None, BTC, {"origClientOrderId": "algo-only"})
    bid = float(client.ex.price_to_precision(BTC, mark * 0.8))
    limit = await client("create_order", BTC, "limit", "buy", 0.01, bid)
    # ccxt parses the batch's {code, msg} item away: what it answers is the limit alone
    answered = await client("cancel_orders", [limit["id"], stop["id"]], BTC)
    assert [(o["id"], o["status"]) for o in answered] == [(limit["id"], "canceled")]
    # none of those touched it: the algo routes still see it working, then cancel it
    found = await client("fetch_order", stop["id"], BTC, {"trigger": True})
    assert found["status"] == "open"
    canceled = await client("cancel_order", stop["id"], BTC, {"trigger": True})
    assert canceled["id"] == stop["id"]
    # once cancelled it is still the algo service's: the plain route does not know it either
    with raises_exactly(ccxt.OrderNotFound, match="-2013"):
        await client("fetch_order", stop["id"], BTC)
    await client("create_order", BTC, "market", "sell", 0.02, None, {"reduceOnly": True})


async def test_a_stop_that_traded_is_an_ordinary_order_and_history_is_split(
    client: Client,
) -> None:
    # allOrders lists what reached matching; allAlgoOrders (ccxt's fetch_orders with
    # {"trigger": True}) every conditional order. A stop whose trigger traded is an ordinary
    # order to the plain routes as well (on Binance, the regular order the trigger created):
    # a bot looking up the order behind a fill must find it.
    await client("create_order", BTC, "market", "buy", 0.02)
    last = client.venue.last_price("BTCUSDT")
    waiting = await client(
        "create_order", BTC, "market", "sell", 0.01, None,
        {"stopLossPrice": float(client.ex.price_to_precision(BTC, last * 0.8)),
         "reduceOnly": True},
    )  # fmt: skip
    firing = await client(
        "create_order", BTC, "market", "sell", 0.01, None,
        {"stopLossPrice": float(client.ex.price_to_precision(BTC, last * 0.995)),
         "reduceOnly": True},
    )  # fmt: skip
    client.venue.spike("BTCUSDT", -2.0, 60)
    client.venue.advance(10)
    fired = await client("fetch_order", firing["id"], BTC)  # the plain route knows it now
    assert (fired["status"], fired["filled"]) == ("closed", 0.01)
    fills = [t["order"] for t in await client("fetch_my_trades", BTC)]
    assert firing["id"] in fills
    plain = [o["id"] for o in await client("fetch_orders", BTC)]
    assert firing["id"] in plain
    assert waiting["id"] not in plain
    algo = {
        o["id"]: o["status"]
        for o in await client("fetch_orders", BTC, None, None, {"trigger": True})
    }
    assert algo == {waiting["id"]: "open", firing["id"]: "closed"}
    with raises_exactly(ccxt.OrderNotFound, match="-2013"):
        await client("fetch_order", waiting["id"], BTC)
    await client("cancel_all_orders", BTC, {"trigger": True})
    await client("create_order", BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
