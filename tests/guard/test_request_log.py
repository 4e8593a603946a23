"""Request records, opt-in sinks, and redaction of every secret form, exceptions included."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest
from loguru import logger

from safeguard._config import LoggingConfig, Policy
from safeguard.guard._redact import (
    REDACTED,
    forget_secrets,
    is_sensitive_name,
    redact,
    register_secret,
    register_secrets,
    scrub_text,
    secrets_of,
)
from safeguard.guard._request_log import (
    configure_logging,
    log,
    log_request,
    request_record,
    unconfigure_logging,
)

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
LISTEN_KEY = "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()
    unconfigure_logging()


# --- redaction by name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["apiKey", "api_key", "secret", "signature", "X-MBX-APIKEY", "x-mbx-apikey", "listenKey",
     "password", "passphrase", "privateKey", "Authorization", "apiSecret", "token"],
)  # fmt: skip
def test_credential_names_are_recognised(name: str) -> None:
    assert is_sensitive_name(name)
    assert redact({name: "hunter2-value"}) == {name: REDACTED}


@pytest.mark.parametrize("name", ["symbol", "side", "price", "newClientOrderId", "timestamp"])
def test_ordinary_names_are_kept(name: str) -> None:
    assert not is_sensitive_name(name)
    assert redact({name: "BTCUSDT"}) == {name: "BTCUSDT"}


def test_nested_structures_keep_their_shape() -> None:
    obj = {
        "params": {"symbol": "BTCUSDT", "signature": "abc123"},
        "headers": [("X-MBX-APIKEY", "k"), {"X-MBX-APIKEY": "k"}],
        "count": 3,
        "ok": True,
        "nothing": None,
    }
    assert redact(obj) == {
        "params": {"symbol": "BTCUSDT", "signature": REDACTED},
        "headers": [("X-MBX-APIKEY", "k"), {"X-MBX-APIKEY": REDACTED}],
        "count": 3,
        "ok": True,
        "nothing": None,
    }


# --- redaction inside text ---------------------------------------------------------------------

URL = (
    "binanceusdm GET https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&orderId=1"
    "&timestamp=1700000000000&recvWindow=10000&signature=9f1c2e3d4b5a69788796a5b4c3d2e1f0 "
    "504 Gateway Timeout"
)


@pytest.mark.parametrize(
    ("text", "kept", "gone"),
    [
        (URL, ["symbol=BTCUSDT", "orderId=1", "504 Gateway Timeout"], ["9f1c2e3d4b5a"]),
        ("symbol=ETHUSDT&signature=deadbeef&x=1", ["symbol=ETHUSDT", "&x=1"], ["deadbeef"]),
        ('{"apiKey": "AK-123456", "symbol": "BTCUSDT"}', ['"symbol": "BTCUSDT"'], ["AK-123456"]),
        ("{'secret': 'S-9876543', 'side': 'BUY'}", ["'side': 'BUY'"], ["S-9876543"]),
        ("X-MBX-APIKEY: AK-7777777, Accept: json", ["Accept: json"], ["AK-7777777"]),
        ("POST /fapi/v1/listenKey listenKey=LK-5555555", ["/fapi/v1/listenKey"], ["LK-5555555"]),
        ('{"listenKey":"LK-4444444"}', [], ["LK-4444444"]),
    ],
)
def test_named_secrets_are_scrubbed_from_text(text: str, kept: list[str], gone: list[str]) -> None:
    out = scrub_text(text)
    for piece in kept:
        assert piece in out
    for piece in gone:
        assert piece not in out
    assert REDACTED in out


def test_registered_values_are_scrubbed_anywhere_and_url_encoded() -> None:
    weird = "ab+cd/ef=gh&ij"
    register_secrets([API_KEY, SECRET, None, "", weird])
    text = f"key {API_KEY} under an odd name, mykey={SECRET}; encoded ab%2Bcd%2Fef%3Dgh%26ij"
    out = scrub_text(text)
    assert API_KEY not in out
    assert SECRET not in out
    assert "ab%2Bcd%2Fef%3Dgh%26ij" not in out
    assert redact({"note": [f"prefix-{API_KEY}-suffix"]}) == {"note": [f"prefix-{REDACTED}-suffix"]}
    assert redact({API_KEY: 1}) == {REDACTED: 1}  # a dict keyed by the key itself


def test_short_or_non_string_secrets_are_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        register_secret("abc")
    with pytest.raises(ValueError, match="str"):
        register_secret(12345678)  # type: ignore[arg-type]


def test_secrets_of_a_real_ccxt_exchange() -> None:
    exchange = ccxt.binanceusdm({"apiKey": API_KEY, "secret": SECRET})
    assert set(secrets_of(exchange)) == {API_KEY, SECRET}


def test_exceptions_are_redacted_as_text() -> None:
    register_secret(SECRET)
    assert redact(ccxt.AuthenticationError(f"bad {SECRET}")) == (
        f"AuthenticationError: bad {REDACTED}"
    )


# --- request records ---------------------------------------------------------------------------


def test_request_record_has_every_field_and_no_secret() -> None:
    register_secret(API_KEY)
    policy = Policy.build()

    class Verdict:
        code = "STOP_REQUIRED"

    record = request_record(
        method="create_order",
        endpoint="POST /fapi/v1/order",
        params={"symbol": "BTCUSDT", "quantity": "0.01", "signature": "abc", "apiKey": API_KEY},
        status=400,
        latency_s=0.0123,
        attempt=2,
        headers={"X-MBX-USED-WEIGHT-1M": "42", "x-mbx-order-count-10s": "3", "Server": "nginx"},
        client_order_id="sg-abc",
        verdict=Verdict(),
        policy_version=policy.version,
        error=ccxt.InvalidOrder(f"binanceusdm rejected key={API_KEY}"),
    )
    assert record == {
        "method": "create_order",
        "endpoint": "POST /fapi/v1/order",
        "params": {
            "symbol": "BTCUSDT",
            "quantity": "0.01",
            "signature": REDACTED,
            "apiKey": REDACTED,
        },
        "status": 400,
        "latency_ms": 12.3,
        "attempt": 2,
        "weights": {"X-MBX-USED-WEIGHT-1M": "42", "X-MBX-ORDER-COUNT-10S": "3"},
        "client_order_id": "sg-abc",
        "verdict": "STOP_REQUIRED",
        "policy_version": policy.version,
        "outcome": "error",
        "error": f"InvalidOrder: binanceusdm rejected key={REDACTED}",
    }


# --- sinks -------------------------------------------------------------------------------------


@pytest.mark.safeguard_logging_default
def test_nothing_is_emitted_until_the_application_opts_in() -> None:
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(str(message)))
    try:
        log_request(request_record(method="fetch_ticker", endpoint="GET /x"))
        assert seen == []  # safeguard is disabled at import; the library adds no sink
    finally:
        logger.remove(sink)


def test_configure_logging_writes_human_and_json_lines_without_secrets(tmp_path: Path) -> None:
    register_secret(SECRET)
    human = io.StringIO()
    json_path = tmp_path / "logs" / "safeguard.jsonl"
    ids = configure_logging("DEBUG", json_path, human=human)
    assert len(ids) == 2
    record = request_record(
        method="fetch_order",
        endpoint="GET /fapi/v1/order",
        params={"symbol": "BTCUSDT", "listenKey": LISTEN_KEY},
        status=200,
        latency_s=0.05,
        headers={"X-MBX-USED-WEIGHT-1M": "7"},
        policy_version="abc123def456",
    )
    log_request(record)
    # A record logged elsewhere in safeguard with raw secrets in its extra and its exception:
    log = logger.patch(lambda r: r.update(name="safeguard.guard._sync"))
    try:
        raise ccxt.ExchangeNotAvailable(
            f"binanceusdm GET http://h/fapi/v1/order?timestamp=1&signature=f00d{SECRET} 503 "
            f'{{"apiKey": "{API_KEY}"}}'
        )
    except ccxt.BaseError:
        log.bind(secret=SECRET, note=f"sig {SECRET}").exception("venue failed {not a field}")
    unconfigure_logging()

    text = human.getvalue()
    # loguru's own serialization: {"text": ..., "record": {...}}
    lines = [json.loads(line)["record"] for line in json_path.read_text().splitlines()]
    assert len(lines) == 2
    first = lines[0]
    assert first["level"]["name"] == "INFO"
    assert first["extra"]["request"]["weights"] == {"X-MBX-USED-WEIGHT-1M": "7"}
    assert first["extra"]["request"]["policy_version"] == "abc123def456"
    assert first["extra"]["request"]["params"] == {"symbol": "BTCUSDT", "listenKey": REDACTED}
    second = lines[1]
    assert second["extra"]["exception"]["type"] == "ExchangeNotAvailable"
    assert "Traceback" in second["extra"]["exception"]["traceback"]
    assert second["message"].startswith("venue failed {not a field}")
    assert "GET /fapi/v1/order -> 200 in 50.0 ms (attempt 1)" in text
    assert "ExchangeNotAvailable" in text
    for secret in (SECRET, API_KEY, LISTEN_KEY, "f00d"):
        assert secret not in text
        assert secret not in json_path.read_text()


def test_configure_again_replaces_and_unconfigure_silences(tmp_path: Path) -> None:
    before = len(logger._core.handlers)  # type: ignore[attr-defined]
    first = io.StringIO()
    second = io.StringIO()
    configure_logging(human=first)
    configure_logging(config=LoggingConfig(level="WARNING"), human=second)
    assert len(logger._core.handlers) == before + 1  # type: ignore[attr-defined]
    log_request(request_record(method="fetch_ticker", endpoint="GET /x", status=200))
    log_request(request_record(method="fetch_ticker", endpoint="GET /x", error=ValueError("e")))
    assert first.getvalue() == ""
    assert second.getvalue().count("\n") == 1  # INFO filtered, the WARNING kept
    unconfigure_logging()
    assert len(logger._core.handlers) == before  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="level"):
        configure_logging("LOUD")


def test_the_shared_logger_scrubs_before_the_applications_own_sinks() -> None:
    """An application sink added straight to loguru (no configure_logging) sees no secret."""
    register_secret(SECRET)
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(str(message)), format="{message} {extra}")
    logger.enable("safeguard")
    try:
        try:
            raise ccxt.RequestTimeout(f"binanceusdm POST http://h/fapi/v1/order signature={SECRET}")
        except ccxt.BaseError:
            log.bind(apiKey=API_KEY, body=f"secret={SECRET}").exception("order timed out")
    finally:
        logger.disable("safeguard")
        logger.remove(sink)
    text = "".join(seen)
    assert "order timed out" in text
    assert "RequestTimeout" in text  # the traceback is kept, scrubbed, in the message
    assert SECRET not in text
    assert API_KEY not in text


def test_json_lines_only(tmp_path: Path) -> None:
    path = tmp_path / "only.jsonl"
    ids = configure_logging(config=LoggingConfig(level="INFO", json_path=path), human=False)
    assert len(ids) == 1
    log_request(request_record(method="fetch_time", endpoint="GET /fapi/v1/time", status=200))
    unconfigure_logging()
    assert json.loads(path.read_text())["record"]["extra"]["request"]["method"] == "fetch_time"


def test_only_safeguard_records_reach_the_sinks() -> None:
    human = io.StringIO()
    configure_logging(human=human)
    logger.info("an application's own record")
    assert human.getvalue() == ""
