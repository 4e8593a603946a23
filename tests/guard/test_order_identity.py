"""An order's identity and meaning, decided from the call alone: what a ccxt method is, the
intent it carries (checked field by field), its client id, and how the venue finds it again."""

from __future__ import annotations

import math
from typing import Any

import pytest

from safeguard._errors import InvalidInput
from safeguard.guard._orders import (
    MAX_ENTRY_ID,
    STOP_SUFFIX,
    CallKind,
    OrderCall,
    call_kind,
    check_setting,
    check_shape,
    lookup_params,
    new_client_order_id,
    order_client_id,
    parse_call,
    raw_kind,
    recv_window_s,
)

SYMBOL = "BTC/USDT:USDT"


def _refused_field(*args: Any, **kwargs: Any) -> Any:
    """The ``field`` of the InvalidInput ``parse_call(*args)`` raises (it must raise)."""
    with pytest.raises(InvalidInput) as refused:
        parse_call(*args, prefix="t-", **kwargs)
    return refused.value.field


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("_private_helper", CallKind.PURE),
        ("fetch_balance", CallKind.READ),
        ("cancel_all_orders", CallKind.CANCEL),
        ("fapiPrivateGetAccount", CallKind.READ),
        ("fapiprivate_get_account", CallKind.READ),
        ("fapiPrivateDeleteOrder", CallKind.CANCEL),
        ("fapiPrivateDeleteListenKey", CallKind.WRITE),
        ("fapiPrivatePostOrder", CallKind.BLOCKED),
        ("fapiPrivatePostLeverage", CallKind.WRITE),
        ("dapiPrivatePostOrder", CallKind.BLOCKED),
        ("papiPostUmOrder", CallKind.BLOCKED),
        ("sapiPostAssetTransfer", CallKind.WRITE),
        # the verb is a word of its own: "stakin-g eth" holds "get" but is a POST, and a write
        # taken for a read was sent again after a timeout that may have carried it
        ("sapiPostEthStakingEthStake", CallKind.WRITE),
        ("sapiV2PostEthStakingEthStake", CallKind.WRITE),
        ("sapi_post_eth_staking_eth_redeem", CallKind.WRITE),
        ("sapiv3_post_asset_getuserasset", CallKind.WRITE),
        ("sapiGetStakingProductList", CallKind.READ),
        ("privatePostOrder", CallKind.BLOCKED),
        ("publicGetTime", CallKind.READ),
        ("v1PrivatePostOrder", CallKind.BLOCKED),
        ("v1_public_get_time", CallKind.READ),
        ("amount_to_precision", CallKind.PURE),
        ("milliseconds", CallKind.PURE),
        ("watch_ticker", CallKind.STREAM),
        ("un_watch_ticker", CallKind.STREAM),
    ],
)
def test_every_method_is_classified_by_what_it_can_do(name: str, kind: CallKind) -> None:
    assert call_kind(name) is kind


def test_an_intent_carries_exactly_what_was_asked() -> None:
    intent = parse_call(
        SYMBOL, "limit", "sell", "0.5", 61_000, {"reduceOnly": True, "recvWindow": 5000},
        prefix="t-",
    )  # fmt: skip
    assert (intent.symbol, intent.type, intent.side) == (SYMBOL, "limit", "sell")
    assert (intent.amount, intent.price) == (0.5, 61_000.0)
    assert intent.edit_of is None
    assert intent.client_order_id.startswith("t-")
    assert intent.describe() == {
        "type": "limit",
        "side": "sell",
        "amount": 0.5,
        "price": 61_000.0,
        "reduce_only": True,
        "conditional": False,
        "edit_of": None,
        "recv_window": 5000,
    }


def test_an_edit_keeps_the_orders_identity_and_may_leave_the_amount_out() -> None:
    intent = parse_call(SYMBOL, "limit", "buy", None, 60_000, None, prefix="t-", edit_of=123)
    assert intent.edit_of == "123"
    assert intent.client_order_id == ""
    assert intent.amount is None
    assert intent.describe()["edit_of"] == "123"
    with pytest.raises(ValueError, match="amount is required"):
        parse_call(SYMBOL, "limit", "buy", None, 60_000, None, prefix="t-")


@pytest.mark.parametrize(
    ("args", "field"),
    [
        ((SYMBOL, "", "buy", 1.0), "type"),
        ((SYMBOL, 3, "buy", 1.0), "type"),
        (("", "market", "buy", 1.0), "symbol"),
        ((SYMBOL, "market", "hold", 1.0), "side"),
        ((SYMBOL, "market", "buy", 0.0), "amount"),
        ((SYMBOL, "market", "buy", True), "amount"),
        ((SYMBOL, "market", "buy", "lots"), "amount"),
        ((SYMBOL, "market", "buy", [1.0]), "amount"),
        ((SYMBOL, "market", "buy", float("nan")), "amount"),
        ((SYMBOL, "limit", "buy", 1.0, -5.0), "price"),
        ((SYMBOL, "market", "buy", 1.0, None, {"triggerPrice": None, "stopPrice": 0}),
         "params.stopPrice"),
        ((SYMBOL, "market", "buy", 1.0, None, {"recvWindow": "soon"}), "params.recvWindow"),
        ((SYMBOL, "market", "buy", 1.0, None, {"recvWindow": -1}), "params.recvWindow"),
        ((SYMBOL, "market", "buy", 1.0, None, [("a", 1)]), "params"),
        ((SYMBOL, "market", "buy", 1.0, None, {"clientOrderId": "a1", "newClientOrderId": "b2"}),
         "params.clientOrderId"),
    ],
)  # fmt: skip
def test_a_bad_field_is_refused_by_name(args: tuple[Any, ...], field: str) -> None:
    assert _refused_field(*args) == field


@pytest.mark.parametrize("edit_of", [True, 1.5, ["1"]])
def test_an_edit_must_name_its_order_by_an_id(edit_of: Any) -> None:
    with pytest.raises(InvalidInput, match="id must be a string") as refused:
        parse_call(SYMBOL, "limit", "buy", 1.0, 60_000, None, prefix="t-", edit_of=edit_of)
    assert refused.value.field == "id"


def test_inside_ccxts_stop_helpers_a_stop_loss_price_is_the_orders_own_trigger() -> None:
    """``protect=False``: stopLossPrice is no protective stop but the trigger of the order
    itself, which must then only reduce."""
    params = {"stopLossPrice": 59_000}
    assert (
        _refused_field(SYMBOL, "market", "sell", 0.01, None, params, protect=False)
        == "params.stopLossPrice"
    )
    entry = parse_call(SYMBOL, "market", "buy", 0.01, None, params, prefix="t-")
    assert entry.params == params  # an entry's protective stop


def test_a_trigger_order_needs_a_real_trigger_price() -> None:
    for key in ("triggerPrice", "stopLossPrice", "takeProfitPrice", "callbackRate"):
        with pytest.raises(ValueError, match=key):
            parse_call(SYMBOL, "market", "sell", 1.0, None, {key: "x"}, prefix="t-")
    ok = parse_call(
        SYMBOL, "stop_market", "sell", 1.0, None, {"triggerPrice": 1, "reduceOnly": True},
        prefix="t-",
    )  # fmt: skip
    assert ok.conditional


def test_a_client_order_id_is_unique_and_fits_the_venue_whatever_the_prefix() -> None:
    # MAX_ENTRY_ID long, so that its protective stop's id (+ "-sl") still fits Binance's 36.
    assert MAX_ENTRY_ID + len(STOP_SUFFIX) == 36
    for prefix in ("", "p-", "a" * 16):
        made = {new_client_order_id(prefix) for _ in range(50)}
        assert len(made) == 50
        assert all(len(cid) == MAX_ENTRY_ID and cid.startswith(prefix) for cid in made)
    with pytest.raises(ValueError, match="at most 16"):
        new_client_order_id("a" * 17)


@pytest.mark.parametrize(
    ("order", "found"),
    [
        ({"clientOrderId": "c1", "info": {"clientOrderId": "other"}}, "c1"),
        ({"clientOrderId": None, "info": {"clientOrderId": "c2"}}, "c2"),
        ({"info": {"clientAlgoId": "c3"}}, "c3"),
        ({"info": {"newClientOrderId": "c4"}}, "c4"),
        ({"info": {"clientOrderId": "", "clientAlgoId": "c5"}}, "c5"),
        ({"info": {"orderId": 1}}, None),
        ({"info": None}, None),
        ({}, None),
        ("c1", None),
    ],
)
def test_the_client_id_is_read_from_the_order_or_its_raw_answer(order: Any, found: Any) -> None:
    assert order_client_id(order) == found


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        (True, None),
        ("oops", None),
        (5000, 5.0),
        ("2500", 2.5),
        (0, 0.0),
        (-1, None),
        (float("inf"), None),
    ],
)
def test_a_recv_window_in_milliseconds_becomes_seconds(value: Any, seconds: Any) -> None:
    assert recv_window_s(value) == seconds


def test_an_order_is_looked_up_by_client_id_the_way_the_venue_takes_it() -> None:
    assert lookup_params("binanceusdm", "c1", conditional=False) == {"origClientOrderId": "c1"}
    assert lookup_params("binanceusdm", "c1", conditional=True) == {
        "trigger": True,
        "clientAlgoId": "c1",
    }
    assert lookup_params("bybit", "c1", conditional=True) == {"clientOrderId": "c1"}


def test_an_intent_built_by_hand_describes_itself_the_same_way() -> None:
    intent = OrderCall(SYMBOL, "market", "buy", 1.0, None, {"closePosition": "true"})
    assert intent.reduce_only
    assert intent.describe()["reduce_only"] is True


@pytest.mark.parametrize(
    ("name", "args", "kwargs", "kind"),
    [
        ("request", ("order", "fapiPrivate"), {}, CallKind.READ),  # ccxt's default: GET
        ("request", ("order", "fapiPrivate", "delete"), {}, CallKind.CANCEL),
        ("fetch2", ("order", "fapiPrivate", "POST"), {}, CallKind.BLOCKED),
        ("fetch", ("https://x/fapi/v1/order",), {"method": "PUT"}, CallKind.BLOCKED),
        ("fetch", ("https://x/fapi/v1/time", "get"), {}, CallKind.READ),
        ("request", ("order", "fapiPrivate", None), {}, CallKind.BLOCKED),
        ("request", ("order", "fapiPrivate", b"GET"), {}, CallKind.BLOCKED),
    ],
)
def test_a_raw_request_is_what_its_http_method_says(
    name: str, args: tuple[Any, ...], kwargs: dict[str, Any], kind: CallKind
) -> None:
    assert raw_kind(name, args, kwargs) is kind


@pytest.mark.parametrize(
    ("params", "what"),
    [
        ({"quantity": 1}, "would change the amount the verdict judges"),
        ({"Quantity": 1}, "would change the amount the verdict judges"),
        ({"SIDE": "SELL"}, "would change the side the verdict judges"),
        ({"positionSide": "LONG"}, "would change the position side the verdict judges"),
        ({"marginMode": "cross"}, "would change the account the verdict judges"),
        ({"icebergQty": 1}, "is not a parameter the guard passes to the venue"),
        ({None: 1}, "is not a parameter the guard passes to the venue"),
    ],
)
def test_a_refused_param_says_what_it_would_change_in_any_spelling(
    params: dict[Any, Any], what: str
) -> None:
    """The refusal tells the caller what to do: a param that changes what the verdict judges
    (spelled in any case) belongs in create_order's own arguments; any other is not passed."""
    with pytest.raises(ValueError, match=what) as refused:
        parse_call(SYMBOL, "market", "buy", 1.0, None, params, prefix="t-")
    assert refused.value.field == f"params.{next(iter(params))}"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("type_", "params", "field"),
    [
        ("market", {"timeInForce": "GTC"}, "params.timeInForce"),
        ("market", {"postOnly": True}, "params.postOnly"),
        ("limit", {"postOnly": True, "timeInForce": "GTC"}, "params.timeInForce"),
        ("limit", {"postOnly": True, "timeInForce": "IOC"}, "params.timeInForce"),
        ("stop_market", {"triggerPrice": 1, "reduceOnly": True, "priceProtect": "maybe"},
         "params.priceProtect"),
    ],
)  # fmt: skip
def test_a_time_in_force_the_order_cannot_take_is_refused_naming_the_param(
    type_: str, params: dict[str, Any], field: str
) -> None:
    price = 60_000.0 if type_ == "limit" else None
    assert _refused_field(SYMBOL, type_, "sell", 1.0, price, params) == field


@pytest.mark.parametrize("tif", ["GTX", "PO"])
def test_post_only_with_the_time_in_force_ccxt_sends_for_it_is_one_post_only_order(
    tif: str,
) -> None:
    intent = parse_call(
        SYMBOL, "limit", "buy", 1.0, 60_000.0, {"postOnly": True, "timeInForce": tif}, prefix="t-"
    )
    assert intent.post_only


@pytest.mark.parametrize("leverage", ["5", None, True, math.nan, math.inf, 0.5, 0])
def test_a_leverage_ccxt_cannot_use_is_refused_by_name_before_it_is_sent(leverage: Any) -> None:
    for args, kwargs in (((leverage, SYMBOL), {}), ((), {"leverage": leverage, "symbol": SYMBOL})):
        with pytest.raises(InvalidInput) as refused:
            check_setting("set_leverage", args, kwargs)
        assert refused.value.field == "leverage"


def test_a_usable_leverage_and_any_other_setting_pass_as_given() -> None:
    check_setting("set_leverage", (5, SYMBOL), {})
    check_setting("set_leverage", (), {"leverage": 1.0, "symbol": SYMBOL})
    check_setting("set_margin_mode", ("isolated", SYMBOL), {})


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"postOnly": "true"}, "params.postOnly"),  # ccxt sends a word as an unknown param
        ({"timeInForce": "DAY"}, "params.timeInForce"),
        ({"workingType": "LAST_PRICE"}, "params.workingType"),
        ({"positionSide": "LONG"}, "params.positionSide"),
        ({"stopLoss": {"triggerPrice": -1.0}}, "params.stopLoss"),
        ({"stopLoss": {"triggerPrice": 59_000, "type": "limit"}}, "params.stopLoss"),
    ],
)
def test_a_passed_param_with_a_value_ccxt_would_send_otherwise_is_refused_by_name(
    params: dict[str, Any], field: str
) -> None:
    assert _refused_field(SYMBOL, "limit", "buy", 0.01, 60_000, params) == field


@pytest.mark.parametrize(
    "params",
    [
        {"positionSide": "BOTH"},
        {"postOnly": True, "timeInForce": "GTX"},
        {"timeInForce": "IOC", "workingType": "MARK_PRICE"},
        {"stopLoss": {"triggerPrice": 59_000}},
        {"stopLoss": 59_000},
    ],
)
def test_passed_params_with_values_ccxt_sends_as_given_are_kept(params: dict[str, Any]) -> None:
    intent = parse_call(SYMBOL, "limit", "buy", 0.01, 60_000, params, prefix="t-")
    assert intent.params == params


def test_an_order_type_the_guard_cannot_judge_is_refused_naming_the_type() -> None:
    assert _refused_field(SYMBOL, "stop_loss_limit", "buy", 0.01, 60_000, None) == "type"


def test_an_entry_checked_on_its_own_is_held_to_its_protective_stops_id_length() -> None:
    """check_shape protects by default: an entry with a stop may not take an id its stop's
    (the entry's + '-sl') would not fit."""
    long_id = "x" * (MAX_ENTRY_ID + 1)
    entry = OrderCall(
        SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": 59_000}, client_order_id=long_id
    )
    with pytest.raises(InvalidInput) as refused:
        check_shape(entry)
    assert refused.value.field == "params.clientOrderId"


@pytest.mark.parametrize(
    ("order", "field"),
    [
        (("market", 0.01, None, {"stopLoss": 59_000, "reduceOnly": True}), "params.stopLoss"),
        (
            ("trailing_stop_market", 0.01, None,
             {"triggerPrice": 59_000, "callbackRate": 1.0, "reduceOnly": True}),
            "params.callbackRate",
        ),
    ],
)  # fmt: skip
def test_an_order_that_cannot_carry_what_its_params_say_is_refused_by_name(
    order: tuple[Any, ...], field: str
) -> None:
    """A protective stop only on a new entry; one trigger per order (ccxt would send one)."""
    type_, amount, price, params = order
    assert _refused_field(SYMBOL, type_, "sell", amount, price, params) == field


def test_a_trailing_stop_that_only_reduces_is_one_trigger_order() -> None:
    params = {"callbackRate": 1.0, "reduceOnly": True}
    intent = parse_call(SYMBOL, "trailing_stop_market", "sell", 0.01, None, params, prefix="t-")
    assert intent.conditional
    assert intent.params == params


REDUCING = {"reduceOnly": True}


@pytest.mark.parametrize(
    ("type_", "price", "params", "field"),
    [
        ("limit", None, {}, "price"),  # a limit order needs its price
        ("market", 60_000, {}, "price"),  # ccxt would drop it without a word
        ("limit", 60_000, {"activationPrice": 59_000}, "params.activationPrice"),
        ("market", None, {"triggerPrice": 59_000}, "params.triggerPrice"),  # not reduce-only
        ("stop_market", None, {"triggerPrice": 59_000}, "params.triggerPrice"),
        ("stop_market", None, {}, "type"),
        ("stop_market", None, REDUCING, "type"),  # no trigger
        ("limit", 60_000, {"callbackRate": 1.0, **REDUCING}, "type"),  # trailing, not market
        ("trailing_stop_market", None, {"triggerPrice": 59_000, **REDUCING}, "params.callbackRate"),
    ],
)
def test_an_order_whose_shape_ccxt_would_send_otherwise_is_refused_naming_the_field(
    type_: str, price: float | None, params: dict[str, Any], field: str
) -> None:
    assert _refused_field(SYMBOL, type_, "sell", 0.01, price, params) == field


@pytest.mark.parametrize("type_", ["market", "trailing_stop_market"])
def test_a_reduce_only_trailing_stop_is_sent_as_a_market_or_trailing_stop_market_order(
    type_: str,
) -> None:
    params = {"callbackRate": 1.0, "activationPrice": 61_000, **REDUCING}
    intent = parse_call(SYMBOL, type_, "sell", 0.01, None, params, prefix="t-")
    assert (intent.type, intent.params) == (type_, params)


@pytest.mark.parametrize(
    ("amount", "params", "field"),
    [
        (None, {}, "amount"),  # required for a new order
        (0.01, {"clientOrderId": "not an id!"}, "params.clientOrderId"),
    ],
)
def test_a_missing_amount_or_a_client_id_the_venue_refuses_is_named(
    amount: float | None, params: dict[str, Any], field: str
) -> None:
    assert _refused_field(SYMBOL, "market", "buy", amount, None, params) == field
