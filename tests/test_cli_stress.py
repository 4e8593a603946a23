"""``safeguard stress``: a table, JSON, a PNG heat map, and one-line errors for bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguard.cli import main
from safeguard.cli._stress import EXAMPLE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SAFE_TOML = """
wallet = 500000.0
shocks_pct = [-20.0, -10.0, 10.0, 20.0]
regimes = ["together", "hedges_fail"]

[[positions]]
symbol = "BTC/USDT:USDT"
side = "long"
quantity = 1.0
entry_price = 60000.0
mark_price = 60000.0
tiers = "BINANCE_BTCUSDT"

[[positions]]
symbol = "ETH/USDT:USDT"
side = "short"
quantity = 10.0
entry_price = 3000.0
mark_price = 3000.0
tiers = [[0.0, 300000.0, 0.005, 125.0], [300000.0, 800000.0, 0.0065, 100.0]]
isolated_wallet = 10000.0

[depth."BTC/USDT:USDT"]
levels = [[0.0005, 2.0], [0.002, 10.0]]

[depth."ETH/USDT:USDT"]
levels = [[0.0005, 20.0], [0.002, 100.0]]
"""


def test_the_example_prints_a_table_and_says_it_does_not_survive(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["stress", "--example"])
    out = capsys.readouterr().out
    assert code == 0  # a demonstration that worked, though its account is liquidated somewhere
    for regime in ("together", "independent", "hedges_fail"):
        assert regime in out
    assert "smallest liquidating shock" in out
    assert "-50.0%" in out


def test_png_writes_a_real_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "grid.png"
    main(["stress", "--example", "--png", str(target), "--regime", "together"])
    assert target.read_bytes().startswith(PNG_SIGNATURE)
    assert target.stat().st_size > 2_000
    assert str(target) in capsys.readouterr().out


def test_a_toml_file_that_survives_exits_zero_with_its_own_grid(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "book.toml"
    path.write_text(SAFE_TOML)
    assert main(["stress", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["survives"] is True
    assert {(c["regime"], c["shock"]) for c in report["cells"]} == {
        (r, s) for r in ("together", "hedges_fail") for s in (-0.2, -0.1, 0.1, 0.2)
    }
    assert report["smallest_liquidating_shock"] == {"together": None, "hedges_fail": None}
    assert report["account_equity"] == pytest.approx(510_000.0)


def test_a_json_file_is_read_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "book.json"
    path.write_text(json.dumps(EXAMPLE))
    assert main(["stress", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["survives"] is False
    assert report["smallest_liquidating_shock"]["together"]["grid"] == pytest.approx(0.15)


@pytest.mark.parametrize(
    ("mutate", "named"),
    [
        (lambda d: d.pop("wallet"), "wallet"),
        (lambda d: d.update(wallet=-1.0), "wallet"),
        (lambda d: d["positions"][0].update(side="BUY"), "positions.0.side"),
        (lambda d: d["positions"][1].update(quantity=float("nan")), "positions.1.quantity"),
        (lambda d: d["positions"][1].update(quantity=-2.0), "positions.1: ETH/USDT:USDT: quantity"),
        # read as 1 BTC and 2 BTC: positions nobody wrote were stressed
        (lambda d: d["positions"][0].update(quantity=True), "positions.0.quantity"),
        (lambda d: d["positions"][0].update(quantity="2"), "positions.0.quantity"),
        (
            lambda d: d["depth"]["BTC/USDT:USDT"].update(levels=[[0.01, 1.0], [0.001, 1.0]]),
            "offset",
        ),
        (lambda d: d["positions"][0].update(tiers="NOPE"), "NOPE"),
        (lambda d: d["positions"][0].update(levrage=3), "positions.0.levrage"),
        (lambda d: d["depth"].pop("SOL/USDT:USDT"), "SOL/USDT:USDT"),
        (lambda d: d.update(shocks_pct=[-150.0]), "shocks_pct"),
        (lambda d: d.update(extra=1), "extra"),
    ],
)
def test_bad_input_is_one_line_naming_the_field_and_exit_two(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: object, named: str
) -> None:
    data = json.loads(json.dumps(EXAMPLE))
    mutate(data)  # type: ignore[operator]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["stress", str(path)]) == 2
    err = capsys.readouterr().err
    assert named in err
    assert "Traceback" not in err


def test_a_file_that_does_not_parse_names_itself(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("wallet = = 3")
    assert main(["stress", str(path)]) == 2
    assert str(path) in capsys.readouterr().err


def test_the_policy_file_sets_the_grid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[risk.stress]\nshocks_pct = [-5.0, 5.0]\nregimes = ["independent"]\n')
    assert main(["stress", "--example", "--policy", str(policy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted((c["regime"], c["shock"]) for c in report["cells"]) == [
        ("independent", -0.05),
        ("independent", 0.05),
    ]


def test_a_liquidated_cell_of_the_heat_map_never_wears_the_equity_scale() -> None:
    """The example's long pool keeps 163 % of its equity after a +15 % forced close: on the
    equity scale alone that cell would be green, the colour of "all is well"."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    from safeguard._config import Policy
    from safeguard.cli._stress import LIQUIDATED_COLOUR, heatmap_colours, scenario
    from safeguard.risk._stress import stress_test

    account, grid = scenario(EXAMPLE, policy=Policy.build())
    report = stress_test(account, grid)
    colours = heatmap_colours(report)
    shocks = list(dict.fromkeys(cell.shock for cell in report.cells))
    regimes = list(dict.fromkeys(cell.regime for cell in report.cells))
    greens = 0
    scale, norm = colormaps["RdYlGn"], Normalize(vmin=0.0, vmax=150.0)
    for row, shock in enumerate(shocks):
        for column, regime in enumerate(regimes):
            cell = report.cell(regime, shock)
            equity_colour = scale(norm(cell.equity / report.account_equity * 100.0))
            if cell.liquidated:
                assert colours[row][column] == LIQUIDATED_COLOUR
                greens += equity_colour[1] > equity_colour[0]  # what it would have been
            else:
                assert colours[row][column] == pytest.approx(equity_colour)
    assert greens > 0  # the example does hold liquidated cells the old scale painted green
