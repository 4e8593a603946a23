"""What an account would hold if every order that can still add to a position filled.

The verdict judges one order against the position as it stands. Without this, exposure already
committed elsewhere went unjudged: eight resting 0.5 BTC buys each passed a 50,000 notional cap
that one 1.0 BTC order failed, and four market orders sent at once through the asyncio face
each passed the cap alone and filled together. So an order that adds exposure is judged on the
account as if every other order on its symbol and side had filled first: the resting ones the
guard's view holds and the ones it has let go but not yet heard back about (in flight). Orders
on the other side are left out (they would reduce), which errs toward denying.

Pure: the gate gathers the orders and applies :func:`fold` to the account it built.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from safeguard.guard._orders import OrderCall
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._tiers import TierTable


@dataclass(frozen=True, slots=True)
class Committed:
    """Orders on one symbol and side that may still fill: how much, at what average price."""

    quantity: float
    price: float
    orders: int

    def describe(self, side: str) -> str:
        return (
            f"counting {self.orders} other {side} order(s) that may still fill "
            f"({self.quantity:g} at {self.price:g} on average, resting or in flight)"
        )


def committed(
    intent: OrderCall,
    resting: Iterable[Mapping[str, Any]],
    in_flight: Iterable[OrderCall],
    mark: float,
) -> Committed | None:
    """The other orders on ``intent``'s symbol and side that can add exposure: resting ones
    (ccxt order structures, what is left of each, at its price) and ones in flight (their
    amount, at their limit price or ``mark``). ``None`` when there are none, or when
    ``intent`` itself cannot add exposure (reduce-only)."""
    if intent.reduce_only or not math.isfinite(mark) or mark <= 0.0:
        return None
    quantity = notional = 0.0
    count = 0
    for order in resting:
        if (
            order.get("side") != intent.side
            or order.get("reduceOnly")
            or str((order.get("info") or {}).get("closePosition")).lower() == "true"
            or (intent.client_order_id and order.get("clientOrderId") == intent.client_order_id)
            or (intent.edit_of is not None and str(order.get("id")) == str(intent.edit_of))
        ):
            continue
        left = _positive(order.get("remaining"))
        if left is None:
            amount, filled = _positive(order.get("amount")), _positive(order.get("filled"))
            left = None if amount is None else amount - (filled or 0.0)
        if left is None or left <= 0.0:
            continue
        price = _positive(order.get("price")) or _positive(order.get("triggerPrice")) or mark
        quantity += left
        notional += left * price
        count += 1
    for other in in_flight:
        if (
            other is intent  # judged again before its own resend
            or other.symbol != intent.symbol
            or other.side != intent.side
            or other.reduce_only
            or (intent.client_order_id and other.client_order_id == intent.client_order_id)
            or other.amount is None
        ):
            continue
        price = other.price if other.price is not None and other.price > 0.0 else mark
        quantity += other.amount
        notional += other.amount * price
        count += 1
    if count == 0 or quantity <= 0.0:
        return None
    return Committed(quantity, notional / quantity, count)


def fold(
    account: Account,
    symbol: str,
    side: str,
    pending: Committed,
    *,
    tiers: TierTable,
    mark: float,
    hedge: bool,
    leverage: float,
    isolated: bool,
) -> Account:
    """``account`` as if ``pending`` had filled on ``symbol`` (buys if ``side`` is "buy").

    Raises ``ValueError`` when the position that would make is past the venue's last tier
    (the venue would not hold it)."""
    sign = 1 if side == "buy" else -1
    position_side = ("LONG" if sign > 0 else "SHORT") if hedge else "BOTH"
    legs = list(account.positions)
    index = next(
        (
            i
            for i, leg in enumerate(legs)
            if leg.symbol == symbol and leg.position_side == position_side
        ),
        None,
    )
    if index is None:
        legs.append(
            PositionLeg(
                symbol=symbol,
                side=sign,
                quantity=pending.quantity,
                entry_price=pending.price,
                mark_price=mark,
                tiers=tiers,
                position_side=position_side,  # type: ignore[arg-type]
                isolated_wallet=pending.quantity * pending.price / leverage if isolated else None,
            )
        )
        return replace(account, positions=tuple(legs))
    leg = legs[index]
    held = leg.side * leg.quantity
    after = held + sign * pending.quantity
    if after == 0.0:
        del legs[index]
        return replace(account, positions=tuple(legs))
    if held * sign > 0:  # adds to the leg: the entry is the average of both
        entry = (leg.quantity * leg.entry_price + pending.quantity * pending.price) / abs(after)
    elif after * held > 0:  # reduces it: the entry stays
        entry = leg.entry_price
    else:  # flips it: the new leg opened at the pending orders' price
        entry = pending.price
    wallet = leg.isolated_wallet
    if wallet is not None and held * sign > 0:
        wallet += pending.quantity * pending.price / leverage
    legs[index] = replace(
        leg,
        side=1 if after > 0 else -1,
        quantity=abs(after),
        entry_price=entry,
        isolated_wallet=wallet,
    )
    return replace(account, positions=tuple(legs))


def _positive(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0.0 else None


__all__ = ["Committed", "committed", "fold"]
