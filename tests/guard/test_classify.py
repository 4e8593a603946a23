"""Error classification: every ccxt class mapped, and real ccxt errors from a loopback venue."""

from __future__ import annotations

import inspect
import pickle
import re
import socket
import threading
import traceback
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ccxt
import pytest
from ccxt.base import errors as ccxt_errors
from loguru import logger

from safeguard import _errors as errors
from safeguard.guard._classify import (
    CCXT_RULES,
    ErrorClass,
    RetryClass,
    classify,
    header,
    parse_retry_after,
    to_safeguard_error,
)
from safeguard.guard._redact import REDACTED, forget_secrets, register_secret

API_KEY = "k3yK3yK3yApiKeyValue0123456789"
SECRET = "s3cr3tS3cr3tSecretValue987654321"
NOW = 1_700_000_000.0
SIGNED = r"signature=[0-9a-f]{16,}"


def all_ccxt_exception_classes() -> list[type[BaseException]]:
    return [
        obj
        for _, obj in inspect.getmembers(ccxt_errors, inspect.isclass)
        if issubclass(obj, Exception) and obj.__module__ == ccxt_errors.__name__
    ]


def test_every_ccxt_exception_class_has_its_own_row() -> None:
    classes = all_ccxt_exception_classes()
    assert len(classes) >= 40  # the walk really found ccxt's tree
    unmapped = [klass.__name__ for klass in classes if klass not in CCXT_RULES]
    assert unmapped == []


@pytest.mark.parametrize("klass", all_ccxt_exception_classes(), ids=lambda k: k.__name__)
def test_every_class_classifies_and_maps_into_the_tree(klass: type[Exception]) -> None:
    exc = klass("binanceusdm something went wrong")
    ec = classify(exc)
    assert ec.retry in RetryClass
    assert ec.error_type == klass.__name__
    mapped = to_safeguard_error(exc, ec, now=NOW, client_order_id="sg-1")
    assert isinstance(mapped, errors.SafeguardError)
    # The cause is a copy of the same type with the same (here harmless) message, not the raw
    # error: a raw ccxt message embeds the signed URL.
    assert type(mapped.__cause__) is klass
    assert mapped.__cause__ is not exc
    assert str(mapped.__cause__) == str(exc)
    pickle.loads(pickle.dumps(mapped))  # crosses process boundaries in fleets


# (ccxt class, expected retry class, expected safeguard error for an order)
TABLE: list[tuple[type[Exception], RetryClass, type[errors.SafeguardError]]] = [
    (ccxt.InsufficientFunds, RetryClass.NEVER, errors.InsufficientFunds),
    (ccxt.InvalidOrder, RetryClass.NEVER, errors.InvalidOrder),
    (ccxt.OrderNotFillable, RetryClass.NEVER, errors.InvalidOrder),
    (ccxt.BadSymbol, RetryClass.NEVER, errors.InvalidOrder),
    (ccxt.BadRequest, RetryClass.NEVER, errors.InvalidOrder),
    (ccxt.AuthenticationError, RetryClass.NEVER, errors.AuthenticationFailed),
    (ccxt.PermissionDenied, RetryClass.NEVER, errors.AuthenticationFailed),
    (ccxt.AccountSuspended, RetryClass.NEVER, errors.AuthenticationFailed),
    (ccxt.OrderNotFound, RetryClass.NEVER, errors.OrderNotFound),
    (ccxt.MarginModeAlreadySet, RetryClass.NEVER, errors.VenueRejected),
    (ccxt.InvalidProxySettings, RetryClass.NEVER, errors.ConfigError),
    (ccxt.ExchangeClosedByUser, RetryClass.NEVER, errors.RequestBlocked),
    (ccxt.RequestTimeout, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.NetworkError, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.ExchangeNotAvailable, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.OperationFailed, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.BadResponse, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.DuplicateOrderId, RetryClass.AMBIGUOUS, errors.OutcomeUnknown),
    (ccxt.InvalidNonce, RetryClass.SAFE, errors.RetriesExhausted),
    (ccxt.OnMaintenance, RetryClass.SAFE, errors.RetriesExhausted),
    (ccxt.RateLimitExceeded, RetryClass.SAFE, errors.RetriesExhausted),
    (ccxt.DDoSProtection, RetryClass.SAFE, errors.RetriesExhausted),
]


@pytest.mark.parametrize(
    ("klass", "retry", "target"), TABLE, ids=lambda v: getattr(v, "__name__", v)
)
def test_classification_table(
    klass: type[Exception], retry: RetryClass, target: type[errors.SafeguardError]
) -> None:
    exc = klass("binanceusdm {}")
    ec = classify(exc)
    assert ec.retry is retry
    assert type(to_safeguard_error(exc, ec, now=NOW, client_order_id="sg-7")) is target


def test_ambiguous_read_is_retries_exhausted_and_order_is_outcome_unknown() -> None:
    exc = ccxt.RequestTimeout("binanceusdm GET http://x/fapi/v1/order")
    read = to_safeguard_error(exc, now=NOW, attempts=3, elapsed=2.5)
    order = to_safeguard_error(exc, now=NOW, client_order_id="sg-9", symbol="BTC/USDT:USDT")
    assert isinstance(read, errors.RetriesExhausted)
    assert (read.attempts, read.elapsed) == (3, 2.5)
    assert isinstance(order, errors.OutcomeUnknown)
    assert (order.client_order_id, order.symbol) == ("sg-9", "BTC/USDT:USDT")


def test_duplicate_client_order_id_code_is_ambiguous_not_a_rejection() -> None:
    exc = ccxt.InvalidOrder('binanceusdm {"code":-4116,"msg":"ClientOrderId is duplicated."}')
    ec = classify(exc)
    assert ec.retry is RetryClass.AMBIGUOUS
    assert ec.duplicate_client_order_id
    assert ec.venue_code == "-4116"


def test_plain_invalid_order_carries_the_venue_code() -> None:
    exc = ccxt.InvalidOrder('binanceusdm {"code":-4164,"msg":"notional must be at least 5"}')
    mapped = to_safeguard_error(exc, now=NOW)
    assert isinstance(mapped, errors.InvalidOrder)
    assert mapped.venue_code == "-4164"


def test_bare_exchange_error_without_venue_code_is_a_transport_failure() -> None:
    assert classify(ccxt.ExchangeError("binanceusdm GET http://x")).retry is RetryClass.AMBIGUOUS
    coded = ccxt.ExchangeError('binanceusdm {"code":-9999,"msg":"new"}')
    assert classify(coded).retry is RetryClass.NEVER


def test_rate_limit_codes_and_banned_until_in_message() -> None:
    weight = ccxt.RateLimitExceeded('binanceusdm {"code":-1003,"msg":"Too many requests"}')
    assert classify(weight).throttled
    assert not classify(weight).banned
    ban_msg = (
        'binanceusdm {"code":-1003,"msg":"Way too much request weight used; '
        'IP banned until 1700000600000. Please use WebSocket Streams"}'
    )
    ec = classify(ccxt.RateLimitExceeded(ban_msg))
    assert ec.banned
    assert ec.banned_until == 1_700_000_600.0
    mapped = to_safeguard_error(ccxt.RateLimitExceeded(ban_msg), ec, now=NOW)
    assert isinstance(mapped, errors.VenueBanned)
    assert mapped.until == 1_700_000_600.0


def test_status_passed_in_wins_and_retry_after_comes_from_headers() -> None:
    exc = ccxt.DDoSProtection("binanceusdm something")
    ec = classify(exc, status=418, headers={"retry-after": "300"})
    assert ec.banned
    assert ec.retry_after == 300.0
    mapped = to_safeguard_error(exc, ec, now=NOW)
    assert isinstance(mapped, errors.VenueBanned)
    assert mapped.until == NOW + 300.0
    default = to_safeguard_error(exc, classify(exc, status=418), now=NOW, default_ban_s=120.0)
    assert isinstance(default, errors.VenueBanned)
    assert default.until == NOW + 120.0


def test_non_ccxt_exceptions() -> None:
    assert classify(errors.TradingHalted("x", state="HALTED", reason="r")).retry is RetryClass.NEVER
    assert classify(KeyboardInterrupt()).retry is RetryClass.NEVER
    # ccxt failing to parse an order answer means the order landed: resolve, never resend blind.
    assert classify(KeyError("orderId")).retry is RetryClass.AMBIGUOUS
    halted = errors.TradingHalted("x", state="HALTED", reason="r")
    assert to_safeguard_error(halted, now=NOW) is halted


def test_retry_after_parsing() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after("-3") == 0.0
    assert parse_retry_after("nan") is None
    assert parse_retry_after("inf") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    date = "Tue, 14 Nov 2023 22:14:20 GMT"  # NOW + 60 s
    assert parse_retry_after(date) is None  # a date needs a `now` to mean anything
    assert parse_retry_after(date, now=NOW) == 60.0
    with pytest.raises(ValueError, match="retry_after"):
        classify(ccxt.DDoSProtection("x"), retry_after=float("nan"))


def test_retry_after_as_an_http_date_needs_now() -> None:
    headers = {"Retry-After": "Tue, 14 Nov 2023 22:14:20 GMT"}  # NOW + 60 s
    exc = ccxt.DDoSProtection("binanceusdm 429 Too Many Requests")
    assert classify(exc, headers=headers).retry_after is None
    assert classify(exc, headers=headers, now=NOW).retry_after == 60.0


def test_header_lookup_is_case_insensitive() -> None:
    assert header({"X-MBX-USED-WEIGHT-1M": "5"}, "x-mbx-used-weight-1m") == "5"
    assert header({}, "Retry-After") is None
    assert header(None, "Retry-After") is None


# --- real ccxt against a real loopback venue ----------------------------------------------


class _Venue:
    def __init__(self) -> None:
        self.status = 200
        self.body = "{}"
        self.headers: dict[str, str] = {}
        self.hang_up = False


@pytest.fixture
def venue() -> Iterator[tuple[_Venue, int]]:
    state = _Venue()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            if self.headers.get("Content-Length"):
                self.rfile.read(int(self.headers["Content-Length"]))
            if state.hang_up:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            payload = state.body.encode()
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_DELETE(self) -> None:
            self._answer()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield state, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _exchange(port: int) -> Any:
    ex = ccxt.binanceusdm(
        {"enableRateLimit": False, "apiKey": API_KEY, "secret": SECRET, "timeout": 2000}
    )
    for key, url in list(ex.urls["api"].items()):
        if isinstance(url, str):
            path = "/" + url.split("://", 1)[1].split("/", 1)[1]
            ex.urls["api"][key] = f"http://127.0.0.1:{port}{path}"
    ex.options["fetchCurrencies"] = False
    ex.exceptions["exact"].update(ex.exceptions["linear"]["exact"])
    return ex


def _raised(call: Any) -> BaseException:
    with pytest.raises(ccxt.BaseError) as info:
        call()
    return info.value


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (429, '{"code":-1003,"msg":"Too many requests."}', "throttled"),
        (418, '{"code":-1003,"msg":"IP banned"}', "banned"),
        (400, '{"code":-1003,"msg":"Too much request weight used"}', "throttled"),
        (400, '{"code":-2019,"msg":"Margin is insufficient."}', "rejected"),
        (400, '{"code":-4116,"msg":"ClientOrderId is duplicated."}', "duplicate-client-order-id"),
        (400, '{"code":-1021,"msg":"Timestamp outside recvWindow."}', "refused"),
        (503, '{"code":-1001,"msg":"Internal error"}', "may-have-reached-venue"),
        (502, "<html>bad gateway</html>", "may-have-reached-venue"),
    ],
)
def test_real_ccxt_errors_from_a_loopback_venue(
    venue: tuple[_Venue, int], status: int, body: str, expected: str
) -> None:
    state, port = venue
    state.status, state.body = status, body
    ex = _exchange(port)
    exc = _raised(lambda: ex.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY"}))
    ec = classify(exc)  # no status passed: it must come out of ccxt's own message
    assert ec.reason == expected, (type(exc).__name__, str(exc))
    if status == 429:
        assert isinstance(exc, ccxt.DDoSProtection)  # not RateLimitExceeded
        assert ec.retry is RetryClass.SAFE
        assert not ec.banned
    if status == 418:
        assert isinstance(exc, ccxt.DDoSProtection)
    if status == 503:
        assert type(exc) is ccxt.OperationFailed
        assert not isinstance(exc, ccxt.NetworkError)


def test_retry_after_from_real_answer_headers(venue: tuple[_Venue, int]) -> None:
    state, port = venue
    state.status, state.body, state.headers = 418, "{}", {"Retry-After": "240"}
    ex = _exchange(port)
    exc = _raised(ex.fapiPublicGetTime)
    ec = classify(exc, headers=ex.last_response_headers)
    assert ec.banned
    assert ec.retry_after == 240.0


def test_connection_refused_is_safe_because_nothing_was_sent() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nobody listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ex = _exchange(port)
    exc = _raised(lambda: ex.fapiPrivatePostOrder({"symbol": "BTCUSDT"}))
    assert isinstance(exc, ccxt.NetworkError)
    ec = classify(exc)
    assert (ec.retry, ec.reason) == (RetryClass.SAFE, "not-sent")


def test_connection_dropped_after_sending_is_ambiguous(venue: tuple[_Venue, int]) -> None:
    state, port = venue
    state.hang_up = True
    ex = _exchange(port)
    exc = _raised(lambda: ex.fapiPrivatePostOrder({"symbol": "BTCUSDT"}))
    assert classify(exc).retry is RetryClass.AMBIGUOUS
    mapped = to_safeguard_error(exc, now=NOW, client_order_id="sg-42")
    assert isinstance(mapped, errors.OutcomeUnknown)


def test_a_dropped_signed_read_leaves_no_signature_anywhere_in_the_chain(
    venue: tuple[_Venue, int],
) -> None:
    state, port = venue
    state.hang_up = True
    ex = _exchange(port)
    exc = _raised(lambda: ex.fapiPrivateGetOrder({"symbol": "BTCUSDT", "orderId": 1}))
    raw = _chain(exc)
    assert re.search(SIGNED, raw)  # ccxt's message and the lower layer's both name the URL
    mapped = to_safeguard_error(exc, now=NOW)
    chain = _chain(mapped)
    assert not re.search(SIGNED, chain)
    assert f"{type(exc).__name__}: " in chain
    # Every link of the chain is still there, scrubbed, with its type's name.
    links = raw.count("The above exception was the direct cause") + raw.count(
        "During handling of the above exception"
    )
    assert links >= 1
    assert (
        chain.count("The above exception was the direct cause")
        + chain.count("During handling of the above exception")
        == links + 1
    )


async def test_async_ccxt_connection_refused_is_safe() -> None:
    import ccxt.async_support as accxt

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ex = accxt.binanceusdm({"enableRateLimit": False, "apiKey": API_KEY, "secret": SECRET})
    ex.urls["api"]["fapiPrivate"] = f"http://127.0.0.1:{port}/fapi/v1"
    try:
        with pytest.raises(ccxt.BaseError) as info:
            await ex.fapiPrivatePostOrder({"symbol": "BTCUSDT"})
    finally:
        await ex.close()
    assert classify(info.value).reason == "not-sent"


def test_mapped_messages_never_carry_the_signature_or_keys(venue: tuple[_Venue, int]) -> None:
    state, port = venue
    state.status, state.body = 502, f"<html>upstream saw key {API_KEY}</html>"
    register_secret(API_KEY)
    try:
        ex = _exchange(port)
        exc = _raised(lambda: ex.fapiPrivateGetOrder({"symbol": "BTCUSDT", "orderId": 1}))
        assert "signature=" in str(exc)  # ccxt embeds the signed URL in its message
        mapped = to_safeguard_error(exc, now=NOW)
        text = str(mapped)
        assert f"signature={REDACTED}" in text
        signature = str(exc).split("signature=", 1)[1].split()[0].split("&")[0]
        assert signature not in text
        assert API_KEY not in text
        assert SECRET not in text
        # Nor does the chain under it: a traceback, or an application's logger.exception with
        # loguru's defaults (diagnose on), prints the cause's message and the frames' values.
        chain = _chain(mapped)
        assert f"{type(exc).__name__}: " in chain  # the original's type stays visible
        seen: list[str] = []
        sink = logger.add(lambda message: seen.append(str(message)), diagnose=True)
        try:
            try:
                raise mapped
            except errors.SafeguardError:
                logger.exception("the bot's own handler")
        finally:
            logger.remove(sink)
        for text in (chain, "".join(seen)):
            assert signature not in text
            assert API_KEY not in text
            assert SECRET not in text
    finally:
        forget_secrets()


def _chain(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def test_error_class_is_frozen() -> None:
    ec = ErrorClass(RetryClass.SAFE, "x")
    with pytest.raises(AttributeError):
        ec.retry = RetryClass.NEVER  # type: ignore[misc]


def test_real_answers_drive_the_budget_and_a_ban_survives_a_restart(
    venue: tuple[_Venue, int], tmp_path: Path
) -> None:
    """The driver's path with real ccxt: answer headers into the budget, a 418 into the file."""
    from safeguard._config import ThrottleConfig
    from safeguard.guard._bans import BanStore
    from safeguard.guard._throttle import Banned, BudgetRegistry, Hold, RequestKind

    state, port = venue
    ex = _exchange(port)
    budget = BudgetRegistry(ThrottleConfig(), BanStore(tmp_path)).get("ip", "acct")
    state.body, state.headers = '{"serverTime": 1}', {"X-MBX-USED-WEIGHT-1M": "2300"}
    ex.fapiPublicGetTime()
    budget.observe(ex.last_response_headers, NOW)  # ccxt's own header dict, as the driver has it
    assert isinstance(budget.decide(RequestKind.READ, 1, NOW), Hold)

    state.status, state.body, state.headers = 418, "{}", {"Retry-After": "600"}
    exc = _raised(ex.fapiPublicGetTime)
    ec = classify(exc, headers=ex.last_response_headers)
    mapped = to_safeguard_error(exc, ec, now=NOW)
    assert isinstance(mapped, errors.VenueBanned)
    budget.record_ban(mapped.until, NOW)

    restarted = BudgetRegistry(ThrottleConfig(), BanStore(tmp_path)).get("ip", "acct")
    assert restarted.decide(RequestKind.CANCEL, 1, NOW + 1) == Banned(NOW + 600)
