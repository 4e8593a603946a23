"""A margin account as a function of one symbol's mark price, and where it meets maintenance.

Every liquidation model reduces to one principle: at mark ``P`` the venue liquidates when

    excess(P) = equity(P) - requirement(P) = 0

The legs of the liquidating symbol (the target, and in cross margin its hedge twin) move with
``P``. Every other cross position is frozen at its own mark and folds into a constant ``K``::

    linear  (Q in base units, money in quote):
        excess(P) = K + sum s*Q*(P - EP) - sum [Q*P*(m + x) - c]
    inverse (N in USD = contracts * contract size, money in coin):
        excess(P) = K + sum s*N*(1/EP - 1/P) - sum [(N/P)*(m + x) - c]

``m`` and ``c`` are the MMR and cum of each leg's tier at ``P`` (``c = 0`` for venues that charge
the whole position at its tier's rate), ``x`` the extra rate (closing fee + safety buffer) and
``K = wallet - expected funding + sum over other symbols of (UPNL - MM - x * notional)``.

Between tier boundaries ``excess`` is linear in ``u`` (``u = P`` linear, ``u = 1/P`` inverse)::

    excess = A + B*u
    linear:   A = K + sum (c - s*Q*EP),   B = sum Q*(s - m - x)
    inverse:  A = K + sum (c + s*N/EP),   B = -sum N*(s + m + x)

and its root ``u = -A/B`` is the venue's closed form: with one-way and hedge legs B, L, S this is
Binance's published LP formula term for term (USD-M and COIN-M), and with ``c = 0`` and one leg it
is OKX's. :func:`closed_form` walks the tier segments outward from the mark and returns the first
root; :func:`numeric` finds the same point by bisection on ``excess(P)`` evaluated straight from
the principle, which needs no formula and works for any table. Both handle tables whose MM jumps
at a boundary (``c = 0``): the first price at which ``excess`` is at or below zero is returned
even if that is a jump rather than a root.

Nothing here validates: :mod:`safeguard.risk._liquidation` does that once, at the boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safeguard.risk._liquidation import PositionLeg

# Outward search for the unbounded last segment of the numeric solve: doubling (or halving)
# from the last boundary reaches the float range's end well within this many steps.
_MAX_DOUBLINGS = 2100
# How far either side of a tier boundary the numeric scan probes: far above the rounding of
# notional <-> price (1e-16) and far below the precision promised (1e-9).
_EDGE_NUDGE = 1e-12


def excess(
    legs: Sequence[PositionLeg], constant: float, extra: float, use_cum: bool, price: float
) -> float:
    """``equity - requirement`` at ``price`` (half-open tiers, the venue's reading)."""
    total = constant
    for leg in legs:
        quantity = leg.quantity
        if leg.inverse:
            value = quantity / price
            total += leg.side * quantity * (1.0 / leg.entry_price - 1.0 / price)
        else:
            value = quantity * price
            total += leg.side * quantity * (price - leg.entry_price)
        table = leg.tiers
        index = tier_index(leg, price)
        tier = table.tiers[index]
        total -= value * (tier.maintenance_margin_rate + extra)
        if use_cum:
            total += tier.cum
    return total


def tier_index(leg: PositionLeg, price: float, arriving: int = 0) -> int:
    """Index of the leg's tier at ``price``: half-open, or as reached moving ``arriving``."""
    table = leg.tiers
    if table.keyed_by == "quantity":
        return table.locate(leg.quantity)
    size = leg.quantity / price if leg.inverse else leg.quantity * price
    if not arriving:
        return table.locate(size)
    return table.locate(size, lower_at_boundary=(arriving > 0) != leg.inverse)


def _boundary(leg: PositionLeg, index: int, direction: int) -> float:
    """The price at which the leg leaves tier ``index`` moving ``direction`` (NaN: never)."""
    table = leg.tiers
    if table.keyed_by == "quantity":
        return math.nan
    growing = (direction > 0) != leg.inverse
    if growing:
        if index == len(table.tiers) - 1:
            return math.nan
        edge = table.tiers[index].max_notional
    else:
        if index == 0:
            return math.nan
        edge = table.tiers[index].min_notional
    return leg.quantity / edge if leg.inverse else edge / leg.quantity


def closed_form(
    legs: Sequence[PositionLeg],
    constant: float,
    extra: float,
    use_cum: bool,
    direction: int,
    sign: float = 1.0,
) -> tuple[float, int] | None:
    """First price from the mark, moving ``direction``, where ``sign * excess <= 0``.

    Returns the price and the first leg's tier index there, or ``None`` if the price can move
    all the way to 0 (or infinity) without getting there. The caller has checked that
    ``sign * excess > 0`` at the mark.
    """
    inverse = legs[0].inverse
    price = legs[0].mark_price
    # Leaving the mark reads each boundary as if arriving from the far side.
    indices = [tier_index(leg, price, -direction) for leg in legs]
    far = 0.0 if direction < 0 else math.inf
    while True:
        a = constant
        b = 0.0
        end = far
        for leg, index in zip(legs, indices, strict=True):
            tier = leg.tiers.tiers[index]
            rate = tier.maintenance_margin_rate + extra
            if use_cum:
                a += tier.cum
            if inverse:
                a += leg.side * leg.quantity / leg.entry_price
                b -= leg.quantity * (leg.side + rate)
            else:
                a -= leg.side * leg.quantity * leg.entry_price
                b += leg.quantity * (leg.side - rate)
            edge = _boundary(leg, index, direction)
            if not math.isnan(edge) and (edge > end if direction < 0 else edge < end):
                end = edge
        a *= sign
        b *= sign
        if a + b * (1.0 / price if inverse else price) <= 0.0:
            return price, indices[0]  # the requirement jumped past equity at a boundary
        if end == far:
            # u runs to 0 (linear moving down, inverse moving up) or to infinity.
            reached = a < 0.0 if (far == 0.0) != inverse else b < 0.0
            if not reached:
                return None
        elif a + b * (1.0 / end if inverse else end) > 0.0:
            for position, leg in enumerate(legs):
                if _boundary(leg, indices[position], direction) == end:
                    growing = (direction > 0) != leg.inverse
                    indices[position] += 1 if growing else -1
            price = end
            continue
        root_u = -a / b
        root = 1.0 / root_u if inverse else root_u
        low, high = (end, price) if direction < 0 else (price, end)
        return min(max(root, low), high), indices[0]


def numeric(
    legs: Sequence[PositionLeg],
    constant: float,
    extra: float,
    use_cum: bool,
    direction: int,
    sign: float = 1.0,
) -> tuple[float, int] | None:
    """What :func:`closed_form` returns, found by bisection on :func:`excess` alone."""

    def value(price: float) -> float:
        return sign * excess(legs, constant, extra, use_cum, price)

    target = legs[0]
    mark = target.mark_price
    edges: list[float] = []
    for leg in legs:
        if leg.tiers.keyed_by == "quantity":
            continue
        for tier in leg.tiers.tiers[1:]:
            edge = (
                leg.quantity / tier.min_notional
                if leg.inverse
                else tier.min_notional / leg.quantity
            )
            if (edge - mark) * direction > 0.0:
                edges.append(edge)
    edges.sort(reverse=direction < 0)
    previous = mark
    found: float | None = None
    for edge in edges:
        # Probe a hair inside the boundary, then a hair past it: exactly on it, rounding in
        # quantity * (edge / quantity) can read either tier, and where the requirement jumps
        # at a boundary the first place it is met can be the boundary itself.
        inner = edge * (1.0 - _EDGE_NUDGE * direction)
        outer = edge * (1.0 + _EDGE_NUDGE * direction)
        if value(inner) <= 0.0:
            found = _bisect(value, previous, inner)
            break
        if value(outer) <= 0.0:
            found = _bisect(value, inner, outer)
            break
        previous = outer
    if found is None:
        if direction < 0 and not target.inverse:
            if value(0.0) < 0.0:
                found = _bisect(value, previous, 0.0)
        elif direction > 0 and target.inverse and value(math.inf) > 0.0:
            # Past the last boundary an inverse account is linear in 1/P, so if it is still
            # above maintenance at 1/P = 0 it never gets there (a short covered in coin).
            pass
        else:
            probe = previous
            for _ in range(_MAX_DOUBLINGS):
                probe = probe * 2.0 if direction > 0 else probe / 2.0
                if probe == 0.0 or math.isinf(probe):
                    break
                if value(probe) <= 0.0:
                    found = _bisect(value, previous, probe)
                    break
                previous = probe
    if found is None or found <= 0.0:
        return None
    # The tier on the mark's side of the answer, as the closed form reports it.
    return found, tier_index(target, found, direction)


def _bisect(value: Callable[[float], float], outside: float, inside: float) -> float:
    """Shrink ``[outside, inside]`` (value > 0 at outside, <= 0 at inside) to adjacent floats."""
    while True:
        middle = outside + (inside - outside) / 2.0
        if middle in (outside, inside):
            return inside  # the first float at which the venue would liquidate
        if value(middle) <= 0.0:
            inside = middle
        else:
            outside = middle
