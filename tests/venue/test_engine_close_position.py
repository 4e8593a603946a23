"""``closePosition=true`` stops, through a real ``ccxt.binanceusdm`` on the in-process client.

Binance's close-all stop: STOP_MARKET or TAKE_PROFIT_MARKET with no quantity and no
``reduceOnly``. It is accepted whether or not a position exists (so it can rest beside a resting
entry), closes the whole position its side reduces when it triggers, and expires if there is
nothing to close then (one-way mode: a side that would add to the position closes nothing).
ccxt 4.5.90 sends ``stopLossPrice`` + ``closePosition`` to ``/fapi/v1/algoOrder`` without a
quantity; ``/fapi/v1/order`` takes the same order under its own field names.
"""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client

KEY, SECRET = "cp-key-0123456789", "cp-secret-0123456789abcdef"
SYMBOL, VENUE_SYMBOL = "ETH/USDT:USDT", "ETHUSDT"


@pytest.fixture
def venue() -> Venue:
    v = Venue(VenueConfig(symbols=(VENUE_SYMBOL,)), clock=ManualClock(1_700_000_000.0))
    v.create_account(KEY, SECRET, wallet=100_000.0)
    return v


@pytest.fixture
def ex(venue: Venue) -> Any:
    return inprocess_client(Dialect(venue), KEY, SECRET)


def _position(venue: Venue) -> float:
    return sum(float(row["positionAmt"]) for row in venue.position_risk(KEY, VENUE_SYMBOL))


def _move(venue: Venue, pct: float) -> None:
    """The contract price moves ``pct`` % and the mark follows (its basis is smoothed)."""
    venue.spike(VENUE_SYMBOL, pct, 3_600)
    for _ in range(60):
        venue.advance(10.0)


def _off_mark(venue: Venue, pct: float) -> float:
    return round(venue.mark_price(VENUE_SYMBOL) * (1 + pct / 100), 2)


def _close_all_stop(ex: Any, side: str, trigger: float, **extra: Any) -> Any:
    params = {"stopLossPrice": trigger, "closePosition": True, "workingType": "MARK_PRICE"}
    return ex.create_order(SYMBOL, "market", side, None, None, params | extra)


def _status(venue: Venue, order: Any) -> str:
    return str(venue.get_order(KEY, symbol=VENUE_SYMBOL, order_id=int(order["id"]))["status"])


def test_accepted_with_no_position_and_shown_as_close_position(venue: Venue, ex: Any) -> None:
    stop = _close_all_stop(ex, "sell", _off_mark(venue, -1.0))
    assert stop["status"] == "open"
    assert stop["info"]["closePosition"] is True
    assert stop["info"]["reduceOnly"] is False
    assert stop["info"]["quantity"] == "0"
    held = venue.get_order(KEY, symbol=VENUE_SYMBOL, order_id=int(stop["id"]))
    assert (held["type"], held["closePosition"], held["origQty"]) == ("STOP_MARKET", True, "0")
    # Since 2025-12-09 /fapi/v1/order refuses it (-4120); the algo endpoint takes it raw too.
    order = {
        "symbol": VENUE_SYMBOL,
        "side": "SELL",
        "type": "TAKE_PROFIT_MARKET",
        "closePosition": "true",
    }
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):
        ex.fapiPrivatePostOrder({**order, "stopPrice": str(_off_mark(venue, 1.0))})
    answer = ex.fapiPrivatePostAlgoOrder(
        {**order, "algoType": "CONDITIONAL", "triggerPrice": str(_off_mark(venue, 1.0))}
    )
    assert answer["closePosition"] is True
    assert answer["algoStatus"] == "NEW"
    listed = ex.fetch_open_orders(SYMBOL, None, None, {"trigger": True})
    assert [o["info"]["closePosition"] for o in listed] == [True, True]
    assert _position(venue) == 0.0


def test_triggers_and_closes_the_whole_position(venue: Venue, ex: Any) -> None:
    stop = _close_all_stop(ex, "sell", _off_mark(venue, -1.0))
    # The position grows after the stop was placed: the stop closes all of it.
    ex.create_order(SYMBOL, "market", "buy", 0.03)
    ex.create_order(SYMBOL, "market", "buy", 0.02)
    assert _position(venue) == pytest.approx(0.05)
    _move(venue, -3.0)
    assert _position(venue) == 0.0
    fired = ex.fetch_order(stop["id"], SYMBOL, {"trigger": True})
    assert fired["status"] == "closed"
    assert _status(venue, stop) == "FILLED"
    order = venue.get_order(KEY, symbol=VENUE_SYMBOL, order_id=int(stop["id"]))
    assert order["executedQty"] == "0.050"


def test_expires_when_there_is_no_position_to_close(venue: Venue, ex: Any) -> None:
    stop = _close_all_stop(ex, "sell", _off_mark(venue, -1.0))
    _move(venue, -3.0)
    assert _status(venue, stop) == "EXPIRED"
    assert _position(venue) == 0.0
    assert ex.fetch_open_orders(SYMBOL, None, None, {"trigger": True}) == []


def test_one_way_a_side_that_would_add_closes_nothing(venue: Venue, ex: Any) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.05)
    # A BUY close-all on a long position would only add: it triggers and does nothing.
    stop = _close_all_stop(ex, "buy", _off_mark(venue, 1.0))
    _move(venue, 3.0)
    assert _status(venue, stop) == "EXPIRED"
    assert _position(venue) == pytest.approx(0.05)


def test_refuses_a_quantity_or_reduce_only_alongside(venue: Venue, ex: Any) -> None:
    trigger = str(_off_mark(venue, -1.0))
    base = {"symbol": VENUE_SYMBOL, "side": "SELL", "type": "STOP_MARKET", "closePosition": "true"}
    with pytest.raises(ccxt.BadRequest, match=r"-1106.*reduceOnly"):
        _close_all_stop(ex, "sell", float(trigger), reduceOnly=True)
    with pytest.raises(ccxt.BadRequest, match=r"-1106.*quantity"):
        ex.fapiPrivatePostAlgoOrder(
            base | {"algoType": "CONDITIONAL", "triggerPrice": trigger, "quantity": "0.05"}
        )
    with pytest.raises(ccxt.InvalidOrder, match="-4120"):  # conditional: algo endpoints only
        ex.fapiPrivatePostOrder(base | {"stopPrice": trigger, "quantity": "0.05"})
    with pytest.raises(ccxt.InvalidOrder, match="-4136"):
        ex.fapiPrivatePostOrder(
            base | {"type": "LIMIT", "price": trigger, "timeInForce": "GTC", "quantity": "0.05"}
        )
    assert venue.all_orders(KEY, symbol=VENUE_SYMBOL) == []
