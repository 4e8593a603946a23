"""The mock venue without sockets: a real ccxt ``binanceusdm`` whose HTTP fetch is the dialect.

ccxt still builds, signs and parses every request; only the bytes never touch a socket. The
overridden ``fetch`` hands the request to :meth:`Dialect.handle` and then treats the answer
exactly as ccxt's own ``fetch`` treats an HTTP answer: ``on_rest_response``, ``parse_json``,
``last_response_headers`` (case-insensitive for sync, a plain dict for async, as ccxt gives),
``handle_errors`` and ``handle_http_status_code`` in ccxt's order. So both transports raise
the same exception class for the same venue answer.

What a socket would do, in-process does at once: latency is not slept but handed to an optional
``on_latency`` callback (``venue.advance`` spends it in simulated time), and latency beyond the
client's timeout raises ``RequestTimeout``; a timeout after the order was
accepted raises ``RequestTimeout`` after the engine accepted it; a dropped answer raises what
the real HTTP stack raises for a closed connection (sync ``requests``: ``NetworkError``; async
``aiohttp``: ``ExchangeNotAvailable``).

Streams without sockets: with ``pro=True`` the client is a ``ccxt.pro.binanceusdm`` whose
websocket connections are in-memory pairs with the dialect's
:class:`~safeguard.venue._streams.StreamHub`: ccxt's own websocket client (subscriptions,
order-book sync, caches, pings) runs unchanged on a socket object that hands its frames to
the hub and reads the hub's session outbox. The hub publishes when the engine steps (so
``venue.advance`` alone delivers market data, at once) and on a 0.1 s poll of
:meth:`Dialect.tick` while a socket waits (for a venue on wall time).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import ccxt
import ccxt.async_support
import ccxt.pro
from aiohttp import WSMessage, WSMsgType
from requests.structures import CaseInsensitiveDict

from safeguard.venue._client import configure
from safeguard.venue._dialect import Delivery, Dialect, Request

if TYPE_CHECKING:
    from safeguard.venue._engine import Venue

# A reserved top-level domain: should anything ever bypass the overridden fetch, it fails to
# resolve instead of reaching a real exchange.
INPROCESS_URL = "http://venue.invalid"


class _Transport:
    """The dialect behind one ccxt instance, and the peer address it reports."""

    def __init__(
        self,
        dialect: Dialect,
        client_ip: str,
        asynchronous: bool,
        on_latency: Callable[[float], object] | None,
    ) -> None:
        self.dialect = dialect
        self.client_ip = client_ip
        self.asynchronous = asynchronous
        self.on_latency = on_latency

    def exchange(self, ex: Any, url: str, method: str, headers: Any, body: Any) -> Any:
        """Everything ccxt's ``fetch`` does after the socket, on the dialect's answer."""
        request_headers = ex.prepare_request_headers(headers)
        parts = urlsplit(url)
        request = Request(
            method=method,
            path=parts.path,
            query=parts.query,
            body=body or "",
            headers=dict(request_headers),
            client_ip=self.client_ip,
        )
        if self.asynchronous:
            ex.last_request_headers = request_headers
        if ex.verbose:
            ex.log("\nfetch Request:", ex.id, method, url, "RequestHeaders:", request_headers,
                   "RequestBody:", body)  # fmt: skip
        details = " ".join([ex.id, method, url])
        answer = self.dialect.handle(request)
        # Over HTTP a held answer ends in the client's timeout, or in a closed connection if
        # the venue gives up holding first; latency past the timeout is a timeout too.
        held = answer.delivery is Delivery.HANG
        waited = max(answer.latency_s, answer.hold_s if held else 0.0)
        timeout_s = ex.timeout / 1000
        if waited > 0 and self.on_latency is not None:
            self.on_latency(min(waited, timeout_s))
        if waited >= timeout_s:
            raise ccxt.RequestTimeout(details)
        if held or answer.delivery is Delivery.DROP:
            dropped = ccxt.ExchangeNotAvailable if self.asynchronous else ccxt.NetworkError
            raise dropped(details)

        response_headers: Any = (
            dict(answer.headers) if self.asynchronous else CaseInsensitiveDict(answer.headers)
        )
        status, reason = answer.status, answer.reason
        http_response = ex.on_rest_response(
            status, reason, url, method, response_headers, answer.body, request_headers, body
        )
        json_response = ex.parse_json(http_response)
        if ex.enableLastHttpResponse:
            ex.last_http_response = http_response
        if ex.enableLastJsonResponse:
            ex.last_json_response = json_response
        if ex.enableLastResponseHeaders:
            ex.last_response_headers = response_headers
        if ex.verbose:
            ex.log("\nfetch Response:", ex.id, method, url, status, "ResponseHeaders:",
                   response_headers, "ResponseBody:", http_response)  # fmt: skip
        if json_response and not isinstance(json_response, list) and ex.returnResponseHeaders:
            json_response["responseHeaders"] = response_headers

        args = (status, reason, url, method, response_headers, http_response, json_response)
        if self.asynchronous:
            # aiohttp never raises for a status: ccxt's async fetch runs both handlers always.
            ex.handle_errors(*args, request_headers, body)
            ex.handle_http_status_code(status, reason, url, method, http_response)
        elif status >= 400:
            # requests' raise_for_status path in ccxt's sync fetch.
            if not ex.handle_errors(*args, request_headers, body):
                ex.handle_http_status_code(status, reason, url, method, http_response)
            raise ccxt.ExchangeError(details)
        else:
            ex.handle_errors(*args, request_headers, body)
        if json_response is not None:
            return json_response
        return http_response


class InProcessBinanceUSDM(ccxt.binanceusdm):  # type: ignore[misc]
    """``ccxt.binanceusdm`` answered by a :class:`Dialect` in this process."""

    _sg_transport: _Transport

    def fetch(self, url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        return self._sg_transport.exchange(self, url, method, headers, body)


class AsyncInProcessBinanceUSDM(ccxt.async_support.binanceusdm):  # type: ignore[misc]
    """``ccxt.async_support.binanceusdm`` answered by a :class:`Dialect` in this process."""

    _sg_transport: _Transport

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        return self._sg_transport.exchange(self, url, method, headers, body)


_POLL_S = 0.1


class _MemorySocket:
    """What ccxt's websocket client uses of an aiohttp websocket, on a hub session."""

    def __init__(self, dialect: Dialect, url: str, loop: asyncio.AbstractEventLoop) -> None:
        parts = urlsplit(url)
        self._dialect = dialect
        self._hub = dialect.streams
        self._session = self._hub.connect(parts.path, parts.query)
        self._ready = asyncio.Event()
        self._control: deque[WSMessage] = deque()
        self._closed = False
        self._close_sent = False
        self._conn = None  # ccxt peeks at aiohttp's buffer through this; there is none

        def wake() -> None:
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._ready.set)

        self._session.wake = wake

    @property
    def closed(self) -> bool:
        return self._closed

    async def receive(self) -> WSMessage:
        session = self._session
        while True:
            if self._control:
                return self._control.popleft()
            if session.outbox:
                return WSMessage(WSMsgType.TEXT, session.outbox.popleft(), None)
            if self._close_sent or self._closed:
                return WSMessage(WSMsgType.CLOSED, None, None)
            if session.close_code is not None:
                self._close_sent = True
                self._hub.disconnect(session)
                return WSMessage(WSMsgType.CLOSE, session.close_code, "")
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), _POLL_S)
            except TimeoutError:
                self._dialect.tick()  # a wall-clock venue moves without anyone stepping it

    async def send_str(self, data: str) -> None:
        if self._closed or self._close_sent:
            raise ConnectionResetError("Cannot write to closing transport")
        self._hub.receive(self._session, data)

    async def ping(self, message: bytes = b"") -> None:
        self._control.append(WSMessage(WSMsgType.PONG, message, None))
        self._ready.set()

    async def pong(self, message: bytes = b"") -> None:
        return None

    async def close(self, *, code: int = 1000, message: bytes = b"") -> bool:
        if self._closed:
            return False
        self._closed = True
        self._hub.disconnect(self._session)
        self._ready.set()
        return True


class ProInProcessBinanceUSDM(ccxt.pro.binanceusdm):  # type: ignore[misc]
    """``ccxt.pro.binanceusdm`` answered by a :class:`Dialect`, REST and websockets, in process."""

    _sg_transport: _Transport

    async def fetch(
        self, url: str, method: str = "GET", headers: Any = None, body: Any = None
    ) -> Any:
        return self._sg_transport.exchange(self, url, method, headers, body)

    def client(self, url: str) -> Any:
        client = super().client(url)
        if not getattr(client, "_sg_in_memory", False):
            dialect = self._sg_transport.dialect

            async def connect(session: Any) -> _MemorySocket:
                return _MemorySocket(dialect, url, client.asyncio_loop)

            client.create_connection = connect
            client._sg_in_memory = True
        return client


def inprocess_client(
    venue: Venue | Dialect,
    api_key: str,
    secret: str,
    *,
    asyncio: bool = False,
    pro: bool = False,
    client_ip: str = "127.0.0.1",
    timeout_ms: int = 10_000,
    on_latency: Callable[[float], object] | None = None,
) -> Any:
    """A ccxt ``binanceusdm`` (async with ``asyncio=True``) trading on ``venue`` in process.

    Pass a :class:`Dialect` instead of a venue to share one fault plan and rate-limit state
    between several clients (or with an HTTP server). ``client_ip`` is the peer address the
    venue's per-IP limits and bans see. Injected latency is not slept: ``on_latency(seconds)``
    is called instead (capped at the timeout), e.g. ``venue.advance`` to spend it in simulated
    time, or ``time.sleep`` to spend it for real. ``pro=True`` (async) gives a
    ``ccxt.pro.binanceusdm`` whose ``watch_*`` streams run in memory on the same dialect.
    """
    if not api_key or not secret:
        raise ValueError("api_key and secret must be non-empty strings")
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int) or timeout_ms <= 0:
        raise ValueError(f"timeout_ms must be a positive integer, got {timeout_ms!r}")
    dialect = venue if isinstance(venue, Dialect) else Dialect(venue)
    cls = (
        ProInProcessBinanceUSDM
        if pro
        else AsyncInProcessBinanceUSDM
        if asyncio
        else InProcessBinanceUSDM
    )
    exchange = cls({"apiKey": api_key, "secret": secret, "timeout": timeout_ms})
    exchange._sg_transport = _Transport(dialect, client_ip, asyncio or pro, on_latency)
    return configure(exchange, INPROCESS_URL)


__all__ = [
    "INPROCESS_URL",
    "AsyncInProcessBinanceUSDM",
    "InProcessBinanceUSDM",
    "ProInProcessBinanceUSDM",
    "inprocess_client",
]
