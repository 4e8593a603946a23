"""Metrics of a guarded exchange, fed by its :class:`~safeguard.guard._events.Hooks` and its
kill switch's listeners. Counting only: nothing here decides or delays anything."""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeGuard

from safeguard._profiles import BINANCE_USDM
from safeguard.guard._events import (
    BandEvent,
    Event,
    Hooks,
    KillEvent,
    RequestEvent,
    RetryEvent,
    StateChangeEvent,
    ThrottleEvent,
    VerdictEvent,
    WarningEvent,
)
from safeguard.observability._server import MetricsServer, require_prometheus, serve_metrics

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

    from safeguard.killswitch._switch import KillSwitch, SwitchState

LATENCY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Seconds: exchange REST answers live between a few ms and a timeout of tens of seconds."""

HEALTH_STATES = ("NORMAL", "DEGRADED", "SEVERE")
SWITCH_STATES = ("ACTIVE", "REDUCING", "HALTED")

# The venue's rate-limit headers, from its profile: groups (window length, unit).
_WEIGHT = BINANCE_USDM.weight_header
_ORDERS = BINANCE_USDM.order_header
_ORDER_SENDS = frozenset({"create_order"})
_LOOKUPS = frozenset({"fetch_order"})
# Client order ids of order sends whose fate is unknown, kept until a look-up settles them.
# Bounded: an id that is never looked up again (the caller gave up) must not grow memory.
_MAX_IN_DOUBT = 10_000


class Metrics:
    """Prometheus metrics for one bot: ``attach`` its hooks, ``watch_switch`` its kill switch.

    Every metric lives in ``registry`` (a fresh ``CollectorRegistry`` by default, so nothing
    lands in prometheus-client's global one); serve it with
    :func:`~safeguard.observability.serve_metrics`. Attaching several guarded exchanges sums
    their counts. Needs ``safeguard[metrics]``; without it construction raises
    :class:`~safeguard._errors.ConfigError` saying so.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        require_prometheus()
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry if registry is not None else CollectorRegistry()
        counter, gauge = Counter, Gauge
        kw: dict[str, Any] = {"namespace": "safeguard", "registry": self.registry}

        self.requests = counter(
            "requests", "Venue request attempts, by endpoint and outcome.",
            ("endpoint", "outcome"), **kw,
        )  # fmt: skip
        self.request_errors = counter(
            "request_errors", "Failed venue request attempts, by endpoint and error class.",
            ("endpoint", "error_type"), **kw,
        )  # fmt: skip
        self.latency = Histogram(
            "request_latency_seconds", "Latency of venue request attempts, by endpoint.",
            ("endpoint",), buckets=tuple(latency_buckets), **kw,
        )  # fmt: skip
        self.retries = counter(
            "retries", "Failed attempts that will be retried, by method and reason.",
            ("method", "reason"), **kw,
        )  # fmt: skip
        self.retry_delay = counter(
            "retry_delay_seconds", "Backoff scheduled before retries, by method.",
            ("method",), **kw,
        )  # fmt: skip
        self.throttle = counter(
            "throttle_events", "Requests the rate budget slowed, held or refused, and venue "
            "throttles and bans (action: wait, hold, banned, 429, 418).", ("action",), **kw,
        )  # fmt: skip
        self.throttle_wait = counter(
            "throttle_wait_seconds", "Time requests were made to wait by the rate budget.", **kw
        )
        self.limit_usage = gauge(
            "rate_limit_usage_ratio", "Share of a rate limit in use when it last slowed or held "
            "a request (1 = at the limit).", ("limit",), **kw,
        )  # fmt: skip
        self.used_weight = gauge(
            "venue_used_weight", "Request weight the venue last reported as used, by window.",
            ("interval",), **kw,
        )  # fmt: skip
        self.order_count = gauge(
            "venue_order_count", "Order count the venue last reported, by window.",
            ("interval",), **kw,
        )  # fmt: skip
        self.verdicts = counter(
            "verdicts", "Pre-trade verdicts, by result (allowed, denied) and denial code.",
            ("result", "code"), **kw,
        )  # fmt: skip
        self.health = gauge(
            "venue_health_state", "Venue health: 1 for the current state, 0 for the others.",
            ("state",), **kw,
        )  # fmt: skip
        self.health_changes = counter(
            "venue_health_changes", "Venue health changes, by new state and the signal behind it.",
            ("state", "metric"), **kw,
        )  # fmt: skip
        self.rule_changes = counter(
            "market_rule_changes", "Market rules that changed under a running bot, by field.",
            ("field",), **kw,
        )  # fmt: skip
        self.switch_state = gauge(
            "kill_switch_state", "Kill switch: 1 for the current state, 0 for the others.",
            ("state",), **kw,
        )  # fmt: skip
        self.switch_changes = counter(
            "kill_switch_changes", "Kill switch state changes, by new state and code.",
            ("state", "code"), **kw,
        )  # fmt: skip
        self.switch_since = gauge(
            "kill_switch_since_timestamp_seconds", "When the kill switch state was set.", **kw
        )
        self.early_warnings = counter(
            "early_warnings", "Early warnings, by name and severity (warning, critical).",
            ("name", "severity"), **kw,
        )  # fmt: skip
        self.band_price = gauge(
            "liquidation_band_price", "Each position's liquidation band on the mark: where "
            "its margin ratio crosses the warning level, the partial level and one (NaN: "
            "not reached on the losing side, or already passed).", ("symbol", "edge"), **kw,
        )  # fmt: skip
        self.margin_ratio = gauge(
            "margin_ratio", "Each position's pool's maintenance margin over its equity "
            "(1 liquidates).", ("symbol",), **kw,
        )  # fmt: skip
        self.duplicates_prevented = counter(
            "duplicates_prevented", "Order sends of unknown fate that a look-up by client "
            "order id found on the venue: a blind resend would have placed them twice.", **kw,
        )  # fmt: skip

        # Every venue call passes through _request: its labelled children are looked up once
        # here, since prometheus-client's labels() validates and locks on every call.
        self._request_children: dict[tuple[str, str], Counter] = {}
        self._latency_children: dict[str, Histogram] = {}
        self._header_gauges: dict[str, Gauge | None] = {}
        self._lock = threading.Lock()
        self._health_known = False
        self._switch: str | None = None
        self._in_doubt: OrderedDict[str, None] = OrderedDict()

    # --- subscribing ---------------------------------------------------------------------

    def attach(self, hooks: Hooks) -> Callable[[], None]:
        """Count every event ``hooks`` emits. Returns a function that detaches again.

        Venue health reads NORMAL from here until a state change says otherwise, which is
        what a new guard starts as: attach before the guarded exchange's first request.
        """
        if not isinstance(hooks, Hooks):
            raise ValueError(f"hooks must be a safeguard Hooks, got {type(hooks).__name__}")
        with self._lock:
            if not self._health_known:
                self._health_known = True
                self._set_enum(self.health, HEALTH_STATES, "NORMAL")
        return hooks.subscribe(None, self.observe)

    def watch_switch(self, switch: KillSwitch) -> Callable[[], None]:
        """Follow ``switch``: its state now, then every change (made here or noticed from
        another process). Returns a function that stops following."""
        remove = switch.add_listener(self._switch_moved)
        self._switch_moved(switch.state)
        return remove

    # --- counting ------------------------------------------------------------------------

    def observe(self, event: Event) -> None:
        """Count one event (what ``attach`` subscribes)."""
        if isinstance(event, RequestEvent):
            self._request(event)
        elif isinstance(event, RetryEvent):
            self.retries.labels(event.method, event.reason).inc()
            if _amount(event.delay_s):
                self.retry_delay.labels(event.method).inc(event.delay_s)
        elif isinstance(event, ThrottleEvent):
            self._throttle(event)
        elif isinstance(event, VerdictEvent):
            if event.allowed:
                self.verdicts.labels("allowed", "").inc()
            else:
                self.verdicts.labels("denied", event.code or "UNSPECIFIED").inc()
        elif isinstance(event, StateChangeEvent):
            self._state_change(event)
        elif isinstance(event, KillEvent):
            self._set_switch(event.state, event.code or "", event.at)
        elif isinstance(event, WarningEvent):
            self.early_warnings.labels(event.name, event.severity).inc()
        elif isinstance(event, BandEvent):
            for edge in ("warning", "partial", "liquidation"):
                price = getattr(event, edge)
                self.band_price.labels(event.symbol, edge).set(math.nan if price is None else price)
            ratio = event.margin_ratio
            self.margin_ratio.labels(event.symbol).set(ratio if math.isfinite(ratio) else math.inf)

    def _request(self, event: RequestEvent) -> None:
        endpoint = event.endpoint
        key = (endpoint, event.outcome)
        counted = self._request_children.get(key)
        if counted is None:
            counted = self._request_children[key] = self.requests.labels(*key)
        counted.inc()
        if event.error_type:
            self.request_errors.labels(endpoint, event.error_type).inc()
        if _amount(event.latency_s):
            timed = self._latency_children.get(endpoint)
            if timed is None:
                timed = self._latency_children[endpoint] = self.latency.labels(endpoint)
            timed.observe(event.latency_s)
        for name, text in event.weights.items():
            # A header that is not a number leaves the gauge as it was: no made-up 0.
            number = _number(text)
            if number is not None and (gauge := self._header_gauge(name)) is not None:
                gauge.set(number)
        if event.client_order_id is not None:
            self._duplicates(event, event.client_order_id)

    def _header_gauge(self, name: str) -> Gauge | None:
        """The gauge a rate-limit header feeds (``None``: none); the guard passes only those
        headers, so the cache holds a handful of names."""
        if name in self._header_gauges:
            return self._header_gauges[name]
        gauge = None
        if weight := _WEIGHT.match(name):
            gauge = self.used_weight.labels("".join(weight.groups()).lower())
        elif orders := _ORDERS.match(name):
            gauge = self.order_count.labels("".join(orders.groups()).lower())
        self._header_gauges[name] = gauge
        return gauge

    def _duplicates(self, event: RequestEvent, cid: str) -> None:
        # The guard follows an order send of unknown fate (timeout, 5xx, dropped answer,
        # duplicate-id rejection) with look-ups of its client order id, never a resend; a
        # look-up that answers with the order is a duplicate a blind retry would have made.
        with self._lock:
            if event.method in _ORDER_SENDS:
                if event.outcome == "ok":
                    self._in_doubt.pop(cid, None)
                else:
                    self._in_doubt[cid] = None
                    self._in_doubt.move_to_end(cid)
                    while len(self._in_doubt) > _MAX_IN_DOUBT:
                        self._in_doubt.popitem(last=False)
                return
            found = event.method in _LOOKUPS and event.outcome == "ok" and cid in self._in_doubt
            if found:
                del self._in_doubt[cid]
        if found:
            self.duplicates_prevented.inc()

    def _throttle(self, event: ThrottleEvent) -> None:
        self.throttle.labels(event.action).inc()
        if event.action == "wait" and _amount(event.seconds):
            self.throttle_wait.inc(event.seconds)
        if event.limit and event.usage is not None and math.isfinite(event.usage):
            self.limit_usage.labels(event.limit).set(event.usage)

    def _state_change(self, event: StateChangeEvent) -> None:
        if event.metric.startswith("rules:"):
            # Rule drift rides on the state-change event; it is not a health state.
            self.rule_changes.labels(event.metric.removeprefix("rules:")).inc()
            return
        if event.current not in HEALTH_STATES:
            return
        with self._lock:
            self._health_known = True
            self._set_enum(self.health, HEALTH_STATES, event.current)
        self.health_changes.labels(event.current, event.metric).inc()

    def _switch_moved(self, state: SwitchState) -> None:
        self._set_switch(state.state.value, state.code, state.since)

    def _set_switch(self, state: str, code: str, since: float) -> None:
        if state not in SWITCH_STATES:
            return
        with self._lock:
            # The switch's listener and a KillEvent may both report one change: count the
            # move, not the messages.
            moved = self._switch is not None and self._switch != state
            self._switch = state
            self._set_enum(self.switch_state, SWITCH_STATES, state)
            if math.isfinite(since):
                self.switch_since.set(since)
        if moved:
            self.switch_changes.labels(state, code).inc()

    @staticmethod
    def _set_enum(gauge: Gauge, states: Sequence[str], current: str) -> None:
        for state in states:
            gauge.labels(state).set(1.0 if state == current else 0.0)


def serve_guard_metrics(
    port: int,
    hooks: Hooks,
    *,
    switch: KillSwitch | None = None,
    host: str = "127.0.0.1",
) -> tuple[Metrics, MetricsServer]:
    """One call for a runner: count ``hooks`` (and ``switch``) and serve them on ``port``.

    Returns the metrics and the running endpoint; close the endpoint when the run ends.
    """
    metrics = Metrics()
    detach = metrics.attach(hooks)
    if switch is not None:
        metrics.watch_switch(switch)
    try:
        return metrics, serve_metrics(port, metrics.registry, host)
    except BaseException:
        detach()
        raise


def _amount(value: float | None) -> TypeGuard[float]:
    """A duration worth adding to a counter: present, finite and not negative."""
    return value is not None and math.isfinite(value) and value >= 0.0


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0.0 else None


__all__ = ["HEALTH_STATES", "LATENCY_BUCKETS", "SWITCH_STATES", "Metrics", "serve_guard_metrics"]
