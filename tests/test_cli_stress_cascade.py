"""``safeguard stress --cascade``: the worst cell's cascade path and the liquidation bands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard.cli import main

# One isolated long: 1 BTC at 60,000 with 6,000 of margin. Binance's tier 1 (MMR 0.4 %) puts its
# liquidation at (60,000 - 6,000) / (1 - 0.004) = 54,216.87, a 9.64 % fall.
ONE_LONG = """
wallet = 0.0
shocks_pct = [-20.0, -10.0, -5.0, 5.0]
regimes = ["together"]

[[positions]]
symbol = "BTC/USDT:USDT"
side = "long"
quantity = 1.0
entry_price = 60000.0
mark_price = 60000.0
tiers = "BINANCE_BTCUSDT"
isolated_wallet = 6000.0

[depth."BTC/USDT:USDT"]
levels = [[0.0005, 2.0], [0.002, 10.0]]
"""


def _book(tmp_path: Path) -> Path:
    path = tmp_path / "book.toml"
    path.write_text(ONE_LONG, encoding="utf-8")
    return path


def test_cascade_json_holds_the_worst_path_and_the_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["stress", str(_book(tmp_path)), "--json", "--cascade", "--volatility", "0.01"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1  # the stress grid still decides the exit code: -10 % liquidates
    cascade = out["cascade"]
    worst = cascade["worst_path"]
    assert worst["shock"] == -0.1  # the smallest shock leaving nothing (ties: the milder one)
    (close,) = worst["closes"]
    assert close["node"] == "account:BTC/USDT:USDT"
    assert close["trigger_mark"] == pytest.approx(54_000.0)
    # Every depth leaves the pool bankrupt (zero): the tie goes to the first, a quarter of the
    # book, where 1 BTC sells 0.5 at 0.05 % and 0.5 at 0.2 % below the mark.
    assert worst["depth_multiplier"] == 0.25
    assert close["fill_price"] == pytest.approx(54_000.0 * (1 - (0.5 * 0.0005 + 0.5 * 0.002)))
    rows = {
        (r["correlation"], r["depth_multiplier"]): r["shock"]
        for r in cascade["smallest_liquidating_shock"]
    }
    assert set(rows.values()) == {-0.1}
    band, account = cascade["bands"]
    assert band["subject"] == "BTC/USDT:USDT"
    assert band["liquidation"]["price"] == pytest.approx(54_000.0 / 0.996)
    distance = band["liquidation"]["distance"]
    assert band["liquidation"]["one_sigma_hours"] == pytest.approx((distance / 0.01) ** 2)
    assert band["warning"]["price"] > band["liquidation"]["price"]
    assert account["subject"] == "account"
    assert account["liquidation"]["price"] == pytest.approx(0.9 / 0.996)


def test_cascade_table_prints_the_path_and_the_band(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stress", str(_book(tmp_path)), "--cascade"])
    out = capsys.readouterr().out
    assert "Cascade, worst cell: BTC/USDT:USDT -10.0%" in out
    assert "54,000.00" in out  # the trigger mark
    assert "Liquidation band" in out
    assert "54,216.87" in out
    assert "--volatility" in out  # no volatility given: the band has no times


def test_without_cascade_the_json_has_no_cascade(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stress", str(_book(tmp_path)), "--json"])
    assert "cascade" not in json.loads(capsys.readouterr().out)


def test_the_cascade_path_and_the_band_are_drawn_as_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "out" / "cascade.png"
    main(["stress", str(_book(tmp_path)), "--cascade", "--cascade-png", str(target)])
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert target.stat().st_size > 5_000
    assert f"cascade plot written to {target}" in capsys.readouterr().out


def test_a_cascade_plot_without_the_cascade_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stress", str(_book(tmp_path)), "--cascade-png", str(tmp_path / "c.png")]) == 2
    assert "--cascade-png needs --cascade" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()
