"""The guard's pacer: what a ccxt call weighs, which budget class it draws from, and what it
does with the budget's answer and the venue's (a real RateBudget, simulated time)."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard import errors
from safeguard.config import ThrottleConfig
from safeguard.guard.classify import ErrorClass, RetryClass
from safeguard.guard.core import Answer, Permit, Send
from safeguard.guard.orders import CallKind
from safeguard.guard.pacing import LEARNED_LIMIT_HOLD_S, BudgetPacer, request_kind, weight
from safeguard.guard.throttle import Banned, Hold, RateBudget, RequestKind, Wait

NOW = 1_767_225_610.0  # ten seconds into a minute


@pytest.mark.parametrize(
    ("send", "expected"),
    [
        (Send("fetch_order_book", ("BTC/USDT:USDT",)), 10),  # ccxt's default depth is 500
        (Send("fetch_order_book", ("BTC/USDT:USDT", None)), 10),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 5)), 2),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 50)), 2),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 51)), 5),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 100)), 5),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 101)), 10),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 500)), 10),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 501)), 20),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 1000)), 20),
        (Send("fetch_order_book", ("BTC/USDT:USDT", 5000)), 20),
        (Send("fetch_order_book", ("BTC/USDT:USDT",), {"limit": 100}), 5),
        (Send("fetch_open_orders", ("BTC/USDT:USDT",)), 1),
        (Send("fetch_open_orders", (), {"symbol": "BTC/USDT:USDT"}), 1),
        (Send("fetch_open_orders", ()), 40),
        (Send("fetch_open_orders", (None,)), 40),
        (Send("fetch_tickers", ()), 40),
        (Send("fetch_positions", ()), 6),
        (Send("create_order", ()), 0),
        (Send("some_unlisted_read", ()), 1),
    ],
)
def test_a_calls_weight_follows_the_venues_table(send: Send, expected: float) -> None:
    assert weight(send) == expected


@pytest.mark.parametrize(
    ("kind", "send", "expected"),
    [
        (CallKind.CANCEL, Send("cancel_order", ()), RequestKind.CANCEL),
        (CallKind.ORDER, Send("create_order", (), permit=Permit(True)), RequestKind.REDUCE_ONLY),
        (CallKind.ORDER, Send("create_order", (), permit=Permit(False)), RequestKind.ORDER),
        (CallKind.ORDER, Send("create_order", ()), RequestKind.ORDER),
        (CallKind.READ, Send("fetch_order", (), essential=True), RequestKind.ESSENTIAL_READ),
        (CallKind.READ, Send("fetch_ticker", ()), RequestKind.READ),
        (CallKind.SETTING, Send("set_leverage", ()), RequestKind.ESSENTIAL_READ),
        (CallKind.WRITE, Send("transfer", ()), RequestKind.ESSENTIAL_READ),
    ],
)
def test_each_kind_of_call_draws_from_its_budget_class(
    kind: CallKind, send: Send, expected: RequestKind
) -> None:
    assert request_kind(kind, send) is expected


class Told:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float, Any]] = []

    def __call__(self, action: str, seconds: float, decision: Any) -> None:
        self.calls.append((action, seconds, decision))


def _pacer(**throttle: Any) -> tuple[BudgetPacer, RateBudget, Told]:
    config = ThrottleConfig(weight_limit_per_minute=100, orders_per_10s=10, **throttle)
    budget = RateBudget.standalone(config)
    told = Told()
    return BudgetPacer(budget, default_ban_s=77.0, on_wait=told), budget, told


READ = Send("fetch_ticker", ("BTC/USDT:USDT",))
WEIGHT = "REQUEST_WEIGHT/1m"


def test_a_request_the_budget_allows_goes_at_once_and_is_charged() -> None:
    pacer, budget, told = _pacer()
    assert pacer.before(CallKind.READ, Send("fetch_tickers", ()), NOW) == 0.0
    assert budget.usage(NOW)[WEIGHT] == pytest.approx(0.40)
    assert told.calls == []


def test_a_request_the_budget_spaces_waits_what_the_budget_says_and_says_so() -> None:
    pacer, budget, told = _pacer()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "95"}, NOW)  # past L - reserve for reads
    decision = budget.decide(RequestKind.ESSENTIAL_READ, 1, NOW)
    assert isinstance(decision, Wait)
    waited = pacer.before(CallKind.READ, Send("fetch_order", (), essential=True), NOW)
    assert waited == pytest.approx(decision.seconds)
    assert waited == pytest.approx(50.0 + budget.config.window_skew_s)  # the minute rolls
    [(action, seconds, said)] = told.calls
    assert (action, seconds) == ("wait", pytest.approx(decision.seconds))
    assert isinstance(said, Wait)


def test_a_plain_read_past_the_hard_threshold_is_held_with_its_retry_time() -> None:
    pacer, budget, told = _pacer()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "90"}, NOW)
    with pytest.raises(errors.ThrottleHold) as held:
        pacer.before(CallKind.READ, READ, NOW)
    assert held.value.retry_after == pytest.approx(50.0 + budget.config.window_skew_s)
    assert "fetch_ticker" in str(held.value)
    [(action, seconds, said)] = told.calls
    assert action == "hold"
    assert seconds == pytest.approx(held.value.retry_after)
    assert isinstance(said, Hold)


def test_a_banned_client_sends_nothing_and_is_told_until_when() -> None:
    pacer, budget, told = _pacer()
    budget.record_ban(NOW + 30.0, NOW)
    with pytest.raises(errors.VenueBanned) as banned:
        pacer.before(CallKind.CANCEL, Send("cancel_order", ()), NOW)
    assert banned.value.until == NOW + 30.0
    assert "2026-01-01T00:00:40+00:00" in str(banned.value)  # UTC, whatever the local zone
    [(action, seconds, said)] = told.calls
    assert (action, seconds) == ("banned", 30.0)
    assert isinstance(said, Banned)
    assert said.until == NOW + 30.0


def test_a_short_spacing_is_waited_exactly() -> None:
    # Past the soft threshold of a 2400/min budget, requests are spaced a fraction of a second
    # apart: the pacer waits exactly that, not a rounded-up second.
    config = ThrottleConfig(weight_limit_per_minute=2400)
    budget = RateBudget.standalone(config)
    pacer = BudgetPacer(budget)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "1800"}, NOW)
    assert pacer.before(CallKind.READ, READ, NOW) == 0.0  # goes, and spaces the next one
    spacing = budget.decide(RequestKind.READ, 1, NOW)
    assert isinstance(spacing, Wait)
    assert 0.001 < spacing.seconds < 1.0
    assert pacer.before(CallKind.READ, READ, NOW) == pytest.approx(spacing.seconds)


def _answer(headers: dict[str, str] | None, started: float = NOW) -> Answer:
    return Answer(None, None, headers, started, NOW)


def test_every_answers_headers_raise_the_budgets_count() -> None:
    pacer, budget, told = _pacer()
    pacer.after(READ, _answer({"X-MBX-USED-WEIGHT-1M": "42"}), None)
    assert budget.usage(NOW)[WEIGHT] == pytest.approx(0.42)
    assert told.calls == []


def test_headers_of_a_request_sent_in_the_previous_window_teach_nothing() -> None:
    pacer, budget, _ = _pacer()
    pacer.after(READ, _answer({"X-MBX-USED-WEIGHT-1M": "42"}, started=NOW - 30.0), None)
    assert budget.usage(NOW)[WEIGHT] == 0.0


def _failure(**fields: Any) -> ErrorClass:
    return ErrorClass(retry=RetryClass.NEVER, reason="test", **fields)


@pytest.mark.parametrize(
    ("fields", "until"),
    [
        ({"banned_until": NOW + 300.0, "retry_after": 5.0}, NOW + 300.0),
        ({"retry_after": 45.0}, NOW + 45.0),
        ({}, NOW + 77.0),  # the policy's default ban
    ],
)
def test_a_418_bans_the_budget_until_the_venue_said(fields: dict[str, Any], until: float) -> None:
    pacer, budget, told = _pacer()
    ec = _failure(banned=True, **fields)
    pacer.after(READ, _answer(None), ec)
    assert budget.banned_until(NOW) == until
    assert told.calls == [("418", until - NOW, ec)]


@pytest.mark.parametrize(("retry_after", "told_s"), [(5.0, 5.0), (None, 0.0)])
def test_a_429_stops_the_budget_and_says_for_how_long(
    retry_after: float | None, told_s: float
) -> None:
    pacer, budget, told = _pacer()
    ec = _failure(throttled=True, retry_after=retry_after)
    pacer.after(READ, _answer(None), ec)
    assert told.calls == [("429", told_s, ec)]
    held = budget.decide(RequestKind.ESSENTIAL_READ, 1, NOW)
    assert isinstance(held, Wait)
    assert held.limit == "429"
    if retry_after is not None:
        assert held.seconds == pytest.approx(retry_after)


def test_any_other_failure_leaves_the_budget_open() -> None:
    pacer, budget, told = _pacer()
    pacer.after(READ, _answer(None), _failure())
    assert told.calls == []
    assert budget.banned_until(NOW) is None
    assert pacer.before(CallKind.READ, READ, NOW) == 0.0


def test_a_pacer_without_a_listener_still_paces() -> None:
    budget = RateBudget.standalone(ThrottleConfig(weight_limit_per_minute=100))
    pacer = BudgetPacer(budget)
    pacer.after(READ, _answer(None), _failure(banned=True))
    assert budget.banned_until(NOW) == NOW + 120.0
    with pytest.raises(errors.VenueBanned):
        pacer.before(CallKind.READ, READ, NOW)


def test_a_429_naming_a_looser_limit_than_the_one_paced_on_does_not_loosen_it() -> None:
    # A 429 says the client went past the venue's limit: a number in it above the one the
    # guard already paces on (a venue's stale text, a proxy's) cannot be the reason, and
    # taking it would let reads run past the real limit into the next 429s and a ban.
    budget = RateBudget.standalone(ThrottleConfig())  # paced on Binance's published 2,400
    pacer = BudgetPacer(budget)
    refusal = Exception(
        "binanceusdm 429 Too many requests; current limit of IP(1.2.3.4) is 100000 requests "
        "per minute. Please use the websocket for live updates to avoid polling the API."
    )
    pacer.after(READ, Answer(None, refusal, None, NOW, NOW), _failure(throttled=True))
    weights = [lim.limit for lim in budget.limits if lim.label == WEIGHT]
    assert weights == [2400]


# --- a narrowed limit is asked about again ------------------------------------------------

FEE = Send("fetch_trading_fee", ("BTC/USDT:USDT",))  # weight 20
MARKETS = Send("load_markets", (True,))


def _published(pacer: BudgetPacer, weight_per_minute: int, now: float) -> None:
    """The venue's exchangeInfo, read at ``now``, publishing ``weight_per_minute``."""
    rows = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "limit": weight_per_minute}]
    body = {"serverTime": int(now * 1000), "rateLimits": rows}
    pacer.after(MARKETS, Answer({}, None, None, now, now, body), None)


def test_a_narrowed_published_limit_is_asked_again_once_per_hold_before_a_refusal() -> None:
    budget = RateBudget.standalone(ThrottleConfig())  # Binance's published 2,400
    pacer = BudgetPacer(budget)
    _published(pacer, 5, NOW)
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        pacer.before(CallKind.READ, FEE, NOW)
    # Just read: not asked again until the hold is over, then once, counted from the asking.
    assert pacer.recheck(CallKind.READ, FEE, NOW + LEARNED_LIMIT_HOLD_S - 1.0) is None
    assert pacer.recheck(CallKind.READ, FEE, NOW + LEARNED_LIMIT_HOLD_S) == MARKETS
    assert pacer.recheck(CallKind.READ, FEE, NOW + LEARNED_LIMIT_HOLD_S + 1.0) is None
    later = NOW + 2 * LEARNED_LIMIT_HOLD_S
    assert pacer.recheck(CallKind.READ, READ, later) is None  # weight 1 fits: nothing to ask
    assert pacer.recheck(CallKind.READ, MARKETS, later) is None  # the re-read itself
    assert pacer.recheck(CallKind.READ, FEE, later) == MARKETS
    # The venue publishes its usual limit again: the fee read fits, nothing more is asked.
    _published(pacer, 2400, later + 1.0)
    assert pacer.before(CallKind.READ, FEE, later + 1.0) == 0.0
    assert pacer.recheck(CallKind.READ, FEE, later + 3 * LEARNED_LIMIT_HOLD_S) is None


def test_a_limit_the_policy_sets_or_a_429_holds_is_not_asked_about_again() -> None:
    own = BudgetPacer(RateBudget.standalone(ThrottleConfig(weight_limit_per_minute=10)))
    with pytest.raises(errors.RequestBlocked, match="can never fit"):
        own.before(CallKind.READ, FEE, NOW)
    assert own.recheck(CallKind.READ, FEE, NOW + 10 * LEARNED_LIMIT_HOLD_S) is None
    taught = BudgetPacer(RateBudget.standalone(ThrottleConfig()))
    refusal = Exception("429; current limit of IP(1.2.3.4) is 5 requests per minute.")
    taught.after(READ, Answer(None, refusal, None, NOW, NOW), _failure(throttled=True))
    # Its own hold gives the 429's limit back (LEARNED_LIMIT_HOLD_S after it).
    assert taught.recheck(CallKind.READ, FEE, NOW + 1.0) is None
