"""The Prometheus scrape endpoint, and the one place prometheus-client is imported."""

from __future__ import annotations

import threading
from types import ModuleType, TracebackType
from typing import TYPE_CHECKING, Any

from safeguard._errors import ConfigError

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

_CLOSE_TIMEOUT_S = 5.0


def require_prometheus() -> ModuleType:
    """Import prometheus-client, or say how to install it (a :class:`ConfigError`).

    Metrics are opt-in: safeguard itself never imports prometheus-client, so a bot that does
    not ask for metrics neither needs it nor pays for importing it.
    """
    try:
        import prometheus_client
    except ImportError:
        raise ConfigError(
            "metrics need prometheus-client: pip install 'safeguard[metrics]'", key="metrics"
        ) from None
    return prometheus_client


class MetricsServer:
    """A running scrape endpoint: ``url`` answers ``GET /metrics`` with the exposition text.

    prometheus-client's own server (``start_http_server``): one daemon thread accepts
    connections, a thread per scrape answers it. :meth:`close` (or leaving the ``with`` block)
    stops listening and frees the port.
    """

    def __init__(self, httpd: Any, thread: threading.Thread) -> None:
        self._httpd = httpd
        address = httpd.server_address
        self.host: str = str(address[0])
        self.port: int = int(address[1])
        self._closed = False
        self._thread = thread

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(_CLOSE_TIMEOUT_S)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"MetricsServer({self.url})"


def serve_metrics(port: int, registry: CollectorRegistry, host: str = "127.0.0.1") -> MetricsServer:
    """Serve ``registry`` for Prometheus on ``host:port`` (0 picks a free port).

    Loopback by default, unlike prometheus-client's own ``0.0.0.0``: exposing a trading
    bot's internals to the network should be a decision. A port that cannot be bound is a
    :class:`ConfigError` naming it.
    """
    prometheus = require_prometheus()
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"metrics port must be an integer in [0, 65535], got {port!r}")
    if not isinstance(registry, prometheus.CollectorRegistry):
        # No default: prometheus-client's global registry would mix in whatever else the
        # process registered there.
        raise ConfigError(
            f"registry must be a prometheus_client CollectorRegistry, got {type(registry).__name__}"
        )
    try:
        # Its server picks the address family from the host ("::1" works as well as
        # "127.0.0.1") and logs no line per scrape.
        httpd, thread = prometheus.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:  # socket.gaierror too
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
    return MetricsServer(httpd, thread)


__all__ = ["MetricsServer", "require_prometheus", "serve_metrics"]
