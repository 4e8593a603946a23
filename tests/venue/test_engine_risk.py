"""Stops by mark or last, funding between longs and shorts, liquidation into the insurance fund."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard.venue import (
    Fill,
    FundingPayment,
    Liquidation,
    OrderTriggered,
    Regime,
    Venue,
    VenueConfig,
    VenueReject,
)
from safeguard.venue._funding import funding_rate
from safeguard.venue._markets import MONEY_SCALE


def quiet(**overrides: Any) -> VenueConfig:
    fields: dict[str, Any] = {
        "symbols": ("BTCUSDT",),
        "regimes": (Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
        "jumps_per_day": 0.0,
        "premium_mean": 0.0,
        "premium_sd": 0.0,
        "mark_window_s": 0.0,
    }
    fields.update(overrides)
    return VenueConfig(**fields)


def reconciles(venue: Venue, api_key: str) -> bool:
    """The wallet is the deposit plus every recorded cash flow, to the 1e-8 unit."""
    flows = sum(
        e.wallet_delta_units
        for e in venue.events
        if isinstance(e, Fill | FundingPayment | Liquidation) and e.api_key == api_key
    )
    return venue.wallet_units(api_key) == venue.deposit_units(api_key) + flows


def test_a_wick_triggers_a_last_price_stop_but_not_a_mark_price_stop() -> None:
    venue = Venue(quiet(mark_window_s=3600.0), clock=ManualClock())
    ids = {}
    for key, working in (("last", "CONTRACT_PRICE"), ("mark", "MARK_PRICE")):
        venue.create_account(key, "s", wallet=10_000.0)
        venue.place_order(key, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
        ids[key] = venue.place_order(
            key,
            symbol="BTCUSDT",
            side="SELL",
            type="STOP_MARKET",
            quantity=0.01,
            stop_price=88_000.0,
            reduce_only=True,
            working_type=working,
        )["orderId"]
    venue.spike("BTCUSDT", -4.0, 30)  # a 30 s wick through 88,000 on this venue only
    venue.advance(60)
    last = venue.get_order("last", symbol="BTCUSDT", order_id=ids["last"])
    mark = venue.get_order("mark", symbol="BTCUSDT", order_id=ids["mark"])
    assert last["status"] == "FILLED"
    assert float(last["avgPrice"]) < 88_000.0
    assert mark["status"] == "NEW"
    assert venue.position_risk("last") == []
    assert float(venue.position_risk("mark")[0]["positionAmt"]) == 0.01
    [triggered] = [e for e in venue.events if isinstance(e, OrderTriggered)]
    assert triggered.order_id == ids["last"]
    assert triggered.trigger_price <= 88_000.0


def test_a_mark_price_stop_fires_once_the_mark_gets_there() -> None:
    venue = Venue(quiet(mark_window_s=60.0), clock=ManualClock())
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    order = venue.place_order(
        "k",
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        quantity=0.01,
        stop_price=88_000.0,
        reduce_only=True,
        working_type="MARK_PRICE",
    )
    venue.spike("BTCUSDT", -4.0, 3600)
    venue.advance(10)
    assert venue.get_order("k", symbol="BTCUSDT", order_id=order["orderId"])["status"] == "NEW"
    venue.advance(600)
    assert venue.get_order("k", symbol="BTCUSDT", order_id=order["orderId"])["status"] == "FILLED"
    [triggered] = [e for e in venue.events if isinstance(e, OrderTriggered)]
    assert triggered.trigger_price <= 88_000.0
    assert triggered.working_type == "MARK_PRICE"


def test_take_profit_fires_on_the_way_up_and_stops_refuse_to_trigger_at_once() -> None:
    venue = Venue(quiet(), clock=ManualClock())
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    with pytest.raises(VenueReject) as info:
        venue.place_order(
            "k",
            symbol="BTCUSDT",
            side="SELL",
            type="STOP_MARKET",
            quantity=0.01,
            stop_price=95_000.0,
            reduce_only=True,
        )
    assert info.value.code == -2021  # a sell stop above the market would fire immediately
    tp = venue.place_order(
        "k",
        symbol="BTCUSDT",
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        quantity=0.01,
        stop_price=92_000.0,
        reduce_only=True,
    )
    venue.advance(30)
    assert venue.get_order("k", symbol="BTCUSDT", order_id=tp["orderId"])["status"] == "NEW"
    venue.spike("BTCUSDT", 3.0, 60)
    venue.advance(10)
    done = venue.get_order("k", symbol="BTCUSDT", order_id=tp["orderId"])
    assert done["status"] == "FILLED"
    assert float(done["avgPrice"]) >= 92_000.0
    [fill] = [e for e in venue.events if isinstance(e, Fill) and e.order_id == tp["orderId"]]
    assert fill.realized_pnl > 0


def test_a_reduce_only_stop_with_nothing_left_to_reduce_expires() -> None:
    venue = Venue(quiet(), clock=ManualClock())
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    stop = venue.place_order(
        "k",
        symbol="BTCUSDT",
        side="SELL",
        type="STOP_MARKET",
        quantity=0.01,
        stop_price=88_000.0,
        reduce_only=True,
    )
    venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    venue.spike("BTCUSDT", -5.0, 60)
    venue.advance(10)
    assert venue.get_order("k", symbol="BTCUSDT", order_id=stop["orderId"])["status"] == "EXPIRED"
    assert venue.position_risk("k") == []


def test_funding_moves_from_longs_to_shorts_at_the_mark() -> None:
    # A steady 0.1 % premium: the rate is 0.1 % + clamp(0.01 % - 0.1 %, +-0.05 %) = 0.05 %.
    venue = Venue(quiet(premium_mean=0.001, funding_interval_s=3600.0), clock=ManualClock())
    venue.create_account("long", "s", wallet=10_000.0)
    venue.create_account("short", "s", wallet=10_000.0)
    venue.place_order("long", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.05)
    venue.place_order("short", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.05)
    before = {k: venue.wallet_units(k) for k in ("long", "short")}
    venue.advance(3 * 3600)
    payments = [e for e in venue.events if isinstance(e, FundingPayment)]
    assert len(payments) == 6  # three intervals, two accounts
    expected_rate = funding_rate(0.001, cap=0.003)
    assert expected_rate == pytest.approx(0.0005)
    for payment in payments:
        assert payment.time % 3600 == 0
        assert payment.rate == pytest.approx(expected_rate)
        owed = round(expected_rate * 0.05 * payment.mark_price * MONEY_SCALE)
        assert payment.amount_units == (-owed if payment.api_key == "long" else owed)
    paid = sum(p.amount_units for p in payments if p.api_key == "long")
    received = sum(p.amount_units for p in payments if p.api_key == "short")
    assert paid < 0 < received
    assert venue.wallet_units("long") == before["long"] + paid
    assert venue.wallet_units("short") == before["short"] + received
    assert reconciles(venue, "long")
    assert reconciles(venue, "short")
    next_time = venue.premium_index("BTCUSDT")["nextFundingTime"]  # type: ignore[call-overload]
    assert next_time == (int(venue.clock.time() // 3600) + 1) * 3600 * 1000


def test_funding_is_capped() -> None:
    venue = Venue(
        quiet(premium_mean=0.008, funding_cap=0.002, funding_interval_s=3600.0),
        clock=ManualClock(),
    )
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    venue.advance(3600)
    [payment] = [e for e in venue.events if isinstance(e, FundingPayment)]
    assert payment.rate == pytest.approx(0.002)
    assert payment.amount_units > 0


def test_a_crash_liquidates_a_high_leverage_isolated_long_into_the_insurance_fund() -> None:
    venue = Venue(quiet(), clock=ManualClock())
    venue.create_account("k", "s", wallet=2_000.0)
    venue.set_margin_type("k", symbol="BTCUSDT", margin_type="ISOLATED")
    venue.set_leverage("k", symbol="BTCUSDT", leverage=100)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1.0)
    [position] = venue.position_risk("k")
    liq_price = float(position["liquidationPrice"])
    entry = float(position["entryPrice"])
    # Isolated wallet ~ entry/100; MMR 0.4 %: liquidation ~0.6 % under entry.
    assert entry * 0.99 < liq_price < entry * 0.995
    fund_before = venue.insurance_fund
    venue.advance(60)
    assert venue.liquidations() == []
    venue.spike("BTCUSDT", -0.8, 600)
    venue.advance(10)
    [event] = venue.liquidations()
    assert event.margin_type == "ISOLATED"
    assert event.qty == 1.0
    assert event.mark_price <= liq_price
    assert event.equity_before <= event.maintenance_margin
    notional = event.mark_price * 1.0
    assert event.fee_units <= round(notional * 0.005 * MONEY_SCALE) + 1
    assert event.fee_units > 0
    # The fund moved by exactly the event's delta: fee, less any shortfall, plus the close.
    assert venue.insurance_fund == pytest.approx(
        fund_before + event.insurance_delta_units / MONEY_SCALE
    )
    assert event.insurance_fund_after == venue.insurance_fund
    assert event.close_qty == 1.0
    assert venue.position_risk("k") == []
    # The trader lost at most the isolated margin plus the fee, never the rest of the wallet.
    assert venue.wallet("k") > 2_000.0 - entry / 100 - notional * 0.005 - 1.0
    assert reconciles(venue, "k")


def test_a_cross_account_is_liquidated_whole_and_the_fund_covers_a_gap() -> None:
    venue = Venue(quiet(), clock=ManualClock())
    venue.create_account("k", "s", wallet=1_000.0)
    venue.set_leverage("k", symbol="BTCUSDT", leverage=100)
    venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=1.0)
    fund_before = venue.insurance_fund
    venue.spike("BTCUSDT", 5.0, 600)  # gaps straight through the bankruptcy price
    venue.advance(10)
    [event] = venue.liquidations()
    assert event.margin_type == "CROSSED"
    assert event.qty == -1.0
    assert event.shortfall_units > 0
    assert event.fee_units == 0
    assert venue.wallet_units("k") == 0
    assert venue.insurance_fund < fund_before
    assert reconciles(venue, "k")


def test_liquidation_cancels_the_accounts_open_orders() -> None:
    venue = Venue(quiet(), clock=ManualClock())
    venue.create_account("k", "s", wallet=1_500.0)
    venue.set_leverage("k", symbol="BTCUSDT", leverage=100)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1.0)
    resting = venue.place_order(
        "k",
        symbol="BTCUSDT",
        side="SELL",
        type="LIMIT",
        quantity=0.5,
        price=95_000.0,
        time_in_force="GTC",
        reduce_only=True,
    )
    venue.spike("BTCUSDT", -3.0, 600)
    venue.advance(10)
    assert len(venue.liquidations()) == 1
    order = venue.get_order("k", symbol="BTCUSDT", order_id=resting["orderId"])
    assert order["status"] == "CANCELED"
    assert venue.open_orders("k") == []


def test_funding_is_stamped_at_the_funding_time_off_the_step_grid() -> None:
    venue = Venue(
        quiet(premium_mean=0.001, funding_interval_s=3600.0, step_s=7.0), clock=ManualClock()
    )
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    venue.advance(2 * 3600)
    payments = [e for e in venue.events if isinstance(e, FundingPayment)]
    assert len(payments) == 2
    assert all(p.time % 3600 == 0 for p in payments)
    assert all(p.amount_units < 0 for p in payments)


# --- account reports: income, force orders, break-even, isolated margin ----------------


def _income_units(venue: Venue, api_key: str) -> int:
    rows = venue.income(api_key, start_ms=0, limit=1000)
    return sum(round(float(r["income"]) * 10**8) for r in rows)


@pytest.fixture
def exchange(venue: Venue) -> Any:
    ex = ccxt.binanceusdm()
    ex.set_markets([ex.parse_market(s) for s in venue.exchange_info()["symbols"]])
    return ex


@pytest.fixture
def venue() -> Venue:
    return Venue(quiet(), clock=ManualClock())


def test_a_liquidation_with_a_gap_still_reconciles_income_to_the_wallet(
    venue: Venue, exchange: Any
) -> None:
    venue.create_account("k", "s", wallet=1_000.0)
    venue.set_leverage("k", symbol="BTCUSDT", leverage=100)
    venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=1.0)
    venue.spike("BTCUSDT", 5.0, 600)  # gaps through the bankruptcy price: the fund pays
    venue.advance(10)
    [event] = venue.liquidations()
    assert event.shortfall_units > 0
    kinds = {r["incomeType"] for r in venue.income("k", start_ms=0)}
    assert kinds == {"TRANSFER", "COMMISSION", "REALIZED_PNL", "INSURANCE_CLEAR"}
    assert _income_units(venue, "k") == venue.wallet_units("k") == 0
    [order] = exchange.parse_liquidations(venue.force_orders("k"), exchange.market("BTC/USDT:USDT"))
    assert order["contracts"] == 1.0
    assert order["price"] == pytest.approx(event.close_avg_price)
    assert order["side"] == "buy"


def test_income_reconciles_over_funding_and_partial_closes(venue: Venue) -> None:
    venue.create_account("k", "s", wallet=5_000.0)
    venue.create_account("maker", "s2", wallet=5_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.3)
    for _ in range(3):
        venue.advance(8 * 3600)
        venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.1)
    rows = venue.income("k", start_ms=0, limit=1000)
    assert {r["incomeType"] for r in rows} >= {"FUNDING_FEE", "REALIZED_PNL", "COMMISSION"}
    assert _income_units(venue, "k") == venue.wallet_units("k")
    assert [r["tranId"] for r in rows] == sorted({r["tranId"] for r in rows})
    funding = venue.income("k", income_type="FUNDING_FEE", start_ms=0)
    assert len(funding) == 3
    # No window: the last seven days only (the deposit a day ago is still in it).
    assert venue.income("k") == rows


def test_break_even_price_covers_the_fees(venue: Venue) -> None:
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    [row] = venue.position_risk("k")
    entry, even = float(row["entryPrice"]), float(row["breakEvenPrice"])
    fee = venue.markets["BTCUSDT"].taker_fee
    assert even > entry
    # Closing 0.1 at break-even with a taker fee gets back the entry and the opening fee.
    assert even * 0.1 * (1 - fee) == pytest.approx(entry * 0.1 * (1 + fee))


def test_isolated_margin_is_only_for_an_open_isolated_leg(venue: Venue) -> None:
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    with pytest.raises(VenueReject) as cross:
        venue.modify_isolated_margin(
            "k", symbol="BTCUSDT", position_side="BOTH", amount=10.0, add=True
        )
    assert cross.value.code == -4051
    with pytest.raises(VenueReject) as side:
        venue.modify_isolated_margin(
            "k", symbol="BTCUSDT", position_side="LONG", amount=10.0, add=True
        )
    assert side.value.code == -4061


def test_a_multi_day_advance_of_simulated_time_pays_every_funding() -> None:
    venue = Venue(quiet(), clock=ManualClock(1_700_000_000.0))
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    venue.advance(3 * 86_400)  # one step of three days: nine 8-hour funding times
    payments = [e for e in venue.events if isinstance(e, FundingPayment)]
    assert len(payments) == 9
    assert [p.time % (8 * 3600) for p in payments] == [0.0] * 9
    assert reconciles(venue, "k")
