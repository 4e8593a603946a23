"""``kill -9`` on the order path: the pending record is on disk before the send, and a restart
from the files neither loses nor doubles the order.

A real bot process (guarded real ccxt over loopback HTTP to a venue this test process serves)
places one order and is SIGKILLed by its own transport, right as the order POST is about to
leave (``before-send``) or right after the venue answered it (``after-send``). The bot prints
each ``fdatasync`` it makes and the moment of the send, so the order of the two is seen from
outside. Then the test reads the journal file the dead process left and restarts from it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue._server import VenueServer

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
CLIENT_ID = "crash-test-order-1"

BOT = textwrap.dedent(
    """
    import os, signal, sys
    from safeguard._clock import ManualClock
    from safeguard._config import Policy
    from safeguard.guard import guard
    from safeguard.killswitch._switch import KillSwitch
    from safeguard.testing import DEFAULT_API_KEY, DEFAULT_SECRET, sandbox_policy
    from safeguard.venue._client import ccxt_client

    url, state_dir, journal, when, start, client_id = sys.argv[1:7]

    def say(line):
        print(line, flush=True)

    real_fdatasync = os.fdatasync

    def fdatasync(fd):  # watched, not replaced: the real call is made
        real_fdatasync(fd)
        say("fdatasync " + os.readlink(f"/proc/self/fd/{fd}"))

    os.fdatasync = fdatasync

    raw = ccxt_client(url, DEFAULT_API_KEY, DEFAULT_SECRET)
    fetch = raw.fetch

    def transport(url, method="GET", headers=None, body=None):
        if method == "POST" and url.split("?")[0].endswith("/fapi/v1/order"):
            if when == "before-send":
                say("sending")
                os.kill(os.getpid(), signal.SIGKILL)
            answer = fetch(url, method, headers, body)
            say("sent")
            os.kill(os.getpid(), signal.SIGKILL)
        return fetch(url, method, headers, body)

    raw.fetch = transport
    clock = ManualClock(float(start))

    def sleep(seconds):
        clock.advance(seconds)
        return False

    policy = sandbox_policy(state_dir, Policy.build(risk={"require_stop": False}))
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    exchange = guard(raw, policy, kill_switch=switch, clock=clock, journal_path=journal,
                     durable_journal=True, sleep=sleep)
    exchange.load_markets()
    say("ready")
    exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01, None,
                          {"clientOrderId": client_id})
    say("returned")  # never: the transport kills the process first
    """
)


@pytest.fixture
def venue() -> Iterator[tuple[PaperAccount, VenueServer]]:
    account = paper_account(wallet=100_000.0)
    server = account.serve()
    yield account, server
    account.close()


def _run_bot(account: PaperAccount, server: VenueServer, tmp_path: Path, when: str) -> list[str]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            BOT,
            server.url,
            str(tmp_path / "bot-state"),
            str(tmp_path / "orders.jsonl"),
            when,
            repr(account.clock.time()),
            CLIENT_ID,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    return done.stdout.splitlines()


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _venue_orders(account: PaperAccount) -> list[dict[str, Any]]:
    return [o for o in account.orders(VENUE_SYMBOL) if o["clientOrderId"] == CLIENT_ID]


def _restart(account: PaperAccount, server: VenueServer, tmp_path: Path) -> Any:
    """The bot again, in this process, on the files the dead one left."""
    policy = sandbox_policy(tmp_path / "bot-state", Policy.build(risk={"require_stop": False}))
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)

    def sleep(seconds: float) -> bool:
        account.advance(seconds)
        return False

    exchange = guard(
        account.http_client(server),
        policy,
        kill_switch=switch,
        clock=account.clock,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(policy.throttle),
        sleep=sleep,
    )
    account._closers.append(exchange.runtime.core.journal.close)
    account._closers.append(switch.close)
    return exchange


@pytest.mark.parametrize("when", ["before-send", "after-send"])
def test_the_pending_record_is_fsynced_before_the_order_leaves(
    venue: tuple[PaperAccount, VenueServer], tmp_path: Path, when: str
) -> None:
    account, server = venue
    said = _run_bot(account, server, tmp_path, when)
    journal = str(tmp_path / "orders.jsonl")
    send_line = "sending" if when == "before-send" else "sent"
    assert said[0] == "ready"
    assert said[-1] == send_line
    # The journal's data was synced after "ready" and before the send, by the dead process.
    assert f"fdatasync {journal}" in said[1 : said.index(send_line)]
    pending = [r for r in _records(tmp_path / "orders.jsonl") if r["status"] == "pending"]
    assert [r["id"] for r in pending] == [CLIENT_ID]
    assert pending[0]["symbol"] == SYMBOL
    assert pending[0]["intent"]["side"] == "buy"


def test_killed_before_the_send_a_restart_knows_the_order_is_absent_and_places_it_once(
    venue: tuple[PaperAccount, VenueServer], tmp_path: Path
) -> None:
    account, server = venue
    _run_bot(account, server, tmp_path, "before-send")
    assert _venue_orders(account) == []  # it never left
    exchange = _restart(account, server, tmp_path)
    assert exchange.runtime.core.journal.get(CLIENT_ID).status == "pending"
    assert dict(exchange.reconcile()) == {CLIENT_ID: None}  # known absent, after the window
    # The bot places it again, under the same id: one order, not two, not none.
    again = exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": CLIENT_ID})
    assert again["clientOrderId"] == CLIENT_ID
    assert len(_venue_orders(account)) == 1
    assert exchange.runtime.core.journal.unresolved() == []


def test_killed_after_the_send_a_restart_finds_the_order_and_does_not_place_it_again(
    venue: tuple[PaperAccount, VenueServer], tmp_path: Path
) -> None:
    account, server = venue
    _run_bot(account, server, tmp_path, "after-send")
    [landed] = _venue_orders(account)  # the venue took it; its answer died with the bot
    exchange = _restart(account, server, tmp_path)
    settled = dict(exchange.reconcile())
    assert list(settled) == [CLIENT_ID]
    assert settled[CLIENT_ID]["id"] == str(landed["orderId"])
    assert exchange.runtime.core.journal.unresolved() == []
    # A restarted bot that places its next order reconciles nothing again and doubles nothing.
    exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert len(_venue_orders(account)) == 1
    assert account.positions() == {}


def test_a_restart_that_goes_straight_to_the_next_order_reconciles_first(
    venue: tuple[PaperAccount, VenueServer], tmp_path: Path
) -> None:
    account, server = venue
    _run_bot(account, server, tmp_path, "after-send")
    exchange = _restart(account, server, tmp_path)
    # No explicit reconcile: the first order settles the dead run's entry before it is sent.
    exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert exchange.runtime.core.journal.unresolved() == []
    assert len(_venue_orders(account)) == 1
    assert account.positions() == {}
