"""One symbol's live market: its prices, its book, its tape, and what its feed publishes.

:class:`MarketState` owns everything about a symbol that is not an account's: the price feed,
the market makers' book, the accounts' resting orders and untriggered stops (the engine files
them here; matching reads them), the public trade tape with its minute candles, the funding
accumulator, and the data faults that change what the feed *shows* without changing the market
(frozen timestamps, stale prices).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from safeguard._log import logger
from safeguard.venue._book import BUY, SELL, SimBook
from safeguard.venue._funding import PremiumAverage
from safeguard.venue._markets import MarketSpec
from safeguard.venue._matching import Resting, merged_depth
from safeguard.venue._orders import Order
from safeguard.venue._prices import PriceFeed

Levels = list[tuple[int, int]]

PUBLISHED_LEVELS = 1000
"""How deep the published book (and a ``limit=1000`` snapshot) goes."""
_BOOK_JOURNAL = 4096


class MarketState:
    """One symbol's live state."""

    __slots__ = (
        "asks",
        "bids",
        "book",
        "book_changes",
        "candles",
        "feed",
        "freeze",
        "freeze_ms",
        "funding_history",
        "funding_rate",
        "last",
        "last_qty",
        "next_funding",
        "premium",
        "price_minutes",
        "published",
        "snapshot",
        "spec",
        "stops",
        "trade_id",
        "trades",
        "update_id",
    )

    def __init__(
        self,
        spec: MarketSpec,
        feed: PriceFeed,
        book: SimBook,
        *,
        trade_history: int,
        kline_minutes: int = 24 * 60 + 1,
    ) -> None:
        self.spec = spec
        self.feed = feed
        self.book = book
        self.last = max(round(feed.contract / spec.tick_size), 1)
        """Last trade price in ticks."""
        self.last_qty = 0
        self.bids: Resting = []
        """Accounts' resting buy orders, best first, keyed ``(-price, sequence)``."""
        self.asks: Resting = []
        """Accounts' resting sell orders, best first, keyed ``(price, sequence)``."""
        self.stops: list[Order] = []
        self.trades: deque[tuple[int, int, int, int, bool]] = deque(maxlen=trade_history)
        self.trade_id = 0
        self.update_id = 0
        """The published book's version (Binance's ``lastUpdateId`` / ``u``): see
        :meth:`book_version`."""
        self.published: tuple[Levels, Levels] | None = None
        self.book_changes: deque[tuple[int, frozenset[int], frozenset[int]]] = deque(
            maxlen=_BOOK_JOURNAL
        )
        """Per version: the bid and ask prices (ticks) that changed in it."""
        # Minute candles for the ticker and klines: [minute, open, high, low, close, volume,
        # quote, trade count, taker-buy volume, taker-buy quote] (prices in ticks).
        self.candles: deque[list[float]] = deque(maxlen=max(kline_minutes, 24 * 60 + 1))
        # The price process per minute: [minute, mark o h l c, index o h l c, premium o h l c].
        self.price_minutes: deque[list[float]] = deque(maxlen=self.candles.maxlen)
        self.premium = PremiumAverage()
        self.next_funding = 0.0
        self.funding_rate = 0.0
        """The rate settled at the last funding time."""
        self.funding_history: deque[tuple[int, float, float]] = deque(maxlen=1000)
        """Settled funding: (funding time ms, rate, mark at settlement), oldest first."""
        self.freeze: str | None = None
        self.freeze_ms = 0
        self.snapshot: dict[str, Any] = {}

    # --- the market moving ------------------------------------------------------------------

    def step(self, t: float, offset_s: float, dt: float) -> None:
        """Move prices (unless frozen), refill and re-centre the book, print the mid."""
        feed = self.feed
        if self.freeze != "prices":
            feed.step(t, offset_s, dt)
        index = feed.index
        self.premium.add((feed.mark - index) / index, dt)
        book = self.book
        book.replenish(t)
        centre = feed.contract / self.spec.tick_size
        book.recenter(centre)
        last = round(centre) or 1
        self.last = last
        candles = self.candles
        if candles and candles[-1][0] == int(t // 60):
            candle = candles[-1]
            candle[2] = max(candle[2], last)
            candle[3] = min(candle[3], last)
            candle[4] = last
        else:
            self.candle(t, last, 0)
        self.record_prices(t)

    def record_prices(self, t: float) -> None:
        """Fold the current mark, index and premium into this minute's price row."""
        # Every step of every symbol passes here: straight-line compares, no loop.
        feed = self.feed
        mark = feed.mark
        index = feed.index
        premium = (mark - index) / index
        minute = int(t // 60)
        rows = self.price_minutes
        if not rows or rows[-1][0] != minute:
            rows.append([minute, mark, mark, mark, mark, index, index, index, index,
                         premium, premium, premium, premium])  # fmt: skip
            return
        row = rows[-1]
        if mark > row[2]:
            row[2] = mark
        elif mark < row[3]:
            row[3] = mark
        row[4] = mark
        if index > row[6]:
            row[6] = index
        elif index < row[7]:
            row[7] = index
        row[8] = index
        if premium > row[10]:
            row[10] = premium
        elif premium < row[11]:
            row[11] = premium
        row[12] = premium

    def record_trade(self, t: float, price: int, qty: int, *, buyer_maker: bool) -> int:
        """Print a trade on the public tape; returns its trade id."""
        trade_id = self.trade_id = self.trade_id + 1
        self.trades.append((trade_id, price, qty, int(t * 1000), buyer_maker))
        self.last = price
        self.last_qty = qty
        self.candle(t, price, qty, taker_buy=not buyer_maker)
        return trade_id

    def candle(self, t: float, price: int, qty: int, *, taker_buy: bool = False) -> None:
        minute = int(t // 60)
        candles = self.candles
        c = candles[-1] if candles else None
        if c is not None and c[0] == minute:
            c[2] = max(c[2], price)
            c[3] = min(c[3], price)
            c[4] = price
        else:
            c = [minute, price, price, price, price, 0.0, 0.0, 0, 0.0, 0.0]
            candles.append(c)
        if qty:
            spec = self.spec
            base = qty * spec.step_size
            quote = base * price * spec.tick_size
            c[5] += base
            c[6] += quote
            c[7] += 1
            if taker_buy:
                c[8] += base
                c[9] += quote

    # --- what the feed publishes ------------------------------------------------------------

    def set_freeze(self, mode: str | None, now_ms: int) -> None:
        """Stage (or lift, with ``None``) a data fault; snapshots what stale views will show."""
        self.freeze = None
        if mode is not None:
            self.snapshot = {
                "mark": self.feed.mark,
                "index": self.feed.index,
                "last": self.last,
                "depth": self.depth(1000),
            }
            self.freeze_ms = now_ms
        self.freeze = mode

    def shown_ms(self, now_ms: int) -> int:
        """The time the feed stamps on what it publishes."""
        return self.freeze_ms if self.freeze == "timestamps" else now_ms

    def shown_prices(self) -> tuple[float, float, int]:
        """(mark, index, last ticks) as the feed publishes them."""
        if self.freeze == "stale_prices":
            snap = self.snapshot
            return snap["mark"], snap["index"], snap["last"]
        return self.feed.mark, self.feed.index, self.last

    def book_version(self) -> int:
        """The published book's update id, advanced (and the change journaled) if it moved.

        Every reader of the book (REST depth and bookTicker, the depth streams) asks here
        first, so one id names exactly one book: a snapshot at id X plus the diffs after X is
        the book, level for level (Binance's ``U``/``u``/``pu`` rules). Versions are cut when
        someone looks, not at every step, which costs nothing when nobody does.
        """
        bids, asks = self.depth(PUBLISHED_LEVELS)
        old = self.published
        if old is None or old[0] != bids or old[1] != asks:
            self.update_id += 1
            self.book_changes.append(
                (
                    self.update_id,
                    _changed(old[0] if old else [], bids),
                    _changed(old[1] if old else [], asks),
                )
            )
            self.published = (bids, asks)
        return self.update_id

    def book_changes_since(self, since: int) -> tuple[Levels, Levels]:
        """Levels (price, quantity now; 0 = gone) that changed in any version after ``since``.

        Every level that moved in between is listed, not only the net difference, so a
        snapshot taken at any version in between is brought to the current book exactly.
        """
        assert self.published is not None  # book_version() ran first
        journal = self.book_changes
        bid_prices: set[int] = set()
        ask_prices: set[int] = set()
        if journal and journal[0][0] > since + 1:
            # The journal no longer reaches back: send every level either book ever had.
            logger.warning("venue: depth journal of {} overflowed", self.spec.symbol)
            bid_prices.update(p for p, _ in self.published[0])
            ask_prices.update(p for p, _ in self.published[1])
        for version, bids, asks in reversed(journal):
            if version <= since:
                break
            bid_prices |= bids
            ask_prices |= asks
        now_bids = dict(self.published[0])
        now_asks = dict(self.published[1])
        return (
            sorted(((p, now_bids.get(p, 0)) for p in bid_prices), reverse=True),
            sorted((p, now_asks.get(p, 0)) for p in ask_prices),
        )

    def depth(self, limit: int) -> tuple[Levels, Levels]:
        """The published book: market makers' levels with the accounts' resting orders."""
        if self.freeze == "stale_prices":
            bids, asks = self.snapshot["depth"]
            return bids[:limit], asks[:limit]
        return (
            merged_depth(self.book.depth(BUY, limit), self.bids, limit=limit, bids=True),
            merged_depth(self.book.depth(SELL, limit), self.asks, limit=limit, bids=False),
        )


def _changed(old: Levels, new: Levels) -> frozenset[int]:
    """Prices whose quantity differs between two books (added, removed or resized)."""
    before = dict(old)
    after = dict(new)
    return frozenset(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


__all__ = ["PUBLISHED_LEVELS", "MarketState"]
