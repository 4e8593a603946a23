"""What the guard knows about the market and the account, and how old each piece is.

Every successful read through the guard (the user's own ``fetch_ticker`` included) lands here,
stamped with when it was fetched and, where the venue says, when the venue produced it. Before
an order, :meth:`MarketCache.refresh` names the reads that are missing or due: market rules on
a schedule (half of ``max_rules_age_s``, so a verdict never rests on rules older than the
policy allows), tier tables at half of ``max_tiers_age_s`` (venues change them without notice),
mark/funding and the book when older than half of ``max_market_data_age_s``, and the account
(balance, positions, open orders, leverage and margin mode) on the same schedule: a reconcile,
not a re-read after each order. The guard's own orders update the view from their answers
(:meth:`MarketCache.placed`); only what an answer cannot say exactly is read again before the
next verdict that adds exposure. While a position is open, :meth:`MarketCache.ladders_wanted`
asks for the tier tables after any read once they are due, so a bot that places no order
still sees a change that moves its liquidation price.

Staleness is judged on the *venue's* timestamps: a feed that freezes keeps answering, with old
data, and the guard must notice that rather than the freshness of its own request. A feed can
also freeze its prices under fresh timestamps, so how long each published price (mark, last,
book mid) has stood still is tracked too, on our clock, for :mod:`safeguard.risk._freshness`.

Rule drift (tick, step, limits, fees, funding interval, tier ladder) is reported as a list of
:class:`RuleChange` so the caller can emit an event and re-check open positions.

ccxt.pro ``watch_*`` answers land here too (:meth:`MarketCache.streamed`), stamped with their
stream's liveness: a piece a stream feeds is not read on the order path, and the verdict
judges it by the stream's liveness instead (:mod:`safeguard.guard._streams` has the rules).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from typing import Any

from safeguard._config import RiskLimits
from safeguard.guard import _streams as streams
from safeguard.guard._core import Send
from safeguard.guard._orders import algo_route_flags
from safeguard.guard._streams import ACCOUNT, Liveness
from safeguard.risk._correlation import PriceHistory
from safeguard.risk._freshness import PriceTrack

_MAPPING = (dict, Mapping)
"""For ``isinstance`` on the hot paths: a plain dict (what ccxt answers) passes on the C check
of ``dict``, without a call into ``Mapping``'s Python-level ``__instancecheck__``."""

_RULE_KEYS = (
    ("precision", "price"),
    ("precision", "amount"),
    ("limits", "amount", "min"),
    ("limits", "amount", "max"),
    ("limits", "cost", "min"),
    ("limits", "price", "min"),
    ("limits", "price", "max"),
    ("maker",),
    ("taker",),
    ("active",),
)


@dataclass(frozen=True, slots=True)
class Seen:
    """One piece of data, when we fetched it, and when the venue says it was true."""

    value: Any
    fetched: float
    venue_time: float | None

    def age(self, now: float) -> float:
        """Age by the venue's clock when it said, else by our fetch (never negative)."""
        stamp = self.venue_time if self.venue_time is not None else self.fetched
        return max(0.0, now - stamp)


@dataclass(frozen=True, slots=True)
class RuleChange:
    symbol: str
    field: str
    old: Any
    new: Any


@dataclass
class MarketCache:
    """The latest reads, per symbol and for the account. Plain state; no I/O, no clock."""

    limits: RiskLimits
    book_depth: int = 100
    markets: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    rules_at: float | None = None
    markets_answer: Mapping[str, Any] | None = None
    """The last ``load_markets`` answer taken (ccxt's own markets object)."""
    tiers: dict[str, Seen] = field(default_factory=dict)
    funding: dict[str, Seen] = field(default_factory=dict)
    books: dict[str, Seen] = field(default_factory=dict)
    tickers: dict[str, Seen] = field(default_factory=dict)
    balance: Seen | None = None
    positions: Seen | None = None
    open_orders: dict[str, Seen] = field(default_factory=dict)
    """Per symbol, the open orders of both kinds; ``fetched`` is the ordinary orders' read."""
    stops_read: dict[str, float] = field(default_factory=dict)
    algo_ids: dict[str, frozenset[str]] = field(default_factory=dict)
    """Per symbol, the ids of the open orders last seen in the algo service (the stops read,
    or our own conditional order's answer). Which listing an order came from is what says
    which read is its truth: a triggered stop-limit rests as a LIMIT that keeps its trigger
    price, so its own fields would still call it a stop."""
    heard_leverage: dict[str, tuple[float, bool]] = field(default_factory=dict)
    """Per symbol, a leverage the user-data stream reported that no REST read has confirmed
    yet, and whether one already disagreed (a read in flight when the stream spoke may
    answer the value from before)."""
    """Per symbol, when its conditional orders were last read. Binance keeps a stop or a
    take-profit that has not triggered in its algo service since 2025-12-09: a plain
    ``fetch_open_orders`` does not list it, ``{"trigger": True}`` does (:func:`stops_read`)."""
    unsettled: set[str] = field(default_factory=set)
    """Symbols whose positions our own orders changed since they were last read."""
    settings: dict[str, Seen] = field(default_factory=dict)
    """Per symbol, ``{"leverage": float | None, "marginMode": str | None}``: what the venue
    will apply to the next order. ``fetch_positions`` drops flat symbols, so a symbol another
    client set to isolated 50x would otherwise look like the defaults."""
    prices: dict[str, dict[str, PriceTrack]] = field(default_factory=dict)
    """Per symbol, how long each published price (mark, last, book mid) has stood still, on
    our clock."""
    fees: dict[str, Seen] = field(default_factory=dict)
    """Per symbol, the account's commission rates (``fetch_trading_fee``: ``maker``,
    ``taker``), read with the rules and on their schedule: a fill's commission is not in
    Binance's order answer, and with the rate the view applies it without a wallet re-read."""
    ladders_asked: float | None = None
    """When :meth:`ladders_wanted` last asked for the tier tables (one ask per due period,
    whatever became of it, so a failing read is not repeated after every read)."""
    own_prefix: str = ""
    """The guard's client order id prefix: its own orders' fills come from their answers
    (:meth:`placed`), not from the user-data stream, which may deliver them first."""
    feeds: dict[tuple[str, str | None], Liveness] = field(default_factory=dict)
    """The streams feeding the view (:mod:`safeguard.guard._streams`), by (feed, symbol);
    the user-data stream is ``("account", None)``."""
    fills_applied: dict[str, float] = field(default_factory=dict)
    """Per order id, the filled quantity the view has applied (from an answer or a stream)."""
    watching: dict[str, int] = field(default_factory=dict)
    """How many watch calls per feed are awaiting their stream now."""
    stream_asked: dict[tuple[Any, ...], float] = field(default_factory=dict)
    """When the stream path or the schedule last asked for each read (one ask per due period)."""
    account_reconcile_asked: float | None = None
    """When the stream path last asked for the account's reconcile after its stream came back
    (one per due period, however often the stream breaks)."""
    version: int = 0
    """Counts the changes to the account's pieces (:meth:`touch`); a read notes it when it is
    sent (:meth:`~safeguard.guard._gate.PreTradeGate.read_version`)."""
    changed_at: dict[str, int] = field(default_factory=dict)
    """Per account piece (``balance``, ``positions``, ``open_orders``, ``settings``), the
    :attr:`version` of its latest change: a read of the piece sent before it may answer the
    account from before that change, and is not taken (:meth:`outdated`)."""
    intervals_listed_at: float | None = None
    """When the whole funding-interval list was last read (``fetch_funding_intervals`` with no
    symbols: Binance's ``fundingInfo``): the guard reads it on the rules' schedule, and a
    symbol it does not list is on the default interval as of then."""
    intervals_asked: float | None = None
    """When :meth:`intervals_wanted` last asked for the list."""
    funding_intervals: dict[str, Seen] = field(default_factory=dict)
    """Per symbol, the funding interval in seconds from the bot's own ``fetch_funding_interval``
    / ``fetch_funding_intervals`` reads (Binance's ``fundingInfo``; its ``premiumIndex``, which
    ``fetch_funding_rate`` reads, does not carry it). The guard does not poll it."""
    history: PriceHistory | None = field(init=False)
    """Each symbol's marks by interval, the cascade's estimated correlation's input (kept only
    under ``risk.stress.correlation_source = "estimated"``). Fed by the marks the guard reads
    anyway (funding reads, mark streams, position reads): no request of its own."""

    def __post_init__(self) -> None:
        stress = self.limits.stress
        self.history = (
            PriceHistory(stress.correlation_interval_s, stress.correlation_window)
            if stress.correlation_source == "estimated"
            else None
        )

    # --- what to read before judging an order ----------------------------------------------

    def refresh(self, symbol: str, now: float) -> list[Send]:
        """The reads the order path makes before judging an order on ``symbol``: only when a
        piece of the view is missing or has reached the age its verdict allows (twice its
        schedule, :meth:`due`). A piece merely past its schedule is still fresh for the
        verdict, and reading it on the order path would cost the order a round trip raw ccxt
        does not make (orders 2.5 s apart re-read seven pieces, with 5 s allowed); the
        stream's path reads on the schedule itself (:meth:`stream_reads`)."""
        return self.due(symbol, now, ahead=False)

    def due(self, symbol: str, now: float, *, ahead: bool = True) -> list[Send]:
        """The reads due for ``symbol``: with ``ahead``, each piece at half its allowed age
        (the schedule, so it is renewed before the verdict would refuse it); without, only
        those missing or at the age their verdict allows."""
        stretch = 1.0 if ahead else 2.0
        rules_due = stretch * self.limits.max_rules_age_s / 2.0
        data_due = stretch * self.limits.max_market_data_age_s / 2.0
        # A piece a stream feeds is kept fresh by the stream: never read on the order path
        # (a broken or stalled stream denies instead, see stream_gap); its REST read is a
        # reconcile on the tier tables' schedule, which the stream's path makes first.
        fed = self._fed(symbol)
        reconcile = stretch * self._tiers_due
        account_due = reconcile if self.account_streamed(now) else data_due
        sends: list[Send] = []
        if self.rules_at is None or now - self.rules_at >= rules_due:
            sends.append(Send("load_markets", (True,)))
        if self.markets and symbol not in self.markets:
            return sends  # unknown symbol: nothing more to read; the verdict denies it
        fee = self.fees.get(symbol)
        if fee is None or now - fee.fetched >= rules_due:
            sends.append(Send("fetch_trading_fee", (symbol,)))
        tiers = self.tiers.get(symbol)
        if tiers is None or now - tiers.fetched >= reconcile:
            # Every symbol's ladder: positions elsewhere share the cross wallet.
            sends.append(Send("fetch_leverage_tiers", ()))
        funding = self.funding.get(symbol)
        if funding is None or now - funding.fetched >= (reconcile if "mark" in fed else data_due):
            sends.append(Send("fetch_funding_rate", (symbol,)))
        ticker = self.tickers.get(symbol)
        if "ticker" not in fed and (ticker is None or now - ticker.fetched >= data_due):
            sends.append(Send("fetch_ticker", (symbol,)))  # last price and the 24 h range
        book = self.books.get(symbol)
        if "book" not in fed and (book is None or now - book.fetched >= data_due):
            sends.append(Send("fetch_order_book", (symbol, self.book_depth)))
        if due_after(self.balance, now, account_due):
            sends.append(Send("fetch_balance", ()))
        if due_after(self.positions, now, account_due):
            sends.append(Send("fetch_positions", ()))
        if due_after(self.open_orders.get(symbol), now, account_due):
            sends.append(Send("fetch_open_orders", (symbol,)))
        stops = self.stops_read.get(symbol)
        if stops is None or now - stops >= account_due:
            sends.append(stops_read(symbol))
        if due_after(self.settings.get(symbol), now, account_due):
            # Every symbol's leverage and margin mode in one read (symbolConfig on Binance),
            # on the account's schedule: another client may change them at any time.
            sends.append(Send("fetch_leverages", ()))
        return sends

    def ladders_wanted(self, now: float) -> bool:
        """Whether to read the tier tables now, off the order path: a symbol with an open
        position has no ladder or a due one, and none was asked for within the due period."""
        due = self._tiers_due
        if self.ladders_asked is not None and 0.0 <= now - self.ladders_asked < due:
            return False
        # held() without its sorted list: asked after every read, and any one symbol decides.
        tiers = self.tiers
        for p in self.positions.value if self.positions is not None else ():
            if isinstance(p, _MAPPING) and _held(p.get("contracts")):
                symbol = p.get("symbol")
                if isinstance(symbol, str):
                    ladder = tiers.get(symbol)
                    if ladder is None or now - ladder.fetched >= due:
                        return True
        for symbol in list(self.unsettled):
            ladder = tiers.get(symbol)
            if ladder is None or now - ladder.fetched >= due:
                return True
        return False

    def intervals_wanted(self, now: float) -> bool:
        """Whether to read every symbol's funding interval now (after a funding read, off the
        verdict's needs): the list is missing or half as old as the rules may be, and was not
        asked for within that period, whatever became of the ask. A margin parameter the
        venue changes at will: premiumIndex's next funding time cannot tell 4 h from 8 h at
        05:00 (08:00 is on both grids), and funding counted at half its rate moves the
        liquidation price. Not needed for a verdict (without it the interval is inferred), so
        a venue failing it costs one request a period, never an order."""
        due = self.limits.max_rules_age_s / 2.0
        for stamp in (self.intervals_listed_at, self.intervals_asked):
            if stamp is not None and 0.0 <= now - stamp < due:
                return False
        return True

    def held(self) -> list[str]:
        """Symbols with an open position in the latest positions read, and those our own
        orders changed since (they may hold one now)."""
        held = (
            p.get("symbol")
            for p in (self.positions.value if self.positions is not None else ())
            if isinstance(p, Mapping) and _held(p.get("contracts"))
        )
        return sorted({symbol for symbol in held if isinstance(symbol, str)} | self.unsettled)

    @property
    def _tiers_due(self) -> float:
        return min(self.limits.max_rules_age_s, self.limits.max_tiers_age_s) / 2.0

    # --- streams (ccxt.pro watch_* answers) --------------------------------------------------

    def _fed(self, symbol: str) -> set[str]:
        """The judged feeds a stream holds for ``symbol`` (live, quiet or broken)."""
        # list() of a dict is one C call: a snapshot even while a stream thread adds feeds.
        return {feed for (feed, sym) in list(self.feeds) if sym == symbol}

    def account_streamed(self, now: float) -> bool:
        """Whether the user-data stream keeps the account view current: unbroken since the
        view's last REST reconcile, and either a watch on it is awaiting its next event (a
        quiet account sends nothing) or its last event came within
        ``risk.max_market_data_age_s`` (ccxt buffers what arrives between two watches)."""
        feed = self.feeds.get((ACCOUNT, None))
        if feed is None or feed.broken is not None:
            return False
        if self.watching.get(ACCOUNT, 0) > 0:
            return True
        quiet = feed.quiet_for(now)
        return quiet is not None and quiet <= self.limits.max_market_data_age_s

    def watch_started(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], now: float
    ) -> None:
        """A watch call is awaiting its stream: the user-data stream is live while one is,
        and a book is kept current by its symbol's heartbeat only while one awaits it."""
        feed = streams.feed_of(method)
        if method.startswith("watch_orders"):
            self.watching["orders"] = 1  # order updates are watched (see _streamed_account)
        for key in self._awaited_keys(feed, args, kwargs):
            self.watching[key] = self.watching.get(key, 0) + 1
        if feed == ACCOUNT:
            self.feeds.setdefault((ACCOUNT, None), Liveness(ACCOUNT, None, now))

    def watch_ended(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        for key in self._awaited_keys(streams.feed_of(method), args, kwargs):
            self.watching[key] = max(0, self.watching.get(key, 0) - 1)

    @staticmethod
    def _awaited_keys(
        feed: str | None, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> list[str]:
        if feed == ACCOUNT:
            return [ACCOUNT]
        if feed == "book":
            return [f"book:{s}" for s in streams.watched_symbols("", args, kwargs)]
        return []

    def streamed(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], value: Any, now: float
    ) -> list[str]:
        """Apply a watch answer to the view and stamp its stream live. Returns the symbols
        whose published prices it moved (for the stale-data trigger)."""
        feed = streams.feed_of(method)
        if feed is None:
            return []
        named = streams.watched_symbols(method, args, kwargs)
        if feed == ACCOUNT:
            self._hear((ACCOUNT, None), now, None)
            self._streamed_account(method, value, now)
            return []
        moved = []
        for symbol, piece in streams.per_symbol(method, value, named).items():
            venue_time = streams.venue_seconds(piece)
            if feed in streams.JUDGED_FEEDS or (feed, symbol) in self.feeds:
                self._hear((feed, symbol), now, venue_time)
            if not isinstance(piece, Mapping):
                continue
            if feed == "ticker":
                self.tickers[symbol] = Seen(dict(piece), now, venue_time)
                self._track(symbol, "last", piece.get("last"), self.tickers[symbol])
            elif feed == "mark":
                old = self.funding.get(symbol)
                merged = streams.mark_as_funding(piece, None if old is None else old.value)
                # Without a REST read the funding interval is unknown: due for one (-inf).
                fetched = old.fetched if old is not None else -math.inf
                self.funding[symbol] = Seen(merged, fetched, venue_time)
                self._track(symbol, "mark", merged.get("markPrice"), Seen(merged, now, None))
            elif feed == "book":
                book = streams.book_copy(piece, self.book_depth)
                self.books[symbol] = Seen(book, now, venue_time)
                self._track(symbol, "book", _mid(book), self.books[symbol])
            else:
                continue
            if feed != "book":
                self._book_heartbeat(symbol, now, venue_time)
            moved.append(symbol)
        return moved

    def _book_heartbeat(self, symbol: str, now: float, venue_time: float | None) -> None:
        """A diff-depth stream is silent while the book does not change: another market
        stream of the symbol delivering is its heartbeat, and the book as last streamed is
        the book as of then. The book's mid is observed again too, so a book that stands
        still while the market moves is caught by the frozen-price test; a stall stops every
        stream, and with them the heartbeat."""
        live, seen = self.feeds.get(("book", symbol)), self.books.get(symbol)
        if live is None or live.broken is not None or seen is None or venue_time is None:
            return
        if not self.watching.get(f"book:{symbol}"):
            return  # nobody awaits the book: ccxt's copy may move without the view seeing it
        stamp = max(venue_time, seen.venue_time or venue_time)
        book = {**seen.value, "timestamp": int(stamp * 1000)}
        self.books[symbol] = Seen(book, now, stamp)
        self.feeds[("book", symbol)] = live.heard(now, stamp)
        self._track(symbol, "book", _mid(book), self.books[symbol])

    def _hear(self, key: tuple[str, str | None], now: float, venue_time: float | None) -> None:
        old = self.feeds.get(key)
        if old is not None and old.broken is not None and key[0] == ACCOUNT:
            # Events were lost while it was down: the account is read again (on the
            # stream's path, now that it delivers) before a verdict trusts it; reads made
            # while it was down do not count.
            self._reconcile_account()
        start = old if old is not None else Liveness(key[0], key[1], now)
        self.feeds[key] = start.heard(now, venue_time)

    def stream_failed(
        self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any], why: str, now: float
    ) -> None:
        """A watch raised (a depth gap ccxt detected, a disconnect, an expired listen key):
        its feeds are broken until they deliver again, and the verdict denies on them. A book
        that skipped an update is wrong from then: dropped."""
        feed = streams.feed_of(method)
        if feed is None:
            return
        keys: list[tuple[str, str | None]] = (
            [(ACCOUNT, None)]
            if feed == ACCOUNT
            else [(feed, symbol) for symbol in streams.watched_symbols(method, args, kwargs)]
        )
        for key in keys:
            old = self.feeds.get(key) or Liveness(key[0], key[1], now)
            self.feeds[key] = old.fail(why, now)
            if key[0] == "book" and key[1] is not None:
                self.books.pop(key[1], None)
        if feed == ACCOUNT:
            self._reconcile_account()

    def unwatched(self, method: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """``un_watch_*``: the stream no longer feeds the view; REST keeps it again."""
        feed = streams.feed_of(method.removeprefix("un_"))
        symbols: list[str | None] = list(streams.watched_symbols(method, args, kwargs))
        for symbol in [None] if feed == ACCOUNT else symbols:
            if feed is not None:
                self.feeds.pop((feed, symbol), None)

    def _reconcile_account(self) -> None:
        # The REST reads are due at once (the stream's path makes them); until they are in,
        # the view is too old for a verdict that adds exposure.
        self._reread_balance()
        if self.positions is not None:
            self.positions = Seen(self.positions.value, -math.inf, None)
        for symbol, seen in list(self.open_orders.items()):
            self.open_orders[symbol] = Seen(seen.value, -math.inf, None)
        for symbol in list(self.stops_read):
            self.stops_read[symbol] = -math.inf
        self._ask_again(*_ACCOUNT_READS)

    def account_reconnected(self, now: float) -> None:
        """The user-data stream's watch is up again after a break (a new connection): its
        reconcile is due (:meth:`stream_reads` asks for it). A quiet account sends no event,
        so this, not the next event, is what can end the break."""
        feed = self.feeds.get((ACCOUNT, None))
        if feed is not None and feed.broken is not None:
            self.feeds[(ACCOUNT, None)] = feed.reconnected(now)

    def leverage_heard(self, symbol: str, leverage: Any) -> bool:
        """The user-data stream says ``symbol``'s leverage is now ``leverage`` (set by any
        client: this bot, the web page, another bot on the key). Known at once, as the guard's
        own ``set_leverage`` is; the read schedule stays the venue read's (the margin mode,
        the other half of the setting, has no stream event). False for a value that is no
        leverage: the view keeps what it had, and the next read settles it."""
        value = _leverage_value(leverage)
        if value is None:
            return False
        old = self.settings.get(symbol)
        known = dict(old.value) if old is not None else {"leverage": None, "marginMode": None}
        known["leverage"] = value
        self.settings[symbol] = Seen(known, -math.inf if old is None else old.fetched, None)
        self.heard_leverage[symbol] = (value, False)
        return True

    def _leverage_from_rest(self, symbol: str, value: float | None, *, read: bool) -> float | None:
        """What a REST value (a ``fetch_leverages`` read, or our ``set_leverage``'s answer)
        makes of the leverage the stream reported: agreeing, it confirms it; disagreeing, the
        higher is kept (it fails safe) and the setting is read again, whose answer (a read,
        not an answer to our own change) is then the truth. None: no doubt, take ``value``."""
        heard = self.heard_leverage.get(symbol)
        if heard is None or value is None:
            return None
        leverage, doubted = heard
        if value == leverage or (doubted and read):
            del self.heard_leverage[symbol]
            return None
        self.heard_leverage[symbol] = (leverage, True)
        return max(leverage, value)

    def _account_reconcile(self, now: float) -> list[Send]:
        """The reconcile reads due after the user-data stream came back: at most once per due
        period, whatever the stream does (one that keeps breaking is not read after each
        return); a reconnect inside the period, or a reconcile whose read failed, is asked
        for again with the first stream message after the period."""
        feed = self.feeds.get((ACCOUNT, None))
        if feed is None or feed.reconnected_at is None:
            return []
        last = self.account_reconcile_asked
        if last is not None and 0.0 <= now - last < self.limits.max_market_data_age_s / 2.0:
            return []
        self.account_reconcile_asked = now
        self.feeds[(ACCOUNT, None)] = replace(feed, reconcile_asked=now)
        # The open orders the break made stale come first (the count the verdict judges):
        # the last of the reconcile's reads makes the view live, and the order path then
        # finds nothing left to read.
        unread = [
            Send("fetch_open_orders", (symbol,))
            for symbol, seen in sorted(self.open_orders.items())
            if not math.isfinite(seen.fetched)
        ] + [
            stops_read(symbol)
            for symbol, read in sorted(self.stops_read.items())
            if not math.isfinite(read)
        ]
        return unread + [Send(method, ()) for method in streams.RECONCILE_READS]

    def _account_read(self, method: str, now: float) -> None:
        """An all-account read absorbed: it may complete the reconcile after a break."""
        feed = self.feeds.get((ACCOUNT, None))
        if feed is not None and feed.broken is not None:
            self.feeds[(ACCOUNT, None)] = feed.reconcile_read(method, now)

    def stream_gap(self, symbol: str, now: float) -> str | None:
        """Why the stream-fed market view of ``symbol`` cannot be judged on now (a broken
        feed, or one with no message for longer than ``risk.max_market_data_age_s``), or
        None. The price freeze under a live heartbeat is the verdict's own test."""
        limit = self.limits.max_market_data_age_s
        # sorted() copies the items in one C call: a snapshot, like list().
        for (feed, sym), live in sorted(self.feeds.items(), key=lambda kv: kv[0][0]):
            if sym != symbol or feed not in streams.JUDGED_FEEDS:
                continue
            if live.broken is not None:
                return f"the {feed} stream of {symbol} broke ({live.broken}); waiting for it"
            quiet = live.quiet_for(now)
            if quiet is not None and quiet > limit:
                return (
                    f"the {feed} stream of {symbol} has sent nothing for {quiet:.1f}s; the "
                    f"policy allows {limit:g}s (risk.max_market_data_age_s)"
                )
        return None

    def account_stream_gap(self) -> str | None:
        """Why the user-data stream cannot keep the account view current, or None."""
        feed = self.feeds.get((ACCOUNT, None))
        if feed is None or feed.broken is None:
            return None
        return f"the user-data stream broke ({feed.broken}); the account is being read again"

    def account_age(self, seen: Seen, now: float) -> float:
        """A part of the account view's age: none while the user-data stream is live (every
        change reaches the view through it), else since its read."""
        if self.account_streamed(now) and math.isfinite(seen.fetched):
            return 0.0
        return seen.age(now)

    def _streamed_account(self, method: str, value: Any, now: float) -> None:
        if method.startswith(("watch_orders", "watch_my_trades")):
            for order in value if isinstance(value, list) else ():
                if isinstance(order, Mapping) and method.startswith("watch_orders"):
                    self._streamed_order(order)
        elif method == "watch_balance" and isinstance(value, Mapping):
            if not (self.watching.get("orders") and _reason(value) == "ORDER"):
                self._streamed_balance(value)
        elif method.startswith("watch_position") and not self.watching.get("orders"):
            # With order updates watched, every position change an order makes (another
            # client's, a liquidation's, an ADL's) arrives as an order update, and the
            # guard's own are applied from their answers: a position event, which may come
            # before the answer it belongs to, has nothing to add.
            rows = value if isinstance(value, list) else [value]
            self._streamed_positions([p for p in rows if isinstance(p, Mapping)])

    def _streamed_order(self, order: Mapping[str, Any]) -> None:
        """An order update: the open-order count follows it; a fill the view has not applied
        (another client's order, or a resting order filling later) has the account read."""
        status = order.get("status")
        symbol = order.get("symbol")
        if order.get("id") is None or not isinstance(symbol, str):
            return
        self._update(symbol, order, ended=status in _ENDED, joins=status == "open")
        order_id = str(order["id"])
        info = order.get("info")
        if isinstance(info, Mapping) and "aid" in info:
            # An ALGO_UPDATE: the order waits in the algo service while open (the stops read
            # is its truth); once triggered it is an ordinary order (ORDER_TRADE_UPDATE).
            algo = self.algo_ids.get(symbol, frozenset())
            waiting = status == "open" and info.get("X") in (None, "NEW")
            self.algo_ids[symbol] = algo | {order_id} if waiting else algo - {order_id}
        filled = _number(order.get("filled")) or 0.0
        client_id = str(order.get("clientOrderId") or "")
        if (
            order_id not in self.fills_applied
            and self.own_prefix
            and client_id.startswith(self.own_prefix)
        ):
            return  # the guard's own order: its answer (placed) applies the fill
        if filled > self.fills_applied.get(order_id, 0.0) + 1e-12:
            self._applied(order_id, filled)
            self._reread_balance()
            self._reread_positions(symbol)

    def _streamed_balance(self, balance: Mapping[str, Any]) -> None:
        # (An ORDER-reason update is skipped while order updates are watched: the fill it
        # comes from is applied from its order's answer or update, and may not have been
        # yet: the stream can be ahead of the answer.)
        """A wallet the view does not show (funding, a transfer, a liquidation fee) has the
        balance read again; the view's own fills already moved it."""
        view = self.balance
        if view is None or not math.isfinite(view.fetched):
            return
        for asset, part in balance.items():
            if not isinstance(part, Mapping) or "total" not in part:
                continue
            streamed = _number(part.get("total"))
            held = _wallet_of(view.value, str(asset))
            if streamed is not None and held is not None and abs(streamed - held) > 1e-6:
                self._reread_balance()
                return

    def _streamed_positions(self, rows: list[Mapping[str, Any]]) -> None:
        """A position the view does not show (someone else's fill, a liquidation, ADL) has
        the positions read again; the view's own fills already moved it."""
        for row in rows:
            symbol = row.get("symbol")
            if not isinstance(symbol, str) or _hedged(row):
                continue
            contracts = _number(row.get("contracts")) or 0.0
            signed = -contracts if row.get("side") == "short" else contracts
            leg = self._signed_leg(symbol)
            if (
                leg is None
                or abs(leg[0] - signed) > 1e-9
                or (
                    signed
                    and not math.isclose(
                        leg[1], _number(row.get("entryPrice")) or 0.0, rel_tol=1e-6
                    )
                )
            ):
                self._reread_positions(symbol)
                if self.positions is not None:
                    self.positions = Seen(self.positions.value, -math.inf, None)

    def _applied(self, order_id: str, filled: float) -> None:
        self.fills_applied[order_id] = filled
        if len(self.fills_applied) > _FILLS_KEPT:
            # The oldest first (insertion order): a stream update that old is long settled.
            with suppress(KeyError, RuntimeError, StopIteration):  # another thread's race
                del self.fills_applied[next(iter(self.fills_applied))]

    def stream_reads(self, now: float) -> list[Send]:
        """The reads due now for the symbols streams feed, made on the stream's path (after a
        message) so the order path finds them done: the schedule (rules, fees, tier tables,
        the funding interval, the account's reconcile) and the REST reconcile after a gap.
        Each read asked at most once per market-data due period, whatever became of it."""
        symbols = sorted({sym for (_, sym) in list(self.feeds) if sym is not None})
        if not symbols and (ACCOUNT, None) in self.feeds:
            symbols = sorted(self.open_orders) or sorted(self.held())
        wanted = {send.read_key: send for send in self._account_reconcile(now)}
        account = self.feeds.get((ACCOUNT, None))
        # While the user-data stream is broken an account read cannot make the view current
        # (events may be lost until the stream is back): only the reconcile reads it.
        broken = account is not None and account.broken is not None
        return self._ask_due(symbols, now, wanted, skip=_ACCOUNT_READS if broken else ())

    def raced(self, send: Send) -> None:
        """``send``'s answer was not taken (it may predate our own order's change): asked
        again on the next pass of the schedule or message of a stream, not a period later."""
        with suppress(TypeError):  # the bot's own read, with a list of symbols: never asked
            self.stream_asked.pop(send.read_key, None)

    def scheduled_reads(self, symbols: Iterable[str], now: float) -> list[Send]:
        """The reads due now off the order path for a bot without streams (REST only, the
        :mod:`~safeguard.guard._keeper`'s schedule): each piece of the view ``symbols`` and
        the account's positions need, at half the age its verdict allows, so the order path
        (which reads only at that age, :meth:`refresh`) finds it fresh. Each read asked at
        most once per market-data due period, whatever became of it."""
        return self._ask_due(sorted(set(symbols) | set(self.held())), now, {})

    def _ask_due(
        self,
        symbols: Iterable[str],
        now: float,
        wanted: dict[tuple[Any, ...], Send],
        *,
        skip: Iterable[str] = (),
    ) -> list[Send]:
        """``wanted`` and the scheduled reads due for ``symbols`` not asked within the
        market-data due period (a failing read is not repeated on every message or tick);
        each one returned is stamped asked now."""
        again = self.limits.max_market_data_age_s / 2.0
        skipped = frozenset(skip)
        for symbol in symbols:
            for send in self.due(symbol, now):
                if send.method in skipped:
                    continue
                key = send.read_key
                asked = self.stream_asked.get(key)
                if asked is None or not 0.0 <= now - asked < again:
                    wanted.setdefault(key, send)
        for key in wanted:
            self.stream_asked[key] = now
        return list(wanted.values())

    # --- learning from reads ---------------------------------------------------------------

    def absorb(self, send: Send, value: Any, now: float) -> list[RuleChange]:
        """Record a successful read. Returns rule changes (empty for anything but rules)."""
        method, args = send.method, send.args
        symbol = _symbol_arg(args, send.kwargs)
        if method == "load_markets" and isinstance(value, Mapping):
            reload = args[0] if args else send.kwargs.get("reload", False)
            return self._absorb_markets(value, now, reload=reload is True)
        if method == "fetch_leverage_tiers" and isinstance(value, Mapping):
            changes = []
            for sym, ladder in value.items():
                old = self.tiers.get(sym)
                if old is not None and _ladder(old.value) != _ladder(ladder):
                    changes.append(RuleChange(sym, "tiers", _ladder(old.value), _ladder(ladder)))
                self.tiers[sym] = Seen(ladder, now, None)
            return changes
        if method == "fetch_funding_rate" and isinstance(value, Mapping) and symbol:
            old = self.funding.get(symbol)
            self.funding[symbol] = Seen(value, now, _seconds(value.get("timestamp")))
            self._track(symbol, "mark", value.get("markPrice"), self.funding[symbol])
            if old is not None and old.value.get("interval") != value.get("interval"):
                return [
                    RuleChange(
                        symbol, "funding interval", old.value.get("interval"), value.get("interval")
                    )
                ]
            return []
        if method in ("fetch_funding_interval", "fetch_funding_intervals"):
            return self._absorb_funding_intervals(send, value, now)
        if method == "fetch_order_book" and isinstance(value, Mapping) and symbol:
            self.books[symbol] = Seen(value, now, _seconds(value.get("timestamp")))
            self._track(symbol, "book", _mid(value), self.books[symbol])
        elif method == "fetch_ticker" and isinstance(value, Mapping) and symbol:
            self.tickers[symbol] = Seen(value, now, _seconds(value.get("timestamp")))
            self._track(symbol, "last", value.get("last"), self.tickers[symbol])
        elif method == "fetch_trading_fee" and isinstance(value, Mapping) and symbol:
            self.fees[symbol] = Seen(value, now, None)
        elif (
            method == "fetch_leverages" and isinstance(value, Mapping) and not _names_symbols(send)
        ):
            self._absorb_settings(value, now)
        elif method in ("set_leverage", "set_margin_mode") and len(args) >= 2:
            # Our own change, acknowledged by the venue: known without a re-read.
            setting = str(args[1])
            old = self.settings.get(setting)
            known = dict(old.value) if old is not None else {"leverage": None, "marginMode": None}
            # The read schedule stays the venue read's (none yet: due now, for the other half).
            fetched = -math.inf if old is None else old.fetched
            if method == "set_leverage":
                leverage = _leverage_value(args[0])
                doubt = self._leverage_from_rest(setting, leverage, read=False)
                known["leverage"] = leverage if doubt is None else doubt
                fetched = fetched if doubt is None else -math.inf
            else:
                known["marginMode"] = _margin_mode_value(args[0])
            self.settings[setting] = Seen(known, fetched, None)
            self.touch("settings")
        elif method == "fetch_balance" and isinstance(value, Mapping):
            self.balance = Seen(value, now, None)
            self._account_read(method, now)
        elif method == "fetch_positions" and isinstance(value, list) and not _names_symbols(send):
            # Only the all-symbols answer replaces the account view; a filtered one is partial.
            self.positions = Seen(value, now, None)
            self._position_marks(value, now)
            self.unsettled.clear()
            self._account_read(method, now)
        elif method == "fetch_positions" and isinstance(value, list) and self.positions:
            # A filtered answer is complete for the symbols it names: their legs (marks,
            # sizes) are refreshed in the view, the others kept, and so is the view's age.
            named = _symbols_arg(args, send.kwargs)
            if named:
                kept = [p for p in self.positions.value if p.get("symbol") not in named]
                fresh = [p for p in value if isinstance(p, Mapping) and p.get("symbol") in named]
                self._position_marks(fresh, now)
                self.positions = Seen(kept + fresh, self.positions.fetched, None)
                self.unsettled -= named
        elif method == "fetch_open_orders" and isinstance(value, list):
            self._absorb_open_orders(send, value, now)
        elif method in _ORDER_ANSWERS:
            self._absorb_orders(send, value)
        return []

    def _absorb_funding_intervals(self, send: Send, value: Any, now: float) -> list[RuleChange]:
        """One symbol's interval (``fetch_funding_interval``) or many (keyed by symbol). An
        unfiltered ``fetch_funding_intervals`` answer is the whole list: Binance lists only the
        symbols off the default, so a symbol it no longer lists is back on the default (its
        interval is forgotten here and the default applies)."""
        if send.method == "fetch_funding_interval":
            symbol = _symbol_arg(send.args, send.kwargs)
            answers = {symbol: value} if symbol and isinstance(value, Mapping) else {}
        else:
            answers = dict(value) if isinstance(value, Mapping) else {}
            if not _names_symbols(send):
                for gone in [s for s in self.funding_intervals if s not in answers]:
                    del self.funding_intervals[gone]
                self.intervals_listed_at = now
        changes = []
        for symbol, answer in answers.items():
            seconds = (
                _interval_hours(answer.get("interval")) if isinstance(answer, Mapping) else None
            )
            if not isinstance(symbol, str) or seconds is None:
                continue
            old = self.funding_intervals.get(symbol)
            if old is not None and old.value != seconds:
                changes.append(RuleChange(symbol, "funding interval", old.value, seconds))
            self.funding_intervals[symbol] = Seen(seconds, now, None)
        return changes

    # --- the open orders ---------------------------------------------------------------------

    def _absorb_open_orders(self, send: Send, orders: list[Any], now: float) -> None:
        """An unpaged answer is the truth for its kind (the ordinary orders, or with
        ``{"trigger": True}`` the conditional ones): for its symbol, or without one for every
        symbol. The other kind is kept as it was known."""
        args, kwargs = send.args, send.kwargs
        whole, conditional = _open_orders_read(send)
        if not whole:
            return  # other filters, or one page: partial
        symbol = _symbol_arg(args, kwargs)
        # Threads sharing one guarded exchange add symbols while this walks them: walk a
        # snapshot (list() of a dict is one C call, atomic under the GIL). The cache's values
        # are replaced, never mutated, so a snapshot is all a reader needs; no lock.
        names = [symbol] if symbol is not None else list(self.open_orders)
        by_symbol: dict[str, list[Any]] = {name: [] for name in names}
        for order in orders:
            if symbol is not None:
                by_symbol[symbol].append(order)
            elif isinstance(order, Mapping) and isinstance(order.get("symbol"), str):
                by_symbol.setdefault(order["symbol"], []).append(order)
        for name, listed in by_symbol.items():
            old = self.open_orders.get(name)
            ids = frozenset(str(o.get("id")) for o in listed if isinstance(o, Mapping))
            algo = self.algo_ids.get(name, frozenset())
            # Each listing is the truth for its own orders only: the other listing's are kept
            # as last seen (a plain answer says nothing of the algo service's stops).
            kept = [
                o
                for o in (old.value if old is not None else ())
                if (str(o.get("id")) in algo) != conditional and str(o.get("id")) not in ids
            ]
            if conditional:
                fetched = old.fetched if old is not None else -math.inf
                self.open_orders[name] = Seen(_unique(kept + listed), fetched, None)
                self.algo_ids[name] = ids
                self.stops_read[name] = now
            else:
                self.open_orders[name] = Seen(_unique(listed + kept), now, None)
                self.algo_ids[name] = algo - ids  # triggered: an ordinary order now

    def _absorb_orders(self, send: Send, value: Any) -> None:
        """Orders named by a cancel or a read: each one no longer open leaves the count (a
        cancel, a fill, an expiry), one a read shows open joins it. Over-counting only denies
        early; an order is taken off only on the venue's word."""
        method, args, kwargs = send.method, send.args, send.kwargs
        orders = [value] if isinstance(value, Mapping) else value
        if not isinstance(orders, list):
            return
        if method not in _READS_OF_ORDERS:
            self._touch_orders(None)  # our own cancel's answer
        for order in orders:
            if isinstance(order, Mapping) and order.get("id") is not None:
                status = order.get("status")
                ended = status in _ENDED or (method == "cancel_order" and status != "open")
                self._update(order.get("symbol"), order, ended=ended, joins=method in _READS)
        if method == "cancel_order":
            # Accepted, so it is cancelled, whatever the answer carries (an algo cancel's
            # answer names no status).
            order_id = args[0] if args else kwargs.get("id")
            symbol = args[1] if len(args) > 1 else kwargs.get("symbol")
            if order_id is not None:
                self._update(symbol, {"id": order_id}, ended=True, joins=False)
        elif method == "cancel_all_orders":
            symbol = args[0] if args else kwargs.get("symbol")
            params = kwargs.get("params") or (args[1] if len(args) > 1 else None) or {}
            # Binance keeps conditional orders apart: a cancel-all ends one kind or the other.
            triggers = _to_algo_routes(params)
            for name in [symbol] if isinstance(symbol, str) else list(self.open_orders):
                seen = self.open_orders.get(name)
                if seen is not None:
                    algo = self.algo_ids.get(name, frozenset())
                    kept = [o for o in seen.value if (str(o.get("id")) in algo) != triggers]
                    self.open_orders[name] = Seen(kept, seen.fetched, seen.venue_time)
                    if triggers:
                        self.algo_ids[name] = frozenset()

    def _update(self, symbol: Any, order: Mapping[str, Any], *, ended: bool, joins: bool) -> None:
        seen = self.open_orders.get(symbol) if isinstance(symbol, str) else None
        if seen is None:
            if isinstance(symbol, str):
                self._touch_orders(symbol)  # a list read on its way may predate this news
            return  # never read: the next verdict reads the whole list
        order_id = str(order["id"])
        resting = [o for o in seen.value if str(o.get("id")) != order_id]
        listed = len(resting) < len(seen.value)
        if ended and listed:
            pass  # it leaves
        elif not ended and order.get("status") == "open" and (listed or joins):
            resting.append(order)  # its latest state (a read's: it may be someone else's)
        else:
            return  # nothing learned (a status ccxt could not parse leaves the count as it is)
        self.open_orders[symbol] = Seen(resting, seen.fetched, seen.venue_time)
        if ended or not listed:
            # One left or joined: a list read sent before may still show it as it was. (A
            # listed order's new state changes no count: polling it outdates nothing.)
            self._touch_orders(symbol)

    def _track(self, symbol: str, name: str, price: Any, seen: Seen) -> None:
        tracks = self.prices.setdefault(symbol, {})
        number = _number(price)
        if number is None or number <= 0.0:
            tracks.pop(name, None)  # no price: nothing stood still (its absence is denied)
            return
        # On our clock, between the reads that showed it: the venue's stamps are exactly what
        # cannot be trusted here (a venue clock ahead of ours would hide the span entirely).
        stamp = seen.fetched
        if not math.isfinite(stamp) or stamp < 0.0:
            tracks.pop(name, None)
            return
        if name == "mark" and self.history is not None:
            self.history.observe(symbol, number, stamp)
        old = tracks.get(name)
        tracks[name] = (
            PriceTrack.start(name, number, stamp) if old is None else old.observe(number, stamp)
        )

    def _position_marks(self, rows: list[Any], now: float) -> None:
        """A held symbol's mark comes with every position read: into the return history."""
        if self.history is None:
            return
        for row in rows:
            if isinstance(row, Mapping) and isinstance(row.get("symbol"), str):
                self.history.observe(row["symbol"], _number(row.get("markPrice")), now)

    def price_tracks(self, symbol: str) -> tuple[PriceTrack, ...]:
        return tuple(self.prices.get(symbol, {}).values())

    def placed(self, symbol: str, order: Any, now: float, since: int | None = None) -> None:
        """Our own order changed the account: apply what its answer says to the view.

        A resting order joins the open orders and holds margin (the venue takes its size times
        its price over the leverage from the available balance); a fill moves the position by
        the answer's filled quantity and average price. Only what the answer cannot say
        exactly is marked for a re-read before the next verdict that adds exposure: the wallet
        after a fill whose commission it cannot work out (no rate read for the symbol: Binance's
        order answer carries none), a position that flipped
        (its new entry is the price of the part that opened it, which an aggregate answer does
        not give) or that is not one one-way cross leg, and the whole account when there is no
        answer (an order that failed or whose outcome is unknown). Everything else waits for
        the schedule in :meth:`refresh`: a resting order or a stop never forces a re-read.

        ``since``: the :attr:`version` before the order was sent. An account read taken after
        that (another thread's, the keeper's, while the order was on the wire or its answer
        was being journaled) may already hold the fill or the margin: applied on top, they
        would count twice, so the account is read again instead.
        """
        crossed = since is not None and any(
            self.changed_at.get(read, 0) > since for read in _ACCOUNT_TAKEN
        )
        self.touch("balance", "positions")
        self._touch_orders(symbol)
        if not isinstance(order, _MAPPING):
            self._reread_balance()
            self._reread_positions(symbol)
            self.open_orders.pop(symbol, None)
            self.stops_read.pop(symbol, None)
            self.algo_ids.pop(symbol, None)
            return
        filled = _number(order.get("filled"))
        if order.get("id") is not None and filled is not None:
            self._applied(str(order["id"]), filled)
        open_ = order.get("status") == "open"
        # A plain market order never rests, whatever the venue's first answer says of it
        # (Binance may answer NEW before the fill): such an answer does not say the fill.
        resting = open_ and (order.get("type") != "market" or _conditional(order))
        if (open_ and not resting) or (filled is None and not (resting and _conditional(order))):
            # Nothing says what filled (a conditional order's answer never does, and it
            # cannot have filled at once: it waits for its trigger).
            self._reread_balance()
            self._reread_positions(symbol)
        elif filled and crossed:
            self._reread_balance()
            self._reread_positions(symbol)
        elif filled:
            before = self._signed_leg(symbol)
            if not self._apply_fill(symbol, order, filled):
                self._reread_balance()
                self._reread_positions(symbol)
            elif before is None or not self._settle_fill(symbol, order, before):
                self._reread_balance()
        if resting and not _conditional(order) and not order.get("reduceOnly"):
            if crossed:
                self._reread_balance()
            else:
                self._hold_margin(symbol, order)
        seen = self.open_orders.get(symbol)
        if seen is None:
            self.open_orders.pop(symbol, None)
            self.stops_read.pop(symbol, None)
            self.algo_ids.pop(symbol, None)
            return
        listed = [o for o in seen.value if o.get("id") != order.get("id")]
        if resting:
            listed.append(order)
            if _conditional(order) and order.get("id") is not None:
                # Its answer came from the algo routes: the stops read is its truth.
                self.algo_ids[symbol] = self.algo_ids.get(symbol, frozenset()) | {str(order["id"])}
        self.open_orders[symbol] = Seen(listed, seen.fetched, seen.venue_time)

    def touch(self, *pieces: str) -> None:
        """``pieces`` of the account changed now (an answer of ours, a stream's news, a read
        taken): a read of them sent before this is outdated. The open orders are kept per
        symbol (``open_orders:BTC/USDT:USDT``) beside all of them (``open_orders``)."""
        self.version += 1
        for piece in pieces:
            self.changed_at[piece] = self.version

    def _touch_orders(self, symbol: Any, *kinds: str) -> None:
        """``symbol``'s open orders changed (None: every symbol's); ``kinds``: the plain ones,
        the stops, or (none given) both."""
        names = [symbol] if isinstance(symbol, str) else list(self.open_orders)
        kinds = kinds or (_OPEN_ORDERS, _STOPS)
        self.touch(*kinds, *(f"{kind}:{name}" for kind in kinds for name in names))

    def _read_piece(self, send: Send) -> tuple[str | None, bool]:
        """The account piece ``send`` reads, and whether taking it makes that piece current:
        as :meth:`absorb` takes it. None for a read it does not take (a page of open orders,
        filtered leverages), which can neither be outdated nor outdate another. The plain
        open orders and the stops are read apart (``{"trigger": True}``) and kept apart; a
        filtered positions read refreshes the legs it names (``positions:<symbol>``)."""
        piece = _ACCOUNT_PIECES.get(send.method)
        if piece == _OPEN_ORDERS:
            whole, stops = _open_orders_read(send)
            if not whole:
                return None, False  # a page, or other filters: not taken
            kind = _STOPS if stops else _OPEN_ORDERS
            symbol = _symbol_arg(send.args, send.kwargs)
            return (kind if symbol is None else f"{kind}:{symbol}"), True
        if piece == "positions":
            return piece, not _names_symbols(send)
        if piece == "settings" and _names_symbols(send):
            return None, False  # filtered: not taken
        return piece, piece is not None

    def newer_legs(self, send: Send, since: int) -> tuple[set[str], list[Any]]:
        """For a complete positions read sent at ``since``: the symbols a filtered read has
        refreshed since it was sent, and their legs now (:meth:`keep_legs` puts them back
        after the older read is taken, rather than have the filtered polls of another thread
        outdate, and starve, every complete read)."""
        if send.method != "fetch_positions" or _names_symbols(send):
            return set(), []
        prefix = "positions:"
        newer = {
            key[len(prefix) :]
            for key, at in list(self.changed_at.items())
            if key.startswith(prefix) and at > since
        }
        rows = self.positions.value if newer and self.positions is not None else []
        return newer, [p for p in rows if isinstance(p, _MAPPING) and p.get("symbol") in newer]

    def keep_legs(self, symbols: set[str], legs: list[Any]) -> None:
        if symbols and self.positions is not None:
            rest = [p for p in self.positions.value if p.get("symbol") not in symbols]
            self.positions = Seen(rest + legs, self.positions.fetched, self.positions.venue_time)

    def outdated(self, send: Send, since: int) -> bool:
        """Whether ``send``, a read sent at :attr:`version` ``since``, may show its piece of
        the account from before a change the view has taken since (then it is not taken)."""
        piece, _ = self._read_piece(send)
        return piece is not None and self.changed_at.get(piece, 0) > since

    def taken(self, send: Send) -> None:
        """``send``'s answer was taken: an older read of the same piece still on its way is
        outdated now (a filtered read outdates nothing: it made no piece current)."""
        piece, current = self._read_piece(send)
        if piece is None:
            return
        kind, _, symbol = piece.partition(":")
        if kind in (_OPEN_ORDERS, _STOPS):
            self._touch_orders(symbol or None, kind)
        elif current:
            self.touch(piece, f"{piece}{_TAKEN}")
        else:  # a filtered positions read: the legs it named are newer than older reads
            named = _symbols_arg(send.args, send.kwargs)
            self.touch(f"{piece}{_TAKEN}", *(f"positions:{name}" for name in named))

    def _reread_balance(self) -> None:
        # Kept, but due at once and too old for a verdict: the triggers still see the rest of
        # the account until the read.
        self.touch("balance")
        if self.balance is not None:
            self.balance = Seen(self.balance.value, -math.inf, None)
        self._ask_again("fetch_balance")

    def _reread_positions(self, symbol: str) -> None:
        self.touch("positions")
        if self.positions is not None:
            self.positions = Seen(self.positions.value, -math.inf, None)
        self.unsettled.add(symbol)
        self._ask_again("fetch_positions")

    def _ask_again(self, *methods: str) -> None:
        """A new reason to read: the stream's path asks at once, whenever it last asked."""
        for asked in [key for key in list(self.stream_asked) if key[0] in methods]:
            self.stream_asked.pop(asked, None)

    def _hold_margin(self, symbol: str, order: Mapping[str, Any]) -> None:
        """Take a resting order's margin off the view's available balance, as the venue does
        (its unfilled size at its price over the symbol's leverage). Reducing an opposite
        position would hold less: over-holding only denies early."""
        if self.balance is None or not math.isfinite(self.balance.fetched):
            return  # re-read before the next verdict anyway
        settle = str((self.markets.get(symbol) or {}).get("settle") or "USDT")
        setting = self.settings.get(symbol)
        leverage = None if setting is None else setting.value.get("leverage")
        remaining, price = _number(order.get("remaining")), _number(order.get("price"))
        balance = self.balance.value
        free = _number((balance.get("free") or {}).get(settle))
        if not leverage or remaining is None or not price or free is None:
            self._reread_balance()
            return
        held = remaining * price / float(leverage)
        changed = dict(balance)
        changed["free"] = {**balance["free"], settle: free - held}
        self.balance = Seen(changed, self.balance.fetched, self.balance.venue_time)

    def _apply_fill(self, symbol: str, order: Mapping[str, Any], filled: float) -> bool:
        """Move ``symbol``'s position in the view by the fill in ``order``, the venue's way:
        adding to a position averages the entry by cost, reducing one keeps its entry. False
        when the answer cannot say the new position exactly."""
        seen, market = self.positions, self.markets.get(symbol)
        setting = self.settings.get(symbol)
        sign = {"buy": 1.0, "sell": -1.0}.get(str(order.get("side")))
        cost = _number(order.get("cost"))
        step = _number(((market or {}).get("precision") or {}).get("amount"))
        if (
            seen is None
            or market is None
            or sign is None
            or not cost
            or not step
            or setting is None
            or setting.value.get("marginMode") != "cross"  # an isolated leg moves its own wallet
        ):
            return False
        legs = [p for p in seen.value if isinstance(p, _MAPPING) and p.get("symbol") == symbol]
        if len(legs) > 1 or any(_hedged(leg) for leg in legs):
            return False
        leg: Mapping[str, Any] = legs[0] if legs else {"symbol": symbol, "contracts": 0.0}
        contracts = _number(leg.get("contracts")) or 0.0
        held = -contracts if leg.get("side") == "short" else contracts
        entry = _number(leg.get("entryPrice")) or 0.0
        size = _number(market.get("contractSize")) or 1.0
        after = round((held + sign * filled) / step) * step
        if held and (held > 0) != (sign > 0):
            if abs(filled) > abs(held) + step / 2:
                return False  # flipped: the entry of the new side is not in the answer
        else:
            entry = (abs(held) * size * entry + cost) / (abs(after) * size)
        kept = [
            p for p in seen.value if not (isinstance(p, _MAPPING) and p.get("symbol") == symbol)
        ]
        if abs(after) >= step / 2:
            funding = self.funding.get(symbol)
            mark = _number(funding.value.get("markPrice")) if funding is not None else None
            moved = {
                **leg,
                **dict.fromkeys(_DERIVED_FIELDS),  # the venue's figures for the old size
                "contracts": abs(after),
                "contractSize": size,
                "side": "long" if after > 0 else "short",
                "entryPrice": entry,
                "markPrice": mark or _number(leg.get("markPrice")) or cost / (filled * size),
                "marginMode": "cross",
                "hedged": False,
                # The venue's raw row described the old size: only its one-way side holds.
                "info": {"positionSide": "BOTH"},
            }
            kept.append(moved)
        self.positions = Seen(kept, seen.fetched, seen.venue_time)
        return True

    def _signed_leg(self, symbol: str) -> tuple[float, float] | None:
        """``symbol``'s one-way leg in the view: signed contracts and entry price (0, 0 when
        flat), or None when there is no one such leg."""
        if self.positions is None:
            return None
        legs = [
            p for p in self.positions.value if isinstance(p, _MAPPING) and p.get("symbol") == symbol
        ]
        if not legs:
            return 0.0, 0.0
        if len(legs) > 1 or _hedged(legs[0]):
            return None
        contracts = _number(legs[0].get("contracts")) or 0.0
        entry = _number(legs[0].get("entryPrice")) or 0.0
        return (-contracts if legs[0].get("side") == "short" else contracts), entry

    def _settle_fill(
        self, symbol: str, order: Mapping[str, Any], before: tuple[float, float]
    ) -> bool:
        """Move the wallet by a fill the venue's way, after :meth:`_apply_fill` moved the leg
        from ``before``: the commission (the answer's fee, else its cost at the taker rate:
        a fill in the order's own answer took liquidity) and the realized PnL of the reduced
        part go to the wallet; the available balance also follows the leg's unrealized PnL
        and initial margin at the view's mark. False when a figure it needs is missing."""
        after = self._signed_leg(symbol)
        balance, market = self.balance, self.markets.get(symbol) or {}
        settle = str(market.get("settle") or "USDT")
        cost = _number(order.get("cost"))
        funding, setting = self.funding.get(symbol), self.settings.get(symbol)
        mark = _number(funding.value.get("markPrice")) if funding is not None else None
        leverage = _number(setting.value.get("leverage")) if setting is not None else None
        commission = _commission(order, cost, self.fees.get(symbol), settle)
        if (
            after is None
            or balance is None
            or not math.isfinite(balance.fetched)
            or not cost
            or not mark
            or not leverage
            or commission is None
        ):
            return False
        size = _number(market.get("contractSize")) or 1.0
        (held, entry), (now_held, now_entry) = before, after
        realized = 0.0
        if held and (held > 0) != (now_held > held):  # it reduced the leg (a flip re-reads)
            reduced = abs(held) - abs(now_held)
            price = cost / (_number(order.get("filled")) or math.inf) / size
            realized = (price - entry) * reduced * size * (1.0 if held > 0 else -1.0)
        wallet_move = realized - commission
        unrealized_move = (mark - now_entry) * now_held * size - (mark - entry) * held * size
        margin_move = (abs(now_held) - abs(held)) * size * mark / leverage
        value = balance.value
        free = _number((value.get("free") or {}).get(settle))
        total = _number((value.get("total") or {}).get(settle))
        used = _number((value.get("used") or {}).get(settle))
        if free is None or total is None:
            return False
        moved = {
            "free": free + wallet_move + unrealized_move - margin_move,
            "total": total + wallet_move + unrealized_move,
            "used": None if used is None else used + margin_move,
        }
        changed = dict(value)
        for part, number in moved.items():
            changed[part] = {**(value.get(part) or {}), settle: number}
        if isinstance(value.get(settle), _MAPPING):
            changed[settle] = {**value[settle], **moved}
        info = value.get("info")
        if isinstance(info, _MAPPING) and isinstance(info.get("assets"), list):
            assets = []
            for asset in info["assets"]:
                if isinstance(asset, _MAPPING) and asset.get("asset") == settle:
                    wallet = _number(asset.get("walletBalance"))
                    if wallet is None:
                        return False
                    asset_after = {
                        **asset,
                        "walletBalance": str(wallet + wallet_move),
                        "availableBalance": str(moved["free"]),
                        "marginBalance": str(moved["total"]),
                    }
                    assets.append(asset_after)
                else:
                    assets.append(asset)
            changed["info"] = {**info, "assets": assets}
        self.balance = Seen(changed, balance.fetched, balance.venue_time)
        return True

    def _absorb_settings(self, leverages: Mapping[str, Any], now: float) -> None:
        for sym, structure in leverages.items():
            if not isinstance(structure, Mapping):
                continue
            long_, short = structure.get("longLeverage"), structure.get("shortLeverage")
            # Hedge legs may differ: the higher one liquidates first, so judge by it.
            known = [v for v in (_leverage_value(long_), _leverage_value(short)) if v]
            leverage = max(known) if known else None
            doubt = self._leverage_from_rest(str(sym), leverage, read=True)
            self.settings[sym] = Seen(
                {
                    "leverage": leverage if doubt is None else doubt,
                    "marginMode": _margin_mode_value(structure.get("marginMode")),
                },
                now if doubt is None else -math.inf,
                None,
            )

    def _absorb_markets(
        self, markets: Mapping[str, Any], now: float, *, reload: bool
    ) -> list[RuleChange]:
        """The markets ``load_markets`` answered. Stamped as read now only when it was a
        reload (the guard's own reads are; the guarded face makes a call ccxt cannot answer
        from its cache one): without ``reload`` ccxt answers from its cache when it has
        markets, however old (loaded by the raw client an hour ago), and a stamp would keep
        rules the venue may have changed "fresh" for as long as the bot keeps calling it."""
        if markets is self.markets_answer:  # the very object the last answer was
            if reload:
                self.rules_at = now  # read again, and found as it was
            return []
        self.markets_answer = markets
        changes = []
        for symbol, market in markets.items():
            if not isinstance(market, Mapping):
                continue
            old = self.markets.get(symbol)
            if old is not None:
                for path in _RULE_KEYS:
                    before, after = _dig(old, path), _dig(market, path)
                    if before != after:
                        changes.append(RuleChange(symbol, ".".join(path), before, after))
            self.markets[symbol] = market
        if reload:
            self.rules_at = now
        return changes

    # --- what the verdict reads ------------------------------------------------------------

    def account_consistent(self) -> bool:
        """Whether balance and positions were both read after our last order changed them:
        a fresh wallet beside a leg from before our fill would be a made-up equity."""
        return (
            self.balance is not None
            and self.positions is not None
            and math.isfinite(self.balance.fetched)
            and not self.unsettled
        )

    def tiers_time(self, symbol: str) -> float | None:
        """When ``symbol``'s tier ladder was fetched."""
        tiers = self.tiers.get(symbol)
        return None if tiers is None else tiers.fetched

    def rules_time(self, symbol: str) -> float | None:
        """When the older of the filters and the tier ladder was fetched."""
        tiers = self.tiers.get(symbol)
        if self.rules_at is None or tiers is None:
            return None
        return min(self.rules_at, tiers.fetched)


_ACCOUNT_READS = ("fetch_balance", "fetch_positions", "fetch_open_orders", "fetch_leverages")
_ACCOUNT_PIECES: dict[str, str] = {
    "fetch_balance": "balance",
    "fetch_positions": "positions",
    "fetch_open_orders": "open_orders",
    "fetch_leverages": "settings",
}
"""The account reads, by the piece of the view each one answers (see :meth:`outdated`)."""
_OPEN_ORDERS = "open_orders"
_STOPS = "stops"
_TAKEN = "_read"
_ACCOUNT_TAKEN = ("balance_read", "positions_read")
"""When a balance or positions read was last taken (see :meth:`MarketCache.placed`)."""
_FILLS_KEPT = 10_000
"""How many orders' applied fills the view remembers (to tell a stream's news from an
answer it already applied)."""
_ENDED = frozenset({"closed", "canceled", "cancelled", "expired", "rejected"})
"""ccxt's statuses of an order that no longer rests."""
_READS = frozenset({"fetch_order", "fetch_orders"})
"""Reads whose open orders are the venue's word that those orders rest."""
_READS_OF_ORDERS = frozenset(
    {
        "fetch_order",
        "fetch_orders",
        "fetch_closed_orders",
        "fetch_canceled_orders",
        "fetch_canceled_and_closed_orders",
    }
)
"""Order answers that are reads: they change nothing at the venue."""
_ORDER_ANSWERS = _READS | {
    "fetch_closed_orders",
    "fetch_canceled_orders",
    "fetch_canceled_and_closed_orders",
    "cancel_order",
    "cancel_orders",
    "cancel_all_orders",
}


def _to_algo_routes(params: Any) -> bool:
    """Whether ccxt sends a call with ``params`` to Binance's algo routes: one of its flags is
    a real ``True`` (``{"trigger": 1}`` goes to the plain route), whatever else they carry."""
    return bool(algo_route_flags(params))


def _stops_only(params: Any) -> bool:
    """Whether ccxt sends a read or cancel with ``params`` to Binance's algo routes: one of its
    flags, a real ``True`` (ccxt takes no other value: ``{"trigger": 1}`` goes to the plain
    route), and no other filter."""
    return isinstance(params, Mapping) and len(params) == 1 and _to_algo_routes(params)


def _conditional(order: Mapping[str, Any]) -> bool:
    """A stop or take-profit order (Binance keeps those in its algo-order book)."""
    kind = str(order.get("type") or "").lower()
    return bool(order.get("triggerPrice") or order.get("stopPrice")) or kind.startswith(
        ("stop", "take_profit", "trailing")
    )


def _commission(
    order: Mapping[str, Any], cost: float | None, rates: Seen | None, settle: str
) -> float | None:
    """A fill's commission in ``settle``: the answer's fee when ccxt parsed one in that
    currency, else its cost at the account's taker rate; None when neither is known."""
    fee = order.get("fee")
    if isinstance(fee, _MAPPING) and fee.get("currency") == settle:
        paid = _number(fee.get("cost"))
        if paid is not None:
            return paid
    taker = _number(rates.value.get("taker")) if rates is not None else None
    if cost is None or taker is None or taker < 0.0:
        return None
    return cost * taker


def _reason(balance: Mapping[str, Any]) -> str | None:
    """Why an ``ACCOUNT_UPDATE`` moved the balance (its ``m``: ORDER, FUNDING_FEE, ...),
    from the raw message ccxt keeps as the balance's ``info``."""
    info = balance.get("info")
    update = info.get("a") if isinstance(info, Mapping) else None
    reason = update.get("m") if isinstance(update, Mapping) else None
    return reason if isinstance(reason, str) else None


def _wallet_of(balance: Mapping[str, Any], asset: str) -> float | None:
    """The wallet balance of ``asset`` in a ccxt ``fetch_balance`` answer (Binance's
    ``walletBalance``: what the user-data stream's ``wb`` reports), else None."""
    info = balance.get("info")
    for row in info.get("assets") or () if isinstance(info, Mapping) else ():
        if isinstance(row, Mapping) and row.get("asset") == asset:
            return _number(row.get("walletBalance"))
    return None


def _unique(orders: list[Any]) -> list[Any]:
    """One entry per order id (the last one listed): an order listed twice is one order."""
    by_id: dict[Any, Any] = {}
    for index, order in enumerate(orders):
        key = order.get("id") if isinstance(order, Mapping) else None
        by_id[("id", str(key)) if key is not None else ("at", index)] = order
    return list(by_id.values())


def _number(value: Any) -> float | None:
    """A finite number from a venue field (a string or a number), else ``None``."""
    if value.__class__ is float:  # the usual case: no conversion (NaN and inf - inf are NaN)
        return value if value - value == 0.0 else None
    if value is None or isinstance(value, bool):  # None would raise, and raising is slow
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _leverage_value(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and number >= 1.0 else None


def _margin_mode_value(value: Any) -> str | None:
    mode = str(value).lower() if isinstance(value, str) else None
    if mode == "crossed":
        return "cross"
    return mode if mode in ("cross", "isolated") else None


_DERIVED_FIELDS = (
    "notional",
    "unrealizedPnl",
    "initialMargin",
    "maintenanceMargin",
    "liquidationPrice",
    "percentage",
    "marginRatio",
    "collateral",
)
"""Fields of a ccxt position the venue works out from its size: not carried over a fill."""


def _hedged(position: Mapping[str, Any]) -> bool:
    info = position.get("info") or {}
    return bool(position.get("hedged")) or str(info.get("positionSide") or "BOTH") != "BOTH"


def _held(contracts: Any) -> bool:
    return bool(_number(contracts))


STOPS_PARAMS: Mapping[str, Any] = {"trigger": True}
"""ccxt's way to Binance's algo-order routes: a read with it lists the conditional orders."""


def stops_read(symbol: str) -> Send:
    """The read of ``symbol``'s conditional orders (``MarketCache.stops_read`` says when)."""
    return Send("fetch_open_orders", (symbol,), {"params": dict(STOPS_PARAMS)})


def due_after(seen: Seen | None, now: float, after: float) -> bool:
    """Whether ``seen`` is missing or was fetched ``after`` seconds ago or more."""
    return seen is None or now - seen.fetched >= after


def _symbol_arg(args: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    symbol = args[0] if args else kwargs.get("symbol")
    return symbol if isinstance(symbol, str) else None


def _names_symbols(send: Send) -> bool:
    """Whether a read that takes ``symbols`` first (``fetch_positions``, ``fetch_leverages``,
    ``fetch_funding_intervals``) names any: ``fetch_positions(None)`` names none."""
    symbols = send.args[0] if send.args else send.kwargs.get("symbols")
    return symbols is not None


def _open_orders_read(send: Send) -> tuple[bool, bool]:
    """Whether a ``fetch_open_orders`` is a whole list (no page, no filter but the stops'),
    and whether it lists the stops (``{"trigger": True}``, Binance's algo orders)."""
    args, kwargs = send.args, send.kwargs
    params = kwargs.get("params") or (args[3] if len(args) > 3 else None)
    stops = _stops_only(params)
    partial = (params and not stops) or any(
        a is not None for a in [*args[1:3], kwargs.get("since"), kwargs.get("limit")]
    )
    return not partial, stops


def _symbols_arg(args: Sequence[Any], kwargs: Mapping[str, Any]) -> set[str]:
    symbols = args[0] if args else kwargs.get("symbols")
    if isinstance(symbols, str):
        return {symbols}
    if isinstance(symbols, list | tuple):
        return {s for s in symbols if isinstance(s, str)}
    return set()


def _mid(book: Mapping[str, Any]) -> float | None:
    """The mid of the best bid and ask of a ccxt order book (``None`` for one side empty, or
    a crossed book: no price anyone could trade at)."""
    try:
        bid, ask = float(book["bids"][0][0]), float(book["asks"][0][0])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
    return (bid + ask) / 2.0 if 0.0 < bid < ask else None


def _interval_hours(interval: Any) -> float | None:
    """ccxt's ``"4h"`` as seconds, else ``None`` (never a guess)."""
    if isinstance(interval, str) and interval.endswith("h"):
        hours = _number(interval[:-1])
        if hours is not None and hours > 0:
            return hours * 3600.0
    return None


def _seconds(milliseconds: Any) -> float | None:
    if isinstance(milliseconds, int | float) and not isinstance(milliseconds, bool):
        return float(milliseconds) / 1000.0
    return None


def _dig(mapping: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    current: Any = mapping
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _ladder(tiers: Any) -> list[tuple[Any, ...]]:
    if not isinstance(tiers, list):
        return []
    return [
        (
            t.get("minNotional"),
            t.get("maxNotional"),
            t.get("maintenanceMarginRate"),
            t.get("maxLeverage"),
        )
        for t in tiers
        if isinstance(t, Mapping)
    ]


__all__ = ["STOPS_PARAMS", "MarketCache", "RuleChange", "Seen", "due_after", "stops_read"]
