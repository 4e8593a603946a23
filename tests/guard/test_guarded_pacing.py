"""Pacing and retries end to end: real ccxt against the mock venue, on simulated time.

Each test builds a guarded ``binanceusdm`` over the venue in process. The guard's sleeps are
replaced by functions that advance the venue's ``ManualClock`` (and record what they were asked),
so "how long did the call take" is exact, and the kill switch can be engaged in the middle of
a sleep, as a thread would engage it while the call is parked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.guard._pacing import LEARNED_LIMIT_HOLD_S
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account

SYMBOL = "BTC/USDT:USDT"


@dataclass
class Rig:
    paper: PaperAccount
    ex: Any
    switch: KillSwitch
    sleeps: list[float] = field(default_factory=list)
    requests: list[RequestEvent] = field(default_factory=list)
    during_sleep: Callable[[float], bool] | None = None
    """Runs instead of a plain advance: returns whether the sleep ended early."""

    @property
    def now(self) -> float:
        return self.paper.clock.time()

    def throttled(self) -> list[RequestEvent]:
        return [e for e in self.requests if e.status in (418, 429)]


def _policy(tmp: Path, **sections: Any) -> Policy:
    base: dict[str, Any] = {
        "risk": {"require_stop": False},
        "kill_switch": {"state_dir": str(tmp / "state"), "watch_state_file": False},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Policy.build(**base)


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=100_000.0)
    try:
        yield account
    finally:
        account.close()


def _rig(
    paper: PaperAccount,
    tmp: Path,
    *,
    asyncio_client: bool = False,
    journal: str = "orders.jsonl",
    raw: Any = None,
    **policy: Any,
) -> Rig:
    settings = _policy(tmp, **policy)
    switch = KillSwitch(settings.kill_switch, clock=paper.clock, watch=False)
    hooks = Hooks()
    raw = raw if raw is not None else paper.client(asyncio=asyncio_client)
    rig = Rig(paper, None, switch)
    hooks.subscribe(EventKind.REQUEST, rig.requests.append)

    def sleep(seconds: float) -> bool:
        rig.sleeps.append(seconds)
        if rig.during_sleep is not None:
            return rig.during_sleep(seconds)
        paper.advance(seconds)
        return False

    async def sleep_async(seconds: float) -> bool:
        return sleep(seconds)

    rig.ex = guard(
        raw,
        settings,
        kill_switch=switch,
        clock=paper.clock,
        hooks=hooks,
        journal_path=tmp / journal,
        durable_journal=False,
        sleep=sleep,
        sleep_async=sleep_async,
        ladder=False,
    )
    return rig


# --- one wait per answer, never past the budget ---------------------------------------------


def _ticker_answers_429(paper: PaperAccount, **rule: Any) -> None:
    error = {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 429}
    paper.set_faults({"rules": [{**error, **rule}]})


def test_a_retry_after_is_waited_once(paper: PaperAccount, tmp_path: Path) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    _ticker_answers_429(paper, retry_after_s=2, count=1)
    started = rig.now
    ticker = rig.ex.fetch_ticker(SYMBOL)
    assert ticker["last"] > 0
    # The venue asked for 2 s: the retry waits exactly that (the jitter, at most 0.2 s on the
    # first attempt, is below the floor), once; the pacer does not wait it a second time.
    assert rig.sleeps == [2.0]
    assert rig.now - started == pytest.approx(2.0)


def test_a_call_never_waits_past_its_budget(paper: PaperAccount, tmp_path: Path) -> None:
    rig = _rig(paper, tmp_path, retry={"total_budget_s": 30.0})
    rig.ex.load_markets()
    _ticker_answers_429(paper, retry_after_s=20)
    started = rig.now
    with pytest.raises(errors.RetriesExhausted):
        rig.ex.fetch_ticker(SYMBOL)
    # 20 s, then a second 429 asking 20 s more: that wait would end past the 30 s budget, so
    # the call gives up at once instead of sleeping it (or sleeping it twice).
    assert rig.sleeps == [20.0]
    assert rig.now - started == pytest.approx(20.0)
    assert rig.now - started <= 30.0


# --- a kill ends every wait -------------------------------------------------------------------


def _start_of_a_window(paper: PaperAccount) -> None:
    """Move to one second past a 10 s boundary: the order-count window has 9 s left."""
    now = paper.clock.time()
    paper.advance((now // 10 + 1) * 10 + 1.0 - now)


def _park_an_order(rig: Rig) -> float:
    """Fill the order-count window so the next order has to wait for it; returns the price."""
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    _start_of_a_window(rig.paper)
    for _ in range(2):
        rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    return price


def _kill_one_second_in(rig: Rig) -> None:
    def engage_during_sleep(seconds: float) -> bool:
        rig.paper.advance(min(1.0, seconds))
        rig.switch.engage("operator", by="test")
        return True

    rig.during_sleep = engage_during_sleep


def test_a_kill_wakes_an_order_parked_on_the_rate_budget(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path, throttle={"orders_per_10s": 3})
    price = _park_an_order(rig)
    placed = len(paper.orders())
    _kill_one_second_in(rig)
    parked_at = rig.now
    with pytest.raises(errors.TradingHalted):
        rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    # Refused one simulated second in, when the switch engaged: not when the order-count
    # window would have let the order go, and after one sleep only.
    assert rig.now - parked_at == pytest.approx(1.0)
    assert len(rig.sleeps) == 1
    assert len(paper.orders()) == placed


async def test_a_kill_wakes_an_async_order_parked_on_the_rate_budget(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path, asyncio_client=True, throttle={"orders_per_10s": 3})
    try:
        price = round(float((await rig.ex.fetch_ticker(SYMBOL))["last"]) * 0.97)
        _start_of_a_window(paper)
        for _ in range(2):
            await rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
        placed = len(paper.orders())
        _kill_one_second_in(rig)
        parked_at = rig.now
        with pytest.raises(errors.TradingHalted):
            await rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
        assert rig.now - parked_at == pytest.approx(1.0)
        assert len(rig.sleeps) == 1
        assert len(paper.orders()) == placed
    finally:
        await rig.ex.exchange.close()


# --- the venue's published limits -------------------------------------------------------------


def _tighten(paper: PaperAccount, **limits: int) -> None:
    paper.set_faults({"rules": [{"kind": "throttle", **limits}]})


def _poll_until_held(rig: Rig, limit: int = 500) -> int:
    """Read the book (weight 5) until the guard holds a read back; returns the reads sent."""
    for sent in range(limit):
        try:
            rig.ex.fetch_order_book(SYMBOL, 100)
        except errors.ThrottleHold:
            return sent
    raise AssertionError(f"{limit} reads and the guard never held one back")


def _read_until_refused(rig: Rig, limit: int = 500) -> errors.SafeguardError:
    for _ in range(limit):
        try:
            rig.ex.fetch_order_book(SYMBOL, 100)
        except errors.SafeguardError as refused:
            return refused
    raise AssertionError(f"{limit} reads and none was refused")


def test_published_limits_leave_a_cancel_its_reserve(paper: PaperAccount, tmp_path: Path) -> None:
    _tighten(paper, weight_per_minute=240)  # published in exchangeInfo from now on
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    order = rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    _poll_until_held(rig)
    # Reads stop short of the venue's 240, not of the default 2,400: no 429, and the cancel
    # goes out at once on the reserve the reads were kept from.
    assert rig.throttled() == []
    before = rig.now
    cancelled = rig.ex.cancel_order(order["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert rig.now == before
    assert rig.throttled() == []
    assert [o["status"] for o in paper.orders() if o["orderId"] == int(order["id"])] == ["CANCELED"]


def test_an_order_limit_tightened_later_is_learned_from_its_429(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    _start_of_a_window(paper)
    _tighten(paper, orders_per_10s=3)  # after the guard loaded the markets
    placed = [rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price) for _ in range(8)]
    # The venue said it once ("current limit is 3 orders per TEN_SECONDS"); every order after
    # that was paced under the learned limit instead of being refused again.
    assert len(placed) == 8
    assert len(rig.throttled()) == 1
    # An order-count limit at its edge stops orders, not cancels (they place no order).
    before = rig.now
    assert rig.ex.cancel_order(placed[0]["id"], SYMBOL)["status"] == "canceled"
    assert rig.now == before
    assert len(rig.throttled()) == 1


def test_a_weight_limit_tightened_later_is_learned_and_a_refused_cancel_says_why(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    order = rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    _tighten(paper, weight_per_minute=120)
    refused = _read_until_refused(rig)
    assert isinstance(refused, errors.RetriesExhausted)  # the 429 asked past the call's budget
    assert len(rig.throttled()) == 1
    # The venue's weight is spent for this minute: it would refuse the cancel as well, and
    # the guard says exactly that instead of a bare "rate budget" refusal.
    with pytest.raises(
        errors.ThrottleHold, match=r"429 on REQUEST_WEIGHT/1m, a limit it charges cancels too"
    ) as held:
        rig.ex.cancel_order(order["id"], SYMBOL)
    assert len(rig.throttled()) == 1
    # Once the window rolls the cancel goes, and reads are then held under the learned 120.
    paper.advance(held.value.retry_after)
    assert rig.ex.cancel_order(order["id"], SYMBOL)["status"] == "canceled"
    _poll_until_held(rig)
    assert len(rig.throttled()) == 1


def test_a_429_asking_for_no_wait_is_not_retried_at_once(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    _ticker_answers_429(paper, retry_after_s=0, count=2)
    assert rig.ex.fetch_ticker(SYMBOL)["last"] > 0
    # Two 429s, each followed by at least the policy's default pause, not a burst of resends.
    default = Policy.build().retry.default_retry_after_s
    assert len(rig.sleeps) == 2
    assert min(rig.sleeps) >= default


def test_a_second_client_on_the_ip_paces_on_the_limits_the_first_learned(
    paper: PaperAccount, tmp_path: Path
) -> None:
    _tighten(paper, weight_per_minute=240)
    first = _rig(paper, tmp_path)
    first.ex.load_markets()  # learns 240 into the budget every client on this IP shares
    second = _rig(paper, tmp_path, journal="second.jsonl")  # same state dir: same registry
    assert second.ex.runtime.core.pacer.budget is first.ex.runtime.core.pacer.budget
    _poll_until_held(second)  # the second client never loaded the markets itself
    assert second.throttled() == []
    assert first.throttled() == []


def test_a_kill_during_an_orders_backoff_refuses_it_at_once_and_settles_it_absent(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    rig.ex.load_markets()
    error = {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 429}
    paper.set_faults({"rules": [{**error, "retry_after_s": 5, "count": 1}]})
    _kill_one_second_in(rig)
    started = rig.now
    with pytest.raises(errors.TradingHalted):
        rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    assert rig.now - started == pytest.approx(1.0)  # not the 5 s the venue asked for
    assert rig.sleeps == [5.0]
    journal = rig.ex.runtime.core.journal
    assert journal.unresolved() == []  # the throttled send never landed: settled absent
    assert paper.orders() == []


def test_a_ban_on_a_cancel_stops_every_later_request_until_the_venues_time(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    price = round(float(rig.ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
    order = rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
    paper.set_faults({"rules": [{"kind": "ban", "endpoint": "DELETE /fapi/v1/order", "count": 1}]})
    with pytest.raises(errors.VenueBanned) as banned:
        rig.ex.cancel_order(order["id"], SYMBOL)
    assert rig.sleeps == []  # a ban is not retried
    sent = len(rig.requests)
    # The venue refuses every request from a banned IP, cancels included: the next cancel is
    # refused here, naming the end of the ban, and nothing is sent that would lengthen it.
    with pytest.raises(errors.VenueBanned, match="cancel_order not sent") as again:
        rig.ex.cancel_order(order["id"], SYMBOL)
    assert again.value.until == banned.value.until
    assert len(rig.requests) == sent
    paper.advance(banned.value.until - rig.now)
    assert rig.ex.cancel_order(order["id"], SYMBOL)["status"] == "canceled"


def test_two_clients_on_one_ip_share_its_weight_whatever_their_throttle_settings(
    paper: PaperAccount, tmp_path: Path
) -> None:
    from safeguard.venue._inprocess import inprocess_client

    _tighten(paper, weight_per_minute=240)
    key, secret = "second-key-0123456789", "second-secret-0123456789abcdef"
    paper.venue.create_account(key, secret, wallet=10_000.0)
    first = _rig(paper, tmp_path)
    other = inprocess_client(paper.dialect, key, secret, on_latency=paper.venue.advance)
    # Another account on the same IP, tuned differently (a larger reserve).
    second = _rig(
        paper, tmp_path, raw=other, journal="second.jsonl", throttle={"reserve_fraction": 0.1}
    )
    first.ex.load_markets()  # only the first client reads exchangeInfo through the guard
    other.load_markets()
    held = 0
    for _ in range(100):
        for rig in (first, second):
            try:
                rig.ex.fetch_order_book(SYMBOL, 100)
            except errors.ThrottleHold:
                held += 1
    # One IP, one weight limit: together they stop short of it, neither walks into a 429.
    assert held > 0
    assert first.throttled() == []
    assert second.throttled() == []


class JumpyClock:
    """The venue's clock seen through an offset the test can move back (an NTP step)."""

    def __init__(self, paper: PaperAccount) -> None:
        self.paper = paper
        self.offset = 0.0

    def time(self) -> float:
        return self.paper.clock.time() + self.offset

    def monotonic(self) -> float:
        return self.paper.clock.time()


def test_a_clock_stepping_back_during_a_backoff_neither_crashes_nor_stretches_the_call(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    clock = JumpyClock(paper)
    rig.ex.runtime.clock = clock  # the guard reads time here; the venue keeps its own
    rig.ex.load_markets()
    _ticker_answers_429(paper, retry_after_s=2, count=2)

    def step_back_an_hour(seconds: float) -> bool:
        paper.advance(seconds)
        if not clock.offset:
            clock.offset = -3600.0  # once, during the first backoff
        return False

    rig.during_sleep = step_back_an_hour
    started = paper.clock.time()
    assert rig.ex.fetch_ticker(SYMBOL)["last"] > 0
    # Two 429s asking 2 s each: the call takes seconds, not an hour more because the wall
    # clock stepped back an hour during the first wait. (The step is measured from the last
    # time the budget saw, so the wait it happened in may be counted twice: at most 2 s.)
    assert len(rig.throttled()) == 2
    assert paper.clock.time() - started <= 2.0 + 2.0 + 2.0
    assert max(rig.sleeps) <= 2.0


def test_at_the_published_order_limit_a_reduce_only_order_still_goes(
    paper: PaperAccount, tmp_path: Path
) -> None:
    _tighten(paper, orders_per_10s=6)
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    last = float(rig.ex.fetch_ticker(SYMBOL)["last"])
    rig.ex.create_order(SYMBOL, "market", "buy", 0.004)  # a position to reduce
    _start_of_a_window(paper)
    for _ in range(5):  # orders may use 6 - 5 % of 6: five fit, the sixth slot is reserved
        rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, round(last * 0.97))
    assert rig.sleeps == []
    reduce = rig.ex.create_order(
        SYMBOL, "limit", "sell", 0.002, round(last * 1.03), {"reduceOnly": True}
    )
    assert reduce["id"]
    assert rig.sleeps == []  # it went at once, on the reserve
    rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, round(last * 0.97))
    assert len(rig.sleeps) == 1  # an opening order waits for the window instead
    assert rig.throttled() == []


def test_a_kill_wakes_an_order_whose_verdict_reads_are_parked_on_the_budget(
    paper: PaperAccount, tmp_path: Path
) -> None:
    _tighten(paper, weight_per_minute=240)
    rig = _rig(paper, tmp_path, retry={"total_budget_s": 120.0})
    rig.ex.load_markets()
    last = float(rig.ex.fetch_ticker(SYMBOL)["last"])
    paper.advance(10.0)  # the verdict's data is stale: the order must read it again
    _poll_until_held(rig)  # the reads that remain are the verdict's, on the reserve
    rig.sleeps.clear()
    _kill_one_second_in(rig)
    parked_at = rig.now
    with pytest.raises(errors.TradingHalted):
        rig.ex.create_order(SYMBOL, "limit", "buy", 0.002, round(last * 0.97))
    assert len(rig.sleeps) == 1  # it was parked, once, on a read for the verdict
    assert rig.now - parked_at == pytest.approx(1.0)
    assert paper.orders() == []


def test_a_limit_learned_from_a_429_is_given_back_once_the_venue_lifts_it(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # The venue tightened its weight limit for a while (a 429 said "5 per minute"), then lifted
    # it. A bot that only reads between orders never re-reads exchangeInfo, so a limit taught
    # by one 429 must not outlive the venue's: otherwise a weight-6 read "can never fit" for
    # the rest of the run (the paper demo refused 489 bars that way).
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    rig.ex.fetch_order_book(SYMBOL, 100)
    _tighten(paper, weight_per_minute=5)
    refused = _read_until_refused(rig)
    assert len(rig.throttled()) == 1
    assert isinstance(refused, errors.SafeguardError)
    paper.set_faults({"rules": []})  # the venue lifts the limit (exchangeInfo publishes 2,400)
    # While the learned limit holds, the read is refused by the guard, never sent into a 429.
    with pytest.raises(errors.SafeguardError):
        rig.ex.fetch_order_book(SYMBOL, 100)
    assert len(rig.throttled()) == 1
    paper.advance(LEARNED_LIMIT_HOLD_S)
    book = rig.ex.fetch_order_book(SYMBOL, 100)
    assert book["bids"]
    assert book["asks"]
    assert len(rig.throttled()) == 1


def test_a_limit_the_venue_still_enforces_is_learned_again_with_one_429(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    _tighten(paper, weight_per_minute=120)
    _read_until_refused(rig)
    assert len(rig.throttled()) == 1
    paper.advance(LEARNED_LIMIT_HOLD_S + 60.0)
    # Given back on time, the limit is taught again by the venue's next 429, once: the
    # guard then paces under it rather than firing into the venue.
    _read_until_refused(rig)
    _poll_until_held(rig)
    assert len(rig.throttled()) == 2


def _learn_a_published_weight_limit(rig: Rig, per_minute: int, lasting_s: float | None) -> float:
    """The venue throttles its weight (for ``lasting_s``, or for good) and the guard re-reads
    exchangeInfo meanwhile, learning the tight number from it; returns when it learned it."""
    rule: dict[str, Any] = {"kind": "throttle", "weight_per_minute": per_minute}
    if lasting_s is not None:
        rule["end_s"] = lasting_s
    rig.paper.set_faults({"rules": [rule]})
    rig.paper.advance(60.0)  # a fresh weight window, so the re-read itself fits
    rig.ex.load_markets(True)
    return rig.now


def _sent(rig: Rig, method: str) -> int:
    return sum(1 for event in rig.requests if event.method == method)


def test_a_weight_limit_published_during_a_throttle_relaxes_once_the_venue_lifts_it(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # A throttle window published "5 per minute" in exchangeInfo, and the guard read it then.
    # A bot that does not re-read exchangeInfo itself must not have its weight-20 reads refused
    # as "can never fit" long after the venue lifted it: the guard re-reads the venue's limits
    # (weight 1, inside the tight limit) once the learned one is LEARNED_LIMIT_HOLD_S old.
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    assert rig.ex.fetch_trading_fee(SYMBOL)["maker"] is not None
    learned_at = _learn_a_published_weight_limit(rig, 5, lasting_s=120.0)
    fees, rereads = _sent(rig, "fetch_trading_fee"), _sent(rig, "load_markets")
    # While the venue enforces 5, the weight-20 read is refused here, never sent.
    with pytest.raises(errors.RequestBlocked, match="can never fit REQUEST_WEIGHT/1m"):
        rig.ex.fetch_trading_fee(SYMBOL)
    paper.advance(120.0)  # the throttle window is over; the learned limit still holds
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        rig.ex.fetch_trading_fee(SYMBOL)
    assert _sent(rig, "fetch_trading_fee") == fees
    assert _sent(rig, "load_markets") == rereads
    paper.advance(learned_at + LEARNED_LIMIT_HOLD_S - rig.now)
    fee = rig.ex.fetch_trading_fee(SYMBOL)
    assert fee["maker"] is not None
    assert _sent(rig, "load_markets") == rereads + 1  # the one re-read that relaxed it
    assert _sent(rig, "fetch_trading_fee") == fees + 1
    assert rig.throttled() == []


def test_a_weight_limit_the_venue_still_publishes_keeps_the_big_read_refused_unsent(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path)
    rig.ex.load_markets()
    learned_at = _learn_a_published_weight_limit(rig, 5, lasting_s=None)
    fees, rereads = _sent(rig, "fetch_trading_fee"), _sent(rig, "load_markets")
    paper.advance(learned_at + LEARNED_LIMIT_HOLD_S - rig.now)
    # The hold is over: the guard asks the venue again (one re-read), which still says 5, so
    # the read is refused unsent; asking again at once re-reads nothing (one re-read per hold).
    for _ in range(2):
        with pytest.raises(errors.RequestBlocked, match="can never fit REQUEST_WEIGHT/1m"):
            rig.ex.fetch_trading_fee(SYMBOL)
    assert _sent(rig, "load_markets") == rereads + 1
    paper.advance(LEARNED_LIMIT_HOLD_S)
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        rig.ex.fetch_trading_fee(SYMBOL)
    assert _sent(rig, "load_markets") == rereads + 2
    assert _sent(rig, "fetch_trading_fee") == fees
    assert rig.throttled() == []


def test_a_second_client_refused_by_a_limit_another_learned_asks_the_venue_first(
    paper: PaperAccount, tmp_path: Path
) -> None:
    first = _rig(paper, tmp_path)
    first.ex.load_markets()
    _learn_a_published_weight_limit(first, 5, lasting_s=120.0)  # into the IP's shared budget
    second = _rig(paper, tmp_path, journal="second.jsonl")
    assert second.ex.runtime.core.pacer.budget is first.ex.runtime.core.pacer.budget
    # Still throttled: the second client has never read the venue's limits, so it asks once
    # (weight 1, inside the 5), hears 5 again and refuses the weight-20 read unsent.
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        second.ex.fetch_trading_fee(SYMBOL)
    assert _sent(second, "load_markets") == 1
    paper.advance(120.0)  # the venue lifted it; the second client asked 120 s ago
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        second.ex.fetch_trading_fee(SYMBOL)
    paper.advance(LEARNED_LIMIT_HOLD_S - 120.0)
    assert second.ex.fetch_trading_fee(SYMBOL)["maker"] is not None
    assert _sent(second, "load_markets") == 2
    assert _sent(second, "fetch_trading_fee") == 1
    assert second.throttled() == []
    assert first.throttled() == []


async def test_an_async_client_asks_the_venue_again_before_refusing_too(
    paper: PaperAccount, tmp_path: Path
) -> None:
    rig = _rig(paper, tmp_path, asyncio_client=True)
    try:
        await rig.ex.load_markets()
        paper.set_faults({"rules": [{"kind": "throttle", "weight_per_minute": 5, "end_s": 120}]})
        paper.advance(60.0)
        await rig.ex.load_markets(True)
        with pytest.raises(errors.RequestBlocked, match="can never fit"):
            await rig.ex.fetch_trading_fee(SYMBOL)
        paper.advance(LEARNED_LIMIT_HOLD_S)
        assert (await rig.ex.fetch_trading_fee(SYMBOL))["maker"] is not None
        assert _sent(rig, "load_markets") == 3  # the two loads, then the one re-read
        assert rig.throttled() == []
    finally:
        await rig.ex.exchange.close()
