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

from itertools import product
from typing import NamedTuple

from safeguard.venue.accounts import Position
from safeguard.venue.markets import MONEY_SCALE, MarketSpec


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


__all__ = ["Close", "Settlement", "close_outcome", "liquidation_price", "settle"]
