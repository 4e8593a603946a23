"""Accounts' resting orders meet other accounts' takers, with price-time priority and STP."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Fill, Regime, Venue, VenueConfig, VenueReject
from safeguard.venue._config import BookConfig
from safeguard.venue._markets import MONEY_SCALE


@pytest.fixture
def venue() -> Venue:
    """A still market with a 5-tick spread, so accounts can quote inside it."""
    v = Venue(
        VenueConfig(
            symbols=("BTCUSDT",),
            regimes=(Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
            jumps_per_day=0.0,
            premium_mean=0.0,
            premium_sd=0.0,
            book=BookConfig(spread_ticks=5),
        ),
        clock=ManualClock(),
    )
    for key in ("alice", "bob"):
        v.create_account(key, "s", wallet=100_000.0)
    return v


def touch(venue: Venue) -> tuple[float, float]:
    t = venue.book_ticker("BTCUSDT")[0]
    return float(t["bidPrice"]), float(t["askPrice"])


def limit(venue: Venue, key: str, side: str, qty: float, price: float, **extra: Any) -> Any:
    return venue.place_order(
        key,
        symbol="BTCUSDT",
        side=side,
        type="LIMIT",
        quantity=qty,
        price=round(price, 1),
        time_in_force=extra.pop("time_in_force", "GTC"),
        **extra,
    )


def fills(venue: Venue, key: str) -> list[Fill]:
    return [e for e in venue.events if isinstance(e, Fill) and e.api_key == key]


def test_a_quote_inside_the_spread_is_published_and_taken_first(venue: Venue) -> None:
    bid, ask = touch(venue)
    inside = bid + 0.2
    order = limit(venue, "alice", "SELL", 0.05, inside)
    assert order["status"] == "NEW"
    assert touch(venue) == (bid, pytest.approx(inside))
    assert float(venue.depth("BTCUSDT", 5)["asks"][0][1]) == 0.05
    taken = venue.place_order("bob", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.08)
    assert taken["status"] == "FILLED"
    [maker_fill] = fills(venue, "alice")
    assert maker_fill.maker
    assert maker_fill.price == pytest.approx(inside)
    assert maker_fill.fee_units == round(inside * 0.05 * MONEY_SCALE * 0.0002)
    bob = fills(venue, "bob")
    assert [f.price for f in bob] == [pytest.approx(inside), ask]
    assert [f.qty for f in bob] == [0.05, 0.03]
    assert not any(f.maker for f in bob)
    assert venue.get_order("alice", symbol="BTCUSDT", order_id=order["orderId"])["status"] == (
        "FILLED"
    )
    # One public trade per match, not one per side.
    assert len(venue.agg_trades("BTCUSDT", 10)) == 2
    positions = {k: float(venue.position_risk(k)[0]["positionAmt"]) for k in ("alice", "bob")}
    assert positions == {"alice": -0.05, "bob": 0.08}


def test_at_an_equal_price_the_resting_account_order_goes_first(venue: Venue) -> None:
    bid, _ask = touch(venue)
    limit(venue, "alice", "BUY", 0.02, bid)
    venue.place_order("bob", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    [maker_fill] = fills(venue, "alice")
    assert maker_fill.qty == 0.01
    assert maker_fill.price == bid


def test_an_account_never_trades_with_itself(venue: Venue) -> None:
    bid, _ask = touch(venue)
    resting = limit(venue, "alice", "BUY", 0.02, bid + 0.1)
    taker = venue.place_order("alice", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    assert taker["status"] == "EXPIRED"  # self-trade prevention: EXPIRE_TAKER
    assert float(taker["executedQty"]) == 0.0
    assert (
        venue.get_order("alice", symbol="BTCUSDT", order_id=resting["orderId"])["status"] == "NEW"
    )
    assert fills(venue, "alice") == []


def test_post_only_and_fok_see_other_accounts_orders(venue: Venue) -> None:
    bid, _ask = touch(venue)
    limit(venue, "alice", "SELL", 0.05, bid + 0.2)
    with pytest.raises(VenueReject) as info:
        limit(venue, "bob", "BUY", 0.01, bid + 0.3, time_in_force="GTX")
    assert info.value.code == -5022
    assert limit(venue, "bob", "BUY", 0.01, bid + 0.1, time_in_force="GTX")["status"] == "NEW"
    with pytest.raises(VenueReject) as info:
        limit(venue, "bob", "BUY", 0.06, bid + 0.2, time_in_force="FOK")
    assert info.value.code == -5021
    done = limit(venue, "bob", "BUY", 0.05, bid + 0.2, time_in_force="FOK")
    assert done["status"] == "FILLED"


def test_a_reduce_only_maker_with_nothing_to_reduce_is_passed_over(venue: Venue) -> None:
    bid, ask = touch(venue)
    venue.place_order("alice", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    limit(venue, "alice", "SELL", 0.01, bid + 0.2, reduce_only=True)
    venue.place_order(
        "alice", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01, reduce_only=True
    )
    venue.place_order("bob", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    [bob_fill] = fills(venue, "bob")
    assert bob_fill.price == ask
    assert venue.position_risk("alice") == []


def test_a_triggered_stop_meets_other_accounts_orders_too() -> None:
    v = Venue(
        VenueConfig(
            symbols=("BTCUSDT",),
            regimes=(Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
            jumps_per_day=0.0,
            premium_mean=0.0,
            premium_sd=0.0,
            book=BookConfig(levels=2, thinness=0.0001, half_life_s=1e9),
        ),
        clock=ManualClock(),
    )
    for key in ("alice", "bob"):
        v.create_account(key, "s", wallet=100_000.0)
    # The market makers show next to nothing; Alice buys her position from Bob's quote.
    limit(v, "bob", "SELL", 0.05, touch(v)[1])
    v.place_order("alice", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.05)
    assert float(v.position_risk("alice")[0]["positionAmt"]) == 0.05
    stop = v.place_order(
        "alice",
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        quantity=0.05,
        stop_price=88_000.0,
        reduce_only=True,
    )
    limit(v, "bob", "BUY", 0.05, 86_000.0)
    v.spike("BTCUSDT", -3.0, 60)
    v.advance(10)
    done = v.get_order("alice", symbol="BTCUSDT", order_id=stop["orderId"])
    assert done["status"] == "FILLED"
    bob_fill = fills(v, "bob")[-1]
    assert bob_fill.maker
    assert bob_fill.side == "BUY"
    assert bob_fill.price == 86_000.0
    assert v.position_risk("alice") == []
    assert float(v.position_risk("bob")[0]["positionAmt"]) == pytest.approx(-0.05 + bob_fill.qty)


def test_both_sides_of_a_match_between_accounts_carry_its_one_trade_id() -> None:
    # The maker's side of a match between two accounts used to carry the tape's previous trade
    # id: one account could hold two fills under one id (its own earlier taker fill's), and
    # ccxt's trade caches, keyed by id, dropped one of them.
    venue = Venue(VenueConfig(symbols=("BTCUSDT",)), clock=ManualClock(1_700_000_000.0))
    for key in ("me", "other"):
        venue.create_account(key, "secret", wallet=100_000.0)
    venue.place_order("me", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    ask = float(venue.book_ticker("BTCUSDT")[0]["askPrice"])
    venue.place_order(
        "me", symbol="BTCUSDT", side="SELL", type="LIMIT", quantity=0.01, price=ask,
        time_in_force="GTX",
    )  # fmt: skip
    venue.place_order("other", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=3.0)
    mine = venue.user_trades("me", symbol="BTCUSDT")
    theirs = venue.user_trades("other", symbol="BTCUSDT")
    assert [t["maker"] for t in mine] == [False, True]
    assert len({t["id"] for t in mine}) == 2
    [maker_fill] = [t for t in mine if t["maker"]]
    matched = [t for t in theirs if t["price"] == maker_fill["price"] and t["qty"] == "0.010"]
    assert [t["id"] for t in matched] == [maker_fill["id"]]
    tape = {t["id"] for t in venue.trades("BTCUSDT", limit=1000)}
    assert {t["id"] for t in mine + theirs} <= tape
    assert len({t["id"] for t in theirs}) == len(theirs)
