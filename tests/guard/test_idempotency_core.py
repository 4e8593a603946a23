"""The sans-IO core, driven by hand: each test scripts what the venue answers and counts sends.

These pin the never-double rule at the protocol level, with real ccxt exceptions, the real
classifier, the real retry policy and a real journal file; only the venue is a script.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import ccxt
import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard._classify import ErrorClass
from safeguard.guard._core import (
    Answer,
    Assessment,
    GuardCore,
    Record,
    Send,
    Sleep,
    Steps,
    Woke,
)
from safeguard.guard._journal import OrderJournal, Status
from safeguard.guard._orders import CallKind, OrderCall, parse_call
from safeguard.guard._retry import RetryPolicy

SYMBOL = "BTC/USDT:USDT"


class _Go:
    def before(self, kind: CallKind, send: Send, now: float, deadline: float) -> float:
        return 0.0

    def after(self, send: Send, answer: Answer, ec: ErrorClass | None) -> float:
        return 0.0

    def recheck(self, kind: CallKind, send: Send, now: float) -> Send | None:
        return None


class _Allow:
    def refresh(self, symbol: str, now: float) -> list[Send]:
        return []

    def read_version(self) -> int:
        return 0

    def venue_health(self, now: float) -> str:
        return "NORMAL"

    def absorb(self, send: Send, value: Any, now: float, since: int | None = None) -> list[Send]:
        return []

    def unavailable(self, send: Send, error: Exception, now: float) -> None:
        return None

    def assess(self, intent: OrderCall, now: float, *, explain: bool = False) -> Assessment:
        return Assessment(intent, verdict="ALLOW")

    def placed(self, intent: OrderCall, order: Any, now: float, since: int | None = None) -> None:
        return None

    @contextmanager
    def committing(self, intent: OrderCall, now: float) -> Iterator[Assessment]:
        yield self.assess(intent, now)

    def adds_risk(self, method: str, args: tuple[Any, ...], kwargs: Any) -> bool:
        return False


class _Quiet:
    def request(self, *args: Any) -> None:
        return None

    def retry(self, *args: Any) -> None:
        return None


Script = Callable[[Send], Any]


class Venue:
    """Answers sends from a script; time moves only by sleeps and a fixed cost per send."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.now = 1_000.0
        self.sends: list[Send] = []
        self.slept: list[float] = []

    def run(self, steps: Steps[Any]) -> Any:
        reply: Any = None
        while True:
            try:
                effect = steps.send(reply)
            except StopIteration as done:
                return done.value
            if isinstance(effect, Record):
                effect.run()
                reply = None
                continue
            if isinstance(effect, Sleep):
                self.slept.append(effect.seconds)
                self.now += effect.seconds
                reply = Woke(self.now)
                continue
            self.sends.append(effect)
            started = self.now
            self.now += 0.01
            try:
                value = self.script(effect)
            except Exception as exc:
                reply = Answer(None, exc, None, started, self.now)
            else:
                reply = Answer(value, None, None, started, self.now)

    def count(self, method: str) -> int:
        return sum(1 for s in self.sends if s.method == method)


def _core(tmp_path: Path, **retry: Any) -> GuardCore:
    policy = Policy.build(retry={"base_delay_s": 0.01, "max_delay_s": 0.05, **retry})
    return GuardCore(
        exchange_id="binanceusdm",
        policy=policy,
        journal=OrderJournal(tmp_path / "orders.jsonl", durable=False),
        pacer=_Go(),
        backoff=RetryPolicy(policy.retry),
        gate=_Allow(),
        observer=_Quiet(),
        settle_window_s=10.0,
        rng=random.Random(7),
    )


def _intent() -> OrderCall:
    return parse_call(SYMBOL, "limit", "buy", 0.01, 60000, {}, prefix="sg-")


def _order(cid: str) -> dict[str, Any]:
    return {"id": "123", "clientOrderId": cid, "symbol": SYMBOL, "status": "open"}


def test_timeout_after_accept_returns_the_order_found_by_client_id(tmp_path: Path) -> None:
    book: dict[str, dict[str, Any]] = {}

    def script(send: Send) -> Any:
        if send.method == "create_order":
            cid = send.kwargs["params"]["clientOrderId"]
            book[cid] = _order(cid)  # the venue accepted it ...
            raise ccxt.RequestTimeout("binanceusdm POST /fapi/v1/order")  # ... the answer was lost
        if send.method == "fetch_order":
            cid = send.kwargs["params"]["origClientOrderId"]
            return book[cid]
        raise AssertionError(send)

    core = _core(tmp_path)
    venue = Venue(script)
    intent = _intent()
    order = venue.run(core.place(intent, venue.now))
    assert order["clientOrderId"] == intent.client_order_id
    assert venue.count("create_order") == 1
    assert len(book) == 1
    entry = core.journal.get(intent.client_order_id)
    assert entry is not None
    assert (entry.status, entry.order_id) == (Status.ACKED, "123")


def test_dropped_request_is_resent_once_with_the_same_id_after_the_settle_window(
    tmp_path: Path,
) -> None:
    book: dict[str, dict[str, Any]] = {}
    attempts: list[str] = []

    def script(send: Send) -> Any:
        if send.method == "create_order":
            cid = send.kwargs["params"]["clientOrderId"]
            attempts.append(cid)
            if len(attempts) == 1:
                raise ccxt.NetworkError("connection reset")  # never reached the engine
            book[cid] = _order(cid)
            return book[cid]
        if send.method == "fetch_order":
            cid = send.kwargs["params"]["origClientOrderId"]
            if cid not in book:
                raise ccxt.OrderNotFound('binanceusdm {"code":-2013,"msg":"Order does not exist."}')
            return book[cid]
        if send.method == "fetch_open_orders":
            return list(book.values())
        raise AssertionError(send)

    core = _core(tmp_path)
    venue = Venue(script)
    t0 = venue.now
    order = venue.run(core.place(_intent(), t0))
    assert len(attempts) == 2
    assert attempts[0] == attempts[1] == order["clientOrderId"]
    assert len(book) == 1
    # The resend waited until the venue could no longer act on the first send.
    create_times = [i for i, s in enumerate(venue.sends) if s.method == "create_order"]
    assert create_times[1] > create_times[0]
    assert venue.now - t0 >= 10.0


def test_unresolvable_outcome_raises_outcome_unknown_with_the_id(tmp_path: Path) -> None:
    def script(send: Send) -> Any:
        raise ccxt.RequestTimeout("binanceusdm timed out")

    core = _core(tmp_path, resolve_attempts=3)
    venue = Venue(script)
    intent = _intent()
    with pytest.raises(errors.OutcomeUnknown) as caught:
        venue.run(core.place(intent, venue.now))
    assert caught.value.client_order_id == intent.client_order_id
    assert venue.count("create_order") == 1
    assert venue.count("fetch_order") == 3
    entry = core.journal.get(intent.client_order_id)
    assert entry is not None
    assert entry.status is Status.UNKNOWN
    assert [e.client_order_id for e in core.journal.unresolved()] == [intent.client_order_id]


def test_duplicate_id_rejection_means_the_first_send_landed(tmp_path: Path) -> None:
    book: dict[str, dict[str, Any]] = {}

    def script(send: Send) -> Any:
        if send.method == "create_order":
            cid = send.kwargs["params"]["clientOrderId"]
            if cid in book:
                raise ccxt.InvalidOrder(
                    'binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}'
                )
            book[cid] = _order(cid)
            raise ccxt.ExchangeNotAvailable("binanceusdm 503 Service Unavailable")
        if send.method == "fetch_order":
            return book[send.kwargs["params"]["origClientOrderId"]]
        raise AssertionError(send)

    core = _core(tmp_path)
    venue = Venue(script)
    order = venue.run(core.place(_intent(), venue.now))
    assert order["id"] == "123"
    assert venue.count("create_order") == 1
    assert len(book) == 1


def test_a_definite_rejection_is_not_retried_and_maps_into_the_error_tree(tmp_path: Path) -> None:
    def script(send: Send) -> Any:
        raise ccxt.InsufficientFunds('binanceusdm {"code":-2019,"msg":"Margin is insufficient."}')

    core = _core(tmp_path)
    venue = Venue(script)
    intent = _intent()
    with pytest.raises(errors.InsufficientFunds) as caught:
        venue.run(core.place(intent, venue.now))
    assert isinstance(caught.value.__cause__, ccxt.InsufficientFunds)
    assert venue.count("create_order") == 1
    assert core.journal.get(intent.client_order_id).status is Status.REJECTED  # type: ignore[union-attr]


def test_kill_switch_refusal_on_a_retry_leaves_nothing_behind(tmp_path: Path) -> None:
    calls = {"n": 0}

    def script(send: Send) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ccxt.DDoSProtection('binanceusdm 429 Too Many Requests {"code":-1003}')
        # The face's permit raises this before any I/O once the switch is engaged.
        raise errors.TradingHalted("halted", state="HALTED", reason="manual")

    core = _core(tmp_path)
    venue = Venue(script)
    intent = _intent()
    with pytest.raises(errors.TradingHalted):
        venue.run(core.place(intent, venue.now))
    assert core.journal.get(intent.client_order_id).status is Status.ABSENT  # type: ignore[union-attr]
    assert core.journal.unresolved() == []


def test_reads_retry_transient_failures_then_give_up_with_retries_exhausted(
    tmp_path: Path,
) -> None:
    def script(send: Send) -> Any:
        raise ccxt.RequestTimeout("binanceusdm GET /fapi/v1/ticker/24hr")

    core = _core(tmp_path, max_attempts=4)
    venue = Venue(script)
    with pytest.raises(errors.RetriesExhausted) as caught:
        venue.run(core.call(CallKind.READ, "fetch_ticker", (SYMBOL,), {}, venue.now))
    assert caught.value.attempts == 4
    assert venue.count("fetch_ticker") == 4
    assert len(venue.slept) == 3


def test_other_writes_are_not_repeated_when_they_may_have_landed(tmp_path: Path) -> None:
    def script(send: Send) -> Any:
        raise ccxt.RequestTimeout("binanceusdm POST /sapi/v1/asset/transfer")

    core = _core(tmp_path)
    venue = Venue(script)
    with pytest.raises(errors.OutcomeUnknown, match="transfer"):
        venue.run(core.call(CallKind.WRITE, "transfer", ("USDT", 1.0, "spot", "future"), {}, 0.0))
    assert venue.count("transfer") == 1


def test_reconcile_settles_what_a_crashed_run_left_pending(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "orders.jsonl", durable=False)
    journal.pending("sg-landed", symbol=SYMBOL, intent={"type": "limit"}, now=1.0)
    journal.pending("sg-lost", symbol=SYMBOL, intent={"type": "limit"}, now=2.0)
    journal.close()

    def script(send: Send) -> Any:
        if send.method == "fetch_order":
            cid = send.kwargs["params"]["origClientOrderId"]
            if cid == "sg-landed":
                return _order(cid)
            raise ccxt.OrderNotFound('binanceusdm {"code":-2013}')
        if send.method == "fetch_open_orders":
            return []
        raise AssertionError(f"reconcile must only look up, got {send.method}")

    core = _core(tmp_path)
    venue = Venue(script)
    settled = dict(venue.run(core.reconcile(venue.now)))
    assert settled["sg-landed"]["id"] == "123"
    assert settled["sg-lost"] is None
    assert core.journal.unresolved() == []
    assert venue.count("create_order") == 0


def test_a_cancel_that_landed_before_its_answer_was_lost_returns_the_order(
    tmp_path: Path,
) -> None:
    state = {"status": "open"}

    def script(send: Send) -> Any:
        if send.method == "cancel_order":
            if state["status"] == "open":
                state["status"] = "canceled"
                raise ccxt.RequestTimeout("binanceusdm DELETE /fapi/v1/order")
            raise ccxt.OrderNotFound('binanceusdm {"code":-2011,"msg":"Unknown order sent."}')
        if send.method == "fetch_order":
            return {"id": send.args[0], "status": state["status"]}
        raise AssertionError(send)

    core = _core(tmp_path)
    venue = Venue(script)
    order = venue.run(core.call(CallKind.CANCEL, "cancel_order", ("42", SYMBOL), {}, venue.now))
    assert order == {"id": "42", "status": "canceled"}
    assert venue.count("cancel_order") == 2


def test_a_cancel_of_an_unknown_order_is_still_an_error(tmp_path: Path) -> None:
    def script(send: Send) -> Any:
        raise ccxt.OrderNotFound('binanceusdm {"code":-2011,"msg":"Unknown order sent."}')

    core = _core(tmp_path)
    venue = Venue(script)
    with pytest.raises(errors.OrderNotFound):
        venue.run(core.call(CallKind.CANCEL, "cancel_order", ("42", SYMBOL), {}, venue.now))
    assert venue.count("fetch_order") == 0


def test_a_resend_after_the_settle_window_is_judged_again(tmp_path: Path) -> None:
    """The first send never arrived; by the time it is known absent the verdict is older than
    the data may be, and the market moved: the resend is judged again and refused."""

    class _ThenDeny(_Allow):
        calls = 0

        def assess(self, intent: OrderCall, now: float, *, explain: bool = False) -> Assessment:
            _ThenDeny.calls += 1
            if _ThenDeny.calls == 1:
                return Assessment(intent, verdict="ALLOW")
            denial = errors.OrderDenied("STALE_MARKET_DATA", "mark moved", verdict="DENY")
            return Assessment(intent, verdict="DENY", denial=denial)

    def script(send: Send) -> Any:
        if send.method == "create_order":
            raise ccxt.NetworkError("connection reset")  # never reached the venue
        if send.method == "fetch_order":
            raise ccxt.OrderNotFound('binanceusdm {"code":-2013}')
        if send.method == "fetch_open_orders":
            return []
        raise AssertionError(send)

    core = _core(tmp_path)
    core.gate = _ThenDeny()
    venue = Venue(script)
    intent = _intent()
    with pytest.raises(errors.OrderDenied):
        venue.run(core.place(intent, venue.now))
    assert venue.count("create_order") == 1
    assert _ThenDeny.calls == 2
    assert core.journal.get(intent.client_order_id).status is Status.ABSENT  # type: ignore[union-attr]


def test_a_read_retries_a_timeout_and_a_429_with_the_policys_waits(tmp_path: Path) -> None:
    failures = [ccxt.RequestTimeout("t"), ccxt.DDoSProtection("binanceusdm 429 Too Many")]

    def script(send: Send) -> Any:
        if failures:
            raise failures.pop(0)
        return {"symbol": SYMBOL, "last": 60000.0}

    core = _core(tmp_path, default_retry_after_s=4.0)
    venue = Venue(script)
    ticker = venue.run(core.call(CallKind.READ, "fetch_ticker", (SYMBOL,), {}, venue.now))
    assert ticker["last"] == 60000.0
    assert venue.count("fetch_ticker") == 3
    first, second = venue.slept
    assert 0.0 <= first <= RetryPolicy(core.policy.retry).ceiling(1)  # full jitter
    assert second == 4.0  # a 429 without Retry-After waits the safe default
