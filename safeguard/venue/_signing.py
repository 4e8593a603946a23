"""Binance's request signing, checked the way the venue checks it.

A signed request carries ``timestamp``, optionally ``recvWindow``, and ``signature``: the hex
HMAC-SHA256, keyed by the account's secret, of the total parameter string (the query string
followed by the form body) with the ``signature`` item itself removed. The API key travels in
the ``X-MBX-APIKEY`` header.

Freshness is judged against the *transport's* clock, not the simulation's: ccxt stamps every
request with wall time, and a simulated clock that starts in 2023 could never agree with it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from safeguard.venue._errors import VenueReject, illegal, missing

DEFAULT_RECV_WINDOW_MS = 5_000
MAX_RECV_WINDOW_MS = 60_000
# Binance accepts a timestamp up to one second in its own future (clock skew), no more.
MAX_AHEAD_MS = 1_000

_INTEGER = re.compile(r"^[0-9]{1,19}$")


def sign(payload: str, secret: str) -> str:
    """The signature Binance expects for ``payload`` (the urlencoded parameters)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class SignedPayload:
    """What a signed request claims: the string that was signed and the signature sent."""

    payload: str
    signature: str | None


def split_signature(query: str, body: str) -> SignedPayload:
    """Separate the ``signature`` item from the total parameter string.

    Binance defines the signed text as the query string concatenated with the body, so the
    signature is removed from whichever part carries it and the rest is kept byte for byte:
    re-encoding would reject signatures over perfectly valid (if unusual) encodings.
    """
    signature: str | None = None
    parts: list[str] = []
    for raw in (query, body):
        if not raw:
            continue
        kept = []
        for item in raw.split("&"):
            if item.startswith("signature="):
                signature = item[len("signature=") :]
            else:
                kept.append(item)
        parts.append("&".join(kept))
    return SignedPayload(payload="".join(parts), signature=signature)


def check_signature(signed: SignedPayload, secret: str) -> None:
    """Raise -1102 for a missing signature and -1022 for a wrong one."""
    if not signed.signature:
        raise missing("signature")
    expected = sign(signed.payload, secret)
    # compare_digest raises TypeError on non-ASCII str; bytes compare whatever was sent.
    sent = signed.signature.lower().encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(expected.encode("ascii"), sent):
        raise VenueReject(-1022, "Signature for this request is not valid.")


def check_freshness(timestamp: str | None, recv_window: str | None, *, now_ms: int) -> None:
    """Raise the venue's answer when ``timestamp`` is missing, malformed or stale.

    The request is fresh when ``timestamp < now + 1000`` and ``now - timestamp <= recvWindow``.
    """
    if timestamp is None or timestamp == "":
        raise missing("timestamp")
    if not _INTEGER.match(timestamp):
        raise illegal("timestamp")
    window = DEFAULT_RECV_WINDOW_MS
    if recv_window is not None:
        if not _INTEGER.match(recv_window):
            raise illegal("recvWindow")
        window = int(recv_window)
        if window <= 0 or window > MAX_RECV_WINDOW_MS:
            raise VenueReject(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW_MS}.")
    stamp = int(timestamp)
    if stamp >= now_ms + MAX_AHEAD_MS:
        raise VenueReject(
            -1021, f"Timestamp for this request was {MAX_AHEAD_MS}ms ahead of the server's time."
        )
    if now_ms - stamp > window:
        raise VenueReject(-1021, "Timestamp for this request is outside of the recvWindow.")


__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "MAX_RECV_WINDOW_MS",
    "SignedPayload",
    "check_freshness",
    "check_signature",
    "sign",
    "split_signature",
]
