"""A paper run's journal carries each liquidation step's fairness figures, and explains them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safeguard.paper._explain import explain
from safeguard.paper._journal import JournalWriter, RunJournal, read_journal
from safeguard.paper._record import Recorder
from safeguard.venue import Venue
from safeguard.venue._dialect import Dialect
from tests.venue.test_liquidation_path import (
    bankrupt_long_against_two_shorts,
    large_long,
    new_venue,
)


def journal_of(venue: Venue, api_key: str, path: Path) -> list[dict[str, Any]]:
    writer = JournalWriter(path)
    recorder = Recorder(
        RunJournal(writer, "paper"), venue, Dialect(venue), api_key=api_key, client_ip="127.0.0.1"
    )
    recorder.venue_events()
    writer.close()
    return list(read_journal(path))


def test_partial_steps_are_journaled_with_their_fairness_figures(tmp_path: Path) -> None:
    venue = new_venue()
    large_long(venue)
    records = journal_of(venue, "big", tmp_path / "run.jsonl")
    steps = [r for r in records if r["kind"] == "liquidation"]
    events = venue.liquidations()
    assert [r["step"] for r in steps] == ["PARTIAL", "PARTIAL"]
    assert [r["left"] for r in steps] == [33.875, 9.033]
    for record, event in zip(steps, events, strict=True):
        assert record["close_price"] == event.close_avg_price
        assert record["bankruptcy_price"] == pytest.approx(event.bankruptcy_price)
        assert record["fee"] == event.fee
        assert record["insurance_change"] == pytest.approx(event.fee)
        assert record["loss"] == pytest.approx(-event.wallet_delta_units / 1e8)
    assert steps[0]["smallest_healthy_close"] == 21.315
    lines = list(explain(records))
    assert len(lines) == 2
    assert all("PARTLY LIQUIDATED: long" in line for line in lines)
    assert "9.033 left open" in lines[1]


def test_an_adl_close_is_journaled_for_the_deleveraged_account(tmp_path: Path) -> None:
    venue = new_venue(insurance_fund=0.0)
    bankrupt_long_against_two_shorts(venue)
    venue.spike("BTCUSDT", -5.0, 600)
    venue.advance(5)
    [record] = [
        r for r in journal_of(venue, "bold", tmp_path / "bold.jsonl") if r["kind"] == "deleveraged"
    ]
    assert (record["side"], record["qty"], record["price"], record["left"]) == (
        "short",
        1.0,
        89_045.2,
        1.0,
    )
    assert record["realized_pnl"] == pytest.approx(954.8)
    [line] = explain([record])
    assert line.endswith(
        "AUTO-DELEVERAGED: short 1 BTC/USDT:USDT closed at 89,045.2 (mark 85,500.0), "
        "realised 954.8, 1 left open"
    )
    victim = journal_of(venue, "victim", tmp_path / "victim.jsonl")
    [told] = explain(r for r in victim if r["kind"] == "liquidation")
    assert "auto-deleveraged" in told


def test_a_venue_side_cascade_is_journaled_and_explained(tmp_path: Path) -> None:
    from tests.venue.test_liquidation_cascade import crowd_venue, spike_through, waves

    venue = crowd_venue(impact=0.05)
    spike_through(venue)
    writer = JournalWriter(tmp_path / "run.jsonl")
    recorder = Recorder(
        RunJournal(writer, "paper"), venue, Dialect(venue), api_key="nobody", client_ip="::1"
    )
    recorder.cascades()
    writer.close()
    [record] = list(read_journal(tmp_path / "run.jsonl"))
    assert record["kind"] == "cascade"
    assert record["waves"] == waves(venue)
    assert record["orders"] == len(venue.liquidations())
    assert record["lowest_mark"] < record["mark_at_start"]
    [line] = explain([record])
    counts = ", ".join(str(n) for n in waves(venue))
    assert f"in {len(waves(venue))} waves ({counts})" in line
    assert "CASCADE on BTC/USDT:USDT" in line
