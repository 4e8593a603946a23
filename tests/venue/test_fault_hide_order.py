"""The ``hide_order`` fault: the order look-up misses a live order that open orders still list."""

from __future__ import annotations

from collections.abc import Iterator

import ccxt
import pytest

from safeguard.testing import PaperAccount, paper_account
from safeguard.venue._faults import FaultPlan, HideOrderRule

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    paper = paper_account(wallet=100_000.0)
    yield paper
    paper.close()


def _resting_buy(client: ccxt.Exchange) -> dict[str, object]:
    mark = float(client.fetch_ticker(SYMBOL)["last"])
    return dict(client.create_order(SYMBOL, "limit", "buy", 0.01, round(mark * 0.97, 1)))


def test_the_rule_parses_with_the_order_look_up_as_its_endpoint() -> None:
    plan = FaultPlan.parse({"rules": [{"kind": "hide_order", "count": 2}]})
    [rule] = plan.rules
    assert isinstance(rule, HideOrderRule)
    assert rule.matches("GET /fapi/v1/order")
    assert not rule.matches("GET /fapi/v1/openOrders")


def test_a_live_order_is_hidden_from_the_look_up_but_listed_as_open(
    account: PaperAccount,
) -> None:
    client = account.client()
    client.load_markets()
    order = _resting_buy(client)
    account.set_faults({"rules": [{"kind": "hide_order"}]})
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(order["id"], SYMBOL)
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order(None, SYMBOL, {"origClientOrderId": order["clientOrderId"]})
    assert [o["id"] for o in client.fetch_open_orders(SYMBOL)] == [order["id"]]
    assert account.faults_fired() == [2]


def test_orders_that_are_not_live_get_their_real_answer(account: PaperAccount) -> None:
    client = account.client()
    client.load_markets()
    filled = client.create_order(SYMBOL, "market", "buy", 0.01)
    cancelled = _resting_buy(client)
    client.cancel_order(cancelled["id"], SYMBOL)
    account.set_faults({"rules": [{"kind": "hide_order"}]})
    assert client.fetch_order(filled["id"], SYMBOL)["status"] == "closed"
    assert client.fetch_order(cancelled["id"], SYMBOL)["status"] == "canceled"
    with pytest.raises(ccxt.OrderNotFound):
        client.fetch_order("123456789", SYMBOL)  # truly absent: the venue's own -2013
