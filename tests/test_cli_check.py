"""``safeguard check``: the verdict on one order as a table or JSON, with honest exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from safeguard.cli import main


def test_no_arguments_prints_a_real_report_for_the_sample_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "verdict: ALLOW" in out
    assert "market buy 0.5 BTC/USDT:USDT, 10x isolated, stop 58,800 (mark)" in out
    assert "binanceusdm" in out
    assert "liquidation price" in out
    assert "max safe amount" in out


def test_json_output_is_the_verdict(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["decision"] == "ALLOW"
    assert data["findings"] == []
    cost = data["costing"]
    assert cost["liquidation_price"] < cost["stop_effective_price"] < cost["expected_entry"]
    assert data["max_safe_amount"] >= 0.5


def test_a_denied_order_exits_1_and_names_the_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "buy", "0.5", "--leverage", "25", "--stop", "55000", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["decision"] == "DENY"
    codes = {f["code"] for f in data["findings"]}
    assert codes == {"LEVERAGE_ABOVE_POLICY", "STOP_BEYOND_LIQUIDATION"}
    assert main(["check", "buy", "0.5", "--leverage", "25", "--stop", "55000"]) == 1
    out = capsys.readouterr().out
    assert "verdict: DENY" in out
    assert "STOP_BEYOND_LIQUIDATION" in out
    assert "beyond liquidation" in out


def test_an_order_without_a_stop_is_denied(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "sell", "0.2", "--json"]) == 1
    assert {f["code"] for f in json.loads(capsys.readouterr().out)["findings"]} == {"STOP_REQUIRED"}


def test_degraded_shows_both_faces(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--degraded"]) == 0
    out = capsys.readouterr().out
    assert "fill model: degraded" in out
    assert "expected" in out
    assert "degraded" in out


def test_limit_cross_order_with_a_position(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "sell", "0.3", "60100", "--stop", "61500", "--margin-mode", "cross"]
    argv += ["--position", "-0.2", "--wallet", "20000", "--json"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["costing"]["position_after"] == pytest.approx(-0.5)
    assert data["costing"]["entry_fee_rate"] == pytest.approx(0.0002)  # rests as a maker


def test_bad_input_exits_2_naming_the_field(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "buy", "-1", "--stop", "58000"]) == 2
    assert "amount" in capsys.readouterr().err
    assert main(["check", "buy"]) == 2
    assert "amount is required" in capsys.readouterr().err


def test_the_command_runs_as_a_subprocess() -> None:
    # One subprocess only: starting the CLI imports every command module (a few seconds on a
    # busy machine); everything else runs in-process through safeguard.cli.main.
    result = subprocess.run(
        [sys.executable, "-m", "safeguard", "check", "buy", "1", "--stop", "59000"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "verdict: ALLOW" in result.stdout
    assert "market buy 1 BTC/USDT:USDT, 10x isolated, stop 59,000 (mark)" in result.stdout


def test_the_liquidation_band_is_shown_from_the_warning_level_to_liquidation(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    band = data["band"]
    assert band["direction"] == -1
    liq = data["costing"]["liquidation_price"]
    assert band["liquidation"]["price"] == pytest.approx(liq, rel=2e-3)
    assert band["mark"] > band["warning"]["price"] > band["liquidation"]["price"]
    assert band["liquidation"]["one_sigma_time_s"] > band["warning"]["one_sigma_time_s"] > 0
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "liquidation band (margin ratio now" in out
    assert f"{band['liquidation']['price']:,.2f}" in out
