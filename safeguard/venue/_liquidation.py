"""Liquidation: when the venue takes a position over, and who pays for what.

Binance's rule (see the reference notes): a leg is liquidated when its equity at the **mark**
falls to its maintenance margin under the tier table, ``MM = notional * MMR - cum`` with the
tier chosen by the notional at the mark. Isolated legs are judged alone against their own
collateral; cross legs together against the cross wallet, and taken over together.

The take-over is settled in exact money units: the trader realises the PnL at the mark and
pays the liquidation fee out of what collateral is left; a loss deeper than the collateral is
the *shortfall*, which the insurance fund absorbs. The venue then closes the position into its
book; what that close does better or worse than the mark is the fund's too.
"""

from __future__ import annotations

import math
from itertools import product
from typing import NamedTuple

from safeguard.venue._accounts import Position, maintenance_margin
from safeguard.venue._markets import MONEY_SCALE, MarketSpec


class Settlement(NamedTuple):
    """Money units moved by a take-over."""

    realized: int
    """PnL realised at the mark (negative: a loss)."""
    fee: int
    """Liquidation fee charged: the full rate, or what collateral was left if less."""
    shortfall: int
    """Loss beyond the collateral, paid by the insurance fund (>= 0)."""

    @property
    def wallet_delta(self) -> int:
        return self.realized - self.fee + self.shortfall


def settle(
    position: Position,
    market: MarketSpec,
    *,
    mark_ticks: int,
    collateral: int,
    fee_rate: float,
) -> Settlement:
    """Settle taking ``position`` over at ``mark_ticks`` against ``collateral`` units."""
    if mark_ticks <= 0:
        raise ValueError(f"mark_ticks must be > 0, got {mark_ticks!r}")
    if not 0.0 <= fee_rate < 1.0:
        raise ValueError(f"fee_rate must lie in [0, 1), got {fee_rate!r}")
    value = mark_ticks * abs(position.qty) * market.notional_unit
    realized = value - position.cost if position.qty > 0 else position.cost - value
    left = collateral + realized
    if left < 0:
        return Settlement(realized, 0, -left)
    return Settlement(realized, min(round(value * fee_rate), left), 0)


class Close(NamedTuple):
    """The venue's close of a taken-over position into its book."""

    qty: int
    value: int
    """Exact notional of the close fills (units)."""
    slippage: int
    """What the close did better (> 0) or worse (< 0) than the mark, for the fund (units)."""


def close_outcome(fills: list[int], *, mark_ticks: int, unit: int, long: bool) -> Close:
    """Value the flat ``[price, qty, ...]`` fills of a take-over's close against the mark."""
    qty = sum(fills[1::2])
    value = sum(fills[i] * fills[i + 1] for i in range(0, len(fills), 2)) * unit
    at_mark = mark_ticks * qty * unit
    return Close(qty, value, value - at_mark if long else at_mark - value)


def bankruptcy_price(position: Position, market: MarketSpec, *, collateral: int) -> float:
    """The price at which closing ``position`` loses exactly ``collateral`` units.

    Long: ``(cost - collateral) / size``; short: ``(cost + collateral) / size``. 0.0 when a
    long's collateral covers its whole cost (no price bankrupts it) or the leg is flat.
    """
    if not position.qty:
        return 0.0
    value = position.cost - collateral if position.qty > 0 else position.cost + collateral
    if value <= 0:
        return 0.0
    return value / (abs(position.qty) * market.notional_unit) * market.tick_size


def partial_keep(qty: int, market: MarketSpec, *, mark: float, fraction: float) -> int:
    """Steps a partial liquidation step leaves of a ``qty``-step leg; 0 means take it all.

    Binance reduces a large position to the tier below the one its notional sits in (that
    tier's lower maintenance rate is what restores the ratio); a leg already in the first tier
    is taken over whole, or, with ``fraction`` > 0, cut by that share of its size.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction!r}")
    size = abs(qty)
    if size <= 1 or mark <= 0:
        return 0
    unit = market.step_size * mark
    tiers = market.tiers.tiers
    index = market.tiers.locate(size * unit)
    if index > 0:
        cap = tiers[index - 1].max_notional
        keep = math.floor(cap / unit)
        while keep > 0 and keep * unit >= cap:  # strictly inside the lower tier
            keep -= 1
        return min(keep, size - 1)
    if fraction > 0:
        return max(size - max(1, math.ceil(size * fraction)), 0)
    return 0


def healthy_after_close(
    qty: int,
    market: MarketSpec,
    *,
    close: int,
    mark: float,
    equity: float,
    other_mm: float,
    fee_rate: float,
) -> bool:
    """Whether closing ``close`` of ``qty`` steps at ``mark``, paying ``fee_rate`` on it,
    leaves equity above the maintenance margin (the rest of the leg's plus ``other_mm``).

    Closing at the mark moves no PnL (equity already counts the leg at the mark); only the
    fee leaves, and the requirement falls with the notional and, across a boundary, the tier.
    """
    size = abs(qty)
    unit = market.step_size * mark
    kept = (size - close) * unit
    return equity - fee_rate * close * unit > maintenance_margin(market, kept) + other_mm


def smallest_healthy_close(
    qty: int,
    market: MarketSpec,
    *,
    mark: float,
    equity: float,
    other_mm: float,
    fee_rate: float,
) -> int | None:
    """Fewest steps of a ``qty``-step leg that, closed at ``mark`` with the clearance fee,
    would have made the account healthy again; None when no partial close (short of the
    whole leg) does.

    The health after closing ``c`` steps is piecewise linear in ``c`` (one piece per tier of
    what is kept), so each piece is solved in closed form rather than searched step by step.
    """
    size = abs(qty)
    if size <= 1 or mark <= 0:
        return None
    unit = market.step_size * mark
    tiers = market.tiers.tiers
    top = market.tiers.locate(size * unit)
    for index in range(top, -1, -1):
        tier = tiers[index]
        # Closes whose kept notional lies in this tier: [lo, hi].
        lo = 0 if index == top else max(0, math.floor(size - tier.max_notional / unit))
        while lo < size and (size - lo) * unit >= tier.max_notional and index != top:
            lo += 1
        hi = size - 1 if index == 0 else min(size - 1, math.floor(size - tier.min_notional / unit))
        if lo > hi:
            continue
        slope = unit * (tier.maintenance_margin_rate - fee_rate)
        base = equity - other_mm - size * unit * tier.maintenance_margin_rate + tier.cum
        # Rising health (the tier's rate beats the fee): the first close past the root.
        candidate = max(lo, math.floor(-base / slope) + 1) if slope > 0 else lo
        # Float edges: confirm with the direct figure, one step either side.
        for close in (candidate - 1, candidate, candidate + 1):
            if lo <= close <= hi and healthy_after_close(
                size,
                market,
                close=close,
                mark=mark,
                equity=equity,
                other_mm=other_mm,
                fee_rate=fee_rate,
            ):
                return close
    return None


def liquidation_price(
    position: Position,
    market: MarketSpec,
    *,
    wallet: float,
    other_upnl: float = 0.0,
    other_mm: float = 0.0,
    twin: Position | None = None,
    mark: float = 0.0,
) -> float:
    """Binance's liquidation price for ``position``; 0.0 when it cannot be liquidated.

    ``wallet`` is the isolated margin (isolated) or the cross wallet (cross, with the other
    cross positions' unrealised PnL and maintenance margin). ``twin`` is the other cross leg
    of the same symbol in hedge mode: the two move with one mark, so Binance's hedge form
    solves them together and both legs show the account's one price,

        LP = [WB - TMM1 + UPNL1 + cumL + cumS - QL*EPL + QS*EPS]
           / [QL*MMRL + QS*MMRS - QL + QS]

    (the nearer to ``mark`` when a fall and a rise both would). Solved per tier (per pair of
    tiers with a twin); the consistent one has each leg's ``qty * LP`` inside its own tier.
    """
    legs = [leg for leg in (position, twin) if leg is not None and leg.qty]
    if not position.qty or not legs:
        return 0.0
    terms = []
    for leg in legs:
        q = abs(leg.qty) * market.step_size
        s = 1.0 if leg.qty > 0 else -1.0
        terms.append((q, s, leg.cost / MONEY_SCALE / q))
    base = wallet - other_mm + other_upnl
    found: list[float] = []
    for tiers in product(market.tiers, repeat=len(legs)):
        numerator = base
        denominator = 0.0
        for tier, (q, s, entry) in zip(tiers, terms, strict=True):
            numerator += tier.cum - s * q * entry
            denominator += q * tier.maintenance_margin_rate - s * q
        if denominator == 0:
            continue
        price = numerator / denominator
        if price <= 0:
            continue
        if all(
            tier.min_notional <= q * price < tier.max_notional
            for tier, (q, _, _) in zip(tiers, terms, strict=True)
        ):
            found.append(price)
    if not found:
        return 0.0
    return min(found, key=lambda price: abs(price - mark))


def adl_score(position: Position, market: MarketSpec, mark: float, leverage: int) -> float:
    """Binance's auto-deleveraging rank of a leg: its PnL ratio (unrealised PnL at ``mark``
    over cost) times its leverage when in profit, divided by it at a loss; the highest score
    is deleveraged first."""
    cost = position.cost / MONEY_SCALE
    ratio = position.unrealized(market, mark) / cost if cost else 0.0
    return ratio * leverage if ratio > 0 else ratio / leverage


__all__ = [
    "Close",
    "Settlement",
    "adl_score",
    "bankruptcy_price",
    "close_outcome",
    "healthy_after_close",
    "liquidation_price",
    "partial_keep",
    "settle",
    "smallest_healthy_close",
]
