"""Each automatic trigger fires on a scripted scenario and stays quiet just under its limit."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard._codes import Code
from safeguard._config import Policy, RiskLimits, TriggerConfig
from safeguard.killswitch._equity import EquityMarks
from safeguard.killswitch._triggers import (
    AccountUnjudged,
    AccountUpdate,
    EquityUpdate,
    LeverageChanged,
    MarkUpdate,
    OrderCanceled,
    OrderRejected,
    OrderSubmitted,
    RiskMonitor,
    Tick,
    Transfer,
    Trip,
    VenueBan,
    VenueError,
    VenueOk,
    daily_loss_trip,
    drawdown_trip,
    liquidation_distance_trip,
    positions_beyond_limits,
    rate_trip,
    stale_data_trip,
)
from safeguard.risk._liquidation import LiquidationOptions, PositionLeg, get_model
from safeguard.risk._models import Account
from safeguard.risk._tiers import BINANCE_BTCUSDT_TIERS, BINANCE_ETHUSDT_TIERS

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC).timestamp()
BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
QUIET = TriggerConfig(
    max_orders_per_window=None,
    max_cancels_per_window=None,
    max_rejections_per_window=None,
    max_leverage_changes_per_window=None,
    max_consecutive_errors=None,
    max_data_age_s=None,
    on_liquidation_distance=False,
)


def quiet(**changes: object) -> TriggerConfig:
    """Every trigger off except the ones a test switches on."""
    return QUIET.model_copy(update=changes)


def btc_long(mark: float, *, quantity: float = 1.0, entry: float = 60_000.0) -> PositionLeg:
    return PositionLeg(BTC, 1, quantity, entry, mark, BINANCE_BTCUSDT_TIERS)


def codes(trips: tuple[Trip, ...]) -> list[Code]:
    return [trip.code for trip in trips]


# --- loss and drawdown ------------------------------------------------------------------


def test_a_price_crash_through_mark_updates_trips_drawdown_then_daily_loss_once_each() -> None:
    monitor = RiskMonitor(
        quiet(max_drawdown_pct=10.0, max_daily_loss=1_500.0),
        limits=RiskLimits(max_effective_leverage=None),
    )
    wallet = 20_000.0
    fired: list[tuple[float, Trip]] = []
    # The day opens at 20,000; equity peaks at 20,000 + 1 x (62,000 - 60,000) = 22,000, then
    # BTC slides 100 at a time.
    for step, mark in enumerate([60_000.0, 62_000.0, *range(61_900, 58_000, -100)]):
        update = AccountUpdate(
            T0 + step, Account(wallet_balance=wallet, positions=(btc_long(mark),))
        )
        fired.extend((mark, trip) for trip in monitor.observe(update))
    # Cooling: one engage per trigger, not one per mark update.
    assert [(mark, trip.code) for mark, trip in fired] == [
        # 10 % of 22,000 is 2,200: equity 19,800 (mark 59,800) is at the limit.
        (59_700.0, Code.DRAWDOWN),
        # 1,500 below the day's 20,000 is 18,500 (mark 58,500), still allowed.
        (58_400.0, Code.DAILY_LOSS),
    ]
    drawdown, daily = fired[0][1], fired[1][1]
    assert drawdown.action == "HALTED"
    assert drawdown.numbers["peak"] == 22_000.0
    assert drawdown.numbers["drawdown_pct"] == pytest.approx(2_300.0 / 22_000.0 * 100.0)
    assert daily.numbers["loss"] == pytest.approx(1_600.0)
    assert daily.numbers["day_start_equity"] == 20_000.0


def test_drawdown_exactly_at_the_limit_is_quiet() -> None:
    marks = EquityMarks.start(1_000.0, T0)
    assert drawdown_trip(marks, 900.0, 10.0) is None
    assert drawdown_trip(marks, 899.99, 10.0) is not None


def test_daily_loss_counts_unrealised_fees_and_funding_through_equity() -> None:
    monitor = RiskMonitor(quiet(max_daily_loss=500.0))
    assert monitor.observe(EquityUpdate(T0, 10_000.0)) == ()
    # A realised gain raised the peak; fees, funding and an open loss took it back below.
    assert monitor.observe(EquityUpdate(T0 + 60, 10_400.0)) == ()
    assert monitor.observe(EquityUpdate(T0 + 120, 9_500.0)) == ()  # exactly 500 down: allowed
    (trip,) = monitor.observe(EquityUpdate(T0 + 180, 9_499.0))
    assert trip.code == Code.DAILY_LOSS
    assert trip.numbers == {
        "loss": 501.0,
        "limit": 500.0,
        "day_start_equity": 10_000.0,
        "equity": 9_499.0,
    }


def test_yesterdays_loss_does_not_count_today() -> None:
    marks = EquityMarks.start(10_000.0, T0).advance(9_600.0, T0 + 3600)
    assert daily_loss_trip(marks, 9_600.0, 300.0) is not None
    tomorrow = marks.advance(9_600.0, T0 + 86_400)
    assert daily_loss_trip(tomorrow, 9_400.0, 300.0) is None
    assert daily_loss_trip(tomorrow, 9_299.0, 300.0) is not None


def test_a_deposit_does_not_hide_a_drawdown() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=10.0))
    monitor.observe(EquityUpdate(T0, 10_000.0))
    monitor.observe(Transfer(T0 + 1, 5_000.0))  # peak now 15,000
    (trip,) = monitor.observe(EquityUpdate(T0 + 2, 13_000.0))  # 2,000 lost after the deposit
    assert trip.code == Code.DRAWDOWN


def test_no_peak_starts_at_zero_equity_and_nothing_trips_on_it() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=10.0, max_daily_loss=1.0))
    assert monitor.observe(EquityUpdate(T0, 0.0)) == ()
    assert monitor.marks is None


# --- runaway bot ------------------------------------------------------------------------


def test_a_runaway_order_loop_trips_order_rate_and_a_steady_one_does_not() -> None:
    monitor = RiskMonitor(quiet(max_orders_per_window=200, rate_window_s=60.0))
    steady = [monitor.observe(OrderSubmitted(T0 + i * 0.3)) for i in range(200)]
    assert not any(steady)  # 200 in 59.7 s: at the limit
    for i in range(400):  # the same pace for much longer: the window rolls, never 201 inside
        assert monitor.observe(OrderSubmitted(T0 + 60.0 + i * 0.3001)) == ()
    runaway = RiskMonitor(quiet(max_orders_per_window=200, rate_window_s=60.0))
    trips = [trip for i in range(250) for trip in runaway.observe(OrderSubmitted(T0 + i * 0.01))]
    assert codes(tuple(trips)) == [Code.ORDER_RATE]
    assert trips[0].numbers["count"] == 201.0


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        (OrderCanceled, "max_cancels_per_window", Code.CANCEL_RATE),
        (OrderRejected, "max_rejections_per_window", Code.REJECTION_BURST),
    ],
)
def test_cancel_floods_and_rejection_bursts_trip_just_past_the_limit(
    event: type[OrderCanceled] | type[OrderRejected], field: str, code: Code
) -> None:
    monitor = RiskMonitor(quiet(**{field: 5, "rate_window_s": 10.0}))
    for i in range(5):
        assert monitor.observe(event(T0 + i)) == ()
    (trip,) = monitor.observe(event(T0 + 5))
    assert trip.code == code


def test_rejections_spread_over_more_than_the_window_stay_quiet() -> None:
    monitor = RiskMonitor(quiet(max_rejections_per_window=3, rate_window_s=10.0))
    trips = [monitor.observe(OrderRejected(T0 + i * 3.34)) for i in range(30)]
    assert not any(trips)


def test_leverage_changed_more_often_than_the_policy_allows() -> None:
    monitor = RiskMonitor(
        quiet(max_leverage_changes_per_window=3, rate_window_s=3600.0, action="REDUCING")
    )
    for i, symbol in enumerate([BTC, ETH, BTC]):
        assert monitor.observe(LeverageChanged(T0 + i * 100, symbol)) == ()
    (trip,) = monitor.observe(LeverageChanged(T0 + 400, ETH))
    assert (trip.code, trip.action) == (Code.LEVERAGE_CHANGES, "REDUCING")


def test_rate_trip_refuses_a_code_that_is_not_a_rate() -> None:
    with pytest.raises(ValueError, match="code"):
        rate_trip(Code.DRAWDOWN, 5, 1, 60.0)
    with pytest.raises(ValueError, match="window_s"):
        rate_trip(Code.ORDER_RATE, 5, 1, math.nan)


# --- venue health -----------------------------------------------------------------------


def test_consecutive_errors_trip_and_a_success_resets_the_streak() -> None:
    monitor = RiskMonitor(quiet(max_consecutive_errors=3))
    for i in range(3):
        assert monitor.observe(VenueError(T0 + i)) == ()
    assert monitor.observe(VenueOk(T0 + 3)) == ()
    for i in range(3):
        assert monitor.observe(VenueError(T0 + 4 + i)) == ()
    (trip,) = monitor.observe(VenueError(T0 + 8))
    assert trip.code == Code.CONSECUTIVE_ERRORS
    assert trip.numbers["streak"] == 4.0


def test_a_ban_trips_and_names_its_end() -> None:
    monitor = RiskMonitor(quiet())
    (trip,) = monitor.observe(VenueBan(T0, until=T0 + 120))
    assert trip.code == Code.VENUE_BANNED
    assert trip.numbers == {"until": T0 + 120, "remaining_s": 120.0}
    assert RiskMonitor(quiet()).observe(VenueBan(T0, until=T0)) == ()  # already over
    assert RiskMonitor(quiet(on_ban=False)).observe(VenueBan(T0, until=T0 + 120)) == ()


def test_a_frozen_feed_trips_stale_data_when_time_passes_without_data() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=30.0))
    assert monitor.observe(MarkUpdate(T0, BTC)) == ()
    assert monitor.observe(MarkUpdate(T0, ETH)) == ()
    for second in range(1, 31):
        assert monitor.observe(MarkUpdate(T0 + second, ETH)) == ()
        assert monitor.observe(Tick(T0 + second)) == ()  # BTC's age reaches exactly 30 s
    (trip,) = monitor.observe(Tick(T0 + 30.5))
    assert trip.code == Code.STALE_MARKET_DATA
    assert BTC in trip.reason
    assert ETH not in trip.reason
    assert trip.numbers["age_s"] == 30.5


def test_a_feed_repeating_an_old_timestamp_is_frozen() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=5.0))
    trips = [monitor.observe(MarkUpdate(T0 + i, BTC, data_time=T0)) for i in range(10)]
    assert [codes(t) for t in trips].index([Code.STALE_MARKET_DATA]) == 6


def test_prices_frozen_under_fresh_stamps_age_from_when_they_stopped() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=30.0))
    assert monitor.observe(MarkUpdate(T0, BTC, data_time=T0)) == ()
    # Every read is stamped "now", but the prices have not moved since T0 + 10.
    for second in range(11, 41):
        assert monitor.observe(MarkUpdate(T0 + second, BTC, T0 + second, T0 + 10)) == ()
    (trip,) = monitor.observe(MarkUpdate(T0 + 41, BTC, T0 + 41, stale_since=T0 + 10))
    assert trip.code == Code.STALE_MARKET_DATA
    assert trip.numbers["age_s"] == 31.0
    # Prices that move again are fresh again (the switch stays engaged: nothing un-trips).
    monitor.resume(T0 + 42)
    assert monitor.observe(MarkUpdate(T0 + 42, BTC, data_time=T0 + 42)) == ()


def test_a_stamp_in_the_future_does_not_keep_a_feed_young() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=30.0))
    assert monitor.observe(MarkUpdate(T0, BTC, data_time=T0 + 3600)) == ()
    assert monitor.observe(Tick(T0 + 30)) == ()
    (trip,) = monitor.observe(Tick(T0 + 31))
    assert trip.code == Code.STALE_MARKET_DATA


def test_a_clock_stepping_back_does_not_blind_the_stale_data_trigger() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=30.0))
    assert monitor.observe(MarkUpdate(T0 + 3600, BTC)) == ()
    # The host clock is corrected an hour back; the feed then says nothing more. Its data
    # ages from the step, not from an hour in the future.
    assert monitor.observe(Tick(T0)) == ()
    assert monitor.observe(Tick(T0 + 30)) == ()
    (trip,) = monitor.observe(Tick(T0 + 31))
    assert trip.code == Code.STALE_MARKET_DATA


def test_an_account_that_cannot_be_judged_trips_trigger_failed() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=5.0))
    (trip,) = monitor.observe(AccountUnjudged(T0, "no tier table for BTC/USDT:USDT"))
    assert (trip.code, trip.action) == (Code.TRIGGER_FAILED, "HALTED")
    assert "no tier table" in trip.reason
    assert monitor.observe(AccountUnjudged(T0 + 1, "still none")) == ()  # cooling


def test_a_forgotten_feed_no_longer_counts() -> None:
    monitor = RiskMonitor(quiet(max_data_age_s=5.0))
    monitor.observe(MarkUpdate(T0, BTC))
    monitor.forget_feed(BTC)
    assert monitor.observe(Tick(T0 + 3600)) == ()


def test_stale_data_trip_validates_ages() -> None:
    with pytest.raises(ValueError, match="ages"):
        stale_data_trip({BTC: math.nan}, 5.0)
    assert stale_data_trip({BTC: 5.0}, 5.0) is None


# --- cooling and latching -----------------------------------------------------------------


def test_a_metric_flapping_at_its_limit_trips_once_per_cooling_period() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=10.0, cooling_period_s=300.0))
    monitor.observe(EquityUpdate(T0, 1_000.0))
    trips = []
    for step in range(1, 600):  # every second, alternately 11 % and 9 % down
        equity = 890.0 if step % 2 else 910.0
        trips.extend((step, t) for t in monitor.observe(EquityUpdate(T0 + step, equity)))
    assert [step for step, _ in trips] == [1, 301]


def test_a_recovered_metric_does_not_un_trip_only_resume_does() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=10.0, cooling_period_s=300.0))
    monitor.observe(EquityUpdate(T0, 1_000.0))
    (trip,) = monitor.observe(EquityUpdate(T0 + 1, 850.0))
    assert monitor.observe(EquityUpdate(T0 + 2, 990.0)) == ()  # recovered
    assert monitor.tripped == (trip,)  # still on record: nothing un-tripped
    monitor.resume(T0 + 3)
    assert monitor.tripped == ()
    # After a human re-arms, a breach still there trips at once (no cooling hides it).
    (again,) = monitor.observe(EquityUpdate(T0 + 4, 850.0))
    assert again.code == Code.DRAWDOWN


def test_cooling_is_per_trigger() -> None:
    monitor = RiskMonitor(quiet(max_drawdown_pct=10.0, max_daily_loss=50.0))
    monitor.observe(EquityUpdate(T0, 1_000.0))
    first = monitor.observe(EquityUpdate(T0 + 1, 940.0))
    assert codes(first) == [Code.DAILY_LOSS]
    assert codes(monitor.observe(EquityUpdate(T0 + 2, 890.0))) == [Code.DRAWDOWN]


def test_per_trigger_actions_override_the_default() -> None:
    config = quiet(max_consecutive_errors=1, actions={"CONSECUTIVE_ERRORS": "REDUCING"})
    monitor = RiskMonitor(config)
    monitor.observe(VenueError(T0))
    (trip,) = monitor.observe(VenueError(T0 + 1))
    assert trip.action == "REDUCING"
    (ban,) = monitor.observe(VenueBan(T0 + 2, until=T0 + 60))
    assert ban.action == "HALTED"


def test_events_refuse_nonsense_times_and_values() -> None:
    with pytest.raises(ValueError, match="now"):
        OrderSubmitted(math.nan)
    with pytest.raises(ValueError, match="equity"):
        EquityUpdate(T0, math.inf)
    with pytest.raises(ValueError, match="symbol"):
        MarkUpdate(T0, "")
    with pytest.raises(ValueError, match="action"):
        Trip(Code.DRAWDOWN, "x", "PAUSED", {})  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event"):
        RiskMonitor(quiet()).observe(object())  # type: ignore[arg-type]


# --- liquidation distance ---------------------------------------------------------------


def cross_account(mark: float, wallet: float = 6_000.0) -> Account:
    return Account(wallet_balance=wallet, positions=(btc_long(mark),))


def test_a_stop_beyond_liquidation_trips_and_a_safe_stop_does_not() -> None:
    account = cross_account(60_000.0)
    liquidation = get_model("binanceusdm").liquidation_price(
        account.positions[0], wallet_balance=6_000.0
    )
    assert liquidation.price is not None  # about 54,200
    lp = liquidation.price
    safe = liquidation_distance_trip(account, {BTC: lp * 1.02}, buffer_pct=1.0)
    assert safe is None
    tight = liquidation_distance_trip(account, {BTC: lp * 1.005}, buffer_pct=1.0)
    assert tight is not None
    assert tight.code == Code.LIQUIDATION_DISTANCE
    assert tight.numbers["liquidation_price"] == pytest.approx(lp)
    assert tight.numbers["distance_pct"] == pytest.approx(0.5)
    beyond = liquidation_distance_trip(account, {BTC: lp * 0.99}, buffer_pct=1.0)
    assert beyond is not None
    assert beyond.numbers["distance_pct"] < 0


def test_without_a_stop_the_mark_closing_in_on_liquidation_trips_through_the_monitor() -> None:
    monitor = RiskMonitor(
        quiet(on_liquidation_distance=True, actions={"LIQUIDATION_DISTANCE": "REDUCING"}),
        limits=RiskLimits(min_liquidation_buffer_pct=2.0, max_effective_leverage=None),
    )
    lp = get_model("binanceusdm").liquidation_price(btc_long(60_000.0), wallet_balance=6_000.0)
    assert lp.price is not None
    assert monitor.observe(AccountUpdate(T0, cross_account(lp.price * 1.021))) == ()
    (trip,) = monitor.observe(AccountUpdate(T0 + 1, cross_account(lp.price * 1.019)))
    assert (trip.code, trip.action) == (Code.LIQUIDATION_DISTANCE, "REDUCING")


def test_a_stop_left_over_from_a_closed_position_is_ignored() -> None:
    assert (
        liquidation_distance_trip(cross_account(60_000.0), {ETH: 3_000.0}, buffer_pct=1.0) is None
    )


def test_an_account_the_triggers_cannot_judge_halts_instead_of_trading_unwatched() -> None:
    # A stop keyed by a symbol held in two isolated hedge legs, each with its own price.
    long_leg = PositionLeg(
        BTC, 1, 1.0, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "LONG", isolated_wallet=6_000.0
    )
    short_leg = PositionLeg(
        BTC, -1, 0.5, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "SHORT", isolated_wallet=3_000.0
    )
    account = Account(wallet_balance=10_000.0, positions=(long_leg, short_leg))
    monitor = RiskMonitor(
        quiet(on_liquidation_distance=True), limits=RiskLimits(max_effective_leverage=None)
    )
    (trip,) = monitor.observe(AccountUpdate(T0, account, stops={BTC: 55_000.0}))
    assert trip.code == Code.TRIGGER_FAILED
    assert trip.action == "HALTED"
    assert "hedge" in trip.reason


# --- limits tightened at run time ---------------------------------------------------------


def test_a_lower_max_effective_leverage_puts_positions_already_beyond_it_into_reducing() -> None:
    # 2 BTC at 60,000 on 20,000 of equity: 6x.
    account = Account(wallet_balance=20_000.0, positions=(btc_long(60_000.0, quantity=2.0),))
    assert positions_beyond_limits(account, RiskLimits(max_effective_leverage=6.0)) is None
    trip = positions_beyond_limits(account, RiskLimits(max_effective_leverage=5.0))
    assert trip is not None
    assert (trip.code, trip.action) == (Code.LEVERAGE_ABOVE_POLICY, "REDUCING")
    assert trip.numbers["value"] == pytest.approx(6.0)


def test_the_leverage_setting_cap_does_not_judge_effective_leverage() -> None:
    # max_leverage caps the leverage setting an order runs under (the verdict's); 6x of
    # effective leverage (notional over equity) is another number, with its own key.
    account = Account(wallet_balance=20_000.0, positions=(btc_long(60_000.0, quantity=2.0),))
    limits = RiskLimits(max_leverage=5.0, max_effective_leverage=None)
    assert positions_beyond_limits(account, limits) is None


def test_isolated_leverage_is_measured_on_its_own_margin() -> None:
    isolated = PositionLeg(
        ETH, -1, 10.0, 3_000.0, 3_000.0, BINANCE_ETHUSDT_TIERS, isolated_wallet=3_000.0
    )
    account = Account(wallet_balance=1_000_000.0, positions=(isolated,))
    trip = positions_beyond_limits(account, RiskLimits(max_effective_leverage=9.0))
    assert trip is not None
    assert trip.numbers["value"] == pytest.approx(10.0)


def test_every_breached_limit_is_named_and_the_first_gives_the_code() -> None:
    account = Account(
        wallet_balance=10_000.0,
        positions=(
            btc_long(60_000.0),
            PositionLeg(ETH, 1, 5.0, 3_000.0, 3_000.0, BINANCE_ETHUSDT_TIERS),
        ),
    )
    limits = RiskLimits(
        max_effective_leverage=None,
        max_notional_per_position=50_000.0,
        max_notional_per_account=70_000.0,
        max_concentration=0.9,
    )
    trip = positions_beyond_limits(account, limits)
    assert trip is not None
    assert trip.code == Code.NOTIONAL_PER_POSITION
    assert "account notional" in trip.reason
    assert "share of equity" in trip.reason
    assert trip.numbers["breaches"] == 4.0  # BTC notional, BTC share, ETH share, account


def test_the_monitor_reports_positions_beyond_tightened_limits_on_account_updates() -> None:
    monitor = RiskMonitor(quiet(), limits=RiskLimits(max_effective_leverage=2.0))
    (trip,) = monitor.observe(AccountUpdate(T0, cross_account(60_000.0, wallet=20_000.0)))
    assert (trip.code, trip.action) == (Code.LEVERAGE_ABOVE_POLICY, "REDUCING")


def test_limits_tightened_at_run_time_apply_from_the_next_update() -> None:
    monitor = RiskMonitor(quiet(), limits=RiskLimits(max_effective_leverage=10.0))
    account = cross_account(60_000.0, wallet=20_000.0)  # 3x
    assert monitor.observe(AccountUpdate(T0, account)) == ()
    monitor.set_limits(RiskLimits(max_effective_leverage=2.0))
    (trip,) = monitor.observe(AccountUpdate(T0 + 1, account))
    assert trip.action == "REDUCING"
    assert trip.numbers["limit"] == 2.0


def test_the_policy_monitor_counts_the_closing_fee_like_the_verdict(tmp_path: Path) -> None:
    model = get_model("binanceusdm")
    position = btc_long(60_000.0)
    bare = model.liquidation_price(position, wallet_balance=6_000.0).price
    with_fee = model.liquidation_price(
        position,
        wallet_balance=6_000.0,
        options=LiquidationOptions(closing_fee_rate=0.0005),
    ).price
    assert bare is not None
    assert with_fee is not None
    assert with_fee > bare  # the fee brings liquidation closer to a long's mark
    stop = (bare * 1.01 + with_fee * 1.01) / 2  # clears 1 % without the fee, not with it
    account = cross_account(60_000.0)

    def trips(include_closing_fee: bool) -> tuple[Trip, ...]:
        policy = Policy.build(
            risk={
                "max_effective_leverage": None,
                "include_closing_fee": include_closing_fee,
                "stop_slippage_bps": 0.0,
            },
            fills={"taker_fee": 0.0005},
            kill_switch={"state_dir": str(tmp_path / str(include_closing_fee))},
        )
        monitor = RiskMonitor.from_policy(policy)
        return monitor.observe(AccountUpdate(T0, account, stops={BTC: stop}))

    assert trips(include_closing_fee=False) == ()
    assert codes(trips(include_closing_fee=True)) == [Code.LIQUIDATION_DISTANCE]


def test_a_stop_keyed_by_a_symbol_held_in_both_isolated_hedge_legs_is_refused() -> None:
    # Isolated hedge legs each have their own price: which one does the stop protect?
    long_leg = PositionLeg(
        BTC, 1, 1.0, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "LONG", isolated_wallet=6_000.0
    )
    short_leg = PositionLeg(
        BTC, -1, 0.5, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "SHORT", isolated_wallet=3_000.0
    )
    account = Account(wallet_balance=10_000.0, positions=(long_leg, short_leg))
    with pytest.raises(ValueError, match="hedge"):
        liquidation_distance_trip(account, {BTC: 55_000.0}, buffer_pct=1.0)
    assert liquidation_distance_trip(account, {}, buffer_pct=1.0) is None


def test_a_symbols_stop_in_cross_hedge_mode_is_judged_against_the_shared_price() -> None:
    # Both cross legs share the account's price (net long: below the mark, near 40,486), so a
    # stop keyed by the symbol needs no leg: it must clear that one price, slipping toward it.
    long_leg = PositionLeg(BTC, 1, 1.0, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "LONG")
    short_leg = PositionLeg(BTC, -1, 0.5, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "SHORT")
    account = Account(wallet_balance=10_000.0, positions=(long_leg, short_leg))
    shared = get_model("binanceusdm").liquidation_price(
        long_leg, wallet_balance=10_000.0, others=(short_leg,)
    )
    assert shared.price is not None
    assert liquidation_distance_trip(account, {BTC: 55_000.0}, buffer_pct=1.0) is None
    tight = shared.price * 1.012  # 1.2 % inside; 50 bps of slippage takes it under 1 %
    assert liquidation_distance_trip(account, {BTC: tight}, buffer_pct=1.0) is None
    slipped = liquidation_distance_trip(
        account, {BTC: tight}, buffer_pct=1.0, stop_slippage_bps=50.0
    )
    assert slipped is not None
    assert slipped.numbers["guard_price"] == pytest.approx(tight * (1 - 0.005))
    assert "BTC/USDT:USDT long" in slipped.reason
    assert "BTC/USDT:USDT short" in slipped.reason


def test_cross_hedge_legs_are_judged_against_the_accounts_shared_price() -> None:
    # Net long 0.5 BTC on 10,000: the account (both legs) is liquidated near 40,486. The
    # short leg's mark sits safely above that price, as the long leg's does.
    long_leg = PositionLeg(BTC, 1, 1.0, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "LONG")
    short_leg = PositionLeg(BTC, -1, 0.5, 60_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS, "SHORT")
    calm = Account(wallet_balance=10_000.0, positions=(long_leg, short_leg))
    assert liquidation_distance_trip(calm, {}, buffer_pct=1.0) is None
    # The mark falls to 0.5 % above the account's price: both legs are that close to it.
    shared = get_model("binanceusdm").liquidation_price(
        long_leg, wallet_balance=10_000.0, others=(short_leg,)
    )
    assert shared.price is not None
    mark = shared.price * 1.005
    near = Account(
        wallet_balance=10_000.0,
        positions=(
            dataclasses.replace(long_leg, mark_price=mark),
            dataclasses.replace(short_leg, mark_price=mark),
        ),
    )
    trip = liquidation_distance_trip(near, {}, buffer_pct=1.0)
    assert trip is not None
    assert "BTC/USDT:USDT long" in trip.reason
    assert "BTC/USDT:USDT short" in trip.reason
    # Only a SHORT leg held: its stop above the mark is judged as a short's, against a rise.
    alone = Account(wallet_balance=10_000.0, positions=(short_leg,))
    rise = get_model("binanceusdm").liquidation_price(short_leg, wallet_balance=10_000.0)
    assert rise.price is not None
    assert liquidation_distance_trip(alone, {BTC: rise.price * 0.95}, buffer_pct=1.0) is None
    assert liquidation_distance_trip(alone, {BTC: rise.price * 0.999}, buffer_pct=1.0)


def test_an_unknown_liquidation_model_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="liquidation model"):
        RiskMonitor(quiet(), liquidation_model="binance-ish")


@given(limit=st.integers(1, 40), window=st.floats(1.0, 600.0), spread=st.floats(0.0, 0.99))
@settings(max_examples=40, deadline=None)
def test_any_limit_allows_exactly_its_count_per_window(
    limit: int, window: float, spread: float
) -> None:
    monitor = RiskMonitor(quiet(max_orders_per_window=limit, rate_window_s=window))
    step = window * spread / limit  # limit + 1 orders all inside one window
    trips = [monitor.observe(OrderSubmitted(T0 + i * step)) for i in range(limit + 1)]
    assert all(t == () for t in trips[:-1])
    assert codes(trips[-1]) == [Code.ORDER_RATE]


def test_a_trip_pickles_hashes_and_keeps_its_numbers() -> None:
    import pickle

    trip = Trip(Code.DRAWDOWN, "drawdown 12% beyond 10%", "HALTED", {"drawdown_pct": 12.0})
    again = pickle.loads(pickle.dumps(trip))
    assert again == trip
    assert again.numbers == {"drawdown_pct": 12.0}
    assert len({trip, again}) == 1
    assert Trip("DRAWDOWN", "x", "HALTED").code is Code.DRAWDOWN  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="NOT_A_CODE"):
        Trip("NOT_A_CODE", "x", "HALTED")  # type: ignore[arg-type]


def test_the_stop_is_judged_by_its_fill_not_its_trigger() -> None:
    account = cross_account(60_000.0)
    lp = get_model("binanceusdm").liquidation_price(account.positions[0], wallet_balance=6_000.0)
    assert lp.price is not None
    stop = lp.price * 1.012  # 1.2 % inside liquidation; the policy wants 1 %
    assert liquidation_distance_trip(account, {BTC: stop}, buffer_pct=1.0) is None
    slipped = liquidation_distance_trip(
        account, {BTC: stop}, buffer_pct=1.0, stop_slippage_bps=50.0
    )
    assert slipped is not None
    assert slipped.numbers["guard_price"] == pytest.approx(stop * (1 - 0.005))
    with pytest.raises(ValueError, match="stop_slippage_bps"):
        liquidation_distance_trip(account, {}, buffer_pct=1.0, stop_slippage_bps=math.nan)


def test_a_clock_stepped_backwards_does_not_stretch_the_cooling_period() -> None:
    monitor = RiskMonitor(quiet(max_consecutive_errors=1, cooling_period_s=300.0))
    monitor.observe(VenueError(T0))
    assert codes(monitor.observe(VenueError(T0 + 1))) == [Code.CONSECUTIVE_ERRORS]
    assert monitor.observe(VenueError(T0 + 2)) == ()  # cooling
    assert codes(monitor.observe(VenueError(T0 - 3600))) == [Code.CONSECUTIVE_ERRORS]
