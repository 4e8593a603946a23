"""When an order whose send was ambiguous counts as absent, and what "not found" must mean.

The rule (safeguard.guard._core): after an ambiguous send, an order is known absent only when
the look-up by client id finds nothing, the open orders do not list it, and the venue's
``recvWindow`` plus a clock-skew margin has passed since the last send. Each part is pinned
here on the real venue with simulated time, watching every request at the transport.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._orders import CLOCK_SKEW_MARGIN_S
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch
from safeguard.sim._world import SkewedClock
from safeguard.testing import PaperAccount, paper_account, sandbox_policy

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
ORDER_POST = "POST /fapi/v1/order"
# The first order POST is refused with a 503 before the venue did anything: ambiguous to the
# client, absent in truth.
LOST_FIRST_POST = {
    "rules": [{"kind": "error", "endpoint": ORDER_POST, "status": 503, "count": 1}],
}

# ...and then the first look-up fails too, so the guard backs off before it looks again.
LOST_FIRST_POST_AND_LOOK_UP = {
    "rules": [
        *LOST_FIRST_POST["rules"],
        {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 503, "count": 1},
    ],
}


@dataclass
class Rig:
    account: PaperAccount
    exchange: Any
    requests: list[tuple[str, float]] = field(default_factory=list)

    def sent(self, endpoint: str) -> list[float]:
        """When (venue clock) each request to ``endpoint`` left."""
        return [at for name, at in self.requests if name == endpoint]


def _rig(
    tmp_path: Path,
    faults: Any = None,
    journal: Path | None = None,
    jump: tuple[Literal["on the wire", "in a sleep"], float] | None = None,
) -> Rig:
    """``jump``: the guard's own clock (the venue keeps its clock) steps that far (forward,
    or back when negative), as an NTP step would: while the first order POST is on the wire,
    or during the first sleep after it (ask the venue's fault plan for a failed look-up to
    have the guard back off)."""
    account = paper_account(wallet=100_000.0, faults=faults)
    # Both clocks move together on every sleep; only the guard's jumps.
    stepped = SkewedClock(account.clock)  # the simulator's: an offset a test steps
    guard_clock = account.clock if jump is None else stepped
    jumped = False

    def jump_if(when: str) -> None:
        nonlocal jumped
        if jump is not None and jump[0] == when and rig.sent(ORDER_POST) and not jumped:
            jumped = True
            stepped.offset += jump[1]

    # A retry budget that outlasts a 30 s recvWindow: the wait, not the budget, is under test.
    policy = sandbox_policy(
        tmp_path, Policy.build(risk={"require_stop": False}, retry={"total_budget_s": 120.0})
    )
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
    raw = account.client()
    rig = Rig(account, None)
    fetch = raw.fetch

    def transport(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        rig.requests.append((f"{method} {urlsplit(url).path}", account.clock.time()))
        try:
            return fetch(url, method, headers, body)
        finally:
            jump_if("on the wire")

    raw.fetch = transport

    def sleep(seconds: float) -> bool:
        account.advance(seconds)
        jump_if("in a sleep")
        return False

    rig.exchange = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=guard_clock,
        journal_path=journal or tmp_path / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(policy.throttle),
        sleep=sleep,
    )
    account._closers.append(rig.exchange.runtime.core.journal.close)
    account._closers.append(switch.close)
    return rig


@pytest.fixture
def closing() -> Iterator[list[Rig]]:
    rigs: list[Rig] = []
    yield rigs
    for rig in rigs:
        rig.account.close()


def test_after_an_ambiguous_send_the_resend_waits_the_recv_window_and_the_skew_margin(
    tmp_path: Path, closing: list[Rig]
) -> None:
    rig = _rig(tmp_path, LOST_FIRST_POST)
    closing.append(rig)
    rig.exchange.load_markets()
    recv_window_s = rig.exchange.options["recvWindow"] / 1000.0
    order = rig.exchange.create_order(SYMBOL, "market", "buy", 0.01)
    first, second = rig.sent(ORDER_POST)
    assert second - first >= recv_window_s + CLOCK_SKEW_MARGIN_S
    assert CLOCK_SKEW_MARGIN_S > 0
    assert order["status"] == "closed"
    assert len(rig.account.orders(VENUE_SYMBOL)) == 1


@pytest.mark.parametrize("jump_s", [60.0, 86_400.0], ids=["a minute", "a day"])
@pytest.mark.parametrize("when", ["on the wire", "in a sleep"])
def test_a_forward_clock_jump_after_an_ambiguous_send_is_no_proof_the_order_is_absent(
    tmp_path: Path, closing: list[Rig], when: Literal["on the wire", "in a sleep"], jump_s: float
) -> None:
    # The guard's clock steps ahead (an NTP step) while the first POST is unanswered, or while
    # the guard backs off to look it up again: on the venue's clock no such time has passed, so the
    # venue could still take that first send. The jump may end the call (its time budget is
    # spent, its market data now looks stale), but the "nothing was placed" it ends with must
    # rest only on time the guard really waited.
    rig = _rig(tmp_path, LOST_FIRST_POST_AND_LOOK_UP, jump=(when, jump_s))
    closing.append(rig)
    rig.exchange.load_markets()
    recv_window_s = rig.exchange.options["recvWindow"] / 1000.0
    with pytest.raises(errors.SafeguardError) as refused:
        rig.exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert not isinstance(refused.value, errors.OutcomeUnknown)  # it was settled absent
    assert rig.exchange.runtime.clock.time() - rig.account.clock.time() == jump_s  # it jumped
    [post] = rig.sent(ORDER_POST)  # never sent again
    declared_absent_at = rig.account.clock.time()  # on the venue's clock
    assert declared_absent_at - post >= recv_window_s + CLOCK_SKEW_MARGIN_S
    assert rig.account.orders(VENUE_SYMBOL) == []


@pytest.mark.parametrize("when", ["on the wire", "in a sleep"])
def test_a_clock_stepped_back_after_an_ambiguous_send_still_lets_the_window_run_out(
    tmp_path: Path, closing: list[Rig], when: Literal["on the wire", "in a sleep"]
) -> None:
    # Found by the simulator (seed 7 in fleet mode): after the guard's clock stepped back an
    # hour, the time it waited for the venue's window was measured from the newest time it
    # had seen (which stands still until the clock passes it again) to the clock after the
    # sleep: nothing, every time. The order was left unknown for the hour, and every next
    # order's reconcile failed on it.
    rig = _rig(tmp_path, LOST_FIRST_POST_AND_LOOK_UP, jump=(when, -3_600.0))
    closing.append(rig)
    rig.exchange.load_markets()
    recv_window_s = rig.exchange.options["recvWindow"] / 1000.0
    ended: errors.SafeguardError | None = None
    try:
        rig.exchange.create_order(SYMBOL, "market", "buy", 0.01)
    except errors.SafeguardError as exc:
        ended = exc
    assert not isinstance(ended, errors.OutcomeUnknown), ended  # settled, one way or the other
    assert rig.exchange.runtime.clock.time() - rig.account.clock.time() == -3_600.0  # it stepped
    first, *again = rig.sent(ORDER_POST)
    lookups = rig.sent("GET /fapi/v1/order")
    # Absent only after the venue's window ran out on its own clock, and sent again at most
    # once, after that.
    assert lookups[-1] - first >= recv_window_s + CLOCK_SKEW_MARGIN_S
    assert len(again) <= 1
    assert len(rig.account.orders(VENUE_SYMBOL)) == len(again)
    assert rig.exchange.runtime.core.journal.unresolved() == []


def test_a_per_call_recv_window_stretches_the_wait_with_the_same_margin(
    tmp_path: Path, closing: list[Rig]
) -> None:
    rig = _rig(tmp_path, LOST_FIRST_POST)
    closing.append(rig)
    rig.exchange.load_markets()
    rig.exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"recvWindow": 30_000})
    first, second = rig.sent(ORDER_POST)
    assert second - first >= 30.0 + CLOCK_SKEW_MARGIN_S
    assert len(rig.account.orders(VENUE_SYMBOL)) == 1


def _restarted(tmp_path: Path, client_id: str, *, sent_ago_s: list[float]) -> tuple[Rig, float]:
    """A restart over a previous run's journal: ``client_id`` sent (pending, then unknown for
    each further send) that many seconds before the venue's clock at restart, returned too."""
    account = paper_account()
    now = account.clock.time()
    first, *later = sent_ago_s
    records = [
        {"id": client_id, "status": "pending", "t": now - first, "symbol": SYMBOL,
         "intent": {"type": "market", "side": "buy"}},
        *({"id": client_id, "status": "unknown", "t": now - ago} for ago in later),
    ]  # fmt: skip
    journal = tmp_path / "orders.jsonl"
    journal.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    account.close()
    rig = _rig(tmp_path, journal=journal)
    assert rig.account.clock.time() == now
    return rig, now


def test_a_restart_counts_the_settle_window_from_the_last_send_not_the_first(
    tmp_path: Path, closing: list[Rig]
) -> None:
    # A previous run's entry: first sent long ago, sent again (and left unknown) just now.
    rig, now = _restarted(tmp_path, "restart-1", sent_ago_s=[600.0, 1.0])
    closing.append(rig)
    settled = dict(rig.exchange.reconcile())
    assert settled == {"restart-1": None}
    # Declared absent only once the window after the last send (now - 1) had passed.
    last_lookup = rig.sent("GET /fapi/v1/order")[-1]
    assert last_lookup >= now - 1.0 + rig.exchange.runtime.core.settle_window_s
    assert rig.sent(ORDER_POST) == []


def test_a_restart_after_the_clock_stepped_back_waits_one_window_not_until_the_entry_time(
    tmp_path: Path, closing: list[Rig]
) -> None:
    # The previous run wrote its entry a day "ahead" of this run's clock (the clock was
    # stepped back between the runs): the venue's window cannot have more than a window left.
    rig, now = _restarted(tmp_path, "ahead-1", sent_ago_s=[-86_400.0])
    closing.append(rig)
    window = rig.exchange.runtime.core.settle_window_s
    assert dict(rig.exchange.reconcile()) == {"ahead-1": None}
    first_lookup, *_, last_lookup = rig.sent("GET /fapi/v1/order")
    assert last_lookup - first_lookup >= window  # the window was waited out...
    assert rig.account.clock.time() - now <= window + 1.0  # ...and not a day
    assert rig.sent(ORDER_POST) == []


def test_a_live_order_the_look_up_misses_is_found_in_the_open_orders_and_not_sent_again(
    tmp_path: Path, closing: list[Rig]
) -> None:
    faults = {
        "rules": [
            # The venue takes the order and answers 503: the client cannot tell.
            {"kind": "error", "endpoint": ORDER_POST, "status": 503, "processed": True,
             "count": 1},
            # ...and its order look-up misses the order while it rests on the book.
            {"kind": "hide_order"},
        ]
    }  # fmt: skip
    rig = _rig(tmp_path, faults)
    closing.append(rig)
    rig.exchange.load_markets()
    mark = float(rig.exchange.fetch_ticker(SYMBOL)["last"])
    price = round(mark * 0.97, 1)
    order = rig.exchange.create_order(SYMBOL, "limit", "buy", 0.01, price)
    assert rig.account.faults_fired()[1] >= 1  # the look-up really was hidden
    assert len(rig.sent(ORDER_POST)) == 1  # never sent again
    [resting] = rig.account.orders(VENUE_SYMBOL)
    assert resting["status"] == "NEW"
    assert order["id"] == str(resting["orderId"])
    assert order["clientOrderId"] == resting["clientOrderId"]
