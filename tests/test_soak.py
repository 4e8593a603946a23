"""The soak script (benchmarks/soak.py) on a short simulated span: its invariants hold on a run
with faults, and each of them fails when the thing it guards is broken behind the guard's back.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SOAK = Path(__file__).resolve().parent.parent / "benchmarks" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("safeguard_soak", SOAK)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ran(soak: ModuleType) -> Iterator[Any]:
    run = soak.Soak(2.0, seed=4)
    run.run()
    # judged before any test below breaks something behind the guard's back
    run.first_check = run.check()
    try:
        yield run
    finally:
        run.close()


def _verdicts(run: Any) -> dict[str, bool]:
    return {inv.name: inv.ok for inv in run.check()}


def test_a_short_soak_with_faults_keeps_every_invariant(ran: Any) -> None:
    assert [inv.ok for inv in ran.first_check] == [True] * 5, ran.summary(ran.first_check)
    assert sum(ran.fired) > 0  # the run met faults, so the invariants were tested under them
    assert len(ran.account.orders()) > 50
    assert ran.tally.outcomes["create_order: ok"] > 50


def test_the_fault_plan_is_seeded_and_covers_the_run(soak: ModuleType) -> None:
    plan = soak.fault_plan(24, seed=9)
    assert plan == soak.fault_plan(24, seed=9)
    assert plan != soak.fault_plan(24, seed=10)
    kinds = {rule["kind"] for rule in plan["rules"]}
    assert {"error", "ban"} <= kinds
    starts = [r.get("start_s", r.get("at_s", 0.0)) for r in plan["rules"]]
    assert max(starts) > 20 * 3600


def test_an_order_behind_the_guards_back_breaks_the_journal_invariant(ran: Any) -> None:
    raw = ran.account.client()  # same account, no guard: no journal record
    raw.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
    verdicts = _verdicts(ran)
    assert verdicts["journal accounts for every venue order"] is False
    assert verdicts["no duplicate client ids"] is True


def test_a_wallet_change_the_ledger_does_not_know_breaks_the_equity_invariant(
    ran: Any,
) -> None:
    account = ran.account.venue._account(ran.account.api_key)
    account.wallet += 1  # one 1e-8 USDT unit appears from nowhere
    try:
        assert _verdicts(ran)["equity reconciles to the cent"] is False
    finally:
        account.wallet -= 1


def test_main_prints_the_summary_and_exits_zero(
    soak: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert soak.main(["--hours", "0.5", "--seed", "2"]) == 0
    out = capsys.readouterr().out
    assert "soak: 0.5 simulated hours" in out
    assert out.count("[PASS]") == 5
    assert "[FAIL]" not in out
