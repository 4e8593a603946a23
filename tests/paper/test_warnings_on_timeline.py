"""The paper run journals the guard's early warnings, and the report's timeline has a lane for
them (data and a one-line render hook: the report's page is being reworked separately)."""

from __future__ import annotations

from pathlib import Path

from safeguard.guard._events import Hooks, WarningEvent
from safeguard.paper._journal import JournalWriter, read_journal
from safeguard.paper._record import Recorder
from safeguard.paper._report import _LANES
from safeguard.testing import paper_account


def test_a_warning_is_journaled_and_lands_on_the_timelines_warning_lane(tmp_path: Path) -> None:
    paper = paper_account(wallet=1_000)
    path = tmp_path / "journal.jsonl"
    try:
        writer = JournalWriter(path)
        recorder = Recorder(
            writer.for_run("guarded"),
            paper.venue,
            paper.dialect,
            api_key=paper.api_key,
            client_ip="127.0.0.1",
        )
        hooks = Hooks()
        hooks.subscribe(None, recorder.on_event)
        hooks.emit(
            WarningEvent(
                at=12.5,
                name="MARK_INDEX_GAP",
                severity="critical",
                message="mark 2 % off its index",
                value=2.0,
                threshold=1.0,
                symbol="BTC/USDT:USDT",
                escalate="REDUCING",
            )
        )
        writer.close()
    finally:
        paper.close()
    (record,) = [r for r in read_journal(path) if r["kind"] == "warning"]
    assert record["t"] == 12.5
    assert record["name"] == "MARK_INDEX_GAP"
    assert record["severity"] == "critical"
    assert record["escalate"] == "REDUCING"
    lanes = [name for name, wanted in _LANES if wanted(record)]
    assert lanes == ["early warning"]
