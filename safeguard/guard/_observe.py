"""The core's :class:`~safeguard.guard._core.Observer`: every attempt logged, measured, emitted.

Each attempt becomes one structured log record
(:func:`safeguard.guard._request_log.request_record`, with the policy version, redacted), one
:class:`~safeguard.guard._events.RequestEvent`, and one sample for the venue-health monitor,
which emits its own state changes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from safeguard._log import logger
from safeguard.guard._classify import ErrorClass, RetryClass
from safeguard.guard._core import Answer, Send
from safeguard.guard._degradation import RequestOutcome
from safeguard.guard._events import EventKind, Hooks, RequestEvent, RetryEvent, VerdictEvent
from safeguard.guard._orders import STOP_SUFFIX, CallKind
from safeguard.guard._request_log import WireRequest, log_request, request_record, take_wire
from safeguard.guard._throttle import rate_headers
from safeguard.guard._tripwire import TripWire


class Health(Protocol):
    """The venue-health monitor as the guard feeds and reads it."""

    def record(self, endpoint: str, latency_s: float, outcome: str, now: float) -> Any: ...

    def record_data_age(self, age_s: float, now: float) -> Any: ...

    def state(self, now: float) -> Any: ...


class AlwaysNormal:
    """Health for a guard built without a monitor: always NORMAL."""

    def record(self, endpoint: str, latency_s: float, outcome: str, now: float) -> None:
        return None

    def record_data_age(self, age_s: float, now: float) -> None:
        return None

    def state(self, now: float) -> str:
        return "NORMAL"


def _health_outcome(ec: ErrorClass | None) -> RequestOutcome | None:
    """What one request says about the venue's health. A definite refusal (a bad request,
    an unknown order, ccxt refusing the call's arguments) is an answer from a working venue,
    or no request at all; an exception that is not ccxt's (a TypeError from arguments ccxt
    cannot use) says nothing about the venue: counted as errors, a caller's mistakes made
    the venue SEVERE and refused every new order."""
    if ec is None:
        return RequestOutcome.OK
    if ec.throttled:
        return RequestOutcome.THROTTLED
    if ec.reason == "unrecognised":
        return None
    return RequestOutcome.OK if ec.retry is RetryClass.NEVER else RequestOutcome.ERROR


@dataclass
class RequestObserver:
    exchange_id: str
    policy_version: str
    hooks: Hooks
    health: Health = field(default_factory=AlwaysNormal)
    tripwire: TripWire | None = None
    """Kill-switch triggers fed with every outcome (opt-in)."""
    tapped: bool = False
    """Whether the exchange's requests are noted
    (:func:`~safeguard.guard._request_log.tap_wire`): then a call that noted none was answered
    from ccxt's cache."""
    _verdicts: OrderedDict[str, str] = field(default_factory=OrderedDict, init=False)
    """The verdict code of each recently judged order, by client order id, for its request
    record (every resend of one id carries the one verdict)."""

    def __post_init__(self) -> None:
        self.hooks.subscribe(EventKind.VERDICT, self._judged, immediate=True)

    def _judged(self, event: VerdictEvent) -> None:
        if event.client_order_id is None:
            return
        self._verdicts[event.client_order_id] = "ALLOWED" if event.allowed else str(event.code)
        self._verdicts.move_to_end(event.client_order_id)
        while len(self._verdicts) > _VERDICTS_KEPT:
            self._verdicts.popitem(last=False)

    def _verdict_of(self, client_order_id: str | None) -> str | None:
        if client_order_id is None:
            return None
        found = self._verdicts.get(client_order_id)
        if found is None and client_order_id.endswith(STOP_SUFFIX):
            # A protective stop is judged with its entry, not on its own.
            found = self._verdicts.get(client_order_id.removesuffix(STOP_SUFFIX))
        return found

    def request(
        self, send: Send, answer: Answer, ec: ErrorClass | None, attempt: int, kind: CallKind
    ) -> None:
        now = answer.now
        latency = max(0.0, now - answer.started)
        outcome = "ok" if ec is None else ("throttled" if ec.throttled else "error")
        health = RequestOutcome.OK if ec is None else _health_outcome(ec)
        noted = take_wire()  # taken even when nobody logs: it must not outlive this call
        if health is RequestOutcome.OK and noted is None and self.tapped:
            # Answered from ccxt's cache: nothing reached the venue, which it says nothing
            # of (ten cached calls per loop made 40 % failing reads look like 5 %).
            health = None
        if health is not None:
            # The sample is the guard's own (a method name, times from its clock): a monitor
            # that can take it unchecked does. Either emits its own state changes.
            record_sample = getattr(self.health, "record_sample", None)
            if record_sample is not None:
                record_sample(send.method, latency, health, now)
            else:
                self.health.record(send.method, latency, str(health), now)
        if self.tripwire is not None:
            self.tripwire.request(send, answer, ec)
        listening = self.hooks.listening(EventKind.REQUEST)
        # A call ccxt answered from its cache sent nothing: DEBUG, not a request at INFO.
        level = "INFO" if noted is not None else "DEBUG"
        if ec is not None:
            level = "WARNING"
        logging = _would_log(_LEVEL_NO[level])
        if not (listening or logging):
            return  # nobody listens: skip building records on the hot path
        cid = _client_order_id(send)
        if listening:
            self.hooks.emit(
                RequestEvent(
                    at=now,
                    method=send.method,
                    endpoint=send.method,
                    attempt=attempt,
                    outcome=outcome,
                    latency_s=latency,
                    status=None if ec is None else ec.status,
                    client_order_id=cid,
                    error_type=None if ec is None else ec.error_type,
                    weights=rate_headers(answer.headers),
                )
            )
        if logging:
            wire = None if noted is None else noted.parsed()
            log_request(
                request_record(
                    method=send.method,
                    endpoint=None if wire is None else wire.endpoint,
                    params=_call_params(send) if wire is None else wire.params,
                    status=_status(wire, ec),
                    latency_s=latency,
                    attempt=attempt,
                    headers=answer.headers,
                    client_order_id=cid,
                    verdict=self._verdict_of(cid) if kind is CallKind.ORDER else None,
                    policy_version=self.policy_version,
                    outcome=outcome,
                    error=answer.error,
                ),
                level=level,
            )

    def retry(self, send: Send, ec: ErrorClass, attempt: int, delay: float, now: float) -> None:
        self.hooks.emit(
            RetryEvent(
                at=now,
                method=send.method,
                attempt=attempt,
                delay_s=delay,
                reason=ec.reason,
                error_type=ec.error_type,
                resolve_first=send.method == "create_order" and ec.retry.value == "AMBIGUOUS",
                client_order_id=_client_order_id(send),
            )
        )


_LOGGING_MODULE = "safeguard.guard._request_log"
_LEVEL_NO = {"DEBUG": 10, "INFO": 20, "WARNING": 30}
_VERDICTS_KEPT = 1024


def _status(wire: WireRequest | None, ec: ErrorClass | None) -> int | None:
    if wire is not None and wire.status is not None:
        return int(wire.status)
    return None if ec is None else ec.status


def _call_params(send: Send) -> dict[str, Any]:
    """The ccxt call's own arguments, for a call that sent nothing on the wire."""
    params = send.kwargs.get("params")
    named = {k: v for k, v in send.kwargs.items() if k != "params"}
    if send.args:
        named["args"] = list(send.args)
    if isinstance(params, Mapping):
        named.update(params)
    return named


def _would_log(level_no: int) -> bool:
    """Whether loguru would deliver a record from safeguard at ``level_no``.

    safeguard is disabled by default and the records are costly to build (redaction), so
    the hot path asks first. This mirrors loguru's own early exits (no handler, level below
    every handler, module disabled); anything unexpected answers True, so a record is never
    lost to this check, only built in vain.
    """
    core = getattr(logger, "_core", None)
    try:
        if not core.handlers or level_no < core.min_level:  # type: ignore[union-attr]
            return False
        cached = core.enabled.get(_LOGGING_MODULE)  # type: ignore[union-attr]
        if cached is not None:
            return bool(cached)
        dotted = _LOGGING_MODULE + "."
        for prefix, status in core.activation_list:  # type: ignore[union-attr]
            if dotted.startswith(prefix):
                return bool(status)
    except (AttributeError, TypeError):
        return True
    return True


def _client_order_id(send: Send) -> str | None:
    params = send.kwargs.get("params")
    if isinstance(params, Mapping):
        for key in ("clientOrderId", "origClientOrderId", "clientAlgoId"):
            if isinstance(params.get(key), str):
                return str(params[key])
    return None


__all__ = ["AlwaysNormal", "Health", "RequestObserver"]
