"""The kill-switch triggers load what they need to judge, or fail closed.

A restarted bot that only polls its balance, positions and prices has never previewed an order,
so the guard holds no tier table; the account (and with it the drawdown, daily-loss and
liquidation-distance triggers) cannot be built from what the bot read. The guard reads the
ladder itself, through its guarded read path, and engages TRIGGER_FAILED when it cannot.

Each test runs real ccxt ``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.killswitch._switch import SwitchState, TradingState
from safeguard.testing import PaperAccount, paper_account
from safeguard.venue import VenueConfig

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
BRACKETS = "GET /fapi/v1/leverageBracket"


@pytest.fixture
def paper(tmp_path: Path) -> Iterator[PaperAccount]:
    """BTC's index replayed from a file: flat at 90,000, then 2.3 % lower from t = 600 s
    (about a fifth of the equity for a 1 BTC long on 10,000)."""
    prices = tmp_path / "btc-index.csv"
    prices.write_text("offset_s,price\n0,90000\n600,87930\n")
    config = VenueConfig(symbols=(VENUE_SYMBOL, "ETHUSDT"), replay={VENUE_SYMBOL: prices})
    account = paper_account(wallet=10_000, config=config)
    yield account
    account.close()


def _policy(**triggers: Any) -> Policy:
    return Policy.build(
        kill_switch={"triggers": triggers},
        risk={"max_leverage": 50},
        degradation={"min_samples": 100_000},
    )


def _open_long_and_stop(paper: PaperAccount, policy: Policy, state_dir: Path) -> None:
    """The first run: a 1 BTC long at 20x, its peak equity persisted, then the process ends."""
    ex = paper.guarded(policy, state_dir=state_dir, triggers=True)
    ex.load_markets()
    ex.set_leverage(20, SYMBOL)
    mark = float(ex.fetch_ticker(SYMBOL)["last"])
    ex.create_order(
        SYMBOL, "market", "buy", 1.0, None, {"stopLoss": {"triggerPrice": round(mark * 0.95, 1)}}
    )
    ex.fetch_balance()
    ex.fetch_positions()
    assert ex.runtime.switch.state.state is TradingState.ACTIVE
    paper.close()


def _poll(ex: Any, rounds: int, paper: PaperAccount) -> None:
    """What a monitoring bot does: balance, positions and a price; never an order."""
    for _ in range(rounds):
        paper.advance(10)
        ex.fetch_balance()
        ex.fetch_positions()
        ex.fetch_ticker(SYMBOL)


def test_a_restarted_bot_that_only_polls_trips_on_a_drawdown(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = _policy(max_drawdown_pct=8.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    paper.advance(900)  # while no bot runs, the price falls
    assert paper.equity() < 0.82 * 10_000
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True)
    _poll(restarted, 3, paper)
    state = restarted.runtime.switch.state
    assert state.state is TradingState.HALTED
    assert state.code == Code.DRAWDOWN


def test_a_tier_table_that_cannot_be_read_fails_the_triggers_closed(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = _policy(max_drawdown_pct=8.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    # ccxt's fetch_positions loads the brackets for its own use once per client (the guard
    # cannot see them): that read gets through, every read after it fails.
    paper.set_faults({"rules": [{"kind": "error", "endpoint": BRACKETS, "status": 503, "skip": 1}]})
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True)
    _poll(restarted, 1, paper)
    state = restarted.runtime.switch.state
    assert state.state is TradingState.HALTED
    assert state.code == Code.TRIGGER_FAILED
    assert "tier" in state.reason


def test_a_flat_account_reads_no_tier_table_for_the_triggers(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(max_drawdown_pct=8.0), state_dir=tmp_path / "state", triggers=True)
    _poll(ex, 2, paper)
    assert ex.runtime.core.gate.cache.tiers == {}
    assert ex.runtime.switch.state.state is TradingState.ACTIVE
    assert ex.runtime.core.gate.tripwire.monitor.marks.peak == 10_000


@pytest.mark.parametrize("polled", ["fetch_ticker", "fetch_balance"])
def test_a_restarted_bot_polling_one_thing_still_trips_on_a_drawdown(
    paper: PaperAccount, tmp_path: Path, polled: str
) -> None:
    # The bot watches only its price (or only its balance): the triggers read the rest of the
    # account themselves, on the stale-data schedule.
    policy = _policy(max_drawdown_pct=8.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    paper.advance(900)
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True)
    for _ in range(3):
        paper.advance(10)
        getattr(restarted, polled)(*((SYMBOL,) if polled == "fetch_ticker" else ()))
    state = restarted.runtime.switch.state
    assert (state.state, state.code) == (TradingState.HALTED, Code.DRAWDOWN)


def test_an_account_the_triggers_cannot_read_fails_them_closed(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = _policy(max_drawdown_pct=8.0, max_data_age_s=60.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    paper.set_faults({"rules": [{"kind": "error", "endpoint": "GET /fapi/v3/positionRisk",
                                 "status": 503}]})  # fmt: skip
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True)
    restarted.fetch_ticker(SYMBOL)
    state = restarted.runtime.switch.state
    assert (state.state, state.code) == (TradingState.HALTED, Code.TRIGGER_FAILED)
    assert "positions" in state.reason


async def test_a_restarted_async_bot_that_only_polls_trips_on_a_drawdown(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = _policy(max_drawdown_pct=8.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    paper.advance(900)
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True, asyncio=True)
    try:
        for _ in range(3):
            paper.advance(10)
            await restarted.fetch_ticker(SYMBOL)
        state = restarted.runtime.switch.state
        assert (state.state, state.code) == (TradingState.HALTED, Code.DRAWDOWN)
    finally:
        await paper.aclose()


async def test_a_trip_in_an_async_call_never_blocks_the_event_loop(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # Engaging persists the state and calls listeners and webhooks: here a listener that
    # returns only once another task of the same loop has ticked three times since the
    # engage began. Performed on the loop, it could not: the ticker would stand still.
    policy = _policy(max_drawdown_pct=8.0)
    _open_long_and_stop(paper, policy, tmp_path / "state")
    paper.advance(900)
    restarted = paper.guarded(policy, state_dir=tmp_path / "state", triggers=True, asyncio=True)
    ticks = 0
    engaging = threading.Event()
    ticked_meanwhile = threading.Event()
    ticks_during_engage: list[int] = []

    def slow_listener(state: SwitchState) -> None:
        started = ticks  # before the ticker may count: every tick it counts comes after
        engaging.set()
        # The timeout only keeps a broken build from hanging; the claim is the tick count.
        ticked_meanwhile.wait(timeout=10.0)
        ticks_during_engage.append(ticks - started)

    async def ticker() -> None:
        nonlocal ticks
        since_engage = 0
        while not ticked_meanwhile.is_set():
            ticks += 1
            if engaging.is_set():
                since_engage += 1
                if since_engage >= 3:
                    ticked_meanwhile.set()
            await asyncio.sleep(0)

    restarted.runtime.switch.add_listener(slow_listener)
    ticking = asyncio.create_task(ticker())
    try:
        for _ in range(3):
            paper.advance(10)
            await restarted.fetch_ticker(SYMBOL)
        state = restarted.runtime.switch.state
        assert (state.state, state.code) == (TradingState.HALTED, Code.DRAWDOWN)
        [ticked] = ticks_during_engage  # one engage, one listener call
        assert ticked >= 3
    finally:
        ticked_meanwhile.set()
        await ticking
        await paper.aclose()
