"""Protective stops declared on entries: judged as a pair, sent as two orders.

``create_order(symbol, "limit", "buy", 0.01, 60000, params={"stopLossPrice": 58000})`` is how a
caller tells the guard "this entry is protected by a stop at 58,000", and the verdict judges the
pair. ccxt's binance code would instead turn such an order into a STOP_MARKET trigger order
itself (what is sent would not be what was judged), and ``stopLoss={"triggerPrice": ...}``
reaches Binance USD-M as a parameter it refuses (-1104): futures have no attached stops.

So an entry (a market or limit order, not a trigger order itself) carrying a protective stop is
split here: the entry is sent without the stop, and once the venue has accepted it the stop
follows as its own ``closePosition`` STOP_MARKET order under a client id derived from the
entry's. A close-all stop is what Binance users place for this: it needs no position when it is
placed (a reduce-only stop beside a limit entry that rests would be refused, -2022), and when it
triggers it closes the whole position on that side, which is exactly what the verdict judged the
stop against (the position after the order). Only an entry that opens, adds to or flips a
position gets one (:func:`adds_exposure`); an order that only reduces or closes is sent without
it, and an entry the venue ended with nothing filled gets none (:func:`ended_unfilled`).
Everything here is pure; :class:`~safeguard.guard._core.GuardCore` sequences the sends.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from safeguard._profiles import BINANCE_USDM
from safeguard.guard._orders import (
    PROTECTIVE_STOP_KEYS,
    STOP_SUFFIX,
    OrderCall,
    check_client_order_id,
    protected_entry,
)

INFO_KEY = "safeguardProtectiveStop"
"""Where the entry order returned by ``create_order`` carries its stop order (in ``info``)."""

_DUST = 1e-9
"""Relative size below which what an order leaves counts as closed (float noise)."""


def protective_stop(params: Mapping[str, Any]) -> float | None:
    """The protective stop price ``params`` declare: ``stopLossPrice``, or ``stopLoss`` as a
    number or as ``{"triggerPrice": ...}`` (ccxt's attached-stop form)."""
    stop = params.get("stopLossPrice")
    attached = params.get("stopLoss")
    attached = attached.get("triggerPrice") if isinstance(attached, Mapping) else attached
    if stop is not None and attached is not None:
        # Two stops: only one would be placed, silently (the other taken for granted).
        raise ValueError(
            f"params name two protective stops (stopLossPrice {stop!r} and stopLoss "
            f"{attached!r}): name one"
        )
    if stop is None:
        stop = attached
    if stop is None or isinstance(stop, bool):
        return None
    try:
        value = float(stop)
    except OverflowError:
        raise ValueError(
            "the protective stop must be a finite number > 0, got one too large"
        ) from None
    except (TypeError, ValueError):
        raise ValueError(f"the protective stop must be a number, got {stop!r}") from None
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"the protective stop must be a finite number > 0, got {stop!r}")
    return value


@dataclass(frozen=True, slots=True)
class StopPlan:
    """The protective stop an entry declared: where it triggers and on which price."""

    price: float
    working_type: str
    """Binance's ``workingType``: ``MARK_PRICE`` unless the intent asked for the last price
    (``CONTRACT_PRICE``), the price the verdict assumed for it."""


def split(intent: OrderCall) -> tuple[OrderCall, StopPlan | None]:
    """The entry to send and its stop, or ``(intent, None)`` when ``intent`` is not an entry
    carrying a protective stop (a reduce-only order, an edit, a trigger order, no stop)."""
    params = intent.params
    if not protected_entry(intent):
        return intent, None
    stop = protective_stop(params)
    if stop is None:
        return intent, None
    working = "CONTRACT_PRICE" if params.get("workingType") == "CONTRACT_PRICE" else "MARK_PRICE"
    entry_params = {
        k: v for k, v in params.items() if k not in PROTECTIVE_STOP_KEYS and k != "workingType"
    }
    return replace(intent, params=entry_params), StopPlan(stop, working)


def adds_exposure(verdict: Any, entry: OrderCall) -> bool:
    """Whether ``entry`` opens, adds to or flips a position, per the verdict that allowed it
    (its position after the order and the amount it judged). An order that only reduces or
    closes has nothing for a protective stop to protect. When the verdict does not say (no
    costing), the answer is yes: a close-all stop that finds nothing to close does nothing."""
    costing = getattr(verdict, "costing", None)
    judged_after = _finite(getattr(costing, "position_after", None))
    judged = _finite(getattr(costing, "amount", None))
    amount = _finite(entry.amount)
    if judged_after is None or judged is None or amount is None:
        return True
    direction = 1.0 if entry.side == "buy" else -1.0
    held = judged_after - direction * judged
    # Re-applied with the amount being sent: a verdict may have allowed a smaller resend.
    after = held + direction * amount
    if abs(after) <= _DUST * max(abs(held), amount):
        return False  # closes
    return held * after <= 0.0 or abs(after) > abs(held)  # opens or flips; adds


_ENDED = ("canceled", "expired", "rejected")


def ended_unfilled(entry_order: Any) -> bool:
    """Whether the venue's answer says the entry is over with nothing filled (an IOC or FOK
    limit that found no liquidity, an expired order): no position will come of it, and a
    close-all stop placed for it would rest until it closes a position some other order
    opened. An answer that does not say (no status, no fill count) is not taken as ended."""
    if not isinstance(entry_order, Mapping) or entry_order.get("status") not in _ENDED:
        return False
    return _finite(entry_order.get("filled")) == 0.0


def _finite(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def stop_client_id(entry_client_id: str) -> str:
    """The stop's client id: exactly the entry's plus ``-sl`` (what the README tells users to
    cancel). Entry ids are kept short enough for it: the guard's own are 33 characters, and a
    caller's longer than that is refused with its stop
    (:func:`~safeguard.guard._orders.check_shape`), so this never has to cut one."""
    return check_client_order_id(entry_client_id + STOP_SUFFIX)


def stop_intent(entry: OrderCall, plan: StopPlan) -> OrderCall:
    """The protective stop for ``entry`` as an order of its own: a close-all STOP_MARKET on
    the side that closes what the entry opens.

    ccxt 4.5.90's binanceusdm sends ``market`` + ``stopLossPrice`` + ``closePosition`` as a
    STOP_MARKET algo order (``/fapi/v1/algoOrder``, ``clientAlgoId``) with no quantity: it
    closes whatever position is held when it triggers, however much of the entry filled.
    ``closePosition`` can only close, which is also why the kill switch lets it through in
    REDUCING.
    """
    return OrderCall(
        symbol=entry.symbol,
        type="market",
        side="sell" if entry.side == "buy" else "buy",
        amount=None,
        price=None,
        params={
            "stopLossPrice": plan.price,
            **BINANCE_USDM.stop_params,  # how the venue's profile places a protective stop
            "workingType": plan.working_type,
        },
        client_order_id=stop_client_id(entry.client_order_id),
    )


def attach(entry_order: Any, stop_order: Any) -> Any:
    """Put the stop order in the entry order's ``info`` under :data:`INFO_KEY`."""
    if isinstance(entry_order, dict):
        info = entry_order.get("info")
        if not isinstance(info, dict):
            info = entry_order["info"] = {}
        info[INFO_KEY] = stop_order
    return entry_order


__all__ = [
    "INFO_KEY",
    "STOP_SUFFIX",
    "StopPlan",
    "adds_exposure",
    "attach",
    "ended_unfilled",
    "protective_stop",
    "split",
    "stop_client_id",
    "stop_intent",
]
