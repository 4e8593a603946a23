"""The guard's view fed by the user's own ``watch_*`` calls, and each stream fault seen by the
guard as the staleness or gap it is.

Unmodified ``ccxt.pro.binanceusdm`` (in process: only its sockets are in-memory pairs with the
venue) behind the guard, on the mock venue's simulated clock. The strategy keeps its watches
running, as real bots do; each wait below is for an event (the view hearing a message at the
venue's current time, a watch raising), never for a span of wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.risk._outcome import Decision
from safeguard.testing import PaperAccount, paper_account

pytestmark = pytest.mark.asyncio

BTC = "BTC/USDT:USDT"
MARKET_WATCHES = (("watch_mark_price", BTC), ("watch_order_book", BTC), ("watch_ticker", BTC))
user_data_breaks = pytest.mark.parametrize(
    "fault",
    [{"kind": "stream_disconnect"}, {"kind": "listen_key_expire"}],
    ids=["disconnect", "listen-key-expired"],
)
"""The two ways the venue breaks the user-data stream."""
TURNS = 2_000
"""Only a hang reaches this many loop turns: every wait ends on an event."""


class Watching:
    """The strategy's watch loops: each watch awaited again as soon as it answers, its
    errors kept (a real bot logs them and watches again)."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.errors: list[tuple[str, Exception]] = []
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, method: str, *args: Any) -> None:
        async def loop() -> None:
            while True:
                try:
                    await getattr(self.ex, method)(*args)
                except ccxt.BaseError as exc:
                    self.errors.append((method, exc))
                    await asyncio.sleep(0)

        self.tasks.append(asyncio.ensure_future(loop()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until(condition: Any, what: str) -> None:
    for _ in range(TURNS):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"never happened: {what}")


@pytest_asyncio.fixture
async def paper() -> AsyncIterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    account.advance(6 * 3600)  # a day's range to measure volatility on
    yield account
    await account.aclose()


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False}, degradation={"min_samples": 100_000})


class OrderPathReads:
    """The venue requests the guard made from the test's own task (the order path), not
    from the watch loops' tasks (the stream's path)."""

    def __init__(self, hooks: Hooks) -> None:
        self.seen: list[str] = []
        hooks.subscribe(EventKind.REQUEST, self._request)
        self.task: asyncio.Task[Any] | None = None

    def _request(self, event: Any) -> None:
        assert isinstance(event, RequestEvent)
        if asyncio.current_task() is self.task:
            self.seen.append(event.method)


async def _guarded(
    paper: PaperAccount, tmp_path: Path, hooks: Hooks | None = None
) -> tuple[Any, OrderPathReads, Watching]:
    hooks = hooks if hooks is not None else Hooks()
    reads = OrderPathReads(hooks)
    reads.task = asyncio.current_task()
    ex = paper.guarded(_policy(), state_dir=tmp_path, pro=True, hooks=hooks)
    await ex.load_markets()
    return ex, reads, Watching(ex)


def _heard_now(ex: Any, paper: PaperAccount, *feeds: str) -> bool:
    now = paper.clock.time()
    live = ex.runtime.view.cache.feeds
    return all(
        (feed, BTC) in live
        and live[(feed, BTC)].last_message == now
        and not live[(feed, BTC)].broken
        for feed in feeds
    )


async def _step(ex: Any, paper: PaperAccount, seconds: float, *feeds: str) -> None:
    paper.advance(seconds)
    await until(lambda: _heard_now(ex, paper, *feeds), f"{feeds} heard after the step")


async def _watch_market_and_orders(ex: Any, paper: PaperAccount, watching: Watching) -> None:
    """The strategy's usual watches (mark, book, ticker, its orders), heard once."""
    for method, symbol in MARKET_WATCHES:
        watching.start(method, symbol)
    watching.start("watch_orders", BTC)
    await _step(ex, paper, 1.0, "mark", "book", "ticker")


def _denials(verdict: Any, code: str) -> list[str]:
    return [f.message for f in verdict.denials if f.code == code]


async def test_watched_streams_keep_the_view_fresh_so_spaced_orders_read_nothing(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        await _watch_market_and_orders(ex, paper, watching)
        await ex.create_order(BTC, "market", "buy", 0.01)  # the first: rules, tiers, account
        bid = ex.runtime.view.cache.books[BTC].value["bids"][5][0]
        for i in range(6):
            # 2.5 s apart: past half of risk.max_market_data_age_s, where a REST-only view
            # reads mark, ticker, book and the account again before the verdict.
            await _step(ex, paper, 2.5, "mark", "ticker")
            reads.seen.clear()
            if i % 2:
                await ex.create_order(BTC, "limit", "buy", 0.01, bid, {"timeInForce": "GTX"})
            else:
                await ex.create_order(BTC, "market", "sell" if i % 4 else "buy", 0.01)
            assert reads.seen == ["create_order"], i
        assert watching.errors == []
    finally:
        await watching.stop()


async def test_a_stalled_stream_denies_new_exposure_instead_of_reading_rest(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        await _watch_market_and_orders(ex, paper, watching)
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        paper.set_faults({"rules": [{"kind": "stream_stall", "end_s": 30}]})
        heard = ex.runtime.view.cache.feeds[("mark", BTC)].last_message
        paper.advance(6.0)  # past risk.max_market_data_age_s (5 s) with nothing sent
        await asyncio.sleep(0.01)
        assert ex.runtime.view.cache.feeds[("mark", BTC)].last_message == heard
        reads.seen.clear()
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert verdict.decision is Decision.DENY
        assert any("has sent nothing for 6.0s" in m for m in _denials(verdict, "STALE_MARKET_DATA"))
        assert reads.seen == []  # failed closed: no REST read papered over the stall
        with pytest.raises(Exception, match="STALE_MARKET_DATA"):
            await ex.create_order(BTC, "market", "buy", 0.01)
        # A reduce-only order adds no exposure: the stall does not hold it.
        reduce = await ex.preview(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        assert not _denials(reduce, Code.STALE_MARKET_DATA)
        # The stall ends: the streams deliver again and the view is fresh.
        await _step(ex, paper, 30.0, "mark", "book", "ticker")
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
    finally:
        await watching.stop()


async def test_prices_frozen_under_a_live_heartbeat_deny_new_exposure(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, _, watching = await _guarded(paper, tmp_path)
    try:
        watching.start("watch_mark_price", BTC)
        watching.start("watch_ticker", BTC)
        await _step(ex, paper, 1.0, "mark", "ticker")
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        paper.set_faults({"rules": [{"kind": "stream_freeze"}]})
        frozen = ex.runtime.view.cache.funding[BTC].value["markPrice"]
        denied = None
        for second in range(3, 61, 3):
            # The heartbeat goes on: the mark stream delivers at the venue's new time.
            await _step(ex, paper, 3.0, "mark")
            assert ex.runtime.view.cache.funding[BTC].value["markPrice"] == frozen
            verdict = await ex.preview(BTC, "market", "buy", 0.01)
            if verdict.decision is Decision.DENY:
                denied = second
                break
        assert denied is not None
        assert any("has not moved" in m for m in _denials(verdict, "STALE_MARKET_DATA"))
        assert paper.venue.mark_price("BTCUSDT") != frozen  # the venue's mark moved on
    finally:
        await watching.stop()


async def test_a_depth_gap_breaks_the_book_until_the_stream_resyncs(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        for method, symbol in MARKET_WATCHES:
            watching.start(method, symbol)
        await _step(ex, paper, 1.0, "mark", "book", "ticker")
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        paper.set_faults({"rules": [{"kind": "depth_gap", "symbol": "BTCUSDT"}]})
        cache = ex.runtime.view.cache

        def broken() -> bool:
            feed = cache.feeds.get(("book", BTC))
            return feed is not None and feed.broken is not None

        for _ in range(2):  # the first update is lost; the second names it as its pu
            paper.advance(5.0)
            paper.dialect.tick()
        await until(
            lambda: any(isinstance(e, ccxt.ChecksumError) for _, e in watching.errors),
            "ccxt detected the gap",
        )
        # Between the gap and the new snapshot the view holds no book, and says why.
        if broken():
            assert BTC not in cache.books
            reads.seen.clear()
            verdict = await ex.preview(BTC, "market", "buy", 0.01)
            assert verdict.decision is Decision.DENY
            assert any("ChecksumError" in m for m in _denials(verdict, "STALE_MARKET_DATA"))
            assert "fetch_order_book" not in reads.seen
        # The loop watched again: ccxt took a new snapshot, and the book is exact again.
        await _step(ex, paper, 2.5, "book", "mark")
        bids = [[float(p), float(q)] for p, q in paper.venue.depth("BTCUSDT", 5)["bids"]]
        assert cache.books[BTC].value["bids"][:5] == bids
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
    finally:
        await watching.stop()


async def test_delayed_stream_events_are_stale_by_the_venues_stamp(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, _, watching = await _guarded(paper, tmp_path)
    try:
        watching.start("watch_mark_price", BTC)
        await _step(ex, paper, 1.0, "mark")
        paper.set_faults({"rules": [{"kind": "stream_delay", "ms": 8000}]})
        cache = ex.runtime.view.cache
        for _ in range(4):
            paper.advance(3.0)  # messages keep arriving, 8 s late
            paper.dialect.tick()
        await until(
            lambda: cache.feeds[("mark", BTC)].last_message == paper.clock.time(),
            "a delayed mark message delivered",
        )
        funding = cache.funding[BTC]
        assert paper.clock.time() - funding.venue_time >= 8.0
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert any(m.startswith("mark is") for m in _denials(verdict, "STALE_MARKET_DATA"))
    finally:
        await watching.stop()


@user_data_breaks
async def test_a_broken_user_data_stream_denies_until_rest_reconciles_the_account(
    paper: PaperAccount, tmp_path: Path, fault: dict[str, Any]
) -> None:
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        for method, symbol in MARKET_WATCHES:
            watching.start(method, symbol)
        watching.start("watch_orders", BTC)
        await _step(ex, paper, 2.5, "mark", "ticker")
        await ex.create_order(BTC, "market", "buy", 0.01)
        cache = ex.runtime.view.cache
        assert cache.account_streamed(paper.clock.time())
        # The stream comes back at once (in memory); the account read failing keeps the
        # view unreconciled meanwhile.
        unread = {"kind": "error", "endpoint": "GET /fapi/v3/account", "status": 400, "code": -1102}
        paper.set_faults({"rules": [fault, unread]})
        paper.advance(0.5)
        paper.dialect.tick()
        await until(lambda: cache.account_stream_gap() is not None, "the user-data stream broken")
        assert any(m == "watch_orders" for m, _ in watching.errors)
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert verdict.decision is Decision.DENY
        assert any("user-data stream broke" in m for m in _denials(verdict, "MISSING_ACCOUNT"))
        # The loop watched again (after an expired listen key, on a new one: ccxt would keep
        # the dead key for 20 minutes); the next account event makes it live, and the account
        # is read again over REST on the stream's path before a verdict trusts it.
        paper.clear_faults()
        await _step(ex, paper, 2.5, "mark", "ticker")
        reads.seen.clear()
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        await until(lambda: cache.account_stream_gap() is None, "the user-data stream live again")
        await until(cache.account_consistent, "the account reconciled over REST")
        await _step(ex, paper, 2.5, "mark", "ticker")
        reads.seen.clear()
        await ex.create_order(BTC, "market", "buy", 0.01)
        assert reads.seen == ["create_order"]
    finally:
        await watching.stop()


async def test_a_resting_order_filled_later_is_reconciled_on_the_streams_path(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        await _watch_market_and_orders(ex, paper, watching)
        [bid, level] = [float(x) for x in paper.venue.depth("BTCUSDT", 5)["bids"][0]]
        resting = await ex.create_order(BTC, "limit", "buy", 0.01, bid)
        assert resting["status"] == "open"
        cache = ex.runtime.view.cache
        assert cache._signed_leg(BTC) == (0.0, 0.0)
        # Someone sells into it: the fill reaches the guard only through watch_orders.
        paper.venue.create_account("taker-key", "taker-secret", wallet=100_000.0)
        sweep = round(level + 0.5, 3)  # the whole best bid, ours in its queue
        paper.venue.place_order("taker-key", symbol="BTCUSDT", side="SELL", type="MARKET",
                                quantity=sweep)  # fmt: skip
        await until(lambda: (cache._signed_leg(BTC) or (0.0,))[0] > 0, "the fill in the view")
        await until(cache.account_consistent, "the account read on the stream's path")
        assert paper.positions() == {"BTCUSDT": pytest.approx(0.01)}
        assert cache._signed_leg(BTC) == (pytest.approx(0.01), pytest.approx(bid))
        await _step(ex, paper, 2.5, "mark", "ticker")
        reads.seen.clear()
        await ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
        assert reads.seen == ["create_order"]
    finally:
        await watching.stop()


async def test_a_stream_unwatched_hands_its_piece_back_to_rest(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex, _, watching = await _guarded(paper, tmp_path)
    try:
        watching.start("watch_mark_price", BTC)
        watching.start("watch_order_book", BTC)
        await _step(ex, paper, 1.0, "mark", "book")
        cache = ex.runtime.view.cache
        await ex.preview(BTC, "market", "buy", 0.01)
        streamed = cache.books[BTC]
        watching.tasks[1].cancel()  # the bot stops its book loop, and unwatches
        await ex.un_watch_order_book(BTC)
        assert ("book", BTC) not in cache.feeds
        await _step(ex, paper, 2.5, "mark")
        # REST keeps the book again, on its schedule (here on the stream's path).
        await until(lambda: cache.books[BTC].fetched == paper.clock.time(), "the book read")
        assert cache.books[BTC] is not streamed
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        assert ("book", BTC) not in cache.feeds
    finally:
        await watching.stop()


class VenueReads:
    """Every venue request the guard made, by method, from any task."""

    def __init__(self, hooks: Hooks) -> None:
        self.seen: list[str] = []
        hooks.subscribe(EventKind.REQUEST, lambda event: self.seen.append(event.method))

    def count(self, *methods: str) -> int:
        return sum(1 for method in self.seen if method in methods)


async def _account_streamed(ex: Any, paper: PaperAccount, watching: Watching) -> None:
    """The market streams and the user-data stream watched, the account streamed."""
    for method, symbol in MARKET_WATCHES:
        watching.start(method, symbol)
    watching.start("watch_orders", BTC)
    await _step(ex, paper, 2.5, "mark", "ticker")
    cache = ex.runtime.view.cache
    await until(lambda: cache.account_streamed(paper.clock.time()), "the account streamed")


@user_data_breaks
async def test_a_flat_quiet_account_is_live_again_once_its_stream_reconnects_and_rest_reconciles(
    paper: PaperAccount, tmp_path: Path, fault: dict[str, Any]
) -> None:
    """A flat account sends no event while nothing happens: the stream's return, not its
    next event, ends the break, after one REST reconcile made off the order path."""
    hooks = Hooks()
    venue_reads = VenueReads(hooks)
    ex, order_path, watching = await _guarded(paper, tmp_path, hooks)
    cache = ex.runtime.view.cache
    try:
        await _account_streamed(ex, paper, watching)
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        balances, positions = (
            venue_reads.count("fetch_balance"),
            venue_reads.count("fetch_positions"),
        )
        paper.set_faults({"rules": [fault]})
        paper.advance(0.5)
        paper.dialect.tick()
        # (It may be back and reconciled before this task runs again: in memory, at once.)
        await until(lambda: _account_breaks(watching) > 0, "the user-data watch raised")
        paper.clear_faults()
        # No order, no account event: only the reconnect can end the break.
        await until(lambda: cache.account_stream_gap() is None, "the stream live again")
        assert venue_reads.count("fetch_balance") == balances + 1
        assert venue_reads.count("fetch_positions") == positions + 1
        assert paper.positions() == {}
        await _step(ex, paper, 2.5, "mark", "ticker")
        order_path.seen.clear()
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert verdict.decision is Decision.ALLOW, verdict.denials
        await ex.create_order(BTC, "market", "buy", 0.01)
        assert order_path.seen == ["create_order"]
    finally:
        await watching.stop()


def _account_breaks(watching: Watching) -> int:
    return sum(1 for method, _ in watching.errors if method == "watch_orders")


def _reconnected(cache: Any) -> bool:
    account = cache.feeds[("account", None)]
    return account.broken is None or getattr(account, "reconnected_at", None) is not None


async def test_a_user_data_stream_that_keeps_breaking_is_reconciled_a_bounded_number_of_times(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """Each break and reconnect within one schedule period costs at most one reconcile, and
    new exposure stays denied until a reconcile follows the stream's last return."""
    hooks = Hooks()
    venue_reads = VenueReads(hooks)
    ex, _, watching = await _guarded(paper, tmp_path, hooks)
    cache = ex.runtime.view.cache
    try:
        await _account_streamed(ex, paper, watching)
        venue_reads.seen.clear()
        breaks = 6
        for _ in range(breaks):
            broken_before = _account_breaks(watching)
            paper.set_faults({"rules": [{"kind": "stream_disconnect"}]})
            paper.advance(0.1)
            paper.dialect.tick()
            await until(
                lambda: _account_breaks(watching) > broken_before,  # noqa: B023 (waited on here)
                "the user-data watch raised",
            )
            paper.clear_faults()
            await until(lambda: _reconnected(cache), "the user-data stream connected again")
        # 0.6 s of the venue's time: the schedule allows one account reconcile in 2.5 s.
        assert venue_reads.count("fetch_balance") <= 1
        assert venue_reads.count("fetch_positions") <= 1
        # Once it stays up, the next period's message brings the reconcile, and the view is
        # live again.
        await _step(ex, paper, 2.5, "mark", "ticker")
        await until(lambda: cache.account_stream_gap() is None, "the stream live again")
        assert venue_reads.count("fetch_balance") <= 2
        assert venue_reads.count("fetch_positions") <= 2
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert verdict.decision is Decision.ALLOW, verdict.denials
    finally:
        await watching.stop()


async def test_a_leverage_another_client_sets_reaches_the_verdict_through_the_user_data_stream(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # Binance tells the user-data stream (ACCOUNT_CONFIG_UPDATE); ccxt.pro drops that event,
    # and with a live stream the view read the setting only every 30 s: an order went out
    # judged on the old leverage, with a liquidation price that no longer held.
    ex, reads, watching = await _guarded(paper, tmp_path)
    try:
        await _watch_market_and_orders(ex, paper, watching)
        await ex.set_leverage(5, BTC)
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        settings = ex.runtime.view.cache.settings

        other = paper.client()  # the web page, or another bot on the same key
        other.load_markets()
        other.set_leverage(50, BTC)
        await until(lambda: settings[BTC].value["leverage"] == 50.0, "the new leverage heard")
        reads.seen.clear()
        verdict = await ex.preview(BTC, "market", "buy", 0.01)
        assert verdict.decision is Decision.DENY
        assert _denials(verdict, Code.LEVERAGE_ABOVE_POLICY)
        assert reads.seen == []  # heard on the stream, not read on the order path
        other.set_leverage(10, BTC)
        await until(lambda: settings[BTC].value["leverage"] == 10.0, "the leverage set back")
        assert (await ex.preview(BTC, "market", "buy", 0.01)).decision is Decision.ALLOW
        assert watching.errors == []
    finally:
        await watching.stop()
