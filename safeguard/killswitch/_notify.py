"""Telling people the kill switch moved: a webhook delivered in the background.

``engage`` never waits for the network: :meth:`WebhookNotifier.notify` puts the payload on a
queue and returns; one daemon thread posts it with ``httpx`` (``webhook_timeout_s`` per
attempt), retrying connection errors, timeouts, HTTP 429 and 5xx up to
``webhook_max_attempts`` times (tenacity's loop) with a doubling pause from
``webhook_retry_delay_s``, capped at 30 s (:meth:`WebhookNotifier.retry_policy`). Any other
answer (a 4xx) is final. A notification that cannot be delivered is logged at ERROR and
dropped; it never blocks or fails the switch. The log record of every engage and resume is
written by the switch itself (loguru, ``safeguard.killswitch._switch``).

The payload is one JSON object, ``Content-Type: application/json``::

    {
      "event": "engage",            // "engage" or "resume"
      "state": "HALTED",            // the state now: ACTIVE, REDUCING or HALTED
      "previous": "ACTIVE",         // the state before this change
      "reason": "daily loss 5.2% > 5%",
      "code": "DAILY_LOSS",         // a stable safeguard.Code ("" once ACTIVE)
      "by": "cli:alice@desk-1",     // who: "manual", "cli:user@host", "signal:pid", a trigger
      "since": 1763716000.25,       // when the state was set, epoch seconds
      "since_iso": "2025-11-21T09:06:40+00:00",
      "persisted": true,            // false: engaged in memory only (state store failed)
      "store": "/home/me/.local/state/safeguard/state.json",
      "host": "desk-1",
      "pid": 4242,
      "sent_at": 1763716000.31      // when this attempt was made
    }
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from safeguard._config import WEBHOOK_SCHEMES, KillSwitchConfig, RetryConfig, check_url
from safeguard._log import logger
from safeguard._subscribers import Subscribers
from safeguard.killswitch._state import Listener, SwitchState

if TYPE_CHECKING:
    import httpx

    from safeguard.guard._events import Hooks, WarningEvent

MAX_RETRY_DELAY_S = 30.0


def build_payload(
    event: str, state: SwitchState, previous: SwitchState, *, store: str, persisted: bool
) -> dict[str, Any]:
    """The JSON document described in the module docstring (without ``sent_at``)."""
    if event not in ("engage", "resume"):
        raise ValueError(f"event must be 'engage' or 'resume', got {event!r}")
    return {
        "event": event,
        "state": state.state.value,
        "previous": previous.state.value,
        "reason": state.reason,
        "code": state.code,
        "by": state.by,
        "since": state.since,
        "since_iso": state.since_iso,
        "persisted": persisted,
        "store": store,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def should_retry(status_code: int | None) -> bool:
    """``None`` is a transport failure (no answer): worth another try, like 429 and 5xx."""
    return status_code is None or status_code == 429 or status_code >= 500


def _delivered(status: int | None) -> bool:
    return status is not None and status < 300


def validate_url(url: object) -> str:
    """The URL as a plain string. The messages never echo it: its path is often its secret."""
    if isinstance(url, SecretStr):
        url = url.get_secret_value()
    if not isinstance(url, str):
        raise ValueError(f"webhook_url must be a string, got {type(url).__name__}")
    return check_url(url, name="webhook_url", schemes=WEBHOOK_SCHEMES)


class Delivery:
    """The outcome of one notification, for a caller that wants to say whether it arrived
    (``safeguard kill`` does). Written by the delivery thread; ``wait`` to read it."""

    def __init__(self) -> None:
        self._finished = threading.Event()
        self.delivered = False
        self.attempts = 0
        self.problem: str | None = None  # the last failed attempt's, host only (no secret)

    def wait(self, timeout: float) -> bool:
        """True once delivered or given up on; False if still trying after ``timeout`` s."""
        return self._finished.wait(timeout)

    def _attempted(self, problem: str | None) -> None:
        self.attempts += 1
        if problem is None:
            self.delivered = True
        else:
            self.problem = problem

    def _finish(self) -> None:
        self._finished.set()


_STOP = object()


class WebhookNotifier:
    """Posts payloads to one URL from a background thread (see the module docstring)."""

    def __init__(
        self,
        url: str | SecretStr,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 5,
        retry_delay_s: float = 0.5,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = validate_url(url)
        parts = urlsplit(self.url)
        # Webhook URLs often carry their secret in the path: logs name the host only.
        self._shown = f"{parts.scheme}://{parts.hostname}"
        for name, value in (
            ("webhook_timeout_s", timeout_s),
            ("webhook_retry_delay_s", retry_delay_s),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e9:
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(
                f"webhook_max_attempts must be a positive integer, got {max_attempts!r}"
            )
        self.timeout_s = float(timeout_s)
        self.max_attempts = max_attempts
        self.retry_delay_s = float(retry_delay_s)
        self._transport = transport
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stopping = threading.Event()
        self.delivered = 0
        self.dropped = 0
        self.last_delivery: Delivery | None = None

    @classmethod
    def from_config(cls, config: KillSwitchConfig) -> WebhookNotifier:
        if config.webhook_url is None:
            raise ValueError("webhook_url is not set")
        return cls(
            config.webhook_url,
            timeout_s=config.webhook_timeout_s,
            max_attempts=config.webhook_max_attempts,
            retry_delay_s=config.webhook_retry_delay_s,
        )

    def retry_policy(self) -> RetryConfig:
        """The attempts and the pauses between them: the one retry schedule
        (:meth:`~safeguard._config.RetryConfig.ceiling`, no jitter: one notifier posts to one
        URL), ``retry_delay_s`` doubling up to 30 s."""
        base = min(self.retry_delay_s, MAX_RETRY_DELAY_S)
        return RetryConfig(
            max_attempts=self.max_attempts, base_delay_s=base, max_delay_s=MAX_RETRY_DELAY_S
        )

    def notify(self, payload: Mapping[str, Any]) -> Delivery:
        """Queue ``payload`` for delivery and return at once, with a handle on its outcome
        (also kept as :attr:`last_delivery`)."""
        delivery = self.last_delivery = Delivery()
        if self._stopping.is_set():
            logger.error("kill switch webhook closed; notification dropped: {}", dict(payload))
            self.dropped += 1
            delivery.problem = "the notifier was closed"
            delivery._finish()
            return delivery
        self._ensure_started()
        self._queue.put((dict(payload), delivery))
        return delivery

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (waiting at most ``timeout`` s), then stop. True if flushed."""
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return True
        self._queue.put(_STOP)
        thread.join(timeout)
        return not thread.is_alive()

    def _ensure_started(self) -> None:
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="safeguard-killswitch-webhook", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        import httpx  # on the worker thread: starting a bot or the CLI never pays for it

        # Loading the CA bundle costs ~0.3 s; a plain-http URL (a local relay) never uses it.
        tls = urlsplit(self.url).scheme == "https"
        with httpx.Client(timeout=self.timeout_s, transport=self._transport, verify=tls) as client:
            while (item := self._queue.get()) is not _STOP:
                assert isinstance(item, tuple)
                payload, delivery = item
                try:
                    self._deliver(client, payload, delivery)
                finally:
                    delivery._finish()

    def _deliver(self, client: httpx.Client, payload: dict[str, Any], delivery: Delivery) -> None:
        import tenacity  # on the worker thread, like httpx

        def post() -> tuple[int | None, str]:
            """One attempt: (HTTP status or ``None``, the problem in words). Never raises."""
            try:
                response = client.post(self.url, json={**payload, "sent_at": time.time()})
            except Exception as exc:  # httpx.HTTPError, and anything else: never kill the worker
                problem = f"{type(exc).__name__}: {exc}".replace(self.url, self._shown)
                delivery._attempted(problem)
                return None, problem
            status = response.status_code
            delivery._attempted(None if status < 300 else f"HTTP {status}")
            return status, f"HTTP {status}"

        def again(state: tenacity.RetryCallState) -> None:
            _, problem = state.outcome.result() if state.outcome else (None, "?")
            logger.warning(
                "kill switch webhook attempt {} failed: {}; retrying", state.attempt_number, problem
            )

        policy = self.retry_policy()
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=lambda state: policy.ceiling(state.attempt_number),
            # Delivered, or a final answer (a 4xx): stop; else (no answer, 429, 5xx): again.
            retry=tenacity.retry_if_result(
                lambda result: not _delivered(result[0]) and should_retry(result[0])
            ),
            before_sleep=again,
            retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
            sleep=time.sleep,
        )
        status, problem = retrying(post)
        attempt = retrying.statistics.get("attempt_number", self.max_attempts)
        if _delivered(status):
            self.delivered += 1
            logger.debug("kill switch webhook delivered ({} attempt(s))", attempt)
            return
        self.dropped += 1
        logger.error(
            "kill switch webhook to {} not delivered after {} attempt(s): {}; payload {}",
            self._shown,
            attempt,
            problem,
            payload,
        )


class Announcer:
    """Tells whoever asked that the switch moved: the listeners in this process, in the thread
    that made or noticed the change, and the webhook in the background. A listener's
    exception is logged and never stops the switch."""

    def __init__(self, notifier: WebhookNotifier | None, store: str) -> None:
        self._notifier = notifier
        self._store = store
        self._listeners: Subscribers[Listener] = Subscribers("listener")

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(state)`` after every change; returns a function that removes it."""
        return self._listeners.add(callback)

    def announce(
        self, event: str, state: SwitchState, previous: SwitchState, *, persisted: bool
    ) -> None:
        """A change made here: the webhook (queued, never waited for) and the listeners."""
        if self._notifier is not None:
            self._notifier.notify(
                build_payload(event, state, previous, store=self._store, persisted=persisted)
            )
        self.call_listeners(state)

    def call_listeners(self, state: SwitchState) -> None:
        for listener in self._listeners.snapshot():
            try:
                listener(state)
            except Exception:
                logger.exception("kill switch listener {!r} failed", listener)

    def close(self, timeout: float) -> None:
        """Flush the notifications still queued (up to ``timeout`` s)."""
        if self._notifier is not None:
            self._notifier.close(timeout)


def warning_payload(event: WarningEvent, *, sent_at: float | None = None) -> dict[str, Any]:
    """The JSON body an early warning is posted as (``"event": "warning"``)."""
    return {
        "event": "warning",
        "name": event.name,
        "severity": event.severity,
        "message": event.message,
        "value": event.value,
        "threshold": event.threshold,
        "symbol": event.symbol,
        "escalate": event.escalate,
        "at": event.at,
        "at_iso": datetime.fromtimestamp(event.at, UTC).isoformat(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "sent_at": time.time() if sent_at is None else sent_at,
    }


def forward_warnings(
    hooks: Hooks, notifier: WebhookNotifier, *, critical_only: bool = False
) -> Callable[[], None]:
    """Post every early warning ``hooks`` delivers (only ``critical`` ones with
    ``critical_only``) to ``notifier``'s webhook, in the background like an engage. Returns a
    function that stops forwarding."""
    from safeguard.guard._events import EventKind, WarningEvent

    def forward(event: object) -> None:
        if isinstance(event, WarningEvent) and (not critical_only or event.severity == "critical"):
            notifier.notify(warning_payload(event))

    return hooks.subscribe(EventKind.WARNING, forward)


__all__ = [
    "MAX_RETRY_DELAY_S",
    "Announcer",
    "Delivery",
    "WebhookNotifier",
    "build_payload",
    "forward_warnings",
    "should_retry",
    "validate_url",
    "warning_payload",
]
