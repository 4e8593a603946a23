"""Index, contract and mark prices: lag, replay, regimes and seeded reproducibility."""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Fill, FundingPayment, Regime, ReplaySeries, Spike, Venue, VenueConfig
from safeguard.venue._prices import IndexProcess, RegimeSpec

FLAT = (Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),)


def flat(**overrides: Any) -> VenueConfig:
    fields: dict[str, Any] = {
        "symbols": ("BTCUSDT",),
        "regimes": FLAT,
        "jumps_per_day": 0.0,
        "premium_mean": 0.0,
        "premium_sd": 0.0,
    }
    fields.update(overrides)
    return VenueConfig(**fields)


@pytest.mark.parametrize("window", [0.0, 3600.0])
def test_the_mark_lags_a_contract_spike_by_its_window(window: float) -> None:
    venue = Venue(flat(mark_window_s=window), clock=ManualClock())
    index = venue.index_price("BTCUSDT")
    venue.spike("BTCUSDT", 5.0, 120)
    venue.advance(60)
    last_move = venue.last_price("BTCUSDT") / index - 1
    mark_move = venue.mark_price("BTCUSDT") / index - 1
    assert venue.index_price("BTCUSDT") == index  # the index never saw the wick
    assert last_move == pytest.approx(0.05, abs=1e-4)
    if window == 0.0:
        assert mark_move == pytest.approx(0.05, abs=1e-4)
    else:
        # 60 s into a 3600 s window: the mark moved by about 1 - exp(-60/3600) of the wick.
        assert 0.0 < mark_move < 0.002
    venue.advance(3 * 3600)
    assert venue.last_price("BTCUSDT") == pytest.approx(index, abs=0.1)
    assert venue.mark_price("BTCUSDT") == pytest.approx(index, rel=1e-4)


def test_scripted_spikes_from_the_config() -> None:
    cfg = flat(
        mark_window_s=0.0, spikes=(Spike(symbol="BTCUSDT", at_s=100, pct=-10, duration_s=50),)
    )
    venue = Venue(cfg, clock=ManualClock())
    start = venue.last_price("BTCUSDT")
    venue.advance(95)
    assert venue.last_price("BTCUSDT") == start
    venue.advance(10)
    assert venue.last_price("BTCUSDT") == pytest.approx(start * 0.9, rel=1e-5)
    venue.advance(60)
    assert venue.last_price("BTCUSDT") == start


def write_csv(path: Path, header: str, rows: list[tuple[float, float]]) -> Path:
    path.write_text(header + "\n" + "".join(f"{t},{p}\n" for t, p in rows), encoding="utf-8")
    return path


def test_replay_drives_the_index_from_a_csv(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "btc.csv", "offset_s,price", [(0, 90_000), (60, 91_000), (120, 85_000.5)]
    )
    venue = Venue(
        flat(replay={"BTCUSDT": csv}, mark_window_s=0.0, book={"spread_ticks": 1}),
        clock=ManualClock(),
    )
    assert venue.index_price("BTCUSDT") == 90_000
    venue.advance(55)
    assert venue.index_price("BTCUSDT") == 90_000
    venue.advance(10)
    assert venue.index_price("BTCUSDT") == 91_000
    assert venue.last_price("BTCUSDT") == 91_000
    venue.advance(600)  # past the end: the last row holds
    assert venue.index_price("BTCUSDT") == 85_000.5
    assert venue.mark_price("BTCUSDT") == pytest.approx(85_000.5)


def test_replay_accepts_epoch_milliseconds_and_rebases_them(tmp_path: Path) -> None:
    csv = write_csv(
        tmp_path / "eth.csv",
        "timestamp_ms,price",
        [(1_600_000_000_000, 3000), (1_600_000_030_000, 3100)],
    )
    series = ReplaySeries.from_csv(csv)
    assert series.price_at(0) == 3000
    assert series.price_at(29.9) == 3000
    assert series.price_at(30) == 3100


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("offset_s,price\n0,100\n10,abc\n", ":3:"),
        ("offset_s,price\n0,100\n10,-5\n", ":3:"),
        ("offset_s,price\n0,100\n10,nan\n", ":3:"),
        ("offset_s,price\n10,100\n5,101\n", "backwards"),
        ("when,price\n0,100\n", "time column"),
        ("offset_s,close\n0,100\n", "price column"),
        ("offset_s,price\n", "no rows"),
    ],
)
def test_a_bad_replay_file_is_refused_with_its_line(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=problem):
        ReplaySeries.from_csv(path)


def test_a_missing_replay_file_names_the_symbol(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"replay\[BTCUSDT\]"):
        Venue(flat(replay={"BTCUSDT": tmp_path / "absent.csv"}), clock=ManualClock())


def test_volatility_regimes_switch_and_set_the_dispersion() -> None:
    calm = RegimeSpec("calm", 0.1, 1e12)
    wild = RegimeSpec("wild", 3.0, 1e12)

    def spread(regime: RegimeSpec) -> float:
        process = IndexProcess(100.0, random.Random(1), (regime,), jumps_per_day=0, jump_sigma=0)
        prices = [process.step(60.0) for _ in range(2000)]
        returns = [b / a - 1 for a, b in itertools.pairwise(prices)]
        return sum(r * r for r in returns) / len(returns)

    assert spread(wild) > 100 * spread(calm)
    switching = IndexProcess(
        100.0,
        random.Random(2),
        (RegimeSpec("a", 0.5, 600), RegimeSpec("b", 0.5, 600)),
        jumps_per_day=0,
        jump_sigma=0,
    )
    seen = set()
    for _ in range(500):
        switching.step(10.0)
        seen.add(switching.regime_name)
    assert seen == {"a", "b"}


def test_jumps_show_up_as_large_single_step_moves() -> None:
    process = IndexProcess(
        100.0,
        random.Random(3),
        (RegimeSpec("still", 0.0, 1e12),),
        jumps_per_day=50.0,
        jump_sigma=0.05,
    )
    prices = [100.0] + [process.step(60.0) for _ in range(1440)]
    moves = [abs(b / a - 1) for a, b in itertools.pairwise(prices)]
    assert sum(1 for m in moves if m > 0.005) >= 20  # ~50 jumps in a day, most sizeable
    assert sum(1 for m in moves if m == 0.0) > 1000  # no diffusion between them


def run(seed: int, chunks: list[float]) -> tuple[list[float], list[tuple[float, float]]]:
    venue = Venue(VenueConfig(seed=seed), clock=ManualClock())
    venue.create_account("k", "s", wallet=50_000.0)
    marks: list[float] = []
    for i, chunk in enumerate(chunks):
        venue.advance(chunk)
        marks.append(venue.mark_price("BTCUSDT"))
        side = "BUY" if i % 2 == 0 else "SELL"
        venue.place_order("k", symbol="ETHUSDT", side=side, type="MARKET", quantity=0.5)
    fills = [(e.price, e.qty) for e in venue.events if isinstance(e, Fill)]
    return marks, fills


def test_the_same_seed_gives_the_same_prices_and_fills() -> None:
    chunks = [600.0] * 12
    assert run(11, chunks) == run(11, chunks)
    assert run(11, chunks)[0] != run(12, chunks)[0]


def test_the_market_does_not_depend_on_how_time_was_chunked() -> None:
    a = Venue(VenueConfig(seed=5), clock=ManualClock())
    b = Venue(VenueConfig(seed=5), clock=ManualClock())
    a.advance(3600)
    for _ in range(360):
        b.advance(7.5)
        b.advance(2.5)
    for symbol in ("BTCUSDT", "ETHUSDT", "SOLUSDT"):
        assert a.mark_price(symbol) == b.mark_price(symbol)
        assert a.depth(symbol, 20) == b.depth(symbol, 20)


def test_a_simulated_day_runs_through_funding_and_the_24h_ticker() -> None:
    venue = Venue(VenueConfig(seed=9), clock=ManualClock())
    venue.create_account("k", "s", wallet=10_000.0)
    venue.place_order("k", symbol="SOLUSDT", side="BUY", type="MARKET", quantity=10)
    start = venue.clock.time()
    venue.advance(86_400)
    assert venue.clock.time() == start + 86_400
    funding = [e for e in venue.events if isinstance(e, FundingPayment)]
    assert len(funding) == 3
    ticker = venue.ticker_24h("SOLUSDT")
    assert float(ticker["lowPrice"]) <= float(ticker["lastPrice"]) <= float(ticker["highPrice"])
    assert float(ticker["lowPrice"]) < float(ticker["highPrice"])
    assert ticker["closeTime"] - ticker["openTime"] <= 86_400_000 + 60_000
