"""The pre-trade verdict: each check fires, and passes at its boundary.

Every boundary is taken from the verdict's own numbers on a first run (the order's notional,
the stop's distance from liquidation, ...), then the limit is set exactly at it (passes) and
just inside it (fires). The numbers themselves are checked against the principle
``equity(P) = requirement(P)`` computed here by hand.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from safeguard._codes import Code
from safeguard._errors import OrderDenied
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import OrderIntent
from safeguard.risk._outcome import Decision
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL
from safeguard.risk._tiers import BINANCE_ETHUSDT_TIERS

from .verdict_cases import LONG, NOW, account, codes, denied, intent, market, rules, run

ETH = PositionLeg(
    symbol="ETH/USDT:USDT",
    side=1,
    quantity=10.0,
    entry_price=3_000.0,
    mark_price=3_100.0,
    tiers=BINANCE_ETHUSDT_TIERS,
)


def test_calm_sample_order_is_allowed_and_its_numbers_obey_the_principle() -> None:
    verdict = run()
    assert verdict.decision is Decision.ALLOW
    assert verdict.findings == ()
    cost = verdict.costing
    assert cost is not None
    book = market().book
    assert book is not None
    walk = book.walk("buy", 0.5)
    assert cost.expected_entry == pytest.approx(walk.average_price)
    assert cost.entry_fee == pytest.approx(0.5 * cost.expected_entry * 0.0005)
    assert cost.initial_margin == pytest.approx(0.5 * cost.expected_entry / 10)
    assert cost.expected_funding == pytest.approx(0.0001 * 0.5 * 60_000.0)  # one payment in 8 h
    # Isolated: equity at the liquidation price equals maintenance + closing fee.
    lp = cost.liquidation_price
    assert lp is not None
    equity = cost.initial_margin - cost.expected_funding + 0.5 * (lp - cost.expected_entry)
    requirement = 0.5 * lp * (0.004 + 0.0005)
    assert equity == pytest.approx(requirement, rel=1e-9)
    # The stop: trigger less slippage (policy 10 bps + the book walk), less the taker fee.
    assert cost.stop_fill_price is not None
    assert cost.stop_effective_price == pytest.approx(cost.stop_fill_price * (1 - 0.0005))
    assert cost.stop_distance_pct == pytest.approx((cost.stop_effective_price - lp) / lp * 100)
    assert cost.stop_distance_vol == pytest.approx(cost.stop_distance_pct / 100 / 0.01)
    assert cost.maintenance_margin == pytest.approx(30_000.0 * 0.004)


def test_verdict_serialises_and_the_boundary_raises_order_denied() -> None:
    allowed = run()
    json.dumps(allowed.to_dict())
    allowed.raise_if_denied()  # nothing to raise
    refused = run(intent(leverage=25.0))
    with pytest.raises(OrderDenied) as caught:
        refused.raise_if_denied()
    assert caught.value.code == Code.LEVERAGE_ABOVE_POLICY
    assert caught.value.verdict is refused


# --- stop against liquidation -------------------------------------------------------------


def test_stop_beyond_liquidation_fires_with_the_numbers_in_the_sentence() -> None:
    lp = run().costing.liquidation_price  # type: ignore[union-attr]
    assert lp is not None
    verdict = run(intent(stop_price=round(lp * 1.004, 1)))
    finding = next(f for f in verdict.findings if f.code == Code.STOP_BEYOND_LIQUIDATION)
    assert verdict.decision is Decision.DENY
    assert "inside liquidation" in finding.message
    assert "policy needs 1 %" in finding.message
    assert finding.values["distance_pct"] < 1.0  # type: ignore[operator]
    beyond = run(intent(stop_price=round(lp * 0.99, 1)))
    assert Code.STOP_BEYOND_LIQUIDATION in beyond.codes
    assert any("beyond liquidation" in f.message for f in beyond.findings)


def test_stop_buffer_passes_exactly_at_the_policy_boundary() -> None:
    distance = run().costing.stop_distance_pct  # type: ignore[union-attr]
    assert distance is not None
    assert run(min_liquidation_buffer_pct=distance).decision is Decision.ALLOW
    assert denied(run(min_liquidation_buffer_pct=distance * 1.0001)) == {"STOP_BEYOND_LIQUIDATION"}


def test_short_stop_is_checked_above_liquidation() -> None:
    verdict = run(intent(side="sell", stop_price=61_200.0))
    cost = verdict.costing
    assert cost is not None
    assert cost.liquidation_price is not None
    assert cost.liquidation_price > 61_200.0
    assert verdict.decision is Decision.ALLOW
    lp = cost.liquidation_price
    close = run(intent(side="sell", stop_price=round(lp * 0.996, 1)))
    assert "STOP_BEYOND_LIQUIDATION" in denied(close)


def test_stop_required_for_new_exposure_but_not_for_a_reduction() -> None:
    assert denied(run(intent(stop_price=None))) == {"STOP_REQUIRED"}
    assert run(intent(stop_price=None), require_stop=False).decision is Decision.ALLOW
    held = account(positions=(LONG,), available_balance=4_000.0)
    for reduce_only in (True, False):
        order = intent(side="sell", stop_price=None, reduce_only=reduce_only)
        assert run(order, acct=held).decision is Decision.ALLOW


def test_stop_on_the_profit_side_of_the_entry_or_already_triggered() -> None:
    assert "STOP_WRONG_SIDE" in denied(run(intent(stop_price=60_100.0)))  # above mark and entry
    # A limit buy below the mark: a stop between the limit and the mark is above the entry.
    limit = intent(type="limit", price=59_000.0, stop_price=59_500.0)
    verdict = run(limit)
    assert "STOP_WRONG_SIDE" in denied(verdict)
    assert any("profit side" in f.message for f in verdict.findings)
    assert run(intent(type="limit", price=59_000.0, stop_price=58_800.0)).allowed


def test_stop_watching_last_price_is_compared_in_mark_terms() -> None:
    calm = run(intent(stop_trigger="last")).costing
    rich = run(intent(stop_trigger="last"), market(last=60_300.0)).costing
    assert calm is not None
    assert rich is not None
    # Last 300 above the mark: when last hits the stop, the mark is ~300 lower.
    assert rich.stop_effective_price == pytest.approx(calm.stop_effective_price - 300.0)  # type: ignore[operator]


def test_liquidation_at_entry_is_denied() -> None:
    # 150x at tier 1 leaves 0.67 % of margin; MMR 0.4 % + fee 0.05 % + buffer 0.5 % exceeds it.
    order = intent(leverage=150.0, stop_price=None)
    base = {"require_stop": False, "max_leverage": None}
    assert "LIQUIDATION_AT_ENTRY" in denied(run(order, liquidation_safety_buffer_pct=0.5, **base))
    assert run(order, liquidation_safety_buffer_pct=0.0, **base).allowed


# --- leverage -----------------------------------------------------------------------------


def test_leverage_above_policy_fires_above_and_passes_at_the_cap() -> None:
    assert denied(run(intent(leverage=20.5))) == {"LEVERAGE_ABOVE_POLICY"}
    assert "LEVERAGE_ABOVE_POLICY" not in codes(run(intent(leverage=20.0)))


def test_leverage_above_the_tier_cap_at_this_notional() -> None:
    # 6 BTC at 60,000 = 360,000 notional: tier 2, max 100x.
    base = {"require_stop": False, "max_leverage": None}
    over = run(intent(amount=6.0, leverage=101.0, stop_price=None), **base)
    assert denied(over) >= {"LEVERAGE_ABOVE_TIER"}
    finding = next(f for f in over.findings if f.code == Code.LEVERAGE_ABOVE_TIER)
    assert finding.values["tier"] == 2
    at_cap = run(intent(amount=6.0, leverage=100.0, stop_price=None), **base)
    assert "LEVERAGE_ABOVE_TIER" not in codes(at_cap)


# --- notional, orders, concentration, margin ---------------------------------------------


def test_notional_per_order_boundary() -> None:
    notional = run().costing.order_notional  # type: ignore[union-attr]
    assert run(max_notional_per_order=notional).decision is Decision.ALLOW
    assert denied(run(max_notional_per_order=notional - 0.01)) == {"NOTIONAL_PER_ORDER"}


def test_notional_per_position_counts_what_is_already_held() -> None:
    assert run(max_notional_per_position=30_000.0).decision is Decision.ALLOW
    assert denied(run(max_notional_per_position=29_999.0)) == {"NOTIONAL_PER_POSITION"}
    held = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=0.5,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
        isolated_wallet=3_000.0,
    )
    with_leg = account(positions=(held,), available_balance=7_000.0)
    assert denied(run(acct=with_leg, max_notional_per_position=59_999.0)) == {
        "NOTIONAL_PER_POSITION"
    }
    assert run(acct=with_leg, max_notional_per_position=60_000.0).allowed


def test_notional_per_account_adds_other_symbols() -> None:
    acct = account(positions=(ETH,), available_balance=9_000.0)
    total = 30_000.0 + 10 * 3_100.0
    assert run(acct=acct, max_notional_per_account=total).allowed
    assert denied(run(acct=acct, max_notional_per_account=total - 1)) == {"NOTIONAL_PER_ACCOUNT"}


def test_open_order_count_includes_the_stop_and_a_resting_limit() -> None:
    # A market order with a stop adds one resting order; a limit order with a stop adds two.
    acct = account(open_orders=49, available_balance=10_000.0)
    assert run(acct=acct, max_open_orders=50).allowed
    assert denied(run(acct=acct, max_open_orders=49)) == {"OPEN_ORDER_COUNT"}
    limit = intent(type="limit", price=59_990.0)
    assert denied(run(limit, acct=acct, max_open_orders=50)) == {"OPEN_ORDER_COUNT"}
    assert run(limit, acct=acct, max_open_orders=51).allowed


def test_concentration_boundary() -> None:
    order = intent(amount=0.1)
    share = run(order, max_concentration=0.0).findings[0].values["share"]
    assert isinstance(share, float)
    assert run(order, max_concentration=share).allowed
    assert denied(run(order, max_concentration=share * 0.999)) == {"CONCENTRATION"}


def test_insufficient_margin_boundary() -> None:
    cost = run().costing
    assert cost is not None
    needed = cost.initial_margin + cost.entry_fee
    assert run(acct=account(wallet_balance=needed)).allowed
    short = run(acct=account(wallet_balance=needed - 0.01))
    assert "INSUFFICIENT_MARGIN" in denied(short)


def test_market_order_larger_than_the_book_is_denied() -> None:
    book = market().book
    assert book is not None
    depth = book.depth("buy")
    big = intent(amount=math.ceil(depth) + 1.0, leverage=20.0, stop_price=None)
    verdict = run(big, acct=account(wallet_balance=1e7), require_stop=False, price_band_pct=None)
    assert "INSUFFICIENT_DEPTH" in denied(verdict)
    fits = intent(amount=10.0, leverage=20.0, stop_price=None)
    assert run(fits, acct=account(wallet_balance=1e7), require_stop=False).allowed


# --- order shape and market rules ----------------------------------------------------------


def test_limit_price_band_boundary() -> None:
    assert run(intent(type="limit", price=63_000.0)).allowed  # exactly 5 % above the mark
    assert denied(run(intent(type="limit", price=63_000.1))) == {"PRICE_OUTSIDE_BAND"}


def test_market_order_whose_walk_leaves_the_band_is_denied() -> None:
    order = intent(amount=10.0, stop_price=None)
    verdict = run(order, acct=account(wallet_balance=1e6), require_stop=False, price_band_pct=0.01)
    assert denied(verdict) == {"PRICE_OUTSIDE_BAND"}


def test_tick_and_step() -> None:
    assert denied(run(intent(type="limit", price=60_000.05))) == {"TICK_SIZE"}
    assert run(intent(type="limit", price=60_000.1)).allowed
    assert denied(run(intent(stop_price=58_800.05))) == {"TICK_SIZE"}
    assert denied(run(intent(amount=0.5005))) == {"STEP_SIZE"}
    assert run(intent(amount=0.501)).allowed


def test_min_and_max_quantity_and_min_notional() -> None:
    snap = market(rules=rules(min_qty=0.01, max_qty=1.0, min_notional=100.0))
    assert denied(run(intent(amount=0.009), snap)) >= {"MIN_QUANTITY"}
    assert "MIN_QUANTITY" not in codes(run(intent(amount=0.01), snap))
    assert denied(run(intent(amount=1.001), snap)) == {"MAX_QUANTITY"}
    assert run(intent(amount=1.0), snap).allowed
    # 0.002 x 60,000 = 120 passes a 120 minimum; 119.99 would not.
    assert run(intent(amount=0.002), market(rules=rules(min_notional=120.0))).allowed
    assert denied(run(intent(amount=0.002), market(rules=rules(min_notional=120.01)))) == {
        "MIN_NOTIONAL"
    }


def test_reduce_only_that_would_increase_or_flip() -> None:
    assert denied(run(intent(reduce_only=True))) == {"REDUCE_ONLY_WOULD_INCREASE"}
    short = PositionLeg(
        symbol=SYMBOL,
        side=-1,
        quantity=0.5,
        entry_price=61_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
    )
    acct = account(positions=(short,), available_balance=9_000.0, wallet_balance=10_000.0)
    closing = intent(reduce_only=True, stop_price=None, margin_mode="cross")
    assert run(closing, acct=acct).allowed
    flip = intent(amount=0.501, reduce_only=True, stop_price=None, margin_mode="cross")
    assert denied(run(flip, acct=acct)) == {"REDUCE_ONLY_WOULD_FLIP"}
    adding = intent(side="sell", reduce_only=True, stop_price=None, margin_mode="cross")
    assert "REDUCE_ONLY_WOULD_INCREASE" in denied(run(adding, acct=acct))


def test_post_only_that_would_take() -> None:
    # Best bid 59,999.9, best ask 60,000.1.
    assert denied(run(intent(type="limit", price=60_000.1, post_only=True))) == {
        "POST_ONLY_WOULD_TAKE"
    }
    resting = run(intent(type="limit", price=60_000.0, post_only=True))
    assert resting.allowed
    assert resting.costing is not None
    assert resting.costing.entry_fee_rate == pytest.approx(0.0002)  # maker


def test_margin_mode_must_match_the_open_position() -> None:
    cross_leg = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=0.1,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
    )
    acct = account(positions=(cross_leg,), available_balance=9_000.0)
    assert denied(run(intent(margin_mode="isolated"), acct=acct)) == {"INVALID_INPUT"}
    assert run(intent(margin_mode="cross"), acct=acct).allowed


def test_unknown_symbol() -> None:
    verdict = run(intent(symbol="ETH/USDT:USDT"))
    assert denied(verdict) == {"UNKNOWN_SYMBOL"}
    assert verdict.max_safe_amount == 0.0


# --- cross margin, funding ----------------------------------------------------------------


def test_cross_liquidation_uses_the_wallet_and_the_other_positions() -> None:
    alone = run(intent(margin_mode="cross")).costing
    acct = account(positions=(ETH,), available_balance=9_000.0)
    with_eth = run(intent(margin_mode="cross"), acct=acct).costing
    assert alone is not None
    assert with_eth is not None
    assert alone.liquidation_price is not None
    assert with_eth.liquidation_price is not None
    # ETH is 1,000 in profit with ~160 maintenance: more cushion, a lower liquidation price.
    assert with_eth.liquidation_price < alone.liquidation_price
    # Cross with 10,000 behind 0.5 BTC sits much further away than 10x isolated.
    isolated = run().costing
    assert isolated is not None
    assert alone.liquidation_price < isolated.liquidation_price  # type: ignore[operator]


def test_funding_to_pay_over_the_horizon_moves_liquidation_closer() -> None:
    none = run(funding_horizon_s=0.0).costing
    day = run(funding_horizon_s=24 * 3600.0, liquidation_safety_buffer_pct=0.0).costing
    assert none is not None
    assert day is not None
    assert day.expected_funding == pytest.approx(3 * 0.0001 * 30_000.0)
    assert day.liquidation_price > none.liquidation_price  # type: ignore[operator]
    # Funding the short would receive is reported but never credited.
    short = run(intent(side="sell", stop_price=61_200.0), funding_horizon_s=24 * 3600.0)
    assert short.costing is not None
    assert short.costing.expected_funding < 0


def test_safety_buffer_and_closing_fee_each_move_liquidation_toward_the_mark() -> None:
    plain = run(include_closing_fee=False).costing
    with_fee = run().costing
    buffered = run(liquidation_safety_buffer_pct=0.5).costing
    lps = [c.liquidation_price for c in (plain, with_fee, buffered)]  # type: ignore[union-attr]
    assert lps[0] < lps[1] < lps[2]  # type: ignore[operator]


def test_now_is_an_input() -> None:
    later = NOW + 10.0
    assert "STALE_MARKET_DATA" in denied(run(now=later))
    assert run(now=NOW).allowed


# --- reductions, hedge mode, formatting ---------------------------------------------------


def test_a_thin_stop_buffer_only_warns_an_order_that_reduces() -> None:
    held = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=1.0,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
        isolated_wallet=3_000.0,  # 20x: liquidation near 57,300
    )
    acct = account(positions=(held,), available_balance=7_000.0)
    lp = run(intent(side="sell", amount=0.5, stop_price=None), acct=acct).costing
    assert lp is not None
    assert lp.liquidation_price is not None
    tight = intent(side="sell", amount=0.5, stop_price=round(lp.liquidation_price * 1.003, 1))
    verdict = run(tight, acct=acct)
    assert verdict.decision is Decision.WARN
    assert {str(f.code) for f in verdict.warnings} == {"STOP_BEYOND_LIQUIDATION"}


def test_hedge_mode_legs_in_the_symbol_are_refused() -> None:
    long_leg = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=0.1,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
        position_side="LONG",
    )
    verdict = run(acct=account(positions=(long_leg,), available_balance=9_000.0))
    assert denied(verdict) == {"INVALID_INPUT"}
    assert "hedge-mode" in verdict.findings[0].message


def test_numbers_read_like_a_trader_wrote_them() -> None:
    from safeguard.risk._outcome import fmt, pct

    assert fmt(57_850.0) == "57,850"
    assert fmt(57_850.256) == "57,850.26"
    assert fmt(3.14159) == "3.1416"
    assert fmt(0.000123456789) == "0.000123457"
    assert pct(0.3) == "0.3"
    assert pct(1.0) == "1"
    assert pct(-0.001) == "0"


def test_every_finding_names_a_stable_code_and_carries_its_numbers() -> None:
    verdict = run(
        intent(leverage=30.0, amount=0.5005, type="limit", price=70_000.0),
        max_notional_per_order=1_000.0,
    )
    assert denied(verdict) >= {
        "LEVERAGE_ABOVE_POLICY",
        "STEP_SIZE",
        "PRICE_OUTSIDE_BAND",
        "NOTIONAL_PER_ORDER",
    }
    for finding in verdict.findings:
        assert str(finding.code) == str(finding.code).upper()
        assert isinstance(finding.code, Code)
        assert finding.values
        assert any(ch.isdigit() for ch in finding.message)
    assert json.loads(json.dumps(verdict.to_dict()))["decision"] == "DENY"


def test_stop_side_boundary_is_the_mark_for_a_market_buy() -> None:
    # Best bid 59,999.9: a stop one tick under the mark is still a stop; at the mark it fires.
    assert run(intent(stop_price=59_999.9)).allowed
    at_mark = run(intent(stop_price=60_000.0))
    assert "STOP_WRONG_SIDE" in denied(at_mark)
    assert any("trigger at once" in f.message for f in at_mark.findings)


def test_market_order_exactly_the_visible_depth_passes_one_step_more_does_not() -> None:
    book = market().book
    assert book is not None
    depth = round(book.depth("buy"), 3)
    base = {"require_stop": False, "max_leverage": None}
    rich = account(wallet_balance=1e8)
    order = intent(amount=depth, stop_price=None, leverage=20.0)
    assert "INSUFFICIENT_DEPTH" not in codes(run(order, acct=rich, **base))
    more = intent(amount=round(depth + 0.001, 3), stop_price=None, leverage=20.0)
    assert "INSUFFICIENT_DEPTH" in denied(run(more, acct=rich, **base))


# --- the principle, checked without any venue formula -------------------------------------


MARK = 60_000.0  # the sample market's mark


@settings(max_examples=120, deadline=None)
@given(
    side=st.sampled_from(["buy", "sell"]),
    amount=st.integers(min_value=2, max_value=40_000).map(lambda n: n / 1000),
    # From 2x: a long at 1x isolated cannot be liquidated (no price where equity meets
    # maintenance), which the property has nothing to say about.
    leverage=st.integers(min_value=2, max_value=75),
    mode=st.sampled_from(["isolated", "cross"]),
    # The wallet as a share of the order's notional: from enough to pay the entry fee to half
    # the notional, so a cross position always has a liquidation price to check.
    wallet_share=st.floats(min_value=0.002, max_value=0.5),
    horizon_h=st.sampled_from([0.0, 8.0, 24.0, 72.0]),
    closing_fee=st.booleans(),
    buffer_pct=st.sampled_from([0.0, 0.1, 0.5]),
    rate=st.floats(min_value=-0.003, max_value=0.003),
)
def test_the_verdicts_liquidation_price_is_where_equity_meets_maintenance(
    side: str,
    amount: float,
    leverage: int,
    mode: str,
    wallet_share: float,
    horizon_h: float,
    closing_fee: bool,
    buffer_pct: float,
    rate: float,
) -> None:
    wallet = wallet_share * amount * MARK
    order = intent(
        side=side, amount=amount, leverage=float(leverage), margin_mode=mode, stop_price=None
    )
    verdict = run(
        order,
        market(funding_rate=rate),
        account(wallet_balance=wallet),
        require_stop=False,
        max_leverage=None,
        funding_horizon_s=horizon_h * 3600.0,
        include_closing_fee=closing_fee,
        liquidation_safety_buffer_pct=buffer_pct,
    )
    cost = verdict.costing
    assert cost is not None
    assert cost.liquidation_price is not None  # every generated order reaches the property
    assert wallet - cost.entry_fee >= 0
    event(f"{mode}, liquidation tier {cost.tier}")
    lp = cost.liquidation_price
    s = 1 if side == "buy" else -1
    entry = cost.expected_entry
    # Funding the position expects to pay comes off its margin; receipts are never credited.
    paid = max(cost.expected_funding, 0.0)
    margin = amount * entry / leverage if mode == "isolated" else wallet - cost.entry_fee
    equity = margin - paid + s * amount * (lp - entry)
    tier = BTCUSDT_TIERS_12.tier_for_notional(amount * lp)
    extra = (0.0005 if closing_fee else 0.0) + buffer_pct / 100
    requirement = amount * lp * (tier.maintenance_margin_rate + extra) - tier.cum
    assert equity == pytest.approx(requirement, rel=1e-7, abs=1e-6 * amount * lp)


_HELD = st.tuples(st.sampled_from([1, -1]), st.integers(min_value=1, max_value=3000)).map(
    lambda t: t[0] * t[1] / 1000
)
# What is held after the order: long or short, at least 0.5 (a position, not a rounding rest).
_AFTER = st.integers(min_value=500, max_value=3000).map(lambda n: n / 1000)


@settings(max_examples=100, deadline=None)
@given(
    held=_HELD,
    held_entry=st.floats(min_value=57_000.0, max_value=63_000.0),
    after=st.tuples(st.sampled_from([1, -1]), _AFTER).map(lambda t: t[0] * t[1]),
    margin_share=st.floats(min_value=0.01, max_value=0.4),
)
def test_cross_liquidation_after_adding_reducing_or_flipping_meets_the_principle(
    held: float, held_entry: float, after: float, margin_share: float
) -> None:
    # The order is what takes the position from ``held`` to ``after`` (adding, reducing or
    # flipping); the wallet covers any loss the order realises, the fees, and then a share of
    # the position left, so the wallet is never emptied by the order itself. The held entry
    # stays within 5% of the mark, so a realised gain cannot leave the position unable to be
    # liquidated: every example reaches the property.
    if math.isclose(after, held):
        after = -after  # same position before and after is no order: flip it instead
    side = "buy" if after > held else "sell"
    amount = round(abs(after - held), 3)
    closed = min(amount, abs(held)) if (after - held) * held < 0 else 0.0
    realised_at_mark = (1 if held > 0 else -1) * closed * (MARK - held_entry)
    cushion = 0.01 * closed * MARK + 0.002 * amount * MARK  # slippage from the mark, fees
    wallet = max(0.0, -realised_at_mark) + cushion + margin_share * abs(after) * MARK
    leg = PositionLeg(
        symbol=SYMBOL,
        side=1 if held > 0 else -1,
        quantity=abs(held),
        entry_price=held_entry,
        mark_price=MARK,
        tiers=BTCUSDT_TIERS_12,
    )
    acct = account(wallet_balance=wallet, positions=(leg,), available_balance=wallet)
    order = intent(side=side, amount=amount, margin_mode="cross", stop_price=None, leverage=20.0)
    verdict = run(order, acct=acct, require_stop=False, funding_horizon_s=0.0)
    cost = verdict.costing
    assert cost is not None
    direction = 1 if side == "buy" else -1
    assert cost.position_after == pytest.approx(after, abs=1e-9)
    assert cost.liquidation_price is not None  # every generated order reaches the property
    fill = cost.expected_entry
    if held * direction > 0:  # adding: the entry averages
        event("add")
        entry = (abs(held) * held_entry + amount * fill) / abs(after)
        realised = 0.0
    else:
        closed = min(amount, abs(held))
        realised = (1 if held > 0 else -1) * closed * (fill - held_entry)
        entry = held_entry if abs(after) < abs(held) and after * held > 0 else fill
        event("reduce" if after * held > 0 else "flip")
    assert wallet - cost.entry_fee + realised >= 0
    lp = cost.liquidation_price
    s = 1 if after > 0 else -1
    equity = wallet - cost.entry_fee + realised + s * abs(after) * (lp - entry)
    tier = BTCUSDT_TIERS_12.tier_for_notional(abs(after) * lp)
    requirement = abs(after) * lp * (tier.maintenance_margin_rate + 0.0005) - tier.cum
    assert equity == pytest.approx(requirement, rel=1e-7, abs=1e-6 * abs(after) * lp)


def test_a_stop_whose_close_exceeds_the_book_is_denied() -> None:
    book = market().book
    assert book is not None
    bid_depth = round(book.depth("sell"), 3)
    rich = account(wallet_balance=1e8)

    def resting_buy(size: float) -> OrderIntent:
        return intent(type="limit", price=59_990.0, amount=size, stop_price=58_800.0)

    assert "INSUFFICIENT_DEPTH" not in codes(run(resting_buy(bid_depth), acct=rich))
    over = run(resting_buy(round(bid_depth + 0.001, 3)), acct=rich)
    assert denied(over) == {"INSUFFICIENT_DEPTH"}
    assert "stop's close" in over.denials[0].message


def test_market_fill_band_boundary() -> None:
    order = intent(amount=10.0, stop_price=None)
    base = {"require_stop": False}
    rich = account(wallet_balance=1e6)
    cost = run(order, acct=rich, price_band_pct=None, **base).costing
    assert cost is not None
    off = (cost.expected_entry - 60_000.0) / 60_000.0 * 100
    assert run(order, acct=rich, price_band_pct=off, **base).allowed
    assert denied(run(order, acct=rich, price_band_pct=off * 0.999, **base)) == {
        "PRICE_OUTSIDE_BAND"
    }


def test_a_fee_larger_than_the_wallet_is_reported_not_hidden() -> None:
    order = intent(amount=33.373, leverage=1.0, margin_mode="cross", stop_price=None)
    verdict = run(order, acct=account(wallet_balance=1_000.0), require_stop=False)
    shortfall = [f for f in verdict.denials if "leave the wallet" in f.message]
    assert len(shortfall) == 1
    assert shortfall[0].code == Code.INSUFFICIENT_MARGIN
    assert shortfall[0].values["shortfall"] == pytest.approx(
        verdict.costing.entry_fee - 1_000.0  # type: ignore[union-attr]
    )
