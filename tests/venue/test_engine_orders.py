"""The engine's order handling: every type and time in force, against the simulated book."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Fill, Regime, Venue, VenueConfig, VenueReject
from safeguard.venue._config import BookConfig
from safeguard.venue._markets import MONEY_SCALE

KEY = "alice"


def quiet(**overrides: Any) -> VenueConfig:
    """A market that does not move on its own: every price change in a test is staged."""
    fields: dict[str, Any] = {
        "symbols": ("BTCUSDT", "ETHUSDT"),
        "regimes": (Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
        "jumps_per_day": 0.0,
        "premium_mean": 0.0,
        "premium_sd": 0.0,
        "mark_window_s": 0.0,
    }
    fields.update(overrides)
    return VenueConfig(**fields)


@pytest.fixture
def venue() -> Venue:
    v = Venue(quiet(), clock=ManualClock())
    v.create_account(KEY, "secret", wallet=100_000.0)
    return v


def best(venue: Venue, symbol: str = "BTCUSDT") -> tuple[float, float, float, float]:
    t = venue.book_ticker(symbol)[0]
    return float(t["bidPrice"]), float(t["bidQty"]), float(t["askPrice"]), float(t["askQty"])


def fills_of(venue: Venue, order_id: int) -> list[Fill]:
    return [e for e in venue.events if isinstance(e, Fill) and e.order_id == order_id]


def snapshot(venue: Venue) -> Any:
    """Everything an account or the market could observe, to prove a reject changed nothing."""
    return copy.deepcopy(
        (
            venue.all_orders(KEY, symbol="BTCUSDT"),
            venue.open_orders(KEY),
            venue.position_risk(KEY),
            venue.account_v3(KEY),
            venue.depth("BTCUSDT", 1000),
            len(venue.events),
            venue.wallet_units(KEY),
        )
    )


def test_market_buy_takes_the_best_ask_and_pays_the_taker_fee(venue: Venue) -> None:
    _bid, _bq, ask, ask_qty = best(venue)
    qty = 0.01
    assert qty < ask_qty
    order = venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=qty)
    assert order["status"] == "FILLED"
    assert float(order["avgPrice"]) == ask
    assert order["executedQty"] == "0.010"
    [fill] = fills_of(venue, order["orderId"])
    spec = venue.markets["BTCUSDT"]
    assert fill.fee_units == round(ask * qty * MONEY_SCALE * spec.taker_fee)
    assert not fill.maker
    [position] = venue.position_risk(KEY)
    assert float(position["positionAmt"]) == qty
    assert float(position["entryPrice"]) == pytest.approx(ask)
    assert venue.wallet_units(KEY) == 100_000 * MONEY_SCALE - fill.fee_units


def test_a_market_order_larger_than_the_touch_walks_the_depth(venue: Venue) -> None:
    depth = venue.depth("BTCUSDT", 5)["asks"]
    first, second = [(float(p), float(q)) for p, q in depth[:2]]
    qty = round(first[1] + second[1] / 2, 3)
    order = venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=qty)
    fills = fills_of(venue, order["orderId"])
    assert [f.price for f in fills] == [first[0], second[0]]
    assert sum(f.qty for f in fills) == pytest.approx(qty)
    assert first[0] < float(order["avgPrice"]) < second[0]
    # The consumed liquidity is gone until the book refills.
    assert float(venue.depth("BTCUSDT", 5)["asks"][0][0]) == second[0]


def test_a_market_order_beyond_all_depth_fills_partly_and_expires() -> None:
    v = Venue(quiet(book=BookConfig(levels=3, thinness=0.001)), clock=ManualClock())
    v.create_account(KEY, "s", wallet=1_000_000.0)
    available = sum(float(q) for _p, q in v.depth("BTCUSDT", 5)["asks"])
    order = v.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1.0)
    assert order["status"] == "EXPIRED"
    assert float(order["executedQty"]) == pytest.approx(available)
    assert float(order["executedQty"]) < 1.0


def test_the_book_refills_after_a_sweep(venue: Venue) -> None:
    _bid, _bq, ask, ask_qty = best(venue)
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=ask_qty)
    assert best(venue)[2] > ask
    venue.advance(120)
    assert best(venue)[2] == ask
    assert best(venue)[3] == ask_qty


def test_a_resting_limit_fills_as_maker_when_the_price_trades_through(venue: Venue) -> None:
    bid, _bq, _ask, _aq = best(venue)
    price = round(bid - 100, 1)
    order = venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=price,
        time_in_force="GTC",
    )
    assert order["status"] == "NEW"
    assert [o["orderId"] for o in venue.open_orders(KEY, symbol="BTCUSDT")] == [order["orderId"]]
    venue.advance(30)
    assert venue.get_order(KEY, symbol="BTCUSDT", order_id=order["orderId"])["status"] == "NEW"
    venue.spike("BTCUSDT", -1.0, 60)
    venue.advance(10)
    done = venue.get_order(KEY, symbol="BTCUSDT", order_id=order["orderId"])
    assert done["status"] == "FILLED"
    [fill] = fills_of(venue, order["orderId"])
    assert fill.maker
    assert fill.price == price  # the maker gets its own price, not the lower market
    spec = venue.markets["BTCUSDT"]
    assert fill.fee_units == round(price * 0.01 * MONEY_SCALE * spec.maker_fee)
    assert venue.open_orders(KEY) == []


def test_a_crossing_gtc_limit_takes_what_it_can_and_rests_the_rest(venue: Venue) -> None:
    _bid, _bq, ask, ask_qty = best(venue)
    qty = round(ask_qty + 0.005, 3)
    order = venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=qty,
        price=ask,
        time_in_force="GTC",
    )
    assert order["status"] == "PARTIALLY_FILLED"
    assert float(order["executedQty"]) == ask_qty
    assert [o["orderId"] for o in venue.open_orders(KEY)] == [order["orderId"]]
    # The touch refills at the order's price: touching is not trading through, no fill.
    venue.advance(60)
    assert best(venue)[2] == ask
    still = venue.get_order(KEY, symbol="BTCUSDT", order_id=order["orderId"])
    assert still["status"] == "PARTIALLY_FILLED"
    # The market trades through the price: the remainder fills, as a maker, at its price.
    venue.spike("BTCUSDT", -0.1, 60)
    venue.advance(10)
    assert venue.get_order(KEY, symbol="BTCUSDT", order_id=order["orderId"])["status"] == "FILLED"
    fills = fills_of(venue, order["orderId"])
    assert [f.maker for f in fills] == [False, True]
    assert fills[1].price == ask


def test_ioc_fills_what_crosses_and_expires_the_rest(venue: Venue) -> None:
    _bid, _bq, ask, ask_qty = best(venue)
    qty = round(ask_qty + 0.005, 3)
    order = venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=qty,
        price=ask,
        time_in_force="IOC",
    )
    assert order["status"] == "EXPIRED"
    assert float(order["executedQty"]) == ask_qty
    assert venue.open_orders(KEY) == []


def test_fok_fills_in_full_or_is_rejected_untouched(venue: Venue) -> None:
    _bid, _bq, ask, ask_qty = best(venue)
    before = snapshot(venue)
    with pytest.raises(VenueReject) as info:
        venue.place_order(
            KEY,
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            quantity=round(ask_qty + 0.001, 3),
            price=ask,
            time_in_force="FOK",
        )
    assert info.value.code == -5021
    assert snapshot(venue) == before
    order = venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=ask_qty,
        price=ask,
        time_in_force="FOK",
    )
    assert order["status"] == "FILLED"


def test_post_only_rests_when_it_would_not_take(venue: Venue) -> None:
    bid, _bq, ask, _aq = best(venue)
    order = venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=bid,
        time_in_force="GTX",
    )
    assert order["status"] == "NEW"
    assert order["timeInForce"] == "GTX"
    before = snapshot(venue)
    with pytest.raises(VenueReject) as info:
        venue.place_order(
            KEY,
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            quantity=0.01,
            price=ask,
            time_in_force="GTX",
        )
    assert info.value.code == -5022
    assert snapshot(venue) == before


def test_reduce_only_may_only_reduce(venue: Venue) -> None:
    with pytest.raises(VenueReject) as info:
        venue.place_order(
            KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduce_only=True
        )
    assert info.value.code == -2022  # no position: it would open one
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    before = snapshot(venue)
    for side, qty in (("BUY", 0.01), ("SELL", 0.02)):  # increase, flip
        with pytest.raises(VenueReject) as info:
            venue.place_order(
                KEY, symbol="BTCUSDT", side=side, type="MARKET", quantity=qty, reduce_only=True
            )
        assert info.value.code == -2022
        assert snapshot(venue) == before
    closing = venue.place_order(
        KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduce_only=True
    )
    assert closing["status"] == "FILLED"
    assert venue.position_risk(KEY) == []


def test_reduce_only_orders_may_be_below_min_notional(venue: Venue) -> None:
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.002)
    with pytest.raises(VenueReject) as info:
        venue.place_order(KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.001)
    assert info.value.code == -4164
    order = venue.place_order(
        KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.001, reduce_only=True
    )
    assert order["status"] == "FILLED"


def test_a_client_order_id_is_unique_among_open_orders(venue: Venue) -> None:
    bid = best(venue)[0]
    args: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": 0.01,
        "price": round(bid - 50, 1),
        "time_in_force": "GTC",
        "client_order_id": "bot-1",
    }
    first = venue.place_order(KEY, **args)
    before = snapshot(venue)
    with pytest.raises(VenueReject) as info:
        venue.place_order(KEY, **args)
    assert info.value.code == -4116
    assert snapshot(venue) == before
    # Another account may use the same id; the owner may reuse it once the first is closed.
    venue.create_account("bob", "s2", wallet=10_000.0)
    venue.place_order("bob", **args)
    venue.cancel_order(KEY, symbol="BTCUSDT", client_order_id="bot-1")
    again = venue.place_order(KEY, **args)
    assert again["orderId"] != first["orderId"]
    looked_up = venue.get_order(KEY, symbol="BTCUSDT", client_order_id="bot-1")
    assert looked_up["orderId"] == again["orderId"]


def test_cancel_and_cancel_all(venue: Venue) -> None:
    bid = best(venue)[0]
    ids = [
        venue.place_order(
            KEY,
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            quantity=0.01,
            price=round(bid - 10 * (i + 1), 1),
            time_in_force="GTC",
        )["orderId"]
        for i in range(3)
    ]
    venue.place_order(
        KEY,
        symbol="ETHUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=2000.0,
        time_in_force="GTC",
    )
    cancelled = venue.cancel_order(KEY, symbol="BTCUSDT", order_id=ids[0])
    assert cancelled["status"] == "CANCELED"
    with pytest.raises(VenueReject) as info:
        venue.cancel_order(KEY, symbol="BTCUSDT", order_id=ids[0])
    assert info.value.code == -2011
    with pytest.raises(VenueReject) as info:
        venue.cancel_order(KEY, symbol="BTCUSDT", order_id=123)
    assert info.value.code == -2011
    with pytest.raises(VenueReject) as info:
        venue.get_order(KEY, symbol="BTCUSDT", order_id=123)
    assert info.value.code == -2013
    venue.cancel_all(KEY, symbol="BTCUSDT")
    assert [o["symbol"] for o in venue.open_orders(KEY)] == ["ETHUSDT"]
    statuses = {o["orderId"]: o["status"] for o in venue.all_orders(KEY, symbol="BTCUSDT")}
    assert statuses == dict.fromkeys(ids, "CANCELED")
    # Margin held by the cancelled orders is released.
    assert float(venue.account_v3(KEY)["totalOpenOrderInitialMargin"]) == pytest.approx(
        2000.0 * 0.01 / 20
    )


def test_orders_of_another_account_are_invisible(venue: Venue) -> None:
    venue.create_account("bob", "s2")
    order = venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    with pytest.raises(VenueReject) as info:
        venue.get_order("bob", symbol="BTCUSDT", order_id=order["orderId"])
    assert info.value.code == -2013
    with pytest.raises(VenueReject) as info:
        venue.get_order(KEY, symbol="ETHUSDT", order_id=order["orderId"])
    assert info.value.code == -2013


REJECTS: list[tuple[int, dict[str, Any]]] = [
    (-2015, {"api_key": "nobody"}),
    (-1121, {"symbol": "DOGEUSDT"}),
    (-1121, {"symbol": 7}),
    (-1117, {"side": "buy"}),
    (-1116, {"type": "TRAILING_STOP_MARKET"}),
    (-1102, {"type": "LIMIT", "time_in_force": "GTC"}),
    (-1102, {"type": "LIMIT", "price": 80_000.0}),
    (-1115, {"type": "LIMIT", "price": 80_000.0, "time_in_force": "GTD"}),
    (-1106, {"price": 80_000.0}),
    (-1106, {"time_in_force": "GTC"}),
    (-1106, {"stop_price": 80_000.0}),
    (-1102, {"type": "STOP_MARKET"}),
    (-1102, {"quantity": None}),
    (-4003, {"quantity": 0}),
    (-4003, {"quantity": -1.0}),
    (-1100, {"quantity": float("nan")}),
    (-1100, {"quantity": float("inf")}),
    (-1100, {"quantity": True}),
    (-1100, {"quantity": "lots"}),
    (-1111, {"quantity": 0.0101}),
    (-4005, {"quantity": 200.0}),
    (-1111, {"type": "LIMIT", "price": 80_000.123, "time_in_force": "GTC"}),
    (-4014, {"type": "LIMIT", "price": 80_000.15, "time_in_force": "GTC"}),
    (-4013, {"type": "LIMIT", "price": -5.0, "time_in_force": "GTC"}),
    (-4164, {"quantity": 0.001}),
    (-2019, {"quantity": 100.0}),
    (-4016, {"type": "LIMIT", "price": 95_000.0, "time_in_force": "GTC"}),
    (-4024, {"side": "SELL", "type": "LIMIT", "price": 85_000.0, "time_in_force": "GTC"}),
    (-1100, {"working_type": "INDEX_PRICE"}),
    (-1100, {"position_side": "UP"}),
    (-4061, {"position_side": "LONG"}),
    (-1100, {"client_order_id": "has space"}),
    (-1100, {"client_order_id": "x" * 37}),
    (-1100, {"reduce_only": "true"}),
]


@pytest.mark.parametrize(
    ("code", "change"), REJECTS, ids=[f"{c}-{i}" for i, (c, _) in enumerate(REJECTS)]
)
def test_every_reject_has_its_code_and_changes_nothing(
    venue: Venue, code: int, change: dict[str, Any]
) -> None:
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    bid = best(venue)[0]
    venue.place_order(
        KEY,
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=round(bid - 50, 1),
        time_in_force="GTC",
        client_order_id="resting",
    )
    args: dict[str, Any] = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": 0.01}
    change = dict(change)
    api_key = change.pop("api_key", KEY)
    args.update(change)
    before = snapshot(venue)
    with pytest.raises(VenueReject) as info:
        venue.place_order(api_key, **args)
    assert info.value.code == code, info.value.msg
    assert snapshot(venue) == before


def test_a_quantity_below_the_minimum_is_refused() -> None:
    from dataclasses import replace

    from safeguard.venue import DEFAULT_MARKETS

    markets = {"BTCUSDT": replace(DEFAULT_MARKETS["BTCUSDT"], min_qty=0.002)}
    v = Venue(quiet(symbols=("BTCUSDT",)), clock=ManualClock(), markets=markets)
    v.create_account(KEY, "s", wallet=100_000.0)
    with pytest.raises(VenueReject) as info:
        v.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.001)
    assert info.value.code == -4004


def test_leverage_is_capped_by_the_tier_table(venue: Venue) -> None:
    answer = venue.set_leverage(KEY, symbol="BTCUSDT", leverage=150)
    assert answer == {"leverage": 150, "maxNotionalValue": "300000", "symbol": "BTCUSDT"}
    assert venue.set_leverage(KEY, symbol="BTCUSDT", leverage=50)["maxNotionalValue"] == "12000000"
    for bad in (151, 0, -3):
        with pytest.raises(VenueReject) as info:
            venue.set_leverage(KEY, symbol="BTCUSDT", leverage=bad)
        assert info.value.code == -4028
    with pytest.raises(VenueReject) as info:
        venue.set_leverage(KEY, symbol="BTCUSDT", leverage=2.5)  # type: ignore[arg-type]
    assert info.value.code == -1100
    # At 150x only 300,000 of notional is allowed: 4 BTC (360k) is refused even with margin.
    venue.set_leverage(KEY, symbol="BTCUSDT", leverage=150)
    with pytest.raises(VenueReject) as info:
        venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=4.0)
    assert info.value.code == -2027


def test_margin_type_switches_once_and_never_under_a_position(venue: Venue) -> None:
    venue.set_margin_type(KEY, symbol="BTCUSDT", margin_type="ISOLATED")
    with pytest.raises(VenueReject) as info:
        venue.set_margin_type(KEY, symbol="BTCUSDT", margin_type="ISOLATED")
    assert info.value.code == -4046
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    [position] = venue.position_risk(KEY)
    assert position["marginType"] == "isolated"
    assert float(position["isolatedWallet"]) == pytest.approx(
        float(position["entryPrice"]) * 0.01 / 20, abs=1e-6
    )
    with pytest.raises(VenueReject) as info:
        venue.set_margin_type(KEY, symbol="BTCUSDT", margin_type="CROSSED")
    assert info.value.code == -4048


def test_hedge_mode_keeps_long_and_short_legs(venue: Venue) -> None:
    venue.set_position_mode(KEY, dual_side=True)
    venue.place_order(
        KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.02, position_side="LONG"
    )
    venue.place_order(
        KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, position_side="SHORT"
    )
    legs = {p["positionSide"]: float(p["positionAmt"]) for p in venue.position_risk(KEY)}
    assert legs == {"LONG": 0.02, "SHORT": -0.01}
    with pytest.raises(VenueReject) as info:  # closing more than the leg holds
        venue.place_order(
            KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.03, position_side="LONG"
        )
    assert info.value.code == -2022
    with pytest.raises(VenueReject) as info:
        venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert info.value.code == -4061
    with pytest.raises(VenueReject) as info:
        venue.set_position_mode(KEY, dual_side=False)
    assert info.value.code == -4068


def test_a_quantity_off_a_coarse_step_is_a_lot_size_failure() -> None:
    from dataclasses import replace

    from safeguard.venue import DEFAULT_MARKETS

    coarse = replace(DEFAULT_MARKETS["SOLUSDT"], step_size=5.0, min_qty=5.0)
    v = Venue(quiet(symbols=("SOLUSDT",)), clock=ManualClock(), markets={"SOLUSDT": coarse})
    v.create_account(KEY, "s", wallet=100_000.0)
    with pytest.raises(VenueReject) as info:
        v.place_order(KEY, symbol="SOLUSDT", side="BUY", type="MARKET", quantity=7)
    assert info.value.code == -1013
    assert (
        v.place_order(KEY, symbol="SOLUSDT", side="BUY", type="MARKET", quantity=10)["executedQty"]
        == "10"
    )


def test_closed_orders_beyond_the_history_are_forgotten_oldest_first() -> None:
    v = Venue(quiet(order_history=100), clock=ManualClock())
    v.create_account(KEY, "s", wallet=100_000.0)
    ids = [
        v.place_order(
            KEY,
            symbol="ETHUSDT",
            side="BUY" if i % 2 else "SELL",
            type="MARKET",
            quantity=0.01,
            client_order_id=f"c{i}",
        )["orderId"]
        for i in range(150)
    ]
    kept = [o["orderId"] for o in v.all_orders(KEY, symbol="ETHUSDT")]
    assert kept == ids[50:]
    assert [o["orderId"] for o in v.all_orders(KEY, symbol="ETHUSDT", limit=3)] == ids[-3:]
    with pytest.raises(VenueReject) as info:
        v.get_order(KEY, symbol="ETHUSDT", client_order_id="c0")
    assert info.value.code == -2013
    assert v.get_order(KEY, symbol="ETHUSDT", client_order_id="c50")["orderId"] == ids[50]
    assert len(v.user_trades(KEY, symbol="ETHUSDT", limit=1000)) >= 150


def test_the_default_leverage_is_capped_by_the_ladder() -> None:
    from dataclasses import replace

    from safeguard.risk._tiers import TierTable
    from safeguard.venue import DEFAULT_MARKETS

    timid = TierTable.from_rows([(0.0, 1_000_000.0, 0.02, 10.0)], currency="USDT")
    markets = {"BTCUSDT": replace(DEFAULT_MARKETS["BTCUSDT"], tiers=timid)}
    v = Venue(quiet(symbols=("BTCUSDT",)), clock=ManualClock(), markets=markets)
    v.create_account(KEY, "s", wallet=100_000.0)
    v.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    [position] = v.position_risk(KEY)
    assert position["leverage"] == "10"
    assert float(position["initialMargin"]) == pytest.approx(float(position["notional"]) / 10)


def test_hedge_mode_stops_close_their_own_leg() -> None:
    v = Venue(quiet(symbols=("BTCUSDT",)), clock=ManualClock())
    v.create_account(KEY, "s", wallet=100_000.0)
    v.set_position_mode(KEY, dual_side=True)
    v.place_order(
        KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.02, position_side="LONG"
    )
    v.place_order(
        KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, position_side="SHORT"
    )
    stop = v.place_order(
        KEY,
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        quantity=0.02,
        stop_price=88_000.0,
        position_side="LONG",
    )
    v.spike("BTCUSDT", -3.0, 60)
    v.advance(10)
    assert v.get_order(KEY, symbol="BTCUSDT", order_id=stop["orderId"])["status"] == "FILLED"
    legs = {p["positionSide"]: float(p["positionAmt"]) for p in v.position_risk(KEY)}
    assert legs == {"SHORT": -0.01}
