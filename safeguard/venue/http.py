"""The mock venue on loopback HTTP: a thin threaded server around :class:`Dialect`.

Each connection gets a thread (``http.server.ThreadingHTTPServer``, HTTP/1.1 keep-alive, Nagle
off); each request becomes a :class:`~safeguard.venue.dialect.Request` and the dialect's answer
is written back in one send. The only things decided here are the ones only a socket can do:
waiting out injected latency, closing a connection without an answer (a dropped answer), and
holding an answer until the client gives up (a timeout after the order was accepted).

    with serve(venue) as server:               # port 0: a free port
        exchange = ccxt_client(server.url, key, secret)
"""

from __future__ import annotations

import contextlib
import select
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

from loguru import logger

from safeguard.clock import Clock
from safeguard.venue.dialect import JSON_TYPE, Delivery, Dialect, Request, Response
from safeguard.venue.faults import FaultPlan

if TYPE_CHECKING:
    from safeguard.venue.engine import Venue

MAX_BODY_BYTES = 1 << 20
_POLL_S = 0.05


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Keep-alive connections park a thread in readline(); closing must not wait for them.
    block_on_close = False
    dialect: Dialect
    stopping: threading.Event
    connections: set[socket.socket]
    connections_lock: threading.Lock

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints tracebacks to stderr; a client hanging up mid-request is normal
        # traffic for a venue that drops answers on purpose, anything else is a bug to log.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            logger.debug("venue http: connection from {} ended: {!r}", client_address, error)
        else:
            logger.opt(exception=error).error("venue http: handler failed for {}", client_address)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        with contextlib.suppress(OSError):  # the client went away first; nothing to flush
            super().finish()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def _serve(self) -> None:
        length_header = self.headers.get("Content-Length") or "0"
        if not length_header.isdigit() or int(length_header) > MAX_BODY_BYTES:
            self._write(_plain_error(413 if length_header.isdigit() else 400))
            self.close_connection = True
            return
        length = int(length_header)
        raw = self.rfile.read(length) if length else b""
        path, _, query = self.path.partition("?")
        request = Request(
            method=self.command,
            path=path,
            query=query,
            body=raw.decode("utf-8", "replace"),
            headers=dict(self.headers.items()),
            client_ip=str(self.client_address[0]),
        )
        response = self.server.dialect.handle(request)
        if response.latency_s > 0 and self.server.stopping.wait(response.latency_s):
            self.close_connection = True
            return
        if response.delivery is Delivery.DROP:
            self.close_connection = True
            return
        if response.delivery is Delivery.HANG:
            self._hold(response.hold_s)
            self.close_connection = True
            return
        self._write(response)

    def _hold(self, seconds: float) -> None:
        """Say nothing for ``seconds``, or until the client hangs up or the server stops."""
        deadline = seconds
        while deadline > 0 and not self.server.stopping.is_set():
            try:
                readable, _, _ = select.select([self.connection], [], [], _POLL_S)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    return  # the client timed out and closed its end
            except OSError:
                return
            deadline -= _POLL_S

    def _write(self, response: Response) -> None:
        body = response.body.encode()
        head = [f"HTTP/1.1 {response.status} {response.reason}", "Server: safeguard-venue"]
        head.extend(f"{name}: {value}" for name, value in response.headers.items())
        head.append(f"Content-Length: {len(body)}")
        if self.close_connection:
            head.append("Connection: close")
        try:
            self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        except OSError:
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        logger.trace("venue http: " + format, *args)


def _plain_error(status: int) -> Response:
    return Response(
        status,
        '{"code":-1000,"msg":"Malformed request."}',
        {"Content-Type": JSON_TYPE},
    )


class VenueServer:
    """A running loopback HTTP venue. ``url`` is its base (``http://127.0.0.1:PORT``).

    Construction binds the port (0 picks a free one) and starts serving on a background
    thread; :meth:`close` (or leaving the ``with`` block) stops it and closes every connection.
    """

    def __init__(
        self,
        venue: Venue,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        dialect: Dialect | None = None,
        faults: FaultPlan | None = None,
        auth_clock: Clock | None = None,
        tick_interval_s: float = 0.1,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
        if not tick_interval_s > 0:
            raise ValueError(f"tick_interval_s must be > 0, got {tick_interval_s!r}")
        if dialect is not None and (faults is not None or auth_clock is not None):
            raise ValueError("pass faults and auth_clock to the Dialect, not to both")
        self.dialect = dialect or Dialect(venue, faults=faults, auth_clock=auth_clock)
        self._tick_interval_s = tick_interval_s
        server_class = _Server6 if ":" in host else _Server
        self._httpd = server_class((host, port), _Handler)
        self._httpd.dialect = self.dialect
        self._httpd.stopping = threading.Event()
        self._httpd.connections = set()
        self._httpd.connections_lock = threading.Lock()
        self._threads = [
            threading.Thread(
                # The poll interval bounds how long close() waits for the loop to notice.
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": _POLL_S},
                name="venue-http",
                daemon=True,
            ),
            threading.Thread(target=self._tick, name="venue-tick", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        logger.info("venue: serving Binance USD-M on {}", self.url)

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan at run time (``None``: a healthy venue)."""
        self.dialect.set_fault_plan(plan)

    def wait(self) -> None:
        """Block until :meth:`close` is called (from a signal handler or another thread)."""
        self._httpd.stopping.wait()

    def close(self) -> None:
        if self._httpd.stopping.is_set():
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._httpd.connections_lock:
            open_connections = list(self._httpd.connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # already closed by the peer
                connection.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(timeout=5)

    def _tick(self) -> None:
        # Countdown cancels and scheduled market events must fire with no request arriving.
        while not self._httpd.stopping.wait(self._tick_interval_s):
            try:
                self.dialect.tick()
            except Exception:
                logger.exception("venue: tick failed")

    def __enter__(self) -> VenueServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def serve(
    venue: Venue,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    faults: FaultPlan | None = None,
    auth_clock: Clock | None = None,
) -> VenueServer:
    """Serve ``venue`` over HTTP on ``host:port``; use as ``with serve(venue) as server:``."""
    return VenueServer(venue, host, port, faults=faults, auth_clock=auth_clock)


__all__ = ["MAX_BODY_BYTES", "VenueServer", "serve"]
