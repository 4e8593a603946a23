"""Binance USD-M websocket streams over the venue: market streams and the user-data stream.

:class:`StreamHub` is sans-IO, like :class:`~safeguard.venue._dialect.Dialect`: a transport
opens a :class:`StreamSession` for each websocket (:meth:`StreamHub.connect`), hands it every
text frame the client sends (:meth:`StreamHub.receive`), and sends what collects in the
session's ``outbox``. :meth:`StreamHub.pump` (the transports call it on their tick and after
every request) publishes what changed; the user-data stream is pushed as the engine's
listener hears each change, so its events are in the engine's order with the state of that
moment.

Paths, as Binance serves them since its 2026 split (and ccxt 4.5 uses them):

* ``/public/ws[/<label>]``: ``depth``, ``bookTicker``, ``trade``;
* ``/market/ws[/<label>]``: ``aggTrade``, ``markPrice``, ``kline_<i>``, ``ticker``,
  ``miniTicker``, ``forceOrder``;
* ``/private/ws?listenKey=K`` (or ``/private/ws/K``): the user-data stream;
* ``/ws[/<stream or key>]`` and ``/stream?streams=a/b`` (also under each category): the
  legacy root serving everything (the official connector subscribes a listen key there).

A stream subscribed on the wrong category is acknowledged and then silent, as on Binance.
``/stream`` paths wrap every payload as ``{"stream", "data"}``. A ``<label>`` without ``@``
that is not a listen key is a connection label (ccxt numbers its connections) and is ignored.

Depth: the diff stream's ``U``/``u``/``pu`` are the engine's book versions (see
:meth:`~safeguard.venue._state.MarketState.book_version`), the same ids ``GET
/fapi/v1/depth`` answers as ``lastUpdateId``, so a client's snapshot-plus-diff book is the
venue's book exactly. Streams publish on each pump when their data changed (depth, book
ticker, trades, user data) or when their period on the venue's clock has passed (mark price
3 s or 1 s, tickers 2 s, klines 250 ms); ``@100ms``-style speed suffixes are accepted and
do not change the cadence.

Keep-alive: the transports ping every ``ping_interval_s`` and answer pings; a connection is
closed after ``max_connection_s`` on the venue's clock (24 h on Binance), and one that sends
more than ten frames in a second is closed (1008), as Binance does.

Faults (:mod:`safeguard.venue._faults`, in the dialect's plan): stalls, frozen prices behind a
live heartbeat, delayed delivery, a depth gap (dropped or reordered update), disconnects and
listen keys expiring early.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from safeguard._log import logger
from safeguard.venue import _candles as candles
from safeguard.venue._errors import VenueReject
from safeguard.venue._events import (
    AccountChanged,
    AutoDeleveraged,
    Fill,
    LeverageChanged,
    Liquidation,
    MarginCall,
    MarketStepped,
    Notice,
    OrderTriggered,
    OrderUpdate,
)
from safeguard.venue._faults import (
    DepthGapRule,
    FaultInjector,
    StreamDelayRule,
    StreamDisconnectRule,
    StreamFreezeRule,
    StreamStallRule,
    StreamWindowRule,
)

if TYPE_CHECKING:
    from safeguard.venue._engine import Venue
    from safeguard.venue._markets import MarketSpec

LISTEN_KEY_TTL_S = 3600.0
MAX_CONNECTION_S = 24 * 3600.0
MAX_STREAMS = 1024
MAX_INBOUND_PER_S = 10
"""Client frames a connection may send per second (venue clock); more closes it (1008)."""
_CONDITIONAL = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
_PUBLIC_KINDS = frozenset({"depth", "partial_depth", "bookTicker", "trade"})
_PERIOD_S = {"markPrice": 3.0, "ticker": 2.0, "miniTicker": 2.0, "kline": 0.25}
KLINE_INTERVALS_S = candles.INTERVALS
"""The kline streams serve every interval the klines route does (one table, in candles)."""
_LIQUIDATION_IDS = 9_000_000_001
"""The venue closes a liquidated position without an order of the account's; the stream
shows it as an order with an id from this range."""


class StreamRefused(Exception):
    """A websocket the venue will not open: an HTTP status and a Binance error body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.body = json.dumps({"code": code, "msg": msg})


@dataclass(frozen=True, slots=True)
class Stream:
    """One stream name, parsed: ``kind`` and the ``symbol`` (None for ``!...@arr``)."""

    name: str
    kind: str
    symbol: str | None = None
    param: str = ""
    """Partial depth levels, kline interval, ``1s`` for fast mark prices."""

    @property
    def public(self) -> bool:
        return self.kind in _PUBLIC_KINDS


def parse_stream(name: str, symbols: Any) -> Stream | None:
    """The stream ``name`` names on this venue, or ``None`` if it names none."""
    if not isinstance(name, str) or not name or len(name) > 200:
        return None
    head, _, rest = name.partition("@")
    parts = rest.split("@") if rest else []
    if head.startswith("!"):
        channel = head[1:].lower()
        if channel == "bookticker" and not parts:
            return Stream(name, "bookTicker")
        if channel in ("markprice", "forceorder", "ticker", "miniticker") and parts[:1] == ["arr"]:
            kind = {"markprice": "markPrice", "forceorder": "forceOrder"}.get(channel, channel)
            kind = {"miniticker": "miniTicker"}.get(kind, kind)
            fast = parts[1:] == ["1s"]
            if parts[1:] and not fast:
                return None
            return Stream(name, kind, None, "1s" if fast else "")
        return None
    symbol = head.upper()
    if symbol not in symbols or not parts:
        return None
    channel, suffix = parts[0], parts[1:]
    lowered = channel.lower()
    speed_ok = len(suffix) <= 1 and all(s in ("100ms", "250ms", "500ms", "0ms") for s in suffix)
    if lowered == "depth" and speed_ok:
        return Stream(name, "depth", symbol)
    if lowered in ("depth5", "depth10", "depth20") and speed_ok:
        return Stream(name, "partial_depth", symbol, lowered[5:])
    if suffix:
        if lowered == "markprice" and suffix == ["1s"]:
            return Stream(name, "markPrice", symbol, "1s")
        return None
    simple = {
        "bookticker": "bookTicker",
        "trade": "trade",
        "aggtrade": "aggTrade",
        "markprice": "markPrice",
        "ticker": "ticker",
        "miniticker": "miniTicker",
        "forceorder": "forceOrder",
    }
    if lowered in simple:
        return Stream(name, simple[lowered], symbol)
    if lowered.startswith("kline_") and channel[6:] in KLINE_INTERVALS_S:
        return Stream(name, "kline", symbol, channel[6:])
    return None


@dataclass(slots=True)
class _ListenKey:
    api_key: str
    expires_at: float


class ListenKeys:
    """The user-data stream's keys: one live key per API key, expiring after an hour."""

    def __init__(self) -> None:
        self._keys: dict[str, _ListenKey] = {}

    def create(self, api_key: str, now: float) -> str:
        """``POST``: the account's live key, extended; or a new one."""
        for key, entry in self._keys.items():
            if entry.api_key == api_key and entry.expires_at > now:
                entry.expires_at = now + LISTEN_KEY_TTL_S
                return key
        key = secrets.token_urlsafe(48).replace("-", "a").replace("_", "b")[:64]
        self._keys[key] = _ListenKey(api_key, now + LISTEN_KEY_TTL_S)
        return key

    def extend(self, api_key: str, key: str | None, now: float) -> str:
        """``PUT``: extend ``key`` (or, with none given, the account's live key)."""
        found = self._find(api_key, key, now)
        found[1].expires_at = now + LISTEN_KEY_TTL_S
        return found[0]

    def delete(self, api_key: str, key: str | None, now: float) -> None:
        del self._keys[self._find(api_key, key, now)[0]]

    def expire(self, key: str) -> None:
        """End ``key`` now (a fault: the key expiring early)."""
        if key in self._keys:
            self._keys[key].expires_at = float("-inf")

    def owner(self, key: str, now: float) -> str | None:
        entry = self._keys.get(key)
        return entry.api_key if entry is not None and entry.expires_at > now else None

    def keys_of(self, api_key: str) -> list[str]:
        return [k for k, e in self._keys.items() if e.api_key == api_key]

    def all_keys(self, api_key: str | None = None) -> list[str]:
        """Every key (of ``api_key`` if given)."""
        return [k for k, e in self._keys.items() if api_key in (None, e.api_key)]

    def expired(self, now: float) -> list[str]:
        """Keys whose hour ran out, forgotten as they are returned."""
        gone = [k for k, e in self._keys.items() if e.expires_at <= now]
        for key in gone:
            del self._keys[key]
        return gone

    def _find(self, api_key: str, key: str | None, now: float) -> tuple[str, _ListenKey]:
        for candidate, entry in self._keys.items():
            if entry.api_key == api_key and entry.expires_at > now and key in (None, candidate):
                return candidate, entry
        raise VenueReject(-1125, "This listenKey does not exist.", http_status=400)


@dataclass(eq=False, slots=True)
class StreamSession:
    """One websocket: what it subscribed to, and what waits to be sent to it."""

    category: str
    """``public``, ``market``, ``private`` or ``all`` (the legacy root)."""
    combined: bool
    opened_at: float
    streams: dict[str, Stream] = field(default_factory=dict)
    listen_keys: set[str] = field(default_factory=set)
    outbox: deque[str] = field(default_factory=deque)
    close_code: int | None = None
    """Set when the venue ends the connection (the transport closes it with this code)."""
    wake: Callable[[], None] | None = None
    """Called when something was queued (the transport's writer waits for it)."""
    inbound: deque[float] = field(default_factory=deque)
    """When the client's recent frames arrived (the inbound rate limit)."""

    def serves(self, stream: Stream) -> bool:
        if self.category == "all":
            return True
        if self.category == "private":
            return False
        return stream.public == (self.category == "public")

    def send(self, name: str, payload: Any) -> None:
        """Queue ``payload`` for the stream ``name`` (wrapped on a combined connection)."""
        body = {"stream": name, "data": payload} if self.combined else payload
        self.outbox.append(json.dumps(body, separators=(",", ":")))


class StreamHub:
    """The venue's websocket streams, shared by every transport of one dialect."""

    def __init__(
        self,
        venue: Venue,
        listen_keys: ListenKeys,
        faults: Callable[[], FaultInjector] | None = None,
    ) -> None:
        self.venue = venue
        self.listen_keys = listen_keys
        self._faults = faults
        self._gaps: dict[str, str] = {}
        self._reordered: dict[str, dict[str, Any]] = {}
        self._held: list[tuple[float, StreamSession, str, Any]] = []
        self._delay_s = 0.0
        self._last_payload: dict[tuple[str, str | None, str], Any] = {}
        self.max_connection_s = MAX_CONNECTION_S
        self._sessions: list[StreamSession] = []
        self._listening = False
        self._depth_sent: dict[str, int] = {}
        self._last_shown: dict[tuple[str, str, str], Any] = {}
        self._trades_sent: dict[str, int] = {}
        self._due: dict[tuple[str, str | None, str], float] = {}
        self._kline_open: dict[tuple[str, str], int] = {}
        self._liquidation_id = _LIQUIDATION_IDS

    # --- sessions -----------------------------------------------------------------------------

    @property
    def sessions(self) -> list[StreamSession]:
        return list(self._sessions)

    def connect(self, path: str, query: str = "") -> StreamSession:
        """Open a session for a websocket on ``path`` (raises :class:`StreamRefused`)."""
        venue = self.venue
        with venue.lock:
            now = venue.clock.time()
            segments = [s for s in path.split("/") if s]
            category = "all"
            if segments and segments[0] in ("public", "market", "private"):
                category = segments.pop(0)
            if not segments or segments[0] not in ("ws", "stream"):
                raise StreamRefused(404, -5000, f"Path {path} is not a stream")
            combined = segments.pop(0) == "stream"
            session = StreamSession(category, combined, now)
            names: list[str] = []
            if segments:
                names = "/".join(segments).split("/")
            params = parse_qs(query)
            names += [n for value in params.get("streams", []) for n in value.split("/") if n]
            names += params.get("listenKey", [])
            if names:
                self.pump()  # as for SUBSCRIBE: this session's data starts from now
            for name in names:
                self._add(session, name, now, from_path=True)
            if category == "private" and not session.listen_keys:
                raise StreamRefused(400, -1125, "This listenKey does not exist.")
            self._sessions.append(session)
            if not self._listening:
                venue.add_listener(self._on_notice)
                self._listening = True
            return session

    def disconnect(self, session: StreamSession) -> None:
        with self.venue.lock:
            if session in self._sessions:
                self._sessions.remove(session)
            if not self._sessions and self._listening:
                self.venue.remove_listener(self._on_notice)
                self._listening = False

    def receive(self, session: StreamSession, text: str) -> None:
        """Handle one client frame: SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS, properties."""
        with self.venue.lock:
            now = self.venue.clock.time()
            # Frames per second are counted on the wall clock, as Binance counts them: on a
            # simulated clock a burst passed whole when the venue stepped between frames, and
            # a client pacing itself in real time was cut off when nobody advanced the clock.
            arrived = time.monotonic()
            inbound = session.inbound
            inbound.append(arrived)
            while inbound and inbound[0] <= arrived - 1.0:
                inbound.popleft()
            if len(inbound) > MAX_INBOUND_PER_S:
                logger.warning("venue ws: a client sent over {} frames a second", MAX_INBOUND_PER_S)
                session.close_code = 1008
                self._wake(session)
                return
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):  # nested deeper than Python's stack
                session.outbox.append(_error(3, "Invalid JSON: expected a JSON object", None))
                self._wake(session)
                return
            if not isinstance(message, dict):
                session.outbox.append(_error(3, "Invalid JSON: expected a JSON object", None))
                self._wake(session)
                return
            request_id = message.get("id")
            method = message.get("method")
            params = message.get("params", [])
            if isinstance(request_id, bool) or not isinstance(request_id, int | str | None):
                session.outbox.append(_error(2, "Invalid request: invalid id", None))
            elif method in ("SUBSCRIBE", "UNSUBSCRIBE"):
                self._subscribe(session, method, params, request_id, now)
            elif method == "LIST_SUBSCRIPTIONS":
                names = [*session.streams, *session.listen_keys]
                session.outbox.append(_result(names, request_id))
            elif method in ("SET_PROPERTY", "GET_PROPERTY"):
                self._property(session, method, params, request_id)
            else:
                session.outbox.append(_error(1, "Invalid request: unknown method", request_id))
            self._wake(session)

    def _subscribe(
        self, session: StreamSession, method: str, params: Any, request_id: Any, now: float
    ) -> None:
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            session.outbox.append(_error(2, "Invalid request: params must be names", request_id))
            return
        if method == "UNSUBSCRIBE":
            for name in params:
                session.streams.pop(name, None)
                session.listen_keys.discard(name)
            session.outbox.append(_result(None, request_id))
            return
        # Publish what is pending first: a new subscriber's data starts from now (a
        # stream's cursor is shared by its subscribers).
        self.pump()
        valid = [p for p in params if self._valid(p, now)]
        if len(valid) != len(params):
            session.outbox.append(_error(2, "Invalid request: invalid stream", request_id))
            return
        if len(session.streams) + len(params) > MAX_STREAMS:
            session.outbox.append(_error(2, "Invalid request: too many streams", request_id))
            return
        for name in params:
            self._add(session, name, now, from_path=False)
        session.outbox.append(_result(None, request_id))

    def _property(self, session: StreamSession, method: str, params: Any, request_id: Any) -> None:
        if not isinstance(params, list) or not params or params[0] != "combined":
            session.outbox.append(_error(2, "Invalid request: unknown property", request_id))
        elif method == "GET_PROPERTY":
            session.outbox.append(_result(session.combined, request_id))
        elif len(params) != 2 or not isinstance(params[1], bool):
            session.outbox.append(
                _error(2, "Invalid request: combined takes a boolean", request_id)
            )
        else:
            session.combined = params[1]
            session.outbox.append(_result(None, request_id))

    def _valid(self, name: str, now: float) -> bool:
        return (
            parse_stream(name, self.venue.markets) is not None
            or self.listen_keys.owner(name, now) is not None
        )

    def _add(self, session: StreamSession, name: str, now: float, *, from_path: bool) -> None:
        stream = parse_stream(name, self.venue.markets)
        if stream is not None:
            if self._first_subscriber(session, stream):
                self._restart(stream)
            session.streams[name] = stream
            return
        if self.listen_keys.owner(name, now) is not None:
            session.listen_keys.add(name)
            return
        if from_path and "@" in name:
            raise StreamRefused(400, -1100, f"Invalid stream name: {name[:100]}")
        if from_path and session.category != "private":
            return  # a connection label (ccxt numbers its sockets: /public/ws/0)
        if from_path:
            raise StreamRefused(400, -1125, "This listenKey does not exist.")

    def _first_subscriber(self, session: StreamSession, stream: Stream) -> bool:
        key = (stream.kind, stream.symbol, stream.param)
        return not any(
            (s.kind, s.symbol, s.param) == key
            for other in self._sessions
            if other is not session
            for s in other.streams.values()
        )

    def _restart(self, stream: Stream) -> None:
        """Start a stream nobody was watching from now, not from where it was left."""
        kind, symbol, param = stream.kind, stream.symbol, stream.param
        if kind == "depth" and symbol is not None:
            # Diffs start at the book as it is now; a snapshot taken after the ack is at this
            # version or later, so the first diff covers it.
            self._depth_sent[symbol] = self.venue.book_version(symbol)
            self._reordered.pop(symbol, None)
        self._trades_sent.pop(f"{kind}:{symbol}", None)
        shown = {"bookTicker": "bookTicker", "partial_depth": "partial"}.get(kind)
        for key in list(self._last_shown):
            if key[0] == shown and symbol in (None, key[1]):
                del self._last_shown[key]  # the first message shows the current state
        self._due.pop((kind, symbol, param), None)
        if symbol is not None:
            self._kline_open.pop((symbol, param), None)

    def _wake(self, session: StreamSession) -> None:
        if (session.outbox or session.close_code is not None) and session.wake is not None:
            session.wake()

    # --- publishing ---------------------------------------------------------------------------

    def pump(self) -> None:
        """Publish what changed since the last pump to every subscribed session."""
        venue = self.venue
        with venue.lock:
            if not self._sessions:
                return
            now = venue.clock.time()
            windows = self._fault_windows(now)
            for key in self.listen_keys.expired(now):
                self._listen_key_expired(key, now)
            self._release(now)
            stalled = [r for r in windows if isinstance(r, StreamStallRule)]
            frozen = [r for r in windows if isinstance(r, StreamFreezeRule)]
            wanted: dict[tuple[str, str | None, str], list[tuple[StreamSession, Stream]]] = {}
            for session in self._sessions:
                if now - session.opened_at >= self.max_connection_s:
                    session.close_code = 1000
                for stream in session.streams.values():
                    if session.serves(stream) and stream.kind != "forceOrder":
                        what = (stream.kind, stream.symbol, stream.param)
                        wanted.setdefault(what, []).append((session, stream))
            for (kind, symbol, param), targets in wanted.items():
                if any(rule.covers(symbol) for rule in stalled):
                    continue
                if any(rule.covers(symbol) for rule in frozen):
                    payloads = self._frozen(kind, symbol, param, now)
                else:
                    payloads = self._payloads(kind, symbol, param, now)
                for payload in payloads:
                    for session, stream in targets:
                        self._deliver(session, stream.name, payload, now)
            for session in self._sessions:
                self._wake(session)

    # --- faults -------------------------------------------------------------------------------

    def _fault_windows(self, now: float) -> list[StreamWindowRule]:
        if self._faults is None:
            return []
        injector = self._faults()
        for rule in injector.due_stream_events(now):
            logger.info("venue: stream fault {}", rule.kind)
            if isinstance(rule, DepthGapRule):
                self._gaps[rule.symbol] = rule.mode
            elif isinstance(rule, StreamDisconnectRule):
                for session in self._sessions:
                    session.close_code = 1001
            else:
                for key in self.listen_keys.all_keys(rule.api_key):
                    self.listen_keys.expire(key)
        windows = injector.stream_windows(now)
        delays = [rule.ms for rule in windows if isinstance(rule, StreamDelayRule)]
        self._delay_s = max(delays, default=0.0) / 1000
        return windows

    def _deliver(self, session: StreamSession, name: str, payload: Any, now: float) -> None:
        if self._delay_s > 0 or self._held:  # held messages keep their order
            self._held.append((now + self._delay_s, session, name, payload))
        else:
            session.send(name, payload)

    def _release(self, now: float) -> None:
        while self._held and self._held[0][0] <= now:
            _due, session, name, payload = self._held.pop(0)
            if session in self._sessions:
                session.send(name, payload)

    def _frozen(self, kind: str, symbol: str | None, param: str, now: float) -> list[Any]:
        """Heartbeat with frozen prices: the last periodic payload again, newly stamped."""
        key = (kind, symbol, param)
        last = self._last_payload.get(key)
        if last is None or kind not in _PERIOD_S:
            return []
        period = 1.0 if param == "1s" else _PERIOD_S[kind]
        if not self._is_due(key, now, period):
            return []
        stamp = int(now * 1000)
        if isinstance(last, list):
            return [[{**row, "E": stamp} for row in last]]
        return [{**last, "E": stamp}]

    def _payloads(self, kind: str, symbol: str | None, param: str, now: float) -> list[Any]:
        payloads = self._fresh(kind, symbol, param, now)
        if payloads and kind in _PERIOD_S:
            self._last_payload[(kind, symbol, param)] = payloads[-1]
        return payloads

    def _fresh(self, kind: str, symbol: str | None, param: str, now: float) -> list[Any]:
        if symbol is None:
            symbols = list(self.venue.markets)
            if kind == "bookTicker":
                return [p for s in symbols for p in self._book_ticker(s)]
            period = 1.0 if param == "1s" else _PERIOD_S[kind]
            if not self._is_due((kind, None, param), now, period):
                return []
            return [[self._periodic(kind, s) for s in symbols]]
        if kind == "depth":
            return self._depth(symbol)
        if kind == "partial_depth":
            return self._partial_depth(symbol, int(param))
        if kind == "bookTicker":
            return self._book_ticker(symbol)
        if kind in ("trade", "aggTrade"):
            return self._trades(symbol, kind)
        if kind == "kline":
            return self._kline(symbol, param, now)
        period = 1.0 if param == "1s" else _PERIOD_S[kind]
        if not self._is_due((kind, symbol, param), now, period):
            return []
        return [self._periodic(kind, symbol)]

    def _is_due(self, key: tuple[str, str | None, str], now: float, period: float) -> bool:
        due = self._due.get(key)
        if due is not None and now < due:
            return False
        self._due[key] = now + period
        return True

    def _changed(self, key: tuple[str, str, str], value: Any) -> bool:
        if self._last_shown.get(key) == value:
            return False
        self._last_shown[key] = value
        return True

    def _depth(self, symbol: str) -> list[Any]:
        since = self._depth_sent.get(symbol)
        if since is None:
            self._depth_sent[symbol] = self.venue.book_version(symbol)
            return []
        update = self.venue.depth_update(symbol, since)
        if update is None:
            return []
        self._depth_sent[symbol] = update["u"]
        gap = self._gaps.pop(symbol, None)
        if gap == "drop":
            return []
        if gap == "reorder":
            self._reordered[symbol] = update
            return []
        held = self._reordered.pop(symbol, None)
        return [update] if held is None else [update, held]

    def _partial_depth(self, symbol: str, levels: int) -> list[Any]:
        venue = self.venue
        version = venue.book_version(symbol)
        book = venue.depth(symbol, levels)
        if not self._changed(("partial", symbol, str(levels)), (book["bids"], book["asks"])):
            return []
        previous = self._last_shown.get(("partial_u", symbol, str(levels)), version)
        self._last_shown[("partial_u", symbol, str(levels))] = version
        return [
            {
                "e": "depthUpdate",
                "E": book["E"],
                "T": book["T"],
                "s": symbol,
                "U": version,
                "u": version,
                "pu": previous,
                "b": book["bids"],
                "a": book["asks"],
            }
        ]

    def _book_ticker(self, symbol: str) -> list[Any]:
        [row] = self.venue.book_ticker(symbol)
        top = (row["bidPrice"], row["bidQty"], row["askPrice"], row["askQty"])
        if not self._changed(("bookTicker", symbol, ""), top):
            return []
        return [
            {
                "e": "bookTicker",
                "u": row["lastUpdateId"],
                "s": symbol,
                "b": row["bidPrice"],
                "B": row["bidQty"],
                "a": row["askPrice"],
                "A": row["askQty"],
                "T": row["time"],
                "E": row["time"],
            }
        ]

    def _trades(self, symbol: str, kind: str) -> list[Any]:
        key = f"{kind}:{symbol}"
        since = self._trades_sent.get(key)
        rows = self.venue.trades_since(symbol, -1 if since is None else since)
        if since is None:
            # Subscribed now: the tape from here on, not its history.
            self._trades_sent[key] = rows[-1]["a"] if rows else 0
            return []
        if not rows:
            return []
        self._trades_sent[key] = rows[-1]["a"]
        if kind == "aggTrade":
            return [{"e": "aggTrade", "E": r["T"], "s": symbol, **r, "nq": r["q"]} for r in rows]
        return [
            {
                "e": "trade",
                "E": r["T"],
                "T": r["T"],
                "s": symbol,
                "t": r["a"],
                "p": r["p"],
                "q": r["q"],
                "X": "MARKET",
                "m": r["m"],
            }
            for r in rows
        ]

    def _kline(self, symbol: str, interval: str, now: float) -> list[Any]:
        if not self._is_due(("kline", symbol, interval), now, _PERIOD_S["kline"]):
            return []
        candles = self.venue.klines(symbol, interval=interval, limit=2)
        if not candles:
            return []
        opened = self._kline_open.get((symbol, interval))
        out = []
        if opened is not None and candles[-1][0] != opened and len(candles) > 1:
            out.append(_kline(symbol, interval, candles[-2], closed=True))
        self._kline_open[(symbol, interval)] = int(candles[-1][0])
        out.append(_kline(symbol, interval, candles[-1], closed=False))
        return out

    def _periodic(self, kind: str, symbol: str) -> Any:
        venue = self.venue
        if kind == "markPrice":
            row = venue.premium_index(symbol)
            assert isinstance(row, dict)
            return {
                "e": "markPriceUpdate",
                "E": row["time"],
                "s": symbol,
                "p": row["markPrice"],
                "ap": row["markPrice"],
                "P": row["estimatedSettlePrice"],
                "i": row["indexPrice"],
                "r": row["lastFundingRate"],
                "T": row["nextFundingTime"],
            }
        ticker = venue.ticker_24h(symbol)
        mini = {
            "E": ticker["closeTime"],
            "s": symbol,
            "c": ticker["lastPrice"],
            "o": ticker["openPrice"],
            "h": ticker["highPrice"],
            "l": ticker["lowPrice"],
            "v": ticker["volume"],
            "q": ticker["quoteVolume"],
        }
        if kind == "miniTicker":
            return {"e": "24hrMiniTicker", **mini}
        return {
            "e": "24hrTicker",
            **mini,
            "p": ticker["priceChange"],
            "P": ticker["priceChangePercent"],
            "w": ticker["weightedAvgPrice"],
            "Q": ticker["lastQty"],
            "O": ticker["openTime"],
            "C": ticker["closeTime"],
            "F": ticker["firstId"],
            "L": ticker["lastId"],
            "n": ticker["count"],
        }

    # --- the user-data stream (and forceOrder): pushed as the engine changes ------------------

    def _on_notice(self, notice: Notice) -> None:
        if isinstance(notice, MarketStepped):
            self.pump()  # in process, nothing else would publish what the step changed
            return
        if isinstance(notice, Liquidation):
            self._force_order(notice)
        api_key = getattr(notice, "api_key", None)
        if api_key is None:
            return
        keys = self.listen_keys.keys_of(api_key)
        targets = [
            (s, k)
            for s in self._sessions
            if s.category in ("private", "all")
            for k in s.listen_keys
            if k in keys
        ]
        if not targets:
            return
        now = self.venue.clock.time()
        for payload in self._user_payloads(notice):
            for session, key in targets:
                self._deliver(session, key, payload, now)

    def _user_payloads(self, notice: Notice) -> list[dict[str, Any]]:
        at = int(notice.time * 1000)
        if isinstance(notice, OrderUpdate):
            return self._order_payloads(notice, at)
        if isinstance(notice, OrderTriggered):
            order = self.venue.get_order(
                notice.api_key, symbol=notice.symbol, order_id=notice.order_id
            )
            return [_algo_update(order, "TRIGGERED", at)]
        if isinstance(notice, AccountChanged):
            account = self.venue.account_update(
                notice.api_key, notice.reason, notice.symbols, notice.balance_change_units
            )
            return [{"e": "ACCOUNT_UPDATE", "E": at, "T": at, "a": account}]
        if isinstance(notice, LeverageChanged):
            config = {"s": notice.symbol, "l": notice.leverage}
            return [{"e": "ACCOUNT_CONFIG_UPDATE", "E": at, "T": at, "ac": config}]
        if isinstance(notice, MarginCall):
            rows = self.venue.margin_call(notice.api_key, notice.symbols)
            wallet = self.venue.account_update(notice.api_key, "ORDER", ())["B"][0]["cw"]
            return [{"e": "MARGIN_CALL", "E": at, "cw": wallet, "p": rows}]
        if isinstance(notice, Liquidation):
            return [self._own_liquidation(notice, at)]
        if isinstance(notice, AutoDeleveraged):
            return [self._adl_order(notice, at)]
        return []

    def _order_payloads(self, notice: OrderUpdate, at: int) -> list[dict[str, Any]]:
        order = notice.order
        execution = notice.execution
        conditional = order["type"] in _CONDITIONAL
        if conditional and execution != "TRADE":
            return [_algo_update(order, execution, at)]
        spec = self.venue.markets[notice.symbol]
        out = [_order_trade_update(spec, order, execution, notice.fill, at)]
        if conditional and order["status"] == "FILLED":
            out.append(_algo_update(order, "FINISHED", at))
        return out

    def _own_liquidation(self, event: Liquidation, at: int) -> dict[str, Any]:
        spec = self.venue.markets[event.symbol]
        fee = {"N": spec.quote, "n": f"{event.fee:.8f}"}
        return self._forced_close(
            event.symbol, event.qty, event.close_avg_price, event.position_side,
            event.realized_pnl_units, at, client_id=f"autoclose-{at}", kind="LIQUIDATION",
            execution="CALCULATED", working="MARK_PRICE", fee=fee,
        )  # fmt: skip

    def _adl_order(self, event: AutoDeleveraged, at: int) -> dict[str, Any]:
        """A leg closed by auto-deleveraging: a filled trade at the bankruptcy price,
        ``c`` = ``adl_autoclose`` as Binance marks it, no fee (``n`` absent)."""
        return self._forced_close(
            event.symbol, event.qty, event.price, event.position_side,
            event.realized_pnl_units, at, client_id="adl_autoclose", kind="LIMIT",
            execution="TRADE", working="CONTRACT_PRICE", fee={},
        )  # fmt: skip

    def _forced_close(
        self, symbol: str, signed_qty: float, price_value: float, position_side: str,
        realized_units: int, at: int, *, client_id: str, kind: str, execution: str,
        working: str, fee: dict[str, str],
    ) -> dict[str, Any]:  # fmt: skip
        """The ORDER_TRADE_UPDATE of a position the venue closed (a liquidation step or an
        ADL close): one filled IOC order at one price, in the keys' order Binance sends."""
        self._liquidation_id += 1
        spec = self.venue.markets[symbol]
        qty = format(abs(signed_qty), spec.qty_format)
        price = format(price_value, spec.price_format)
        return {
            "e": "ORDER_TRADE_UPDATE",
            "E": at,
            "T": at,
            "o": {
                "s": symbol,
                "c": client_id,
                "S": "SELL" if signed_qty > 0 else "BUY",
                "o": kind,
                "f": "IOC",
                "q": qty,
                "p": price,
                "ap": price,
                "sp": "0",
                "x": execution,
                "X": "FILLED",
                "i": self._liquidation_id,
                "l": qty,
                "z": qty,
                "L": price,
                **fee,
                "T": at,
                "t": 0,
                "b": "0",
                "a": "0",
                "m": False,
                "R": True,
                "wt": working,
                "ot": kind,
                "ps": position_side,
                "cp": False,
                "rp": f"{realized_units / 1e8:.8f}",
                "pP": False,
                "si": 0,
                "ss": 0,
                "V": "NONE",
                "pm": "NONE",
                "gtd": 0,
            },
        }

    def _force_order(self, event: Liquidation) -> None:
        spec = self.venue.markets[event.symbol]
        at = int(event.time * 1000)
        payload = {
            "e": "forceOrder",
            "E": at,
            "o": {
                "s": event.symbol,
                "S": "SELL" if event.qty > 0 else "BUY",
                "o": "LIMIT",
                "f": "IOC",
                "q": format(abs(event.qty), spec.qty_format),
                "p": format(event.mark_price, spec.price_format),
                "ap": format(event.close_avg_price, spec.price_format),
                "X": "FILLED",
                "l": format(event.close_qty, spec.qty_format),
                "z": format(event.close_qty, spec.qty_format),
                "T": at,
            },
        }
        for session in self._sessions:
            for stream in session.streams.values():
                if (
                    stream.kind == "forceOrder"
                    and stream.symbol in (None, event.symbol)
                    and session.serves(stream)
                ):
                    session.send(stream.name, payload)

    def _listen_key_expired(self, key: str, now: float) -> None:
        at = int(now * 1000)
        payload = {"e": "listenKeyExpired", "E": at, "listenKey": key}
        for session in self._sessions:
            if key in session.listen_keys:
                session.send(key, payload)
                session.listen_keys.discard(key)
                if session.category == "private" and not session.listen_keys:
                    session.close_code = 1000


def _result(result: Any, request_id: Any) -> str:
    return json.dumps({"result": result, "id": request_id}, separators=(",", ":"))


def _error(code: int, msg: str, request_id: Any) -> str:
    body = {"error": {"code": code, "msg": msg}, "id": request_id}
    return json.dumps(body, separators=(",", ":"))


def _kline(symbol: str, interval: str, row: list[Any], *, closed: bool) -> dict[str, Any]:
    opened, o, h, low, c, volume, closes, quote, count, taker_base, taker_quote, _ = row
    return {
        "e": "kline",
        "E": closes,
        "s": symbol,
        "k": {
            "t": opened,
            "T": closes,
            "s": symbol,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": o,
            "c": c,
            "h": h,
            "l": low,
            "v": volume,
            "n": count,
            "x": closed,
            "q": quote,
            "V": taker_base,
            "Q": taker_quote,
            "B": "0",
        },
    }


def _order_trade_update(
    spec: MarketSpec, order: Any, execution: str, fill: Fill | None, at: int
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "s": order["symbol"],
        "c": order["clientOrderId"],
        "S": order["side"],
        "o": order["type"],
        "f": order["timeInForce"],
        "q": order["origQty"],
        "p": order["price"],
        "ap": order["avgPrice"],
        "sp": order["stopPrice"],
        "x": execution,
        "X": order["status"],
        "i": order["orderId"],
        "l": "0",
        "z": order["executedQty"],
        "L": "0",
        "T": at,
        "t": 0,
        "b": "0",
        "a": "0",
        "m": False,
        "R": order["reduceOnly"],
        "wt": order["workingType"],
        "ot": order["origType"],
        "ps": order["positionSide"],
        "cp": bool(order.get("closePosition", False)),
        "rp": "0",
        "pP": False,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_TAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if fill is not None:
        body["l"] = format(fill.qty, spec.qty_format)
        body["L"] = format(fill.price, spec.price_format)
        body["N"] = spec.quote
        body["n"] = f"{fill.fee:.8f}"
        body["t"] = fill.trade_id
        body["m"] = fill.maker
        body["rp"] = f"{fill.realized_pnl:.8f}"
    return {"e": "ORDER_TRADE_UPDATE", "E": at, "T": at, "o": body}


_ALGO_STATUS = {"CANCELED": "CANCELED", "EXPIRED": "EXPIRED", "NEW": "NEW"}


def _algo_update(order: Any, status: str, at: int) -> dict[str, Any]:
    return {
        "e": "ALGO_UPDATE",
        "T": at,
        "E": at,
        "o": {
            "caid": order["clientOrderId"],
            "aid": order["orderId"],
            "at": "CONDITIONAL",
            "o": order["type"],
            "s": order["symbol"],
            "S": order["side"],
            "ps": order["positionSide"],
            "f": order["timeInForce"],
            "q": order["origQty"],
            "X": _ALGO_STATUS.get(status, status),
            "ai": str(order["orderId"]) if status in ("TRIGGERED", "FINISHED") else "",
            "ap": order["avgPrice"],
            "aq": order["executedQty"],
            "act": "0",
            "tp": order["stopPrice"],
            "p": order["price"],
            "V": "EXPIRE_MAKER",
            "wt": order["workingType"],
            "pm": "NONE",
            "cp": bool(order.get("closePosition", False)),
            "pP": False,
            "R": order["reduceOnly"],
            "tt": at if status == "TRIGGERED" else 0,
            "gtd": 0,
            "rm": "",
        },
    }


__all__ = [
    "KLINE_INTERVALS_S",
    "LISTEN_KEY_TTL_S",
    "ListenKeys",
    "Stream",
    "StreamHub",
    "StreamRefused",
    "StreamSession",
    "parse_stream",
]
