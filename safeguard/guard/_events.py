"""Events a user can subscribe to: request, retry, throttle, state change, verdict, kill,
protective stop, early warning.

Every event is a frozen record (stamina's instrumentation model): it carries what happened and
when (``at``, epoch seconds from the guard's clock), never live objects, and never credentials.
:class:`Hooks` delivers them synchronously, in subscription order, on the thread that emitted
them. A hook that raises is logged and skipped: observing a trade must never break it.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from safeguard.guard._request_log import log


class EventKind(StrEnum):
    REQUEST = "request"
    RETRY = "retry"
    THROTTLE = "throttle"
    STATE_CHANGE = "state_change"
    VERDICT = "verdict"
    KILL = "kill"
    PROTECTIVE_STOP = "protective_stop"
    WARNING = "warning"
    BAND = "band"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event. ``at`` is epoch seconds."""

    kind: ClassVar[EventKind]
    at: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestEvent(Event):
    """One attempt at one venue request finished (answered, failed or was refused)."""

    kind: ClassVar[EventKind] = EventKind.REQUEST
    method: str
    """The unified ccxt method (``create_order``) or HTTP verb and path."""
    endpoint: str
    attempt: int
    outcome: str
    """``ok``, ``error`` or ``throttled``."""
    latency_s: float | None = None
    status: int | None = None
    client_order_id: str | None = None
    error_type: str | None = None
    weights: Mapping[str, str] = field(default_factory=dict)
    """The answer's rate-limit headers (``X-MBX-USED-WEIGHT-1M``, ...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent(Event):
    """A failed attempt will be retried after ``delay_s``."""

    kind: ClassVar[EventKind] = EventKind.RETRY
    method: str
    attempt: int
    delay_s: float
    reason: str
    """The error classification's reason (``throttled``, ``may-have-reached-venue``, ...)."""
    error_type: str
    resolve_first: bool = False
    client_order_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThrottleEvent(Event):
    """The rate budget slowed, held or refused a request, or the venue throttled or banned us."""

    kind: ClassVar[EventKind] = EventKind.THROTTLE
    action: str
    """``wait``, ``hold``, ``banned`` (refused locally), ``429`` or ``418`` (from the venue)."""
    seconds: float
    """How long the request waits, or the ban lasts."""
    request_kind: str | None = None
    limit: str | None = None
    """Which limit drove it (``REQUEST_WEIGHT/1m``, ``ORDERS/10s``)."""
    usage: float | None = None
    """The share of that limit in use, 0..1+."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChangeEvent(Event):
    """Venue health moved between NORMAL, DEGRADED and SEVERE."""

    kind: ClassVar[EventKind] = EventKind.STATE_CHANGE
    previous: str
    current: str
    metric: str
    """What caused it (``latency_p95``, ``error_rate``, ``throttle_rate``, ``data_age``)."""
    value: float
    threshold: float
    endpoint: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerdictEvent(Event):
    """A pre-trade check passed or denied an order."""

    kind: ClassVar[EventKind] = EventKind.VERDICT
    allowed: bool
    code: str | None
    symbol: str | None = None
    client_order_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KillEvent(Event):
    """The kill switch engaged or resumed."""

    kind: ClassVar[EventKind] = EventKind.KILL
    state: str
    reason: str
    by: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtectiveStopEvent(Event):
    """An entry's protective stop was placed, or could not be (the entry stands unprotected)."""

    kind: ClassVar[EventKind] = EventKind.PROTECTIVE_STOP
    outcome: str
    """``placed``, ``failed``, or ``missing`` (a restart's reconcile found the entry on the
    venue, and its stop was never sent: the run died between the two)."""
    symbol: str
    entry_client_order_id: str
    stop_client_order_id: str
    stop_price: float
    error_type: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class WarningEvent(Event):
    """An early warning (:mod:`safeguard.killswitch._early_warnings`): not yet a halt, unless the
    policy escalates it (``escalate`` names the state the switch was moved to)."""

    kind: ClassVar[EventKind] = EventKind.WARNING
    name: str
    """``CANCEL_BURST``, ``LEVERAGE_CHANGES``, ``THIN_BOOK``, ``MARK_INDEX_GAP``,
    ``FUNDING_NEAR_CAP`` or ``PARAMETER_FLAPPING``."""
    severity: str
    """``warning`` or ``critical``."""
    message: str
    value: float
    threshold: float
    symbol: str | None = None
    escalate: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BandEvent(Event):
    """A position's liquidation band, on each account re-read: the marks at which its margin
    ratio crosses the warning level, the venue's partial-reduction level, and one
    (:func:`safeguard.risk._cascade.liquidation_band`); ``None`` for an edge no price reaches
    (or, for the warning, one already passed)."""

    kind: ClassVar[EventKind] = EventKind.BAND
    symbol: str
    mark: float
    margin_ratio: float
    warning: float | None
    partial: float | None
    liquidation: float | None


Hook = Callable[[Any], object]


class Hooks:
    """Subscribers per event kind. Thread-safe; delivery never raises into the emitter.

    ``subscribe(EventKind.RETRY, fn)`` returns a function that unsubscribes ``fn``;
    ``subscribe(None, fn)`` receives every kind. Hooks run synchronously on the emitting thread
    (inside the event loop for the async client), so they must be quick; an ``async def`` hook
    is refused at subscription because nothing would ever await it. During a guarded call
    (:func:`later`) a verdict's hooks run after the send the verdict allowed, so a slow hook
    never stands between a decision and its effect.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[EventKind | None, tuple[Hook, ...]] = {}
        self._immediate: frozenset[Hook] = frozenset()

    def subscribe(
        self, kind: EventKind | str | None, callback: Hook, *, immediate: bool = False
    ) -> Callable[[], None]:
        """``immediate``: the guard's own bookkeeping, which its decisions read (a verdict's
        code for the request log, a health change re-pricing stops): delivered as emitted,
        even during a call."""
        key = None if kind is None else EventKind(kind)
        if not callable(callback):
            raise ValueError(f"callback must be callable, got {type(callback).__name__}")
        if inspect.iscoroutinefunction(callback):
            raise ValueError("callback must be a plain function: hooks are called, not awaited")
        with self._lock:
            self._subscribers[key] = (*self._subscribers.get(key, ()), callback)
            if immediate:
                self._immediate |= {callback}

        def unsubscribe() -> None:
            with self._lock:
                current = list(self._subscribers.get(key, ()))
                if callback in current:
                    current.remove(callback)
                    self._subscribers[key] = tuple(current)
                    if immediate:
                        self._immediate -= {callback}

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to its kind's subscribers, then to catch-all subscribers (during a
        guarded call, all but the immediate ones once the call's effect in hand is done)."""
        with self._lock:
            targets = self._subscribers.get(event.kind, ()) + self._subscribers.get(None, ())
        held = _HELD.get()
        if event.kind in _DECISIONS and held is not None and held.hooks is self and targets:
            immediate = self._immediate
            self._deliver(event, tuple(cb for cb in targets if cb in immediate))
            held.hold(event, tuple(cb for cb in targets if cb not in immediate))
            return
        self._deliver(event, targets)

    def _deliver(self, event: Event, targets: tuple[Hook, ...]) -> None:
        for callback in targets:
            try:
                result = callback(event)
            except Exception:
                log.opt(exception=True).warning(
                    "event hook {hook} failed on a {kind} event; the hook is skipped",
                    hook=getattr(callback, "__qualname__", repr(callback)),
                    kind=str(event.kind),
                )
                continue
            if result is None:
                continue  # the usual hook: nothing to inspect (isawaitable walks the ABCs)
            if inspect.isawaitable(result):
                # A sync callable returning a coroutine: close it rather than leak a warning.
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                log.warning("event hook returned an awaitable; hooks are not awaited")

    def listening(self, kind: EventKind) -> bool:
        """Whether an event of ``kind`` would reach anyone: the hot paths ask before they
        build one. (Lock-free: the subscriber tuples are replaced, never mutated.)"""
        subscribers = self._subscribers
        return bool(subscribers.get(kind) or subscribers.get(None))

    def __len__(self) -> int:
        with self._lock:
            return sum(len(callbacks) for callbacks in self._subscribers.values())


class Held:
    """Events a guarded call emitted, held for its subscribers until :meth:`deliver`."""

    def __init__(self, hooks: Hooks | None) -> None:
        self.hooks = hooks
        self._events: list[tuple[Event, tuple[Hook, ...]]] = []

    def hold(self, event: Event, targets: tuple[Hook, ...]) -> None:
        if targets:
            self._events.append((event, targets))

    def deliver(self) -> None:
        """Run the held hooks, in the order their events were emitted (and any a hook emits)."""
        while self._events and self.hooks is not None:
            events, self._events = self._events, []
            for event, targets in events:
                self.hooks._deliver(event, targets)


_DECISIONS = frozenset({EventKind.VERDICT})
"""The events held during a call: a decision's, heard once its effect is done. What happened
(a request's answer, a retry, a throttle, a state change) is heard as it happens: a hook that
reacts to it (engages the kill switch) must be in time for the call's next step."""

_HELD: ContextVar[Held | None] = ContextVar("safeguard_held_events", default=None)
"""The events the call running in this thread (or asyncio task) holds: per context, so
another thread's or task's events are never held by this call."""


@contextmanager
def later(hooks: Hooks | None) -> Iterator[Held]:
    """Hold ``hooks``' events in this context until ``deliver`` (and deliver the rest on exit,
    however the block ends). The faces drive a call inside one and deliver after each effect."""
    active = _HELD.get()
    if hooks is None or (active is not None and active.hooks is hooks):
        yield active if active is not None else Held(None)  # nested: the outer call delivers
        return
    held = Held(hooks)
    token = _HELD.set(held)
    try:
        yield held
    finally:
        _HELD.reset(token)
        held.deliver()


__all__ = [
    "BandEvent",
    "Event",
    "EventKind",
    "Held",
    "Hook",
    "Hooks",
    "KillEvent",
    "ProtectiveStopEvent",
    "RequestEvent",
    "RetryEvent",
    "StateChangeEvent",
    "ThrottleEvent",
    "VerdictEvent",
    "WarningEvent",
    "later",
]
