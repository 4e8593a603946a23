"""The guard tried through its public API as a careless or hostile user would.

Real ``ccxt.binanceusdm`` on the mock venue (:func:`safeguard.testing.paper_account`); the
venue's own order book and the state directory on disk are the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, ProtectiveStopEvent
from safeguard.killswitch._switch import TradingState
from safeguard.risk._outcome import Decision, Verdict
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
ETH = "ETH/USDT:USDT"


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)
    yield paper
    paper.close()


@pytest.fixture
def ex(account: PaperAccount) -> Any:
    guarded = account.guarded(Policy.build(risk={"max_leverage": 10, "require_stop": False}))
    guarded.set_leverage(5, SYMBOL)
    return guarded


# --- preview answers what create_order would do --------------------------------------------


@pytest.mark.parametrize(
    ("state", "code"),
    [(TradingState.HALTED, Code.TRADING_HALTED), (TradingState.REDUCING, Code.TRADING_REDUCING)],
)
def test_preview_reports_the_kill_switch_refusal_create_order_would_raise(
    account: PaperAccount, ex: Any, state: TradingState, code: Code
) -> None:
    assert ex.preview(SYMBOL, "market", "buy", 0.01).allowed  # the order itself is fine
    ex.runtime.switch.engage("operator: stop", by="test", state=state)

    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)

    assert isinstance(verdict, Verdict)
    assert verdict.decision is Decision.DENY
    assert verdict.codes == (code,)
    assert verdict.max_safe_amount == 0.0
    assert "operator: stop" in verdict.denials[0].message
    with pytest.raises(errors.TradingHalted) as refused:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert refused.value.code == code
    assert account.orders(VENUE_SYMBOL) == []


def test_preview_of_a_reduce_only_order_while_reducing_is_judged_normally(ex: Any) -> None:
    ex.runtime.switch.engage("operator: reduce", by="test", state=TradingState.REDUCING)
    verdict = ex.preview(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert Code.TRADING_REDUCING not in verdict.codes
    assert Code.TRADING_HALTED not in verdict.codes


# --- a crash between an entry and its protective stop ---------------------------------------


def _crash_when_the_entry_is_answered(ex: Any) -> None:
    """The process dies (SystemExit) as the venue's answer to the entry comes back: the
    entry exists, the guard never got to send its stop."""
    raw = ex.exchange
    wire = raw.fetch

    def dying(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        answer = wire(url, method, headers, body)
        if method == "POST" and url.endswith("/order"):
            raise SystemExit("killed")
        return answer

    raw.fetch = dying


def _crash_after_sending(
    account: PaperAccount, tmp_path: Path, cid: str, *order: Any
) -> tuple[Policy, float]:
    """Send ``order`` (symbol, type, side, amount, price) with a protective stop 3 % under the
    mark, and die as its answer comes back; returns the policy and the stop."""
    policy = Policy.build(risk={"max_leverage": 10})
    ex = account.guarded(policy, state_dir=tmp_path)
    ex.set_leverage(5, SYMBOL)
    stop = round(account.venue.mark_price(VENUE_SYMBOL) * 0.97, 1)
    _crash_when_the_entry_is_answered(ex)
    with pytest.raises(SystemExit):
        ex.create_order(*order, {"stopLossPrice": stop, "clientOrderId": cid, "timeInForce": "IOC"})
    ex.runtime.core.journal.close()
    return policy, stop


def test_a_restart_after_a_crash_between_entry_and_stop_reports_the_missing_stop(
    account: PaperAccount, tmp_path: Path
) -> None:
    policy, stop = _crash_after_sending(
        account, tmp_path, "entry-1", SYMBOL, "limit", "buy", 0.01, _tick(_ask(account) * 1.001)
    )
    assert account.positions()[VENUE_SYMBOL] > 0  # the entry filled, nothing protects it

    hooks = Hooks()
    seen: list[ProtectiveStopEvent] = []
    hooks.subscribe(EventKind.PROTECTIVE_STOP, seen.append)
    restarted = account.guarded(policy, state_dir=tmp_path, hooks=hooks)
    with pytest.raises(errors.ProtectiveStopFailed) as missing:
        restarted.reconcile()
    assert missing.value.stop_client_order_id == "entry-1-sl"
    assert missing.value.symbol == SYMBOL
    assert missing.value.order["clientOrderId"] == "entry-1"
    assert "entry-1-sl" in str(missing.value)
    (event,) = seen
    assert (event.outcome, event.entry_client_order_id, event.stop_price) == (
        "missing",
        "entry-1",
        stop,
    )
    assert restarted.runtime.core.journal.unresolved() == []  # settled all the same
    # Reported once: the next call is not refused for an entry the caller now knows about.
    restarted.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert account.positions().get(VENUE_SYMBOL, 0.0) == 0.0


def test_a_restart_reports_no_missing_stop_for_an_entry_that_never_filled(
    account: PaperAccount, tmp_path: Path
) -> None:
    policy, _ = _crash_after_sending(
        account, tmp_path, "entry-2", SYMBOL, "limit", "buy", 0.01, _tick(_ask(account) * 0.99)
    )
    assert account.positions().get(VENUE_SYMBOL, 0.0) == 0.0  # the IOC found nobody
    restarted = account.guarded(policy, state_dir=tmp_path)
    ((cid, order),) = restarted.reconcile()
    assert (cid, order["status"], order["filled"]) == ("entry-2", "expired", 0.0)


def _ask(account: PaperAccount) -> float:
    return float(account.client().fetch_order_book(SYMBOL, 5)["asks"][0][0])


def _tick(price: float) -> float:
    return round(price, 1)


# --- settings with arguments ccxt cannot use --------------------------------------------------


@pytest.mark.parametrize("leverage", ["5", None, True, float("nan"), float("inf"), 0, -3])
def test_a_leverage_that_is_not_a_number_is_refused_before_anything_is_sent(
    account: PaperAccount, ex: Any, leverage: Any
) -> None:
    # "5" from a config file used to make ccxt raise a TypeError that the guard took for a
    # venue failure: retried six times and counted against the venue's health, until it was
    # SEVERE and every new order was refused.
    with pytest.raises(errors.InvalidInput) as refused:
        ex.set_leverage(leverage, SYMBOL)
    assert refused.value.field == "leverage"
    assert str(ex.runtime.core.gate.health.state(account.clock.time())) == "NORMAL"
    order = ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert order["status"] == "closed"
    (position,) = ex.exchange.fetch_positions([SYMBOL])
    assert position["leverage"] == 5  # the leverage set before stands


def test_a_callers_mistakes_do_not_make_the_venue_look_unhealthy(
    account: PaperAccount, ex: Any
) -> None:
    # Each fails in ccxt or at the venue because of the call, not the venue: counted as
    # venue errors they turned its health SEVERE, and every new order was refused.
    mistakes = [
        ex.cancel_all_orders,  # Binance needs a symbol: ccxt refuses locally
        lambda: ex.fetch_balance([1]),  # params must be a dict: a TypeError inside ccxt
        lambda: ex.set_margin_mode(5, SYMBOL),  # an AttributeError inside ccxt
        lambda: ex.fetch_order("1", 123),  # a TypeError inside ccxt
        lambda: ex.set_margin_mode("sideways", SYMBOL),
        lambda: ex.cancel_order("424242", SYMBOL),  # the venue: unknown order
    ]
    for mistake in mistakes * 3:
        with pytest.raises(errors.SafeguardError):
            mistake()
    assert str(ex.runtime.core.gate.health.state(account.clock.time())) == "NORMAL"
    assert ex.create_order(SYMBOL, "market", "buy", 0.01)["status"] == "closed"


@pytest.mark.parametrize("limit", ["ten", float("nan"), [5]])
def test_a_book_depth_the_pacer_cannot_read_is_still_one_of_our_errors(ex: Any, limit: Any) -> None:
    # The pacer weighs a book read by its depth; int("ten") used to escape as a bare
    # ValueError, past every `except SafeguardError`.
    with pytest.raises(errors.SafeguardError):
        ex.fetch_order_book(SYMBOL, limit)


def test_two_protective_stops_in_params_are_refused_not_one_silently_placed(
    account: PaperAccount, ex: Any
) -> None:
    last = ex.fetch_ticker(SYMBOL)["last"]
    both = {"stopLossPrice": round(last * 0.97, 1), "stopLoss": {"triggerPrice": last * 0.75}}
    with pytest.raises(errors.OrderDenied, match="two protective stops"):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, both)
    assert account.orders(VENUE_SYMBOL) == []


@pytest.mark.parametrize(
    ("amount", "price", "params", "field"),
    [
        (10**400, None, {}, "amount"),
        (0.01, None, {"stopLossPrice": 10**400}, "params.stopLossPrice"),
        (0.01, 10**400, {"timeInForce": "GTC"}, "price"),
    ],
)
def test_an_integer_past_floats_range_is_an_invalid_input_not_an_overflow(
    account: PaperAccount, ex: Any, amount: Any, price: Any, params: dict[str, Any], field: str
) -> None:
    kind = "market" if price is None else "limit"
    with pytest.raises(errors.InvalidInput) as refused:
        ex.create_order(SYMBOL, kind, "buy", amount, price, params)
    assert refused.value.field == field
    with pytest.raises(errors.InvalidInput):
        ex.set_leverage(10**400, SYMBOL)
    assert account.orders(VENUE_SYMBOL) == []
