"""Sizing by policy: concentration as notional over equity (a warning level and a limit, above 1
for a leveraged trader), stricter limits for isolated positions, and funding stressed at the
venue's cap over the holding horizon."""

from __future__ import annotations

import dataclasses

import pytest

from safeguard._config import Policy
from safeguard._errors import ConfigError
from safeguard.risk._outcome import Decision, Severity

from .verdict_cases import codes, denied, intent, market, run

# The sample order: 0.5 BTC at 60,000 (30,000 notional) on a 10,000 wallet: about 3x equity.
ORDER = intent(amount=0.5)


def _share() -> float:
    finding = run(ORDER, max_concentration=0.0).findings[0]
    share = finding.values["share"]
    assert isinstance(share, float)
    return share


def test_concentration_above_one_is_a_limit_a_leveraged_trader_can_set() -> None:
    share = _share()
    assert 2.9 < share < 3.1  # notional over equity, not a share capped at 100 %
    assert run(ORDER, max_concentration=share).allowed
    assert denied(run(ORDER, max_concentration=share * 0.999)) == {"CONCENTRATION"}


def test_concentration_warns_past_its_warning_level_and_denies_only_past_the_limit() -> None:
    share = _share()
    quiet = run(ORDER, concentration_warning=share, max_concentration=5.0)
    assert quiet.decision is Decision.ALLOW
    warned = run(ORDER, concentration_warning=share * 0.999, max_concentration=5.0)
    assert warned.decision is Decision.WARN
    finding = next(f for f in warned.findings if str(f.code) == "CONCENTRATION")
    assert finding.severity is Severity.WARN
    assert finding.values["warning"] == pytest.approx(share * 0.999)
    assert "warning level" in finding.message


def test_a_warning_level_above_the_limit_is_refused() -> None:
    with pytest.raises(ConfigError, match="concentration_warning"):
        Policy.build(risk={"concentration_warning": 4.0, "max_concentration": 3.0})


def test_isolated_positions_are_held_to_stricter_sizing() -> None:
    share = _share()
    isolated = intent(amount=0.5, margin_mode="isolated")
    cross = intent(amount=0.5, margin_mode="cross", stop_price=58_800.0)
    limits = {"max_concentration": 5.0, "isolated_max_concentration": share * 0.999}
    assert denied(run(isolated, **limits)) == {"CONCENTRATION"}
    assert "isolated" in run(isolated, **limits).findings[0].message
    assert "CONCENTRATION" not in codes(run(cross, **limits))
    lev = {"max_leverage": 20.0, "isolated_max_leverage": 5.0}
    assert denied(run(intent(leverage=10.0), **lev)) == {"LEVERAGE_ABOVE_POLICY"}
    assert run(intent(leverage=5.0), **lev).allowed
    assert run(intent(leverage=10.0, margin_mode="cross"), **lev).allowed


def test_funding_at_the_cap_charges_every_payment_in_the_horizon_at_the_cap() -> None:
    capped = dataclasses.replace(market(), funding_cap=0.003)
    calm = run(ORDER, capped, funding_horizon_s=24 * 3600.0)
    stressed = run(ORDER, capped, funding_horizon_s=24 * 3600.0, funding_at_cap=True)
    assert calm.costing is not None
    assert stressed.costing is not None
    notional = 0.5 * 60_000.0
    payments = round(calm.costing.expected_funding / (0.0001 * notional))
    assert payments == 3  # a day of 8-hour intervals
    assert stressed.costing.expected_funding == pytest.approx(3 * 0.003 * notional)
    # The stressed funding comes out of the wallet the liquidation price is computed on.
    calm_liq, hard_liq = calm.costing.liquidation_price, stressed.costing.liquidation_price
    assert calm_liq is not None
    assert hard_liq is not None
    assert hard_liq > calm_liq
    # A short pays the cap too (the floor): the side the order builds pays.
    short = run(
        intent(side="sell", amount=0.5, stop_price=61_200.0),
        capped,
        funding_horizon_s=24 * 3600.0,
        funding_at_cap=True,
    )
    assert short.costing is not None
    assert short.costing.expected_funding == pytest.approx(3 * 0.003 * notional)


def test_funding_at_the_cap_without_the_venues_cap_fails_closed() -> None:
    verdict = run(ORDER, market(), funding_at_cap=True)
    assert denied(verdict) == {"MISSING_MARKET_DATA"}
    assert "funding_cap" in verdict.findings[0].message
    assert run(ORDER, market()).allowed


def test_the_policys_funding_cap_stands_in_for_a_venue_that_does_not_publish_one() -> None:
    horizon = 24 * 3600.0
    by_policy = run(
        ORDER, market(), funding_horizon_s=horizon, funding_at_cap=True, funding_cap_rate=0.003
    )
    by_venue = run(
        ORDER,
        dataclasses.replace(market(), funding_cap=0.003),
        funding_horizon_s=horizon,
        funding_at_cap=True,
    )
    assert by_policy.allowed
    assert by_policy.costing is not None
    assert by_venue.costing is not None
    assert by_policy.costing.expected_funding == pytest.approx(by_venue.costing.expected_funding)
