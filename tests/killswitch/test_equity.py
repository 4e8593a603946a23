"""The persisted equity peak and day start: pure moves, atomic files, restarts, corruption."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard._codes import Code
from safeguard._config import Policy, TriggerConfig
from safeguard._errors import ConfigError
from safeguard.killswitch._equity import FILENAME, EquityMarks, EquityStore, utc_day
from safeguard.killswitch._triggers import EquityUpdate, RiskMonitor

NOON = datetime(2026, 11, 20, 12, 0, tzinfo=UTC).timestamp()
MIDNIGHT = datetime(2026, 11, 21, 0, 0, tzinfo=UTC).timestamp()


def test_marks_start_peak_and_day_at_the_first_equity() -> None:
    marks = EquityMarks.start(10_000.0, NOON)
    assert (marks.peak, marks.day_start, marks.day) == (10_000.0, 10_000.0, "2026-11-20")


def test_a_new_high_raises_the_peak_and_a_lower_equity_leaves_it() -> None:
    marks = EquityMarks.start(10_000.0, NOON)
    higher = marks.advance(12_000.0, NOON + 60)
    assert (higher.peak, higher.peak_at) == (12_000.0, NOON + 60)
    lower = higher.advance(9_000.0, NOON + 120)
    assert lower is higher  # nothing moved: nothing to persist
    assert lower.drawdown_pct(9_000.0) == pytest.approx(25.0)


def test_the_first_equity_of_a_new_utc_day_becomes_its_start() -> None:
    marks = EquityMarks.start(10_000.0, NOON).advance(9_000.0, MIDNIGHT - 1)
    assert marks.daily_loss(9_000.0) == 1_000.0
    today = marks.advance(9_000.0, MIDNIGHT)
    assert (today.day, today.day_start) == ("2026-11-21", 9_000.0)
    assert today.daily_loss(9_000.0) == 0.0
    assert today.peak == 10_000.0  # the peak is not a daily thing


def test_a_clock_stepped_back_into_yesterday_does_not_reopen_it() -> None:
    today = EquityMarks.start(10_000.0, MIDNIGHT + 10)
    assert today.advance(8_000.0, MIDNIGHT - 5) is today


def test_a_withdrawal_is_not_a_drawdown() -> None:
    marks = EquityMarks.start(10_000.0, NOON).after_transfer(-4_000.0)
    assert marks.drawdown_pct(6_000.0) == 0.0
    assert marks.daily_loss(6_000.0) == 0.0
    with pytest.raises(ValueError, match="amount"):
        marks.after_transfer(-6_000.0)


@pytest.mark.parametrize("equity", [math.nan, math.inf, 0.0, -5.0, True, "100"])
def test_marks_refuse_to_start_from_nonsense(equity: object) -> None:
    with pytest.raises(ValueError, match="equity"):
        EquityMarks.start(equity, NOON)  # type: ignore[arg-type]


@given(st.lists(st.floats(1.0, 1e7), min_size=1, max_size=30))
@settings(max_examples=60, deadline=None)
def test_peak_is_the_running_maximum_and_drawdown_is_never_negative(series: list[float]) -> None:
    marks = EquityMarks.start(series[0], NOON)
    for step, equity in enumerate(series[1:], start=1):
        marks = marks.advance(equity, NOON + step)
        assert marks.drawdown_pct(equity) >= 0.0
    assert marks.peak == max(series)


# --- the file ---------------------------------------------------------------------------


def test_store_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = EquityStore(tmp_path / "state")
    assert store.load() is None
    marks = EquityMarks.start(10_000.0, NOON).advance(11_000.0, NOON + 1)
    store.save(marks)
    assert EquityStore(tmp_path / "state").load() == marks
    assert sorted(p.name for p in (tmp_path / "state").iterdir()) == [FILENAME]


def test_the_peak_survives_a_restart_and_still_trips(tmp_path: Path) -> None:
    config = TriggerConfig(max_drawdown_pct=10.0)
    first = RiskMonitor(config, store=EquityStore(tmp_path))
    assert first.observe(EquityUpdate(NOON, 100_000.0)) == ()
    assert first.observe(EquityUpdate(NOON + 10, 95_000.0)) == ()
    # The process dies; a new one starts over the same directory at a lower equity.
    second = RiskMonitor(config, store=EquityStore(tmp_path))
    assert second.marks is not None
    assert second.marks.peak == 100_000.0
    assert second.observe(EquityUpdate(NOON + 20, 91_000.0)) == ()
    (trip,) = second.observe(EquityUpdate(NOON + 30, 89_000.0))
    assert trip.code == Code.DRAWDOWN
    assert trip.numbers["peak"] == 100_000.0
    assert trip.numbers["drawdown_pct"] == pytest.approx(11.0)


def test_day_start_survives_a_restart_mid_day(tmp_path: Path) -> None:
    config = TriggerConfig(max_daily_loss=1_000.0)
    RiskMonitor(config, store=EquityStore(tmp_path)).observe(EquityUpdate(NOON, 10_000.0))
    restarted = RiskMonitor(config, store=EquityStore(tmp_path))
    assert restarted.observe(EquityUpdate(NOON + 3600, 9_200.0)) == ()
    (trip,) = restarted.observe(EquityUpdate(NOON + 3700, 8_900.0))
    assert trip.code == Code.DAILY_LOSS
    assert trip.numbers["day_start_equity"] == 10_000.0


CORRUPTIONS = {
    "garbage": b"\x00\xffnot json at all",
    "truncated": b'{"format": "safeguard.equity/1", "peak": 1000',
    "empty": b"",
    "a list": b"[1, 2, 3]",
    "other format": json.dumps({"format": "other/9", "peak": 1.0}).encode(),
    "missing field": json.dumps({"format": "safeguard.equity/1", "peak": 1.0}).encode(),
    "NaN peak": (
        b'{"format": "safeguard.equity/1", "peak": NaN, "peak_at": 1.0, "day": "1970-01-01",'
        b' "day_start": 1.0, "day_started_at": 1.0}'
    ),
    "negative peak": json.dumps(
        {
            "format": "safeguard.equity/1",
            "peak": -5.0,
            "peak_at": 1.0,
            "day": "1970-01-01",
            "day_start": 1.0,
            "day_started_at": 1.0,
        }
    ).encode(),
    "day that disagrees with its time": json.dumps(
        {
            "format": "safeguard.equity/1",
            "peak": 5.0,
            "peak_at": 1.0,
            "day": "2001-01-01",
            "day_start": 1.0,
            "day_started_at": 1.0,
        }
    ).encode(),
}


@pytest.mark.parametrize("content", CORRUPTIONS.values(), ids=list(CORRUPTIONS))
def test_a_corrupt_peak_file_refuses_to_start_and_is_left_alone(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / FILENAME
    path.write_bytes(content)
    policy = Policy.build(kill_switch={"state_dir": str(tmp_path)})
    with pytest.raises(ConfigError) as caught:
        RiskMonitor.from_policy(policy)
    assert str(path) in str(caught.value)
    assert caught.value.key == str(path)
    assert path.read_bytes() == content  # never silently reset to the current equity


def test_a_peak_that_cannot_be_saved_halts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    monitor = RiskMonitor(TriggerConfig(max_drawdown_pct=10.0), store=EquityStore(state))
    assert monitor.observe(EquityUpdate(NOON, 10_000.0)) == ()
    # The state directory disappears under the bot (a file now sits where it was).
    (state / FILENAME).unlink()
    state.rmdir()
    state.write_text("not a directory")
    (trip,) = monitor.observe(EquityUpdate(NOON + 1, 12_000.0))
    assert trip.code == Code.STATE_STORE_UNAVAILABLE
    assert trip.action == "HALTED"
    assert str(state) in trip.reason
    # The decision still uses the peak it could not save.
    assert monitor.marks is not None
    assert monitor.marks.peak == 12_000.0


def test_utc_day_refuses_nonsense() -> None:
    assert utc_day(0.0) == "1970-01-01"
    with pytest.raises(ValueError, match="now"):
        utc_day(math.nan)


def test_accounts_sharing_a_state_directory_keep_their_own_peaks(tmp_path: Path) -> None:
    policy = Policy.build(
        kill_switch={"state_dir": str(tmp_path), "triggers": {"max_drawdown_pct": 10.0}}
    )
    alpha = RiskMonitor.from_policy(policy, account="alpha")
    beta = RiskMonitor.from_policy(policy, account="beta")
    alpha.observe(EquityUpdate(NOON, 100_000.0))
    beta.observe(EquityUpdate(NOON, 5_000.0))
    assert RiskMonitor.from_policy(policy, account="alpha").marks.peak == 100_000.0  # type: ignore[union-attr]
    assert RiskMonitor.from_policy(policy, account="beta").marks.peak == 5_000.0  # type: ignore[union-attr]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["equity-alpha.json", "equity-beta.json"]
    with pytest.raises(ValueError, match="account"):
        EquityStore(tmp_path, account="../escape")
