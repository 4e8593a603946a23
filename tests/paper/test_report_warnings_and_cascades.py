"""The paper report shows what the guarded run was warned of, and the venue's liquidation
cascades: short in-process runs on the real venue, guard and ccxt, asserted on the report's
data model and its rendered page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safeguard.paper._journal import JournalWriter, read_journal
from safeguard.paper._report import ReportData, render_page, report_data, write_report
from safeguard.paper._runner import PaperConfig, paper_policy, run_side
from safeguard.paper._summary import summarize_all
from safeguard.venue._config import Crowd
from safeguard.venue._faults import CrowdRule, FaultPlan, SpikeRule

SYMBOL = "BTCUSDT"
SPIKE = SpikeRule(symbol=SYMBOL, at_s=600.0, pct=-8.0, duration_s=300.0)
"""A sharp fall that takes the mark well away from its index while it lasts."""
CROWD = CrowdRule(
    at_s=0.0,
    crowd=Crowd(
        symbol=SYMBOL,
        accounts=200,
        notional=50_000.0,
        leverage={10: 0.3, 20: 0.3, 50: 0.25, 100: 0.15},
        entry_spread_pct=0.5,
    ),
)


def _guarded_run(tmp_path: Path, *rules: Any) -> list[dict[str, Any]]:
    config = PaperConfig(
        policy=paper_policy(None, tmp_path / "state"),
        faults=FaultPlan(rules=list(rules)),
        duration_s=2_400.0,
        bar_s=60.0,
    )
    path = tmp_path / "journal.jsonl"
    with JournalWriter(path) as writer:
        run_side(config, "guarded", writer.for_run("guarded"))
    return list(read_journal(path))


def _report(records: list[dict[str, Any]]) -> tuple[ReportData, str]:
    data = report_data(records, summarize_all(records))
    return data, render_page(data)


@pytest.fixture(scope="module")
def spiked(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _guarded_run(tmp_path_factory.mktemp("spiked"), SPIKE)


@pytest.fixture(scope="module")
def cascaded(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _guarded_run(tmp_path_factory.mktemp("cascaded"), CROWD, SPIKE)


def test_the_guarded_run_journals_the_warnings_its_market_provokes(
    spiked: list[dict[str, Any]],
) -> None:
    warnings = [r for r in spiked if r["kind"] == "warning"]
    assert "MARK_INDEX_GAP" in {r["name"] for r in warnings}
    spike_at = spiked[0]["t"] + SPIKE.at_s
    assert all(r["t"] >= spike_at for r in warnings if r["name"] == "MARK_INDEX_GAP")


def test_the_paper_default_never_escalates_a_warning(spiked: list[dict[str, Any]]) -> None:
    assert [r for r in spiked if r["kind"] == "warning"]
    assert all(r["escalate"] is None for r in spiked if r["kind"] == "warning")
    assert not [r for r in spiked if r["kind"] == "kill"]


def test_the_warnings_are_on_the_reports_timeline(spiked: list[dict[str, Any]]) -> None:
    data, html = _report(spiked)
    start = data.start
    warned = sorted((r["t"] - start) / 3600.0 for r in spiked if r["kind"] == "warning")
    lane = sorted(m.at_h for m in data.timeline if m.lane == "early warning")
    assert lane == pytest.approx(warned)
    assert all(m.run == "guarded" for m in data.timeline if m.lane == "early warning")
    assert "MARK_INDEX_GAP" in html


def test_a_run_with_a_cascade_shows_it_on_the_report(cascaded: list[dict[str, Any]]) -> None:
    records = [r for r in cascaded if r["kind"] == "cascade"]
    assert records
    data, html = _report(cascaded)
    assert len(data.cascades) == len(records)
    for row, record in zip(data.cascades, records, strict=True):
        assert row.run == "guarded"
        assert row.waves == tuple(record["waves"])
        assert row.accounts == record["accounts"]
        assert row.orders == record["orders"]
        assert row.lowest_mark == record["lowest_mark"]
        assert row.insurance_change == record["insurance_change"]
        assert row.start_h == pytest.approx((record["start"] - data.start) / 3600.0)
        waves = ", ".join(str(w) for w in record["waves"])
        assert f"<td>{len(record['waves'])} ({waves})</td>" in html
        assert f"<td>{record['orders']:,}</td>" in html
    assert 'id="cascades"' in html


def test_a_run_without_a_cascade_shows_none(spiked: list[dict[str, Any]]) -> None:
    assert not [r for r in spiked if r["kind"] == "cascade"]
    data, html = _report(spiked)
    assert data.cascades == []
    assert 'id="cascades"' not in html


def test_a_report_with_a_cascade_is_written_with_its_plots(
    cascaded: list[dict[str, Any]], tmp_path: Path
) -> None:
    page = write_report(tmp_path / "report", cascaded, summarize_all(cascaded))
    assert page is not None
    assert (tmp_path / "report" / "price.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert 'id="cascades"' in page.read_text(encoding="utf-8")
