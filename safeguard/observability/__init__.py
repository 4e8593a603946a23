"""Prometheus metrics for a guarded bot (opt-in: ``pip install 'safeguard[metrics]'``).

    from safeguard.guard._events import Hooks
    from safeguard.observability import Metrics, serve_metrics

    hooks = Hooks()
    exchange = safeguard.guard(ccxt.binanceusdm({...}), policy, hooks=hooks, kill_switch=switch)
    metrics = Metrics()                  # its own CollectorRegistry: nothing global
    metrics.attach(hooks)                # requests, retries, throttling, verdicts, health
    metrics.watch_switch(switch)         # the kill switch, here or engaged elsewhere
    server = serve_metrics(9464, metrics.registry)     # http://127.0.0.1:9464/metrics

or, in one call, ``metrics, server = serve_guard_metrics(9464, hooks, switch=switch)``.

Nothing in safeguard imports prometheus-client until one of these is built; without it they
raise :class:`~safeguard._errors.ConfigError` naming the extra. Counting never raises into the
order path (the hooks swallow and log a failing subscriber).

Metrics (``name``: type; labels: meaning):

- ``safeguard_requests_total``: counter; endpoint, outcome (ok, error, throttled)
- ``safeguard_request_errors_total``: counter; endpoint, error_type (the ccxt class)
- ``safeguard_request_latency_seconds``: histogram; endpoint
- ``safeguard_retries_total``: counter; method, reason (the error classification)
- ``safeguard_retry_delay_seconds_total``: counter; method: backoff scheduled
- ``safeguard_throttle_events_total``: counter; action: wait, hold, banned, 429, 418 (fed by
  :class:`~safeguard.guard._events.ThrottleEvent`; the venue's own 429/418 answers are also
  ``safeguard_requests_total{outcome="throttled"}``)
- ``safeguard_throttle_wait_seconds_total``: counter: time the rate budget made requests wait
- ``safeguard_rate_limit_usage_ratio``: gauge; limit (``REQUEST_WEIGHT/1m``): share in use
- ``safeguard_venue_used_weight``: gauge; interval (``1m``): the venue's own header
- ``safeguard_venue_order_count``: gauge; interval (``10s``, ``1d``): the venue's own header
- ``safeguard_verdicts_total``: counter; result (allowed, denied), code (empty when allowed);
  an open position whose stop no longer clears liquidation counts as denied too
  (``STOP_BEYOND_LIQUIDATION``), since it is the same alarm
- ``safeguard_venue_health_state``: gauge; state (NORMAL, DEGRADED, SEVERE): 1 or 0
- ``safeguard_venue_health_changes_total``: counter; state, metric (the signal behind it)
- ``safeguard_market_rule_changes_total``: counter; field (tick size, tiers, ...)
- ``safeguard_kill_switch_state``: gauge; state (ACTIVE, REDUCING, HALTED): 1 or 0
- ``safeguard_kill_switch_changes_total``: counter; state, code
- ``safeguard_kill_switch_since_timestamp_seconds``: gauge: when the state was set
- ``safeguard_duplicates_prevented_total``: counter: order sends of unknown fate that a
  look-up by client order id found on the venue, where a blind retry would have doubled them

Alert on ``safeguard_kill_switch_state{state!="ACTIVE"} == 1``,
``safeguard_venue_health_state{state="SEVERE"} == 1`` and
``increase(safeguard_verdicts_total{result="denied"}[5m])``; a rising
``safeguard_duplicates_prevented_total`` means the venue is losing order answers. The mock
venue's own metrics (``safeguard venue serve --metrics-port``) are in
:mod:`safeguard.observability._venue`.
"""

from __future__ import annotations

from safeguard.observability._guard import (
    HEALTH_STATES,
    LATENCY_BUCKETS,
    SWITCH_STATES,
    Metrics,
    serve_guard_metrics,
)
from safeguard.observability._server import MetricsServer, require_prometheus, serve_metrics

__all__ = [
    "HEALTH_STATES",
    "LATENCY_BUCKETS",
    "SWITCH_STATES",
    "Metrics",
    "MetricsServer",
    "require_prometheus",
    "serve_guard_metrics",
    "serve_metrics",
]
