"""Crowding: basis, funding and its trend, volatility and open interest combined into one score,
and the verdict tightening leverage and size for orders that add to the crowded side."""

from __future__ import annotations

import dataclasses
import math

import pytest

from safeguard._config import CrowdingConfig, RiskLimits
from safeguard.risk._crowding import (
    CrowdingMonitor,
    CrowdingReading,
    CrowdingScore,
    crowding_score,
    tightening,
)
from safeguard.risk._models import MarketSnapshot
from safeguard.risk._outcome import Decision, Finding, Verdict

from .verdict_cases import account, denied, intent, market, run

CONFIG = CrowdingConfig(max_tightening=0.5)  # opt in: halve the caps at full crowding
CALM = CrowdingReading(
    at=0.0, mark=100.0, index=100.0, funding_rate=0.0001, volatility=0.0, open_interest=100.0
)


def reading(at: float = 3600.0, **changes: float) -> CrowdingReading:
    return dataclasses.replace(CALM, at=at, **changes)


def test_the_parts_are_each_reading_over_its_full_level_and_the_score_their_mean() -> None:
    hot = reading(mark=100.3, funding_rate=0.00025, volatility=0.015, open_interest=110.0)
    score = crowding_score((CALM, hot), CONFIG)
    assert score.side == 1  # mark over index and longs paying: longs are crowded
    assert score.parts == pytest.approx(
        {
            "basis": 0.3 / 0.5,  # 0.3 % over 0.5 %
            "funding": 0.00025 / 0.0005,
            "funding_trend": 0.00015 / 0.0003,  # from 1 to 2.5 bps, toward the longs
            "volatility": 0.015 / 0.03,
            "open_interest": 0.1 / 0.2,  # +10 % over +20 %
        }
    )
    assert score.score == pytest.approx((0.6 + 0.5 * 4) / 5)


def test_one_metric_alone_is_not_a_crowd() -> None:
    funding_only = crowding_score((CALM, reading(funding_rate=0.001)), CONFIG)
    assert funding_only.parts["funding"] == 1.0
    assert funding_only.score < 0.5  # funding and its rise: two parts of five


def test_shorts_are_crowded_when_the_mark_sits_under_the_index_and_shorts_pay() -> None:
    score = crowding_score(
        (reading(at=0.0, funding_rate=-0.0001), reading(mark=99.6, funding_rate=-0.0004)), CONFIG
    )
    assert score.side == -1
    assert score.parts["funding_trend"] == pytest.approx(0.0003 / 0.0003)
    # Funding easing back toward zero is no trend toward the crowd.
    easing = crowding_score(
        (reading(at=0.0, funding_rate=-0.0004), reading(mark=99.6, funding_rate=-0.0001)), CONFIG
    )
    assert easing.parts["funding_trend"] == 0.0


def test_weights_change_what_the_score_listens_to() -> None:
    only_oi = CrowdingConfig(
        weights={"basis": 0.0, "funding": 0.0, "funding_trend": 0.0, "volatility": 0.0}
    )
    score = crowding_score((CALM, reading(open_interest=130.0, funding_rate=0.001)), only_oi)
    assert score.score == 1.0


def test_the_monitor_measures_trends_over_its_window_only() -> None:
    monitor = CrowdingMonitor(CrowdingConfig(window_s=3600.0))
    monitor.observe("X", reading(at=0.0, open_interest=50.0))
    monitor.observe("X", reading(at=1800.0, open_interest=100.0))
    # At 5400 s the reading at 0 s has left the window: growth is from 100, not from 50.
    late = monitor.observe("X", reading(at=5400.0, open_interest=110.0))
    assert late.parts["open_interest"] == pytest.approx(0.1 / 0.2)
    assert monitor.score("X") == late
    assert monitor.score("Y") is None
    with pytest.raises(ValueError, match="older than the last"):
        monitor.observe("X", reading(at=100.0))


def test_tightening_starts_at_its_threshold_and_reaches_its_maximum_at_one() -> None:
    def at(score: float) -> float:
        return tightening(CrowdingScore(score, 1, {}, 0.0), CONFIG)

    assert at(0.5) == 1.0
    assert at(0.75) == pytest.approx(0.75)
    assert at(1.0) == pytest.approx(0.5)
    assert tightening(None, CONFIG) == 1.0


CROWDED_LONGS = dataclasses.replace(market(), crowding=CrowdingScore(1.0, 1, {}, 0.0))
LIMITS = RiskLimits(max_leverage=20.0, max_notional_per_position=40_000.0, crowding=CONFIG)


def test_a_crowded_symbol_halves_the_leverage_and_size_a_long_may_add() -> None:
    assert run(
        intent(amount=0.2, leverage=10.0), CROWDED_LONGS, limits=LIMITS
    ).allowed  # 10x = 20x halved
    over = run(intent(amount=0.2, leverage=11.0), CROWDED_LONGS, limits=LIMITS)
    assert denied(over) == {"CROWDING"}
    assert over.findings[0].values["max_leverage"] == pytest.approx(10.0)
    assert run(
        intent(amount=0.2, leverage=11.0), market(), limits=LIMITS
    ).allowed  # not crowded: 20x
    # 0.4 BTC at 60,000 is 24,000: above 40,000 halved. The size search finds 20,000's worth.
    big = run(intent(amount=0.4), CROWDED_LONGS, limits=LIMITS, size_search=True)
    assert denied(big) == {"CROWDING"}
    assert big.max_safe_amount is not None
    assert big.max_safe_amount == pytest.approx(0.333, abs=0.002)


def test_tightening_is_opt_in() -> None:
    untouched = RiskLimits(max_leverage=20.0, max_notional_per_position=40_000.0)
    assert run(intent(amount=0.2, leverage=15.0), CROWDED_LONGS, limits=untouched).allowed


def test_the_uncrowded_side_is_not_tightened() -> None:
    short = intent(side="sell", amount=0.2, leverage=15.0, stop_price=61_200.0)
    assert run(short, CROWDED_LONGS, limits=LIMITS).decision is Decision.ALLOW
    assert denied(run(intent(amount=0.2, leverage=15.0), CROWDED_LONGS, limits=LIMITS)) == {
        "CROWDING"
    }


def test_without_open_interest_the_score_is_the_mean_of_the_other_parts() -> None:
    calm = dataclasses.replace(CALM, open_interest=None)
    hot = reading(mark=100.3, funding_rate=0.00025, volatility=0.015)
    score = crowding_score((calm, dataclasses.replace(hot, open_interest=None)), CONFIG)
    assert "open_interest" not in score.parts
    assert score.score == pytest.approx((0.6 + 0.5 * 3) / 4)


# --- the crowding check at its edges ------------------------------------------------------------


def crowded(side: int, score: float = 1.0) -> MarketSnapshot:
    return dataclasses.replace(market(), crowding=CrowdingScore(score, side, {}, 0.0))


def crowding_findings(verdict: Verdict) -> list[Finding]:
    return [f for f in verdict.findings if str(f.code) == "CROWDING"]


def test_a_score_at_the_threshold_tightens_nothing() -> None:
    # tighten_from 0.5: a score of 0.5 leaves the factor at 1. The plain leverage cap decides,
    # and the crowding check stays silent rather than repeating it.
    at_threshold = run(intent(amount=0.2, leverage=21.0), crowded(1, 0.5), limits=LIMITS)
    assert crowding_findings(at_threshold) == []
    assert "LEVERAGE_ABOVE_POLICY" in denied(at_threshold)


@pytest.mark.parametrize(
    ("side", "words"), [(1, "longs"), (-1, "shorts"), (0, "both sides")], ids=str
)
def test_the_denial_names_the_symbol_its_score_and_the_crowded_side(side: int, words: str) -> None:
    # A side of 0 (both crowded) tightens either side; the shorts' crowd is met by a sell.
    if side < 0:
        order = intent(side="sell", amount=0.2, leverage=11.0, stop_price=61_200.0)
    else:
        order = intent(amount=0.2, leverage=11.0)
    [finding] = crowding_findings(run(order, crowded(side), limits=LIMITS))
    assert finding.message.startswith(f"{order.symbol} is crowded (score 1, {words}): leverage")
    assert finding.values["score"] == 1.0
    assert finding.values["factor"] == pytest.approx(0.5)
    assert finding.values["leverage"] == 11.0
    assert finding.values["max_leverage"] == pytest.approx(10.0)


def test_isolated_orders_are_held_to_the_tightened_isolated_leverage_cap_cross_ones_not() -> None:
    limits = RiskLimits(max_leverage=20.0, isolated_max_leverage=10.0, crowding=CONFIG)
    isolated = run(intent(amount=0.2, leverage=6.0), crowded(1), limits=limits)
    [finding] = crowding_findings(isolated)  # 6x is above 10x halved
    assert finding.values["max_leverage"] == pytest.approx(5.0)
    cross = intent(amount=0.2, leverage=6.0, margin_mode="cross")
    assert crowding_findings(run(cross, crowded(1), limits=limits)) == []  # 20x halved: 10x


def test_a_tightened_position_notional_cap_reports_the_notional_and_its_cap() -> None:
    # 0.4 BTC at 60,000 is 24,000: under the 40,000 cap, over it halved.
    [finding] = crowding_findings(run(intent(amount=0.4), crowded(1), limits=LIMITS))
    assert finding.values["notional"] == pytest.approx(24_000.0)
    assert finding.values["max"] == pytest.approx(20_000.0)
    assert str(finding.severity) == "DENY"


CONCENTRATED = RiskLimits(max_leverage=None, max_concentration=2.0, crowding=CONFIG)


def test_a_tightened_concentration_cap_is_measured_on_the_equity_after_the_entry_fee() -> None:
    # 0.25 BTC at 60,000 is 15,000: 1.5x the 10,000 wallet. Under the 2x cap; over it halved.
    order = intent(amount=0.25, leverage=5.0, margin_mode="cross", stop_price=59_000.0)
    verdict = run(order, crowded(1), limits=CONCENTRATED)
    [finding] = crowding_findings(verdict)
    equity = 10_000.0 - verdict.costing.entry_fee
    assert finding.values["share"] == pytest.approx(verdict.costing.position_notional / equity)
    assert finding.values["max"] == pytest.approx(1.0)
    assert str(finding.severity) == "DENY"
    assert finding.message.endswith("x equity in notional is above the tightened 1x")
    # The same order on an uncrowded market is within the cap.
    assert run(order, market(), limits=CONCENTRATED).allowed


def test_the_isolated_concentration_cap_does_not_bind_a_cross_order_under_crowding() -> None:
    limits = RiskLimits(
        max_leverage=None, max_concentration=4.0, isolated_max_concentration=1.0, crowding=CONFIG
    )
    order = intent(amount=0.25, leverage=5.0, margin_mode="cross", stop_price=59_000.0)
    assert crowding_findings(run(order, crowded(1), limits=limits)) == []  # 1.5x under 4x halved
    isolated = intent(amount=0.25, leverage=5.0, stop_price=59_000.0)
    [finding] = crowding_findings(run(isolated, crowded(1), limits=limits))
    assert finding.values["max"] == pytest.approx(0.5)


def test_an_account_without_equity_is_wholly_concentrated_under_crowding() -> None:
    order = intent(amount=0.25, leverage=5.0, margin_mode="cross", stop_price=59_000.0)
    verdict = run(order, crowded(1), account(wallet_balance=1.0), limits=CONCENTRATED)
    [finding] = crowding_findings(verdict)
    assert finding.values["share"] == math.inf


def test_a_tiny_but_positive_equity_is_divided_not_called_empty() -> None:
    # 0.5 USDT of equity after the fee: the share is large and finite, not "no equity".
    order = intent(amount=0.001, leverage=5.0, margin_mode="cross", stop_price=59_000.0)
    fee = run(order, market(), limits=CONCENTRATED).costing.entry_fee
    verdict = run(order, crowded(1), account(wallet_balance=0.5 + fee), limits=CONCENTRATED)
    [finding] = crowding_findings(verdict)
    assert finding.values["share"] == pytest.approx(60.0 / 0.5)
