"""Orders: checking a new-order request against the market's rules, and the order record.

:func:`parse_order` turns the raw arguments of ``place_order`` into an :class:`OrderRequest`
or raises the :class:`VenueReject` Binance would answer with. It looks at nothing but the
arguments and the market spec, so every shape error is caught before the engine touches any
state. Account-dependent checks (margin, reduce-only, duplicates) happen in the engine.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from safeguard.venue.errors import VenueReject, illegal, missing, not_required
from safeguard.venue.markets import MONEY_SCALE, MarketSpec

SIDES = ("BUY", "SELL")
TYPES = ("MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")
WORKING_TYPES = ("CONTRACT_PRICE", "MARK_PRICE")
POSITION_SIDES = ("BOTH", "LONG", "SHORT")
_CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")

NEW = "NEW"
PARTIALLY_FILLED = "PARTIALLY_FILLED"
FILLED = "FILLED"
CANCELED = "CANCELED"
EXPIRED = "EXPIRED"
OPEN_STATUSES = frozenset((NEW, PARTIALLY_FILLED))


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new-order request that passed every account-independent check."""

    symbol: str
    side: str
    type: str
    qty: int
    price: int
    """Limit price in ticks (0 for market and stop-market orders)."""
    time_in_force: str
    reduce_only: bool
    stop: int
    """Trigger price in ticks (0 unless a stop or take-profit)."""
    working_type: str
    client_order_id: str | None
    position_side: str


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise illegal(name)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise illegal(name) from None
    if not isinstance(value, int | float):
        raise illegal(name)
    result = float(value)
    if not math.isfinite(result):
        raise illegal(name)
    return result


def _choice(name: str, value: Any, allowed: tuple[str, ...], code: int, msg: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise VenueReject(code, msg)
    return value


def parse_order(
    market: MarketSpec,
    *,
    reference_ticks: int,
    side: Any,
    type: Any,
    quantity: Any,
    price: Any = None,
    time_in_force: Any = None,
    reduce_only: Any = False,
    stop_price: Any = None,
    working_type: Any = "CONTRACT_PRICE",
    client_order_id: Any = None,
    position_side: Any = "BOTH",
) -> OrderRequest:
    """Check a request's shape, precision and filters; raise the Binance reject if any fails.

    ``reference_ticks`` (the last price) values a market order for the min-notional filter.
    """
    side = _choice("side", side, SIDES, -1117, "Invalid side.")
    kind = _choice("type", type, TYPES, -1116, "Invalid orderType.")
    if not isinstance(reduce_only, bool):
        raise illegal("reduceOnly")
    working = _choice(
        "workingType",
        working_type,
        WORKING_TYPES,
        -1100,
        "Illegal characters found in parameter 'workingType'.",
    )
    pside = _choice(
        "positionSide",
        position_side,
        POSITION_SIDES,
        -1100,
        "Illegal characters found in parameter 'positionSide'.",
    )
    if client_order_id is not None and (
        not isinstance(client_order_id, str) or not _CLIENT_ID.match(client_order_id)
    ):
        raise illegal("newClientOrderId")

    if quantity is None or quantity == "":
        raise missing("quantity")
    raw_qty = _number("quantity", quantity)
    if raw_qty <= 0:
        raise VenueReject(-4003, "Quantity less than or equal to zero.")

    tif = ""
    ticks = 0
    stop = 0
    if kind == "LIMIT":
        if price is None or price == "":
            raise missing("price")
        if time_in_force is None or time_in_force == "":
            raise missing("timeInForce")
        tif = _choice("timeInForce", time_in_force, TIME_IN_FORCE, -1115, "Invalid timeInForce.")
        if stop_price is not None:
            raise not_required("stopPrice")
        raw_price = _number("price", price)
        if raw_price <= 0:
            raise VenueReject(-4013, "Price less than min price.")
        ticks = market.price_ticks(raw_price)
    else:
        if price is not None:
            raise not_required("price")
        if time_in_force is not None and kind == "MARKET":
            raise not_required("timeInForce")
        if kind != "MARKET":
            if time_in_force is not None:
                tif = _choice("timeInForce", time_in_force, ("GTC",), -1115, "Invalid timeInForce.")
            tif = "GTC"
            if stop_price is None or stop_price == "":
                raise missing("stopPrice")
            raw_stop = _number("stopPrice", stop_price)
            if raw_stop <= 0:
                raise VenueReject(-4013, "Price less than min price.")
            stop = market.price_ticks(raw_stop, "stopPrice")
        elif stop_price is not None:
            raise not_required("stopPrice")

    steps = market.qty_steps(raw_qty)
    if steps <= 0:
        raise VenueReject(-4003, "Quantity less than or equal to zero.")
    max_qty = market.max_qty if kind == "LIMIT" else market.market_max_qty
    if steps < round(market.min_qty / market.step_size):
        raise VenueReject(-4004, "Quantity less than min quantity.")
    if steps > round(max_qty / market.step_size):
        raise VenueReject(-4005, "Quantity greater than max quantity.")
    reference = ticks or stop or reference_ticks
    if not reduce_only:
        notional = reference * steps * market.notional_unit / MONEY_SCALE
        if notional < market.min_notional:
            raise VenueReject(
                -4164,
                f"Order's notional must be no smaller than {market.min_notional:g} "
                "(unless you choose reduce only).",
            )
    return OrderRequest(
        symbol=market.symbol,
        side=side,
        type=kind,
        qty=steps,
        price=ticks,
        time_in_force=tif,
        reduce_only=reduce_only,
        stop=stop,
        working_type=working,
        client_order_id=client_order_id,
        position_side=pside,
    )


class Order:
    """An order the venue accepted. Mutable: it fills, triggers, cancels."""

    __slots__ = (
        "api_key",
        "client_order_id",
        "cum_quote",
        "executed",
        "order_id",
        "position_side",
        "price",
        "qty",
        "reduce_only",
        "reserved",
        "side",
        "status",
        "stop",
        "symbol",
        "time_in_force",
        "time_ms",
        "type",
        "update_ms",
        "working_type",
    )

    def __init__(
        self, order_id: int, api_key: str, client_order_id: str, request: OrderRequest, now_ms: int
    ) -> None:
        self.order_id = order_id
        self.api_key = api_key
        self.client_order_id = client_order_id
        self.symbol = request.symbol
        self.side = request.side
        self.type = request.type
        self.qty = request.qty
        self.price = request.price
        self.stop = request.stop
        self.time_in_force = request.time_in_force
        self.reduce_only = request.reduce_only
        self.working_type = request.working_type
        self.position_side = request.position_side
        self.executed = 0
        self.cum_quote = 0
        """Executed notional in money units (exact)."""
        self.reserved = 0.0
        """Initial margin this order holds while it rests (quote)."""
        self.status = NEW
        self.time_ms = now_ms
        self.update_ms = now_ms

    @property
    def remaining(self) -> int:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    def to_binance(self, market: MarketSpec) -> dict[str, Any]:
        """The order in Binance's ``/fapi/v1/order`` answer shape."""
        executed = self.executed
        if executed:
            avg = self.cum_quote / (executed * market.notional_unit) * market.tick_size
            avg_price = f"{avg:.{market.price_precision + 3}f}".rstrip("0").rstrip(".")
        else:
            avg_price = "0"
        cum_quote = self.cum_quote / MONEY_SCALE
        return {
            "orderId": self.order_id,
            "symbol": self.symbol,
            "status": self.status,
            "clientOrderId": self.client_order_id,
            "price": market.fmt_price(self.price),
            "avgPrice": avg_price,
            "origQty": market.fmt_qty(self.qty),
            "executedQty": market.fmt_qty(executed),
            "cumQty": market.fmt_qty(executed),
            "cumQuote": f"{cum_quote:.8f}".rstrip("0").rstrip(".") if cum_quote else "0",
            "timeInForce": self.time_in_force or "GTC",
            "type": self.type,
            "origType": self.type,
            "reduceOnly": self.reduce_only,
            "closePosition": False,
            "side": self.side,
            "positionSide": self.position_side,
            "stopPrice": market.fmt_price(self.stop),
            "workingType": self.working_type,
            "priceProtect": False,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": self.time_ms,
            "updateTime": self.update_ms,
        }


__all__ = [
    "CANCELED",
    "EXPIRED",
    "FILLED",
    "NEW",
    "OPEN_STATUSES",
    "PARTIALLY_FILLED",
    "Order",
    "OrderRequest",
    "parse_order",
]
