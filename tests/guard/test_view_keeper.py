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
from collections.abc import Callable, Iterator
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
    """Counts requests by endpoint; can hold back the answer of one endpoint's next request
    (made at once, the venue's state of that moment) until released: two threads
    interleaved on purpose."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()
        self.hold: str | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self.during: dict[str, Callable[[], None]] = {}
        """Per endpoint, run after the venue answered and before the answer goes back."""

    def handle(self, request: Request) -> Response:
        key = f"{request.method} {request.path}"
        with self._lock:
            self.requests[key] += 1
        answer = super().handle(request)
        hook = self.during.pop(key, None)
        if hook is not None:
            hook()
        if key == self.hold:
            self.hold = None
            self.held.set()
            self.release.wait(30)
        return answer

    def since(self, before: Counter[str]) -> Counter[str]:
        with self._lock:
            return self.requests - before

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self.requests)


def _paper(*symbols: str) -> tuple[PaperAccount, CountingDialect]:
    clock = ManualClock(DEFAULT_START)
    venue = Venue(VenueConfig(seed=7, symbols=symbols or (VENUE_SYMBOL,)), clock=clock)
    venue.create_account(DEFAULT_API_KEY, DEFAULT_SECRET, wallet=10_000.0)
    dialect = CountingDialect(venue)
    return PaperAccount(venue, clock, dialect, DEFAULT_API_KEY, DEFAULT_SECRET), dialect


@pytest.fixture
def paper() -> Iterator[tuple[PaperAccount, CountingDialect]]:
    account, dialect = _paper()
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


@pytest.mark.parametrize(
    ("endpoint", "limits", "order", "code"),
    [
        ("GET /fapi/v3/positionRisk", {"max_notional_per_position": 1.5}, "market", "position"),
        ("GET /fapi/v1/openOrders", {"max_open_orders": 1}, "limit", Code.OPEN_ORDER_COUNT),
    ],
)
def test_a_pass_read_answered_before_our_order_does_not_roll_the_view_back(
    tmp_path: Path, endpoint: str, limits: dict[str, Any], order: str, code: Any
) -> None:
    """The keeper's read is answered (the account before the order) and taken in after the
    order's answer was applied to the view. Taken, it rolled the view back to before the
    order, stamped fresh: a second order passed a limit the first one had filled."""
    account, venue = _paper()
    try:
        price = float(account.client().fetch_ticker(SYMBOL)["last"])
        if "max_notional_per_position" in limits:
            limits = {"max_notional_per_position": 1.5 * 0.01 * price}  # one order fits
            code = Code.NOTIONAL_PER_POSITION
        policy = Policy.build(
            risk={"require_stop": False, **limits},
            degradation={"min_samples": 100_000},
            retry={"max_attempts": 1},
        )
        ex = account.guarded(policy, state_dir=tmp_path)
        low = round(price * 0.98, 1)
        keeper = ex.keep_fresh([SYMBOL], every_s=0.01)
        try:
            venue.hold = endpoint
            account.advance(AGE * 0.6)  # the account is due on the schedule's pass
            assert venue.held.wait(30), "the keeper never read the account"
            ex.create_order(SYMBOL, order, "buy", 0.01, low if order == "limit" else None)
            venue.release.set()  # the pass takes in the answer from before the order
            deadline = time.monotonic() + 30.0
            seen = keeper.passes
            while keeper.passes < seen + 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            with pytest.raises(errors.OrderDenied) as denied:
                ex.create_order(SYMBOL, order, "buy", 0.01, low if order == "limit" else None)
            assert denied.value.code == code
        finally:
            venue.release.set()
            keeper.close()
    finally:
        account.close()


def test_the_first_pass_reads_the_symbols_the_account_holds(tmp_path: Path) -> None:
    """A restart holding a position in a symbol not named: the positions the first pass
    reads name it, and the same pass reads its pieces, so closing it sends only the order."""
    account, venue = _paper(VENUE_SYMBOL, "ETHUSDT")
    try:
        account.client().create_order("ETH/USDT:USDT", "market", "buy", 0.1)
        ex = account.guarded(POLICY, state_dir=tmp_path)
        keeper = ex.keep_fresh([SYMBOL])
        keeper.close()
        before = venue.snapshot()
        ex.create_order("ETH/USDT:USDT", "market", "sell", 0.1, None, {"reduceOnly": True})
        assert venue.since(before) == ORDER_ONLY
    finally:
        account.close()


def test_a_pass_never_waits_on_the_rate_budget(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """A 429 with a long Retry-After in the middle of a pass: the pass does not sit out the
    wait (which held a closing keeper for its whole length, then sent the rest); the reads
    it could not make are made by a later pass, and nothing is sent meanwhile."""
    account, venue = paper
    _, _, keeper = _kept(account, tmp_path)
    keeper.close()
    account.set_faults(
        {
            "rules": [
                {
                    "kind": "error",
                    "status": 429,
                    "endpoint": "GET /fapi/v1/ticker/24hr",
                    "count": 1,
                    "retry_after_s": 15,
                }
            ]
        }
    )
    account.advance(AGE * 0.6)
    at = account.clock.time()
    before = venue.snapshot()
    keeper.tick()
    assert account.clock.time() == at  # no wait was slept, not even in simulated time
    sent = venue.since(before)
    assert sent["GET /fapi/v1/ticker/24hr"] == 1  # the 429, not retried
    assert "GET /fapi/v1/depth" not in sent  # held back by the 429 for the rest of the pass
    account.advance(16.0)
    keeper.tick()  # the budget lets them go again: a later pass makes them
    assert venue.since(before)["GET /fapi/v1/depth"] == 1


def test_an_async_keeper_whose_loop_ended_closes_quietly(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, _ = paper
    ex = account.guarded(POLICY, state_dir=tmp_path, asyncio=True)

    async def start() -> Any:
        return await ex.keep_fresh([SYMBOL], every_s=0.01)

    keeper = asyncio.run(start())  # asyncio.run cancels the keeper's task as it ends
    assert not keeper.running

    async def close() -> None:
        await keeper.aclose()
        await keeper.aclose()
        await ex.close()

    asyncio.run(close())


def test_the_schedule_weight_is_what_the_budget_charges_for_its_reads() -> None:
    from safeguard.guard._core import Send
    from safeguard.guard._keeper import schedule_weight

    sends = [
        Send("load_markets", (True,)),  # rare: left out
        Send("fetch_ticker", (SYMBOL,)),  # 1
        Send("fetch_order_book", (SYMBOL, 100)),  # 5
        Send("fetch_balance", ()),  # 5
        Send("fetch_positions", ()),  # 6
    ]
    # 17 a pass, a pass every half of the allowed 5 s: 24 passes a minute.
    assert schedule_weight(sends, 5.0) == pytest.approx(17 * 24)


def _in_thread(call: Callable[[], Any]) -> Any:
    """``call`` on another bot thread, waited for."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    thread.join(30)
    assert out, "the other thread's call did not return"
    return out[0]


def _buy_with_polls_crossing(
    account: PaperAccount, venue: CountingDialect, ex: Any, endpoint: str, poll: Callable[[], Any]
) -> None:
    """A second buy of 0.002 (after a first), with ``poll`` made on another thread inside
    each of the order path's reads of ``endpoint``: the buy goes."""
    polled: list[Any] = []

    def crossing() -> None:
        polled.append(_in_thread(poll))
        venue.during[endpoint] = crossing

    venue.during[endpoint] = crossing
    ex.create_order(SYMBOL, "market", "buy", 0.002)
    venue.during.clear()
    assert polled  # the polls did land inside the reads
    assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.004)}


def _capped(**risk: Any) -> Policy:
    return Policy.build(
        risk={"require_stop": False, **risk},
        degradation={"min_samples": 100_000},
        retry={"max_attempts": 1},
    )


def test_polling_an_order_outdates_no_account_read(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """Another bot thread polls its resting order (``fetch_order``) while the order path
    re-reads the account: a read of an order changes nothing, and took the account read
    with it (every later order denied MISSING_ACCOUNT while the poller ran)."""
    account, venue = paper
    ex = account.guarded(POLICY, state_dir=tmp_path)
    low = _low(account)
    resting = ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    account.advance(AGE * 1.01)  # the account is due on the order path
    polled: list[Any] = []

    def poll() -> None:  # inside every account read the order path makes (its retry too)
        polled.append(_in_thread(lambda: ex.fetch_order(resting["id"], SYMBOL)))
        venue.during["GET /fapi/v3/positionRisk"] = poll

    venue.during["GET /fapi/v3/positionRisk"] = poll
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    venue.during.clear()
    assert polled  # the polls did land inside the reads
    assert len(account.orders(VENUE_SYMBOL)) == 2


@pytest.mark.parametrize("newer", ["complete", "filtered"])
def test_an_older_read_answered_after_a_newer_one_is_not_taken(tmp_path: Path, newer: str) -> None:
    """The keeper's positions read is answered flat; our resting buy then fills at the venue
    and another thread's newer read shows it (all positions, or ``fetch_positions([symbol])``);
    the keeper's older answer, taken last, rolled the view back to flat, stamped fresh, and a
    second buy passed the position cap."""
    account, venue = _paper()
    try:
        price = float(account.client().fetch_ticker(SYMBOL)["last"])
        ex = account.guarded(
            _capped(max_notional_per_position=1.5 * 0.01 * price), state_dir=tmp_path
        )
        keeper = ex.keep_fresh([SYMBOL])
        keeper.close()
        ex.create_order(SYMBOL, "limit", "buy", 0.01, round(price * 0.995, 1))

        def fill_and_read_again() -> None:
            account.venue.spike(VENUE_SYMBOL, -3.0, 30.0)
            for _ in range(200):
                account.advance(0.5)
                if account.positions():
                    break
            symbols = None if newer == "complete" else [SYMBOL]
            _in_thread(lambda: (ex.fetch_positions(symbols), ex.fetch_open_orders(SYMBOL)))

        account.advance(AGE * 0.55)
        venue.during["GET /fapi/v3/positionRisk"] = fill_and_read_again
        keeper.tick()
        assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.01)}
        with pytest.raises(errors.OrderDenied) as denied:
            ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert denied.value.code == Code.NOTIONAL_PER_POSITION
    finally:
        account.close()


def test_a_settings_read_from_before_our_set_leverage_is_not_taken(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    account, venue = paper
    ex = account.guarded(_capped(max_leverage=20.0), state_dir=tmp_path)
    ex.set_leverage(20, SYMBOL)
    keeper = ex.keep_fresh([SYMBOL])
    keeper.close()
    account.advance(AGE * 0.55)
    venue.during["GET /fapi/v1/symbolConfig"] = lambda: _in_thread(
        lambda: ex.set_leverage(50, SYMBOL)
    )
    keeper.tick()
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.002)
    assert denied.value.code == Code.LEVERAGE_ABOVE_POLICY


def test_a_passs_follow_up_reads_never_wait_either(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """The gate's follow-up (a held symbol's tier ladder, asked after another read) was sent
    as an ordinary read: it retried with backoff sleeps inside the pass."""
    account, _ = paper
    ex = account.guarded(
        Policy.build(risk={"require_stop": False}, degradation={"min_samples": 100_000}),
        state_dir=tmp_path,
    )
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.002)  # a held position
    keeper = ex.keep_fresh([SYMBOL])
    keeper.close()
    account.advance(ex.runtime.view.cache._tiers_due * 1.01)  # its tier ladder is due
    account.set_faults(
        {"rules": [{"kind": "error", "status": 503, "count": 3,
                    "endpoint": "GET /fapi/v1/leverageBracket"}]}
    )  # fmt: skip
    at = account.clock.time()
    keeper.tick()
    assert account.clock.time() == at  # no backoff slept


@pytest.mark.parametrize("poll", ["positions of one symbol", "open orders of another symbol"])
def test_a_partial_read_on_another_thread_outdates_no_full_read(tmp_path: Path, poll: str) -> None:
    """Another thread's ``fetch_positions([BTC])`` or ``fetch_open_orders(ETH)`` lands while the
    order path re-reads the account: neither makes the read it crossed any older (one made no
    piece current, the other is another symbol's list), and both starved the order path."""
    account, venue = _paper(VENUE_SYMBOL, "ETHUSDT")
    try:
        ex = account.guarded(POLICY, state_dir=tmp_path)
        ex.fetch_open_orders("ETH/USDT:USDT")
        ex.create_order(SYMBOL, "market", "buy", 0.002)
        account.advance(AGE * 1.01)
        if poll.startswith("positions"):
            endpoint = "GET /fapi/v3/positionRisk"

            def other() -> Any:
                return ex.fetch_positions([SYMBOL])

        else:
            ex.fetch_balance()
            ex.fetch_positions()  # only the open orders are due on the order path now
            endpoint = "GET /fapi/v1/openOrders"

            def other() -> Any:
                return ex.fetch_open_orders("ETH/USDT:USDT")

        _buy_with_polls_crossing(account, venue, ex, endpoint, other)
    finally:
        account.close()


@pytest.mark.parametrize(
    ("endpoint", "poll"),
    [
        ("GET /fapi/v1/openOrders", "stops of the same symbol"),
        ("GET /fapi/v1/openOrders", "a page of open orders"),
        ("GET /fapi/v1/symbolConfig", "one symbol's leverage"),
    ],
)
def test_a_read_the_view_does_not_take_whole_outdates_nothing(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path, endpoint: str, poll: str
) -> None:
    """Another thread polls something the view keeps apart or does not take (its stops, a
    page of open orders, one symbol's leverage) while the order path re-reads: each made the
    full read it crossed "outdated", twice, and the order was denied MISSING_ACCOUNT."""
    account, venue = paper
    ex = account.guarded(POLICY, state_dir=tmp_path)
    ex.create_order(SYMBOL, "market", "buy", 0.002)
    account.advance(AGE * 1.01)
    calls: dict[str, Callable[[], Any]] = {
        "stops of the same symbol": lambda: ex.fetch_open_orders(SYMBOL, params={"trigger": True}),
        "a page of open orders": lambda: ex.fetch_open_orders(SYMBOL, None, 50),
        "one symbol's leverage": lambda: ex.fetch_leverages([SYMBOL]),
    }
    _buy_with_polls_crossing(account, venue, ex, endpoint, calls[poll])


def test_a_fill_a_keeper_read_already_holds_is_not_applied_again(
    paper: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """Async face: the keeper task's positions read is sent after an order reached the venue
    and taken while the order's answer is being journaled (in a thread: other tasks run);
    then the answer's fill was applied on top of the read that already held it, and the
    view was a fill off, stamped fresh (at 50 ms of latency: 89 orders of 150). Now such an
    answer has the account read again instead."""
    account, _ = paper
    account.set_faults({"rules": [{"kind": "latency", "ms": 50}]})

    async def scenario() -> int:
        ex = account.guarded(POLICY, state_dir=tmp_path, asyncio=True)
        off = 0
        try:
            keeper = await ex.keep_fresh([SYMBOL], every_s=0.01)
            view = ex.runtime.view.cache
            for i in range(60):
                side = "buy" if (i // 3) % 2 == 0 else "sell"
                mark = float(account.client().fetch_ticker(SYMBOL)["last"])
                price = round(mark * (1.02 if side == "buy" else 0.98), 1)
                await ex.create_order(SYMBOL, "limit", side, 0.002, price)
                await asyncio.sleep(0.003)
                held = account.positions().get(VENUE_SYMBOL, 0.0)
                usable = view.positions is not None and view.positions.fetched > -1e18
                if usable and SYMBOL not in view.unsettled:
                    shown = sum(
                        p["contracts"] if p["side"] == "long" else -p["contracts"]
                        for p in view.positions.value
                    )
                    off += abs(shown - held) > 1e-9
            await keeper.aclose()
        finally:
            await ex.close()
        return off

    assert asyncio.run(scenario()) == 0
