"""The ladder keeps the orders that protect a position and takes the ones that add to it.

A position's stop is a ``closePosition`` STOP_MARKET (how the guard places it) or a reduce-only
order; since Binance's algo-order migration both live on the conditional-order routes, beside
stop *entries* that would open exposure when they trigger. Engaging the switch must not leave a
position naked, and must not leave an entry armed.
"""

from __future__ import annotations

from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard._config import KillSwitchConfig
from safeguard.killswitch._ladder import (
    CancelOrder,
    CancelSymbol,
    OpenOrder,
    Position,
    open_orders_from_ccxt,
    plan_cancels,
    plan_cleanup,
    run_ladder,
)
from safeguard.killswitch._switch import TradingState
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._inprocess import inprocess_client

HALTED, REDUCING = TradingState.HALTED, TradingState.REDUCING
ETH = "ETH/USDT:USDT"
TRIGGER = {"trigger": True}


def long_eth_with_a_stop_and_entries() -> tuple[Venue, Any, dict[str, str]]:
    """A long ETH position, its closePosition stop, a reduce-only take-profit limit, a stop
    entry (conditional, adds exposure) and a resting limit buy (adds exposure)."""
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=ManualClock(1.7e9))
    venue.create_account("key", "secret", wallet=50_000.0)
    exchange = inprocess_client(venue, "key", "secret")
    exchange.load_markets()
    exchange.create_order(ETH, "market", "buy", 1.0)
    last = exchange.fetch_ticker(ETH)["last"]
    stop_params = {"stopLossPrice": round(last * 0.9, 2), "closePosition": True}
    ids = {
        "stop": exchange.create_order(ETH, "market", "sell", None, None, stop_params)["id"],
        "take_profit": exchange.create_order(
            ETH, "limit", "sell", 1.0, round(last * 1.2, 2), {"reduceOnly": True}
        )["id"],
        "stop_entry": exchange.create_order(
            ETH, "market", "buy", 1.0, None, {"triggerPrice": round(last * 1.05, 2)}
        )["id"],
        "limit_entry": exchange.create_order(ETH, "limit", "buy", 1.0, round(last * 0.8, 2))["id"],
    }
    return venue, exchange, ids


def open_ids(exchange: Any) -> set[str]:
    regular = exchange.fetch_open_orders(ETH)
    conditional = exchange.fetch_open_orders(ETH, None, None, TRIGGER)
    return {o["id"] for o in regular} | {o["id"] for o in conditional}


def holds_eth(exchange: Any) -> bool:
    return any(p["contracts"] for p in exchange.fetch_positions([ETH]))


@pytest.mark.parametrize("state", [REDUCING, HALTED])
def test_an_engaged_ladder_keeps_the_positions_stop_and_cancels_what_would_add_exposure(
    state: TradingState,
) -> None:
    venue, exchange, ids = long_eth_with_a_stop_and_entries()

    report = run_ladder(exchange, KillSwitchConfig(), state, sleep=venue.advance)

    assert report.ok, report.outcomes
    assert open_ids(exchange) == {ids["stop"], ids["take_profit"]}
    assert holds_eth(exchange)


def test_a_halted_ladder_that_flattens_cancels_the_stops_once_the_position_is_closed() -> None:
    venue, exchange, _ = long_eth_with_a_stop_and_entries()
    config = KillSwitchConfig(flatten_on_engage=True)

    report = run_ladder(exchange, config, HALTED, sleep=venue.advance)

    assert report.ok, report.outcomes
    assert not holds_eth(exchange)
    assert open_ids(exchange) == set()
    rungs = [o.rung for o in report.outcomes]
    assert rungs == ["cancel", "cancel", "flatten", "cleanup", "cleanup"]


def test_close_position_orders_read_as_protective() -> None:
    raw = [
        {"id": "1", "symbol": ETH, "reduceOnly": False, "info": {"closePosition": True}},
        {"id": "2", "symbol": ETH, "reduceOnly": False, "info": {"closePosition": "true"}},
        {"id": "3", "symbol": ETH, "reduceOnly": False, "info": {"closePosition": False}},
        {"id": "4", "symbol": ETH, "reduceOnly": True},
    ]
    orders = open_orders_from_ccxt(raw, conditional=True)
    assert [(o.id, o.reduce_only, o.conditional) for o in orders] == [
        ("1", True, True),
        ("2", True, True),
        ("3", False, True),
        ("4", True, True),
    ]


def test_halted_cancels_a_symbol_at_once_only_when_nothing_of_it_protects_a_position() -> None:
    btc = "BTC/USDT:USDT"
    orders = [
        OpenOrder("1", ETH, reduce_only=False),
        OpenOrder("2", ETH, reduce_only=True, conditional=True),
        OpenOrder("3", ETH, reduce_only=False, conditional=True),
        OpenOrder("4", btc, reduce_only=False),
        OpenOrder("5", btc, reduce_only=False, conditional=True),
    ]
    assert plan_cancels(HALTED, orders) == [
        CancelSymbol(btc),
        CancelSymbol(btc, conditional=True),
        CancelOrder(ETH, "1"),
        CancelOrder(ETH, "3", conditional=True),
    ]
    assert plan_cancels(REDUCING, orders) == [
        CancelOrder(btc, "4"),
        CancelOrder(btc, "5", conditional=True),
        CancelOrder(ETH, "1"),
        CancelOrder(ETH, "3", conditional=True),
    ]
    assert plan_cancels(TradingState.ACTIVE, orders) == []


def test_cleanup_keeps_the_stops_of_a_position_the_flatten_could_not_close() -> None:
    orders = [
        OpenOrder("1", ETH, reduce_only=True, conditional=True),
        OpenOrder("2", "BTC/USDT:USDT", reduce_only=True, conditional=True),
        OpenOrder("3", "BTC/USDT:USDT", reduce_only=False),
    ]
    still_open = [Position(ETH, "long", 1.0)]
    assert plan_cleanup(orders, still_open) == [CancelOrder("BTC/USDT:USDT", "2", conditional=True)]


class AlgoVenue:
    """Binance USD-M as it is since 2025-12-09: conditional orders are listed and cancelled only
    with ``{"trigger": True}``; the ordinary routes neither show nor cancel them."""

    id = "binanceusdm"

    def __init__(self) -> None:
        self.has: dict[str, Any] = {}
        self.options: dict[str, Any] = {"fetchOpenOrders": {"warnWithoutSymbol": True}}
        self.regular = [{"id": "10", "symbol": ETH, "reduceOnly": False}]
        self.conditional = [
            {"id": "20", "symbol": ETH, "reduceOnly": False, "info": {"closePosition": True}},
            {"id": "21", "symbol": ETH, "reduceOnly": False, "info": {"closePosition": False}},
        ]

    def _book(self, params: dict[str, Any] | None) -> list[dict[str, Any]]:
        return self.conditional if params == TRIGGER else self.regular

    def fetch_open_orders(
        self, symbol: Any = None, since: Any = None, limit: Any = None, params: Any = None
    ) -> list[dict[str, Any]]:
        return [dict(o) for o in self._book(params)]

    def cancel_all_orders(self, symbol: str, params: Any = None) -> None:
        self._book(params).clear()

    def cancel_order(self, order_id: str, symbol: str, params: Any = None) -> None:
        book = self._book(params)
        book[:] = [o for o in book if o["id"] != order_id]


def test_stop_entries_on_the_conditional_routes_are_found_and_cancelled_there() -> None:
    venue = AlgoVenue()

    report = run_ladder(venue, KillSwitchConfig(), HALTED, sleep=lambda s: None)

    assert report.ok, report.outcomes
    assert venue.regular == []
    assert [o["id"] for o in venue.conditional] == ["20"]  # the stop stays
