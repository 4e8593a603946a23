"""Streams the guard holds itself (``hold_streams``): the async face's tasks, the sync face's
background thread, in process and over loopback HTTP.

The bot here never watches: the guard's own loops keep its view fresh, so orders spaced past
the REST schedule read nothing on the order path, and a stream fault is seen by the guard as
the staleness it is. Unmodified ccxt.pro against the mock venue on simulated time; every wait
is for an event (the view hearing a message at the venue's current time).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.killswitch._switch import KillSwitch
from safeguard.risk._outcome import Decision
from safeguard.testing import PaperAccount, paper_account, sandbox_policy

BTC = "BTC/USDT:USDT"
HANG_S = 120.0
"""Only a hang waits this long: every wait ends on an event (a loaded machine can take tens
of seconds to reconnect a loopback stream, so this is no timing bound)."""


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False}, degradation={"min_samples": 100_000})


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    account.advance(6 * 3600)
    yield account
    account.close()


class OrderPath:
    """The requests the guard made from one thread / task: the order path's."""

    def __init__(self, hooks: Hooks, mine: Callable[[], bool]) -> None:
        self.seen: list[str] = []
        self.mine = mine
        hooks.subscribe(EventKind.REQUEST, self._request)

    def _request(self, event: Any) -> None:
        assert isinstance(event, RequestEvent)
        if self.mine():
            self.seen.append(event.method)


def _heard_since(ex: Any, since: float, *feeds: str) -> bool:
    """Each feed heard a message after ``since`` (the step's start) and is not broken. Not
    "at the venue's time now": the holder's thread may take a message while ``advance`` is
    still stepping the venue, stamped mid-step, and the next one comes a step later."""
    live = ex.runtime.view.cache.feeds
    return all(
        (feed, BTC) in live
        and live[(feed, BTC)].last_message > since
        and live[(feed, BTC)].broken is None
        for feed in feeds
    )


def _heard_at(ex: Any, venue_time: float, *feeds: str) -> bool:
    """Each feed's last message is the venue's of ``venue_time`` or later (and it is not
    broken)."""
    live = ex.runtime.view.cache.feeds
    return all(
        (feed, BTC) in live
        and (live[(feed, BTC)].venue_time or 0.0) >= venue_time
        and live[(feed, BTC)].broken is None
        for feed in feeds
    )


def _nothing_due(ex: Any, paper: PaperAccount) -> bool:
    """The stream's path has made the reads a message made due (on the holder's thread, just
    after the message): an order now finds nothing to read. Without this wait the test raced
    that thread, and an order placed first made the reads itself (as it must)."""
    return not ex.runtime.view.cache.refresh(BTC, paper.clock.time())


def _wait(condition: Callable[[], bool], what: str, state: Callable[[], Any] = str) -> None:
    give_up = time.monotonic() + HANG_S
    while time.monotonic() < give_up:
        if condition():
            return
        time.sleep(0.001)
    raise AssertionError(f"never happened: {what} ({state()!r})")


def test_a_sync_guard_holding_streams_on_a_thread_reads_nothing_on_the_order_path(
    paper: PaperAccount, tmp_path: Path
) -> None:
    hooks = Hooks()
    main = threading.current_thread()
    path = OrderPath(hooks, lambda: threading.current_thread() is main)
    ex = paper.guarded(_policy(), state_dir=tmp_path, hooks=hooks)
    ex.load_markets()
    holder = ex.hold_streams([BTC], paper.client(pro=True))
    try:
        since = paper.clock.time()
        paper.advance(1.0)
        _wait(lambda: _heard_since(ex, since, "mark"), "the held streams heard")
        ex.create_order(BTC, "market", "buy", 0.01)
        _wait(lambda: ex.runtime.view.cache.account_streamed(paper.clock.time()), "account")
        for i in range(6):
            since = paper.clock.time()
            paper.advance(2.5)  # past the REST schedule (half of max_market_data_age_s)
            _wait(
                lambda: _heard_since(ex, since, "mark", "ticker"),  # noqa: B023 (waited on here)
                f"step {i} heard",
                lambda: ex.runtime.view.cache.feeds,
            )
            _wait(lambda: _nothing_due(ex, paper), f"step {i}'s reads made on the stream's path")
            path.seen.clear()
            ex.create_order(BTC, "market", "sell" if i % 2 else "buy", 0.01)
            assert path.seen == ["create_order"], i
        assert paper.positions() == {"BTCUSDT": pytest.approx(0.01)}
    finally:
        holder.close()
    assert holder._thread is not None
    assert not holder._thread.is_alive()


def test_a_held_stream_misses_no_message_while_its_reads_are_in_flight(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """The reads a message makes due (the tier table's schedule) run on the stream's path;
    a message that arrives while they are in flight still reaches the view. Here the tier
    read takes 5 s of the venue's time, and the mark, book and ticker of that moment are
    published while it is in flight: if the loop that made the read only watched again after
    it, ccxt.pro would resolve nobody with that moment's message, and the view would wait a
    whole period (here for ever: the clock moves no more) for the next."""
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    holder = ex.hold_streams([BTC], paper.client(pro=True), account=False)
    cache = ex.runtime.view.cache
    try:
        since = paper.clock.time()
        paper.advance(1.0)
        _wait(lambda: _heard_since(ex, since, "mark"), "the held streams heard")
        # The first message's reads (the tier table among them) are made before the read the
        # fault slows down: that one is the schedule's next.
        _wait(lambda: BTC in cache.tiers, "the first tier read", lambda: cache.feeds)
        slow_from = paper.clock.time()
        paper.set_faults(
            {"rules": [{"kind": "latency", "endpoint": "GET /fapi/v1/leverageBracket",
                        "ms": 5000, "count": 1}]}
        )  # fmt: skip
        for _ in range(60):
            paper.advance(2.0)
            now = paper.clock.time()
            _wait(
                lambda: _heard_at(ex, now, "mark", "ticker"),  # noqa: B023 (waited on here)
                "the step heard",
                lambda: cache.feeds,
            )
            if cache.stream_asked.get(("fetch_leverage_tiers", ()), 0.0) > slow_from:
                break  # the stream's path is reading the tiers: the clock is the read's now
        _wait(
            lambda: BTC in cache.tiers and cache.tiers[BTC].fetched > slow_from,
            "the stream's path read the tier table",
        )
        assert paper.faults_fired() == [1], "the tier read was not the slow one"
        # The read moved the venue's clock 5 s on: that moment's messages reach the view.
        _wait(
            lambda: _heard_at(ex, paper.clock.time(), "mark", "ticker", "book"),
            "the messages published during the read",
            lambda: (paper.clock.time(), cache.feeds),
        )
    finally:
        holder.close()


def test_a_stall_on_loopback_held_streams_denies_new_exposure(
    paper: PaperAccount, tmp_path: Path
) -> None:
    server = paper.serve()
    policy = sandbox_policy(tmp_path, _policy())
    switch = KillSwitch(policy.kill_switch, clock=paper.clock, watch=False)
    hooks = Hooks()
    main = threading.current_thread()
    path = OrderPath(hooks, lambda: threading.current_thread() is main)
    ex = guard(
        paper.http_client(server),
        policy,
        kill_switch=switch,
        clock=paper.clock,
        hooks=hooks,
        durable_journal=False,
    )
    holder = ex.hold_streams([BTC], paper.http_client(server, pro=True), account=False)
    try:
        ex.load_markets()
        since = paper.clock.time()
        paper.advance(1.0)
        # Every feed the verdict judges (each is its own socket over loopback: under load the
        # book's may connect after the mark's, and an unfed book is read over REST).
        _wait(lambda: _heard_since(ex, since, "mark", "ticker", "book"), "the held streams heard")
        assert ex.preview(BTC, "market", "buy", 0.01).decision is Decision.ALLOW
        paper.set_faults({"rules": [{"kind": "stream_stall", "end_s": 30}]})
        heard = ex.runtime.view.cache.feeds[("mark", BTC)].last_message
        paper.advance(6.0)
        paper.dialect.tick()
        path.seen.clear()
        verdict = ex.preview(BTC, "market", "buy", 0.01)
        assert ex.runtime.view.cache.feeds[("mark", BTC)].last_message == heard
        assert verdict.decision is Decision.DENY
        stale = [f.message for f in verdict.denials if f.code == Code.STALE_MARKET_DATA]
        assert any("has sent nothing for 6.0s" in m for m in stale)
        assert not {"fetch_funding_rate", "fetch_order_book", "fetch_ticker"} & set(path.seen)
        since = paper.clock.time()
        paper.advance(30.0)
        paper.dialect.tick()
        # Every feed the verdict judges: over loopback each is its own socket, and the mark's
        # message may come before the book's and the ticker's.
        _wait(lambda: _heard_since(ex, since, "mark", "ticker", "book"), "the streams resumed")
        assert ex.preview(BTC, "market", "buy", 0.01).decision is Decision.ALLOW
    finally:
        holder.close()
        ex.runtime.core.journal.close()
        switch.close()


@pytest.mark.parametrize(
    "fault",
    [{"kind": "stream_disconnect"}, {"kind": "listen_key_expire"}],
    ids=["disconnect", "listen-key-expired"],
)
def test_a_flat_bot_holding_streams_can_open_a_position_after_its_user_data_stream_broke(
    paper: PaperAccount, tmp_path: Path, fault: dict[str, Any]
) -> None:
    """A flat account is quiet: nothing on the user-data stream tells the view it is back.
    The held loop's reconnect does, and the account is reconciled over REST on the stream
    thread, not on the order path."""
    hooks = Hooks()
    main = threading.current_thread()
    path = OrderPath(hooks, lambda: threading.current_thread() is main)
    ex = paper.guarded(_policy(), state_dir=tmp_path, hooks=hooks)
    ex.load_markets()
    holder = ex.hold_streams([BTC], paper.client(pro=True), retry_s=0.0)
    cache = ex.runtime.view.cache
    try:
        since = paper.clock.time()
        paper.advance(1.0)
        _wait(lambda: _heard_since(ex, since, "mark"), "the held streams heard")
        _wait(lambda: cache.account_streamed(paper.clock.time()), "the account streamed")
        account = cache.feeds[("account", None)]  # (its last message: ccxt's snapshot)
        paper.set_faults({"rules": [fault]})
        paper.advance(0.5)
        paper.dialect.tick()
        _wait(
            lambda: cache.feeds[("account", None)] is not account,  # broken (maybe back already)
            "the user-data stream broke",
        )
        paper.clear_faults()
        _wait(
            lambda: cache.account_stream_gap() is None and cache.account_consistent(),
            "the user-data stream live again, the account reconciled",
            lambda: cache.feeds[("account", None)],
        )
        # No account event since the break: the reconnect and the reconcile ended it.
        assert cache.feeds[("account", None)].last_message == account.last_message
        since = paper.clock.time()
        paper.advance(2.5)
        _wait(lambda: _heard_since(ex, since, "mark", "ticker"), "the next period heard")
        _wait(lambda: _nothing_due(ex, paper), "the period's reads made on the stream's path")
        path.seen.clear()
        order = ex.create_order(BTC, "market", "buy", 0.01)
        assert order["status"] == "closed"
        assert path.seen == ["create_order"]
        assert paper.positions() == {"BTCUSDT": pytest.approx(0.01)}
    finally:
        holder.close()


@pytest.mark.asyncio
async def test_an_async_guard_holding_its_own_streams_keeps_a_polling_bot_fresh(
    tmp_path: Path,
) -> None:
    paper = paper_account(wallet=10_000)
    paper.advance(6 * 3600)
    hooks = Hooks()
    path = OrderPath(hooks, lambda: False)
    ex = paper.guarded(_policy(), state_dir=tmp_path, pro=True, hooks=hooks)
    try:
        await ex.load_markets()
        me = asyncio.current_task()
        path.mine = lambda: asyncio.current_task() is me
        holder = await ex.hold_streams([BTC])
        since = paper.clock.time()
        paper.advance(1.0)
        give_up = time.monotonic() + HANG_S
        while time.monotonic() < give_up:
            if _heard_since(ex, since, "mark"):
                break
            await asyncio.sleep(0.001)
        await ex.create_order(BTC, "market", "buy", 0.01)
        for i in range(4):
            since = paper.clock.time()
            paper.advance(2.5)
            give_up = time.monotonic() + HANG_S
            while time.monotonic() < give_up:
                if _heard_since(ex, since, "mark", "ticker"):
                    break
                await asyncio.sleep(0.001)
            path.seen.clear()
            await ex.create_order(BTC, "market", "sell" if i % 2 else "buy", 0.01)
            assert path.seen == ["create_order"], i
        await holder.aclose()
        assert all(task.done() for task in holder.tasks) or not holder.tasks
    finally:
        await paper.aclose()


@pytest.mark.parametrize(
    ("symbols", "named"),
    [
        (BTC, "a list of symbols"),  # one string, not a list of its letters
        (["NOPE/USDT:USDT"], "NOPE/USDT:USDT"),
        (["BTCUSDT"], "BTCUSDT"),  # the venue's id, not ccxt's symbol
    ],
)
def test_streams_for_symbols_the_venue_does_not_list_are_refused_before_any_thread_starts(
    paper: PaperAccount, tmp_path: Path, symbols: Any, named: str
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    client = paper.client(pro=True)
    threads = threading.active_count()
    with pytest.raises(errors.InvalidInput, match=re.escape(named)):
        ex.hold_streams(symbols, client)
    # Nothing was started that would have retried a bad symbol quietly for ever.
    assert threading.active_count() == threads


@pytest.mark.asyncio
async def test_an_async_guard_refuses_streams_for_a_symbol_the_venue_does_not_list(
    tmp_path: Path,
) -> None:
    paper = paper_account(wallet=10_000)
    try:
        ex = paper.guarded(_policy(), state_dir=tmp_path, pro=True)
        try:
            with pytest.raises(errors.InvalidInput, match="NOPE/USDT:USDT"):
                await ex.hold_streams(["NOPE/USDT:USDT"])
        finally:
            await ex.close()
    finally:
        paper.close()
