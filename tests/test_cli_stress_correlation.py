"""``safeguard stress --cascade --correlation estimated --venue URL``: each pair's correlation
from the venue's mark-price klines, over loopback HTTP from an unmodified ccxt."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.cli import main
from safeguard.risk._correlation import estimate_correlation
from safeguard.testing import PaperAccount, paper_account
from safeguard.venue import VenueConfig
from safeguard.venue._config import Regime

# Long BTC, short ETH of the same notional on a thin cross wallet: a hedge exactly as good as
# the two move together.
HEDGE = """
wallet = 2500.0
shocks_pct = [-20.0, -10.0, -5.0, 5.0, 10.0, 20.0]
regimes = ["together"]

[[positions]]
symbol = "BTC/USDT:USDT"
side = "long"
quantity = 1.0
entry_price = 90000.0
mark_price = 90000.0
tiers = "BINANCE_BTCUSDT"

[[positions]]
symbol = "ETH/USDT:USDT"
side = "short"
quantity = 30.0
entry_price = 3000.0
mark_price = 3000.0
tiers = "BINANCE_ETHUSDT"

[depth."BTC/USDT:USDT"]
levels = [[0.0005, 20.0]]

[depth."ETH/USDT:USDT"]
levels = [[0.0005, 600.0]]
"""


@pytest.fixture
def venue_url() -> Iterator[str]:
    """A venue whose indexes share a market factor (correlation 0.9), four hours on."""
    paper: PaperAccount = paper_account(
        config=VenueConfig(
            index_correlation=0.9,
            regimes=(Regime(name="calm", annual_vol=0.8, mean_duration_s=1e9),),
            jumps_per_day=0.0,
            premium_sd=0.00001,
        )
    )
    try:
        paper.advance(4 * 3600.0)
        yield paper.serve().url
    finally:
        paper.close()


def _book(tmp_path: Path) -> Path:
    path = tmp_path / "hedge.toml"
    path.write_text(HEDGE, encoding="utf-8")
    return path


def test_the_estimate_is_read_from_the_venues_klines(
    tmp_path: Path, venue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[risk.stress]\ncorrelation_toward_one = 0.0\n", encoding="utf-8")
    code = main(
        [
            "stress",
            str(_book(tmp_path)),
            "--policy",
            str(policy),
            "--cascade",
            "--json",
            "--correlation",
            "estimated",
            "--venue",
            venue_url,
        ]
    )
    assert code in (0, 1)
    cascade = json.loads(capsys.readouterr().out)["cascade"]
    uncorrelated = {
        row["depth_multiplier"]: row["shock"]
        for row in cascade["smallest_liquidating_shock"]
        if row["correlation"] == 0.0
    }
    assert uncorrelated[1.0] == pytest.approx(-0.05)
    out = cascade["estimated_correlation"]
    (pair,) = out["pairs"]
    assert pair["pair"] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert pair["fallback_reason"] is None
    assert pair["returns"] == 239  # the policy's 240 one-minute bars
    assert pair["measured"] == pytest.approx(0.9, abs=0.2)
    assert pair["correlation"] == pytest.approx(pair["measured"])
    shocks = {row["depth_multiplier"]: row["shock"] for row in out["smallest_liquidating_shock"]}
    assert sorted(shocks) == [0.25, 1.0, 4.0]
    # Near 0.9 the short ETH hedges the long BTC: the -5 % that breaks the account at
    # correlation 0 or 0.5 (the grid's columns, above) does not break it here.
    assert shocks[1.0] is None or abs(shocks[1.0]) > 0.05


def test_the_table_names_the_estimate(
    tmp_path: Path, venue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["stress", str(_book(tmp_path)), "--cascade", "--correlation", "estimated",
          "--venue", venue_url])  # fmt: skip
    out = capsys.readouterr().out
    assert "estimated correlation (BTC/USDT:USDT~ETH/USDT:USDT" in out
    assert "on 239 returns" in out


def test_a_symbol_the_venue_does_not_list_is_an_error_not_a_fallback(
    tmp_path: Path, venue_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    book = tmp_path / "doge.toml"
    book.write_text(HEDGE.replace("ETH/USDT:USDT", "DOGE/USDT:USDT"), encoding="utf-8")
    code = main(["stress", str(book), "--cascade", "--correlation", "estimated",
                 "--venue", venue_url])  # fmt: skip
    assert code == 2
    assert "DOGE/USDT:USDT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        (["--correlation", "estimated", "--venue", "http://127.0.0.1:9"], "needs --cascade"),
        (["--cascade", "--correlation", "estimated"], "give --venue URL"),
    ],
)
def test_estimated_without_its_inputs_is_refused(
    tmp_path: Path, extra: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["stress", str(_book(tmp_path)), *extra]) == 2
    assert problem in capsys.readouterr().err


def test_the_bar_still_open_on_the_venue_is_not_a_return(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Four hours and 30 s on: the venue's last one-minute bar is half a minute old. Its close
    # is the mark now, and a return ending there spans half an interval: the guard never
    # counts one (its window is completed intervals), and the command must measure the same.
    paper = paper_account(config=VenueConfig(index_correlation=0.5, jumps_per_day=0.0))
    try:
        paper.advance(4 * 3600.0 + 30.0)
        server = paper.serve()
        client = paper.http_client(server)
        now_ms = int(paper.clock.time() * 1000)
        closed: dict[str, dict[int, float]] = {}
        for symbol in ("BTC/USDT:USDT", "ETH/USDT:USDT"):
            bars = client.fetch_ohlcv(symbol, "1m", limit=241, params={"price": "mark"})
            assert bars[-1][0] + 60_000 > now_ms  # the venue does serve the open bar
            closed[symbol] = {bar[0] // 60_000: bar[4] for bar in bars if bar[0] + 60_000 <= now_ms}
        expected = estimate_correlation(closed, fallback=0.8, min_samples=30, full_samples=120)
        assert main(["stress", str(_book(tmp_path)), "--cascade", "--json", "--correlation",
                     "estimated", "--venue", server.url]) in (0, 1)  # fmt: skip
    finally:
        paper.close()
    (pair,) = json.loads(capsys.readouterr().out)["cascade"]["estimated_correlation"]["pairs"]
    (want,) = expected.pairs
    assert pair["returns"] == want.samples == 239
    assert pair["measured"] == pytest.approx(want.measured, abs=1e-12)


def test_a_venue_with_too_few_bars_falls_back_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A venue five minutes old with no seeded history: four completed bars, four returns.
    paper = paper_account(config=VenueConfig(kline_history=0))
    try:
        paper.advance(300.0)
        server = paper.serve()
        code = main(["stress", str(_book(tmp_path)), "--cascade", "--json", "--correlation",
                     "estimated", "--venue", server.url])  # fmt: skip
    finally:
        paper.close()
    assert code in (0, 1)
    (pair,) = json.loads(capsys.readouterr().out)["cascade"]["estimated_correlation"]["pairs"]
    assert pair["measured"] is None
    assert pair["correlation"] == 0.8  # the policy's cascade_correlation
    assert pair["fallback_reason"] == "4 common returns, 30 needed"
