"""A process that dies mid-order: the next run settles the order by looking it up, never blindly.

The dying run is a real child process trading on the mock venue over loopback HTTP with an
fsynced journal; it is killed (``os._exit``) right after its pending record is written, either
before the order reaches the wire or just after the venue carried it out. The next run is a
fresh guarded exchange on the same state directory (real ``ccxt.binanceusdm`` in process on the
same venue, simulated time): its first order reconciles the dead run's order first.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from tests.guard.test_guard_failure_releases import corrupt_equity_marks

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
DIED = 17

DYING_RUN = r"""
import os, sys
from urllib.parse import urlsplit
from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import sandbox_policy
from safeguard.venue._client import ccxt_client

url, key, secret, state, start, cid, when = sys.argv[1:8]
policy = sandbox_policy(state, Policy.build(risk={"require_stop": False}))
clock = ManualClock(float(start))
raw = ccxt_client(url, key, secret)
wire = raw.fetch

def dying(url, method="GET", headers=None, body=None):
    if method == "POST" and urlsplit(url).path == "/fapi/v1/order":
        if when == "after_the_send":
            wire(url, method, headers, body)
        os._exit(17)  # the journal's pending record is already on disk
    return wire(url, method, headers, body)

raw.fetch = dying
switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
exchange = guard(raw, policy, kill_switch=switch, clock=clock, sleep=lambda s: False, ladder=False)
exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, {"clientOrderId": cid})
"""


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    acct = paper_account(wallet=100_000)
    yield acct
    acct.close()


def _die_mid_order(account: PaperAccount, state: Path, cid: str, when: str) -> None:
    server = account.serve()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            DYING_RUN,
            server.url,
            account.api_key,
            account.secret,
            str(state),
            repr(account.clock.time()),
            cid,
            when,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == DIED, done.stderr[-3000:]


def _on_venue(account: PaperAccount, cid: str) -> int:
    return sum(1 for o in account.orders(VENUE_SYMBOL) if o["clientOrderId"] == cid)


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False})


def test_an_order_journaled_but_never_sent_is_settled_absent_not_resent(
    account: PaperAccount, tmp_path: Path
) -> None:
    _die_mid_order(account, tmp_path, "died-unsent", "before_the_send")
    assert _on_venue(account, "died-unsent") == 0
    ex = account.guarded(_policy(), state_dir=tmp_path)
    started = account.clock.time()
    ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "next-run"})
    # Looked up, and known absent only once the venue could no longer act on the dead send.
    assert account.clock.time() - started >= 10.0
    assert _on_venue(account, "died-unsent") == 0
    assert ex.runtime.core.journal.unresolved() == []
    # It never existed: the caller may send it now, under the same id, exactly once.
    ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "died-unsent"})
    assert _on_venue(account, "died-unsent") == 1
    assert _on_venue(account, "next-run") == 1


def test_an_order_sent_just_before_the_process_died_is_found_and_never_doubled(
    account: PaperAccount, tmp_path: Path
) -> None:
    _die_mid_order(account, tmp_path, "died-sent", "after_the_send")
    assert _on_venue(account, "died-sent") == 1
    ex = account.guarded(_policy(), state_dir=tmp_path)
    ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "next-run"})
    assert ex.runtime.core.journal.unresolved() == []
    # A bot that replays its last step after a restart, with the same id, doubles nothing:
    # the journal still knows the id was used, though its order is settled.
    with pytest.raises(errors.RequestBlocked, match="died-sent"):
        ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "died-sent"})
    assert _on_venue(account, "died-sent") == 1
    assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.004)}


def test_a_guarded_exchange_on_a_journal_another_process_holds_is_refused_before_it_builds_anything(
    account: PaperAccount, tmp_path: Path
) -> None:
    """Another process trading on the same key and state directory would compact away this
    one's pending orders: guard() is refused, clearly, and leaves nothing running. (Clients in
    one process share the journal: tests/guard/test_journal_shared.py.)"""
    policy = sandbox_policy(tmp_path, _policy())
    watched = policy.model_copy(
        update={"kill_switch": policy.kill_switch.model_copy(update={"watch_state_file": True})}
    )
    first = account.guarded(_policy(), state_dir=tmp_path)
    path = first.runtime.core.journal.path
    first.runtime.core.journal.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_JOURNAL, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "holding\n"
        threads = set(threading.enumerate())
        with pytest.raises(errors.ConfigError, match="already open by another process"):
            guard(account.client(), watched, clock=account.clock)
        assert set(threading.enumerate()) == threads  # no kill-switch watcher left behind
    finally:
        holder.communicate("")  # the other process ends, letting go of the journal
    # A guard() that fails for any other reason lets go of its journal, too.
    marks = corrupt_equity_marks(tmp_path, account.api_key)
    with pytest.raises(errors.ConfigError, match="equity-binanceusdm"):
        guard(account.client(), watched, journal_path=tmp_path / "second.jsonl", triggers=True)
    marks.unlink()
    # Its own journal_path is the way to run a second one, and the first one's opens again.
    second = guard(
        account.client(),
        watched,
        clock=account.clock,
        journal_path=tmp_path / "second.jsonl",
        ladder=False,
    )
    second.runtime.switch.close()
    second.runtime.core.journal.close()
    again = guard(account.client(), watched, clock=account.clock, ladder=False)
    again.runtime.switch.close()
    again.create_order(SYMBOL, "market", "buy", 0.002)
    again.runtime.core.journal.close()


_HOLD_JOURNAL = """
import sys
from safeguard.guard._journal import OrderJournal
journal = OrderJournal(sys.argv[1])
print("holding", flush=True)
sys.stdin.read()
journal.close()
"""
