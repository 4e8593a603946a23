"""The strategy protocol, the built-in trend follower's inputs, and loading a user's own."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from safeguard.paper._strategy import Strategy, TrendFollower, load_factory

SYMBOLS = ("BTC/USDT:USDT",)


def test_the_trend_follower_is_a_strategy() -> None:
    assert isinstance(TrendFollower(SYMBOLS), Strategy)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fast_bars", 0),
        ("slow_bars", 2.5),
        ("max_units", True),
        ("leverage", -1),
        ("band", math.nan),
        ("unit_leverage", math.inf),
        ("stop_distance", 0.0),
        ("stop_distance", 1.5),
        ("add_step", "1%"),
    ],
)
def test_bad_parameters_are_refused_by_name(field: str, value: Any) -> None:
    with pytest.raises(ValueError, match=field):
        TrendFollower(SYMBOLS, **{field: value})


def test_no_symbols_and_crossed_averages_are_refused() -> None:
    with pytest.raises(ValueError, match="symbols"):
        TrendFollower(())
    with pytest.raises(ValueError, match="symbols"):
        TrendFollower("BTC/USDT:USDT")
    with pytest.raises(ValueError, match="fast_bars"):
        TrendFollower(SYMBOLS, fast_bars=30, slow_bars=10)


def test_a_factory_loads_from_a_file_or_a_module(tmp_path: Path) -> None:
    path = tmp_path / "mine.py"
    path.write_text(
        "class Strategy:\n"
        "    def __init__(self, symbols):\n"
        "        self.symbols = symbols\n"
        "    def on_bar(self, exchange, bar):\n"
        "        pass\n",
        encoding="utf-8",
    )
    factory = load_factory(str(path))
    assert isinstance(factory(SYMBOLS), Strategy)
    assert load_factory("safeguard.paper._strategy:TrendFollower") is TrendFollower


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "MODULE"),
        ("safeguard.paper._strategy:Nothing", "no callable 'Nothing'"),
        ("safeguard.paper._strategy:__doc__", "no callable"),
        ("missing_file.py", "not found"),
    ],
)
def test_a_bad_spec_says_what_is_missing(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_factory(spec)
