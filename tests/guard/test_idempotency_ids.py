"""Client order ids and call routing: what makes an order identifiable before it leaves."""

from __future__ import annotations

import math

import ccxt
import pytest

from safeguard.guard._orders import (
    CallKind,
    call_kind,
    check_client_order_id,
    lookup_params,
    new_client_order_id,
    parse_call,
    send_params,
)


def test_generated_ids_are_binance_valid_and_unique() -> None:
    ids = {new_client_order_id("sg-") for _ in range(5000)}
    assert len(ids) == 5000
    for cid in list(ids)[:200]:
        assert cid.startswith("sg-")
        assert len(cid) == 33  # room for the protective stop's "-sl" within Binance's 36
        assert check_client_order_id(cid) == cid


def test_longest_prefix_still_leaves_room_for_the_stop_suffix() -> None:
    cid = new_client_order_id("p" * 16)
    assert len(cid + "-sl") == 36
    with pytest.raises(ValueError, match="prefix"):
        new_client_order_id("p" * 17)


@pytest.mark.parametrize("bad", ["", "x" * 37, "has space", "semi;colon", 123])
def test_invalid_user_ids_are_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="clientOrderId"):
        parse_call("BTC/USDT:USDT", "limit", "buy", 1, 100, {"clientOrderId": bad}, prefix="sg-")


def test_user_id_is_kept_under_either_key_and_sent_once() -> None:
    for key in ("clientOrderId", "newClientOrderId"):
        intent = parse_call("BTC/USDT:USDT", "limit", "buy", 1, 100, {key: "mine-1"}, prefix="x")
        assert intent.client_order_id == "mine-1"
        sent = send_params(intent)
        assert sent == {"clientOrderId": "mine-1"}


@pytest.mark.parametrize(("word", "value"), [("true", True), ("FALSE", False), (True, True)])
def test_reduce_only_is_sent_as_the_bool_the_verdict_read(word: object, value: bool) -> None:
    """ccxt sends a word as it is, and the venue may read "FALSE" otherwise than the verdict
    did: the guard sends the bool it judged the order by."""
    intent = parse_call(
        "BTC/USDT:USDT", "limit", "sell", 1, 100, {"reduceOnly": word}, prefix="sg-"
    )
    assert intent.reduce_only is value
    assert send_params(intent) == {"reduceOnly": value, "clientOrderId": intent.client_order_id}


def test_two_different_ids_in_params_are_refused() -> None:
    with pytest.raises(ValueError, match="two different"):
        parse_call(
            "BTC/USDT:USDT",
            "limit",
            "buy",
            1,
            100,
            {"clientOrderId": "a", "newClientOrderId": "b"},
            prefix="sg-",
        )


@pytest.mark.parametrize(
    ("field", "args"),
    [
        ("amount", ("BTC/USDT:USDT", "limit", "buy", math.nan, 100)),
        ("amount", ("BTC/USDT:USDT", "limit", "buy", -1, 100)),
        ("amount", ("BTC/USDT:USDT", "limit", "buy", 0, 100)),
        ("amount", ("BTC/USDT:USDT", "limit", "buy", True, 100)),
        ("price", ("BTC/USDT:USDT", "limit", "buy", 1, math.inf)),
        ("side", ("BTC/USDT:USDT", "limit", "BUY", 1, 100)),
        ("symbol", ("", "limit", "buy", 1, 100)),
    ],
)
def test_bad_numbers_and_words_name_the_field(field: str, args: tuple[object, ...]) -> None:
    with pytest.raises(ValueError, match=field):
        parse_call(*args, prefix="sg-")


def test_stop_params_are_checked_too() -> None:
    with pytest.raises(ValueError, match="stopLossPrice"):
        parse_call(
            "BTC/USDT:USDT", "limit", "buy", 1, 100, {"stopLossPrice": math.nan}, prefix="sg-"
        )


def test_reduce_only_and_conditional_are_read_from_params() -> None:
    plain = parse_call("BTC/USDT:USDT", "market", "sell", 1, None, {}, prefix="sg-")
    reducing = parse_call(
        "BTC/USDT:USDT", "market", "sell", 1, None, {"reduceOnly": "true"}, prefix="sg-"
    )
    stop = parse_call(
        "BTC/USDT:USDT", "market", "sell", 1, None, {"stopLossPrice": 50}, prefix="sg-"
    )
    assert (plain.reduce_only, reducing.reduce_only) == (False, True)
    assert (plain.conditional, stop.conditional) == (False, True)


def test_lookup_params_match_what_ccxt_binance_sends() -> None:
    """fetch_order with these params must query by client id (origClientOrderId / clientAlgoId)."""
    ex = ccxt.binanceusdm({"apiKey": "k" * 64, "secret": "s" * 64})
    ex.markets_by_id = None
    sent: list[dict[str, object]] = []

    def capture(
        path: str,
        api: object = "public",
        method: str = "GET",
        params: object = None,
        headers: object = None,
        body: object = None,
        config: object = None,
    ) -> object:
        sent.append({"path": path, "params": dict(params or {})})  # type: ignore[call-overload]
        return {"orderId": 1, "symbol": "BTCUSDT", "clientOrderId": "sg-1", "status": "NEW"}

    ex.load_markets = lambda *a, **k: ex.markets  # type: ignore[method-assign]
    ex.set_markets(
        [
            {
                "id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "base": "BTC", "quote": "USDT",
                "settle": "USDT", "type": "swap", "swap": True, "linear": True, "inverse": False,
                "contract": True, "spot": False, "future": False, "option": False, "info": {},
            }
        ]
    )  # fmt: skip
    ex.request = capture  # type: ignore[method-assign]
    ex.fetch_order(
        "ignored", "BTC/USDT:USDT", lookup_params("binanceusdm", "sg-1", conditional=False)
    )
    ex.fetch_order(
        "ignored", "BTC/USDT:USDT", lookup_params("binanceusdm", "sg-2", conditional=True)
    )
    assert sent[0]["path"] == "order"
    assert sent[0]["params"]["origClientOrderId"] == "sg-1"
    assert "orderId" not in sent[0]["params"]
    assert sent[1]["path"] == "algoOrder"
    assert sent[1]["params"]["clientAlgoId"] == "sg-2"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("fetch_ticker", CallKind.READ),
        ("load_markets", CallKind.READ),
        ("create_order", CallKind.ORDER),
        ("edit_order", CallKind.ORDER),
        ("create_orders", CallKind.ORDER),
        ("create_limit_order", CallKind.HELPER),
        ("create_stop_loss_order", CallKind.HELPER),
        ("edit_order_with_client_order_id", CallKind.HELPER),
        ("cancel_order", CallKind.CANCEL),
        ("cancel_all_orders", CallKind.CANCEL),
        ("set_leverage", CallKind.SETTING),
        ("withdraw", CallKind.WRITE),
        ("fapiPrivatePostOrder", CallKind.BLOCKED),
        ("fapiprivate_post_batchorders", CallKind.BLOCKED),
        ("fapiPrivateDeleteOrder", CallKind.CANCEL),
        ("fapiPublicGetTickerPrice", CallKind.READ),
        ("create_order_ws", CallKind.BLOCKED),
        ("amount_to_precision", CallKind.PURE),
        ("create_order_request", CallKind.PURE),
        ("edit_contract_order", CallKind.HELPER),
        ("market", CallKind.PURE),
    ],
)
def test_call_kinds(name: str, kind: CallKind) -> None:
    assert call_kind(name) is kind
