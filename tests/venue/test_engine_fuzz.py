"""The venue never crashes on input, leaves state alone on a reject, and always reconciles."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeguard._clock import ManualClock
from safeguard.venue import Fill, FundingPayment, Liquidation, Venue, VenueConfig, VenueReject

junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["BUY", "SELL", "MARKET", "LIMIT", "STOP_MARKET", "GTC", "GTX", "BTCUSDT"]),
    st.lists(st.integers(), max_size=2),
)
prices = st.one_of(junk, st.floats(min_value=80_000, max_value=100_000).map(lambda p: round(p, 1)))
quantities = st.one_of(junk, st.sampled_from([0.001, 0.01, 0.1, 1.0, 5.0, 0.0105]))


def fresh() -> Venue:
    venue = Venue(VenueConfig(symbols=("BTCUSDT",), seed=3), clock=ManualClock())
    venue.create_account("k", "s", wallet=20_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.05)
    return venue


def observe(venue: Venue) -> Any:
    return copy.deepcopy(
        (
            venue.all_orders("k", symbol="BTCUSDT"),
            venue.position_risk("k"),
            venue.account_v3("k"),
            venue.depth("BTCUSDT", 100),
            len(venue.events),
        )
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    symbol=st.one_of(junk, st.just("BTCUSDT")),
    side=st.one_of(junk, st.sampled_from(["BUY", "SELL"])),
    kind=st.one_of(junk, st.sampled_from(["MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET"])),
    quantity=quantities,
    price=prices,
    tif=st.one_of(junk, st.sampled_from(["GTC", "IOC", "FOK", "GTX"])),
    reduce_only=st.one_of(st.booleans(), junk),
    stop=prices,
    working=st.one_of(junk, st.sampled_from(["MARK_PRICE", "CONTRACT_PRICE"])),
    cid=st.one_of(junk, st.text(alphabet="abc-_", min_size=1, max_size=8)),
)
def test_place_order_answers_or_rejects_and_a_reject_changes_nothing(
    symbol: Any,
    side: Any,
    kind: Any,
    quantity: Any,
    price: Any,
    tif: Any,
    reduce_only: Any,
    stop: Any,
    working: Any,
    cid: Any,
) -> None:
    venue = fresh()
    before = observe(venue)
    try:
        answer = venue.place_order(
            "k",
            symbol=symbol,
            side=side,
            type=kind,
            quantity=quantity,
            price=price,
            time_in_force=tif,
            reduce_only=reduce_only,
            stop_price=stop,
            working_type=working,
            client_order_id=cid,
        )
    except VenueReject as exc:
        code = exc.code
        assert observe(venue) == before
        assert isinstance(code, int)
        assert code < 0
    else:
        assert answer["status"] in {"NEW", "PARTIALLY_FILLED", "FILLED", "EXPIRED"}
        assert venue.get_order("k", symbol="BTCUSDT", order_id=answer["orderId"]) is not None


@settings(max_examples=60, deadline=None)
@given(
    leverage=junk,
    margin=junk,
    order_id=junk,
    limit=junk,
)
def test_the_other_calls_reject_junk_without_side_effects(
    leverage: Any, margin: Any, order_id: Any, limit: Any
) -> None:
    venue = fresh()
    before = observe(venue)
    calls = [
        lambda: venue.set_leverage("k", symbol="BTCUSDT", leverage=leverage),
        lambda: venue.set_margin_type("k", symbol="BTCUSDT", margin_type=margin),
        lambda: venue.cancel_order("k", symbol="BTCUSDT", order_id=order_id),
        lambda: venue.get_order("k", symbol="BTCUSDT", client_order_id=order_id),
        lambda: venue.depth("BTCUSDT", limit),
        lambda: venue.agg_trades(limit, 10),
        lambda: venue.user_trades("k", symbol="BTCUSDT", limit=limit),
        lambda: venue.position_risk(margin),
    ]
    for call in calls:
        try:
            call()
        except VenueReject:
            assert observe(venue) == before
        else:
            before = observe(venue)


@settings(max_examples=20, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["BUY", "SELL"]),
            st.sampled_from([0.001, 0.01, 0.05, 0.2]),
            st.sampled_from(["MARKET", "LIMIT", "IOC", "STOP"]),
            st.floats(min_value=-0.004, max_value=0.004),
            st.floats(min_value=0, max_value=1800),
        ),
        min_size=1,
        max_size=25,
    ),
    leverage=st.sampled_from([5, 20, 75]),
)
def test_wallets_reconcile_to_the_unit_after_any_session(
    steps: list[tuple[str, float, str, float, float]], leverage: int
) -> None:
    venue = Venue(VenueConfig(symbols=("BTCUSDT",), seed=8), clock=ManualClock())
    keys = ("k", "j")  # two accounts, alternating: their resting orders meet each other
    for key in keys:
        venue.create_account(key, "s", wallet=3_000.0)
        venue.set_leverage(key, symbol="BTCUSDT", leverage=leverage)
    for i, (side, qty, kind, offset, wait) in enumerate(steps):
        key = keys[i % 2]
        mark = venue.mark_price("BTCUSDT")
        price = round(mark * (1 + offset), 1)
        try:
            if kind == "MARKET":
                venue.place_order(key, symbol="BTCUSDT", side=side, type="MARKET", quantity=qty)
            elif kind == "STOP":
                venue.place_order(
                    key,
                    symbol="BTCUSDT",
                    side=side,
                    type="STOP_MARKET",
                    quantity=qty,
                    stop_price=round(mark * (1 + abs(offset) * (1 if side == "BUY" else -1)), 1)
                    or 1.0,
                    working_type="MARK_PRICE",
                )
            else:
                venue.place_order(
                    key,
                    symbol="BTCUSDT",
                    side=side,
                    type="LIMIT",
                    quantity=qty,
                    price=price,
                    time_in_force="IOC" if kind == "IOC" else "GTC",
                )
        except VenueReject:
            pass
        venue.advance(wait)
    for key in keys:
        flows = sum(
            e.wallet_delta_units
            for e in venue.events
            if isinstance(e, Fill | FundingPayment | Liquidation) and e.api_key == key
        )
        assert venue.wallet_units(key) == venue.deposit_units(key) + flows
        assert venue.wallet_units(key) >= 0


@settings(max_examples=15, deadline=None)
@given(
    leverage=st.sampled_from([10, 25, 50, 100, 125]),
    qty=st.sampled_from([0.05, 0.2, 1.0]),
    isolated=st.booleans(),
    moves=st.lists(st.floats(min_value=-4.0, max_value=4.0), min_size=1, max_size=6),
)
def test_no_open_position_is_left_under_maintenance_after_a_step(
    leverage: int, qty: float, isolated: bool, moves: list[float]
) -> None:
    venue = Venue(VenueConfig(symbols=("BTCUSDT",), seed=13), clock=ManualClock())
    venue.create_account("k", "s", wallet=qty * 90_000 / leverage * 1.5)
    if isolated:
        venue.set_margin_type("k", symbol="BTCUSDT", margin_type="ISOLATED")
    venue.set_leverage("k", symbol="BTCUSDT", leverage=leverage)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=qty)
    for pct in moves:
        if pct:
            venue.spike("BTCUSDT", pct, 30)
        venue.advance(20)
        account = venue.account_v3("k")
        for position in venue.position_risk("k"):
            pnl = float(position["unRealizedProfit"])
            collateral = (
                float(position["isolatedWallet"])
                if isolated
                else float(account["totalCrossWalletBalance"])
            )
            assert collateral + pnl > float(position["maintMargin"])
    for event in venue.liquidations():
        assert event.equity_before <= event.maintenance_margin
