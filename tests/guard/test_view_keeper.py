"""A REST-only bot's view kept fresh on a schedule (``keep_fresh``): the order path sends only
the order, the first one and orders spaced past the view's allowed age included.

Without the schedule, the first order after start reads the whole view on its path, and an
order placed once the view has reached the age its verdict allows re-reads what aged. Requests
are counted on the venue's side: real ccxt ``binanceusdm`` clients on the in-process venue.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import PaperAccount
from safeguard.testing._paper import DEFAULT_API_KEY, DEFAULT_SECRET, DEFAULT_START
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect, Request, Response

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
POLICY = Policy.build(
    risk={"require_stop": False}, degradation={"min_samples": 100_000}, retry={"max_attempts": 1}
)
AGE = POLICY.risk.max_market_data_age_s
ORDER_ONLY = Counter({"POST /fapi/v1/order": 1})


class CountingDialect(Dialect):
    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def handle(self, request: Request) -> Response:
        with self._lock:
            self.requests[f"{request.method} {request.path}"] += 1
        return super().handle(request)

    def since(self, before: Counter[str]) -> Counter[str]:
        with self._lock:
            return self.requests - before

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.requests)


@pytest.fixture
def paper() -> Iterator[tuple[PaperAccount, CountingDialect]]:
    clock = ManualClock(DEFAULT_START)
    venue = Venue(VenueConfig(seed=7, symbols=(VENUE_SYMBOL,)), clock=clock)
    venue.create_account(DEFAULT_API_KEY, DEFAULT_SECRET, wallet=10_000.0)
    dialect = CountingDialect(venue)
    account = PaperAccount(venue, clock, dialect, DEFAULT_API_KEY, DEFAULT_SECRET)
    yield account, dialect
    account.close()


def _low(paper: PaperAccount) -> float:
    return round(float(paper.client().fetch_ticker(SYMBOL)["last"]) * 0.98, 1)


def _kept(account: PaperAccount, tmp_path: Path, every_s: float | None = None) -> Any:
    """A guarded exchange, a resting buy's price, and the keeper of its view."""
    ex = account.guarded(POLICY, state_dir=tmp_path)
    low = _low(account)
    return ex, low, ex.keep_fresh([SYMBOL], every_s=every_s)


def _keeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "safeguard-view-keeper"]


def test_without_the_schedule_the_first_order_reads_its_view(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """The cost the schedule removes (the control for the tests below)."""
    account, venue = paper
    ex = account.guarded(POLICY, state_dir=tmp_path)
    ex.load_markets()
    low = _low(account)
    before = venue.snapshot()
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    assert sum(venue.since(before).values()) > 1


def test_the_first_order_on_a_kept_view_sends_only_the_order(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, venue = paper
    ex, low, keeper = _kept(account, tmp_path)
    try:
        assert keeper.passes == 1  # the first pass is made before keep_fresh returns
        before = venue.snapshot()
        ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
        assert venue.since(before) == ORDER_ONLY
    finally:
        keeper.close()
    assert not keeper.running


def test_orders_spaced_past_the_allowed_age_send_only_the_order(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """Orders 2.5 s apart with 5 s allowed: without the schedule every other order re-read
    the view on its path; with it the passes read it between orders."""
    account, venue = paper
    ex, low, keeper = _kept(account, tmp_path, AGE / 2)
    keeper.close()  # its passes are made by hand here, on the simulated clock
    read_by_passes = 0
    for _ in range(8):
        account.advance(AGE / 2)
        read_by_passes += keeper.tick()
        before = venue.snapshot()
        ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
        assert venue.since(before) == ORDER_ONLY
    assert read_by_passes > 0  # the reads were made, off the order path


def test_the_keeper_thread_reads_what_aged(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, venue = paper
    ex, low, keeper = _kept(account, tmp_path, 0.02)
    try:
        assert keeper.running
        account.advance(AGE * 0.99)  # the whole view is past its schedule, within its age
        seen = keeper.passes
        deadline = time.monotonic() + 30.0
        while keeper.passes < seen + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert keeper.passes >= seen + 2, "the keeper's thread made no pass"
        account.advance(AGE * 0.5)  # past the allowed age of anything the pass did not read
        before = venue.snapshot()
        ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
        assert venue.since(before) == ORDER_ONLY
    finally:
        keeper.close()
    assert not keeper.running
    assert _keeper_threads() == []


def test_a_failing_scheduled_read_leaves_the_verdict_failing_closed(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, _ = paper
    ex, low, keeper = _kept(account, tmp_path)
    keeper.close()
    account.set_faults(
        {"rules": [{"kind": "error", "endpoint": "GET /fapi/v3/positionRisk", "status": 503}]}
    )
    account.advance(AGE * 0.6)
    assert keeper.tick() > 0  # the failure is logged, not raised
    account.advance(AGE * 0.5)
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    assert denied.value.code == Code.MISSING_ACCOUNT
    assert account.orders(VENUE_SYMBOL) == []


@pytest.mark.parametrize(
    ("symbols", "every_s"),
    [
        (SYMBOL, None),  # a string, not a list
        ([], None),
        (["NOPE/USDT:USDT"], None),
        (["BTCUSDT"], None),  # the venue's id, not ccxt's symbol
        ([SYMBOL], float("nan")),
        ([SYMBOL], 0.0),
        ([SYMBOL], -1.0),
        ([SYMBOL], True),
        ([SYMBOL], "1"),
        ([SYMBOL], AGE),  # longer than half the allowed age: the view would age out between
    ],
)
def test_bad_arguments_are_refused_before_anything_starts(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path, symbols: Any, every_s: Any
) -> None:
    account, venue = paper
    ex = account.guarded(POLICY, state_dir=tmp_path)
    ex.load_markets()
    before = venue.snapshot()
    with pytest.raises(errors.InvalidInput) as refused:
        ex.keep_fresh(symbols, every_s=every_s)
    assert refused.value.field in {"symbols", "every_s"}
    assert venue.since(before) == Counter()
    assert _keeper_threads() == []


def test_the_async_face_keeps_its_view_with_a_task(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, venue = paper
    low = _low(account)

    async def scenario() -> None:
        ex = account.guarded(POLICY, state_dir=tmp_path, asyncio=True)
        try:
            keeper = await ex.keep_fresh([SYMBOL], every_s=0.01)
            assert keeper.running
            before = venue.snapshot()
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
            assert venue.since(before) == ORDER_ONLY
            account.advance(AGE * 0.99)
            seen = keeper.passes
            for _ in range(3000):
                if keeper.passes >= seen + 2:
                    break
                await asyncio.sleep(0.01)
            assert keeper.passes >= seen + 2, "the keeper's task made no pass"
            account.advance(AGE * 0.5)
            before = venue.snapshot()
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
            assert venue.since(before) == ORDER_ONLY
            await keeper.aclose()
            assert not keeper.running
        finally:
            await ex.close()

    asyncio.run(scenario())
