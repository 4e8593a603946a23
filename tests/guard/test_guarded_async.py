"""The asyncio face: the same core, driven with awaits, on ``ccxt.async_support`` clients.

In process and over loopback HTTP (aiohttp), with the venue's fault plan; the kill switch's
``wait_async`` wakes a backoff on an engage.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard import AsyncGuardedExchange, guard
from safeguard.guard._events import EventKind, Hooks
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

KEY, SECRET = "ax-key-0123456789", "ax-secret-0123456789abcdef"
SYMBOL, VENUE_SYMBOL = "ETH/USDT:USDT", "ETHUSDT"


@dataclass
class Rig:
    ex: Any
    venue: Venue
    switch: KillSwitch
    hooks: Hooks

    def venue_orders(self) -> list[dict[str, Any]]:
        return self.venue.all_orders(KEY, symbol=VENUE_SYMBOL)


async def _build(
    tmp: Path, transport: str, faults: dict[str, Any] | None, *, simulated: bool = True
) -> tuple[Rig, list[Any]]:
    closers: list[Any] = []
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=100_000.0)
    dialect = Dialect(venue, faults=FaultPlan.parse(faults or {}))
    if transport == "inprocess":
        raw = inprocess_client(dialect, KEY, SECRET, asyncio=True)
    else:
        server = VenueServer(venue, dialect=dialect)
        closers.append(server.close)
        raw = ccxt_client(server.url, KEY, SECRET, asyncio=True, timeout_ms=2_000)
    closers.append(raw.close)
    policy = Policy.build(
        risk={"require_stop": False, "max_open_orders": None},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.2, "resolve_attempts": 8},
        kill_switch={"state_dir": str(tmp / "state"), "watch_state_file": False},
    )
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    closers.append(switch.close)
    hooks = Hooks()

    async def sleep(seconds: float) -> bool:
        venue.advance(seconds)
        await asyncio.sleep(0)
        return False

    ex = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(policy.throttle),
        sleep_async=sleep if simulated else None,
    )
    return Rig(ex, venue, switch, hooks), closers


@pytest.fixture(params=["inprocess", "http"])
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    built, closers = await _build(tmp_path, request.param, None)
    yield built
    for close in reversed(closers):
        result = close()
        if asyncio.iscoroutine(result):
            await result


async def test_async_guard_reads_and_orders(rig: Rig) -> None:
    assert isinstance(rig.ex, AsyncGuardedExchange)
    ticker, book = await asyncio.gather(
        rig.ex.fetch_ticker(SYMBOL), rig.ex.fetch_order_book(SYMBOL, 100)
    )
    assert ticker["last"] > 0
    assert book["bids"]
    order = await rig.ex.create_market_buy_order(SYMBOL, 0.05)  # a ccxt helper, awaited
    assert order["clientOrderId"].startswith("sg-")
    verdict = await rig.ex.preview(SYMBOL, "market", "buy", 0.05)
    assert verdict.allowed
    assert [o["clientOrderId"] for o in rig.venue_orders()] == [order["clientOrderId"]]


async def test_async_kill_switch_blocks_orders_not_cancels(rig: Rig) -> None:
    mark = (await rig.ex.fetch_ticker(SYMBOL))["last"]
    resting = await rig.ex.create_order(SYMBOL, "limit", "buy", 0.05, round(mark * 0.97, 2))
    rig.switch.engage("test", by="test", state=TradingState.HALTED)
    with pytest.raises(errors.TradingHalted) as halted:
        await rig.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert halted.value.code == Code.TRADING_HALTED
    cancelled = await rig.ex.cancel_order(resting["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert len(rig.venue_orders()) == 1


async def test_async_engage_wakes_a_backoff(tmp_path: Path) -> None:
    faults = {"rules": [{"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 400,
                         "code": -1021}]}  # fmt: skip
    r, closers = await _build(tmp_path, "inprocess", faults, simulated=False)
    try:
        await r.ex.load_markets()
        retries: list[Any] = []
        r.hooks.subscribe(EventKind.RETRY, retries.append)
        # Engage on the loop's next turn: by then the order's coroutine is suspended in its
        # backoff, whatever delay the full jitter drew (a fixed timer raced a short draw).
        loop = asyncio.get_running_loop()
        r.hooks.subscribe(
            EventKind.RETRY,
            lambda _: loop.call_soon(lambda: r.switch.engage("stop", by="test")),
        )
        with pytest.raises(errors.TradingHalted):
            await r.ex.create_order(SYMBOL, "market", "buy", 0.05)
        assert len(retries) == 1
        assert r.venue_orders() == []
    finally:
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result


@pytest.mark.parametrize("transport", ["inprocess", "http"])
async def test_async_orders_are_never_doubled(tmp_path: Path, transport: str) -> None:
    faults = {"seed": 5, "rules": [
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "code": -1001,
         "processed": True, "probability": 0.1},
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order",
         "probability": 0.1, "hold_s": 0.05},
        {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": False,
         "probability": 0.05},
    ]}  # fmt: skip
    r, closers = await _build(tmp_path, transport, faults)
    runs = 60 if transport == "http" else 300
    try:
        returned: set[str] = set()
        for i in range(runs):
            try:
                order = await r.ex.create_order(
                    SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01, None,
                    {"clientOrderId": f"ax-{i}"},
                )  # fmt: skip
                returned.add(order["clientOrderId"])
            except errors.OutcomeUnknown:
                pass
        per_id = Counter(o["clientOrderId"] for o in r.venue_orders())
        assert max(per_id.values()) == 1
        assert returned <= set(per_id)
        assert len(returned) >= runs * 0.9
    finally:
        for close in reversed(closers):
            result = close()
            if asyncio.iscoroutine(result):
                await result
