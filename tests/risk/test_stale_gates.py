"""The verdict's data gates report, as data, what was missing or stale and by how much: the
numbers a bot or a dashboard acts on, not only the sentence."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL

from .verdict_cases import LONG, NOW, account, intent, market, rules, run


@pytest.mark.parametrize(
    ("changes", "order", "limits", "named"),
    [
        ({"mark": None}, {}, {}, "mark"),
        ({"mark_time": None}, {}, {}, "mark_time"),
        ({"book": None, "book_time": None}, {}, {}, "book, book_time"),
        ({"book": None, "book_time": NOW}, {}, {}, "book"),  # a time with no book to go with it
        ({"rules": None}, {}, {}, "rules (tiers, filters)"),
        ({"volatility": None}, {}, {}, "volatility"),
        ({"funding_rate": None}, {}, {}, "funding_rate"),
        ({"next_funding_time": None}, {}, {}, "next_funding_time"),
        # Funding is needed for any horizon above zero, however short.
        ({"funding_rate": None}, {}, {"funding_horizon_s": 0.5}, "funding_rate"),
        ({"last": None}, {"stop_trigger": "last"}, {}, "last (the stop watches the last price)"),
    ],
)
def test_missing_market_data_is_named_in_the_findings_values(
    changes: dict[str, Any], order: dict[str, Any], limits: dict[str, Any], named: str
) -> None:
    verdict = run(intent(**order), market(**changes), **limits)
    [finding] = verdict.findings
    assert str(finding.code) == "MISSING_MARKET_DATA"
    assert finding.values == {"missing": named}
    assert f"missing {named}:" in finding.message


@pytest.mark.parametrize(
    ("changes", "name", "age"),
    [
        ({"mark_time": NOW - 7.5}, "mark", 7.5),
        ({"book_time": NOW - 9.0}, "book", 9.0),
        ({"mark_time": NOW + 6.0}, "mark", -6.0),
    ],
)
def test_stale_market_data_reports_which_input_and_how_old(
    changes: dict[str, Any], name: str, age: float
) -> None:
    verdict = run(snapshot=market(**changes))
    [finding] = [f for f in verdict.findings if str(f.code) == "STALE_MARKET_DATA"]
    assert finding.values == {"input": name, "age_s": pytest.approx(age), "max_age_s": 5.0}
    assert finding.message.startswith(f"{name} is ")


def test_stale_rules_report_their_age() -> None:
    verdict = run(snapshot=market(rules=rules(updated_at=NOW - 4000.0)))
    [finding] = [f for f in verdict.findings if str(f.code) == "STALE_MARKET_RULES"]
    assert finding.values == {"age_s": 4000.0, "max_age_s": 3600.0}


def _long(**changes: Any) -> PositionLeg:
    return PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=0.1,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
        **changes,
    )


def test_hedge_mode_legs_stop_the_verdict_before_any_pricing() -> None:
    leg = _long(position_side="LONG")
    verdict = run(acct=account(positions=(leg,), available_balance=10_000.0))
    [finding] = verdict.findings
    assert str(finding.code) == "INVALID_INPUT"
    assert finding.values == {"position_side": "LONG"}
    assert verdict.costing is None


def test_hedge_mode_legs_stop_the_verdict_before_the_size_rules_too() -> None:
    """An amount off the step and below the minimum: only the hedge-mode finding is given,
    since nothing about a hedge-mode account is judged (not even the order's size)."""
    leg = _long(position_side="LONG")
    verdict = run(intent(amount=0.0005), acct=account(positions=(leg,), available_balance=10_000.0))
    assert [str(f.code) for f in verdict.findings] == ["INVALID_INPUT"]


def test_an_unknown_available_balance_with_positions_stops_the_verdict() -> None:
    verdict = run(acct=account(positions=(_long(),), available_balance=None, open_orders=2))
    [finding] = verdict.findings
    assert str(finding.code) == "MISSING_ACCOUNT"
    assert finding.values == {"positions": 1, "open_orders": 2}
    assert verdict.costing is None


@pytest.mark.parametrize("offset", [-60.0, 9 * 3600.0])
def test_a_stale_funding_schedule_reports_how_far_off_it_is(offset: float) -> None:
    verdict = run(snapshot=market(next_funding_time=NOW + offset))
    [finding] = [f for f in verdict.findings if str(f.code) == "STALE_MARKET_DATA"]
    assert finding.values == {"input": "next_funding_time", "offset_s": offset}


@pytest.mark.parametrize(("horizon", "judged"), [(0.0, False), (0.5, True)])
def test_the_funding_schedule_is_aged_for_any_horizon_above_zero(
    horizon: float, judged: bool
) -> None:
    """Without a funding horizon the schedule is not read at all; with one, however short,
    a stale schedule is stale."""
    verdict = run(snapshot=market(next_funding_time=NOW - 60.0), funding_horizon_s=horizon)
    stale = [f for f in verdict.findings if str(f.code) == "STALE_MARKET_DATA"]
    assert [f.values["input"] for f in stale] == (["next_funding_time"] if judged else [])


def test_an_order_that_reduces_needs_no_funding_schedule() -> None:
    reduce = intent(side="sell", amount=0.5, reduce_only=True, stop_price=None)
    held = account(positions=(LONG,), available_balance=4_000.0)
    verdict = run(reduce, market(next_funding_time=None, funding_rate=None), held)
    assert verdict.allowed, verdict.findings


def test_a_stale_tier_table_reports_its_age_with_the_rules_exactly_at_their_limit() -> None:
    """The tier ladder is aged on its own limit while the rest of the rules are within theirs,
    up to and including their limit (past it, the rules' own finding covers the ladder)."""
    snapshot = market(rules=rules(updated_at=NOW - 3600.0, tiers_updated_at=NOW - 61.0))
    [finding] = [f for f in run(snapshot=snapshot).findings if str(f.code) == "STALE_MARKET_RULES"]
    assert finding.values == {"age_s": 61.0, "max_age_s": 60.0}


def test_a_tier_table_of_unknown_time_is_as_young_as_its_rules() -> None:
    snapshot = market(rules=rules(updated_at=NOW, tiers_updated_at=None))
    assert run(snapshot=snapshot, max_tiers_age_s=0.5).allowed
