"""Binance's official Python connector (``binance-futures-connector``, ``UMFutures``) pointed at
the loopback venue: the routes a bot calls through it answer what it parses."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from binance.error import ClientError
from binance.um_futures import UMFutures

from safeguard._clock import ManualClock
from safeguard.venue._dialect import Dialect
from safeguard.venue._engine import Venue
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer

KEY, SECRET = "connector-key", "connector-secret"


@pytest.fixture(scope="module")
def venue() -> Venue:
    venue = Venue(clock=ManualClock(time.time()))  # the connector signs with wall time
    venue.create_account(KEY, SECRET, wallet=10_000.0)
    return venue


@pytest.fixture(scope="module")
def client(venue: Venue) -> Iterator[UMFutures]:
    dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
    with VenueServer(venue, dialect=dialect) as server:
        yield UMFutures(key=KEY, secret=SECRET, base_url=server.url)


def test_candles_and_market_data(client: UMFutures, venue: Venue) -> None:
    candles = client.klines("BTCUSDT", "1m", limit=500)
    assert len(candles) == 500
    assert candles[-1][4] == venue.ticker_price("BTCUSDT")[0]["price"]
    mark = client.mark_price_klines("BTCUSDT", "1h", limit=3)
    index = client.index_price_klines("BTCUSDT", "1h", limit=3)
    assert float(mark[-1][4]) == pytest.approx(venue.mark_price("BTCUSDT"), rel=1e-6)
    assert float(index[-1][4]) == pytest.approx(venue.index_price("BTCUSDT"), rel=1e-6)
    assert client.continuous_klines("BTCUSDT", "PERPETUAL", "1m", limit=2) == client.klines(
        "BTCUSDT", "1m", limit=2
    )
    assert client.ticker_price("ETHUSDT")["symbol"] == "ETHUSDT"
    assert client.open_interest("BTCUSDT")["symbol"] == "BTCUSDT"
    assert client.funding_rate("BTCUSDT") == []
    # connector 4.2.0's funding_info() asks /fapi/v1/fundingRate (its bug): ask the route.
    info = client.query("/fapi/v1/fundingInfo")
    assert {row["symbol"] for row in info} == set(venue.markets)


def test_orders_edit_batch_and_income(client: UMFutures, venue: Venue) -> None:
    ack = client.new_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert ack["status"] == "NEW"  # ACK is the connector's (and Binance's) default
    bid = float(venue.book_ticker("BTCUSDT")[0]["bidPrice"])
    resting = client.new_order(
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=round(bid * 0.9, 1),
        timeInForce="GTC",
    )
    edited = client.modify_order(
        symbol="BTCUSDT",
        side="BUY",
        quantity=0.01,
        price=round(bid * 0.88, 1),
        orderId=resting["orderId"],
    )
    assert edited["orderId"] == resting["orderId"]
    assert float(edited["price"]) == pytest.approx(round(bid * 0.88, 1))
    batch = client.new_batch_order(
        [
            {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"},
            {"symbol": "ETHUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"},
        ]
    )
    assert [o["status"] for o in batch] == ["FILLED", "FILLED"]
    with pytest.raises(ClientError) as refused:
        client.new_order(
            symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity=0.01, stopPrice=1000
        )
    assert refused.value.error_code == -4120
    income = client.get_income_history(startTime=0, limit=1000)
    units = sum(round(float(r["income"]) * 10**8) for r in income)
    assert units == venue.wallet_units(KEY)
    [balance] = client.balance()
    assert float(balance["balance"]) == pytest.approx(venue.wallet(KEY))
    [position] = client.get_position_risk(symbol="BTCUSDT")
    assert float(position["positionAmt"]) == pytest.approx(0.01)
    rate = client.commission_rate("BTCUSDT")
    assert float(rate["takerCommissionRate"]) == venue.markets["BTCUSDT"].taker_fee
    assert client.futures_account_configuration()["dualSidePosition"] is False
    assert {r["rateLimitType"] for r in client.query_user_rate_limit()} == {"ORDERS"}
    assert client.api_trading_status()["indicators"] == {}
    assert client.adl_quantile(symbol="BTCUSDT")[0]["adlQuantile"]["LONG"] >= 1
    assert client.force_orders() == []


def test_leverage_brackets_of_one_symbol_are_one_object(client: UMFutures) -> None:
    one = client.leverage_brackets(symbol="BTCUSDT")
    assert isinstance(one, dict)
    assert one["symbol"] == "BTCUSDT"
    every = client.leverage_brackets()
    assert isinstance(every, list)
    assert one == every[0]


def test_a_trailing_stop_is_refused_as_an_unsupported_type(client: UMFutures) -> None:
    with pytest.raises(ClientError) as refused:
        client.sign_request(
            "POST",
            "/fapi/v1/algoOrder",
            {
                "algoType": "CONDITIONAL",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "TRAILING_STOP_MARKET",
                "quantity": "0.01",
                "callbackRate": "1",
            },
        )
    assert refused.value.error_code == -1116  # Invalid orderType, not -1104
