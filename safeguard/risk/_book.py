"""An L2 order book and what walking it for a given size costs.

A walk answers "if I took liquidity for this size right now": the average and worst fill
price, what the visible book could not fill, and the slippage. Slippage is quoted two ways
because they answer different questions:

- ``slippage_bps`` against the **touch** (best ask for a buy, best bid for a sell): the cost of
  size alone. Zero while the order fits in the first level.
- ``slippage_vs_mid_bps`` against the **mid**: size plus half the spread, what a strategy that
  marks at mid actually pays.

Both are positive when the fill is worse than the reference. The walk takes a ``limit_price``
(levels beyond it are not taken) and a ``depth_haircut`` (the share of each level assumed gone
by the time the order arrives), which the degraded fill model uses.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from safeguard.risk import _inputs

Side = Literal["buy", "sell"]
Level = tuple[float, float]
SIDES: tuple[str, ...] = ("buy", "sell")


def _levels(name: str, raw: Any, *, descending: bool) -> tuple[Level, ...]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ValueError(f"{name} must be a sequence of (price, size) levels, got {raw!r}")
    levels: list[Level] = []
    previous: float | None = None
    for index, level in enumerate(raw):
        if isinstance(level, str | bytes) or not isinstance(level, Sequence) or len(level) < 2:
            raise ValueError(f"{name}[{index}] must be a (price, size) pair, got {level!r}")
        price = _inputs.positive(f"{name}[{index}].price", level[0])
        size = _inputs.positive(f"{name}[{index}].size", level[1])
        if previous is not None and (price >= previous if descending else price <= previous):
            order = "strictly descending" if descending else "strictly ascending"
            raise ValueError(f"{name} prices must be {order}; level {index} is {price!r}")
        previous = price
        levels.append((price, size))
    return tuple(levels)


@dataclass(frozen=True, slots=True)
class BookWalk:
    """The outcome of taking ``requested`` from one side of a book. Prices in quote units."""

    side: Side
    requested: float
    filled: float
    notional: float
    """Quote spent (buy) or received (sell) for ``filled``."""
    average_price: float | None
    """Volume-weighted fill price; ``None`` when nothing could be filled."""
    worst_price: float | None
    best_price: float
    """The touch this walk started from (best ask for a buy, best bid for a sell)."""
    mid: float
    levels_used: int

    @property
    def unfilled(self) -> float:
        """What the visible book (within the limit price, after the haircut) could not fill."""
        return max(self.requested - self.filled, 0.0)

    @property
    def complete(self) -> bool:
        return self.filled >= self.requested * (1.0 - 1e-12)

    @property
    def slippage_bps(self) -> float:
        """Average fill versus the touch, in bps; positive is worse. 0 when nothing filled."""
        return self._bps_against(self.best_price)

    @property
    def slippage_vs_mid_bps(self) -> float:
        """Average fill versus the mid, in bps; positive is worse (includes half the spread)."""
        return self._bps_against(self.mid)

    def _bps_against(self, reference: float) -> float:
        if self.average_price is None:
            return 0.0
        direction = 1.0 if self.side == "buy" else -1.0
        return direction * (self.average_price - reference) / reference * 1e4


@dataclass(frozen=True, slots=True)
class OrderBook:
    """Bids (best first, descending) and asks (best first, ascending) as (price, size) pairs.

    Both sides must be non-empty and uncrossed: a one-sided or crossed book is not a market
    safeguard will price an order against. ``timestamp`` is epoch seconds when known.
    """

    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    timestamp: float | None = None

    def __post_init__(self) -> None:
        bids = _levels("book.bids", self.bids, descending=True)
        asks = _levels("book.asks", self.asks, descending=False)
        if not bids or not asks:
            raise ValueError("book must have at least one bid and one ask")
        if bids[0][0] >= asks[0][0]:
            raise ValueError(f"book is crossed: best bid {bids[0][0]!r} >= best ask {asks[0][0]!r}")
        if self.timestamp is not None:
            _inputs.non_negative("book.timestamp", self.timestamp)
        object.__setattr__(self, "bids", bids)
        object.__setattr__(self, "asks", asks)

    @classmethod
    def from_ccxt(cls, data: Mapping[str, Any]) -> OrderBook:
        """Build from ccxt's ``fetch_order_book`` answer (``timestamp`` there is milliseconds)."""
        millis = data.get("timestamp")
        return cls(
            bids=tuple((level[0], level[1]) for level in data.get("bids") or ()),
            asks=tuple((level[0], level[1]) for level in data.get("asks") or ()),
            timestamp=None if millis is None else _inputs.non_negative("timestamp", millis) / 1e3,
        )

    @property
    def best_bid(self) -> float:
        return self.bids[0][0]

    @property
    def best_ask(self) -> float:
        return self.asks[0][0]

    @property
    def mid(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2.0

    def touch(self, side: Side) -> float:
        """The price a taker on ``side`` starts at: the best ask for a buy, best bid for a sell."""
        return self.asks[0][0] if side == "buy" else self.bids[0][0]

    def walk(
        self,
        side: Side,
        amount: float,
        *,
        limit_price: float | None = None,
        depth_haircut: float = 0.0,
    ) -> BookWalk:
        """Take ``amount`` (base units) from the opposite side, best level first.

        Levels priced beyond ``limit_price`` are left alone; each level's size is scaled by
        ``1 - depth_haircut``. Raises ``ValueError`` naming the argument for a side that is not
        ``"buy"``/``"sell"``, a non-positive amount, or a haircut outside [0, 1).
        """
        _inputs.choice("side", side, SIDES)
        _inputs.positive("amount", amount)
        _inputs.fraction_below_one("depth_haircut", depth_haircut)
        if limit_price is not None:
            _inputs.positive("limit_price", limit_price)
        filled, notional, worst, used = self.sweep(side, amount, limit_price, depth_haircut)
        return BookWalk(
            side=side,
            requested=amount,
            filled=filled,
            notional=notional,
            average_price=notional / filled if filled > 0.0 else None,
            worst_price=worst,
            best_price=self.touch(side),
            mid=self.mid,
            levels_used=used,
        )

    def sweep(
        self, side: Side, amount: float, limit_price: float | None, depth_haircut: float
    ) -> tuple[float, float, float | None, int]:
        """The arithmetic of :meth:`walk` without its checks or its result object:
        ``(filled, notional, worst_price, levels_used)``. For callers that validated the
        arguments already; the verdict's hot path sweeps two or three times per order."""
        buying = side == "buy"
        levels = self.asks if buying else self.bids
        keep = 1.0 - depth_haircut
        remaining = amount
        filled = 0.0
        cost = 0.0
        worst: float | None = None
        used = 0
        for price, size in levels:
            if limit_price is not None and (price > limit_price if buying else price < limit_price):
                break
            take = size * keep
            if take >= remaining:
                # Counted as the whole amount: summing the pieces would leave float dust.
                return amount, cost + remaining * price, price, used + 1
            filled += take
            cost += take * price
            remaining -= take
            worst = price
            used += 1
        if remaining <= amount * 1e-12:
            return amount, cost, worst, used  # the levels summed to the amount, less float dust
        return filled, cost, worst, used

    def depth(self, side: Side) -> float:
        """Total visible size a taker on ``side`` could take (the asks for a buy)."""
        levels = self.asks if side == "buy" else self.bids
        return sum(size for _, size in levels)


__all__ = ["SIDES", "BookWalk", "Level", "OrderBook", "Side"]
