"""``safeguard paper --streams``: a strategy written on ``watch_*`` (ccxt.pro) paper-trades on
the mock venue, guarded and naive, with the same journal, summary and report as the bar
strategy; the guarded run's view is fed by the strategy's own streams."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from safeguard.cli import main
from safeguard.paper._journal import JournalWriter, read_journal
from safeguard.paper._runner import PaperConfig, paper_policy, run_side
from safeguard.paper._scenario import default_plan
from safeguard.paper._strategy import StreamTrend
from safeguard.paper._summary import summarize

QUICK = functools.partial(StreamTrend, fast_bars=2, slow_bars=5)
"""Warm after five bars: a short run still trades."""


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paper-streams") / "report"
    argv = ["paper", "--streams", "--seed", "7", "--duration", "3h", "--bar", "2m",
            "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return out


def test_the_stream_strategy_trades_in_both_runs_and_the_summary_recounts(report: Path) -> None:
    records = list(read_journal(report / "journal.jsonl"))
    starts = [r for r in records if r["kind"] == "start"]
    assert [(r["run"], r["streams"]) for r in starts] == [("guarded", True), ("naive", True)]
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    for run in ("guarded", "naive"):
        mine = [r for r in records if r["run"] == run]
        orders = [r for r in mine if r["kind"] == "order"]
        assert any(r["outcome"] == "placed" and r["type"] == "stop" for r in orders), run
        assert summary["runs"][run]["orders"] == len(orders)
        assert summary["runs"][run]["bar_errors"] == sum(
            1 for r in mine if r["kind"] == "bar_error"
        )
    assert (report / "index.html").is_file()


def test_the_guarded_view_is_fed_by_the_strategys_streams(report: Path) -> None:
    """The ticker and book the verdicts judge come from the strategy's watches: once the
    streams have delivered (the first bar), the guard never reads them over REST (a bar
    strategy's guard reads them for its orders). The first bar's warm-up may read the ticker
    once: the mark's first message makes the view's reads due before the ticker's arrives."""
    records = list(read_journal(report / "journal.jsonl"))
    guarded = [r for r in records if r["run"] == "guarded"]
    first_bar = next(r["t"] for r in guarded if r["kind"] == "bar")
    market_reads = [
        (r["t"], r["method"]) for r in guarded
        if r["kind"] == "request" and r["method"] in ("fetch_ticker", "fetch_order_book")
    ]  # fmt: skip
    assert all(t == first_bar for t, _ in market_reads), market_reads
    assert len(market_reads) <= 1, market_reads
    placed = [r for r in guarded if r["kind"] == "order" and r["outcome"] == "placed"]
    assert placed


def test_the_naive_stream_client_retries_its_async_calls(tmp_path: Path) -> None:
    """An order answer lost on the way back reaches the naive ccxt.pro client as a timeout:
    it retries blindly, as the blocking client does, and the venue holds two orders; the
    guarded run resolves the lost answer and holds one."""
    records = _run_one_order(
        tmp_path,
        'seed = 1\n[[rules]]\nkind = "timeout_after_accept"\n'
        'endpoint = "POST /fapi/v1/order"\ncount = 1\n',
    )
    retries = [r for r in records if r["run"] == "naive" and r["kind"] == "retry"]
    assert [(r["method"], r["reason"]) for r in retries] == [("create_order", "any-error")]
    copies = {r["run"]: r["copies"] for r in records if r["kind"] == "order"}
    assert copies == {"guarded": 1, "naive": 2}


def test_a_stream_run_is_determined_by_its_seed(tmp_path: Path) -> None:
    def run(folder: str) -> list[dict[str, Any]]:
        config = PaperConfig(
            policy=paper_policy(None, tmp_path / folder / "state"),
            faults=default_plan(3600, ["BTCUSDT"], seed=4),
            seed=4,
            duration_s=3600,
            bar_s=120.0,
            strategy=QUICK,
        )
        with JournalWriter(tmp_path / folder / "journal.jsonl") as writer:
            for side in ("guarded", "naive"):
                run_side(config, side, writer.for_run(side))  # type: ignore[arg-type]
        return list(read_journal(tmp_path / folder / "journal.jsonl"))

    first, second = run("a"), run("b")
    # Everything but the account's REST reads repeats exactly. Those may not: after a user-data
    # stream breaks, ccxt.pro reconnects on wall time, so the reconcile's balance and position
    # reads land on the stream's path in one run and on the order path in the other (the view
    # and every decision the same either way).
    assert _without_account_reads(first) == _without_account_reads(second)
    bars = [(r["t"], r["equity"], r["marks"]) for r in first if r["kind"] == "bar"]
    assert bars == [(r["t"], r["equity"], r["marks"]) for r in second if r["kind"] == "bar"]
    orders = [r for r in first if r["kind"] == "order"]
    assert orders, "the strategy never traded: nothing was compared"
    for run_name in ("guarded", "naive"):
        assert summarize(first, run_name) == summarize(second, run_name)


_ACCOUNT_READS = frozenset({"fetch_balance", "fetch_positions", "fetch_open_orders"})


def _without_account_reads(records: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [
        (r["kind"], r.get("method"))
        for r in records
        if not (r["kind"] == "request" and r.get("method") in _ACCOUNT_READS)
    ]


def test_streams_and_a_users_strategy_together_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x"
    argv = ["paper", "--streams", "--strategy", "mybot:Bot", "--out", str(out)]
    assert main(argv) == 2
    assert "--streams" in capsys.readouterr().err
    assert not out.exists()


def test_a_users_async_strategy_runs_on_watch_star(tmp_path: Path) -> None:
    """A strategy whose ``on_bar`` is a coroutine function gets ccxt.pro: its watches run
    for the whole run (the bar's messages reach them before its turn) and its orders go
    through the guarded async exchange."""
    records = _run_one_order(tmp_path, "seed = 1\n")
    placed = [r for r in records if r["kind"] == "order" and r["outcome"] == "placed"]
    assert [(r["run"], r["n"], r["copies"]) for r in placed] == [
        ("guarded", 1, 1),
        ("naive", 1, 1),
    ]
    assert all(r["streams"] for r in records if r["kind"] == "start")


ONE_ORDER = """
class Watcher:
    def __init__(self, symbols):
        self.symbol, self.marks = symbols[0], []

    async def watch(self, exchange):
        while True:
            mark = await exchange.watch_mark_price(self.symbol)
            self.marks.append(mark["markPrice"])

    async def on_bar(self, exchange, bar):
        if bar.index == 3 and self.marks:
            stop = round(self.marks[-1] * 0.95, 1)
            await exchange.create_order(self.symbol, "market", "buy", 0.01, None,
                                        {"stopLoss": {"triggerPrice": stop}})
"""
"""A user's strategy on ``watch_*``: one long with a stop at the fourth bar, priced from its
mark stream (no mark delivered by then: no order)."""


def _run_one_order(tmp_path: Path, faults_toml: str) -> list[dict[str, Any]]:
    """``safeguard paper`` for an hour with :data:`ONE_ORDER` under ``faults_toml``."""
    strategy = tmp_path / "watcher.py"
    strategy.write_text(ONE_ORDER, encoding="utf-8")
    faults = tmp_path / "faults.toml"
    faults.write_text(faults_toml, encoding="utf-8")
    out = tmp_path / "report"
    argv = ["paper", "--duration", "1h", "--bar", "2m", "--strategy", f"{strategy}:Watcher",
            "--faults", str(faults), "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    return list(read_journal(out / "journal.jsonl"))
