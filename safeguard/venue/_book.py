"""The venue's simulated L2 book: market-maker liquidity around the contract price.

(Not :mod:`safeguard.risk._book`, which walks a book the client fetched.)

The book is a *profile*: level ``i`` on each side sits ``i * gap`` ticks behind the touch and
holds a target quantity that grows with distance (scaled by ``thinness``, jittered once from
the seed). The profile is centred on the contract price every step, so it moves with the
market. What takers consume is tracked as a *deficit* per level that decays back to zero with a
half-life: a sweep leaves a hole that refills over seconds, which is what makes a second
market order in quick succession fill worse than the first.

Quantities are integer steps and prices integer ticks; nothing here knows about money.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

BUY = "BUY"
SELL = "SELL"


class SimBook:
    """One symbol's synthetic liquidity. Sides are ``"BUY"`` (bids) and ``"SELL"`` (asks)."""

    __slots__ = (
        "_ask_deficit",
        "_ask_targets",
        "_bid_deficit",
        "_bid_targets",
        "_half_life_s",
        "_updated",
        "ask0",
        "bid0",
        "gap",
        "levels",
        "spread",
    )

    def __init__(
        self,
        *,
        mid_ticks: float,
        levels: int,
        gap_ticks: int,
        spread_ticks: int,
        touch_qty_steps: float,
        growth: float,
        half_life_s: float,
        rng: random.Random,
        now: float,
    ) -> None:
        if levels < 1 or gap_ticks < 1 or spread_ticks < 1:
            raise ValueError("levels, gap_ticks and spread_ticks must be >= 1")
        self.levels = levels
        self.gap = gap_ticks
        self.spread = spread_ticks
        self._half_life_s = half_life_s

        def profile() -> list[int]:
            return [
                max(1, round(touch_qty_steps * (1.0 + growth * i) * rng.uniform(0.5, 1.5)))
                for i in range(levels)
            ]

        self._bid_targets = profile()
        self._ask_targets = profile()
        self._bid_deficit: dict[int, int] = {}
        self._ask_deficit: dict[int, int] = {}
        self._updated = now
        self.bid0 = 0
        self.ask0 = 0
        self.recenter(mid_ticks)

    def recenter(self, mid_ticks: float) -> None:
        """Put the touch around ``mid_ticks`` (a float count of ticks)."""
        bid0 = math.floor(mid_ticks - (self.spread - 1) / 2.0)
        self.bid0 = max(bid0, 1)
        self.ask0 = self.bid0 + self.spread

    def replenish(self, now: float) -> None:
        """Let consumed liquidity flow back: each level's deficit halves every half-life."""
        dt = now - self._updated
        if dt <= 0:
            return
        self._updated = now
        factor = 0.5 ** (dt / self._half_life_s) if self._half_life_s > 0 else 0.0
        for deficits in (self._bid_deficit, self._ask_deficit):
            if deficits:
                for level in list(deficits):
                    left = int(deficits[level] * factor)
                    if left:
                        deficits[level] = left
                    else:
                        del deficits[level]

    def _side(self, side: str) -> tuple[list[int], dict[int, int], int, int]:
        """(targets, deficits, touch ticks, direction) of the side a taker on ``side`` hits."""
        if side == BUY:
            return self._ask_targets, self._ask_deficit, self.ask0, self.gap
        return self._bid_targets, self._bid_deficit, self.bid0, -self.gap

    def best(self, side: str) -> int | None:
        """Best price a taker on ``side`` would get (ticks), or ``None`` when the side is empty."""
        targets, deficits, touch, step = self._side(side)
        for level in range(self.levels):
            if targets[level] > deficits.get(level, 0):
                return touch + level * step
        return None

    def best_bid(self) -> int | None:
        return self.best(SELL)

    def best_ask(self) -> int | None:
        return self.best(BUY)

    def take(self, side: str, qty: int, limit: int | None, *, dry_run: bool = False) -> list[int]:
        """Consume up to ``qty`` steps for a taker on ``side`` at prices no worse than ``limit``.

        Returns a flat list ``[price, qty, price, qty, ...]`` of the levels hit, best first
        (flat because this is the matching hot path). ``dry_run`` only measures.
        """
        # _side, inlined: every order's match starts here.
        if side == BUY:
            targets, deficits = self._ask_targets, self._ask_deficit
            touch, step = self.ask0, self.gap
        else:
            targets, deficits = self._bid_targets, self._bid_deficit
            touch, step = self.bid0, -self.gap
        fills: list[int] = []
        left = qty
        for level in range(self.levels):
            price = touch + level * step
            if limit is not None and (price > limit if step > 0 else price < limit):
                break
            used = deficits.get(level, 0)
            available = targets[level] - used
            if available <= 0:
                continue
            take = available if available < left else left
            fills.append(price)
            fills.append(take)
            if not dry_run:
                deficits[level] = used + take
            left -= take
            if not left:
                break
        return fills

    def walk(self, side: str) -> Iterator[tuple[int, int]]:
        """(price, qty) levels a taker on ``side`` would meet, best first, lazily."""
        targets, deficits, touch, step = self._side(side)
        for level in range(self.levels):
            available = targets[level] - deficits.get(level, 0)
            if available > 0:
                yield touch + level * step, available

    def depth(self, side: str, limit: int) -> list[tuple[int, int]]:
        """Up to ``limit`` (price, qty) levels of the bids (``"BUY"``) or asks (``"SELL"``)."""
        hit = SELL if side == BUY else BUY
        targets, deficits, touch, step = self._side(hit)
        out: list[tuple[int, int]] = []
        for level in range(self.levels):
            available = targets[level] - deficits.get(level, 0)
            if available > 0:
                out.append((touch + level * step, available))
                if len(out) >= limit:
                    break
        return out


__all__ = ["BUY", "SELL", "SimBook"]
