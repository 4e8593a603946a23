"""``safeguard paper`` end to end on the real venue, guard and ccxt: the report exists, its
figures match the journal, and under the default fault plan the guarded run ends with no
liquidation and no duplicate while the naive run shows what went wrong, for several seeds."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from safeguard.cli import main
from safeguard.paper._explain import explain
from safeguard.paper._journal import JournalWriter, read_journal
from safeguard.paper._runner import PaperConfig, paper_policy, run_side
from safeguard.paper._scenario import default_plan
from safeguard.paper._summary import summarize

DURATION = "8h"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("paper") / "report"
    argv = [
        "paper",
        "--seed",
        "7",
        "--duration",
        DURATION,
        "--bar",
        "2m",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_the_report_is_written(report: Path) -> None:
    html = (report / "index.html").read_text(encoding="utf-8")
    for picture in ("equity.png", "price.png", "health.png", "events.png"):
        assert (report / picture).read_bytes().startswith(PNG_MAGIC)
        assert f'src="{picture}"' in html
    assert 'href="journal.jsonl"' in html
    assert "Decisions, explained" in html


def test_the_summary_matches_a_recount_of_the_journal(report: Path) -> None:
    summary = json.loads((report / "summary.json").read_text(encoding="utf-8"))
    records = list(read_journal(report / "journal.jsonl"))
    for run in ("guarded", "naive"):
        mine = [r for r in records if r["run"] == run]
        figures = summary["runs"][run]
        orders = [r for r in mine if r["kind"] == "order"]
        denied = Counter(r["code"] for r in orders if r["outcome"] == "denied")
        assert figures["orders"] == len(orders)
        assert figures["denied"] == dict(denied)
        assert figures["liquidations"] == sum(1 for r in mine if r["kind"] == "liquidation")
        assert figures["bans"] == sum(1 for r in mine if r["kind"] == "ban")
        assert figures["duplicates"] == sum(r["copies"] - 1 for r in orders if r["copies"] > 1)
        [end] = [r for r in mine if r["kind"] == "end"]
        assert figures["end_equity"] == pytest.approx(end["equity"])


def test_the_journal_command_explains_the_denials(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = list(read_journal(report / "journal.jsonl"))
    denied = [r for r in records if r["kind"] == "order" and r["outcome"] == "denied"]
    assert main(["journal", str(report), "--run", "guarded", "--grep", "denied"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(denied)
    for line, record in zip(lines, denied, strict=True):
        assert f"order {record['n']} " in line
        assert record["code"] in line


def test_the_journal_summary_is_a_table_not_python_reprs(
    report: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["journal", str(report), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "guarded" in out
    assert "naive" in out
    assert "PnL (USDT)" in out
    assert "RunSummary" not in out
    assert "{'" not in out  # no dict repr
    assert main(["journal", str(report), "--summary", "--run", "naive"]) == 0
    only = capsys.readouterr().out
    assert "naive" in only
    assert "guarded" not in only


def test_a_failed_order_line_names_its_code_once() -> None:
    record = {"kind": "order", "run": "guarded", "n": 4, "side": "buy", "amount": 0.1,
              "symbol": "BTC/USDT:USDT", "type": "market", "outcome": "failed", "t": 0.0,
              "code": "TRADING_REDUCING",
              "reason": "TRADING_REDUCING: kill switch REDUCING: only reducing orders"}  # fmt: skip
    [line] = [line for line in explain([record]) if "order 4" in line]
    assert line.count("TRADING_REDUCING") == 1, line
    assert line.endswith("failed TRADING_REDUCING: kill switch REDUCING: only reducing orders")


def _both_runs(tmp: Path, seed: int) -> list[dict[str, Any]]:
    config = PaperConfig(
        policy=paper_policy(None, tmp / "state"),
        faults=default_plan(8 * 3600, ["BTCUSDT"], seed=seed),
        seed=seed,
        duration_s=8 * 3600,
        bar_s=120.0,
    )
    with JournalWriter(tmp / "journal.jsonl") as writer:
        for run in ("guarded", "naive"):
            run_side(config, run, writer.for_run(run))  # type: ignore[arg-type]
    return list(read_journal(tmp / "journal.jsonl"))


def _assert_guard_saved_the_account(records: list[dict[str, Any]]) -> None:
    guarded, naive = summarize(records, "guarded"), summarize(records, "naive")
    assert guarded.liquidations == 0
    assert guarded.duplicates == 0
    assert guarded.bans == 0
    # Same seed, same faults: the naive run doubles orders, gets banned or is liquidated.
    assert naive.duplicates + naive.bans + naive.liquidations > 0
    assert naive.bans > 0  # hammering through the throttling episode always ends in a ban
    assert naive.lost_order_answers > 0


@pytest.mark.parametrize("seed", [1, 2])
def test_the_guard_saves_the_account_where_the_naive_client_fails(
    tmp_path: Path, seed: int
) -> None:
    _assert_guard_saved_the_account(_both_runs(tmp_path, seed))


def test_the_guard_saves_the_account_in_the_reported_run_too(report: Path) -> None:
    _assert_guard_saved_the_account(list(read_journal(report / "journal.jsonl")))


def test_a_bad_symbol_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["paper", "--symbols", "DOGE/USDT:USDT", "--out", str(tmp_path / "x")])
    assert code == 2
    assert "DOGE/USDT:USDT" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


BUYER = (
    "class Buyer:\n"
    "    def __init__(self, symbols):\n"
    "        self.symbol = symbols[0]\n"
    "    def on_bar(self, exchange, bar):\n"
    "        if bar.index == 3:\n"
    "            exchange.create_order(self.symbol, 'market', 'buy', 0.01, None,\n"
    "                                  {'stopLoss': {'triggerPrice': 50000.0}})\n"
)


def test_the_policy_file_rules_the_guarded_run_only(tmp_path: Path) -> None:
    (tmp_path / "buyer.py").write_text(BUYER, encoding="utf-8")
    (tmp_path / "calm.toml").write_text("seed = 1\n", encoding="utf-8")
    (tmp_path / "policy.toml").write_text(
        "[risk]\nmax_notional_per_order = 100\n", encoding="utf-8"
    )
    out = tmp_path / "report"
    argv = [
        "paper",
        "--duration",
        "1h",
        "--bar",
        "2m",
        "--no-progress",
        "--out",
        str(out),
        "--strategy",
        f"{tmp_path / 'buyer.py'}:Buyer",
        "--faults",
        str(tmp_path / "calm.toml"),
        "--policy",
        str(tmp_path / "policy.toml"),
    ]
    assert main(argv) == 0
    orders = [r for r in read_journal(out / "journal.jsonl") if r["kind"] == "order"]
    assert [(r["run"], r["outcome"], r["code"]) for r in orders] == [
        ("guarded", "denied", "NOTIONAL_PER_ORDER"),  # 0.01 BTC is about 900 USDT
        ("naive", "placed", None),
    ]


def test_a_bad_policy_file_is_refused_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "policy.toml").write_text("[risk]\nmax_levrage = 5\n", encoding="utf-8")
    argv = ["paper", "--policy", str(tmp_path / "policy.toml"), "--out", str(tmp_path / "x")]
    assert main(argv) == 2
    assert "risk.max_levrage" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_users_strategy_runs_over_loopback_http(tmp_path: Path) -> None:
    strategy = tmp_path / "buyer.py"
    strategy.write_text(
        "class Buyer:\n"
        "    def __init__(self, symbols):\n"
        "        self.symbol = symbols[0]\n"
        "    def on_bar(self, exchange, bar):\n"
        "        if bar.index == 3:\n"
        "            exchange.create_order(self.symbol, 'market', 'buy', 0.01, None,\n"
        "                                  {'stopLoss': {'triggerPrice': 50000.0}})\n",
        encoding="utf-8",
    )
    faults = tmp_path / "calm.toml"
    faults.write_text("seed = 1\n", encoding="utf-8")
    out = tmp_path / "report"
    argv = [
        "paper",
        "--http",
        "--duration",
        "1h",
        "--bar",
        "2m",
        "--strategy",
        f"{strategy}:Buyer",
        "--faults",
        str(faults),
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    records = list(read_journal(out / "journal.jsonl"))
    placed = [r for r in records if r["kind"] == "order" and r["outcome"] == "placed"]
    assert [(r["run"], r["n"], r["copies"]) for r in placed] == [
        ("guarded", 1, 1),
        ("naive", 1, 1),
    ]
    assert all(r["transport"] == "http" for r in records if r["kind"] == "start")


def test_a_run_is_determined_by_its_seed(tmp_path: Path) -> None:
    def run(folder: str) -> list[dict[str, Any]]:
        config = PaperConfig(
            policy=paper_policy(None, tmp_path / folder / "state"),
            faults=default_plan(2 * 3600, ["BTCUSDT"], seed=4),
            seed=4,
            duration_s=2 * 3600,
            bar_s=120.0,
        )
        with JournalWriter(tmp_path / folder / "journal.jsonl") as writer:
            for side in ("guarded", "naive"):
                run_side(config, side, writer.for_run(side))  # type: ignore[arg-type]
        return list(read_journal(tmp_path / folder / "journal.jsonl"))

    first, second = run("a"), run("b")
    assert len(first) == len(second)
    # Client order ids are random by design; everything else, to the cent and the second, is not.
    bars = [(r["t"], r["equity"], r["marks"]) for r in first if r["kind"] == "bar"]
    assert bars == [(r["t"], r["equity"], r["marks"]) for r in second if r["kind"] == "bar"]
    for run_name in ("guarded", "naive"):
        assert summarize(first, run_name) == summarize(second, run_name)


def _without_the_report_extra(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A fresh process where matplotlib and jinja2 do not import, as after ``pip install .``."""
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None\n"
        "sys.modules['jinja2'] = None\n"
        "from safeguard.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False,
        cwd=cwd,
    )  # fmt: skip


def test_without_the_report_extra_paper_writes_the_journal_and_says_how_to_get_the_report(
    tmp_path: Path,
) -> None:
    out = tmp_path / "report"
    argv = ["paper", "--duration", "1h", "--bar", "2m", "--out", str(out), "--no-progress"]
    done = _without_the_report_extra(argv, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "pip install 'safeguard[report]'" in done.stdout
    assert "report:" not in done.stdout  # no page to point at
    assert not (out / "index.html").exists()
    assert not list(out.glob("*.png"))
    assert (out / "journal.jsonl").exists()
    assert (out / "summary.json").exists()


def test_without_the_report_extra_stress_png_says_what_to_install(tmp_path: Path) -> None:
    done = _without_the_report_extra(
        ["stress", "--example", "--png", str(tmp_path / "h.png")], tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "pip install 'safeguard[report]'" in done.stderr


def test_plotting_is_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert not [d for d in project["project"]["dependencies"] if d.startswith("matplotlib")]
    assert not [d for d in project["project"]["dependencies"] if d.startswith("jinja2")]
    assert project["project"]["optional-dependencies"]["report"] == [
        "matplotlib>=3.10",
        "jinja2>=3.1",
    ]
