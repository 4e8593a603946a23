"""Metrics of the mock venue: what it served, and what happened in its engine.

    metrics = VenueMetrics(venue)
    server = VenueServer(venue, dialect=MeteredDialect(venue, metrics, faults=plan))
    scrape = serve_metrics(9465, metrics.registry)

:class:`MeteredDialect` is the venue's own :class:`~safeguard.venue._dialect.Dialect` that
also counts each answer it gives, so both transports (loopback HTTP and the in-process ccxt
client) are counted the same way. Fills, liquidations and the insurance fund are read from the
engine's own record when Prometheus scrapes, so they are the venue's truth, not a count of
answers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from safeguard._log import logger
from safeguard.observability._server import require_prometheus
from safeguard.venue._dialect import ROUTES, Delivery, Dialect, Request, Response
from safeguard.venue._events import Fill, Liquidation

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric

    from safeguard.venue._engine import Venue

# Unknown paths are labelled "other": a scanner probing random URLs must not create a series
# per URL.
_OTHER = "other"
_ADMIN = "admin"


class VenueMetrics:
    """Prometheus metrics of one mock venue (needs ``safeguard[metrics]``).

    Counts come from :meth:`observe` (called by :class:`MeteredDialect` for each answer);
    fills, liquidations and the insurance fund are read from ``venue`` at scrape time.
    """

    def __init__(self, venue: Venue, registry: CollectorRegistry | None = None) -> None:
        require_prometheus()
        from prometheus_client import CollectorRegistry, Counter

        self.venue = venue
        self.registry = registry if registry is not None else CollectorRegistry()
        kw: dict[str, Any] = {"namespace": "safeguard_mock_venue", "registry": self.registry}
        self.requests = Counter(
            "requests", "Requests answered, by route and HTTP status (dropped: connection "
            "closed unanswered; no_answer: held until the client gave up).",
            ("route", "status"), **kw,
        )  # fmt: skip
        self.rate_limited = Counter(
            "rate_limited", "429 (throttled) and 418 (banned) answers served, limits and "
            "injected faults alike.", ("status",), **kw,
        )  # fmt: skip
        self.orders = Counter(
            "orders", "Order requests (new orders, algo orders), by answer: accepted, "
            "rejected, throttled, failed (5xx) or unanswered.", ("outcome",), **kw,
        )  # fmt: skip
        self.registry.register(_EngineCollector(venue))

    def observe(self, request: Request, response: Response) -> None:
        """Count one answer. Never raises: metrics must not break the venue."""
        try:
            method = request.method.upper()
            route = ROUTES.get((method, request.path))
            if route is not None:
                label = f"{method} {request.path}"
            elif request.path.startswith("/admin/"):
                label = _ADMIN
            else:
                label = _OTHER
            if response.delivery is Delivery.DROP:
                status = "dropped"
            elif response.delivery is Delivery.HANG:
                status = "no_answer"
            else:
                status = str(response.status)
            self.requests.labels(label, status).inc()
            if response.delivery is Delivery.ANSWER and response.status in (418, 429):
                self.rate_limited.labels(status).inc()
            if route is not None and route.orders:
                self.orders.labels(_order_outcome(response)).inc()
        except Exception:
            logger.exception("venue metrics: could not count {} {}", request.method, request.path)


def _order_outcome(response: Response) -> str:
    if response.delivery is not Delivery.ANSWER:
        return "unanswered"
    status = response.status
    if 200 <= status < 300:
        return "accepted"
    if status in (418, 429):
        return "throttled"
    if 400 <= status < 500:
        return "rejected"
    return "failed"


class MeteredDialect(Dialect):
    """The venue's dialect, counting every answer into ``metrics``.

    Takes the :class:`~safeguard.venue._dialect.Dialect` keywords (``faults``,
    ``auth_clock``, ``limits``, ``limiter``); pass it to ``VenueServer(dialect=...)`` or
    ``inprocess_client``.
    """

    def __init__(self, venue: Venue, metrics: VenueMetrics, **options: Any) -> None:
        if not isinstance(metrics, VenueMetrics):
            raise ValueError(f"metrics must be a VenueMetrics, got {type(metrics).__name__}")
        if metrics.venue is not venue:
            raise ValueError("metrics were built for another venue")
        super().__init__(venue, **options)
        self.metrics = metrics

    def handle(self, request: Request) -> Response:
        response = super().handle(request)
        self.metrics.observe(request, response)
        return response


class _EngineCollector:
    """Fills and liquidations from the engine's event record, read at scrape time.

    The record only grows; a cursor keeps each scrape to the events since the last one.
    """

    def __init__(self, venue: Venue) -> None:
        self._venue = venue
        self._seen = 0
        # Every symbol from the start at 0: Prometheus' increase() misses a series' first
        # sample, so a liquidation that created its series would never alert.
        with venue.lock:
            symbols = list(venue.markets)
        self._fills: Counter[str] = Counter(dict.fromkeys(symbols, 0))
        self._liquidations: Counter[str] = Counter(dict.fromkeys(symbols, 0))

    def describe(self) -> list[Metric]:
        # Registering must not read the engine (and take its lock) before any scrape.
        return list(self._families({}, {}, None))

    def collect(self) -> Iterator[Metric]:
        venue = self._venue
        with venue.lock:
            events = venue.events
            if len(events) < self._seen:
                logger.warning("venue metrics: the engine's event record shrank; recounting")
                self._seen = 0
                self._fills = Counter(dict.fromkeys(self._fills, 0))
                self._liquidations = Counter(dict.fromkeys(self._liquidations, 0))
            for event in events[self._seen :]:
                if isinstance(event, Fill):
                    self._fills[event.symbol] += 1
                elif isinstance(event, Liquidation):
                    self._liquidations[event.symbol] += 1
            self._seen = len(events)
            fund = venue.insurance_fund
            fills, liquidations = dict(self._fills), dict(self._liquidations)
        return self._families(fills, liquidations, fund)

    def _families(
        self, fills: dict[str, int], liquidations: dict[str, int], fund: float | None
    ) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        filled = CounterMetricFamily(
            "safeguard_mock_venue_fills", "Executions on the venue, by symbol.", labels=["symbol"]
        )
        for symbol, count in sorted(fills.items()):
            filled.add_metric([symbol], count)
        liquidated = CounterMetricFamily(
            "safeguard_mock_venue_liquidations",
            "Positions the venue liquidated, by symbol.",
            labels=["symbol"],
        )
        for symbol, count in sorted(liquidations.items()):
            liquidated.add_metric([symbol], count)
        insurance = GaugeMetricFamily(
            "safeguard_mock_venue_insurance_fund",
            "The venue's insurance fund, in quote currency.",
        )
        if fund is not None:
            insurance.add_metric([], fund)
        yield from (filled, liquidated, insurance)


__all__ = ["MeteredDialect", "VenueMetrics"]
