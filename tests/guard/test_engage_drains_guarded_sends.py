"""An engage waits for the orders already on the wire, through the guard, sync and async; and a
bare ``permit()`` looks at the persisted state before it lets a send through.

The switch's own drain is tested in tests/killswitch/test_switch.py. Here the send in flight
is a real guarded ``create_order`` on real ccxt, held inside the venue's transport by a latency
fault whose callback waits on events: it tells the test the order is on the wire, sleeps on
the kill switch until an engage closes the latch, then gives that engage every chance to
return before the send finishes. No wall-clock threshold decides anything: on a correct guard
the engage cannot return while the send is held, however slow the machine; a guard that sent
outside the permit lets it return at once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import KillSwitchConfig, Policy
from safeguard._errors import TradingHalted
from safeguard.guard import guard
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue._inprocess import inprocess_client

SYMBOL = "BTC/USDT:USDT"
HOLD_FAULT = {"rules": [{"kind": "latency", "endpoint": "POST /fapi/v1/order", "ms": 1}]}
GRACE_S = 1.0
"""How long the held send lets a (wrongly) undrained engage return. It bounds only how quickly a
broken guard is caught: a correct engage never returns while the send is held."""


class HeldSend:
    """The transport's latency callback: holds the order inside the venue's answer."""

    def __init__(self, switch: KillSwitch) -> None:
        self.switch = switch
        self.on_wire = threading.Event()
        self.engage_returned = threading.Event()
        self.events: list[str] = []

    def __call__(self, seconds: float) -> None:
        self.on_wire.set()
        # Woken the moment an engage closes the latch (the switch's own wake-up, no timer).
        assert self.switch.wait(60.0), "no engage closed the latch"
        self.engage_returned.wait(GRACE_S)
        self.events.append(
            "engage had returned" if self.engage_returned.is_set() else "send finished"
        )


def _rig(tmp_path: Path, *, asyncio_client: bool) -> tuple[PaperAccount, KillSwitch, HeldSend, Any]:
    account = paper_account(wallet=100_000.0, faults=HOLD_FAULT)
    policy = sandbox_policy(
        tmp_path,
        Policy.build(risk={"require_stop": False}, kill_switch={"drain_timeout_s": 60.0}),
    )
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
    held = HeldSend(switch)
    raw = inprocess_client(
        account.dialect, account.api_key, account.secret, asyncio=asyncio_client, on_latency=held
    )
    exchange = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=account.clock,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
    )
    return account, switch, held, exchange


def _engage_from_another_thread(switch: KillSwitch, held: HeldSend) -> threading.Thread:
    def engage() -> None:
        switch.engage("stop while an order is on the wire", by="pytest")
        held.events.append("engage returned")
        held.engage_returned.set()

    thread = threading.Thread(target=engage)
    thread.start()
    return thread


def test_engage_returns_only_after_a_guarded_sync_order_on_the_wire_finished(
    tmp_path: Path,
) -> None:
    account, switch, held, exchange = _rig(tmp_path, asyncio_client=False)
    exchange.load_markets()
    placed: list[Any] = []
    sender = threading.Thread(
        target=lambda: placed.append(exchange.create_order(SYMBOL, "market", "buy", 0.01))
    )
    sender.start()
    try:
        assert held.on_wire.wait(60)
        engager = _engage_from_another_thread(switch, held)
        engager.join(120)
        sender.join(120)
    finally:
        held.engage_returned.set()
        account.close()
        switch.close()
    assert held.events == ["send finished", "engage returned"]
    assert [order["status"] for order in placed] == ["closed"]
    assert len(account.orders("BTCUSDT")) == 1


async def test_engage_returns_only_after_a_guarded_async_order_on_the_wire_finished(
    tmp_path: Path,
) -> None:
    account, switch, held, exchange = _rig(tmp_path, asyncio_client=True)
    try:
        await exchange.load_markets()
        order = asyncio.ensure_future(exchange.create_order(SYMBOL, "market", "buy", 0.01))
        # The held send blocks this loop's thread inside the transport: wait for it elsewhere.
        engager = await asyncio.to_thread(_when_on_wire_engage, switch, held)
        placed = await order
        await asyncio.to_thread(engager.join, 120)
    finally:
        held.engage_returned.set()
        await exchange.exchange.close()
        account.close()
        switch.close()
    assert held.events == ["send finished", "engage returned"]
    assert placed["status"] == "closed"
    assert len(account.orders("BTCUSDT")) == 1


def _when_on_wire_engage(switch: KillSwitch, held: HeldSend) -> threading.Thread:
    assert held.on_wire.wait(60)
    return _engage_from_another_thread(switch, held)


# --- the permit reads the persisted state itself -------------------------------------------------

ENGAGE_ELSEWHERE = textwrap.dedent(
    """
    import sys
    from safeguard._config import KillSwitchConfig
    from safeguard.killswitch import KillSwitch

    switch = KillSwitch(KillSwitchConfig(state_dir=sys.argv[1]), watch=False)
    switch.engage("engaged by another process", by="other-bot")
    switch.close()
    """
)


def _engage_in_another_process(state_dir: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", ENGAGE_ELSEWHERE, str(state_dir)],
        check=True,
        timeout=120,
        capture_output=True,
    )


@pytest.mark.parametrize(
    ("reduces_only", "is_cancel", "refused"),
    [(False, False, True), (True, False, True), (True, True, False)],
)
def test_a_bare_permit_obeys_an_engage_made_by_another_process(
    tmp_path: Path, reduces_only: bool, is_cancel: bool, refused: bool
) -> None:
    # No watcher thread and nothing else that reads the state: only the permit itself can
    # notice the other process's engage.
    switch = KillSwitch(KillSwitchConfig(state_dir=tmp_path, poll_interval_s=0.01), watch=False)
    try:
        with switch.permit(reduces_only=False):
            pass  # ACTIVE: it lets an opening order through
        _engage_in_another_process(tmp_path)
        sent: list[str] = []
        if refused:
            with pytest.raises(TradingHalted):
                _send(switch, reduces_only, is_cancel, sent)
            assert sent == []
        else:
            _send(switch, reduces_only, is_cancel, sent)
            assert sent == ["sent"]
        assert switch.state.state is TradingState.HALTED
        assert switch.state.by == "other-bot"
    finally:
        switch.close()


def _send(switch: KillSwitch, reduces_only: bool, is_cancel: bool, sent: list[str]) -> None:
    with switch.permit(reduces_only=reduces_only, is_cancel=is_cancel):
        sent.append("sent")
