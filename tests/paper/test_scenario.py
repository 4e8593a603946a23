"""The default fault plan: pure, scaled to the run, valid for every venue market."""

from __future__ import annotations

import math

import pytest

from safeguard.paper._scenario import default_plan
from safeguard.venue._faults import (
    FreezeFeedRule,
    LatencyRule,
    SetTiersRule,
    SpikeRule,
    ThrottleRule,
    TimeoutRule,
)
from safeguard.venue._markets import DEFAULT_MARKETS


def test_the_same_inputs_give_the_same_plan() -> None:
    one = default_plan(86_400, ["BTCUSDT", "ETHUSDT"], seed=3)
    two = default_plan(86_400, ["BTCUSDT", "ETHUSDT"], seed=3)
    assert one == two
    assert one.seed == 3


def test_every_trouble_is_there_and_scales_with_the_duration() -> None:
    day = default_plan(86_400, ["BTCUSDT"])
    half = default_plan(43_200, ["BTCUSDT"])
    kinds = {type(rule) for rule in day.rules}
    assert kinds == {
        LatencyRule,
        TimeoutRule,
        ThrottleRule,
        FreezeFeedRule,
        SetTiersRule,
        SpikeRule,
    }
    for long, short in zip(day.rules, half.rules, strict=True):
        for name in ("start_s", "end_s", "at_s"):
            if getattr(long, name, None):
                assert getattr(short, name) == pytest.approx(getattr(long, name) / 2)
    spikes = [r for r in day.rules if isinstance(r, SpikeRule)]
    assert {math.copysign(1, s.pct) for s in spikes} == {-1.0, 1.0}  # both sides get tested


@pytest.mark.parametrize("symbol", sorted(DEFAULT_MARKETS))
def test_the_harsher_tier_table_is_a_valid_ladder_with_higher_rates(symbol: str) -> None:
    [tiers] = [r for r in default_plan(3_600, [symbol]).rules if isinstance(r, SetTiersRule)]
    new = tiers.table().tiers
    old = DEFAULT_MARKETS[symbol].tiers.tiers
    assert len(new) == len(old)
    for before, after in zip(old, new, strict=True):
        assert after.maintenance_margin_rate > before.maintenance_margin_rate
        assert after.max_leverage <= before.max_leverage
        assert 1 / after.max_leverage > after.maintenance_margin_rate


@pytest.mark.parametrize(
    ("duration", "symbols", "message"),
    [
        (math.nan, ["BTCUSDT"], "duration_s"),
        (math.inf, ["BTCUSDT"], "duration_s"),
        (60, ["BTCUSDT"], "duration_s"),
        ("1h", ["BTCUSDT"], "duration_s"),
        (3_600, [], "symbols"),
        (3_600, "BTCUSDT", "symbols"),
        (3_600, ["DOGEUSDT"], "DOGEUSDT"),
    ],
)
def test_bad_inputs_are_refused_by_name(duration: object, symbols: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        default_plan(duration, symbols)  # type: ignore[arg-type]
