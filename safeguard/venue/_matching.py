"""Price-time priority across the simulated market makers and the accounts' resting orders.

A taker meets two kinds of liquidity on the other side: the market makers' book
(:class:`~safeguard.venue._book.SimBook`) and other accounts' resting limit orders. :func:`plan`
walks both best price first; at an equal price a resting account order goes first, because it
was there before the market makers re-quoted. It only plans: the engine checks the plan (FOK,
post-only, margin) before executing any of it, so a refusal changes nothing.

Self-trade prevention is Binance's ``EXPIRE_TAKER``: the walk stops at the taker's own resting
order and the taker's remainder expires, so an account never trades with itself and never
leaves a crossed book behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from safeguard.venue._book import BUY, SimBook
from safeguard.venue._orders import Order

Resting = list[tuple[int, int, Order]]
"""One side's resting account orders, best first: ``(sort key, sequence, order)``."""


class Leg(NamedTuple):
    """Part of a taker's fill: ``qty`` steps at ``price`` against ``maker`` (None: the book)."""

    price: int
    qty: int
    maker: Order | None


class Plan(NamedTuple):
    legs: list[Leg]
    self_trade: bool
    """The walk stopped at the taker's own resting order (its remainder must expire)."""

    @property
    def qty(self) -> int:
        return sum(leg.qty for leg in self.legs)


def _better(side: str, a: int, b: int) -> bool:
    """Whether price ``a`` is at least as good as ``b`` for a taker on ``side``."""
    return a <= b if side == BUY else a >= b


def plan(
    book: SimBook,
    resting: Resting,
    *,
    side: str,
    qty: int,
    limit: int | None,
    api_key: str,
    fillable: Callable[[Order], int],
) -> Plan:
    """Plan a taker on ``side`` for ``qty`` steps no worse than ``limit`` (None: market).

    ``resting`` is the *other* side's account orders; ``fillable(order)`` is how much of a
    resting order may trade now (a reduce-only maker with nothing left to reduce gives 0 and
    is passed over).
    """
    legs: list[Leg] = []
    left = qty
    makers: Iterator[Order] = (entry[2] for entry in resting)
    levels: Iterator[tuple[int, int]] = book.walk(side)
    maker = next(makers, None)
    level = next(levels, None)
    self_trade = False
    while left:
        if maker is not None and (level is None or _better(side, maker.price, level[0])):
            price = maker.price
            if limit is not None and not _better(side, price, limit):
                break
            if maker.api_key == api_key:
                self_trade = True
                break
            size = min(left, fillable(maker))
            if size > 0:
                legs.append(Leg(price, size, maker))
                left -= size
            maker = next(makers, None)
        elif level is not None:
            price, available = level
            if limit is not None and not _better(side, price, limit):
                break
            size = min(left, available)
            legs.append(Leg(price, size, None))
            left -= size
            level = next(levels, None)
        else:
            break
    return Plan(legs, self_trade)


def crosses(book: SimBook, resting: Resting, *, side: str, limit: int) -> bool:
    """Whether a limit at ``limit`` would take anything (or meet its own resting order)."""
    best_book = book.best(side)
    if best_book is not None and _better(side, best_book, limit):
        return True
    return bool(resting) and _better(side, resting[0][2].price, limit)


def merged_depth(
    synthetic: Iterable[tuple[int, int]], resting: Resting, *, limit: int, bids: bool
) -> list[tuple[int, int]]:
    """The book as published: market-maker levels plus resting account orders, by price."""
    totals: dict[int, int] = {}
    for price, qty in synthetic:
        totals[price] = totals.get(price, 0) + qty
    for _key, _seq, order in resting:
        totals[order.price] = totals.get(order.price, 0) + order.remaining
    return sorted(totals.items(), reverse=bids)[:limit]


__all__ = ["Leg", "Plan", "Resting", "crosses", "merged_depth", "plan"]
