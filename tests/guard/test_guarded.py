"""The guarded exchange on the mock venue: ccxt's API as before, every order path guarded.

Real ``ccxt.binanceusdm`` (in process and, where the transport matters, over loopback HTTP),
the real venue engine, kill switch, health monitor and verdict. Simulated time: the guard's
sleeps advance the venue clock unless a test needs the kill switch's real wake-up.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy, TriggerConfig
from safeguard.guard import GuardedExchange, guard
from safeguard.guard._events import EventKind, Hooks, StateChangeEvent
from safeguard.guard._journal import OrderJournal, Status
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.killswitch._triggers import RiskMonitor
from safeguard.risk._outcome import Decision, Verdict
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

KEY, SECRET = "gx-key-0123456789", "gx-secret-0123456789abcdef"
SYMBOL, VENUE_SYMBOL = "ETH/USDT:USDT", "ETHUSDT"


@dataclass
class Rig:
    ex: Any
    venue: Venue
    dialect: Dialect
    switch: KillSwitch
    hooks: Hooks
    policy: Policy
    tmp: Path

    def venue_orders(self) -> list[dict[str, Any]]:
        return self.venue.all_orders(KEY, symbol=VENUE_SYMBOL)


def _policy(tmp: Path, **sections: Any) -> Policy:
    base: dict[str, Any] = {
        "risk": {"require_stop": False},
        "retry": {"base_delay_s": 0.05, "max_delay_s": 0.2},
        "kill_switch": {"state_dir": str(tmp / "state"), "watch_state_file": False},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Policy.build(**base)


def _build(
    tmp: Path,
    *,
    transport: str = "inprocess",
    faults: dict[str, Any] | None = None,
    simulated_sleep: bool = True,
    wallet: float = 100_000.0,
    book_depth: int = 100,
    closers: list[Any],
    **policy: Any,
) -> Rig:
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=wallet)
    dialect = Dialect(venue, faults=FaultPlan.parse(faults or {}))
    if transport == "inprocess":
        raw = inprocess_client(dialect, KEY, SECRET)
    else:
        server = VenueServer(venue, dialect=dialect)
        closers.append(server.close)
        raw = ccxt_client(server.url, KEY, SECRET, timeout_ms=2_000)
    pol = _policy(tmp, **policy)
    switch = KillSwitch(pol.kill_switch, clock=clock, watch=False)
    closers.append(switch.close)
    hooks = Hooks()

    def sleep(seconds: float) -> bool:
        venue.advance(seconds)
        return False

    ex = guard(
        raw,
        pol,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp / "orders.jsonl",
        durable_journal=False,
        budget=RateBudget.standalone(pol.throttle),
        sleep=sleep if simulated_sleep else None,
        book_depth=book_depth,
    )
    return Rig(ex, venue, dialect, switch, hooks, pol, tmp)


@pytest.fixture
def closers() -> Iterator[list[Any]]:
    stack: list[Any] = []
    yield stack
    for close in reversed(stack):
        close()


@pytest.fixture(params=["inprocess", "http"])
def rig(request: pytest.FixtureRequest, tmp_path: Path, closers: list[Any]) -> Rig:
    return _build(tmp_path, transport=request.param, closers=closers)


# --- ccxt's API, as before --------------------------------------------------------------------


def test_reads_attributes_and_pure_helpers_pass_through(rig: Rig) -> None:
    assert isinstance(rig.ex, GuardedExchange)
    assert rig.ex.id == "binanceusdm"
    markets = rig.ex.load_markets()
    assert SYMBOL in markets
    assert rig.ex.markets is rig.ex.exchange.markets
    assert rig.ex.amount_to_precision(SYMBOL, 0.12345) == "0.123"
    ticker = rig.ex.fetchTicker(SYMBOL)  # ccxt's camelCase alias is guarded the same way
    assert ticker["symbol"] == SYMBOL
    # Implicit endpoints too (a read: retried and logged like the unified ones).
    premium = rig.ex.fapiPublicGetPremiumIndex({"symbol": VENUE_SYMBOL})
    assert float(premium["markPrice"]) > 0
    assert ticker["last"] > 0
    rig.ex.verbose = False  # writes reach the wrapped exchange
    assert rig.ex.exchange.verbose is False
    assert rig.ex.exchange.options["maxRetriesOnFailure"] == 0
    assert rig.ex.exchange.enableRateLimit is False


def test_orders_go_through_and_carry_a_journaled_client_id(rig: Rig) -> None:
    order = rig.ex.create_order(SYMBOL, "market", "buy", 0.05)
    cid = order["clientOrderId"]
    assert cid.startswith("sg-")
    assert [o["clientOrderId"] for o in rig.venue_orders()] == [cid]
    # On disk: the pending record (written before the send), then the acknowledgement.
    records = [json.loads(line) for line in (rig.tmp / "orders.jsonl").read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in records] == [(cid, "pending"), (cid, "acked")]
    assert records[1]["order_id"] == str(order["id"])
    assert rig.ex.runtime.core.journal.get(cid).status is Status.ACKED


def test_helpers_and_camel_case_aliases_hit_the_verdict(rig: Rig) -> None:
    mark = rig.ex.fetch_ticker(SYMBOL)["last"]
    # A limit price 20 % away from the mark: the price band denies it, whichever door it uses.
    far = round(mark * 0.8, 2)
    for call in (
        lambda: rig.ex.create_limit_order(SYMBOL, "buy", 0.05, far),
        lambda: rig.ex.create_limit_buy_order(SYMBOL, 0.05, far),
        lambda: rig.ex.createOrder(SYMBOL, "limit", "buy", 0.05, far),
        lambda: rig.ex.create_orders([{"symbol": SYMBOL, "type": "limit", "side": "buy",
                                       "amount": 0.05, "price": far}]),
    ):  # fmt: skip
        with pytest.raises(errors.OrderDenied) as denied:
            call()
        assert denied.value.code == Code.PRICE_OUTSIDE_BAND
    assert rig.venue_orders() == []
    # And a helper that passes is placed through the guard (journaled client id).
    order = rig.ex.create_market_buy_order(SYMBOL, 0.05)
    assert order["clientOrderId"].startswith("sg-")


def test_raw_order_endpoints_are_refused(rig: Rig) -> None:
    with pytest.raises(errors.RequestBlocked, match="create_order"):
        rig.ex.fapiPrivatePostOrder({"symbol": VENUE_SYMBOL, "side": "BUY", "type": "MARKET"})
    # binance's own edit path sends its request itself, not through edit_order: refused too.
    with pytest.raises(errors.RequestBlocked, match="edit_contract_order"):
        rig.ex.edit_contract_order("1", SYMBOL, "limit", "buy", 0.05, 100.0)
    with pytest.raises(errors.RequestBlocked):
        rig.ex.create_order_ws(SYMBOL, "market", "buy", 0.05)
    assert rig.venue_orders() == []


def test_bad_input_is_refused_before_anything_is_sent(rig: Rig) -> None:
    with pytest.raises(ValueError, match="amount"):
        rig.ex.create_order(SYMBOL, "market", "buy", float("nan"))
    with pytest.raises(ValueError, match="side"):
        rig.ex.create_order(SYMBOL, "market", "long", 0.05)
    with pytest.raises(errors.OrderDenied) as denied:
        rig.ex.create_order("NOPE/USDT:USDT", "market", "buy", 1)
    assert denied.value.code == Code.UNKNOWN_SYMBOL
    assert rig.venue_orders() == []


def test_preview_returns_the_verdict_and_sends_nothing(rig: Rig) -> None:
    verdict = rig.ex.preview(SYMBOL, "market", "buy", 0.05)
    assert isinstance(verdict, Verdict)
    assert verdict.decision in (Decision.ALLOW, Decision.WARN)
    assert verdict.max_safe_amount is not None
    assert verdict.max_safe_amount >= 0.05
    assert rig.venue_orders() == []


# --- the kill switch on every order path --------------------------------------------------------


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_halted_blocks_orders_but_not_cancels(
    transport: str, tmp_path: Path, closers: list[Any]
) -> None:
    # The engage ladder would cancel the resting order itself: off, to see the guard's cancel.
    kill = {"cancel_all_on_engage": False}
    rig = _build(tmp_path, transport=transport, closers=closers, kill_switch=kill)
    mark = rig.ex.fetch_ticker(SYMBOL)["last"]
    rig.ex.create_order(SYMBOL, "market", "buy", 0.05)
    resting = rig.ex.create_order(SYMBOL, "limit", "buy", 0.05, round(mark * 0.97, 2))
    rig.switch.engage("test", by="test")
    with pytest.raises(errors.TradingHalted) as halted:
        rig.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert halted.value.code == Code.TRADING_HALTED
    with pytest.raises(errors.TradingHalted):
        rig.ex.create_market_sell_order(SYMBOL, 0.05, {"reduceOnly": True})
    cancelled = rig.ex.cancel_order(resting["id"], SYMBOL)
    assert cancelled["status"] == "canceled"
    assert len(rig.venue_orders()) == 2
    # The blocked orders never left, so the journal holds nothing unresolved.
    assert rig.ex.runtime.core.journal.unresolved() == []


def test_reducing_allows_only_reduce_only_orders(rig: Rig) -> None:
    rig.ex.create_order(SYMBOL, "market", "buy", 0.1)
    rig.switch.engage("drawdown", by="test", state=TradingState.REDUCING, code="DRAWDOWN")
    with pytest.raises(errors.TradingHalted) as refused:
        rig.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert refused.value.code == Code.TRADING_REDUCING
    closed = rig.ex.create_order(SYMBOL, "market", "sell", 0.1, None, {"reduceOnly": True})
    assert closed["status"] == "closed"


HANG_GUARD_S = 60.0
"""Only a hang reaches this: the calls below end on the engage (an event), not on a clock."""


@pytest.mark.parametrize("engager", ["the retry hook", "another thread"])
def test_an_engage_wakes_an_order_waiting_to_retry_and_nothing_leaves(
    tmp_path: Path, closers: list[Any], engager: str
) -> None:
    # Every order POST is refused (-1021, timestamp outside recvWindow: nothing was done), so the
    # guard backs off between attempts, really sleeping on the kill switch, for an hour. The
    # engage comes either from a RETRY hook itself (it lands just before the backoff starts) or
    # from a thread that hook starts (before the backoff starts or during it, as the threads
    # run): either way the backoff ends at once with the switch's refusal.
    faults = {"rules": [{"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 400,
                         "code": -1021}]}  # fmt: skip
    r = _build(
        tmp_path,
        faults=faults,
        simulated_sleep=False,
        closers=closers,
        retry={"base_delay_s": 3600.0, "max_delay_s": 3600.0, "max_attempts": 10,
               "total_budget_s": 7200.0},
    )  # fmt: skip
    r.ex.load_markets()
    retries: list[Any] = []
    r.hooks.subscribe(EventKind.RETRY, retries.append)

    def engage() -> None:
        r.switch.engage("kill during backoff", by="test")

    def engage_on_retry(event: Any) -> None:
        if engager == "the retry hook":
            engage()
        else:
            threading.Thread(target=engage).start()

    r.hooks.subscribe(EventKind.RETRY, engage_on_retry)
    outcome: list[BaseException] = []

    def order() -> None:
        try:
            r.ex.create_order(SYMBOL, "market", "buy", 0.05)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=order, daemon=True)  # a regression sleeps for an hour
    worker.start()
    worker.join(HANG_GUARD_S)
    assert not worker.is_alive(), "the engage did not end the hour-long backoff"
    assert [type(exc) for exc in outcome] == [errors.TradingHalted]
    # One backoff started; the engage cut it short and the permit refused the next attempt:
    # nothing reached the venue.
    assert len(retries) == 1
    assert r.venue_orders() == []


# --- degradation and data quality ----------------------------------------------------------------


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_degraded_venue_denies_an_order_the_normal_venue_allowed(
    tmp_path: Path, closers: list[Any], transport: str
) -> None:
    r = _build(
        tmp_path,
        transport=transport,
        closers=closers,
        wallet=1_000_000_000.0,
        book_depth=5,  # a thin book: the degraded face's depth haircut bites
        degradation={"degraded_error_rate": 0.05, "severe_error_rate": 0.95,
                     "cooling_period_s": 600.0},
        risk={"max_notional_per_order": None, "max_leverage": None},
    )  # fmt: skip
    changes: list[StateChangeEvent] = []
    r.hooks.subscribe(EventKind.STATE_CHANGE, changes.append)
    book = r.ex.fetch_order_book(SYMBOL, 5)
    depth = sum(qty for _, qty in book["asks"])
    amount = float(r.ex.amount_to_precision(SYMBOL, depth * 0.7))
    calm = r.ex.preview(SYMBOL, "market", "buy", amount)
    assert calm.allowed, calm.findings

    # The venue starts failing a third of its ticker answers: the error rate degrades it.
    r.dialect.set_fault_plan(FaultPlan.parse({"seed": 3, "rules": [
        {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 503,
         "code": -1001, "probability": 0.35}]}))  # fmt: skip
    for _ in range(30):
        with contextlib.suppress(errors.RetriesExhausted):
            r.ex.fetch_ticker(SYMBOL)
    assert [(c.previous, c.current) for c in changes if c.metric == "error_rate"][:1] == [
        ("NORMAL", "DEGRADED")
    ]
    with pytest.raises(errors.OrderDenied) as denied:
        r.ex.create_order(SYMBOL, "market", "buy", amount)
    assert denied.value.code == Code.DEGRADED_RISK
    assert "depth" in denied.value.reason.lower() or "degraded" in denied.value.reason.lower()
    assert r.venue_orders() == []

    # Opted in, the same order is shrunk to the largest amount the degraded face accepts.
    shrinking = guard(
        r.ex.exchange,
        r.policy,
        kill_switch=r.switch,
        clock=r.venue.clock,
        journal_path=tmp_path / "shrink.jsonl",
        budget=RateBudget.standalone(r.policy.throttle),
        health=r.ex.runtime.core.observer.health,
        shrink_when_degraded=True,
        book_depth=5,
    )
    order = shrinking.create_order(SYMBOL, "market", "buy", amount)
    assert 0 < order["amount"] < amount
    assert [o["clientOrderId"] for o in r.venue_orders()] == [order["clientOrderId"]]


def test_severe_venue_allows_only_reducing_orders(tmp_path: Path, closers: list[Any]) -> None:
    r = _build(
        tmp_path,
        closers=closers,
        degradation={"degraded_error_rate": 0.05, "severe_error_rate": 0.1},
    )
    r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    r.dialect.set_fault_plan(FaultPlan.parse({"seed": 5, "rules": [
        {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 503,
         "code": -1001, "probability": 0.6}]}))  # fmt: skip
    for _ in range(30):
        with contextlib.suppress(errors.RetriesExhausted):
            r.ex.fetch_ticker(SYMBOL)
    with pytest.raises(errors.OrderDenied) as denied:
        r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert denied.value.code == Code.SEVERE_REDUCE_ONLY
    closed = r.ex.create_order(SYMBOL, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert closed["status"] == "closed"


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_a_frozen_feed_denies_new_exposure(
    tmp_path: Path, closers: list[Any], transport: str
) -> None:
    r = _build(tmp_path, transport=transport, closers=closers)
    r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    r.dialect.set_fault_plan(FaultPlan.parse({"rules": [
        {"kind": "freeze_feed", "symbol": VENUE_SYMBOL, "mode": "timestamps"}]}))  # fmt: skip
    r.dialect.tick()  # the freeze takes effect now: the feed's times stop here
    r.venue.advance(30.0)
    with pytest.raises(errors.OrderDenied) as denied:
        r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert denied.value.code == Code.STALE_MARKET_DATA
    # Getting out is still allowed (the verdict only warns for orders that reduce).
    closed = r.ex.create_order(SYMBOL, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert closed["status"] == "closed"


def test_changed_tier_ladder_is_an_event(tmp_path: Path, closers: list[Any]) -> None:
    r = _build(tmp_path, closers=closers)
    changes: list[StateChangeEvent] = []
    r.hooks.subscribe(EventKind.STATE_CHANGE, changes.append)
    r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    r.dialect.set_fault_plan(FaultPlan.parse({"rules": [
        {"kind": "set_tiers", "symbol": VENUE_SYMBOL, "at_s": 1.0,
         "tiers": [[0, 1_000_000, 0.02, 25], [1_000_000, 10_000_000, 0.05, 10]]}]}))  # fmt: skip
    # Rules are re-read on a schedule (half of max_rules_age_s): let that much time pass.
    r.venue.advance(r.policy.risk.max_rules_age_s / 2 + 1)
    r.ex.create_order(SYMBOL, "market", "sell", 0.05)
    assert any(c.metric == "rules:tiers" and c.endpoint == SYMBOL for c in changes)


# --- restart -----------------------------------------------------------------------------------


def test_a_restart_settles_what_the_previous_run_left_pending(
    tmp_path: Path, closers: list[Any]
) -> None:
    r = _build(tmp_path, closers=closers)
    landed = r.ex.create_order(SYMBOL, "market", "buy", 0.05, None, {"clientOrderId": "run1-a"})
    r.ex.runtime.core.journal.close()
    # Simulate a crash between "pending" and the answer: the journal says pending for both,
    # one of which reached the venue and one of which did not.
    journal = OrderJournal(tmp_path / "restart.jsonl")
    journal.pending("run1-a", symbol=SYMBOL, intent={"type": "market"}, now=1.0)
    journal.pending("run1-b", symbol=SYMBOL, intent={"type": "market"}, now=2.0)
    journal.close()
    again = guard(
        r.ex.exchange,
        r.policy,
        kill_switch=r.switch,
        clock=r.venue.clock,
        journal_path=tmp_path / "restart.jsonl",
        budget=RateBudget.standalone(r.policy.throttle),
    )
    settled = dict(again.reconcile())
    assert settled["run1-a"]["id"] == landed["id"]
    assert settled["run1-b"] is None
    assert again.runtime.core.journal.unresolved() == []
    assert len(r.venue_orders()) == 1


# --- automatic kill-switch triggers ------------------------------------------------------------


def test_a_trigger_trip_engages_the_switch(tmp_path: Path, closers: list[Any]) -> None:
    r = _build(tmp_path, closers=closers)
    monitor = RiskMonitor(TriggerConfig(max_orders_per_window=3, rate_window_s=60.0))
    ex = guard(
        r.ex.exchange,
        r.policy,
        kill_switch=r.switch,
        clock=r.venue.clock,
        journal_path=tmp_path / "triggers.jsonl",
        budget=RateBudget.standalone(r.policy.throttle),
        triggers=monitor,
    )
    for _ in range(4):  # the fourth order in a minute is one beyond the limit
        ex.create_order(SYMBOL, "market", "buy", 0.05)
    state = r.switch.state
    assert (state.state, state.code, state.by) == (TradingState.HALTED, Code.ORDER_RATE, "trigger")
    with pytest.raises(errors.TradingHalted):
        ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert len(r.venue_orders()) == 4


def test_a_batch_is_judged_as_a_whole_and_order_by_order(
    tmp_path: Path, closers: list[Any]
) -> None:
    r = _build(tmp_path, closers=closers, risk={"max_notional_per_position": 250.0})
    mark = r.ex.fetch_ticker(SYMBOL)["last"]
    assert 0.05 * mark < 250.0 < 0.1 * mark  # one order fits the limit, two do not
    one = {"symbol": SYMBOL, "type": "market", "side": "buy", "amount": 0.05}
    with pytest.raises(errors.OrderDenied) as denied:
        r.ex.create_orders([one, {**one, "amount": 0.1}])  # the second alone is too big
    assert denied.value.code == Code.NOTIONAL_PER_POSITION
    assert r.venue_orders() == []  # nothing was sent: the batch was refused up front
    # Each passes alone, but not together: the second is judged as if the first had filled,
    # up front (half a batch on the venue is what the up-front check is there to prevent).
    with pytest.raises(errors.OrderDenied) as second:
        r.ex.create_orders([one, one])
    assert second.value.code == Code.NOTIONAL_PER_POSITION
    assert second.value.placed == []  # type: ignore[attr-defined]
    assert r.venue_orders() == []
    # One by one, the second is judged on the position the first left.
    r.ex.create_orders([one])
    with pytest.raises(errors.OrderDenied) as later:
        r.ex.create_orders([one])
    assert later.value.code == Code.NOTIONAL_PER_POSITION
    assert len(r.venue_orders()) == 1


# --- request records -----------------------------------------------------------------------------


def test_every_request_is_a_structured_record_with_the_policy_version(rig: Rig) -> None:
    from safeguard.guard._request_log import configure_logging, unconfigure_logging

    path = rig.tmp / "requests.jsonl"
    configure_logging("DEBUG", json_path=path, human=False)
    try:
        rig.ex.fetch_ticker(SYMBOL)
        rig.ex.create_order(SYMBOL, "market", "buy", 0.05, None, {"clientOrderId": "log-1"})
    finally:
        unconfigure_logging()
    records = [json.loads(line)["record"]["extra"]["request"]
               for line in path.read_text().splitlines() if '"request"' in line]  # fmt: skip
    methods = [r["method"] for r in records]
    assert "fetch_ticker" in methods
    assert "create_order" in methods
    assert {r["policy_version"] for r in records} == {rig.policy.version}
    (order,) = [r for r in records if r["method"] == "create_order"]
    assert order["client_order_id"] == "log-1"
    assert order["endpoint"] == "POST /fapi/v1/order"  # the venue path, on either transport
    assert order["status"] == 200
    assert order["params"]["newClientOrderId"] == "log-1"
    assert SECRET not in path.read_text()


def test_rules_that_cannot_be_refreshed_go_stale_and_deny(
    tmp_path: Path, closers: list[Any]
) -> None:
    r = _build(
        tmp_path,
        closers=closers,
        risk={"max_rules_age_s": 600.0},
        # Keep the venue NORMAL despite the failing reads (too few samples for an error rate),
        # to see the rules' own denial.
        degradation={"min_samples": 1000},
    )
    r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    # From now on the venue's exchangeInfo and leverage brackets fail: rules cannot be re-read.
    r.dialect.set_fault_plan(FaultPlan.parse({"rules": [
        {"kind": "error", "endpoint": "GET /fapi/v1/exchangeInfo", "status": 503, "code": -1001},
        {"kind": "error", "endpoint": "GET /fapi/v1/leverageBracket", "status": 503,
         "code": -1001}]}))  # fmt: skip
    r.venue.advance(601.0)
    with pytest.raises(errors.OrderDenied) as denied:
        r.ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert denied.value.code == Code.STALE_MARKET_RULES
    assert len(r.venue_orders()) == 1


def test_a_frozen_feed_seen_by_the_guard_trips_the_stale_data_trigger(
    tmp_path: Path, closers: list[Any]
) -> None:
    r = _build(tmp_path, closers=closers)
    monitor = RiskMonitor(TriggerConfig(max_data_age_s=10.0, max_orders_per_window=None))
    ex = guard(
        r.ex.exchange,
        r.policy,
        kill_switch=r.switch,
        clock=r.venue.clock,
        journal_path=tmp_path / "triggers.jsonl",
        budget=RateBudget.standalone(r.policy.throttle),
        triggers=monitor,
    )
    ex.create_order(SYMBOL, "market", "buy", 0.05)
    assert r.switch.state.state is TradingState.ACTIVE
    r.dialect.set_fault_plan(FaultPlan.parse({"rules": [
        {"kind": "freeze_feed", "symbol": VENUE_SYMBOL, "mode": "timestamps"}]}))  # fmt: skip
    r.dialect.tick()
    r.venue.advance(30.0)
    with pytest.raises(errors.OrderDenied):  # the verdict refuses the stale data ...
        ex.create_order(SYMBOL, "market", "buy", 0.05)
    state = r.switch.state  # ... and the trigger, fed the mark's venue time, halts trading
    assert (state.state, state.by) == (TradingState.HALTED, "trigger")
    assert state.code == Code.STALE_MARKET_DATA
