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

from safeguard.venue.book import BUY, SELL, SimBook
from safeguard.venue.funding import PremiumAverage
from safeguard.venue.markets import MarketSpec
from safeguard.venue.matching import Resting, merged_depth
from safeguard.venue.orders import Order
from safeguard.venue.prices import PriceFeed

Levels = list[tuple[int, int]]


class MarketState:
    """One symbol's live state."""

    __slots__ = (
        "asks",
        "bids",
        "book",
        "candles",
        "feed",
        "freeze",
        "freeze_ms",
        "funding_rate",
        "last",
        "last_qty",
        "next_funding",
        "premium",
        "snapshot",
        "spec",
        "stops",
        "trade_id",
        "trades",
        "update_id",
    )

    def __init__(
        self, spec: MarketSpec, feed: PriceFeed, book: SimBook, *, trade_history: int
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
        self.update_id = 1
        # Minute candles for the 24 h ticker: [minute, open, high, low, close, volume, quote].
        self.candles: deque[list[float]] = deque(maxlen=24 * 60 + 1)
        self.premium = PremiumAverage()
        self.next_funding = 0.0
        self.funding_rate = 0.0
        """The rate settled at the last funding time."""
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
        self.update_id += 1
        candles = self.candles
        if candles and candles[-1][0] == int(t // 60):
            candle = candles[-1]
            candle[2] = max(candle[2], last)
            candle[3] = min(candle[3], last)
            candle[4] = last
        else:
            self.candle(t, last, 0)

    def record_trade(self, t: float, price: int, qty: int, *, buyer_maker: bool) -> int:
        """Print a trade on the public tape; returns its trade id."""
        trade_id = self.trade_id = self.trade_id + 1
        self.trades.append((trade_id, price, qty, int(t * 1000), buyer_maker))
        self.last = price
        self.last_qty = qty
        self.candle(t, price, qty)
        return trade_id

    def candle(self, t: float, price: int, qty: int) -> None:
        minute = int(t // 60)
        candles = self.candles
        c = candles[-1] if candles else None
        if c is not None and c[0] == minute:
            c[2] = max(c[2], price)
            c[3] = min(c[3], price)
            c[4] = price
        else:
            c = [minute, price, price, price, price, 0.0, 0.0]
            candles.append(c)
        if qty:
            spec = self.spec
            c[5] += qty * spec.step_size
            c[6] += qty * spec.step_size * price * spec.tick_size

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

    def depth(self, limit: int) -> tuple[Levels, Levels]:
        """The published book: market makers' levels with the accounts' resting orders."""
        if self.freeze == "stale_prices":
            bids, asks = self.snapshot["depth"]
            return bids[:limit], asks[:limit]
        return (
            merged_depth(self.book.depth(BUY, limit), self.bids, limit=limit, bids=True),
            merged_depth(self.book.depth(SELL, limit), self.asks, limit=limit, bids=False),
        )


__all__ = ["MarketState"]
