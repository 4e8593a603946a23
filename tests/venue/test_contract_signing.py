"""Binance request signing: what the venue accepts and the exact refusal for what it does not."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from safeguard.venue._errors import VenueReject
from safeguard.venue._signing import check_freshness, check_signature, sign, split_signature

SECRET = "s3cr3t"


def _code(exc: pytest.ExceptionInfo[VenueReject]) -> int:
    return exc.value.code


def test_sign_is_hex_hmac_sha256_of_the_payload() -> None:
    payload = "symbol=BTCUSDT&timestamp=1700000000000"
    expected = hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    assert sign(payload, SECRET) == expected


def test_signature_is_split_from_the_query_and_the_rest_kept_byte_for_byte() -> None:
    query = "symbol=BTCUSDT&timestamp=1&signature=abc"
    signed = split_signature(query, "")
    assert signed.payload == "symbol=BTCUSDT&timestamp=1"
    assert signed.signature == "abc"


def test_query_and_body_are_concatenated_as_binance_defines_total_params() -> None:
    signed = split_signature("symbol=BTCUSDT", "quantity=1&signature=ff")
    assert signed.payload == "symbol=BTCUSDTquantity=1"
    assert signed.signature == "ff"


def test_correct_signature_passes_and_any_change_is_minus_1022() -> None:
    payload = "symbol=BTCUSDT&side=BUY&timestamp=5"
    good = split_signature(payload + "&signature=" + sign(payload, SECRET), "")
    check_signature(good, SECRET)
    tampered = split_signature(
        payload.replace("BUY", "SELL") + "&signature=" + sign(payload, SECRET), ""
    )
    with pytest.raises(VenueReject) as exc:
        check_signature(tampered, SECRET)
    assert _code(exc) == -1022
    with pytest.raises(VenueReject) as exc:
        check_signature(good, "another-secret")
    assert _code(exc) == -1022


def test_missing_signature_is_minus_1102() -> None:
    with pytest.raises(VenueReject) as exc:
        check_signature(split_signature("timestamp=5", ""), SECRET)
    assert _code(exc) == -1102


@pytest.mark.parametrize(
    ("timestamp", "window", "code"),
    [
        (None, None, -1102),
        ("", None, -1102),
        ("12a", None, -1100),
        ("-5", None, -1100),
        ("1700000000000", "abc", -1100),
        ("1700000000000", "0", -1131),
        ("1700000000000", "60001", -1131),
        ("1699999994999", None, -1021),  # 5,001 ms old, default window 5,000
        ("1699999989999", "10000", -1021),
        ("1700000001000", None, -1021),  # one second ahead
    ],
)
def test_freshness_refusals(timestamp: str | None, window: str | None, code: int) -> None:
    with pytest.raises(VenueReject) as exc:
        check_freshness(timestamp, window, now_ms=1_700_000_000_000)
    assert _code(exc) == code


@pytest.mark.parametrize(
    ("timestamp", "window"),
    [
        ("1700000000000", None),
        ("1699999995000", None),
        ("1699999990000", "10000"),
        ("1700000000999", None),
    ],
)
def test_fresh_requests_pass(timestamp: str, window: str | None) -> None:
    check_freshness(timestamp, window, now_ms=1_700_000_000_000)
