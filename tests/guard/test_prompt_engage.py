"""A trip engages the kill switch promptly, whichever path saw it.

A trigger trips on what the guard sees; the trip is an ``Engage`` effect, performed by the
path that saw it before that path goes on: a guarded call before its next effect, a held
stream before it takes its next message, even while the bot makes no call. A call cut short
(an interrupt, a cancelled task) after its trip was recorded still engages, and an async
engage once begun finishes (drains, persists, announces) whatever happens to its caller.

Real ccxt against the in-process mock venue on simulated time; every wait is for an event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.killswitch._state import SwitchState, TradingState
from safeguard.testing import PaperAccount, paper_account

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
HANG_S = 120.0
"""Only a hang waits this long: every wait ends on an event."""


def _policy(**triggers: Any) -> Policy:
    return Policy.build(
        # Market data good for ten minutes: once the order path has read what a verdict needs,
        # the streams' own path has no read due, and so no guarded call of its own to make.
        risk={"require_stop": False, "max_market_data_age_s": 600.0},
        degradation={"min_samples": 100_000},
        kill_switch={"triggers": triggers},
    )


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    account.advance(6 * 3600)
    yield account
    account.close()


def _wait(condition: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + HANG_S
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.001)


async def _wait_async(condition: Callable[[], bool], what: str) -> None:
    give_up = time.monotonic() + HANG_S
    while not condition():
        if time.monotonic() > give_up:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.001)


def test_a_stale_feed_seen_on_a_sync_held_stream_engages_while_the_bot_makes_no_call(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(max_data_age_s=5.0), state_dir=tmp_path, triggers=True)
    switch = ex.runtime.switch
    ex.load_markets()
    ex.preview(BTC, "market", "buy", 0.01)  # what the view reads for BTC, read once
    ex.fetch_ticker(ETH)  # ETH's prices, read once: the triggers age them from now on
    holder = ex.hold_streams([BTC], paper.client(pro=True), account=False)
    try:
        paper.advance(10.0)  # BTC's streams go on; ETH's data is 10 s old at their next message
        _wait(lambda: switch.state.state is not TradingState.ACTIVE, "the switch engaged")
        assert switch.state.code == Code.STALE_MARKET_DATA
        assert "ETH/USDT:USDT" in switch.state.reason
    finally:
        holder.close()


@pytest.mark.asyncio
async def test_a_stale_feed_seen_on_an_async_held_stream_engages_while_the_bot_makes_no_call(
    tmp_path: Path,
) -> None:
    paper = paper_account(wallet=10_000)
    paper.advance(6 * 3600)
    ex = paper.guarded(_policy(max_data_age_s=5.0), state_dir=tmp_path, pro=True, triggers=True)
    switch = ex.runtime.switch
    heard: list[SwitchState] = []
    switch.add_listener(heard.append)
    try:
        await ex.load_markets()
        await ex.preview(BTC, "market", "buy", 0.01)
        await ex.fetch_ticker(ETH)
        holder = await ex.hold_streams([BTC], account=False)
        paper.advance(10.0)
        # Engaged, persisted and announced by the stream's own task: nobody else calls.
        await _wait_async(lambda: bool(heard), "the engage was announced")
        assert (heard[0].state, heard[0].code) == (TradingState.HALTED, Code.STALE_MARKET_DATA)
        stored = switch.store.load()
        assert stored is not None
        assert stored.code == Code.STALE_MARKET_DATA
        await holder.aclose()
    finally:
        await paper.aclose()


def test_a_call_interrupted_right_after_its_trip_still_engages_the_switch(
    paper: PaperAccount, tmp_path: Path
) -> None:
    hooks = Hooks()
    policy = _policy(max_leverage_changes_per_window=1)
    ex = paper.guarded(policy, state_dir=tmp_path, triggers=True, hooks=hooks)
    ex.load_markets()
    ex.set_leverage(5, BTC)  # the one change the window allows

    def interrupt(event: Any) -> None:
        # Ctrl-C landing in a hook of the request whose outcome tripped the switch.
        assert isinstance(event, RequestEvent)
        if event.method == "set_leverage":
            raise KeyboardInterrupt

    hooks.subscribe(EventKind.REQUEST, interrupt)
    with pytest.raises(KeyboardInterrupt):
        ex.set_leverage(6, BTC)  # one more: trips, then the interrupt cuts the call short
    state = ex.runtime.switch.state
    assert (state.state, state.code) == (TradingState.HALTED, Code.LEVERAGE_CHANGES)


def _async_bot_one_leverage_change_a_minute(
    tmp_path: Path,
) -> tuple[PaperAccount, Any, list[SwitchState]]:
    """An async guarded bot whose second leverage change trips, and what its switch announces."""
    paper = paper_account(wallet=10_000)
    paper.advance(6 * 3600)
    policy = _policy(max_leverage_changes_per_window=1)
    ex = paper.guarded(policy, state_dir=tmp_path, triggers=True, asyncio=True)
    heard: list[SwitchState] = []
    ex.runtime.switch.add_listener(heard.append)
    return paper, ex, heard


@pytest.mark.asyncio
async def test_a_task_cancelled_while_its_trip_engages_still_finishes_the_engage(
    tmp_path: Path,
) -> None:
    paper, ex, heard = _async_bot_one_leverage_change_a_minute(tmp_path)
    switch = ex.runtime.switch
    released, holding = asyncio.Event(), asyncio.Event()

    async def order_in_flight() -> None:
        # Another order path's send, past the gate: the engage drains it before persisting.
        with switch.permit(reduces_only=False):
            holding.set()
            await released.wait()

    try:
        await ex.load_markets()
        await ex.set_leverage(5, BTC)
        sender = asyncio.create_task(order_in_flight())
        await holding.wait()
        call = asyncio.create_task(ex.set_leverage(6, BTC))  # trips
        await _wait_async(lambda: switch.state.state is TradingState.HALTED, "the latch closed")
        assert not call.done()  # its engage is draining, waiting for the order in flight
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        released.set()
        await sender
        await _wait_async(lambda: bool(heard), "the engage was announced")
        assert (heard[0].state, heard[0].code) == (TradingState.HALTED, Code.LEVERAGE_CHANGES)
        stored = switch.store.load()
        assert stored is not None
        assert (stored.state, stored.code) == (TradingState.HALTED, Code.LEVERAGE_CHANGES)
        assert switch.unpersisted is None
    finally:
        await paper.aclose()


def test_an_engage_cut_short_by_the_event_loops_shutdown_is_still_persisted(
    tmp_path: Path,
) -> None:
    paper, ex, heard = _async_bot_one_leverage_change_a_minute(tmp_path)
    switch = ex.runtime.switch
    left: list[asyncio.Task[Any]] = []

    async def order_in_flight(holding: asyncio.Event) -> None:
        # Another order path's send, past the gate and still on the wire when the bot ends.
        with switch.permit(reduces_only=False):
            holding.set()
            await asyncio.Event().wait()

    async def bot() -> None:
        await ex.load_markets()
        await ex.set_leverage(5, BTC)
        holding = asyncio.Event()
        left.append(asyncio.create_task(order_in_flight(holding)))
        await holding.wait()
        left.append(asyncio.create_task(ex.set_leverage(6, BTC)))  # trips
        await _wait_async(lambda: switch.state.state is TradingState.HALTED, "the latch closed")
        # The bot's main coroutine ends while its engage drains (Ctrl-C, an exception):
        # asyncio.run then cancels every task still pending, the engage's own among them.

    try:
        asyncio.run(bot())
        assert all(task.cancelled() for task in left)
        stored = switch.store.load()
        assert stored is not None, "the engage was never persisted: a restart would trade"
        assert (stored.state, stored.code) == (TradingState.HALTED, Code.LEVERAGE_CHANGES)
        assert switch.unpersisted is None
        assert [(s.state, s.code) for s in heard] == [(TradingState.HALTED, Code.LEVERAGE_CHANGES)]
    finally:
        paper.close()
