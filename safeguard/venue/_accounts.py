"""Accounts and positions, with exact money.

Balances and cash flows are integers of 1e-8 quote. A position keeps its size in integer steps
and its *cost* (the exact notional of the open size at the prices it was opened at) in money
units, so realised PnL is ``exit notional - cost share`` in integers: the one rounding is the
pro-rata share of cost when a position is partly closed, at most one unit, and it stays in the
position's cost rather than vanishing. Fees round half-to-even to the unit once per fill.

The margin figures (maintenance, initial, available balance) are floats: they decide whether
to act, never how much money moves.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from safeguard.venue._markets import MONEY_SCALE, MarketSpec

if TYPE_CHECKING:
    from safeguard.venue._orders import Order

ISOLATED = "ISOLATED"
CROSSED = "CROSSED"


@dataclass(slots=True)
class Position:
    """One leg: ``qty`` steps (> 0 long, < 0 short) whose opening notional was ``cost`` units."""

    symbol: str
    position_side: str
    qty: int = 0
    cost: int = 0
    isolated_margin: int = 0
    """Collateral set aside for an isolated position (units); 0 under cross margin."""
    update_ms: int = 0

    def entry_price(self, market: MarketSpec) -> float:
        if not self.qty:
            return 0.0
        return self.cost / (abs(self.qty) * market.notional_unit) * market.tick_size

    def notional(self, market: MarketSpec, mark: float) -> float:
        return abs(self.qty) * market.step_size * mark

    def unrealized(self, market: MarketSpec, mark: float) -> float:
        """Unrealised PnL in quote at ``mark``."""
        value = abs(self.qty) * market.step_size * mark
        cost = self.cost / MONEY_SCALE
        return value - cost if self.qty > 0 else cost - value


@dataclass(slots=True)
class Account:
    api_key: str
    secret: str
    asset: str
    wallet: int
    """Wallet balance in units: deposits plus every realised PnL, fee and funding payment."""
    deposit: int
    dual_side: bool = False
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    order_margin: float = 0.0
    """Initial margin held by open, opening limit orders (quote)."""
    open_orders: dict[str, Order] = field(default_factory=dict)
    """Open orders (resting limits and untriggered stops) by client order id."""
    open_count: dict[str, int] = field(default_factory=dict)
    """Open orders per symbol (Binance caps them per account and symbol)."""
    update_ms: int = 0
    margin_called: bool = False
    """A ``MARGIN_CALL`` went out and the cross margin has not recovered since."""
    income: deque[Income] = field(default_factory=lambda: deque(maxlen=INCOME_HISTORY))
    """Every wallet change, oldest first (``/fapi/v1/income``)."""

    def isolated_total(self) -> int:
        return sum(p.isolated_margin for p in self.positions.values())

    def cross_wallet(self) -> int:
        return self.wallet - self.isolated_total()


INCOME_HISTORY = 100_000
"""Income rows kept per account; the oldest are forgotten first."""


class Income(NamedTuple):
    """One wallet change: ``units`` > 0 credited. ``kind`` is Binance's ``incomeType``."""

    tran_id: int
    time_ms: int
    symbol: str
    kind: str
    units: int
    trade_id: str = ""
    info: str = ""


class FillResult(NamedTuple):
    """A named tuple, not a frozen dataclass: one is built per fill on the matching hot path."""

    realized_pnl: int
    fee: int


def apply_fill(
    account: Account,
    position: Position,
    market: MarketSpec,
    signed_qty: int,
    price_ticks: int,
    fee_rate: float,
    leverage: int,
    isolated: bool,
    now_ms: int,
) -> FillResult:
    """Move ``position`` by ``signed_qty`` steps at ``price_ticks`` and settle the cash."""
    unit = market.notional_unit
    size = abs(signed_qty)
    realized = 0
    held = position.qty
    if held and (held > 0) != (signed_qty > 0):
        closing = min(size, abs(held))
        cost_share = pro_rata(position.cost, closing, abs(held))
        margin_share = pro_rata(position.isolated_margin, closing, abs(held))
        exit_value = price_ticks * closing * unit
        realized = exit_value - cost_share if held > 0 else cost_share - exit_value
        position.cost -= cost_share
        position.isolated_margin -= margin_share
        position.qty += closing if held < 0 else -closing
        if not position.qty:
            position.cost = 0
            position.isolated_margin = 0
        elif isolated:
            # A partly closed isolated leg keeps its realised PnL as collateral; a fully closed
            # (or flipped) one hands everything back to the cross wallet.
            position.isolated_margin = max(position.isolated_margin + realized, 0)
        size -= closing
    if size:
        opened = price_ticks * size * unit
        position.cost += opened
        position.qty += size if signed_qty > 0 else -size
        if isolated:
            position.isolated_margin += -(-opened // leverage)  # ceil: never under-margined
    fee = round(price_ticks * abs(signed_qty) * unit * fee_rate)
    account.wallet += realized - fee
    position.update_ms = now_ms
    account.update_ms = now_ms
    return _new_tuple(FillResult, (realized, fee))  # FillResult's own __new__, minus a frame


_new_tuple = tuple.__new__


def pro_rata(total: int, part: int, whole: int) -> int:
    """``total * part / whole`` rounded half to even, in integers: a closed share of a
    position's cost or margin, and the liquidator's share of a bankrupt leg's value."""
    numerator = total * part
    quotient, remainder = divmod(numerator, whole)
    twice = 2 * remainder
    if twice > whole or (twice == whole and quotient % 2):
        quotient += 1
    return quotient


def maintenance_margin(market: MarketSpec, notional: float) -> float:
    """Maintenance requirement of a position of ``notional`` quote under the market's ladder."""
    for tier in market.tiers.tiers:
        if notional < tier.max_notional:
            return notional * tier.maintenance_margin_rate - tier.cum
    # Beyond the ladder's end the venue would not have let the position grow; the last rate
    # still prices it rather than failing the liquidation check.
    last = market.tiers.tiers[-1]
    return notional * last.maintenance_margin_rate - last.cum


def max_notional_at(market: MarketSpec, leverage: int) -> float:
    """Largest position notional the ladder allows at ``leverage`` (Binance's maxNotionalValue)."""
    table = market.max_notional_by_leverage
    if leverage.__class__ is int and 0 <= leverage < len(table):
        return table[leverage]
    allowed = 0.0
    for tier in market.tiers:
        if tier.max_leverage >= leverage:
            allowed = tier.max_notional
    return allowed


__all__ = [
    "CROSSED",
    "ISOLATED",
    "Account",
    "FillResult",
    "Income",
    "Position",
    "apply_fill",
    "maintenance_margin",
    "max_notional_at",
    "pro_rata",
]
