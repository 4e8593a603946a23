"""What a ccxt error means for the next step: retry it, resolve it, or give up.

Every ccxt exception class has one row in :data:`CCXT_RULES` (a test walks ``ccxt.base.errors``
and fails on any class without one), and :func:`to_safeguard_error` maps it into the one error
tree at this one boundary, with a scrubbed copy of the ccxt error chained as ``__cause__``.

The retry classes follow urllib3's split between "connect" and "read" failures:

* ``SAFE``: nothing reached the venue, or the venue refused without acting (429, a stale
  timestamp, maintenance). Retrying cannot create anything twice.
* ``AMBIGUOUS``: the request may have reached the venue (timeouts, dropped connections, 5xx,
  an unparseable answer). A read simply retries; an order must first be looked up by its
  client order id, and only an order known not to exist is sent again.
* ``NEVER``: the venue answered and said no (insufficient funds, invalid order, bad symbol,
  authentication). The same request will get the same answer.

ccxt traps worth naming: HTTP 429 *and* 418 both arrive as ``DDoSProtection`` (a sibling of
``RateLimitExceeded``, not a child), so a ban is told apart by the status in the message or
passed in by the driver; a 5xx with a JSON body is a bare ``OperationFailed``, which is *not* a
``NetworkError``; and a duplicate ``newClientOrderId`` (-4116) is an ``InvalidOrder`` that for
our own resend means "the first send landed": resolve it by lookup.
"""

from __future__ import annotations

import email.utils
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import ccxt

from safeguard import _errors as errors
from safeguard.guard._redact import scrub_text, scrubbed_exception
from safeguard.risk import _inputs


class RetryClass(StrEnum):
    """Whether a failed request may be sent again, and under what condition."""

    SAFE = "SAFE"
    AMBIGUOUS = "AMBIGUOUS"
    NEVER = "NEVER"


@dataclass(frozen=True, slots=True)
class ErrorClass:
    """The classification of one failure. ``reason`` is a short stable label for logs."""

    retry: RetryClass
    reason: str
    throttled: bool = False
    """The venue said "too many" (HTTP 429, -1003, -1015): the rate budget must back off."""
    banned: bool = False
    """HTTP 418 or "IP banned until": nothing may be sent until the ban ends."""
    retry_after: float | None = None
    """Seconds the venue asked us to wait (``Retry-After``), when it said."""
    banned_until: float | None = None
    """Epoch seconds the venue named as the end of a ban, when it said."""
    status: int | None = None
    """HTTP status, when known."""
    venue_code: str | None = None
    """The venue's JSON error code (``"-2019"``), when the answer carried one."""
    duplicate_client_order_id: bool = False
    """The venue already holds an order with this client id: the earlier send landed."""
    error_type: str = ""
    """The class name of the classified exception."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: how a ccxt class is retried and where it lands in our tree."""

    retry: RetryClass
    target: type[errors.SafeguardError]
    throttled: bool = False


_S, _A, _N = RetryClass.SAFE, RetryClass.AMBIGUOUS, RetryClass.NEVER

CCXT_RULES: Mapping[type[BaseException], Rule] = {
    # --- the venue answered and refused ---------------------------------------------------
    # A bare ExchangeError is also ccxt's wrapper for SSL and redirect failures; without a
    # venue code it is treated as AMBIGUOUS at classification time (see _refine).
    ccxt.ExchangeError: Rule(_N, errors.VenueRejected),
    ccxt.AuthenticationError: Rule(_N, errors.AuthenticationFailed),
    ccxt.PermissionDenied: Rule(_N, errors.AuthenticationFailed),
    ccxt.AccountNotEnabled: Rule(_N, errors.AuthenticationFailed),
    ccxt.AccountSuspended: Rule(_N, errors.AuthenticationFailed),
    ccxt.ArgumentsRequired: Rule(_N, errors.InvalidOrder),
    ccxt.BadRequest: Rule(_N, errors.InvalidOrder),
    ccxt.BadSymbol: Rule(_N, errors.InvalidOrder),
    ccxt.OperationRejected: Rule(_N, errors.VenueRejected),
    ccxt.NoChange: Rule(_N, errors.VenueRejected),
    ccxt.MarginModeAlreadySet: Rule(_N, errors.VenueRejected),
    ccxt.MarketClosed: Rule(_N, errors.VenueRejected),
    ccxt.ManualInteractionNeeded: Rule(_N, errors.VenueRejected),
    ccxt.RestrictedLocation: Rule(_N, errors.VenueRejected),
    ccxt.InsufficientFunds: Rule(_N, errors.InsufficientFunds),
    ccxt.InvalidAddress: Rule(_N, errors.VenueRejected),
    ccxt.AddressPending: Rule(_N, errors.VenueRejected),
    ccxt.InvalidOrder: Rule(_N, errors.InvalidOrder),
    ccxt.OrderNotFound: Rule(_N, errors.OrderNotFound),
    ccxt.OrderNotCached: Rule(_N, errors.OrderNotFound),
    ccxt.OrderImmediatelyFillable: Rule(_N, errors.InvalidOrder),
    ccxt.OrderNotFillable: Rule(_N, errors.InvalidOrder),
    ccxt.DuplicateOrderId: Rule(_A, errors.InvalidOrder),
    ccxt.ContractUnavailable: Rule(_N, errors.InvalidOrder),
    ccxt.NotSupported: Rule(_N, errors.VenueRejected),
    # Raised by ccxt before any I/O: a configuration problem, and nothing was sent.
    ccxt.InvalidProxySettings: Rule(_N, errors.ConfigError),
    ccxt.ExchangeClosedByUser: Rule(_N, errors.RequestBlocked),
    # --- the request failed on the way: it may or may not have reached the venue ----------
    ccxt.BaseError: Rule(_A, errors.RetriesExhausted),
    ccxt.OperationFailed: Rule(_A, errors.RetriesExhausted),  # 5xx with a JSON code
    ccxt.NetworkError: Rule(_A, errors.RetriesExhausted),
    ccxt.ExchangeNotAvailable: Rule(_A, errors.RetriesExhausted),
    ccxt.RequestTimeout: Rule(_A, errors.RetriesExhausted),
    ccxt.BadResponse: Rule(_A, errors.RetriesExhausted),
    ccxt.NullResponse: Rule(_A, errors.RetriesExhausted),
    ccxt.CancelPending: Rule(_A, errors.RetriesExhausted),
    # --- the venue refused without acting: safe to send again later ------------------------
    ccxt.DDoSProtection: Rule(_S, errors.RetriesExhausted, throttled=True),  # 429 and 418
    ccxt.RateLimitExceeded: Rule(_S, errors.RetriesExhausted, throttled=True),  # -1003, -1015
    ccxt.OnMaintenance: Rule(_S, errors.RetriesExhausted),
    ccxt.InvalidNonce: Rule(_S, errors.RetriesExhausted),  # -1021: timestamp refused
    ccxt.ChecksumError: Rule(_S, errors.RetriesExhausted),
    ccxt.UnsubscribeError: Rule(_N, errors.VenueRejected),
}

# Lower-layer exceptions raised while *connecting*: the request never left this machine.
# Matched by name so neither requests/urllib3 nor aiohttp has to be importable.
_CONNECT_PHASE = frozenset(
    {
        "ConnectionRefusedError",
        "NewConnectionError",
        "NameResolutionError",
        "ConnectTimeout",  # requests: a RequestTimeout that never connected
        "ClientConnectorError",  # aiohttp
        "ClientConnectorDNSError",
        "ConnectionTimeoutError",  # aiohttp >= 3.10 connect timeout
        "gaierror",
    }
)

_DUPLICATE_CLIENT_ID_CODES = frozenset({"-4116"})
_THROTTLE_CODES = frozenset({"-1003", "-1015"})

# "binanceusdm 418 I'm a teapot {...}" (binance handle_errors) or
# "binanceusdm GET http://... 429 Too Many Requests ..." (ccxt handle_http_status_code)
_STATUS_AFTER_ID = re.compile(r"^\S+ ([1-5]\d\d) ")
_STATUS_AFTER_URL = re.compile(r"^\S+ [A-Z]+ \S+ ([1-5]\d\d) ")
_VENUE_CODE = re.compile(r"[\"']code[\"']\s*:\s*[\"']?(-?\d+)")
_BANNED_UNTIL = re.compile(r"banned until (\d{10,13})")


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    """Case-insensitive header lookup (async ccxt hands over a plain dict)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` value: delta-seconds, or an HTTP date when ``now`` is given.

    Returns None for a missing or unparseable value (the caller falls back to its configured
    default), never a negative or non-finite number.
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        if now is None:
            return None
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def rule_for(exc_type: type[BaseException]) -> Rule | None:
    """The table row for ``exc_type``: its own, or its nearest mapped ancestor's."""
    for klass in exc_type.__mro__:
        rule = CCXT_RULES.get(klass)
        if rule is not None:
            return rule
    return None


def classify(
    exc: BaseException,
    *,
    status: int | None = None,
    headers: Mapping[str, str] | None = None,
    retry_after: float | None = None,
    now: float | None = None,
) -> ErrorClass:
    """Classify ``exc``. Pure: it reads only the exception and what is passed in.

    ``status`` and ``headers`` are the failed answer's HTTP status and headers when the driver
    has them (``exchange.last_response_headers``); without a status, the one ccxt writes into
    its message is used. ``retry_after`` overrides the header; ``now`` lets a ``Retry-After``
    given as an HTTP date count (Binance sends seconds). Exceptions that are not ccxt's:
    a :class:`~safeguard._errors.SafeguardError` is NEVER retried (it is already a decision),
    an interrupt (``KeyboardInterrupt``, ``CancelledError``) is NEVER retried, and anything
    else is AMBIGUOUS, because a parsing failure after an order POST means the order landed.
    """
    name = type(exc).__name__
    if isinstance(exc, errors.SafeguardError):
        return ErrorClass(_N, "safeguard", error_type=name)
    if not isinstance(exc, Exception):
        return ErrorClass(_N, "interrupt", error_type=name)
    rule = rule_for(type(exc))
    if rule is None:
        return ErrorClass(_A, "unrecognised", error_type=name)

    message = str(exc)
    if status is None:
        status = _status_from_message(message)
    code_match = _VENUE_CODE.search(message)
    venue_code = code_match.group(1) if code_match else None
    if retry_after is None:
        retry_after = parse_retry_after(header(headers, "Retry-After"), now=now)
    else:
        _inputs.non_negative("retry_after", retry_after)
    until_match = _BANNED_UNTIL.search(message)
    banned_until = _epoch_seconds(until_match.group(1)) if until_match else None

    retry, reason = _refine(exc, rule, venue_code)
    throttled = rule.throttled or venue_code in _THROTTLE_CODES or status == 429
    banned = status == 418 or banned_until is not None
    if banned or throttled:
        # Whatever the class, the venue refused this request outright.
        retry = _S
        reason = "banned" if banned else "throttled"
    return ErrorClass(
        retry=retry,
        reason=reason,
        throttled=throttled or banned,
        banned=banned,
        retry_after=retry_after,
        banned_until=banned_until,
        status=status,
        venue_code=venue_code,
        duplicate_client_order_id=reason == "duplicate-client-order-id",
        error_type=name,
    )


MAX_BAN_S = 3 * 24 * 3600.0
"""Binance's longest ban (its escalation runs from 2 minutes to 3 days). A longer stated ban is
a garbled message or header; believing it would stop the bot until an operator clears it."""


def ban_end(ec: ErrorClass, now: float, default_s: float) -> tuple[float, bool]:
    """When the ban ``ec`` reports ends: the venue's stated time, else ``now`` plus its
    ``Retry-After``, else ``now + default_s``; capped at ``now + MAX_BAN_S``. Returns the end
    and whether the cap cut it (the caller says so loudly)."""
    if ec.banned_until is not None:
        stated = ec.banned_until
    elif ec.retry_after is not None:
        stated = now + ec.retry_after
    else:
        stated = now + default_s
    capped = now + MAX_BAN_S
    return (capped, True) if stated > capped else (stated, False)


def _refine(exc: Exception, rule: Rule, venue_code: str | None) -> tuple[RetryClass, str]:
    if isinstance(exc, ccxt.DuplicateOrderId) or venue_code in _DUPLICATE_CLIENT_ID_CODES:
        return _A, "duplicate-client-order-id"
    if rule.retry is _A and _failed_while_connecting(exc):
        return _S, "not-sent"
    if type(exc) is ccxt.ExchangeError and venue_code is None:
        # No venue code: ccxt wrapped a transport failure (SSL, redirects) in ExchangeError.
        return _A, "transport"
    labels = {_S: "refused", _A: "may-have-reached-venue", _N: "rejected"}
    return rule.retry, labels[rule.retry]


def _failed_while_connecting(exc: BaseException) -> bool:
    """True when a lower-layer error in the chain shows the request never left this host."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen or len(seen) > 64:
            continue
        seen.add(id(current))
        if any(klass.__name__ in _CONNECT_PHASE for klass in type(current).__mro__):
            return True
        links = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        links.extend(arg for arg in current.args if isinstance(arg, BaseException))
        stack.extend(link for link in links if isinstance(link, BaseException))
    return False


def _status_from_message(message: str) -> int | None:
    for pattern in (_STATUS_AFTER_URL, _STATUS_AFTER_ID):
        match = pattern.match(message)
        if match:
            return int(match.group(1))
    return None


def _epoch_seconds(digits: str) -> float:
    value = float(digits)
    return value / 1000.0 if len(digits) >= 13 else value


def to_safeguard_error(
    exc: BaseException,
    error_class: ErrorClass | None = None,
    *,
    now: float,
    client_order_id: str | None = None,
    symbol: str | None = None,
    attempts: int = 1,
    elapsed: float = 0.0,
    default_ban_s: float = 120.0,
) -> errors.SafeguardError:
    """Map ``exc`` into safeguard's error tree.

    ``client_order_id`` marks the failed request as an order: an AMBIGUOUS failure then becomes
    :class:`~safeguard._errors.OutcomeUnknown` (reconcile by that id), while for a read it is
    :class:`~safeguard._errors.RetriesExhausted`. A ban becomes
    :class:`~safeguard._errors.VenueBanned` ending at the venue's stated time, else ``now`` plus
    ``Retry-After``, else ``now + default_ban_s``. The message is scrubbed of credentials (ccxt
    messages embed the signed URL), and so is ``__cause__``: a scrubbed copy of ``exc`` of the
    same type (:func:`~safeguard.guard._redact.scrubbed_exception`), never the raw error, so no
    traceback or logger prints the signature. The caller raises the result as it is.
    """
    if isinstance(exc, errors.SafeguardError):
        return exc
    ec = error_class if error_class is not None else classify(exc)
    rule = rule_for(type(exc))
    detail = scrub_text(f"{type(exc).__name__}: {exc}")
    result: errors.SafeguardError
    if ec.banned:
        until, _ = ban_end(ec, now, default_ban_s)
        stamp = datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds")
        result = errors.VenueBanned(
            f"the venue banned this client until {stamp}; nothing is sent until then ({detail})",
            until=until,
        )
    elif ec.retry is RetryClass.NEVER and rule is not None:
        result = _rejection(rule.target, detail, ec.venue_code)
    elif ec.retry is RetryClass.AMBIGUOUS and client_order_id is not None:
        result = errors.OutcomeUnknown(
            f"order {client_order_id} may or may not exist after {attempts} attempt(s); "
            f"reconcile by client order id before sending it again ({detail})",
            client_order_id=client_order_id,
            symbol=symbol,
        )
    else:
        what = "throttled by the venue" if ec.throttled else "failed"
        result = errors.RetriesExhausted(
            f"request {what} on all {attempts} attempt(s) over {elapsed:.1f}s ({detail})",
            attempts=attempts,
            elapsed=elapsed,
        )
    result.__cause__ = scrubbed_exception(exc)
    result.__suppress_context__ = True
    return result


def _rejection(
    target: type[errors.SafeguardError], detail: str, venue_code: str | None
) -> errors.SafeguardError:
    if issubclass(target, errors.VenueRejected):
        return target(detail, venue_code=venue_code)
    if target is errors.ConfigError:
        return errors.ConfigError(detail, key="exchange")
    return errors.RequestBlocked(detail)


__all__ = [
    "CCXT_RULES",
    "MAX_BAN_S",
    "ErrorClass",
    "RetryClass",
    "Rule",
    "ban_end",
    "classify",
    "header",
    "parse_retry_after",
    "rule_for",
    "to_safeguard_error",
]
