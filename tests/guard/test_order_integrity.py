"""What reaches the venue is exactly what the verdict judged, and every refusal is one of ours.

Real ``ccxt.binanceusdm`` (sync and async) on the mock venue through
:func:`safeguard.testing.paper_account`; the venue's own order book is the ground truth. A
``params`` entry that would change the order's side, size, price, symbol, type, reduce-only,
close-position or position side is refused before anything is sent; an order type the guard
cannot judge is refused by ``preview`` and ``create_order`` alike; a protective stop the venue
could not place denies the entry before it leaves; bad input is a
:class:`~safeguard._errors.SafeguardError`; ``preview`` always answers with a full verdict; the
protective stop's client id is the entry's + ``-sl``, as the README says.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import safeguard
from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.guard._protective import INFO_KEY, STOP_SUFFIX
from safeguard.risk._outcome import Decision, Verdict
from safeguard.testing import PaperAccount, paper_account
from safeguard.venue._faults import FaultPlan

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


def _policy(**risk: Any) -> Policy:
    return Policy.build(risk={"max_leverage": 10, **risk})


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)
    yield paper
    paper.close()


@pytest.fixture
def ex(account: PaperAccount) -> Any:
    guarded = account.guarded(_policy())
    guarded.set_leverage(5, SYMBOL)
    return guarded


def _mark(account: PaperAccount) -> float:
    return account.venue.mark_price(VENUE_SYMBOL)


def _tick(price: float) -> float:
    """``price`` on the market's 0.1 tick."""
    return round(price, 1)


def _stop_below(account: PaperAccount, pct: float = 3.0) -> float:
    return _tick(_mark(account) * (1 - pct / 100))


def _nothing_sent(account: PaperAccount) -> None:
    assert account.orders(VENUE_SYMBOL) == []


# --- params cannot change what was judged ----------------------------------------------------

CHANGES_THE_ORDER = [
    pytest.param({"quantity": "1"}, id="quantity"),
    pytest.param({"quantity": None}, id="quantity-None"),
    pytest.param({"origQty": "1"}, id="origQty"),
    pytest.param({"amount": 1}, id="amount"),
    pytest.param({"cost": 5000}, id="cost"),
    pytest.param({"side": "SELL"}, id="side"),
    pytest.param({"SIDE": "SELL"}, id="SIDE"),
    pytest.param({"price": "1"}, id="price"),
    pytest.param({"priceMatch": "OPPONENT"}, id="priceMatch"),
    pytest.param({"symbol": "ETHUSDT"}, id="symbol"),
    pytest.param({"type": "STOP_MARKET"}, id="type"),
    pytest.param({"positionSide": "SHORT"}, id="positionSide"),
    pytest.param({"hedged": True}, id="hedged"),
    pytest.param({"closePosition": True}, id="closePosition-on-an-entry"),
    pytest.param({"reduceOnly": "yes"}, id="reduceOnly-not-a-bool"),
    pytest.param({"ReduceOnly": True}, id="ReduceOnly-spelling"),
    pytest.param({"portfolioMargin": True}, id="portfolioMargin"),
    pytest.param({"triggerPrice": 1.0}, id="triggerPrice-makes-an-opening-trigger-order"),
    pytest.param({"stopPrice": 1.0}, id="stopPrice-makes-an-opening-trigger-order"),
    pytest.param({"takeProfit": {"triggerPrice": 1.0}}, id="attached-takeProfit"),
    pytest.param({"stopLoss": {"triggerPrice": 1.0, "price": 1.0}}, id="stop-limit-stopLoss"),
]


@pytest.mark.parametrize("extra", CHANGES_THE_ORDER)
def test_params_cannot_change_what_the_verdict_judged(
    account: PaperAccount, ex: Any, extra: dict[str, Any]
) -> None:
    params = {"stopLossPrice": _stop_below(account), **extra}
    with pytest.raises(errors.SafeguardError) as refused:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, params)
    assert isinstance(refused.value, ValueError)
    assert refused.value.code == Code.INVALID_INPUT
    key = next(iter(extra))
    assert key in str(refused.value)
    # The error names the parameter to drop (a trigger price makes the entry a trigger order,
    # which the attached stop then conflicts with: that refusal names the stop).
    named = "params.stopLossPrice" if key in ("triggerPrice", "stopPrice") else f"params.{key}"
    assert refused.value.field == named
    _nothing_sent(account)
    # preview refuses the same order: it never says ALLOW to what create_order refuses
    with pytest.raises(errors.SafeguardError):
        ex.preview(SYMBOL, "market", "buy", 0.01, None, params)


def test_params_cannot_change_the_judged_order_async(account: PaperAccount) -> None:
    async def scenario() -> None:
        ex = account.guarded(_policy(), asyncio=True)
        await ex.set_leverage(5, SYMBOL)
        params = {"stopLossPrice": _stop_below(account), "quantity": "1"}
        with pytest.raises(errors.SafeguardError, match="quantity"):
            await ex.create_order(SYMBOL, "limit", "buy", 0.01, _tick(_mark(account)), params)
        with pytest.raises(errors.SafeguardError, match="side"):
            await ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"side": "SELL"})
        await account.aclose()

    asyncio.run(scenario())
    _nothing_sent(account)


def test_what_reaches_the_venue_is_what_was_judged(account: PaperAccount, ex: Any) -> None:
    price = _tick(_mark(account) * 0.99)
    stop = _stop_below(account, 4.0)
    params = {"stopLossPrice": stop, "timeInForce": "GTC", "reduceOnly": False}
    verdict = ex.preview(SYMBOL, "limit", "buy", 0.012, price, params)
    assert verdict.allowed
    order = ex.create_order(SYMBOL, "limit", "buy", 0.012, price, params)
    at_venue = {o["clientOrderId"]: o for o in account.orders(VENUE_SYMBOL)}
    entry = at_venue[order["clientOrderId"]]
    assert (entry["symbol"], entry["side"], entry["type"]) == (VENUE_SYMBOL, "BUY", "LIMIT")
    assert (float(entry["origQty"]), float(entry["price"])) == (verdict.amount, price)
    assert (entry["reduceOnly"], entry["closePosition"], entry["positionSide"]) == (
        False,
        False,
        "BOTH",
    )
    placed_stop = at_venue[order["clientOrderId"] + STOP_SUFFIX]
    assert (placed_stop["type"], placed_stop["side"]) == ("STOP_MARKET", "SELL")
    assert float(placed_stop["stopPrice"]) == stop


@pytest.mark.parametrize(
    ("type_", "params"),
    [
        ("stop", {}),
        ("limit_maker", {}),
        ("take_profit", {}),
        ("trailing_stop_market", {}),
        ("stop_market", {}),  # no trigger: ccxt would send a bare STOP_MARKET
        ("stop_market", {"stopPrice": 1.0}),  # a trigger order that could open exposure
        ("STOP", {"triggerPrice": 1.0}),
        ("market", {"takeProfitPrice": 1.0}),
        ("market", {"trailingPercent": 1.0}),
        ("iceberg", {}),
        ("market", {}),  # with a price, which ccxt would drop without a word
        ("market", {"postOnly": True}),  # ccxt refuses a post-only market order
        ("market", {"timeInForce": "GTX"}),
        ("market", {"timeInForce": "GTC"}),  # the venue refuses it (-1106)
        ("limit", {"postOnly": True, "timeInForce": "IOC"}),  # ccxt would send IOC
    ],
)
def test_an_order_type_create_order_refuses_gets_no_allow_from_preview(
    account: PaperAccount, ex: Any, type_: str, params: dict[str, Any]
) -> None:
    price = _tick(_mark(account) * 0.99)
    full = {"stopLossPrice": _stop_below(account), **params}
    with pytest.raises(errors.SafeguardError) as previewed:
        ex.preview(SYMBOL, type_, "buy", 0.01, price, full)
    assert previewed.value.code == Code.INVALID_INPUT
    with pytest.raises(errors.SafeguardError) as refused:
        ex.create_order(SYMBOL, type_, "buy", 0.01, price, full)
    assert refused.value.code == Code.INVALID_INPUT
    _nothing_sent(account)


def _open_long(account: PaperAccount, ex: Any, amount: float = 0.02) -> dict[str, Any]:
    order: dict[str, Any] = ex.create_order(
        SYMBOL, "market", "buy", amount, None, {"stopLossPrice": _stop_below(account, 5.0)}
    )
    return order


@pytest.mark.parametrize(
    ("type_", "params", "venue_type"),
    [
        ("STOP_MARKET", {"stopPrice": None, "reduceOnly": True}, "STOP_MARKET"),
        ("market", {"triggerPrice": None, "reduceOnly": True}, "STOP_MARKET"),
        ("take_profit_market", {"stopPrice": "up", "reduceOnly": True}, "TAKE_PROFIT_MARKET"),
        ("market", {"takeProfitPrice": "up", "reduceOnly": "true"}, "TAKE_PROFIT_MARKET"),
    ],
)
def test_a_trigger_order_that_only_reduces_is_judged_as_one_and_sent_as_judged(
    account: PaperAccount, ex: Any, type_: str, params: dict[str, Any], venue_type: str
) -> None:
    _open_long(account, ex)
    before = {o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)}
    trigger = _stop_below(account, 2.0)
    up = _tick(_mark(account) * 1.02)
    filled = {k: (up if v == "up" else trigger if v is None else v) for k, v in params.items()}
    verdict = ex.preview(SYMBOL, type_, "sell", 0.02, None, filled)
    assert verdict.allowed
    order = ex.create_order(SYMBOL, type_, "sell", 0.02, None, filled)
    new = [o for o in account.orders(VENUE_SYMBOL) if o["clientOrderId"] not in before]
    assert [(o["clientOrderId"], o["type"], o["side"]) for o in new] == [
        (order["clientOrderId"], venue_type, "SELL")
    ]
    assert float(new[0]["stopPrice"]) in (trigger, up)
    assert (float(new[0]["origQty"]), new[0]["reduceOnly"]) == (0.02, True)


# --- a protective stop the venue cannot place --------------------------------------------------


@pytest.mark.parametrize(
    ("side", "stop", "code"),
    [
        pytest.param("buy", 1e-320, Code.PRICE_FILTER, id="denormal"),
        pytest.param("buy", 0.04, Code.PRICE_FILTER, id="below-one-tick"),
        pytest.param("buy", 0.1 * 1.5, Code.TICK_SIZE, id="off-tick-near-zero"),
        pytest.param("sell", 1e12, Code.PRICE_FILTER, id="above-max-price"),
    ],
)
def test_a_stop_the_venue_cannot_place_is_denied_before_the_entry_leaves(
    account: PaperAccount, ex: Any, side: str, stop: float, code: Code
) -> None:
    ex.set_leverage(1, SYMBOL)  # a long at 1x cannot be liquidated: no other check denies
    params = {"stopLossPrice": stop}
    verdict = ex.preview(SYMBOL, "market", side, 0.01, None, params)
    assert verdict.decision is Decision.DENY
    assert code in verdict.codes
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", side, 0.01, None, params)
    assert code in denied.value.verdict.codes
    _nothing_sent(account)


def test_a_limit_outside_the_venues_percent_price_band_is_denied(account: PaperAccount) -> None:
    # The policy's own fat-finger band off: the venue's PERCENT_PRICE filter (5 %) still holds.
    ex = account.guarded(_policy(price_band_pct=None))
    ex.set_leverage(5, SYMBOL)
    price = _tick(_mark(account) * 0.93)
    params = {"stopLossPrice": _tick(_mark(account) * 1.03)}
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "limit", "sell", 0.01, price, params)
    assert denied.value.code == Code.PRICE_FILTER
    _nothing_sent(account)


# --- bad input is a SafeguardError ------------------------------------------------------------

BAD_INPUT = [
    pytest.param(("market", "buy", math.nan, None), "amount", id="nan-amount"),
    pytest.param(("market", "buy", -0.01, None), "amount", id="negative-amount"),
    pytest.param(("market", "buy", "lots", None), "amount", id="string-amount"),
    pytest.param(("limit", "buy", 0.01, "cheap"), "price", id="string-price"),
    pytest.param(("limit", "buy", 0.01, math.inf), "price", id="infinite-price"),
    pytest.param(("limit", "buy", 0.01, None), "price", id="limit-without-price"),
    pytest.param(("market", "BUY", 0.01, None), "side", id="side-spelling"),
    pytest.param(("", "buy", 0.01, None), "type", id="empty-type"),
]


@pytest.mark.parametrize(("args", "field"), BAD_INPUT)
def test_bad_input_is_a_safeguard_error_and_nothing_is_sent(
    account: PaperAccount, ex: Any, args: tuple[Any, ...], field: str
) -> None:
    for call in (ex.create_order, ex.preview):
        with pytest.raises(safeguard.SafeguardError, match=field) as refused:
            call(SYMBOL, *args, {"stopLossPrice": _stop_below(account)})
        assert isinstance(refused.value, ValueError)
        assert isinstance(refused.value, errors.RequestBlocked)
        assert refused.value.code == Code.INVALID_INPUT
    with pytest.raises(safeguard.SafeguardError, match=r"orders\[1\]"):
        ex.create_orders(
            [
                {"symbol": SYMBOL, "type": "market", "side": "buy", "amount": 0.01},
                {"symbol": SYMBOL, "type": args[0], "side": args[1], "amount": args[2],
                 "price": args[3]},
            ]
        )  # fmt: skip
    _nothing_sent(account)


def test_bad_input_is_a_safeguard_error_async(account: PaperAccount) -> None:
    async def scenario() -> None:
        ex = account.guarded(_policy(), asyncio=True)
        with pytest.raises(safeguard.SafeguardError, match="amount"):
            await ex.create_order(SYMBOL, "market", "buy", math.nan)
        await account.aclose()

    asyncio.run(scenario())
    _nothing_sent(account)


def _full_verdict(verdict: Any, code: Code) -> None:
    assert isinstance(verdict, Verdict)
    assert verdict.decision is Decision.DENY
    assert not verdict.allowed
    assert verdict.codes == (code,)
    assert verdict.max_safe_amount == 0.0
    assert verdict.to_dict()["findings"][0]["code"] == code
    with pytest.raises(errors.OrderDenied) as denied:
        verdict.raise_if_denied()
    assert denied.value.code == code


def test_preview_on_a_symbol_the_account_lacks_is_a_full_verdict(
    account: PaperAccount, ex: Any
) -> None:
    ex.load_markets()
    verdict = ex.preview("DOGE/USDT:USDT", "market", "buy", 10.0)
    _full_verdict(verdict, Code.UNKNOWN_SYMBOL)
    assert (verdict.symbol, verdict.side, verdict.amount) == ("DOGE/USDT:USDT", "buy", 10.0)


def test_preview_while_severe_is_a_full_verdict(account: PaperAccount) -> None:
    ex = account.guarded(
        Policy.build(
            risk={"max_leverage": 10},
            degradation={"degraded_error_rate": 0.05, "severe_error_rate": 0.1},
        )
    )
    ex.set_leverage(5, SYMBOL)
    account.set_faults(FaultPlan.parse({"seed": 5, "rules": [
        {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 503,
         "code": -1001, "probability": 0.6}]}))  # fmt: skip
    for _ in range(30):
        with contextlib.suppress(errors.RetriesExhausted):
            ex.fetch_ticker(SYMBOL)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": 1000.0})
    _full_verdict(verdict, Code.SEVERE_REDUCE_ONLY)


# --- the protective stop's id ---------------------------------------------------------------


def test_the_stop_id_is_the_entry_id_plus_sl_and_is_on_the_result(
    account: PaperAccount, ex: Any
) -> None:
    order = _open_long(account, ex)
    entry_id = order["clientOrderId"]
    stop = order["info"][INFO_KEY]
    assert stop["clientOrderId"] == f"{entry_id}-sl"  # what the README tells users to cancel
    assert len(f"{entry_id}-sl") <= 36
    at_venue = {o["clientOrderId"]: o for o in account.orders(VENUE_SYMBOL)}
    assert at_venue[f"{entry_id}-sl"]["type"] == "STOP_MARKET"
    ex.cancel_order(stop["id"], SYMBOL, {"trigger": True})
    assert account.venue.get_order(
        account.api_key, symbol=VENUE_SYMBOL, client_order_id=f"{entry_id}-sl"
    )["status"] in ("CANCELED", "CANCELLED")


def test_a_client_id_too_long_for_its_stop_is_refused(account: PaperAccount, ex: Any) -> None:
    long_id = "my-bot-" + "x" * 27  # 34 characters: "-sl" would not fit in 36
    params = {"stopLossPrice": _stop_below(account), "clientOrderId": long_id}
    with pytest.raises(errors.SafeguardError, match="clientOrderId") as refused:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, params)
    assert refused.value.code == Code.INVALID_INPUT
    _nothing_sent(account)
    # Without a protective stop the same id is Binance's to accept: judged, not refused.
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01, None, {"clientOrderId": "a" * 36})
    assert verdict.codes == (Code.STOP_REQUIRED,)


# --- contradictory arguments ------------------------------------------------------------------


def test_a_client_id_already_in_the_journal_is_refused_before_anything_is_sent(
    account: PaperAccount, ex: Any
) -> None:
    price = _tick(_mark(account) * 0.99)
    params = {"stopLossPrice": _stop_below(account), "clientOrderId": "mine-1"}
    ex.create_order(SYMBOL, "limit", "buy", 0.01, price, params)
    before = account.orders(VENUE_SYMBOL)
    with pytest.raises(errors.InvalidInput, match="mine-1"):
        ex.create_order(SYMBOL, "limit", "buy", 0.02, price, params)
    # An entry whose stop's id is taken (by another entry) is refused before the entry leaves.
    ex.create_order(SYMBOL, "limit", "buy", 0.01, price, {**params, "clientOrderId": "x-sl"})
    before = account.orders(VENUE_SYMBOL)
    with pytest.raises(errors.InvalidInput, match="'x-sl'"):
        ex.create_order(SYMBOL, "limit", "buy", 0.02, price, {**params, "clientOrderId": "x"})
    assert ex.runtime.core.reconciled  # nothing ambiguous happened: no reconcile is owed
    assert account.orders(VENUE_SYMBOL) == before


def test_a_batch_naming_one_client_id_twice_is_refused_whole(
    account: PaperAccount, ex: Any
) -> None:
    stop = {"stopLossPrice": _stop_below(account), "clientOrderId": "twice"}
    order = {"symbol": SYMBOL, "type": "market", "side": "buy", "amount": 0.01, "params": stop}
    with pytest.raises(errors.InvalidInput, match="twice"):
        ex.create_orders([order, dict(order)])
    _nothing_sent(account)


def test_a_client_id_naming_another_open_order_is_not_taken_for_this_one(
    account: PaperAccount, ex: Any
) -> None:
    price = _tick(_mark(account) * 0.99)
    params = {"stopLossPrice": _stop_below(account), "clientOrderId": "mine-1"}
    first = ex.create_order(SYMBOL, "limit", "buy", 0.01, price, params)
    before = account.orders(VENUE_SYMBOL)
    # Another process (or this one after a restart: its journal compacted) reuses the id.
    other = account.guarded(_policy())
    other.set_leverage(5, SYMBOL)
    with pytest.raises(errors.VenueRejected, match="mine-1") as refused:
        other.create_order(SYMBOL, "limit", "buy", 0.03, price, params)
    assert "another" in str(refused.value)
    assert account.orders(VENUE_SYMBOL) == before
    assert [o["clientOrderId"] for o in before] == [first["clientOrderId"], "mine-1-sl"]


def test_post_only_spelled_as_time_in_force_po_is_judged_post_only(
    account: PaperAccount, ex: Any
) -> None:
    # ccxt sends timeInForce "PO" as a post-only (GTX) order: one that would take is denied.
    through = _tick(_mark(account) * 1.01)
    params = {"stopLossPrice": _stop_below(account), "timeInForce": "PO"}
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "limit", "buy", 0.01, through, params)
    assert denied.value.code == Code.POST_ONLY_WOULD_TAKE
    _nothing_sent(account)


@pytest.mark.parametrize(
    "stop_loss", [math.nan, -1.0, "soon", {"triggerPrice": "soon"}, {"triggerPrice": None}]
)
def test_a_malformed_attached_stop_is_invalid_input_like_stop_loss_price(
    account: PaperAccount, ex: Any, stop_loss: Any
) -> None:
    for call in (ex.preview, ex.create_order):
        with pytest.raises(errors.InvalidInput, match="stopLoss"):
            call(SYMBOL, "market", "buy", 0.01, None, {"stopLoss": stop_loss})
    _nothing_sent(account)


def test_an_entry_that_expired_unfilled_leaves_no_orphan_stop(
    account: PaperAccount, ex: Any
) -> None:
    # An IOC limit below the ask fills nothing: a close-all stop placed for it would rest with
    # no position and later close a position some other order opened.
    price = _tick(_mark(account) * 0.99)
    params = {"stopLossPrice": _stop_below(account), "timeInForce": "IOC"}
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price, params)
    assert (order["status"], order["filled"]) == ("expired", 0.0)
    assert INFO_KEY not in order["info"]
    assert [(o["clientOrderId"], o["status"]) for o in account.orders(VENUE_SYMBOL)] == [
        (order["clientOrderId"], "EXPIRED")
    ]


def test_an_entry_whose_outcome_is_unknown_says_its_stop_was_not_placed(
    account: PaperAccount, ex: Any
) -> None:
    account.set_faults({"rules": [
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order", "count": 1,
         "hold_s": 0.05},
        {"kind": "ban", "endpoint": "GET /fapi/v1/order", "count": 1},
    ]})  # fmt: skip
    stop = _stop_below(account)
    params = {"stopLossPrice": stop, "clientOrderId": "maybe"}
    with pytest.raises(errors.OutcomeUnknown) as unknown:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, params)
    # The entry exists (the venue took it) but nothing protects it: the caller must be told.
    assert [o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)] == ["maybe"]
    message = str(unknown.value)
    assert "maybe-sl" in message
    assert "not placed" in message
    assert unknown.value.client_order_id == "maybe"


def test_a_stop_id_held_by_another_stop_is_not_taken_for_this_entrys_stop(
    account: PaperAccount, ex: Any
) -> None:
    # Another process placed entry "x" (filled) and its stop "x-sl" at one price; this one
    # reuses "x" for a new entry whose stop sits elsewhere. The venue refuses the second
    # "x-sl" as a duplicate: the stop found under that id is not this entry's stop.
    other = account.guarded(_policy())
    other.set_leverage(5, SYMBOL)
    theirs = _stop_below(account, 5.0)
    other.create_order(SYMBOL, "market", "buy", 0.01, None,
                       {"stopLossPrice": theirs, "clientOrderId": "x"})  # fmt: skip
    mine = _stop_below(account, 3.0)
    with pytest.raises(errors.ProtectiveStopFailed) as failed:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                        {"stopLossPrice": mine, "clientOrderId": "x"})  # fmt: skip
    assert failed.value.stop_client_order_id == "x-sl"
    assert isinstance(failed.value.__cause__, errors.VenueRejected)
    stops = [o for o in account.orders(VENUE_SYMBOL) if o["type"] == "STOP_MARKET"]
    assert [float(o["stopPrice"]) for o in stops] == [theirs]


def test_an_edit_may_name_its_order_by_the_client_id_the_journal_holds(
    account: PaperAccount,
) -> None:
    hooks = Hooks()
    sent: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, sent.append)
    ex = account.guarded(_policy(), hooks=hooks)
    ex.set_leverage(5, SYMBOL)
    price = _tick(_mark(account) * 0.99)
    params = {"stopLossPrice": _stop_below(account), "clientOrderId": "e1"}
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price, params)
    # An edit names an existing order: its client id is the order's, not a new one.
    with contextlib.suppress(errors.VenueRejected):  # whatever the venue makes of the edit
        ex.edit_order(order["id"], SYMBOL, "limit", "buy", 0.01, _tick(price * 0.999),
                      {"clientOrderId": "e1", "stopLossPrice": params["stopLossPrice"],
                       "reduceOnly": False})  # fmt: skip
    assert [e.method for e in sent if e.method == "edit_order"] != []


def test_an_edit_declaring_its_stop_reaches_the_venue_without_it(account: PaperAccount) -> None:
    # The stop an edit declares is what the verdict judges it with: sent along, the venue
    # refused every such edit (-1104), so under require_stop an edit that adds exposure
    # could never succeed (without the stop the verdict denies it).
    ex = account.guarded(_policy(require_stop=True))
    ex.set_leverage(5, SYMBOL)
    price = _tick(_mark(account) * 0.99)
    stop = _stop_below(account)
    order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price, {"stopLossPrice": stop})
    edited = ex.edit_order(
        order["id"], SYMBOL, "limit", "buy", 0.02, price, {"stopLossPrice": stop}
    )
    assert (edited["id"], edited["amount"]) == (order["id"], 0.02)
    by_type = {o["type"]: o for o in account.orders(VENUE_SYMBOL) if o["status"] == "NEW"}
    assert (by_type["LIMIT"]["orderId"], by_type["LIMIT"]["origQty"]) == (int(order["id"]), "0.020")
    assert float(by_type["STOP_MARKET"]["stopPrice"]) == stop  # the stop is not moved by it


# --- a journal that cannot be written (disk full) -----------------------------------------------


@contextlib.contextmanager
def _disk_full_beyond(path: Path) -> Iterator[None]:
    """No file may grow past ``path``'s current size: the next journal append fails with
    EFBIG, as a full disk fails it with ENOSPC (the process limit is the real OS check)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error, not a kill
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def test_an_order_whose_journal_record_cannot_be_written_is_not_sent(
    account: PaperAccount, ex: Any
) -> None:
    journal = ex.runtime.core.journal.path
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": _stop_below(account)})
    before = account.orders(VENUE_SYMBOL)
    with _disk_full_beyond(journal), pytest.raises(errors.RequestBlocked, match="journal"):
        ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                        {"stopLossPrice": _stop_below(account)})  # fmt: skip
    assert account.orders(VENUE_SYMBOL) == before
    # Room again: the next order goes out (after settling whatever the torn write left).
    ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": _stop_below(account)})
    assert len(account.orders(VENUE_SYMBOL)) == len(before) + 2


def test_a_stop_whose_journal_record_cannot_be_written_raises_with_the_entry(
    account: PaperAccount,
) -> None:
    hooks = Hooks()
    ex = account.guarded(_policy(), hooks=hooks)
    ex.set_leverage(5, SYMBOL)
    journal = ex.runtime.core.journal.path
    full = contextlib.ExitStack()

    def disk_fills_once_the_entry_is_sent(event: RequestEvent) -> None:
        if event.method == "create_order" and event.outcome == "ok" and not full._exit_callbacks:
            full.enter_context(_disk_full_beyond(journal))

    hooks.subscribe(EventKind.REQUEST, disk_fills_once_the_entry_is_sent)
    with full, pytest.raises(errors.ProtectiveStopFailed) as failed:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                        {"stopLossPrice": _stop_below(account)})  # fmt: skip
    entry = failed.value.order
    assert isinstance(failed.value.__cause__, errors.RequestBlocked)
    assert [o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)] == [entry["clientOrderId"]]
    assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.01)}


def test_an_order_whose_journal_record_cannot_be_written_is_not_sent_async(
    account: PaperAccount,
) -> None:
    async def scenario() -> None:
        ex = account.guarded(_policy(), asyncio=True)
        await ex.set_leverage(5, SYMBOL)
        journal = ex.runtime.core.journal.path
        with _disk_full_beyond(journal), pytest.raises(errors.RequestBlocked, match="journal"):
            await ex.create_order(SYMBOL, "market", "buy", 0.01, None,
                                  {"stopLossPrice": _stop_below(account)})  # fmt: skip
        await account.aclose()

    asyncio.run(scenario())
    _nothing_sent(account)
