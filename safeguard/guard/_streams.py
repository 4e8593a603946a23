"""What a ccxt.pro ``watch_*`` call tells the guard's view, and how alive each stream is.

A bot written the way real bots are written watches: ``watch_ticker``, ``watch_order_book``,
``watch_mark_price``, ``watch_orders``, ``watch_positions``, ``watch_balance``. On a guarded
exchange each of these passes straight through to ccxt.pro and its answer is returned to the
caller unchanged; the same answer also feeds the guard's view
(:class:`~safeguard.guard._market.MarketCache`), stamped with the stream's liveness: when the
last message arrived (on the guard's clock) and when the venue stamped it.

A piece of the view fed by a stream is never re-read over REST on the order path: while the
stream is live its messages keep it fresh, and when the stream stops being trustworthy the
verdict fails closed on it until the stream is live again (``STALE_MARKET_DATA`` for a market
stream, ``MISSING_ACCOUNT`` for the user-data stream):

- **stall** (no message while the connection stays up): the feed's last message is older than
  ``risk.max_market_data_age_s``;
- **gap** (a diff-depth sequence gap: ccxt raises ``ChecksumError`` and drops its book), a
  **disconnect**, an expired listen key: the watch raises, and the feed is broken from then
  until its next message. The user-data view is read again over REST, on the stream's path,
  before it is trusted (events were lost in the gap): after its next message, or, since a
  quiet account sends none, once its watch is connected again (:data:`RECONCILE_READS`,
  asked at most once per due period however often the stream breaks; reads made while it
  was down do not count);
- **freeze** (the heartbeat runs on with fresh event times, the prices stand still): the
  price tracks of :mod:`safeguard.risk._freshness`, fed by every stream message as by every
  REST read.

The user-data stream sends nothing while nothing happens, so its liveness is its connection:
unbroken since the last REST reconcile means the account view is current (ccxt's keepalive
ping fails a dead connection, which rejects the pending watch). Everything here is plain
state and pure decisions; the faces only call ccxt and hand over what came back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

MARKET_FEEDS = {
    "watch_ticker": "ticker",
    "watch_tickers": "ticker",
    "watch_mark_price": "mark",
    "watch_mark_prices": "mark",
    "watch_order_book": "book",
    "watch_order_book_for_symbols": "book",
    "watch_trades": "trades",
    "watch_trades_for_symbols": "trades",
    "watch_bids_asks": "top",
    "watch_ohlcv": "candles",
}
"""Market-data watches, by the feed they are (a feed is per symbol)."""
ACCOUNT_FEEDS = frozenset(
    {
        "watch_orders",
        "watch_orders_for_symbols",
        "watch_my_trades",
        "watch_my_trades_for_symbols",
        "watch_balance",
        "watch_positions",
        "watch_position",
        "watch_position_for_symbols",
        "watch_my_liquidations",
        "watch_my_liquidations_for_symbols",
    }
)
"""Watches on the user-data stream: one feed, the account."""
ACCOUNT = "account"
RECONCILE_READS = ("fetch_balance", "fetch_positions")
"""The REST reads that reconcile the account after a user-data stream's break (Binance's
``GET /fapi/v3/account`` and ``GET /fapi/v3/positionRisk``): the wallet and the legs the
verdict judges on."""
JUDGED_FEEDS = frozenset({"ticker", "mark", "book"})
"""The feeds whose pieces the verdict reads (trades, the top of book and candles only keep
their own liveness)."""


@dataclass(frozen=True, slots=True)
class Liveness:
    """One stream as the guard last saw it (times on the guard's clock)."""

    feed: str
    symbol: str | None
    opened: float
    """When the guard first saw this feed deliver (or, for a broken one, fail)."""
    last_message: float | None = None
    """When its last message was handed over."""
    venue_time: float | None = None
    """The venue's stamp on that message (event time), where it gave one."""
    broken: str | None = None
    """Why the stream cannot be trusted now (a gap, a disconnect, an expired listen key)."""
    broken_at: float | None = None
    reconnected_at: float | None = None
    """The user-data stream only: when its watch was re-established after the break (a
    new connection, on a new listen key after an expired one)."""
    reconcile_asked: float | None = None
    """When the REST reconcile after that reconnect was asked for."""
    reconciled: frozenset[str] = frozenset()
    """The reconcile's reads absorbed since it was asked."""

    def heard(self, now: float, venue_time: float | None) -> Liveness:
        """After a message: live again (a break ends with the next message)."""
        return replace(
            self, last_message=now, venue_time=venue_time, broken=None, broken_at=None,
            reconnected_at=None, reconcile_asked=None, reconciled=frozenset(),
        )  # fmt: skip

    def fail(self, why: str, now: float) -> Liveness:
        """Broken (again): a reconnect before this break no longer counts."""
        return replace(
            self, broken=why, broken_at=now, reconnected_at=None, reconcile_asked=None,
            reconciled=frozenset(),
        )  # fmt: skip

    def reconnected(self, now: float) -> Liveness:
        """A broken user-data stream's watch is up again: its reconcile is due."""
        if self.broken is None:
            return self
        return replace(self, reconnected_at=now, reconcile_asked=None, reconciled=frozenset())

    def reconcile_read(self, method: str, now: float) -> Liveness:
        """One of the reconcile's reads absorbed at ``now``: live again (with no message:
        the account is quiet) once every one of them was, each read after the reconcile
        was asked, and so after the stream was back (events after the read come on it)."""
        if self.broken is None or self.reconcile_asked is None or now < self.reconcile_asked:
            return self
        done = self.reconciled | {method}
        if not done >= frozenset(RECONCILE_READS):
            return replace(self, reconciled=done)
        return replace(
            self, broken=None, broken_at=None, reconnected_at=None, reconcile_asked=None,
            reconciled=frozenset(),
        )  # fmt: skip

    def quiet_for(self, now: float) -> float | None:
        """How long since the last message (None: never one)."""
        return None if self.last_message is None else max(0.0, now - self.last_message)


def watched_symbols(method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> list[str]:
    """The symbols a watch call names (``watch_ticker(symbol)``, ``watch_tickers([...])``)."""
    first = args[0] if args else kwargs.get("symbol", kwargs.get("symbols"))
    if isinstance(first, str):
        return [first]
    if isinstance(first, list | tuple):
        return [s for s in first if isinstance(s, str)]
    return []


def feed_of(method: str) -> str | None:
    """The feed a watch method is (``"account"`` for the user-data stream), or None."""
    if method in ACCOUNT_FEEDS:
        return ACCOUNT
    return MARKET_FEEDS.get(method)


def per_symbol(method: str, value: Any, symbols: list[str]) -> dict[str, Any]:
    """A market watch's answer, by symbol: a single answer is the named symbol's; a
    dict answer (``watch_tickers``, ``watch_mark_prices``) is keyed by symbol already."""
    if method in ("watch_tickers", "watch_mark_prices", "watch_bids_asks") and isinstance(
        value, Mapping
    ):
        return {s: v for s, v in value.items() if isinstance(s, str)}
    if isinstance(value, Mapping) and isinstance(value.get("symbol"), str):
        return {value["symbol"]: value}
    if isinstance(value, list) and value and isinstance(value[-1], Mapping):
        symbol = value[-1].get("symbol")
        if isinstance(symbol, str):
            return {symbol: value}
    return {symbols[0]: value} if len(symbols) == 1 else {}


def book_copy(book: Mapping[str, Any], depth: int) -> dict[str, Any]:
    """A snapshot of ccxt.pro's live order book (ccxt mutates it in place as updates come)."""
    return {
        "symbol": book.get("symbol"),
        "bids": [list(level[:2]) for level in list(book.get("bids") or [])[:depth]],
        "asks": [list(level[:2]) for level in list(book.get("asks") or [])[:depth]],
        "timestamp": book.get("timestamp"),
        "datetime": book.get("datetime"),
        "nonce": book.get("nonce"),
    }


def mark_as_funding(ticker: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """A ``markPrice`` stream message (ccxt parses it into a ticker with the raw payload in
    ``info``) as the funding-rate structure the view keeps from ``fetch_funding_rate``: mark,
    index, rate and next funding time move; what the stream does not carry (the funding
    interval) stays from the last REST read."""
    info = ticker.get("info") if isinstance(ticker.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    merged = dict(old or {})
    merged.update(
        {
            "symbol": ticker.get("symbol"),
            "markPrice": ticker.get("markPrice"),
            "indexPrice": ticker.get("indexPrice"),
            "timestamp": ticker.get("timestamp"),
            "datetime": ticker.get("datetime"),
        }
    )
    rate, next_time = info.get("r"), info.get("T")
    if rate is not None:
        try:
            merged["fundingRate"] = float(rate)
        except (TypeError, ValueError):
            merged.pop("fundingRate", None)
    if isinstance(next_time, int | float) and not isinstance(next_time, bool):
        merged["fundingTimestamp"] = int(next_time)
        merged["nextFundingTimestamp"] = int(next_time)
    return merged


def forget_dead_listen_key(client: Any, error: Exception) -> bool:
    """After a user-data watch failed on a listen key the venue no longer knows (it expired,
    or was closed), make ccxt.pro ask for a new one on its next watch.

    ccxt keeps its listen key until its own refresh, 20 minutes of wall time after it was
    made; until then every watch on the user-data stream fails again on the dead key, and new
    exposure stays denied (the account cannot be streamed). Forgetting the key the way ccxt's
    own keep-alive does when its renewal fails (``listenKey`` None, ``lastAuthenticatedTime``
    0) makes the next watch post for a key (Binance answers the account's live one if it has
    one, else a new one) and open the stream on it. Only for an error naming the listen key:
    any other failure keeps the key, and so costs no request. Returns whether a key was
    forgotten."""
    if "listenkey" not in str(error).lower():
        return False
    options = getattr(client, "options", None)
    if not isinstance(options, dict):
        return False
    forgot = False
    for bucket in options.values():
        if isinstance(bucket, dict) and bucket.get("listenKey") is not None:
            bucket["listenKey"] = None
            bucket["lastAuthenticatedTime"] = 0
            forgot = True
    return forgot


def is_user_data_url(client: Any, url: str) -> bool:
    """Whether ``url`` (a ccxt.pro websocket client's) is the user-data stream's: Binance
    puts the listen key ccxt holds in its path."""
    options = getattr(client, "options", None)
    if not isinstance(options, dict):
        return False
    return any(
        isinstance(bucket, dict)
        and isinstance(bucket.get("listenKey"), str)
        and bool(bucket["listenKey"])
        and bucket["listenKey"] in url
        for bucket in options.values()
    )


def leverage_update(message: Any) -> tuple[str, Any] | None:
    """``(venue symbol id, leverage)`` when ``message`` (a raw user-data stream message, maybe
    in a combined stream's ``data`` wrapper) is Binance's ``ACCOUNT_CONFIG_UPDATE`` for one
    symbol's leverage. ccxt.pro parses no such event (it drops it), yet it is the only word
    the guard gets, short of a REST read, that another client changed the leverage its
    liquidation prices rest on."""
    if not isinstance(message, Mapping):
        return None
    data = message.get("data")
    event = data if isinstance(data, Mapping) else message
    if event.get("e") != "ACCOUNT_CONFIG_UPDATE":
        return None
    config = event.get("ac")
    if not isinstance(config, Mapping) or not isinstance(config.get("s"), str):
        return None  # ``ai``: the multi-assets mode, which the view does not hold
    return config["s"], config.get("l")


def venue_seconds(value: Any) -> float | None:
    """The venue's stamp on a watch answer (ccxt's ``timestamp``, ms), in seconds."""
    stamp = value.get("timestamp") if isinstance(value, Mapping) else None
    if isinstance(stamp, int | float) and not isinstance(stamp, bool):
        return float(stamp) / 1000.0
    return None


__all__ = [
    "ACCOUNT",
    "ACCOUNT_FEEDS",
    "JUDGED_FEEDS",
    "MARKET_FEEDS",
    "RECONCILE_READS",
    "Liveness",
    "book_copy",
    "feed_of",
    "forget_dead_listen_key",
    "is_user_data_url",
    "leverage_update",
    "mark_as_funding",
    "per_symbol",
    "venue_seconds",
    "watched_symbols",
]
