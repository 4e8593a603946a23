"""An order whose fate is open is never forgotten, however the call ends.

Real ``ccxt.binanceusdm`` (sync and async) on the mock venue. Each test makes the venue hold an
order the caller was not told about in some new way: the look-up blocked by a ban, a throttle
hold or a ban that cannot be written down; the task cancelled or the process interrupted
mid-send; a look-up answer that names no order. The journal must say UNKNOWN (never pending
with ``reconciled`` left True), the caller must not hear "nothing was sent", and the next order
must reconcile first. Also here: a resend carries the amount its fresh verdict allowed, and a
per-call ``recvWindow`` stretches the settle window.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._bans import BanStore
from safeguard.guard._core import Assessment
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.guard._journal import Status
from safeguard.guard._orders import OrderCall
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue._client import ccxt_client

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
ACCEPTED_UNANSWERED = {
    "kind": "timeout_after_accept",
    "endpoint": "POST /fapi/v1/order",
    "count": 1,
    "hold_s": 0.05,
}


def _policy(**retry: float) -> Policy:
    return Policy.build(
        risk={"require_stop": False},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.5, "resolve_attempts": 3, **retry},
    )


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    acct = paper_account(wallet=10_000)
    yield acct
    acct.close()


def _orders(account: PaperAccount, cid: str) -> list[dict[str, Any]]:
    return [o for o in account.orders(VENUE_SYMBOL) if o["clientOrderId"] == cid]


def _left_unknown(ex: Any, account: PaperAccount, cid: str) -> None:
    """The order exists on the venue, and the guard knows it does not know."""
    assert [o["status"] for o in _orders(account, cid)] == ["FILLED"]
    entry = ex.runtime.core.journal.get(cid)
    assert entry is not None
    assert entry.status is Status.UNKNOWN
    assert ex.runtime.core.reconciled is False


def _next_order_reconciles_first(ex: Any, account: PaperAccount, cid: str) -> None:
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "next-order"})
    assert ex.runtime.core.journal.unresolved() == []
    assert ex.runtime.core.reconciled is True
    assert len(_orders(account, cid)) == 1
    assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.02)}


# --- the look-up blocked --------------------------------------------------------------------

LOOKUP_BLOCKED = {
    "ban": {"kind": "ban", "endpoint": "GET /fapi/v1/order", "count": 1},
    "hold": {
        "kind": "error",
        "endpoint": "GET /fapi/v1/order",
        "status": 429,
        "retry_after_s": 3600,
        "count": 1,
    },
}


@pytest.mark.parametrize("blocked", sorted(LOOKUP_BLOCKED))
def test_a_blocked_lookup_is_outcome_unknown_not_nothing_sent(
    account: PaperAccount, tmp_path: Path, blocked: str
) -> None:
    ex = account.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    account.set_faults({"rules": [ACCEPTED_UNANSWERED, LOOKUP_BLOCKED[blocked]]})
    with pytest.raises(errors.OutcomeUnknown) as unknown:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "held-up"})
    assert not isinstance(unknown.value, errors.RequestBlocked)
    assert isinstance(unknown.value.__cause__, errors.VenueBanned | errors.ThrottleHold)
    assert unknown.value.client_order_id == "held-up"
    _left_unknown(ex, account, "held-up")
    account.advance(4 * 3600)  # the ban or the hold runs out
    _next_order_reconciles_first(ex, account, "held-up")


async def test_async_a_banned_lookup_is_outcome_unknown(tmp_path: Path) -> None:
    account = paper_account(wallet=10_000)
    try:
        ex = account.guarded(_policy(), state_dir=tmp_path, asyncio=True)
        await ex.load_markets()
        account.set_faults({"rules": [ACCEPTED_UNANSWERED, LOOKUP_BLOCKED["ban"]]})
        with pytest.raises(errors.OutcomeUnknown) as unknown:
            await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "a-ban"})
        assert isinstance(unknown.value.__cause__, errors.VenueBanned)
        _left_unknown(ex, account, "a-ban")
        account.advance(4 * 3600)
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "next"})
        assert ex.runtime.core.journal.unresolved() == []
        assert len(_orders(account, "a-ban")) == 1
    finally:
        await account.aclose()


def test_a_ban_that_cannot_be_written_down_is_outcome_unknown(
    account: PaperAccount, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ex = account.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()

    def disk_full(self: BanStore, ip_key: str, until: float) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(BanStore, "record", disk_full)
    account.set_faults({"rules": [ACCEPTED_UNANSWERED, LOOKUP_BLOCKED["ban"]]})
    with pytest.raises(errors.OutcomeUnknown) as unknown:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "no-disk"})
    # The ban holds in memory all the same (logged): the look-up it stopped is the cause.
    assert isinstance(unknown.value.__cause__, errors.VenueBanned)
    _left_unknown(ex, account, "no-disk")


# --- the call cut short -------------------------------------------------------------------


def test_ctrl_c_mid_send_leaves_the_order_unknown(account: PaperAccount, tmp_path: Path) -> None:
    ex = account.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    raw = ex.exchange
    wire = raw.fetch

    def interrupted(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        answer = wire(url, method, headers, body)
        if method == "POST" and url.endswith("/order"):
            raise KeyboardInterrupt  # Ctrl-C lands as the venue's answer comes back
        return answer

    raw.fetch = interrupted
    with pytest.raises(KeyboardInterrupt):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "ctrl-c"})
    raw.fetch = wire
    _left_unknown(ex, account, "ctrl-c")
    _next_order_reconciles_first(ex, account, "ctrl-c")


async def test_async_cancelled_mid_send_leaves_the_order_unknown(tmp_path: Path) -> None:
    account = paper_account(wallet=10_000)
    server = account.serve()
    # Over HTTP, so the send really is in flight: the venue carries the order out at once and
    # holds its answer back.
    account.set_faults({"rules": [{**ACCEPTED_UNANSWERED, "hold_s": 5.0}]})
    raw = ccxt_client(server.url, account.api_key, account.secret, asyncio=True)
    policy = sandbox_policy(tmp_path, _policy())
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)

    async def sleep(seconds: float) -> bool:
        account.advance(seconds)
        return False

    ex = guard(raw, policy, kill_switch=switch, clock=account.clock, sleep_async=sleep)
    try:
        await ex.load_markets()
        params = {"clientOrderId": "cancelled"}
        task = asyncio.create_task(ex.create_order(SYMBOL, "market", "buy", 0.01, None, params))
        for _ in range(500):  # until the venue holds the order (the answer is held back)
            if _orders(account, "cancelled"):
                break
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        _left_unknown(ex, account, "cancelled")
        account.clear_faults()
        await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "next"})
        assert ex.runtime.core.journal.unresolved() == []
        assert len(_orders(account, "cancelled")) == 1
    finally:
        await raw.close()
        ex.runtime.core.journal.close()
        switch.close()
        account.close()


# --- what a look-up may count as found ----------------------------------------------------


def test_a_lookup_answer_naming_no_order_settles_nothing(
    account: PaperAccount, tmp_path: Path
) -> None:
    ex = account.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    raw = ex.exchange
    wire = raw.fetch

    def blank_lookups(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        if method == "GET" and "/fapi/v1/order?" in url:
            return {}  # ccxt parses it into an order whose every field is None
        return wire(url, method, headers, body)

    raw.fetch = blank_lookups
    # The request never reached the venue: no order exists, and a blank answer must not be
    # taken for one.
    dropped = {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": False, "count": 1}
    account.set_faults({"rules": [dropped]})
    with pytest.raises(errors.OutcomeUnknown):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "blank"})
    assert _orders(account, "blank") == []
    entry = ex.runtime.core.journal.get("blank")
    assert entry is not None
    assert entry.status is Status.UNKNOWN


# --- the resend --------------------------------------------------------------------------


class _ShrinksOnceDegraded:
    """The real gate, except that once an order has failed it allows half of what it is asked
    for, as PreTradeGate does with ``shrink_when_degraded`` when the venue turns DEGRADED (the
    degraded fill model's own numbers are not what is under test here)."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.degraded = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.gate, name)

    def assess(self, intent: OrderCall, now: float, *, explain: bool = False) -> Assessment:
        judged: Assessment = self.gate.assess(intent, now, explain=explain)
        if not self.degraded or intent.amount is None or judged.denial is not None:
            return judged
        return replace(judged, intent=replace(intent, amount=intent.amount / 2))


def test_a_resend_sends_the_amount_its_fresh_verdict_allowed(
    account: PaperAccount, tmp_path: Path
) -> None:
    hooks = Hooks()
    ex = account.guarded(_policy(), state_dir=tmp_path, hooks=hooks)
    ex.load_markets()
    gate = _ShrinksOnceDegraded(ex.runtime.core.gate)
    ex.runtime.core.gate = gate

    def degrade(event: RequestEvent) -> None:
        if event.method == "create_order" and event.outcome != "ok":
            gate.degraded = True

    hooks.subscribe(EventKind.REQUEST, degrade)
    dropped = {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": False, "count": 1}
    account.set_faults({"rules": [dropped]})
    order = ex.create_order(SYMBOL, "market", "buy", 0.02, None, {"clientOrderId": "shrunk"})
    placed = _orders(account, "shrunk")
    assert [float(o["origQty"]) for o in placed] == [0.01]
    assert float(order["amount"]) == 0.01
    assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.01)}


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
async def test_a_per_call_recv_window_stretches_the_settle_window(
    tmp_path: Path, use_async: bool
) -> None:
    account = paper_account(wallet=10_000)
    hooks = Hooks()
    sends: list[RequestEvent] = []
    hooks.subscribe(
        EventKind.REQUEST, lambda e: sends.append(e) if e.method == "create_order" else None
    )
    # A retry budget long enough to wait the window out (else it gives up: RetriesExhausted).
    policy = _policy(total_budget_s=120.0)
    ex = account.guarded(policy, state_dir=tmp_path, hooks=hooks, asyncio=use_async)

    async def call(method: Callable[..., Any], *args: Any) -> Any:
        result = method(*args)
        return await result if use_async else result

    try:
        await call(ex.load_markets)
        dropped = {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": False}
        account.set_faults({"rules": [{**dropped, "count": 1}]})
        params = {"clientOrderId": "patient", "recvWindow": 30_000}
        await call(ex.create_order, SYMBOL, "market", "buy", 0.01, None, params)
        # The venue could have acted on the first send for 30 s: not resent before that.
        first, resend = sends
        assert resend.at - first.at >= 30.0
        assert len(_orders(account, "patient")) == 1
    finally:
        await account.aclose()
