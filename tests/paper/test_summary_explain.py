"""Summary figures and explanations, from journal records alone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from safeguard.paper._explain import explain
from safeguard.paper._summary import summarize, summarize_all

T0 = 1_767_225_600.0


def _rec(t: float, run: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"t": T0 + t, "run": run, "kind": kind, **fields}


def _order(t: float, run: str, n: int, outcome: str, copies: int, **extra: Any) -> dict[str, Any]:
    base = {
        "n": n,
        "symbol": "BTC/USDT:USDT",
        "side": "buy",
        "type": "market",
        "amount": 0.5,
        "stop": 57_000.0,
        "reduce_only": False,
        "outcome": outcome,
        "code": None,
        "reason": None,
        "findings": [],
        "copies": copies,
    }
    return _rec(t, run, "order", **{**base, **extra})


DENIAL = {
    "code": "STOP_BEYOND_LIQUIDATION",
    "severity": "DENY",
    "message": "stop fill 57,850 sits 0.3 % inside liquidation 57,680; policy needs 1 %",
    "values": {},
}

RECORDS = [
    _rec(0, "guarded", "start", wallet=10_000.0),
    _rec(60, "guarded", "bar", i=0, equity=12_000.0),
    _rec(120, "guarded", "bar", i=1, equity=9_000.0),
    _rec(
        130,
        "guarded",
        "state",
        previous="NORMAL",
        current="DEGRADED",
        metric="error_rate",
        value=0.2,
        threshold=0.1,
    ),
    _order(150, "guarded", 42, "denied", 0, code="STOP_BEYOND_LIQUIDATION", findings=[DENIAL]),
    _rec(150, "guarded", "bar_error", i=2, error_type="OrderDenied", message="repeated"),
    _rec(
        160,
        "guarded",
        "retry",
        method="create_order",
        attempt=1,
        delay_s=0.1,
        reason="may-have-reached-venue",
        error_type="RequestTimeout",
        resolve_first=True,
    ),
    _rec(
        165,
        "guarded",
        "request",
        method="create_order",
        attempt=1,
        outcome="error",
        error_type="RequestTimeout",
    ),
    _rec(
        166,
        "guarded",
        "request",
        method="create_order",
        attempt=1,
        outcome="error",
        error_type="InsufficientFunds",
    ),
    _rec(170, "guarded", "sleep", seconds=2.5),
    _rec(
        190,
        "guarded",
        "state",
        previous="DEGRADED",
        current="NORMAL",
        metric="none",
        value=0.0,
        threshold=0.0,
    ),
    _order(200, "guarded", 43, "placed", 1),
    _rec(300, "guarded", "end", equity=10_500.0),
    _rec(0, "naive", "start", wallet=10_000.0),
    _order(100, "naive", 12, "placed", 4),
    _order(110, "naive", 13, "failed", 2, code="RequestTimeout", reason="timed out"),
    _rec(120, "naive", "request", method="fetch_positions", attempt=1, outcome="throttled"),
    _rec(121, "naive", "ban", until=T0 + 241, seconds=120.0),
    _rec(
        200,
        "naive",
        "liquidation",
        symbol="BTC/USDT:USDT",
        side="long",
        qty=2.0,
        price=57_680.0,
        equity_before=400.0,
        loss=400.0,
    ),
    _rec(300, "naive", "end", equity=100.0),
]


def test_figures_are_counts_over_the_records() -> None:
    guarded = summarize(RECORDS, "guarded")
    assert guarded.pnl == pytest.approx(500.0)
    assert guarded.max_drawdown_pct == pytest.approx(25.0)  # 12,000 down to 9,000
    assert guarded.orders == 2
    assert guarded.orders_placed == 1
    assert guarded.denied == {"STOP_BEYOND_LIQUIDATION": 1}
    assert guarded.duplicates == 0
    assert guarded.lost_order_answers == 1
    assert guarded.waited_s == pytest.approx(2.5)
    assert guarded.degraded_s == pytest.approx(60.0)
    assert guarded.state_changes == 2
    naive = summarize(RECORDS, "naive")
    assert naive.venue_orders == 6
    assert naive.duplicates == 4  # 3 extra copies of order 12, 1 of order 13
    assert naive.failed == {"RequestTimeout": 1}
    assert (naive.throttled_answers, naive.bans, naive.liquidations) == (1, 1, 1)
    assert naive.liquidation_loss == pytest.approx(400.0)
    assert naive.pnl_pct == pytest.approx(-99.0)
    assert set(summarize_all(RECORDS)) == {"guarded", "naive"}


def test_an_unfinished_run_has_no_summary() -> None:
    unfinished = [r for r in RECORDS if not (r["run"] == "naive" and r["kind"] == "end")]
    with pytest.raises(ValueError, match="0 end"):
        summarize(unfinished, "naive")
    with pytest.raises(ValueError, match="run must be"):
        summarize(RECORDS, "both")


def test_a_run_of_identical_refusals_is_told_once() -> None:
    same = [
        _rec(0, "guarded", "start", wallet=10_000.0),
        *(
            _rec(
                60.0 * i,
                "guarded",
                "bar_error",
                i=i,
                error_type="RetriesExhausted",
                message="throttled",
            )
            for i in range(1, 6)
        ),
        _rec(400, "guarded", "bar_error", i=7, error_type="RetriesExhausted", message="other"),
    ]
    assert list(explain(same)) == [
        "guarded 00:01:00  strategy's bar stopped on RetriesExhausted: throttled",
        "guarded 00:05:00  ... and 4 more like it",
        "guarded 00:06:40  strategy's bar stopped on RetriesExhausted: other",
    ]


def test_explanations_carry_the_numbers() -> None:
    lines = list(explain(RECORDS))
    text = "\n".join(lines)
    assert (
        "guarded 00:02:30  order 42 (buy 0.5 BTC/USDT:USDT market, stop 57,000.0) denied "
        "STOP_BEYOND_LIQUIDATION: stop fill 57,850 sits 0.3 % inside liquidation 57,680; "
        "policy needs 1 %"
    ) in lines
    assert "order 12 (buy 0.5 BTC/USDT:USDT market, stop 57,000.0) reached the venue 4" in text
    assert "venue health NORMAL -> DEGRADED: error_rate 0.2 against a threshold of 0.1" in text
    assert "looked the order up by client id before any resend" in text
    assert "venue banned the IP for 120 s" in text
    assert "LIQUIDATED: long 2 BTC/USDT:USDT at mark 57,680.0" in text
    assert "repeated" not in text  # the bar's OrderDenied is told once, by its order
    assert "order 43" not in text  # a plain placed order is not a decision worth a line
    assert all(line.startswith("naive") for line in explain(RECORDS, run="naive"))


def test_the_journal_command_reads_without_ccxt_or_matplotlib(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    code = (
        "import sys; from safeguard.cli import main; "
        f"rc = main(['journal', {str(tmp_path)!r}, '--run', 'naive']); "
        "print(sorted({'ccxt', 'matplotlib'} & set(sys.modules)), file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("[]")
    assert "LIQUIDATED: long 2 BTC/USDT:USDT" in done.stdout
