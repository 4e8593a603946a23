"""A venue-side cascade: a crowd of levered accounts, a spike that liquidates the most levered,
and their forced flow through a thin book dragging the price on to the next ones."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from safeguard._clock import ManualClock
from safeguard.venue import BookConfig, Crowd, Venue
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from tests.venue.test_engine_risk import quiet

T0 = 1_700_000_000.0
SPIKE_MARK = 88_920.0  # 90,000 x (1 - 1.2 %)
CROWD = Crowd(
    symbol="BTCUSDT",
    accounts=200,
    notional=50_000.0,
    leverage={10: 0.3, 20: 0.3, 50: 0.25, 100: 0.15},
    entry_spread_pct=0.5,
)


def crowd_venue(*, impact: float, thinness: float = 0.05) -> Venue:
    book = BookConfig(thinness=thinness, forced_flow_impact=impact, impact_half_life_s=120.0)
    return Venue(quiet(book=book, crowd=(CROWD,)), clock=ManualClock(T0))


def liquidation_prices(venue: Venue) -> dict[str, float]:
    return {
        key: float(venue.position_risk(key)[0]["liquidationPrice"]) for key in venue_accounts(venue)
    }


def venue_accounts(venue: Venue) -> list[str]:
    return [f"crowd-0-BTCUSDT-{i}" for i in range(CROWD.accounts)]


def spike_through(venue: Venue) -> None:
    venue.spike("BTCUSDT", -1.2, 30)
    venue.advance(300)


def waves(venue: Venue) -> list[int]:
    times: dict[float, int] = {}
    for event in venue.liquidations():
        times[event.time] = times.get(event.time, 0) + 1
    return list(times.values())


def test_the_crowd_is_placed_with_its_leverage_and_isolated_margin() -> None:
    venue = crowd_venue(impact=0.0)
    first = "crowd-0-BTCUSDT-0"
    [row] = venue.position_risk(first)
    # 50,000 of notional at ~89,775 (the low end of the 0.5 % spread): 0.557 BTC. Its wallet
    # is exactly the initial margin, all of it isolated behind the one position.
    assert float(row["positionAmt"]) == pytest.approx(0.557)
    assert row["marginType"] == "isolated"
    leverage = int(row["leverage"])
    assert leverage in CROWD.leverage
    assert float(row["isolatedWallet"]) == pytest.approx(venue.wallet(first))
    cost = float(row["entryPrice"]) * float(row["positionAmt"])
    assert venue.wallet(first) == pytest.approx(cost / leverage, abs=1e-6)
    # Seeded: the same config places the same crowd.
    again = crowd_venue(impact=0.0)
    assert again.position_risk(first) == venue.position_risk(first)
    levered = {int(venue.position_risk(k)[0]["leverage"]) for k in venue_accounts(venue)}
    assert levered == set(CROWD.leverage)


def test_without_forced_flow_impact_a_spike_liquidates_only_what_it_reaches() -> None:
    # An isolated long of margin M = E q / L is liquidated where M + q (P - E) = q P MMR (tier
    # 1, cum 0): P = E (1 - 1/L) / (1 - 0.004). At 100x that is 0.99398 E (about 89,2xx-
    # 89,7xx over the spread), at 50x 0.98394 E (88,3xx-88,8xx): the spike to 88,920 reaches
    # every 100x position and no 50x one. Exactly those go, in the spike's first step.
    venue = crowd_venue(impact=0.0)
    prices = liquidation_prices(venue)
    reached = {key for key, price in prices.items() if price >= SPIKE_MARK}
    spike_through(venue)
    gone = {e.api_key for e in venue.liquidations()}
    assert gone == reached
    assert {
        int(venue.position_risk(k)[0]["leverage"]) for k in venue_accounts(venue) if k not in gone
    } <= {
        10,
        20,
        50,
    }
    assert waves(venue) == [len(reached)]
    assert min(e.mark_price for e in venue.liquidations()) == pytest.approx(SPIKE_MARK)


def test_forced_flow_through_a_thin_book_carries_the_spike_on_to_the_next_accounts() -> None:
    calm = crowd_venue(impact=0.0)
    spike_through(calm)
    venue = crowd_venue(impact=0.05)
    prices = liquidation_prices(venue)
    spike_through(venue)
    events = venue.liquidations()
    # The first wave is the spike's own; each later wave was liquidated by a mark the crowd's
    # own forced selling pushed below the spike, and the cascade stops by itself.
    counts = waves(venue)
    assert counts[0] == len(calm.liquidations())
    assert len(counts) >= 3
    assert sum(counts) > counts[0]
    later = [e for e in events if e.time > events[0].time]
    assert all(e.mark_price < SPIKE_MARK for e in later)
    for event in later:  # each fell at or below its own liquidation price, not before
        assert event.mark_price <= prices[event.api_key] + 1e-6
    survivors = [k for k in venue_accounts(venue) if venue.position_risk(k)]
    assert survivors  # the 10x accounts outlast it
    assert venue.liquidations()[-1].time < T0 + 300
    # Deterministic: the same config, the same cascade.
    again = crowd_venue(impact=0.05)
    spike_through(again)
    assert [(e.api_key, e.time) for e in again.liquidations()] == [
        (e.api_key, e.time) for e in events
    ]


def test_a_wide_book_absorbs_the_forced_flow() -> None:
    venue = crowd_venue(impact=0.05, thinness=1.0)
    spike_through(venue)
    calm = crowd_venue(impact=0.0, thinness=1.0)
    spike_through(calm)
    assert len(venue.liquidations()) == len(calm.liquidations())


def test_the_cascade_is_reported_in_waves() -> None:
    venue = crowd_venue(impact=0.05)
    spike_through(venue)
    [cascade] = venue.cascades()
    counts = waves(venue)
    assert [w["orders"] for w in cascade["waves"]] == counts
    assert cascade["orders"] == cascade["accounts"] == sum(counts)
    assert cascade["markAtStart"] == pytest.approx(SPIKE_MARK)
    assert cascade["lowestMark"] < SPIKE_MARK
    assert cascade["kinds"]["TAKEOVER"] == sum(counts)
    assert cascade["closedQty"] == pytest.approx(sum(e.close_qty for e in venue.liquidations()))
    assert venue.liquidation_report()["cascades"] == [cascade]
    # The public story names no account.
    assert "crowd-" not in str(cascade)


def test_a_fault_plan_brings_a_crowd_that_a_later_spike_cascades() -> None:
    crowd: dict[str, Any] = CROWD.model_dump()
    plan = FaultPlan.parse(
        {
            "rules": [
                {"kind": "crowd", "at_s": 0, "crowd": crowd},
                {"kind": "spike", "symbol": "BTCUSDT", "pct": -1.2, "duration_s": 30, "at_s": 10},
            ]
        }
    )
    book = BookConfig(thinness=0.05, forced_flow_impact=0.05, impact_half_life_s=120.0)
    venue = Venue(quiet(book=book), clock=ManualClock(T0))
    dialect = Dialect(venue, faults=plan)
    dialect.tick()  # the crowd arrives
    assert venue.position_risk("crowd-0-BTCUSDT-0")
    venue.advance(10)
    dialect.tick()  # the spike is scheduled
    venue.advance(300)
    [cascade] = venue.cascades()
    assert len(cascade["waves"]) >= 3


def test_a_crowd_the_ladder_cannot_hold_is_refused() -> None:
    too_big = Crowd(symbol="BTCUSDT", accounts=2, notional=1_000_000.0, leverage={100: 1.0})
    with pytest.raises(ValueError, match="100x"):
        Venue(quiet(crowd=(too_big,)), clock=ManualClock(T0))
    with pytest.raises(ValidationError, match="not one of symbols"):
        quiet(crowd=(Crowd(symbol="ETHUSDT", accounts=2),))
    with pytest.raises(ValidationError, match=r"outside 1\.\.125"):
        Crowd(symbol="BTCUSDT", accounts=2, leverage={200: 1.0})
