"""The venue never crashes on input and never half-applies a refused request.

Hypothesis throws random methods, paths, parameters, bodies and headers at the dialect, many
of them correctly signed so they get past authentication into parameter decoding and the
engine. Every answer must be well-formed JSON; every refusal a ``{"code", "msg"}`` with an
HTTP 4xx and no change to the account; never a 500 (which only an unhandled exception makes).
A few random requests also go over real loopback HTTP, raw bytes included.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeguard._clock import ManualClock
from safeguard.venue._dialect import ROUTES, Delivery, Dialect, Request, Response
from safeguard.venue._engine import Venue
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer
from safeguard.venue._signing import sign

NOW = 1_750_000_000.0
KEY, SECRET = "fuzz-key", "fuzz-secret"

PARAM_NAMES = sorted(
    {
        "symbol", "side", "type", "quantity", "price", "stopPrice", "triggerPrice",
        "timeInForce", "reduceOnly", "workingType", "positionSide", "newClientOrderId",
        "clientAlgoId", "algoType", "newOrderRespType", "orderId", "origClientOrderId",
        "algoId", "limit", "leverage", "marginType", "countdownTime", "fromId", "startTime",
        "endTime", "recvWindow", "closePosition", "interval", "pair", "contractType",
        "incomeType", "batchOrders", "amount", "page", "autoCloseType", "callbackRate",
    }
)  # fmt: skip
VALUES = st.one_of(
    st.sampled_from(
        [
            "BTCUSDT", "ETHUSDT", "DOGEUSDT", "btcusdt", "BUY", "SELL", "buy", "LIMIT", "MARKET",
            "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "GTC", "IOC", "FOK", "GTX", "GTD",
            "true", "false", "TRUE", "yes", "MARK_PRICE", "CONTRACT_PRICE", "BOTH", "LONG",
            "ISOLATED", "CROSSED", "CONDITIONAL", "RESULT", "ACK", "0", "-1", "0.001", "0.01",
            "1", "5", "20", "100", "1000", "90000", "90000.1", "90000.15", "1e3", "nan", "inf",
            "-0.01", "0.0000000001", "99999999999999999999999", "", " ", "1000000001",
            "1m", "1h", "1w", "7m", "1M", "PERPETUAL", "CURRENT_QUARTER", "COMMISSION",
            "FUNDING_FEE", "2", "1500", "1501", "TRAILING_STOP_MARKET", "TAKE_PROFIT",
            '[{"symbol":"BTCUSDT","side":"BUY","type":"MARKET","quantity":"0.01"}]',
            '[{"symbol":"BTCUSDT","side":"BUY","type":"LIMIT","quantity":1,"price":null}]',
            "[1, 2]", "[]", "{}", '[{"a": {"b": []}}]', "[" * 50,
        ]
    ),
    st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)  # fmt: skip
PATHS = st.one_of(
    st.sampled_from(sorted({path for _, path in ROUTES}) * 3),
    st.sampled_from(["/", "/fapi/v1/", "/fapi/v2/account", "/admin/faults", "/admin/x", "//"]),
    st.text(max_size=20).map(lambda t: "/" + t),
)
METHODS = st.sampled_from(["GET", "POST", "DELETE"] * 3 + ["PUT", "PATCH", "get", "HEAD"])


@pytest.fixture(scope="module")
def venue() -> Venue:
    venue = Venue(clock=ManualClock(NOW))
    venue.create_account(KEY, SECRET, wallet=5_000.0)
    return venue


@pytest.fixture(scope="module")
def dialect(venue: Venue) -> Dialect:
    return Dialect(venue, auth_clock=ManualClock(NOW), limits=RateLimits(10**9, 10**9, 10**9))


def _snapshot(venue: Venue) -> Any:
    return (
        venue.open_orders(KEY, symbol=None),
        venue.position_risk(KEY, None),
        venue.wallet(KEY),
        {s: venue.all_orders(KEY, symbol=s) for s in venue.markets},
    )


def _assert_well_formed(answer: Response) -> Any:
    assert answer.delivery is Delivery.ANSWER
    assert answer.status != 500, answer.body
    assert answer.status in (200, 400, 401, 403, 404, 429, 418), answer.status
    assert answer.headers["Content-Type"].startswith("application/json")
    payload = json.loads(answer.body)
    if answer.status != 200:
        assert isinstance(payload, dict)
        assert isinstance(payload["code"], int)
        assert payload["code"] < 0
        assert isinstance(payload["msg"], str)
        assert payload["msg"]
    return payload


@st.composite
def requests(draw: st.DrawFn) -> Request:
    method = draw(METHODS)
    path = draw(PATHS)
    names = draw(st.lists(st.one_of(st.sampled_from(PARAM_NAMES), st.text(max_size=6)), max_size=8))
    params = [(name, draw(VALUES)) for name in names]
    signed = draw(st.sampled_from(["good", "good", "bad", "none"]))
    headers: dict[str, str] = {}
    if draw(st.booleans()) or signed != "none":
        headers["X-MBX-APIKEY"] = draw(st.sampled_from([KEY, KEY, KEY, "other", ""]))
    if signed != "none":
        params.append(("timestamp", str(int(NOW * 1000) - draw(st.sampled_from([0, 10, 6000])))))
    query = urlencode(params)
    if signed == "good":
        query += "&signature=" + sign(query, SECRET)
    elif signed == "bad":
        alphabet = st.sampled_from(["0123456789abcdef", "0123456789abcdefé€\u00ff\U0001f600"])
        query += "&signature=" + draw(st.text(alphabet=draw(alphabet), max_size=64))
    in_body = draw(st.booleans())
    body = query if in_body else draw(st.sampled_from(["", "", "%zz", "a=1&a=2", "&&=", "x" * 50]))
    return Request(
        method=method,
        path=path,
        query="" if in_body else query,
        body=body,
        headers=headers,
        client_ip=draw(st.sampled_from(["127.0.0.1", "10.0.0.7", "::1", "not-an-ip"])),
    )


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_every_answer_is_json_with_a_code_and_refusals_change_nothing(
    venue: Venue, dialect: Dialect, request: Request
) -> None:
    if request.path.startswith("/admin/"):
        request = Request("GET", request.path, client_ip=request.client_ip)  # never swap the plan
    before = _snapshot(venue)
    answer = dialect.handle(request)
    payload = _assert_well_formed(answer)
    if answer.status != 200:
        assert _snapshot(venue) == before, payload


def _mostly(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Mostly valid values, so that many requests get past decoding into the engine."""
    return st.sampled_from(valid * 10 + invalid)


ORDER_FIELDS = st.fixed_dictionaries(
    {
        "symbol": _mostly(["BTCUSDT", "ETHUSDT"], ["XRPUSDT", "btcusdt"]),
        "side": _mostly(["BUY", "SELL"], ["HOLD"]),
        "type": _mostly(["LIMIT", "LIMIT", "MARKET"], ["STOP_MARKET", "X"]),
        "quantity": _mostly(["0.01", "0.02", "0.1"], ["0.0105", "5", "0", "-1", "1e-2", "1000"]),
    },
    optional={
        "price": _mostly(["2000", "2500.5", "80000", "85000.5"], ["85000.55", "0", "1"]),
        "timeInForce": _mostly(["GTC", "IOC", "GTX"], ["FOK", "GTD"]),
        "reduceOnly": _mostly(["false"], ["true", "maybe"]),
        "newClientOrderId": _mostly(["fz-1", "fz-2"], ["bad id!", "x" * 40]),
        "workingType": _mostly(["CONTRACT_PRICE"], ["MARK_PRICE", "LAST"]),
    },
)


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(fields=ORDER_FIELDS)
def test_signed_orders_either_succeed_or_leave_the_account_untouched(
    venue: Venue, dialect: Dialect, fields: dict[str, str]
) -> None:
    query = urlencode(fields | {"timestamp": str(int(NOW * 1000))})
    query += "&signature=" + sign(query, SECRET)
    before = _snapshot(venue)
    answer = dialect.handle(
        Request("POST", "/fapi/v1/order", body=query, headers={"X-MBX-APIKEY": KEY})
    )
    payload = _assert_well_formed(answer)
    if answer.status == 200:
        assert payload["symbol"] == fields["symbol"]
        assert payload["status"] in ("NEW", "FILLED", "PARTIALLY_FILLED", "EXPIRED", "CANCELED")
        venue.cancel_all(KEY, symbol=fields["symbol"])  # keep the open-order count bounded
    else:
        assert _snapshot(venue) == before, payload


# --- a few through real HTTP --------------------------------------------------------------

RAW = [
    b"GET /fapi/v1/time HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /nowhere?%ff%fe=1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n\xff\xfe\x00ab",
    b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /fapi/v1/order HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
    b"DELETE /fapi/v1/allOpenOrders?symbol=BTCUSDT HTTP/1.1\r\nHost: x\r\n\r\n",
    b"PUT /fapi/v1/order HTTP/1.1\r\nHost: x\r\nX-MBX-APIKEY: fuzz-key\r\n\r\n",
]


@pytest.fixture(scope="module")
def server(venue: Venue, dialect: Dialect) -> Any:
    with VenueServer(venue, dialect=dialect) as running:
        yield running


@pytest.mark.parametrize("raw", RAW)
def test_raw_http_requests_get_json_answers(server: VenueServer, raw: bytes) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        response.begin()
        body = response.read()
    assert response.status != 500
    assert response.status in (200, 400, 401, 404, 413)
    payload = json.loads(body)
    if response.status != 200:
        assert isinstance(payload["code"], int)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=requests())
def test_random_requests_over_http(server: VenueServer, request: Request) -> None:
    method = request.method.upper()
    if method == "HEAD" or request.path.startswith("/admin/"):
        return
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        path = request.path.replace(" ", "%20").encode("utf-8", "replace").decode("latin-1")
        target = path + ("?" + request.query if request.query else "")
        connection.request(
            method, target, body=request.body.encode(), headers=dict(request.headers)
        )
        response = connection.getresponse()
        body = response.read()
    except (http.client.InvalidURL, ValueError, UnicodeEncodeError):
        return  # the client library refused to send it; nothing reached the venue
    finally:
        connection.close()
    assert response.status != 500
    payload = json.loads(body)
    if response.status != 200:
        assert isinstance(payload["code"], int)


def test_fuzzing_left_the_clock_alone(venue: Venue) -> None:
    # the dialect must never move simulated time on its own
    assert venue.clock.time() == NOW


SIGNED_ROUTES = sorted((method, path) for (method, path), route in ROUTES.items() if route.signed)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    route=st.sampled_from(SIGNED_ROUTES),
    signature=st.text(min_size=1, max_size=70),
    in_body=st.booleans(),
)
def test_any_signature_with_a_valid_key_is_refused_never_a_5xx(
    venue: Venue, dialect: Dialect, route: tuple[str, str], signature: str, in_body: bool
) -> None:
    method, path = route
    query = urlencode({"symbol": "BTCUSDT", "timestamp": str(int(NOW * 1000))})
    query += "&signature=" + signature
    before = _snapshot(venue)
    answer = dialect.handle(
        Request(
            method,
            path,
            "" if in_body else query,
            query if in_body else "",
            {"X-MBX-APIKEY": KEY},
        )
    )
    payload = _assert_well_formed(answer)
    assert answer.status in (400, 401), payload
    assert _snapshot(venue) == before


DEEP = "[" * 100_000 + "]" * 100_000
"""JSON nested deeper than Python's stack: ``json.loads`` raises ``RecursionError``, not
``ValueError``, and it was answered as a 500 (-1000)."""


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("POST", "/fapi/v1/batchOrders", "batchOrders"),
        ("DELETE", "/fapi/v1/batchOrders", "orderIdList"),
        ("DELETE", "/fapi/v1/batchOrders", "origClientOrderIdList"),
    ],
)
def test_json_nested_deeper_than_the_stack_is_refused_not_a_500(
    venue: Venue, dialect: Dialect, method: str, path: str, name: str
) -> None:
    before = _snapshot(venue)
    query = urlencode([("symbol", "BTCUSDT"), (name, DEEP), ("timestamp", str(int(NOW * 1000)))])
    query += "&signature=" + sign(query, SECRET)
    answer = dialect.handle(Request(method, path, body=query, headers={"X-MBX-APIKEY": KEY}))
    payload = _assert_well_formed(answer)
    assert answer.status == 400
    assert payload["code"] in (-1130, -1102)
    assert _snapshot(venue) == before


def test_a_fault_plan_nested_deeper_than_the_stack_is_refused_not_a_500(dialect: Dialect) -> None:
    answer = dialect.handle(Request("POST", "/admin/faults", body=DEEP))
    assert (answer.status, json.loads(answer.body)["code"]) == (400, -1130)
