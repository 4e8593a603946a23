"""The venue's simulated book: takes best first, refills with its half-life, never crosses."""

from __future__ import annotations

import random

import pytest

from safeguard.venue._book import BUY, SELL, SimBook


def book(**overrides: float) -> SimBook:
    args: dict[str, float] = {
        "mid_ticks": 1000.5,
        "levels": 10,
        "gap_ticks": 2,
        "spread_ticks": 1,
        "touch_qty_steps": 100,
        "growth": 0.5,
        "half_life_s": 10.0,
        "now": 0.0,
    }
    args.update(overrides)
    return SimBook(rng=random.Random(4), **args)  # type: ignore[arg-type]


def test_the_touch_sits_around_the_mid_and_levels_step_by_the_gap() -> None:
    b = book()
    assert (b.best_bid(), b.best_ask()) == (1000, 1001)
    asks = b.depth(SELL, 10)
    bids = b.depth(BUY, 10)
    assert [p for p, _ in asks] == [1001 + 2 * i for i in range(10)]
    assert [p for p, _ in bids] == [1000 - 2 * i for i in range(10)]
    assert all(q >= 1 for _, q in asks + bids)
    # Deeper levels hold more on average (growth), within the jitter.
    assert sum(q for _, q in asks[5:]) > sum(q for _, q in asks[:5])


def test_take_walks_levels_best_first_and_respects_the_limit() -> None:
    b = book()
    asks = b.depth(SELL, 10)
    want = asks[0][1] + asks[1][1] + 1
    fills = b.take(BUY, want, None)
    assert fills == [asks[0][0], asks[0][1], asks[1][0], asks[1][1], asks[2][0], 1]
    assert b.best_ask() == asks[2][0]
    limited = b.take(BUY, 10**6, asks[3][0])
    assert max(limited[0::2]) == asks[3][0]


def test_a_dry_run_measures_without_consuming() -> None:
    b = book()
    before = b.depth(BUY, 10)
    assert b.take(SELL, 50, None, dry_run=True)
    assert b.depth(BUY, 10) == before


def test_consumed_liquidity_refills_with_the_half_life() -> None:
    b = book()
    touch_qty = b.depth(SELL, 1)[0][1]
    b.take(BUY, touch_qty, None)
    assert b.depth(SELL, 1)[0][0] == 1003
    b.replenish(10.0)  # one half-life: about half back
    level = b.depth(SELL, 1)[0]
    assert level[0] == 1001
    assert level[1] == pytest.approx(touch_qty / 2, abs=1)
    b.replenish(200.0)
    assert b.depth(SELL, 1)[0] == (1001, touch_qty)


def test_recentering_moves_the_profile_with_the_price() -> None:
    b = book()
    b.recenter(2000.2)
    assert (b.best_bid(), b.best_ask()) == (2000, 2001)
    b.recenter(0.3)  # never at or below zero
    assert b.best_bid() == 1


def test_an_emptied_side_reports_no_best_price() -> None:
    b = book(levels=2, half_life_s=1e9)
    total = sum(q for _, q in b.depth(SELL, 2))
    assert sum(b.take(BUY, total + 10, None)[1::2]) == total
    assert b.best_ask() is None
    assert b.take(BUY, 1, None) == []


def test_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="levels"):
        book(levels=0)
