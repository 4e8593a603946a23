"""Every example runs as a user would run it (``python examples/NAME.py`` from the repo root)
and says what it is there to show.

The examples start together (each is a few seconds of imports and simulated market on two
shared cores) and each test waits for its own; a hung example fails on the timeout instead of
hanging the suite.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
TIMEOUT_S = 120

COMMANDS = {
    "sync_loop": [sys.executable, "examples/sync_loop.py"],
    "async_loop": [sys.executable, "examples/async_loop.py"],
    "http_paper": [sys.executable, "examples/http_paper.py"],
    "risk_limits": [sys.executable, "examples/risk_limits.py"],
    "stream_strategy": [sys.executable, "examples/stream_strategy.py"],
    "test_my_strategy": [
        sys.executable, "-m", "pytest", "examples/test_my_strategy.py", "-q", "-p",
        "no:cacheprovider",
    ],
}  # fmt: skip


@dataclass(frozen=True)
class Ran:
    returncode: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.out}\n--- stderr\n{self.err[-3000:]}"


class Runs:
    def __init__(self) -> None:
        self._procs = {
            name: subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for name, command in COMMANDS.items()
        }
        self._done: dict[str, Ran] = {}

    def __getitem__(self, name: str) -> Ran:
        if name not in self._done:
            proc = self._procs[name]
            try:
                out, err = proc.communicate(timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                pytest.fail(f"{name} did not finish in {TIMEOUT_S} s:\n{out}\n{err[-3000:]}")
            self._done[name] = Ran(proc.returncode, out, err)
        return self._done[name]

    def close(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def runs() -> Iterator[Runs]:
    started = Runs()
    try:
        yield started
    finally:
        started.close()


def _number(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, f"{pattern!r} not in:\n{text}"
    return float(found.group(1).replace(",", ""))


def test_every_example_is_exercised() -> None:
    shipped = {p.stem for p in EXAMPLES.glob("*.py")}
    assert shipped == set(COMMANDS)
    assert (EXAMPLES / "policy.toml").is_file()


def test_sync_loop_survives_faults_without_doubling_an_order(runs: Runs) -> None:
    ran = runs["sync_loop"]
    assert ran.returncode == 0, ran
    assert _number(r"orders on the venue: (\d+)", ran.out) > 0
    assert _number(r"unresolved in the journal: (\d+)", ran.out) == 0
    assert _number(r"duplicate client order ids: (\d+)", ran.out) == 0
    fired = re.search(r"faults fired per rule: \[([\d, ]+)\]", ran.out)
    assert fired, ran
    # Every misbehaviour the example's docstring lists (JSON 503s, orders carried out behind
    # a 503, answers that never arrive, an HTML 502) did happen in the run it prints.
    assert all(int(n) > 0 for n in fired.group(1).split(",")), ran
    assert "may-have-reached-venue" in ran.out  # an ambiguous order was resolved, not resent


def test_async_loop_trades_two_symbols_on_one_guarded_exchange(runs: Runs) -> None:
    ran = runs["async_loop"]
    assert ran.returncode == 0, ran
    assert re.search(r"^BTC/USDT:USDT: long [\d.]+ at [\d.]+, stop [\d.]+$", ran.out, re.M)
    assert re.search(r"^ETH/USDT:USDT: long [\d.]+ at [\d.]+, stop [\d.]+$", ran.out, re.M)
    assert _number(r"trades: (\d+)", ran.out) > 0
    assert _number(r"duplicate client order ids: (\d+)", ran.out) == 0
    # The misbehaviour its docstring lists (slow answers, 503s, a lost order answer) happened.
    fired = re.search(r"faults fired per rule: \[([\d, ]+)\]", ran.out)
    assert fired, ran
    assert all(int(n) > 0 for n in fired.group(1).split(",")), ran


def test_http_paper_trades_with_plain_ccxt_on_the_served_venue(runs: Runs) -> None:
    ran = runs["http_paper"]
    assert ran.returncode == 0, ran
    assert re.search(r"^venue at http://127\.0\.0\.1:\d+$", ran.out, re.M)
    buy = re.search(r"^filled order (\d+): buy 0\.02 at [\d.]+$", ran.out, re.M)
    sell = re.search(r"^filled order (\d+): sell 0\.02 at [\d.]+$", ran.out, re.M)
    assert buy, ran
    assert sell, ran
    assert buy.group(1) != sell.group(1)
    assert re.search(r"^position BTC/USDT:USDT long 0\.02 entry [\d.]+", ran.out, re.M)
    assert "positions after closing: 0" in ran.out


def test_stream_strategy_trades_on_watches_and_the_guard_sees_the_stall(runs: Runs) -> None:
    ran = runs["stream_strategy"]
    assert ran.returncode == 0, ran
    assert re.search(r"^BTC/USDT:USDT: long 0\.01 \(stop [\d.]+\)$", ran.out, re.M), ran
    orders = _number(r"orders: (\d+);", ran.out)
    assert orders > 2
    assert _number(r"fills seen on watch_orders: (\d+)", ran.out) == orders
    assert _number(r"REST reads on the order path after the first order: (\d+)", ran.out) == 0
    assert _number(r"verdicts while the streams stalled: (\d+) DENY", ran.out) > 0


def test_risk_limits_example_trips_and_resumes_the_kill_switch(runs: Runs) -> None:
    ran = runs["risk_limits"]
    assert ran.returncode == 0, ran
    expected_in_order = [
        "denied LEVERAGE_ABOVE_POLICY",
        "denied STOP_REQUIRED",
        "denied STOP_BEYOND_LIQUIDATION",
        "stop 5% away at 5x: filled order",
        "kill switch tripped: DAILY_LOSS: daily loss",
        "adding after the crash: refused TRADING_HALTED",
        "resume refused: COOLING_PERIOD",
        "resumed to REDUCING by operator",
        "new exposure while REDUCING: refused TRADING_REDUCING",
        "resumed to ACTIVE by operator",
        "trading again: filled order",
    ]
    position = 0
    for text in expected_in_order:
        found = ran.out.find(text, position)
        assert found >= 0, f"{text!r} missing (or out of order) in:\n{ran.out}"
        position = found
    loss = _number(r"DAILY_LOSS: daily loss ([\d,.]+) exceeds the limit 150\.00", ran.out)
    assert loss > 150.0


def test_the_example_strategy_test_file_passes_under_pytest(runs: Runs) -> None:
    ran = runs["test_my_strategy"]
    assert ran.returncode == 0, ran
    assert re.search(r"\b5 passed\b", ran.out), ran
