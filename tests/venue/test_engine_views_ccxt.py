"""The engine's answers, parsed by a real ccxt ``binanceusdm``, say what the engine holds."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Fill, Venue, VenueConfig


@pytest.fixture
def venue() -> Venue:
    v = Venue(VenueConfig(seed=4), clock=ManualClock())
    v.create_account("k", "s", wallet=10_000.0)
    return v


@pytest.fixture
def exchange(venue: Venue) -> Any:
    ex = ccxt.binanceusdm()
    ex.set_markets([ex.parse_market(s) for s in venue.exchange_info()["symbols"]])
    return ex


def test_markets_carry_the_specs_filters(venue: Venue, exchange: Any) -> None:
    market = exchange.market("BTC/USDT:USDT")
    spec = venue.markets["BTCUSDT"]
    assert market["id"] == "BTCUSDT"
    assert market["linear"]
    assert market["swap"]
    assert market["settle"] == "USDT"
    assert market["precision"]["price"] == spec.tick_size
    assert market["precision"]["amount"] == spec.step_size
    assert market["limits"]["amount"]["min"] == spec.min_qty
    assert market["limits"]["cost"]["min"] == spec.min_notional


def test_an_order_position_and_balance_read_back_through_ccxt(venue: Venue, exchange: Any) -> None:
    answer = venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    order = exchange.parse_order(answer)
    [fill] = [e for e in venue.events if isinstance(e, Fill)]
    assert order["status"] == "closed"
    assert order["filled"] == 0.01
    assert order["average"] == fill.price
    position = exchange.parse_position_risk(venue.position_risk("k")[0])
    assert position["side"] == "long"
    assert position["contracts"] == 0.01
    assert position["entryPrice"] == fill.price
    assert position["markPrice"] == pytest.approx(venue.mark_price("BTCUSDT"))
    assert position["marginMode"] == "cross"
    balance = exchange.parse_balance_custom(venue.account_v3("k"), "linear")
    assert balance["USDT"]["total"] == pytest.approx(venue.wallet("k"))
    assert balance["USDT"]["used"] == pytest.approx(venue.mark_price("BTCUSDT") * 0.01 / 20)
    [trade] = exchange.parse_trades(
        venue.user_trades("k", symbol="BTCUSDT"), exchange.market("BTC/USDT:USDT")
    )
    assert trade["fee"]["cost"] == pytest.approx(fill.fee)


def test_market_data_reads_back_through_ccxt(venue: Venue, exchange: Any) -> None:
    venue.advance(600)
    venue.place_order("k", symbol="ETHUSDT", side="SELL", type="MARKET", quantity=0.1)
    book = exchange.parse_order_book(venue.depth("ETHUSDT", 20), "ETH/USDT:USDT")
    assert book["bids"][0][0] < book["asks"][0][0]
    assert len(book["bids"]) == 20
    ticker = exchange.parse_ticker(venue.ticker_24h("ETHUSDT"))
    assert ticker["last"] == venue.last_price("ETHUSDT")
    assert ticker["low"] <= ticker["last"] <= ticker["high"]
    rate = exchange.parse_funding_rate(venue.premium_index("ETHUSDT"))
    assert rate["markPrice"] == pytest.approx(venue.mark_price("ETHUSDT"))
    assert rate["fundingTimestamp"] > venue.server_time()
    [trade] = exchange.parse_trades(
        venue.agg_trades("ETHUSDT", 10), exchange.market("ETH/USDT:USDT")
    )
    assert trade["amount"] == 0.1
    tiers = exchange.parse_leverage_tiers(venue.leverage_brackets("k"), None, "symbol")
    assert [t["maxLeverage"] for t in tiers["BTC/USDT:USDT"]] == [150, 100, 75, 50, 25]
