"""The guard's pacer: what a ccxt call weighs, which budget class it draws from, and what it
does with the budget's answer and the venue's (a real RateBudget, simulated time)."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import ThrottleConfig
from safeguard.guard._classify import ErrorClass, RetryClass
from safeguard.guard._core import Answer, Permit, Send
from safeguard.guard._orders import CallKind
from safeguard.guard._pacing import (
    LEARNED_LIMIT_HOLD_S,
    BudgetPacer,
    ladder_pace,
    request_kind,
    weight,
)
from safeguard.guard._throttle import (
    Banned,
    Hold,
    LimitType,
    RateBudget,
    RateLimit,
    RequestKind,
    Wait,
)

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
    assert pacer.after(READ, _answer({"X-MBX-USED-WEIGHT-1M": "42"}), None) == 0.0
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
        ({"retry_after": 0.5}, NOW + 0.5),
    ],
)
def test_a_418_bans_the_budget_until_the_venue_said(fields: dict[str, Any], until: float) -> None:
    pacer, budget, told = _pacer()
    ec = _failure(banned=True, **fields)
    assert pacer.after(READ, _answer(None), ec) == pytest.approx(until - NOW)
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
    assert pacer.after(READ, _answer(None), _failure()) == 0.0
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


def test_a_cancel_past_its_budget_on_a_full_weight_window_is_told_the_venue_counts_it_too() -> None:
    """A full weight window (the guard's own count, no 429): a cancel is refused for the time
    it would wait, saying the venue would refuse it as well; a read is told only the wait."""
    pacer, budget, _ = _pacer()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "100"}, NOW)
    with pytest.raises(errors.ThrottleHold) as cancel:
        pacer.before(CallKind.CANCEL, Send("cancel_order", ()), NOW, deadline=NOW + 1.0)
    assert cancel.value.retry_after == pytest.approx(50.0 + budget.config.window_skew_s)
    assert str(cancel.value) == (
        f"cancel_order not sent: it would wait {cancel.value.retry_after:.1f}s, past its call's "
        "time budget "
        f"({WEIGHT} is at 100% until its window rolls; the venue counts this weight for "
        "cancels too, so it would refuse this one as well)"
    )
    with pytest.raises(errors.ThrottleHold) as read:
        pacer.before(CallKind.READ, Send("fetch_order", (), essential=True), NOW, NOW + 1.0)
    assert str(read.value).endswith(f"({WEIGHT} is at 100% until its window rolls)")


def _refused(pacer: BudgetPacer, text: str, at: float) -> None:
    """The venue's 429 answer, naming the limit it enforced, at ``at``."""
    pacer.after(READ, Answer(None, Exception(text), None, at, at), _failure(throttled=True))


def _weight_refusal(limit: int) -> str:
    return f"binanceusdm 429 current limit of IP(1.2.3.4) is {limit} requests per minute."


def _paced(budget: RateBudget) -> dict[str, int]:
    return {lim.label: lim.limit for lim in budget.limits}


def test_a_429_naming_a_window_not_paced_on_adds_it() -> None:
    budget = RateBudget.standalone(ThrottleConfig())
    pacer = BudgetPacer(budget)
    _refused(pacer, "Too many new orders; current limit is 20000 orders per DAY.", NOW)
    assert RateLimit(LimitType.ORDERS, 86_400, 20_000) in budget.limits


def test_two_429s_in_a_row_give_back_the_limit_paced_on_before_either() -> None:
    """2,400 tightened to 1,200, then to 600 while the first is held: once the hold is over
    the budget paces on 2,400 again, not on the 1,200 the first 429 taught."""
    budget = RateBudget.standalone(ThrottleConfig())  # Binance's published 2,400
    pacer = BudgetPacer(budget)
    _refused(pacer, _weight_refusal(1200), NOW)
    _refused(pacer, _weight_refusal(600), NOW + 10.0)
    assert _paced(budget)[WEIGHT] == 600
    pacer.before(CallKind.READ, READ, NOW + 10.0 + LEARNED_LIMIT_HOLD_S + 1.0)
    assert _paced(budget)[WEIGHT] == 2400


def test_a_limit_whose_hold_is_over_is_given_back_while_another_is_still_held() -> None:
    budget = RateBudget.standalone(ThrottleConfig())
    pacer = BudgetPacer(budget)
    orders = next(lim for lim in budget.limits if lim.type is LimitType.ORDERS)
    _refused(pacer, _weight_refusal(1200), NOW)  # taught first: held until NOW + 300
    tighter = orders.limit // 2
    _refused(pacer, f"current limit is {tighter} orders per {orders.interval_s} SECONDS.", NOW + 1)
    _refused(pacer, _weight_refusal(600), NOW + 200.0)  # the weight's hold is extended
    pacer.before(CallKind.READ, READ, NOW + 1.0 + LEARNED_LIMIT_HOLD_S + 1.0)
    paced = _paced(budget)
    assert paced[WEIGHT] == 600  # still held
    assert paced[orders.label] == orders.limit  # its hold is over: given back


def test_the_kill_ladders_cancels_and_closes_spend_the_reserve_and_its_reads_wait() -> None:
    """The ladder asks the budget as the guard would: a cancel (any ``cancel*`` method, and the
    countdown cancel-all) and a flatten order (reduce-only: it counts an order) may fill the
    reserve; its reads are essential and wait for the window instead."""
    budget = RateBudget.standalone(ThrottleConfig(weight_limit_per_minute=100, orders_per_10s=10))
    pace = ladder_pace(budget)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "95"}, NOW)  # what is left is the reserve
    for method in ("cancel_all_orders", "cancel_order", "fapiPrivatePostCountdownCancelAll"):
        assert pace(method, ("BTC/USDT:USDT",), NOW) == 0.0
    assert budget.usage(NOW)[WEIGHT] == pytest.approx(0.98)
    assert budget.usage(NOW)["ORDERS/10s"] == 0.0  # a cancel places no order
    assert pace("create_order", ("BTC/USDT:USDT", "market", "sell", 0.1), NOW) == 0.0
    assert budget.usage(NOW)["ORDERS/10s"] == pytest.approx(0.1)
    read = budget.decide(RequestKind.ESSENTIAL_READ, 6, NOW)
    assert isinstance(read, Wait)
    assert pace("fetch_positions", (), NOW) == pytest.approx(read.seconds)


def test_the_kill_ladder_is_charged_what_each_call_weighs() -> None:
    budget = RateBudget.standalone(ThrottleConfig(weight_limit_per_minute=100))
    pace = ladder_pace(budget)
    assert pace("fetch_open_orders", ("BTC/USDT:USDT",), NOW) == 0.0  # one symbol: 1
    assert pace("fetch_positions", (), NOW) == 0.0  # 6
    assert budget.usage(NOW)[WEIGHT] == pytest.approx(0.07)


def test_the_kill_ladder_waits_a_short_spacing_exactly_and_a_ban_to_its_end() -> None:
    budget = RateBudget.standalone(ThrottleConfig(weight_limit_per_minute=2400))
    pace = ladder_pace(budget)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "1800"}, NOW)
    assert pace("fetch_positions", (), NOW) == 0.0  # goes, and spaces the next one
    spacing = budget.decide(RequestKind.ESSENTIAL_READ, 6, NOW)
    assert isinstance(spacing, Wait)
    assert 0.001 < spacing.seconds < 1.0
    assert pace("fetch_positions", (), NOW) == pytest.approx(spacing.seconds)
    budget.record_ban(NOW + 0.5, NOW)
    assert pace("cancel_all_orders", ("BTC/USDT:USDT",), NOW) == pytest.approx(0.5)


def test_a_wait_that_ends_exactly_at_the_calls_deadline_is_waited() -> None:
    pacer, budget, _ = _pacer()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "95"}, NOW)
    decision = budget.decide(RequestKind.ESSENTIAL_READ, 1, NOW)
    assert isinstance(decision, Wait)
    essential = Send("fetch_order", (), essential=True)
    assert pacer.before(CallKind.READ, essential, NOW, deadline=NOW + decision.seconds) == (
        decision.seconds
    )


def _published(weight_per_minute: int, server_time: float | None) -> Answer:
    """``load_markets``'s answer: ``exchangeInfo`` publishing the weight limit."""
    body: dict[str, Any] = {
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight_per_minute,
            }
        ]
    }
    if server_time is not None:
        body["serverTime"] = server_time
    return Answer(None, None, None, NOW, NOW, body=body)


MARKETS = Send("load_markets", ())


def test_published_limits_without_a_server_time_are_learned() -> None:
    budget = RateBudget.standalone(ThrottleConfig())
    pacer = BudgetPacer(budget)
    assert pacer.after(MARKETS, _published(1800, None), None) == 0.0
    assert _paced(budget)[WEIGHT] == 1800


def test_exchange_info_from_ccxts_cache_does_not_undo_what_a_429_taught() -> None:
    budget = RateBudget.standalone(ThrottleConfig())
    pacer = BudgetPacer(budget)
    pacer.after(MARKETS, _published(2400, 1_000.0), None)
    _refused(pacer, _weight_refusal(1200), NOW)
    pacer.after(MARKETS, _published(2400, 1_000.0), None)  # the same document again
    assert _paced(budget)[WEIGHT] == 1200


def test_a_newer_published_limit_is_not_replaced_when_a_429s_hold_ends() -> None:
    """The venue's newer word on a limit wins over the one a 429 replaced: once the 429's hold
    is over, the budget stays on what ``exchangeInfo`` published since."""
    budget = RateBudget.standalone(ThrottleConfig())  # Binance's published 2,400
    pacer = BudgetPacer(budget)
    _refused(pacer, _weight_refusal(1200), NOW)
    pacer.after(MARKETS, _published(1800, 2_000.0), None)
    pacer.before(CallKind.READ, READ, NOW + LEARNED_LIMIT_HOLD_S + 1.0)
    assert _paced(budget)[WEIGHT] == 1800


# --- a narrowed limit is asked about again ------------------------------------------------

FEE = Send("fetch_trading_fee", ("BTC/USDT:USDT",))  # weight 20
MARKETS = Send("load_markets", (True,))


def _publish_at(pacer: BudgetPacer, weight_per_minute: int, now: float) -> None:
    """The venue's exchangeInfo, read at ``now``, publishing ``weight_per_minute``."""
    rows = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "limit": weight_per_minute}]
    body = {"serverTime": int(now * 1000), "rateLimits": rows}
    pacer.after(MARKETS, Answer({}, None, None, now, now, body), None)


def test_a_narrowed_published_limit_is_asked_again_once_per_hold_before_a_refusal() -> None:
    budget = RateBudget.standalone(ThrottleConfig())  # Binance's published 2,400
    pacer = BudgetPacer(budget)
    _publish_at(pacer, 5, NOW)
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
    _publish_at(pacer, 2400, later + 1.0)
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
