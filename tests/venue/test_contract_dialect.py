"""The dialect's wire rules that ccxt never exercises, checked with raw requests."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from safeguard._clock import ManualClock
from safeguard.venue._dialect import Dialect, Request, Response
from safeguard.venue._engine import Venue
from safeguard.venue._signing import sign

NOW = 1_750_000_000.0
KEY, SECRET = "wire-key", "wire-secret"


@pytest.fixture
def dialect() -> Dialect:
    venue = Venue(clock=ManualClock(NOW))
    venue.create_account(KEY, SECRET)
    return Dialect(venue, auth_clock=ManualClock(NOW))


def _stamp(params: dict[str, str]) -> str:
    return urlencode(params | {"timestamp": str(int(NOW * 1000))})


def _code(answer: Response) -> int:
    payload = answer.json()
    assert isinstance(payload, dict)
    return int(payload["code"])


def _post(dialect: Dialect, query: str = "", body: str = "") -> Response:
    headers = {"x-mbx-apikey": KEY}  # header names are case-insensitive
    return dialect.handle(Request("POST", "/fapi/v1/leverage", query, body, headers))


def test_query_and_body_are_merged_and_signed_as_one_concatenated_string(
    dialect: Dialect,
) -> None:
    query = "symbol=BTCUSDT"
    body = _stamp({"leverage": "5"})
    answer = _post(dialect, query, body + "&signature=" + sign(query + body, SECRET))
    assert answer.status == 200
    assert answer.json()["leverage"] == 5
    # the same parameters signed with a separator are a different string: -1022
    wrong = _post(dialect, query, body + "&signature=" + sign(query + "&" + body, SECRET))
    assert (wrong.status, _code(wrong)) == (400, -1022)


def test_duplicate_parameters_are_minus_1101(dialect: Dialect) -> None:
    body = _stamp({"symbol": "BTCUSDT", "leverage": "5"})
    answer = _post(dialect, "leverage=6", body + "&signature=" + sign("leverage=6" + body, SECRET))
    assert _code(answer) == -1101


def test_unread_parameters_are_refused_before_the_engine_acts(dialect: Dialect) -> None:
    dialect.venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.002)
    body = _stamp({"symbol": "BTCUSDT", "leverage": "5", "dryRun": "true"})
    answer = _post(dialect, body=body + "&signature=" + sign(body, SECRET))
    assert _code(answer) == -1104
    risk = dialect.venue.position_risk(KEY, "BTCUSDT")
    assert int(risk[0]["leverage"]) == dialect.venue.config.default_leverage


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT"}, -1102),
        ({"symbol": "BTCUSDT", "leverage": "five"}, -1100),
        ({"symbol": "BTCUSDT", "leverage": "500"}, -4028),
        ({"symbol": "NOPEUSDT", "leverage": "5"}, -1121),
        ({"symbol": "btc usdt", "leverage": "5"}, -1100),
    ],
)
def test_leverage_refusals(dialect: Dialect, params: dict[str, str], code: int) -> None:
    body = _stamp(params)
    assert _code(_post(dialect, body=body + "&signature=" + sign(body, SECRET))) == code


def test_missing_key_header_and_missing_signature(dialect: Dialect) -> None:
    body = _stamp({"symbol": "BTCUSDT", "leverage": "5"})
    no_key = dialect.handle(Request("POST", "/fapi/v1/leverage", body=body))
    assert (no_key.status, _code(no_key)) == (401, -2014)
    unsigned = _post(dialect, body=body)
    assert _code(unsigned) == -1102


def test_public_endpoints_refuse_unknown_parameters(dialect: Dialect) -> None:
    answer = dialect.handle(Request("GET", "/fapi/v1/time", "verbose=1"))
    assert _code(answer) == -1104
    assert (
        _code(dialect.handle(Request("GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=7"))) == -1130
    )


def test_depth_weight_follows_the_limit(dialect: Dialect) -> None:
    used = []
    for limit in (5, 100, 500, 1000):
        answer = dialect.handle(Request("GET", "/fapi/v1/depth", f"symbol=BTCUSDT&limit={limit}"))
        assert answer.status == 200
        used.append(int(answer.headers["X-MBX-USED-WEIGHT-1M"]))
    assert [b - a for a, b in zip([0, *used], used, strict=False)] == [2, 5, 10, 20]


def test_algo_order_view_of_a_stop(dialect: Dialect) -> None:
    mark = dialect.venue.mark_price("BTCUSDT")
    params = {
        "algoType": "CONDITIONAL",
        "symbol": "BTCUSDT",
        "side": "SELL",
        "type": "STOP_MARKET",
        "quantity": "0.01",
        "triggerPrice": f"{mark * 0.9:.1f}",
        "reduceOnly": "false",
        "clientAlgoId": "algo-1",
    }
    body = _stamp(params)
    headers = {"X-MBX-APIKEY": KEY}
    signed = body + "&signature=" + sign(body, SECRET)
    answer = dialect.handle(Request("POST", "/fapi/v1/algoOrder", body=signed, headers=headers))
    assert answer.status == 200, answer.body
    algo = answer.json()
    assert algo["clientAlgoId"] == "algo-1"
    assert algo["algoStatus"] == "NEW"
    assert algo["orderType"] == "STOP_MARKET"
    assert float(algo["triggerPrice"]) == pytest.approx(float(params["triggerPrice"]))
    # a plain limit order is not visible through the algo endpoints
    body = _stamp({"symbol": "BTCUSDT", "algoId": "1"})
    query = body + "&signature=" + sign(body, SECRET)
    missing = dialect.handle(Request("GET", "/fapi/v1/algoOrder", query, headers=headers))
    assert _code(missing) == -2013
    body = _stamp({**{k: params[k] for k in ("symbol", "side", "quantity")}, "type": "MARKET"})
    body += "&algoType=CONDITIONAL"
    signed = body + "&signature=" + sign(body, SECRET)
    market = dialect.handle(Request("POST", "/fapi/v1/algoOrder", body=signed, headers=headers))
    assert _code(market) == -1116


def test_what_the_venue_does_not_implement_is_logged_as_a_warning_with_the_path(
    dialect: Dialect,
) -> None:
    from loguru import logger

    records: list[str] = []
    logger.enable("safeguard")
    sink = logger.add(lambda message: records.append(str(message)), level="WARNING")
    try:
        missing = dialect.handle(Request("GET", "/fapi/v1/constituents"))
        unread = dialect.handle(Request("GET", "/fapi/v1/time", "verbose=1"))
    finally:
        logger.remove(sink)
        logger.disable("safeguard")
    assert (missing.status, _code(missing)) == (404, -5000)
    assert _code(unread) == -1104
    assert any("WARNING" in r and "/fapi/v1/constituents" in r for r in records), records
    assert any("WARNING" in r and "/fapi/v1/time" in r and "verbose" in r for r in records)


# --- hardening ----------------------------------------------------------------------------


def _signed(
    dialect: Dialect, method: str, path: str, params: dict[str, str], *, signature: str = ""
) -> Response:
    body = _stamp(params)
    body += "&signature=" + (signature or sign(body, SECRET))
    query, form = (body, "") if method in ("GET", "DELETE") else ("", body)
    return dialect.handle(Request(method, path, query, form, {"X-MBX-APIKEY": KEY}))


def test_a_non_ascii_signature_with_a_valid_key_is_minus_1022_not_a_500(dialect: Dialect) -> None:
    answer = _signed(dialect, "GET", "/fapi/v3/account", {}, signature="\u00e9\u20ac" * 16)
    assert (answer.status, _code(answer)) == (400, -1022)


def test_orders_with_a_bad_signature_do_not_use_the_accounts_order_limit(
    dialect: Dialect,
) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002"}
    limit = dialect.limits.orders_per_10s
    for _ in range(limit + 5):
        forged = _signed(dialect, "POST", "/fapi/v1/order", order, signature="00" * 32)
        assert _code(forged) == -1022
        assert "X-MBX-ORDER-COUNT-10S" not in forged.headers
    real = _signed(dialect, "POST", "/fapi/v1/order", order)
    assert real.status == 200, real.body
    assert real.headers["X-MBX-ORDER-COUNT-10S"] == "1"
