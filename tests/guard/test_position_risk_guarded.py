"""The triggers and the pre-trade view judge an open position's stop the same way.

A stop-market close takes the book as it is when it fires: on a thin book, the fill sits far
beyond the trigger. The liquidation-distance trigger prices that close by walking the book the
guard last read (as the stop re-check and the verdict do), not by a flat slippage: a stop that
clears liquidation on paper but not through the book it would sell into engages the switch.

Real ccxt ``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.killswitch._switch import TradingState
from safeguard.testing import PaperAccount, paper_account
from safeguard.venue import VenueConfig
from safeguard.venue._config import BookConfig

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
SIZE = 1.0


def _thin_book_account(thinness: float) -> PaperAccount:
    """Levels 20 bps apart; at ``thinness`` 0.002 closing 1 BTC walks a few hundred bps."""
    book = BookConfig(gap_bps=20.0, thinness=thinness, half_life_s=0.0)
    return paper_account(wallet=10_000, config=VenueConfig(symbols=(VENUE_SYMBOL,), book=book))


@pytest.fixture
def thin() -> Iterator[PaperAccount]:
    account = _thin_book_account(0.002)
    yield account
    account.close()


def _policy() -> Policy:
    return Policy.build(
        kill_switch={"triggers": {"on_liquidation_distance": True}},
        risk={"max_leverage": 50, "require_stop": False, "stop_slippage_bps": 10.0},
        degradation={"min_samples": 100_000},
    )


def _long_with_stop(paper: PaperAccount, above_liquidation: float) -> float:
    """A 1 BTC long at 20x opened raw, and a close-all stop ``above_liquidation`` (a fraction)
    above the venue's liquidation price; returns the stop."""
    raw = paper.client()
    raw.load_markets()
    raw.set_leverage(20, SYMBOL)
    raw.create_order(SYMBOL, "market", "buy", SIZE)
    paper.advance(30)  # the book refills
    (position,) = [p for p in raw.fetch_positions([SYMBOL]) if p["contracts"]]
    stop = round(float(position["liquidationPrice"]) * (1.0 + above_liquidation), 1)
    raw.create_order(
        SYMBOL,
        "market",
        "sell",
        None,
        None,
        {"stopLossPrice": stop, "closePosition": True, "workingType": "MARK_PRICE"},
    )
    return stop


def _read_everything(ex: Any) -> None:
    ex.load_markets()
    ex.fetch_order_book(SYMBOL, 100)
    ex.fetch_ticker(SYMBOL)
    ex.fetch_open_orders(SYMBOL)
    ex.fetch_open_orders(SYMBOL, params={"trigger": True})  # the stop (Binance lists it apart)
    ex.fetch_balance()
    ex.fetch_positions()


def test_a_stop_that_clears_liquidation_only_on_paper_trips_on_a_thin_book(
    thin: PaperAccount, tmp_path: Path
) -> None:
    # 3 % above liquidation: a flat 10 bps slippage leaves the fill far inside the 1 % buffer,
    # but closing 1 BTC through this book costs more than the 3 %.
    _long_with_stop(thin, 0.03)
    ex = thin.guarded(_policy(), state_dir=tmp_path / "state", triggers=True)
    _read_everything(ex)
    state = ex.runtime.switch.state
    assert state.state is not TradingState.ACTIVE
    assert state.code == Code.LIQUIDATION_DISTANCE
    assert "stop fill" in state.reason
    # The trigger and the stop re-check agree: the same fill, beyond the buffer.
    (check,) = ex.runtime.core.gate.recheck_positions(thin.clock.time())
    assert check.distance_pct < 1.0


def test_the_same_stop_on_a_deep_book_does_not_trip(tmp_path: Path) -> None:
    deep = _thin_book_account(1.0)
    try:
        _long_with_stop(deep, 0.03)
        ex = deep.guarded(_policy(), state_dir=tmp_path / "state", triggers=True)
        _read_everything(ex)
        assert ex.runtime.switch.state.state is TradingState.ACTIVE
        (check,) = ex.runtime.core.gate.recheck_positions(deep.clock.time())
        assert check.distance_pct > 1.0
    finally:
        deep.close()


@pytest.mark.parametrize("with_take_profit", [False, True])
def test_a_resting_take_profit_does_not_hide_a_stop_beyond_liquidation(
    with_take_profit: bool,
) -> None:
    # The trigger judges the position by its stop: a reduce-only take-profit above a long's
    # mark was taken for "the tightest stop" (it always clears liquidation), so a stop
    # beyond liquidation beside it went unseen and the switch stayed ACTIVE.
    account = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=10_000.0)
    try:
        ex = account.guarded(Policy.build(risk={"max_leverage": 10}), triggers=True)
        ex.set_leverage(10, SYMBOL)
        last = ex.fetch_ticker(SYMBOL)["last"]
        entry = ex.create_order(
            SYMBOL, "market", "buy", 0.8, None, {"stopLossPrice": round(last * 0.95, 1)}
        )
        [position] = [p for p in ex.fetch_positions() if p["symbol"] == SYMBOL]
        liquidation = position["liquidationPrice"]
        if with_take_profit:
            take_profit = {"triggerPrice": round(last * 1.05, 1), "reduceOnly": True}
            ex.create_order(SYMBOL, "take_profit_market", "sell", 0.8, None, take_profit)
        ex.cancel_order(entry["info"]["safeguardProtectiveStop"]["id"], SYMBOL, {"trigger": True})
        beyond = {"triggerPrice": round(liquidation * 0.97, 1), "reduceOnly": True}
        ex.create_order(SYMBOL, "stop_market", "sell", 0.8, None, beyond)
        ex.fetch_open_orders(SYMBOL)
        ex.fetch_positions()
        state = ex.runtime.switch.state
        assert (state.state, state.code) == (TradingState.HALTED, Code.LIQUIDATION_DISTANCE)
    finally:
        account.close()
