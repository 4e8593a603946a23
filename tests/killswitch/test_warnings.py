"""Early warnings, the pure detectors: each fires at its threshold and stays quiet just under it,
is not repeated within its cooling period, and carries the escalation the policy asks for."""

from __future__ import annotations

import pytest

from safeguard._config import Policy, WarningConfig
from safeguard._errors import ConfigError
from safeguard.killswitch._early_warnings import ClosingPosition, WarningMonitor

BIDS = ((99.9, 1.0), (99.5, 1.0), (99.0, 1.0), (98.0, 5.0))


def monitor(**config: object) -> WarningMonitor:
    return WarningMonitor(WarningConfig(**config))  # type: ignore[arg-type]


def test_a_cancel_burst_fires_at_its_count_within_the_window() -> None:
    quiet = monitor(cancel_burst=3, window_s=10.0)
    assert quiet.cancelled(0.0) == []
    assert quiet.cancelled(5.0) == []
    assert quiet.cancelled(10.0) == []  # the first left the window: two in the last 10 s
    burst = monitor(cancel_burst=3, window_s=10.0)
    burst.cancelled(0.0)
    burst.cancelled(5.0)
    (warning,) = burst.cancelled(9.0)
    assert warning.name == "CANCEL_BURST"
    assert warning.value == 3
    assert warning.severity == "warning"
    assert warning.escalate is None


def test_leverage_changes_fire_at_their_count() -> None:
    watch = monitor(leverage_changes=2)
    assert watch.leverage_changed(0.0, "X") == []
    (warning,) = watch.leverage_changed(1.0, "X")
    assert warning.name == "LEVERAGE_CHANGES"
    assert "X" in warning.message


def test_the_mark_departing_from_the_index_fires_at_the_gap() -> None:
    watch = monitor(mark_index_gap_pct=1.0)
    assert watch.market(0.0, "X", mark=100.99, index=100.0) == []
    (warning,) = watch.market(1.0, "X", mark=101.0, index=100.0)
    assert warning.name == "MARK_INDEX_GAP"
    assert warning.value == pytest.approx(1.0)
    critical = monitor(mark_index_gap_pct=1.0).market(0.0, "X", mark=98.0, index=100.0)
    assert critical[0].severity == "critical"  # twice the threshold


def test_funding_fires_at_its_share_of_the_cap_critical_at_the_cap() -> None:
    watch = monitor(funding_near_cap=0.8)
    assert watch.market(0.0, "X", mark=None, funding_rate=0.00239, funding_cap=0.003) == []
    (near,) = watch.market(0.0, "X", mark=None, funding_rate=-0.00241, funding_cap=0.003)
    assert near.name == "FUNDING_NEAR_CAP"
    assert near.severity == "warning"
    at_cap = monitor(funding_near_cap=0.8).market(
        0.0, "X", mark=None, funding_rate=0.003, funding_cap=0.003
    )
    assert at_cap[0].severity == "critical"
    # Without a cap (the market's or the policy's risk.funding_cap_rate) nothing is judged.
    assert monitor().market(0.0, "X", mark=None, funding_rate=0.0025) == []


def test_a_thin_book_between_the_mark_and_the_stop_fires_under_its_cover() -> None:
    # A long of 1 with its stop at 99.0: bids at 99.9, 99.5 and 99.0 hold 3, a cover of 3.
    long = ClosingPosition(side=1, quantity=1.0, exit_price=99.0)
    assert monitor(thin_book_cover=3.0).market(0.0, "X", mark=100.0, bids=BIDS, position=long) == []
    (thin,) = monitor(thin_book_cover=3.01).market(0.0, "X", mark=100.0, bids=BIDS, position=long)
    assert thin.name == "THIN_BOOK"
    assert thin.value == pytest.approx(3.0)
    # A short's exit buys the asks up to its stop.
    short = ClosingPosition(side=-1, quantity=2.0, exit_price=101.0)
    asks = ((100.1, 1.0), (100.9, 0.5), (102.0, 10.0))
    (short_thin,) = monitor(thin_book_cover=1.0).market(
        0.0, "X", mark=100.0, asks=asks, position=short
    )
    assert short_thin.value == pytest.approx(0.75)
    assert short_thin.severity == "warning"


def test_a_parameter_that_changes_back_and_forth_fires_a_one_way_change_does_not() -> None:
    watch = monitor(flapping_changes=2, flapping_window_s=100.0)
    assert watch.market(0.0, "X", mark=None, parameters=[("tiers", "A")]) == []
    assert watch.market(10.0, "X", mark=None, parameters=[("tiers", "A")]) == []
    assert watch.market(20.0, "X", mark=None, parameters=[("tiers", "B")]) == []  # one change
    assert watch.market(30.0, "X", mark=None, parameters=[("tiers", "C")]) == []  # no return
    (flap,) = watch.market(40.0, "X", mark=None, parameters=[("tiers", "B")])
    assert flap.name == "PARAMETER_FLAPPING"
    assert flap.value == 3
    slow = monitor(flapping_changes=2, flapping_window_s=100.0)
    slow.market(0.0, "X", mark=None, parameters=[("interval", 8.0)])
    slow.market(60.0, "X", mark=None, parameters=[("interval", 4.0)])
    # Back to 8 h, but 150 s after the first change: the window holds one change only.
    assert slow.market(210.0, "X", mark=None, parameters=[("interval", 8.0)]) == []


def test_a_warning_is_not_repeated_within_its_cooling_period_and_carries_its_escalation() -> None:
    watch = monitor(
        mark_index_gap_pct=1.0, cooling_period_s=60.0, escalate={"MARK_INDEX_GAP": "REDUCING"}
    )
    (first,) = watch.market(0.0, "X", mark=102.0, index=100.0)
    assert first.escalate == "REDUCING"
    assert watch.market(59.0, "X", mark=102.0, index=100.0) == []
    assert watch.market(30.0, "Y", mark=102.0, index=100.0)  # another symbol is its own
    assert watch.market(60.0, "X", mark=102.0, index=100.0)


def test_escalation_names_a_known_warning_and_state() -> None:
    with pytest.raises(ConfigError, match="escalate"):
        Policy.build(kill_switch={"warnings": {"escalate": {"CANCEL_STORM": "HALTED"}}})
    with pytest.raises(ConfigError, match="escalate"):
        Policy.build(kill_switch={"warnings": {"escalate": {"THIN_BOOK": "ACTIVE"}}})
