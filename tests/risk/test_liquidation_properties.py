"""Property tests: every model against the principle, on random positions and random ladders.

The principle (no venue formula): at the liquidation price P, for the legs of the target's
symbol moving with P and every other cross position frozen at its own mark,

    equity(P) = wallet + sum PnL(P) = sum (notional(P) * (MMR + extras) - cum) = requirement(P)

evaluated here independently of the library's solver, with the public tier look-up.

Tolerances are 1e-9 relative to the size of the money terms involved (wallet, entry values,
values at P): equity at P is a small difference of those, so that is the precision float
arithmetic can promise.
"""

from __future__ import annotations

import math

from hypothesis import assume, given
from hypothesis import strategies as st

from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import (
    GenericModel,
    LiquidationModel,
    LiquidationOptions,
    LiquidationPrice,
    PositionLeg,
    get_model,
)
from safeguard.risk._tiers import Tier, TierTable

from .strategies import Scenario, scenarios

REL = 1e-9


def tier_at(table: TierTable, notional: float) -> Tier:
    if notional >= table.tiers[-1].max_notional:
        return table.tiers[-1]  # the solver extrapolates the top tier past its cap
    return table.tier_for_notional(notional)


def pnl(leg: PositionLeg, price: float) -> float:
    if leg.inverse:
        return leg.side * leg.quantity * (1.0 / leg.entry_price - 1.0 / price)
    return leg.side * leg.quantity * (price - leg.entry_price)


def value(leg: PositionLeg, price: float) -> float:
    return leg.quantity / price if leg.inverse else leg.quantity * price


def requirement(leg: PositionLeg, price: float, extra: float, use_cum: bool) -> float:
    size = value(leg, price)
    tier = tier_at(leg.tiers, size)
    return size * (tier.maintenance_margin_rate + extra) - (tier.cum if use_cum else 0.0)


def account_at(
    scenario: Scenario, price: float, extra: float = 0.0, use_cum: bool = True
) -> tuple[float, float, float]:
    """(equity, requirement, scale) with the target's symbol at ``price``."""
    target = scenario.target
    if target.isolated_wallet is not None:
        wallet, others = target.isolated_wallet, ()
    else:
        wallet, others = scenario.wallet_balance, scenario.others
    equity = wallet + pnl(target, price)
    required = requirement(target, price, extra, use_cum)
    scale = abs(wallet) + value(target, target.entry_price) + value(target, price)
    for other in others:
        at = price if other.symbol == target.symbol else other.mark_price
        equity += pnl(other, at)
        required += requirement(other, at, extra, use_cum)
        scale += value(other, other.entry_price) + value(other, at)
    return equity, required, scale


def solve(model: LiquidationModel, scenario: Scenario, **options: float) -> LiquidationPrice:
    return model.liquidation_price(
        scenario.target,
        wallet_balance=scenario.wallet_balance,
        others=scenario.others,
        options=LiquidationOptions(**options),
    )


def closed_form_name(scenario: Scenario) -> str:
    return "binancecoinm" if scenario.target.inverse else "binanceusdm"


def assert_on_the_principle(
    scenario: Scenario, result: LiquidationPrice, extra: float = 0.0, use_cum: bool = True
) -> None:
    price = result.price
    assert price is not None
    assert price > 0.0
    mark = scenario.target.mark_price
    # It is the *first* such price moving from the mark: the account is above maintenance at
    # the mark and at every point on the way out.
    for step in range(1, 16):
        between = mark + (price - mark) * step / 16.0
        equity, required, scale = account_at(scenario, between, extra, use_cum)
        assert equity - required > -REL * scale, (between, equity, required)
    equity, required, scale = account_at(scenario, price, extra, use_cum)
    if not use_cum and abs(equity - required) > REL * scale:
        # Without cum the requirement jumps at a tier boundary, and the price may be that jump:
        # then it is met just past the boundary and not a hair before it.
        assert at_a_boundary(scenario, price)
        equity, required, _ = account_at(scenario, price + (price - mark) * 1e-9, extra, False)
        assert equity <= required
        equity, required, _ = account_at(scenario, price - (price - mark) * 1e-9, extra, False)
        assert equity > required
        return
    assert abs(equity - required) <= REL * scale, (equity, required, scale)


def at_a_boundary(scenario: Scenario, price: float) -> bool:
    return any(
        math.isclose(value(leg, price), tier.min_notional, rel_tol=1e-12)
        for leg in moving_legs(scenario)
        for tier in leg.tiers
    )


def moving_legs(scenario: Scenario) -> list[PositionLeg]:
    """The legs whose price is the target's: the target, and its hedge twin in cross."""
    target = scenario.target
    if target.isolated_wallet is not None:
        return [target]
    return [target] + [o for o in scenario.others if o.symbol == target.symbol]


def farther(price: float, than: float, mark: float) -> float:
    """How much further from the mark ``price`` lies than ``than`` (negative: closer)."""
    return abs(price - mark) - abs(than - mark)


def slope(scenario: Scenario, price: float, extra: float, use_cum: bool) -> float:
    """d(equity - requirement)/du at ``price``, u = P (linear) or 1/P (inverse)."""
    total = 0.0
    for leg in moving_legs(scenario):
        rate = tier_at(leg.tiers, value(leg, price)).maintenance_margin_rate + extra
        total += (
            -leg.quantity * (leg.side + rate) if leg.inverse else leg.quantity * (leg.side - rate)
        )
    return total


def assert_prices_agree(
    left: LiquidationPrice,
    right: LiquidationPrice,
    scenario: Scenario,
    extra: float = 0.0,
    use_cum: bool = True,
) -> None:
    """Same answer, to the precision the problem's conditioning allows (1e-9 of the money
    scale, divided by how fast equity - requirement moves with the price)."""
    assert left.already_liquidatable == right.already_liquidatable
    if left.price is None and right.price is None:
        return
    if left.price is None or right.price is None:
        # "No price" is the root sitting at u = 0 (a linear long at P = 0, an inverse short at
        # P = infinity). When equity there is zero to within rounding, one solve may see a
        # root a hair inside; it must then be at u = 0 to the same precision.
        priced = left if right.price is None else right
        price = priced.price
        assert price is not None
        target = scenario.target
        # The account's side: the leg's own, or in cross hedge mode the way the account leans.
        assert (priced.safe_side > 0) != target.inverse, (left, right)
        _, _, scale = account_at(scenario, price, extra, use_cum)
        u = 1.0 / price if target.inverse else price
        assert u <= REL * scale / abs(slope(scenario, price, extra, use_cum)), (left, right)
        return
    _, _, scale = account_at(scenario, left.price, extra, use_cum)
    speed = abs(slope(scenario, left.price, extra, use_cum)) or math.inf
    if scenario.target.inverse:
        u_left, u_right = 1.0 / left.price, 1.0 / right.price
        assert abs(u_left - u_right) <= REL * (scale / speed + u_left), (left, right)
    else:
        assert abs(left.price - right.price) <= REL * (scale / speed + left.price), (left, right)


ALL_SHAPES = st.one_of(
    scenarios(inverse=False, cross=False),
    scenarios(inverse=False, cross=True),
    scenarios(inverse=False, cross=True, hedge=True),
    scenarios(inverse=True, cross=False),
    scenarios(inverse=True, cross=True),
    scenarios(inverse=True, cross=True, hedge=True),
)


@given(ALL_SHAPES)
def test_closed_form_price_satisfies_the_principle(scenario: Scenario) -> None:
    result = solve(get_model(closed_form_name(scenario)), scenario)
    equity, required, _ = account_at(scenario, scenario.target.mark_price)
    if equity - required <= 0.0:
        assert result.already_liquidatable
        return
    assume(result.price is not None)
    assert not result.already_liquidatable
    assert_on_the_principle(scenario, result)
    # The tier reported is the one containing the target's notional at the price.
    assert result.tier is not None
    size = value(scenario.target, result.price or 0.0)
    assert result.tier.min_notional * (1 - REL) <= size
    assert (
        size <= result.tier.max_notional * (1 + REL)
        or result.tier is scenario.target.tiers.tiers[-1]
    )


@given(ALL_SHAPES, st.floats(0.0, 0.002), st.floats(0.0, 0.01))
def test_closed_forms_agree_with_the_numeric_solve(
    scenario: Scenario, fee: float, buffer: float
) -> None:
    closed = solve(get_model(closed_form_name(scenario)), scenario, closing_fee_rate=fee,
                   safety_buffer_rate=buffer)  # fmt: skip
    numeric = solve(get_model("generic"), scenario, closing_fee_rate=fee, safety_buffer_rate=buffer)
    assert_prices_agree(closed, numeric, scenario, fee + buffer)
    if numeric.price is not None and not numeric.already_liquidatable:
        assert_on_the_principle(scenario, numeric, fee + buffer)


@given(ALL_SHAPES, st.sampled_from(["okx", "gate", "bitget"]), st.floats(0.0, 0.002))
def test_okx_style_agrees_with_the_numeric_solve_on_its_own_requirement(
    scenario: Scenario, venue: str, fee: float
) -> None:
    # These venues charge the whole position at its tier's rate (no cum) plus the closing fee.
    model = get_model(venue)
    result = solve(model, scenario, closing_fee_rate=fee)
    floor = {"okx": 0.0005, "gate": 0.0005, "bitget": 0.0006}[venue]
    used = max(fee, floor)
    numeric = GenericModel(use_cum=False).liquidation_price(
        scenario.target,
        wallet_balance=scenario.wallet_balance,
        others=scenario.others,
        options=LiquidationOptions(closing_fee_rate=used),
    )
    assert_prices_agree(result, numeric, scenario, used, use_cum=False)
    if result.price is not None and not result.already_liquidatable:
        assert_on_the_principle(scenario, result, used, use_cum=False)


SINGLE = st.one_of(
    scenarios(inverse=False, cross=False, at_entry=True),
    scenarios(inverse=False, cross=True, at_entry=True),
    scenarios(inverse=True, cross=False, at_entry=True),
    scenarios(inverse=True, cross=True, at_entry=True),
)


@given(SINGLE, st.sampled_from(["closed", "generic", "okx", "bybit"]))
def test_a_long_liquidates_below_entry_and_a_short_above(scenario: Scenario, kind: str) -> None:
    # Positions without a hedge twin, priced at entry (pre-trade).
    assume(kind != "bybit" or scenario.target.isolated_wallet is not None)
    name = closed_form_name(scenario) if kind == "closed" else kind
    result = solve(get_model(name), scenario)
    assume(not result.already_liquidatable)
    target = scenario.target
    if result.price is None:
        # Only a fully collateralised linear long or inverse short has no liquidation price.
        assert (target.side > 0) != target.inverse
        return
    assert (result.price - target.entry_price) * target.side < 0.0


@given(ALL_SHAPES, st.floats(0.01, 2.0), st.sampled_from(["closed", "generic", "okx", "bybit"]))
def test_more_collateral_moves_the_price_away_from_entry(
    scenario: Scenario, more: float, kind: str
) -> None:
    assume(kind != "bybit" or scenario.target.isolated_wallet is not None)
    name = closed_form_name(scenario) if kind == "closed" else kind
    model = get_model(name)
    before = solve(model, scenario)
    assume(before.price is not None and not before.already_liquidatable)
    base = scenario.target.isolated_wallet or scenario.wallet_balance
    after = solve(model, scenario.with_more_collateral(more * base + 1e-6))
    assert not after.already_liquidatable
    if after.price is not None:
        assert before.price is not None
        # Away from the mark, on whichever side the account's (or the leg's) price lies.
        moved = farther(after.price, before.price, scenario.target.mark_price)
        if kind == "okx" and at_a_boundary(scenario, before.price):
            assert moved >= 0.0  # a jump in the requirement can hold the price at the boundary
        else:
            assert moved > 0.0


@given(ALL_SHAPES)
def test_fees_and_buffers_only_bring_the_price_closer(scenario: Scenario) -> None:
    model = get_model(closed_form_name(scenario))
    plain = solve(model, scenario)
    assume(plain.price is not None and not plain.already_liquidatable)
    careful = solve(model, scenario, closing_fee_rate=0.0005, safety_buffer_rate=0.005)
    if careful.already_liquidatable:
        return
    assert careful.price is not None
    assert plain.price is not None
    assert farther(careful.price, plain.price, scenario.target.mark_price) < 0.0


@given(scenarios(inverse=False, cross=False), scenarios(inverse=True, cross=False))
def test_bybit_price_meets_maintenance_valued_at_entry(linear: Scenario, inverse: Scenario) -> None:
    for scenario in (linear, inverse):
        target = scenario.target
        result = solve(get_model("bybit"), scenario)
        if result.price is None or result.already_liquidatable:
            continue
        entry_value = value(target, target.entry_price)
        tier = tier_at(target.tiers, entry_value)
        maintenance = entry_value * tier.maintenance_margin_rate - tier.cum
        assert target.isolated_wallet is not None
        equity = target.isolated_wallet + pnl(target, result.price)
        assert abs(equity - maintenance) <= REL * (target.isolated_wallet + 2 * entry_value)
        assert result.tier == tier


@given(
    ALL_SHAPES,
    st.floats(-0.003, 0.003),
    st.floats(0.0, 3 * 86_400.0),
    st.sampled_from([3_600.0, 4 * 3_600.0, 8 * 3_600.0]),
)
def test_funding_paid_brings_the_price_closer_and_funding_received_changes_nothing(
    scenario: Scenario, rate: float, horizon: float, interval: float
) -> None:
    model = get_model(closed_form_name(scenario))
    plain = solve(model, scenario)
    assume(plain.price is not None and not plain.already_liquidatable)
    funding = FundingEstimate(rate, interval, horizon, 1_000.0 + interval / 3.0, 1_000.0)
    result = model.liquidation_price(
        scenario.target,
        wallet_balance=scenario.wallet_balance,
        others=scenario.others,
        options=LiquidationOptions(funding=funding),
    )
    pays = [leg for leg in moving_legs(scenario) if leg.side * rate > 0.0]
    if not pays or funding.payments == 0:
        assert result == plain  # receipts are never credited
        return
    if result.already_liquidatable or result.price is None or plain.price is None:
        return
    assert farther(result.price, plain.price, scenario.target.mark_price) <= 0.0
    # The whole shift is the payments coming off the wallet: the principle holds with them.
    paid = sum(
        funding.cost(leg.side, leg.quantity, leg.mark_price, inverse=leg.inverse) for leg in pays
    )
    equity, required, scale = account_at(scenario, result.price)
    assert abs(equity - paid - required) <= REL * (scale + paid)


HEDGED = st.one_of(
    scenarios(inverse=False, cross=True, hedge=True),
    scenarios(inverse=True, cross=True, hedge=True),
)


@given(HEDGED, st.sampled_from(["closed", "generic"]))
def test_both_cross_hedge_legs_get_the_accounts_price_and_none_is_nearer_the_other_way(
    scenario: Scenario, kind: str
) -> None:
    target = scenario.target
    twin = next(o for o in scenario.others if o.symbol == target.symbol)
    flipped = Scenario(
        twin,
        scenario.wallet_balance,
        (*(o for o in scenario.others if o is not twin), target),
    )
    model = get_model(closed_form_name(scenario) if kind == "closed" else kind)
    mine, theirs = solve(model, scenario), solve(model, flipped)
    assert (mine.price, mine.direction, mine.already_liquidatable, mine.reason) == (
        theirs.price,
        theirs.direction,
        theirs.already_liquidatable,
        theirs.reason,
    )
    if mine.price is None or mine.already_liquidatable:
        return
    assert_on_the_principle(scenario, mine)
    # The other way from the mark, the account is above maintenance at least as far out.
    mark = target.mark_price
    for step in range(1, 17):
        mirror = mark - (mine.price - mark) * step / 16.0
        if mirror <= 0.0:
            break
        equity, required, scale = account_at(scenario, mirror)
        assert equity - required > -REL * scale, (mirror, equity, required)


@given(ALL_SHAPES, st.sampled_from(["closed", "generic", "okx", "bybit"]))
def test_the_price_lies_on_the_side_of_the_mark_its_direction_says(
    scenario: Scenario, kind: str
) -> None:
    assume(kind != "bybit" or scenario.target.isolated_wallet is not None)
    model = get_model(closed_form_name(scenario) if kind == "closed" else kind)
    result = solve(model, scenario)
    if result.price is None:
        assert result.direction == 0
        return
    mark = scenario.target.mark_price
    if result.price != mark:
        assert (result.price - mark) * result.direction > 0.0
    moving = [scenario.target, *(o for o in scenario.others if o.symbol == scenario.target.symbol)]
    if scenario.target.isolated_wallet is not None or len(moving) == 1:
        assert result.safe_side == scenario.target.side  # one leg: its own side
