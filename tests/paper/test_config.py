"""A paper run's settings fail closed, naming the field."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import Policy
from safeguard.paper._runner import PaperConfig, paper_policy, unified_symbol, venue_symbol
from safeguard.paper._scenario import default_plan


def _config(tmp: Path, **changes: Any) -> PaperConfig:
    base: dict[str, Any] = {
        "policy": paper_policy(None, tmp),
        "faults": default_plan(3_600, ["BTCUSDT"]),
    }
    return PaperConfig(**{**base, **changes})


def test_a_sound_config_counts_its_bars(tmp_path: Path) -> None:
    config = _config(tmp_path, duration_s=3_600, bar_s=60)
    assert config.bars == 60
    assert config.venue_symbols == ("BTCUSDT",)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_s", math.nan),
        ("duration_s", 60),
        ("bar_s", math.inf),
        ("bar_s", 0),
        ("bar_s", 600),  # 6 bars in an hour
        ("wallet", -5.0),
        ("wallet", "10000"),
        ("seed", 1.5),
        ("seed", True),
        ("symbols", ()),
        ("symbols", ("DOGE/USDT:USDT",)),
        ("transport", "ws"),
        ("strategy", None),
        ("policy", {}),
        ("faults", []),
    ],
)
def test_bad_settings_are_refused_by_name(tmp_path: Path, field: str, value: Any) -> None:
    expected = "DOGE" if field == "symbols" and value else field.removesuffix("_s")
    with pytest.raises(ValueError, match=expected):
        _config(tmp_path, **{"duration_s": 3_600, field: value})


def test_the_paper_policy_keeps_its_state_away_from_a_real_bot(tmp_path: Path) -> None:
    mine = Policy.build(risk={"max_leverage": 5.0})
    policy = paper_policy(mine, tmp_path / "state")
    assert policy.kill_switch.state_dir == tmp_path / "state"
    assert policy.kill_switch.watch_state_file is False
    assert policy.risk.max_leverage == 5.0  # the user's limits are kept
    default = paper_policy(None, tmp_path)
    assert default.kill_switch.triggers.max_drawdown_pct is not None


@pytest.mark.parametrize("name", ["BTC/USDT:USDT", "BTCUSDT", "btc/usdt"])
def test_symbols_are_accepted_in_either_spelling(name: str) -> None:
    assert venue_symbol(name) == "BTCUSDT"
    assert unified_symbol("BTCUSDT") == "BTC/USDT:USDT"
