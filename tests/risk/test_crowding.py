"""Crowding: basis, funding and its trend, volatility and open interest combined into one score,
and the verdict tightening leverage and size for orders that add to the crowded side."""

from __future__ import annotations

import dataclasses

import pytest

from safeguard.config import CrowdingConfig, RiskLimits
from safeguard.risk.crowding import (
    CrowdingMonitor,
    CrowdingReading,
    CrowdingScore,
    crowding_score,
    tightening,
)
from safeguard.risk.outcome import Decision

from .verdict_cases import denied, intent, market, run

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
