"""The two transports cannot disagree: the same calls on twin venues give identical results.

Two venues built from the same seed on the same simulated clock are driven through the same
script of ccxt calls, one over loopback HTTP and one in process. Every parsed result must be
equal field for field (ids, prices, timestamps, ``info``), every failure the same ccxt class
with the same venue body, and the rate-limit headers the same.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._engine import Venue
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"
KEY, SECRET = "twin-key", "twin-secret"
FAULTS = {
    "seed": 4,
    "rules": [
        {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "probability": 0.3},
        {"kind": "error", "endpoint": "GET /fapi/v1/depth", "status": 502, "body": "html"},
    ],
}
HEADERS = ("X-MBX-USED-WEIGHT-1M", "X-MBX-ORDER-COUNT-10S", "X-MBX-ORDER-COUNT-1M", "Retry-After")


def _twin(start: float) -> tuple[Venue, Dialect]:
    venue = Venue(clock=ManualClock(start))
    venue.create_account(KEY, SECRET, wallet=20_000.0)
    return venue, Dialect(venue, faults=FaultPlan.parse(FAULTS))


@pytest.fixture
def twins() -> Iterator[tuple[tuple[Venue, Any], tuple[Venue, Any]]]:
    start = time.time()
    http_venue, http_dialect = _twin(start)
    local_venue, local_dialect = _twin(start)
    with VenueServer(http_venue, dialect=http_dialect) as server:
        yield (
            (http_venue, ccxt_client(server.url, KEY, SECRET)),
            (local_venue, inprocess_client(local_dialect, KEY, SECRET)),
        )


Step = Callable[[Any, Venue], Any]


def _bid(ex: Any, venue: Venue, symbol: str, factor: float) -> float:
    bid = float(venue.book_ticker(ex.market(symbol)["id"])[0]["bidPrice"])
    return float(ex.price_to_precision(symbol, bid * factor))


def _limit(factor: float, **params: Any) -> Step:
    def step(ex: Any, venue: Venue) -> Any:
        return ex.create_order(BTC, "limit", "buy", 0.02, _bid(ex, venue, BTC, factor), params)

    return step


def _stop(ex: Any, venue: Venue) -> Any:
    trigger = _bid(ex, venue, BTC, 0.9)
    params = {"stopPrice": trigger, "reduceOnly": True, "clientOrderId": "p-3"}
    return ex.create_order(BTC, "STOP_MARKET", "sell", 0.05, None, params)


CID0, CID4 = {"clientOrderId": "p-0"}, {"clientOrderId": "p-4"}
SCRIPT: list[tuple[str, Step]] = [
    ("load_markets", lambda ex, v: ex.load_markets()),
    ("fetch_time", lambda ex, v: ex.fetch_time()),
    *[(f"fetch_ticker {i}", lambda ex, v: ex.fetch_ticker(BTC)) for i in range(6)],
    ("fetch_order_book", lambda ex, v: ex.fetch_order_book(BTC, 5)),
    ("fetch_order_book again", lambda ex, v: ex.fetch_order_book(ETH, 10)),
    ("fetch_bids_asks", lambda ex, v: ex.fetch_bids_asks([BTC, ETH])),
    ("fetch_funding_rate", lambda ex, v: ex.fetch_funding_rate(BTC)),
    ("set_leverage", lambda ex, v: ex.set_leverage(10, BTC)),
    # explicit client order ids: ccxt would otherwise make random ones, different per twin
    ("market buy", lambda ex, v: ex.create_order(BTC, "market", "buy", 0.05, None, CID0)),
    ("advance", lambda ex, v: v.advance(30)),
    ("limit rests", _limit(0.95, clientOrderId="p-2")),
    ("post-only would take", _limit(1.003, postOnly=True, clientOrderId="p-5")),
    ("stop", _stop),
    ("duplicate id", _limit(0.95, clientOrderId="p-2")),
    ("too big", lambda ex, v: ex.create_order(ETH, "market", "buy", 900, None, CID4)),
    ("fetch_open_orders", lambda ex, v: ex.fetch_open_orders(BTC)),
    ("fetch_order", lambda ex, v: ex.fetch_order(None, BTC, {"clientOrderId": "p-2"})),
    (
        "fetch stop",
        lambda ex, v: ex.fetch_order(None, BTC, {"clientOrderId": "p-3", "trigger": True}),
    ),
    ("fetch_positions", lambda ex, v: ex.fetch_positions()),
    ("fetch_balance", lambda ex, v: ex.fetch_balance()),
    ("advance again", lambda ex, v: v.advance(600)),
    ("fetch_trades", lambda ex, v: ex.fetch_trades(BTC)),
    ("cancel", lambda ex, v: ex.cancel_order(None, BTC, {"clientOrderId": "p-2"})),
    ("cancel again", lambda ex, v: ex.cancel_order(None, BTC, {"clientOrderId": "p-2"})),
    ("cancel_all", lambda ex, v: ex.cancel_all_orders(BTC)),
    ("set_margin_mode", lambda ex, v: ex.set_margin_mode("isolated", ETH)),
    ("set_margin_mode again", lambda ex, v: ex.set_margin_mode("isolated", ETH)),
    ("tiers", lambda ex, v: ex.fetch_leverage_tiers([ETH])),
]


def _outcome(ex: Any, venue: Venue, step: Step) -> tuple[str, Any, dict[str, str]]:
    try:
        result: Any = ("ok", step(ex, venue))
    except ccxt.BaseError as error:
        # ccxt puts the URL in some messages; the venue's own body is what must agree.
        body = re.search(r"\{.*\}", str(error))
        result = (type(error).__name__, json.loads(body.group()) if body else None)
    headers = ex.last_response_headers or {}
    picked = {name: headers[name] for name in HEADERS if name in headers}
    return result[0], result[1], picked


def test_http_and_in_process_agree_call_for_call(
    twins: tuple[tuple[Venue, Any], tuple[Venue, Any]],
) -> None:
    (http_venue, over_http), (local_venue, in_process) = twins
    kinds = set()
    for name, step in SCRIPT:
        remote = _outcome(over_http, http_venue, step)
        local = _outcome(in_process, local_venue, step)
        assert remote == local, name
        kinds.add(remote[0])
    # the script really went through successes and several kinds of failure
    assert {"ok", "OrderNotFillable", "InvalidOrder", "InsufficientFunds", "OrderNotFound"} <= kinds
    assert {"OperationFailed", "ExchangeNotAvailable", "MarginModeAlreadySet"} <= kinds
    assert http_venue.events == local_venue.events
