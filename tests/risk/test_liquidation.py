"""Liquidation models: fail-closed inputs, the explicit answers, hedge mode, funding and fees."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import (
    MODELS,
    LiquidationOptions,
    PositionLeg,
    get_model,
)
from safeguard.risk._tiers import (
    BINANCE_BTCUSD_COINM_TIERS,
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    TierTable,
)

BTC = "BTC/USDT:USDT"
FLAT = TierTable.from_rows([(0.0, math.inf, 0.005, 100.0)])


def leg(**changes: Any) -> PositionLeg:
    fields: dict[str, Any] = {
        "symbol": BTC,
        "side": 1,
        "quantity": 1.0,
        "entry_price": 20_000.0,
        "mark_price": 20_000.0,
        "tiers": BINANCE_BTCUSDT_TIERS,
    }
    fields.update(changes)
    return PositionLeg(**fields)


def coin_leg(**changes: Any) -> PositionLeg:
    fields: dict[str, Any] = {
        "symbol": "BTC/USD:BTC",
        "quantity": 1_000.0,
        "tiers": BINANCE_BTCUSD_COINM_TIERS,
        "inverse": True,
    }
    fields.update(changes)
    return leg(**fields)


# --- inputs fail closed, naming the field ---------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"symbol": ""}, "symbol"),
        ({"symbol": None}, "symbol"),
        ({"side": 0}, "side"),
        ({"side": 2}, "side"),
        ({"side": True}, "side"),
        ({"side": 1.0}, "side"),
        ({"quantity": 0.0}, "quantity"),
        ({"quantity": -1.0}, "quantity"),
        ({"quantity": math.nan}, "quantity"),
        ({"quantity": math.inf}, "quantity"),
        ({"quantity": "1"}, "quantity"),
        ({"entry_price": 0.0}, "entry_price"),
        ({"entry_price": math.nan}, "entry_price"),
        ({"mark_price": -5.0}, "mark_price"),
        ({"mark_price": math.inf}, "mark_price"),
        ({"tiers": [1, 2]}, "tiers"),
        ({"position_side": "long"}, "position_side"),
        ({"position_side": "SHORT"}, "position_side SHORT contradicts side"),
        ({"side": -1, "position_side": "LONG"}, "position_side LONG contradicts side"),
        ({"isolated_wallet": -1.0}, "isolated_wallet"),
        ({"isolated_wallet": math.nan}, "isolated_wallet"),
        ({"inverse": 1}, "inverse"),
        ({"quantity": 10_000.0}, "tiers do not fit the position"),
    ],
)
def test_bad_legs_are_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        leg(**changes)


def test_int_inputs_are_stored_as_floats() -> None:
    made = leg(quantity=2, entry_price=20_000, mark_price=20_000, isolated_wallet=100)
    assert all(
        type(v) is float
        for v in (made.quantity, made.entry_price, made.mark_price, made.isolated_wallet)
    )


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("wallet", [math.nan, math.inf, -1.0, "100", None, True])
def test_every_model_refuses_a_bad_wallet(name: str, wallet: Any) -> None:
    target = coin_leg() if name == "binancecoinm" else leg()
    with pytest.raises(ValueError, match="wallet_balance"):
        get_model(name).liquidation_price(target, wallet_balance=wallet)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_refuses_a_non_leg_and_bad_options(name: str) -> None:
    model = get_model(name)
    with pytest.raises(ValueError, match="target must be a PositionLeg"):
        model.liquidation_price("BTC", wallet_balance=1.0)  # type: ignore[arg-type]
    target = coin_leg() if name == "binancecoinm" else leg()
    with pytest.raises(ValueError, match="options must be LiquidationOptions"):
        model.liquidation_price(target, wallet_balance=1.0, options={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"closing_fee_rate": math.nan}, "closing_fee_rate"),
        ({"closing_fee_rate": -0.001}, "closing_fee_rate"),
        ({"closing_fee_rate": 1.0}, "closing_fee_rate"),
        ({"safety_buffer_rate": math.inf}, "safety_buffer_rate"),
        ({"safety_buffer_rate": "0.01"}, "safety_buffer_rate"),
        ({"funding": 0.0001}, "funding"),
    ],
)
def test_bad_options_are_refused(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LiquidationOptions(**changes)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"rate": math.nan}, "funding.rate"),
        ({"rate": 1.5}, "funding.rate"),
        ({"interval_s": 0.0}, "funding.interval_s"),
        ({"horizon_s": -1.0}, "funding.horizon_s"),
        ({"next_funding_time": math.nan}, "funding.next_funding_time"),
        ({"now": math.inf}, "funding.now"),
    ],
)
def test_bad_funding_is_refused(changes: dict[str, Any], field: str) -> None:
    fields: dict[str, Any] = {
        "rate": 0.0001, "interval_s": 28_800.0, "horizon_s": 28_800.0,
        "next_funding_time": 1_000.0, "now": 0.0,
    }  # fmt: skip
    fields.update(changes)
    with pytest.raises(ValueError, match=field):
        FundingEstimate(**fields)


def test_kind_mismatch_between_model_and_leg() -> None:
    with pytest.raises(ValueError, match="model 'binanceusdm' is for linear"):
        get_model("binanceusdm").liquidation_price(coin_leg(), wallet_balance=1.0)
    with pytest.raises(ValueError, match="model 'binancecoinm' is for inverse"):
        get_model("binancecoinm").liquidation_price(leg(), wallet_balance=1.0)


@pytest.mark.parametrize(
    ("others", "message"),
    [
        ("ETH", "others must be a sequence"),
        ([object()], r"others\[0\] must be a PositionLeg"),
        ([leg(symbol="ETH/USDT:USDT", isolated_wallet=5.0)], r"others\[0\] .* is isolated"),
        ([coin_leg(symbol="ETH/USD:BTC")], r"others\[0\] .*linear and inverse"),
        ([leg()], r"others\[0\] \(BTC/USDT:USDT BOTH\) duplicates"),
        ([leg(side=-1, position_side="SHORT")], r"others\[0\] .* duplicates"),
        (
            [leg(symbol="ETH/USDT:USDT", tiers=BINANCE_ETHUSDT_TIERS)] * 2,
            r"others\[1\] .* duplicates",
        ),
    ],
)
def test_bad_cross_accounts_are_refused(others: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_model("binanceusdm").liquidation_price(leg(), wallet_balance=5_000.0, others=others)


def test_hedge_legs_must_share_the_mark_and_coin_wallets_their_coin() -> None:
    long = leg(position_side="LONG")
    short = leg(side=-1, position_side="SHORT", mark_price=20_001.0)
    with pytest.raises(ValueError, match=r"others\[0\] .*legs of one symbol share one mark"):
        get_model("generic").liquidation_price(long, wallet_balance=1e4, others=[short])
    eth = coin_leg(symbol="ETH/USD:ETH", entry_price=2_000.0, mark_price=2_000.0)
    with pytest.raises(ValueError, match=r"others\[0\] .*per coin"):
        get_model("binancecoinm").liquidation_price(coin_leg(), wallet_balance=1.0, others=[eth])


# --- "cannot be liquidated" is an explicit answer -------------------------------------------


@pytest.mark.parametrize("name", ["binanceusdm", "okx", "gate", "bitget", "bybit", "generic"])
def test_a_fully_collateralised_long_cannot_be_liquidated(name: str) -> None:
    # 1 BTC bought at 20,000 with 20,000 of margin: even at a price of 0 equity stays positive.
    target = leg(isolated_wallet=25_000.0)
    result = get_model(name).liquidation_price(target, wallet_balance=0.0)
    assert result.price is None
    assert not result.can_liquidate
    assert result.tier is None
    assert result.reason


@pytest.mark.parametrize("name", ["binancecoinm", "okx", "bybit", "generic"])
def test_an_inverse_short_covered_in_coin_cannot_be_liquidated(name: str) -> None:
    # Short 20,000 USD of BTC at 20,000 (1 BTC of exposure) with 1.1 BTC: the most it can lose
    # as the price goes to infinity is 1 BTC.
    target = coin_leg(side=-1, quantity=20_000.0, isolated_wallet=1.1)
    result = get_model(name).liquidation_price(target, wallet_balance=0.0)
    assert result.price is None
    assert result.reason


def test_the_same_short_with_less_coin_can() -> None:
    target = coin_leg(side=-1, quantity=20_000.0, isolated_wallet=0.5)
    result = get_model("binancecoinm").liquidation_price(target, wallet_balance=0.0)
    assert result.price is not None
    assert result.price > 20_000.0
    # equity(P) = 0.5 - 20000*(1/20000 - 1/P) = MM = (20000/P)*0.004
    assert result.price == pytest.approx(20_000.0 * 0.996 / 0.5, rel=1e-12)


@pytest.mark.parametrize("name", ["binanceusdm", "okx", "bybit", "generic"])
def test_a_position_born_under_maintenance_is_flagged(name: str) -> None:
    target = leg(isolated_wallet=10.0)  # 1 BTC at 20,000 needs 80 of maintenance
    result = get_model(name).liquidation_price(target, wallet_balance=0.0)
    assert result.already_liquidatable
    assert result.price is not None
    assert result.price >= target.mark_price  # where a long would get back above maintenance
    assert "already" in result.reason


# --- Binance formula, term by term ----------------------------------------------------------


def test_isolated_reduces_to_the_one_leg_formula() -> None:
    # LP = (WB + cum - s*Q*EP) / (Q*MMR - s*Q), tier 1 (notional at LP < 300,000).
    for side in (1, -1):
        target = leg(side=side, quantity=5.0, isolated_wallet=10_000.0)
        expected = (10_000.0 - side * 5.0 * 20_000.0) / (5.0 * 0.004 - side * 5.0)
        result = get_model("binanceusdm").liquidation_price(target, wallet_balance=1e9)
        assert result.price == pytest.approx(expected, rel=1e-12)


def test_the_tier_is_chosen_at_the_liquidation_price_not_at_entry() -> None:
    # 20 BTC at 20,000 is 400,000 of notional (tier 2) but at the LP it is below 300,000.
    target = leg(quantity=20.0, isolated_wallet=120_000.0)
    result = get_model("binanceusdm").liquidation_price(target, wallet_balance=0.0)
    assert result.tier is not None
    assert result.tier.tier == 1
    expected = (120_000.0 - 20.0 * 20_000.0) / (20.0 * 0.004 - 20.0)
    assert result.price == pytest.approx(expected, rel=1e-12)
    assert 20.0 * expected < 300_000.0


def test_hedge_mode_cross_legs_share_one_price_from_binances_formula() -> None:
    # Cross hedge: long 3 BTC at 20,000 and short 1 BTC at 21,000, mark 20,500, wallet 9,000.
    long = leg(quantity=3.0, mark_price=20_500.0, position_side="LONG")
    short = leg(
        side=-1, quantity=1.0, entry_price=21_000.0, mark_price=20_500.0, position_side="SHORT"
    )
    model = get_model("binanceusdm")
    result = model.liquidation_price(long, wallet_balance=9_000.0, others=[short])
    # LP = [WB + cumL + cumS - QL*EPL + QS*EPS] / [QL*MMRL + QS*MMRS - QL + QS], tier 1 each.
    expected = (9_000.0 - 3 * 20_000.0 + 21_000.0) / (3 * 0.004 + 1 * 0.004 - 3 + 1)
    assert result.price == pytest.approx(expected, rel=1e-12)
    assert result.price == pytest.approx(
        get_model("generic").liquidation_price(long, wallet_balance=9_000.0, others=[short]).price,
        rel=1e-12,
    )
    # Binance shows the account's one price on both legs: the short leg of this net-long
    # account is liquidated when a fall liquidates the account, not "never".
    for name in ("binanceusdm", "generic"):
        model = get_model(name)
        asked = model.liquidation_price(long, wallet_balance=9_000.0, others=[short])
        twin = model.liquidation_price(short, wallet_balance=9_000.0, others=[long])
        assert twin.price == asked.price
        assert twin.direction == asked.direction == -1  # below the mark
        assert twin.safe_side == 1  # the account is safe above it, whichever leg is asked
        assert not twin.already_liquidatable


def test_both_hedge_legs_of_a_cross_account_get_the_accounts_price_whichever_way_it_leans() -> None:
    # Net long: long 2 BTC at 50,000, short 0.5 at 52,000, mark 51,000, wallet 20,000.
    # LP = [WB + cumL + cumS - QL*EPL + QS*EPS] / [QL*MMRL + QS*MMRS - QL + QS] (tier 1).
    long = leg(quantity=2.0, entry_price=50_000.0, mark_price=51_000.0, position_side="LONG")
    short = leg(
        side=-1, quantity=0.5, entry_price=52_000.0, mark_price=51_000.0, position_side="SHORT"
    )
    falls = (20_000.0 - 2 * 50_000.0 + 0.5 * 52_000.0) / (2 * 0.004 + 0.5 * 0.004 - 2 + 0.5)
    # Net short: the same legs swapped in size; the account is liquidated by a rise.
    long_small = dataclasses.replace(long, quantity=0.5)
    short_big = dataclasses.replace(short, quantity=2.0)
    rises = (20_000.0 - 0.5 * 50_000.0 + 2 * 52_000.0) / (0.5 * 0.004 + 2 * 0.004 - 0.5 + 2)
    # Fully hedged: only the maintenance margin grows with the price, so a rise liquidates.
    flat_long = dataclasses.replace(long, quantity=1.0)
    flat_short = dataclasses.replace(short, quantity=1.0)
    hedged = (300.0 - 50_000.0 + 52_000.0) / (0.004 + 0.004)
    for a, b, wallet, expected, direction in (
        (long, short, 20_000.0, falls, -1),
        (long_small, short_big, 20_000.0, rises, 1),
        (flat_long, flat_short, 300.0, hedged, 1),
    ):
        for name in ("binanceusdm", "generic"):
            model = get_model(name)
            one = model.liquidation_price(a, wallet_balance=wallet, others=[b])
            two = model.liquidation_price(b, wallet_balance=wallet, others=[a])
            assert one.price == pytest.approx(expected, rel=1e-9), name
            assert two.price == one.price, name
            assert one.direction == two.direction == direction, name
            assert one.tier is not None
            assert two.tier is not None


def test_hedge_mode_isolated_legs_each_have_their_own_price() -> None:
    long = leg(quantity=2.0, position_side="LONG", isolated_wallet=4_000.0)
    short = leg(side=-1, quantity=2.0, position_side="SHORT", isolated_wallet=4_000.0)
    model = get_model("binanceusdm")
    up = model.liquidation_price(short, wallet_balance=0.0, others=[long])
    down = model.liquidation_price(long, wallet_balance=0.0, others=[short])
    assert down.price == pytest.approx((4_000.0 - 40_000.0) / (2 * 0.004 - 2), rel=1e-12)
    assert up.price == pytest.approx((4_000.0 + 40_000.0) / (2 * 0.004 + 2), rel=1e-12)


def test_cross_positions_of_other_symbols_count_at_their_own_mark() -> None:
    eth = PositionLeg("ETH/USDT:USDT", -1, 10.0, 1_000.0, 1_100.0, BINANCE_ETHUSDT_TIERS)
    target = leg(quantity=2.0)
    result = get_model("binanceusdm").liquidation_price(
        target, wallet_balance=5_000.0, others=[eth]
    )
    upnl = -10.0 * (1_100.0 - 1_000.0)
    maintenance = 10.0 * 1_100.0 * 0.005
    expected = (5_000.0 - maintenance + upnl - 2.0 * 20_000.0) / (2.0 * 0.004 - 2.0)
    assert result.price == pytest.approx(expected, rel=1e-12)


# --- funding, fees, buffers -----------------------------------------------------------------


def test_funding_payments_over_the_horizon() -> None:
    hour = 3_600.0
    assert FundingEstimate(0.0001, 8 * hour, 8 * hour, hour, 0.0).payments == 1
    assert FundingEstimate(0.0001, 8 * hour, 9 * hour, hour, 0.0).payments == 2
    assert FundingEstimate(0.0001, 8 * hour, 0.0, 0.0, 0.0).payments == 1  # settles right now
    assert FundingEstimate(0.0001, 8 * hour, 30 * hour, hour, 0.0).payments == 4
    assert FundingEstimate(0.0001, 8 * hour, 0.5 * hour, hour, 0.0).payments == 0
    # A stale next-funding time rolls forward: stamps at -10h+16h = 6h, 14h fall in [0, 15h].
    assert FundingEstimate(0.0001, 8 * hour, 15 * hour, -10 * hour + 1e9, 1e9).payments == 2


def test_funding_a_long_pays_comes_off_the_wallet_and_receipts_are_not_credited() -> None:
    model = get_model("binanceusdm")
    target = leg(quantity=5.0, isolated_wallet=10_000.0)
    funding = FundingEstimate(0.001, 28_800.0, 28_800.0 * 3, 100.0, 0.0)  # 3 payments
    paid = 3 * 0.001 * 5.0 * 20_000.0
    result = model.liquidation_price(
        target, wallet_balance=0.0, options=LiquidationOptions(funding=funding)
    )
    expected = (10_000.0 - paid - 5.0 * 20_000.0) / (5.0 * 0.004 - 5.0)
    assert result.price == pytest.approx(expected, rel=1e-12)
    # The same rate pays a short: its price must not move away from entry.
    short = leg(side=-1, quantity=5.0, isolated_wallet=10_000.0)
    with_receipt = model.liquidation_price(
        short, wallet_balance=0.0, options=LiquidationOptions(funding=funding)
    )
    assert with_receipt.price == model.liquidation_price(short, wallet_balance=0.0).price


def test_inverse_funding_is_paid_in_coin() -> None:
    funding = FundingEstimate(0.0005, 28_800.0, 28_800.0, 100.0, 0.0)
    assert funding.cost(1, 20_000.0, 20_000.0, inverse=True) == pytest.approx(0.0005)
    assert funding.cost(1, 2.0, 20_000.0, inverse=False) == pytest.approx(20.0)
    assert funding.cost(-1, 2.0, 20_000.0, inverse=False) == 0.0


def test_closing_fee_and_buffer_add_to_the_rate() -> None:
    target = leg(quantity=5.0, isolated_wallet=10_000.0)
    options = LiquidationOptions(closing_fee_rate=0.0005, safety_buffer_rate=0.002)
    result = get_model("binanceusdm").liquidation_price(target, wallet_balance=0.0, options=options)
    expected = (10_000.0 - 5.0 * 20_000.0) / (5.0 * (0.004 + 0.0025) - 5.0)
    assert result.price == pytest.approx(expected, rel=1e-12)


def test_okx_style_counts_at_least_the_standard_taker_fee() -> None:
    target = leg(quantity=5.0, isolated_wallet=10_000.0)
    okx = get_model("okx")
    forgot = okx.liquidation_price(target, wallet_balance=0.0)
    explicit = okx.liquidation_price(
        target, wallet_balance=0.0, options=LiquidationOptions(closing_fee_rate=0.0005)
    )
    assert forgot.price == explicit.price
    # LP = (EP - s*margin/Q) / (1 - s*(MMR + taker))
    assert forgot.price == pytest.approx((20_000.0 - 2_000.0) / (1 - 0.0045), rel=1e-12)
    vip = okx.liquidation_price(
        target, wallet_balance=0.0, options=LiquidationOptions(closing_fee_rate=0.001)
    )
    assert vip.price == pytest.approx((20_000.0 - 2_000.0) / (1 - 0.005), rel=1e-12)


def test_okx_inverse_formula() -> None:
    # LP = N*(s + MMR + fee) / (margin + s*N/EP), N = contracts * contract value.
    target = coin_leg(side=-1, quantity=10_000.0, isolated_wallet=0.1)
    result = get_model("okx").liquidation_price(target, wallet_balance=0.0)
    n = 10_000.0
    expected = n * (-1 + 0.004 + 0.0005) / (0.1 - n / 20_000.0)
    assert result.price == pytest.approx(expected, rel=1e-12)


def test_a_requirement_that_jumps_at_a_boundary_liquidates_at_the_boundary() -> None:
    # Without cum, tier 2 charges its whole notional at 20 %: a short whose tier-1 root would
    # lie past 1,000 of notional is liquidated the moment the notional reaches 1,000.
    table = TierTable.from_rows([(0.0, 1_000.0, 0.01, 50.0), (1_000.0, math.inf, 0.2, 2.0)])
    target = PositionLeg("X/USDT:USDT", -1, 1.0, 900.0, 900.0, table, isolated_wallet=150.0)
    okx = get_model("okx").liquidation_price(target, wallet_balance=0.0)
    assert okx.price == 1_000.0
    assert okx.tier == table.tiers[1]
    generic = type(get_model("generic"))(use_cum=False)  # type: ignore[call-arg]
    assert generic.liquidation_price(target, wallet_balance=0.0).price == pytest.approx(1_000.0)


def test_okx_ladders_in_contracts_key_the_tier_by_size() -> None:
    # 0.01 BTC per contract; tiers of 0-500 and 500-1000 contracts become 0-5 and 5-10 BTC.
    contracts = TierTable.from_rows(
        [(0.0, 500.0, 0.004, 100.0), (500.0, 1_000.0, 0.006, 75.0)], keyed_by="quantity"
    )
    table = contracts.scaled(0.01)
    assert [(t.min_notional, t.max_notional) for t in table] == [(0.0, 5.0), (5.0, 10.0)]
    target = leg(quantity=6.0, tiers=table, isolated_wallet=12_000.0)
    result = get_model("okx").liquidation_price(target, wallet_balance=0.0)
    assert result.tier == table.tiers[1]  # 6 BTC is tier 2 at any price
    assert result.price == pytest.approx((20_000.0 - 2_000.0) / (1 - 0.0065), rel=1e-12)
    with pytest.raises(ValueError, match="tiers do not fit"):
        leg(quantity=11.0, tiers=table)


def test_bybit_cross_is_answered_at_the_account_level() -> None:
    result = get_model("bybit").liquidation_price(leg(quantity=2.0), wallet_balance=5_000.0)
    generic = get_model("generic").liquidation_price(leg(quantity=2.0), wallet_balance=5_000.0)
    assert result == generic
    assert result.model == "generic"


def test_bybit_uses_the_entry_value_and_its_mm_deduction() -> None:
    table = TierTable.from_ccxt(
        [
            {"tier": 1, "minNotional": 0, "maxNotional": 2e6, "maintenanceMarginRate": 0.005,
             "maxLeverage": 100, "info": {"mmDeduction": "0"}},
            {"tier": 2, "minNotional": 2e6, "maxNotional": 4e6, "maintenanceMarginRate": 0.01,
             "maxLeverage": 50, "info": {"mmDeduction": "10000"}},
        ]
    )  # fmt: skip
    target = leg(quantity=150.0, tiers=table, isolated_wallet=300_000.0)  # 3,000,000 at entry
    result = get_model("bybit").liquidation_price(target, wallet_balance=0.0)
    maintenance = 3_000_000.0 * 0.01 - 10_000.0
    assert result.tier == table.tiers[1]
    assert result.price == pytest.approx(20_000.0 - (300_000.0 - maintenance) / 150.0, rel=1e-12)


def test_results_are_frozen_values() -> None:
    result = get_model("binanceusdm").liquidation_price(
        leg(isolated_wallet=500.0), wallet_balance=0
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.price = 1.0  # type: ignore[misc]


def test_a_ladder_for_another_market_is_refused() -> None:
    eth_ladder = TierTable.from_ccxt(BINANCE_ETHUSDT_TIERS.to_ccxt(symbol="ETH/USDT:USDT"))
    with pytest.raises(ValueError, match="tiers are ETH/USDT:USDT's ladder"):
        leg(tiers=eth_ladder)
    assert leg(symbol="ETH/USDT:USDT", tiers=eth_ladder).tiers is eth_ladder
