"""The core's :class:`~safeguard.guard.core.Observer`: every attempt logged, measured, emitted.

Each attempt becomes one structured log record (with the policy version, redacted), one
:class:`~safeguard.guard.events.RequestEvent`, and one sample for the venue-health monitor,
whose state changes are emitted as :class:`~safeguard.guard.events.StateChangeEvent`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from loguru import logger

from safeguard.guard.classify import ErrorClass
from safeguard.guard.core import Answer, Send
from safeguard.guard.events import Hooks, RequestEvent, RetryEvent, StateChangeEvent
from safeguard.guard.orders import CallKind
from safeguard.guard.throttle import rate_headers


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


@dataclass
class RequestObserver:
    exchange_id: str
    policy_version: str
    hooks: Hooks
    health: Health = field(default_factory=AlwaysNormal)
    _last_state: str = "NORMAL"

    def request(
        self, send: Send, answer: Answer, ec: ErrorClass | None, attempt: int, kind: CallKind
    ) -> None:
        now = answer.now
        latency = max(0.0, now - answer.started)
        outcome = "ok" if ec is None else ("throttled" if ec.throttled else "error")
        cid = _client_order_id(send)
        self.health.record(send.method, latency, outcome, now)
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
        # Plain fields only (method names, ids, fixed error labels): nothing here can carry a
        # credential, so the record needs no redaction pass on the hot path.
        record = {
            "exchange": self.exchange_id,
            "policy_version": self.policy_version,
            "method": send.method,
            "kind": str(kind),
            "attempt": attempt,
            "outcome": outcome,
            "latency_s": round(latency, 6),
            "client_order_id": cid,
            "error": None if ec is None else f"{ec.error_type}:{ec.reason}",
            "status": None if ec is None else ec.status,
        }
        level = "DEBUG" if ec is None else "WARNING"
        logger.log(level, "{method} {outcome}", **record)
        self.health_changed(now)

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

    def health_changed(self, now: float) -> str:
        """The venue's health now; emits a StateChangeEvent when it moved."""
        state = str(getattr(self.health.state(now), "value", self.health.state(now)))
        if state != self._last_state:
            previous, self._last_state = self._last_state, state
            logger.warning("venue health {} -> {}", previous, state)
            self.hooks.emit(
                StateChangeEvent(
                    at=now,
                    previous=previous,
                    current=state,
                    metric="venue_health",
                    value=0.0,
                    threshold=0.0,
                )
            )
        return state


def _client_order_id(send: Send) -> str | None:
    params = send.kwargs.get("params")
    if isinstance(params, Mapping):
        for key in ("clientOrderId", "origClientOrderId", "clientAlgoId"):
            if isinstance(params.get(key), str):
                return str(params[key])
    return None


__all__ = ["AlwaysNormal", "Health", "RequestObserver"]
