"""The mock venue on loopback HTTP: a thin asyncio server around :class:`Dialect`.

One event loop on a background thread reads HTTP/1.1 requests (keep-alive, ``Content-Length``
bodies), turns each into a :class:`~safeguard.venue.dialect.Request`, and writes the dialect's
answer back in one send. The only things decided here are the ones only a socket can do:
waiting out injected latency (a timer, so other connections keep being served), closing a
connection without an answer (a dropped answer), and holding an answer until the client gives
up (a timeout after the order was accepted).

The dialect is called on the loop thread; it is quick (tens of microseconds) and serialised by
the venue's lock anyway, so a thread per connection would add cost and no concurrency.

    with serve(venue) as server:               # port 0: a free port
        exchange = ccxt_client(server.url, key, secret)
"""

from __future__ import annotations

import asyncio
import threading
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING

from safeguard._log import logger
from safeguard.clock import Clock
from safeguard.venue.dialect import JSON_TYPE, Delivery, Dialect, Request, Response
from safeguard.venue.faults import FaultPlan

if TYPE_CHECKING:
    from safeguard.venue.engine import Venue

MAX_BODY_BYTES = 1 << 20
MAX_HEAD_BYTES = 1 << 16
_START_TIMEOUT_S = 10.0


class _Connection(asyncio.Protocol):
    """One client connection: parse requests one at a time, answer each in order."""

    def __init__(self, server: VenueServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._peer = "0.0.0.0"
        self._busy = False  # an answer is pending (latency, hold): later requests wait
        self._timer: asyncio.TimerHandle | None = None
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = str(peer[0]) if peer else "0.0.0.0"
        self._server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()  # a held answer ends when the client gives up
        self._transport = None

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        self._drain()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _drain(self) -> None:
        while not self._busy and self._transport is not None:
            parsed = self._parse()
            if parsed is None:
                return
            request, keep_alive = parsed
            self._answer(request, keep_alive)

    def _parse(self) -> tuple[Request, bool] | None:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buffer) > MAX_HEAD_BYTES:
                self._fail(431)
            return None
        try:
            head = self._buffer[:end].decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            method, target, version = request_line.split(" ")
            if not version.startswith("HTTP/1."):
                raise ValueError(version)
            headers: dict[str, str] = {}
            for line in header_lines:
                name, _, value = line.partition(":")
                if not name or name != name.strip():
                    raise ValueError(line)
                headers[name] = value.strip()
        except ValueError:
            self._fail(400)
            return None
        lowered = {name.lower(): value for name, value in headers.items()}
        if "transfer-encoding" in lowered:
            self._fail(411)  # the venue takes Content-Length bodies only
            return None
        length_text = lowered.get("content-length", "0")
        if not length_text.isdigit():
            self._fail(400)
            return None
        length = int(length_text)
        if length > MAX_BODY_BYTES:
            self._fail(413)
            return None
        if len(self._buffer) < end + 4 + length:
            if lowered.get("expect", "").lower() == "100-continue" and not self._continued:
                # curl waits a second for this before sending a large form body
                self._continued = True
                assert self._transport is not None
                self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None  # the body is still arriving
        self._continued = False
        body = bytes(self._buffer[end + 4 : end + 4 + length])
        del self._buffer[: end + 4 + length]
        path, _, query = target.partition("?")
        connection = lowered.get("connection", "").lower()
        keep_alive = connection != "close" and (version == "HTTP/1.1" or connection == "keep-alive")
        request = Request(
            method=method,
            path=path,
            query=query,
            body=body.decode("utf-8", "replace"),
            headers=headers,
            client_ip=self._peer,
        )
        return request, keep_alive

    def _answer(self, request: Request, keep_alive: bool) -> None:
        response = self._server.dialect.handle(request)
        head_only = request.method.upper() == "HEAD"
        if response.latency_s > 0:
            self._busy = True
            self._timer = asyncio.get_running_loop().call_later(
                response.latency_s, self._deliver, response, keep_alive, head_only
            )
        else:
            self._deliver(response, keep_alive, head_only)

    def _deliver(self, response: Response, keep_alive: bool, head_only: bool) -> None:
        self._busy = False
        self._timer = None
        if self._transport is None:
            return
        if response.delivery is Delivery.DROP:
            self._transport.close()
            return
        if response.delivery is Delivery.HANG:
            # Say nothing; the client's timeout (closing its end) or hold_s ends it.
            self._busy = True
            self._timer = asyncio.get_running_loop().call_later(
                response.hold_s, self._transport.close
            )
            return
        self._transport.write(_encode(response, keep_alive, head_only))
        if not keep_alive:
            self._transport.close()
            return
        self._drain()

    def _fail(self, status: int) -> None:
        assert self._transport is not None
        phrase = HTTPStatus(status).phrase
        answer = Response(
            status,
            f'{{"code":-1000,"msg":"Malformed request: {phrase}."}}',
            {"Content-Type": JSON_TYPE},
        )
        logger.warning("venue http: malformed request from {} ({})", self._peer, phrase)
        self._transport.write(_encode(answer, keep_alive=False, head_only=False))
        self._transport.close()
        self._buffer.clear()


def _encode(response: Response, keep_alive: bool, head_only: bool) -> bytes:
    body = response.body.encode()
    lines = [f"HTTP/1.1 {response.status} {response.reason}", "Server: safeguard-venue"]
    lines.extend(f"{name}: {value}" for name, value in response.headers.items())
    lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


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
        self._connections: set[_Connection] = set()
        self._stopped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="venue-http", daemon=True
        )
        self._thread.start()
        try:
            started = asyncio.run_coroutine_threadsafe(self._start(host, port), self._loop)
            self._server = started.result(timeout=_START_TIMEOUT_S)
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            self._loop.close()
            raise
        address = self._server.sockets[0].getsockname()
        self._host, self._port = str(address[0]), int(address[1])
        logger.info("venue: serving Binance USD-M on {}", self.url)

    async def _start(self, host: str, port: int) -> asyncio.Server:
        server = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), host, port, reuse_address=True
        )
        self._schedule_tick()
        return server

    def _schedule_tick(self) -> None:
        # Countdown cancels and scheduled market events must fire with no request arriving.
        self._loop.call_later(self._tick_interval_s, self._tick)

    def _tick(self) -> None:
        if self._stopped.is_set():
            return
        try:
            self.dialect.tick()
        except Exception:
            logger.exception("venue: tick failed")
        self._schedule_tick()

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan at run time (``None``: a healthy venue)."""
        self.dialect.set_fault_plan(plan)

    def wait(self) -> None:
        """Block until :meth:`close` is called (from a signal handler or another thread)."""
        self._stopped.wait()

    def close(self) -> None:
        """Stop listening, hang up on every connection and stop the loop thread."""
        if self._stopped.is_set():
            return
        self._stopped.set()

        async def shutdown() -> None:
            self._server.close()
            for connection in list(self._connections):
                connection.close()
            await self._server.wait_closed()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

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
