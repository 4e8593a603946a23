"""The mock venue on loopback HTTP: aiohttp around :class:`Dialect`.

One event loop on a background thread runs an aiohttp server. Each request is read in full
(with a deadline), turned into a :class:`~safeguard.venue._dialect.Request`, and answered with
what the dialect says. aiohttp does the HTTP: framing, keep-alive, pipelining,
``Expect: 100-continue``, conflicting or malformed ``Content-Length`` (a JSON 400 here, as
every venue answer is JSON), and the deadlines a hand-written parser lacked: a connection that
sends no complete request head within ``idle_timeout_s`` of opening (or of its last answer)
is closed, and a body that does not arrive within ``body_timeout_s`` gets a 408.

The only things decided here are the ones only a socket can do: waiting out injected latency
(a timer, so other connections keep being served), closing a connection without an answer (a
dropped answer), and holding an answer until the client gives up (a timeout after the order
was accepted).

The dialect is called on the loop thread; it is quick (tens of microseconds) and serialised by
the venue's lock anyway, so a thread per connection would add cost and no concurrency.

    with serve(venue) as server:               # port 0: a free port
        exchange = ccxt_client(server.url, key, secret)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from http import HTTPStatus
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, web, web_protocol

from safeguard._clock import Clock
from safeguard._log import logger
from safeguard.venue._dialect import JSON_TYPE, Delivery, Dialect, Request, Response
from safeguard.venue._faults import FaultPlan
from safeguard.venue._streams import StreamRefused, StreamSession

if TYPE_CHECKING:
    from safeguard.venue._engine import Venue

MAX_BODY_BYTES = 1 << 20
_START_TIMEOUT_S = 10.0
_SERVER_NAME = "safeguard-venue"


def _error_body(status: int, reason: str | None = None) -> str:
    phrase = reason or HTTPStatus(status).phrase
    return json.dumps({"code": -1000, "msg": f"Malformed request: {phrase}."})


class _VenueRequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler, answering framing errors in the venue's JSON."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        phrase = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else None
        # A client error is the peer's: a warning without a traceback. The parser's message is
        # left out: it may quote the request line, and with it a signed query string.
        logger.warning(
            "venue http: malformed request from {} ({} {}: {})",
            request.remote,
            status,
            phrase,
            type(exc).__name__ if exc is not None else "no exception",
        )
        if request.writer.output_size > 0:
            raise ConnectionError("answer already started; cannot send the error")
        return _plain_error(status)


class _Server(web.Server):
    def __call__(self) -> web_protocol.RequestHandler:
        return _VenueRequestHandler(self, loop=self._loop, **self._kwargs)


class VenueServer:
    """A running loopback HTTP venue. ``url`` is its base (``http://127.0.0.1:PORT``).

    Construction binds the port (0 picks a free one) and starts serving on a background
    thread; :meth:`close` (or leaving the ``with`` block) stops it and closes every connection.
    ``idle_timeout_s`` closes a connection that has not sent a whole request head for that
    long since it opened or was last answered (idle keep-alive and slow-trickle alike);
    ``body_timeout_s`` bounds the wait for a request body. Websocket upgrades on the stream
    paths (:mod:`safeguard.venue._streams`) are served on the same port; the venue pings each
    one every ``ping_interval_s`` (Binance: 3 minutes) and closes it without a pong.
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
        idle_timeout_s: float = 75.0,
        body_timeout_s: float = 30.0,
        ping_interval_s: float = 180.0,
    ) -> None:
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in [0, 65535], got {port!r}")
        for name, value in (
            ("tick_interval_s", tick_interval_s),
            ("idle_timeout_s", idle_timeout_s),
            ("body_timeout_s", body_timeout_s),
            ("ping_interval_s", ping_interval_s),
        ):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")
        if dialect is not None and (faults is not None or auth_clock is not None):
            raise ValueError("pass faults and auth_clock to the Dialect, not to both")
        self.dialect = dialect or Dialect(venue, faults=faults, auth_clock=auth_clock)
        self._tick_interval_s = tick_interval_s
        self._body_timeout_s = body_timeout_s
        self._ping_interval_s = ping_interval_s
        self._sockets: set[web.WebSocketResponse] = set()
        self._stopped = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._http = _Server(
            self._handle,
            loop=self._loop,
            keepalive_timeout=idle_timeout_s,
            handler_cancellation=True,  # a held answer ends when the client gives up
            access_log=None,
        )
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
            self._http, host, port, reuse_address=True
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

    # --- one request --------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._websocket(request)
        length = request.content_length
        if length is not None and length > MAX_BODY_BYTES:
            return _plain_error(413)
        if (
            request.version >= (1, 1)
            and request.headers.get("Expect", "").lower() == "100-continue"
            and length
        ):
            # curl waits a second for this before sending a large form body
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        try:
            if request.body_exists:
                async with asyncio.timeout(self._body_timeout_s):
                    body = await request.read()
            else:
                body = b""  # most requests (GETs): no deadline to arm
        except TimeoutError:
            logger.warning("venue http: request body from {} did not arrive", request.remote)
            return _plain_error(408)
        except web.HTTPRequestEntityTooLarge:  # aiohttp's own cap: 1 MiB, as MAX_BODY_BYTES
            return _plain_error(413)
        path, _, query = request.raw_path.partition("?")
        answer = self.dialect.handle(
            Request(
                method=request.method,
                path=path,
                query=query,
                body=body.decode("utf-8", "replace"),
                headers=dict(request.headers),
                client_ip=request.remote or "0.0.0.0",
            )
        )
        if answer.latency_s > 0:
            await asyncio.sleep(answer.latency_s)
        if answer.delivery is Delivery.DROP:
            _hang_up(request)
        elif answer.delivery is Delivery.HANG:
            # Say nothing; the client's timeout (closing its end cancels this) or hold_s ends it.
            await asyncio.sleep(answer.hold_s)
            _hang_up(request)
        return _to_aiohttp(answer)

    async def _websocket(self, request: web.BaseRequest) -> web.StreamResponse:
        """One stream connection: the hub's session, fed from its outbox until either side
        closes (the venue closes it at its maximum age or when its listen key expires)."""
        path, _, query = request.raw_path.partition("?")
        hub = self.dialect.streams
        try:
            session = hub.connect(path, query)
        except StreamRefused as refused:
            # No URL in the log: a user-data URL carries the listen key.
            logger.warning("venue ws: refused a stream connection ({})", refused)
            return web.Response(
                status=refused.status,
                text=refused.body,
                headers={"Content-Type": JSON_TYPE, "Server": _SERVER_NAME},
            )
        socket = web.WebSocketResponse(heartbeat=self._ping_interval_s, autoping=True)
        await socket.prepare(request)
        ready = asyncio.Event()
        loop = self._loop

        def wake() -> None:
            # Called by the hub on whatever thread changed the venue.
            with contextlib.suppress(RuntimeError):  # the loop closed under a late change
                loop.call_soon_threadsafe(ready.set)

        session.wake = wake
        self._sockets.add(socket)
        writer = loop.create_task(self._write(socket, session, ready))
        ready.set()  # anything queued while connecting (acks of path streams: none today)
        try:
            async for message in socket:
                if message.type == WSMsgType.TEXT:
                    hub.receive(session, message.data)
        finally:
            if session.close_code is None:
                writer.cancel()
            else:  # the venue is closing it: let the close handshake finish
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer, 5)
            hub.disconnect(session)
            self._sockets.discard(socket)
        return socket

    async def _write(
        self, socket: web.WebSocketResponse, session: StreamSession, ready: asyncio.Event
    ) -> None:
        try:
            while not socket.closed:
                await ready.wait()
                ready.clear()
                while session.outbox:
                    await socket.send_str(session.outbox.popleft())
                if session.close_code is not None:
                    await socket.close(code=session.close_code)
                    return
        except ConnectionError:
            return  # the client went away; the reader's end cleans up

    # --- lifecycle ----------------------------------------------------------------------------

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
            for socket in list(self._sockets):
                await socket.close(code=WSCloseCode.GOING_AWAY)
            await self._http.shutdown(timeout=0.5)
            for connection in self._http.connections:
                connection.force_close()
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


def _hang_up(request: web.BaseRequest) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()


def _to_aiohttp(answer: Response) -> web.Response:
    headers: dict[str, Any] = {"Server": _SERVER_NAME, **answer.headers}
    return web.Response(
        status=answer.status or 500,
        reason=answer.reason,
        body=answer.body.encode(),
        headers=headers,
    )


def _plain_error(status: int) -> web.Response:
    answer = web.Response(
        status=status,
        text=_error_body(status),
        headers={"Content-Type": JSON_TYPE, "Server": _SERVER_NAME},
    )
    answer.force_close()
    return answer


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
