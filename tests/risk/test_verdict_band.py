"""The liquidation band in the verdict: where the position moves from maintenance pressure to
forced reduction, on the mark, with times at the market's volatility; and a warning when the
order leaves the position already inside it."""

from __future__ import annotations

import math

import pytest

from safeguard._config import RiskLimits
from safeguard.risk._cascade import margin_ratio
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._outcome import Decision, Severity, Verdict
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL
from safeguard.risk._verdict import evaluate

from .verdict_cases import FILLS, NOW, account, intent, market, run

LIMITS = RiskLimits(band_warning_ratio=0.5, band_partial_ratio=0.8)


def test_the_band_runs_from_the_warning_level_to_the_verdicts_liquidation_price() -> None:
    verdict = evaluate(intent(), market(), account(), LIMITS, FILLS, now=NOW, band=True)
    assert verdict.costing is not None
    band = verdict.band
    assert band is not None
    assert band.direction == -1  # a long: a fall takes it there
    assert band.warning is not None
    assert band.partial is not None
    assert band.liquidation is not None
    assert band.mark > band.warning.price > band.partial.price > band.liquidation.price
    # The band's liquidation is the model's, as the verdict priced it (no closing fee or
    # funding in the band's model call, so within the fee's and the funding's width).
    liq = verdict.costing.liquidation_price
    assert liq is not None
    assert band.liquidation.price == pytest.approx(liq, rel=2e-3)
    # Times are in seconds: (log distance / volatility per root second) squared.
    snapshot = market()
    assert snapshot.volatility is not None
    per_second = snapshot.volatility / math.sqrt(LIMITS.volatility_window_s)
    expected = (math.log(band.mark / band.liquidation.price) / per_second) ** 2
    assert band.liquidation.one_sigma_time == pytest.approx(expected)
    document = verdict.to_dict()["band"]
    assert document["liquidation"]["price"] == pytest.approx(band.liquidation.price)
    assert run(intent()).band is None  # only when asked


def test_an_order_leaving_its_position_past_the_warning_level_warns() -> None:
    # 0.5 BTC at 10x isolated: 3,000 margin against about 120 maintenance: a ratio near 4 %.
    quiet = run(intent(), limits=RiskLimits(band_warning_ratio=0.5))
    assert quiet.decision is Decision.ALLOW
    assert quiet.costing is not None
    position_ratio = _ratio(quiet)
    assert 0.02 < position_ratio < 0.08
    just_over = RiskLimits(band_warning_ratio=position_ratio * 0.99)
    warned = run(intent(), limits=just_over)
    assert warned.decision is Decision.WARN
    finding = next(f for f in warned.findings if str(f.code) == "MARGIN_PRESSURE")
    assert finding.severity is Severity.WARN
    # (the verdict's pool also counts the entry fee and funding: within a small fraction)
    assert finding.values["margin_ratio"] == pytest.approx(position_ratio, rel=1e-3)
    just_under = run(intent(), limits=RiskLimits(band_warning_ratio=position_ratio * 1.01))
    assert just_under.decision is Decision.ALLOW


def _ratio(verdict: Verdict) -> float:
    """The ratio by hand: the isolated pool's maintenance over its equity at the mark."""
    cost = verdict.costing
    assert cost is not None
    assert cost.position_entry is not None
    leg = PositionLeg(
        SYMBOL,
        1,
        cost.position_after,
        cost.position_entry,
        60_000.0,
        BTCUSDT_TIERS_12,
        isolated_wallet=cost.position_initial_margin,
    )
    return margin_ratio(Account(wallet_balance=10_000.0, positions=(leg,)), leg)
