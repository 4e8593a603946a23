"""The degraded fill model and the size search.

A marginal order (its stop's fill just clears the policy's buffer on a calm venue) must be
denied with DEGRADED_RISK when the venue is sick; and ``max_safe_amount`` must be the real
edge: that amount passes, one step more does not.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard._config import FillModelConfig, Policy, RiskLimits
from safeguard.risk._fills import FillFace, FillModel
from safeguard.risk._outcome import Decision
from safeguard.risk._preview import preview
from safeguard.risk._sample import STEP, TICK

from .verdict_cases import FILLS, NOW, account, denied, intent, market, run


def marginal_stop(distance_pct: float) -> float:
    """A stop whose expected effective fill sits ``distance_pct`` inside liquidation."""
    cost = run().costing
    assert cost is not None
    lp = cost.liquidation_price
    assert lp is not None
    assert cost.stop_effective_price is not None
    # The effective stop price is proportional to the trigger for a given size.
    ratio = cost.stop_effective_price / 58_800.0
    return math.ceil(lp * (1 + distance_pct / 100) / ratio / TICK) * TICK


def test_marginal_order_is_allowed_calm_and_denied_degraded() -> None:
    order = intent(stop_price=marginal_stop(1.05))
    calm = run(order)
    assert calm.decision is Decision.ALLOW
    assert calm.costing is not None
    assert 1.0 <= calm.costing.stop_distance_pct < 1.1  # type: ignore[operator]
    sick = run(order, degraded=True)
    assert sick.decision is Decision.DENY
    assert denied(sick) == {"DEGRADED_RISK"}
    finding = sick.denials[0]
    assert "STOP_BEYOND_LIQUIDATION" in finding.message
    assert finding.values["check"] == "STOP_BEYOND_LIQUIDATION"
    assert sick.face is FillFace.DEGRADED
    assert sick.costing is not None
    assert sick.costing.face is FillFace.DEGRADED
    assert sick.expected is not None
    assert sick.expected.face is FillFace.EXPECTED
    # The degraded face is worse on every count that matters here.
    assert sick.costing.stop_effective_price < calm.costing.stop_effective_price  # type: ignore[operator]
    assert sick.costing.expected_entry > calm.costing.expected_entry


def test_a_comfortable_order_passes_degraded_too() -> None:
    assert run(degraded=True).decision is Decision.ALLOW


def test_an_order_that_fails_calm_keeps_its_own_code_when_degraded() -> None:
    order = intent(stop_price=marginal_stop(0.5))
    sick = run(order, degraded=True)
    assert "STOP_BEYOND_LIQUIDATION" in denied(sick)
    assert "DEGRADED_RISK" not in denied(sick)


def test_degraded_maker_order_pays_taker_and_the_margin_check_sees_it() -> None:
    resting = intent(type="limit", price=59_000.0)
    calm = run(resting).costing
    cost = run(resting, degraded=True).costing
    assert calm is not None
    assert cost is not None
    assert calm.entry_fee_rate == pytest.approx(0.0002)
    assert cost.entry_fee_rate == pytest.approx(0.0005)
    needed_calm = calm.initial_margin + calm.entry_fee
    # A wallet that covers the maker fee but not the taker fee passes calm, fails degraded.
    wallet = needed_calm + 0.5 * 59_000.0 * 0.0001
    acct = account(wallet_balance=wallet)
    assert run(resting, acct=acct).allowed
    sick = run(resting, acct=acct, degraded=True)
    assert denied(sick) == {"DEGRADED_RISK"}
    assert sick.denials[0].values["check"] == "INSUFFICIENT_MARGIN"


def test_degradation_parameters_come_from_configuration() -> None:
    order = intent(stop_price=marginal_stop(1.05))
    gentle = FillModel.from_config(
        FillModelConfig(degraded_slippage_multiplier=1.0, drift_sigmas=0.0)
    )
    assert run(order, fills=gentle, degraded=True).allowed
    assert run(order, fills=FILLS, degraded=True).decision is Decision.DENY


# --- max_safe_amount ----------------------------------------------------------------------


def _edge(verdict_amount: float | None) -> float:
    assert verdict_amount is not None
    assert verdict_amount > 0
    return verdict_amount


def test_max_safe_amount_is_the_edge_of_the_per_order_notional() -> None:
    verdict = run(intent(amount=1.0), size_search=True, max_notional_per_order=40_000.0)
    assert denied(verdict) == {"NOTIONAL_PER_ORDER"}
    edge = _edge(verdict.max_safe_amount)
    at = run(intent(amount=edge), max_notional_per_order=40_000.0)
    beyond = run(intent(amount=round(edge + STEP, 3)), max_notional_per_order=40_000.0)
    assert at.allowed
    assert denied(beyond) == {"NOTIONAL_PER_ORDER"}


def test_max_safe_amount_is_the_edge_of_the_stop_buffer_in_cross_margin() -> None:
    # In cross margin the wallet backs the whole position: more size, closer liquidation.
    order = intent(amount=2.0, margin_mode="cross", stop_price=57_000.0, leverage=20.0)
    acct = account(wallet_balance=5_000.0)
    verdict = run(order, acct=acct, size_search=True)
    assert "STOP_BEYOND_LIQUIDATION" in denied(verdict)
    edge = _edge(verdict.max_safe_amount)
    assert edge < 2.0
    assert run(
        intent(amount=edge, margin_mode="cross", stop_price=57_000.0, leverage=20.0), acct=acct
    ).allowed
    beyond = intent(
        amount=round(edge + STEP, 3), margin_mode="cross", stop_price=57_000.0, leverage=20.0
    )
    assert "STOP_BEYOND_LIQUIDATION" in denied(run(beyond, acct=acct))


def test_max_safe_amount_of_an_allowed_order_is_at_least_its_amount() -> None:
    verdict = run(size_search=True)
    assert verdict.allowed
    edge = _edge(verdict.max_safe_amount)
    assert edge >= 0.5
    assert run(intent(amount=edge)).allowed
    assert not run(intent(amount=round(edge + STEP, 3))).allowed


def test_max_safe_amount_is_zero_when_no_size_could_pass() -> None:
    stale = market(mark_time=NOW - 60.0)
    assert run(snapshot=stale, size_search=True).max_safe_amount == 0.0
    assert run(intent(stop_price=None), size_search=True).max_safe_amount == 0.0


def test_max_safe_amount_under_degraded_respects_both_faces() -> None:
    order = intent(amount=1.0, stop_price=marginal_stop(1.05), margin_mode="cross")
    acct = account(wallet_balance=4_000.0)
    sick = run(order, acct=acct, degraded=True, size_search=True)
    assert sick.decision is Decision.DENY
    edge = _edge(sick.max_safe_amount)
    shrunk = intent(amount=edge, stop_price=order.stop_price, margin_mode="cross")
    assert run(shrunk, acct=acct, degraded=True).allowed
    more = intent(amount=round(edge + STEP, 3), stop_price=order.stop_price, margin_mode="cross")
    assert not run(more, acct=acct, degraded=True).allowed


@settings(max_examples=25, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=3000).map(lambda n: n * STEP),
    cap=st.floats(min_value=1_000.0, max_value=200_000.0),
)
def test_max_safe_amount_passes_and_one_step_more_fails(amount: float, cap: float) -> None:
    order = intent(amount=round(amount, 3), margin_mode="cross", stop_price=57_000.0)
    acct = account(wallet_balance=20_000.0)
    verdict = run(order, acct=acct, size_search=True, max_notional_per_order=cap)
    edge = verdict.max_safe_amount
    assert edge is not None
    if edge == 0.0:
        return
    ok = run(
        intent(amount=edge, margin_mode="cross", stop_price=57_000.0),
        acct=acct,
        max_notional_per_order=cap,
    )
    assert ok.allowed
    more = intent(amount=round(edge + STEP, 3), margin_mode="cross", stop_price=57_000.0)
    assert not run(more, acct=acct, max_notional_per_order=cap).allowed


# --- preview: the same verdict with the policy's defaults -------------------------------


def test_preview_reads_the_policy_and_matches_evaluate() -> None:
    policy = Policy.build(risk={"max_leverage": 5.0}, fills={"taker_fee": 0.0004})
    verdict = preview(intent(), market(), account(), now=NOW, policy=policy)
    assert denied(verdict) == {"LEVERAGE_ABOVE_POLICY"}
    assert verdict.costing is not None
    assert verdict.costing.entry_fee_rate == pytest.approx(0.0004)
    assert verdict.max_safe_amount == 0.0
    explicit = preview(
        intent(), market(), account(), now=NOW, limits=RiskLimits(), fills=FillModelConfig()
    )
    assert explicit.decision == run().decision
    assert explicit.costing == run().costing
    with pytest.raises(ValueError, match="fills"):
        preview(intent(), market(), account(), now=NOW, fills="fast")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(
    amount=st.integers(min_value=1, max_value=5000).map(lambda n: n * STEP),
    wallet=st.floats(min_value=500.0, max_value=200_000.0),
    leverage=st.integers(min_value=1, max_value=20),
    mode=st.sampled_from(["isolated", "cross"]),
    side=st.sampled_from(["buy", "sell"]),
    stop_pct=st.floats(min_value=0.5, max_value=15.0),
    cap=st.one_of(st.none(), st.floats(min_value=1_000.0, max_value=500_000.0)),
    degraded=st.booleans(),
)
def test_max_safe_amount_is_exact_whichever_limit_binds(
    amount: float,
    wallet: float,
    leverage: int,
    mode: str,
    side: str,
    stop_pct: float,
    cap: float | None,
    degraded: bool,
) -> None:
    direction = 1 if side == "buy" else -1
    stop = round(60_000.0 * (1 - direction * stop_pct / 100), 1)

    def order(size: float) -> Any:
        return intent(
            amount=round(size, 3), side=side, leverage=float(leverage), margin_mode=mode,
            stop_price=stop,
        )  # fmt: skip

    acct = account(wallet_balance=wallet)
    limits = {"max_notional_per_order": cap, "degraded": degraded}
    verdict = run(order(amount), acct=acct, size_search=True, **limits)
    edge = verdict.max_safe_amount
    assert edge is not None
    if edge == 0.0:
        # Then not even the smallest order passes.
        assert not run(order(0.002), acct=acct, **limits).allowed
        return
    assert run(order(edge), acct=acct, **limits).allowed
    assert not run(order(edge + STEP), acct=acct, **limits).allowed
