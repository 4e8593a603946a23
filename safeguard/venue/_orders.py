"""Orders: checking a new-order request against the market's rules, and the order record.

:func:`parse_order` turns the raw arguments of ``place_order`` into an :class:`OrderRequest`
or raises the :class:`VenueReject` Binance would answer with. It looks at nothing but the
arguments and the market spec, so every shape error is caught before the engine touches any
state. Account-dependent checks (margin, reduce-only, duplicates) happen in the engine.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from safeguard.venue._errors import VenueReject, illegal, missing, not_required
from safeguard.venue._markets import MONEY_SCALE, MarketSpec

SIDES = ("BUY", "SELL")
TYPES = ("MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
STOP_LIMIT_TYPES = ("STOP", "TAKE_PROFIT")
"""Stop-limit orders: on their trigger they become a LIMIT order at their price."""
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


class OrderRequest(NamedTuple):
    """A new-order request that passed every account-independent check.

    A named tuple rather than a dataclass: it is built once per order on the matching hot path.
    """

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
    close_position: bool = False
    """Binance's ``closePosition``: a stop with no quantity that, when triggered, closes the
    whole position on its side (``qty`` is 0 until then)."""


_new_tuple = tuple.__new__
_CLOSE_POSITION_TYPES = frozenset(("STOP_MARKET", "TAKE_PROFIT_MARKET"))
_SIDES = frozenset(SIDES)
_TYPES = frozenset(TYPES)
_TIME_IN_FORCE = frozenset(TIME_IN_FORCE)
_WORKING_TYPES = frozenset(WORKING_TYPES)
_POSITION_SIDES = frozenset(POSITION_SIDES)


def _number(name: str, value: Any) -> float:
    cls = value.__class__
    if cls is float:
        result: float = value
    elif cls is int:
        result = float(value)
    elif cls is str:
        try:
            result = float(value)
        except ValueError:
            raise illegal(name) from None
    else:
        raise illegal(name)  # bool, Decimal-like or anything else: never guessed
    if result - result != 0.0:  # NaN or infinity
        raise illegal(name)
    return result


def _stop_ticks(market: MarketSpec, stop_price: Any) -> int:
    if stop_price is None or stop_price == "":
        raise missing("stopPrice")
    raw_stop = _number("stopPrice", stop_price)
    if raw_stop <= 0:
        raise VenueReject(-4013, "Price less than min price.")
    return market.price_ticks(raw_stop, "stopPrice")


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
    close_position: Any = False,
) -> OrderRequest:
    """Check a request's shape, precision and filters; raise the Binance reject if any fails.

    ``reference_ticks`` (the last price) values a market order for the min-notional filter.
    """
    return parse_fields(
        market,
        reference_ticks,
        side,
        type,
        quantity,
        price,
        time_in_force,
        reduce_only,
        stop_price,
        working_type,
        client_order_id,
        position_side,
        close_position,
    )


def parse_fields(
    market: MarketSpec,
    reference_ticks: int,
    side: Any,
    type: Any,
    quantity: Any,
    price: Any,
    time_in_force: Any,
    reduce_only: Any,
    stop_price: Any,
    working_type: Any,
    client_order_id: Any,
    position_side: Any,
    close_position: Any,
) -> OrderRequest:
    """:func:`parse_order` with every field by position, in its order: the engine's call per
    order (13 keywords cost more to bind than the checks of a typical field)."""
    if close_position is not False:
        return _parse_close_position(
            market,
            side=side,
            type=type,
            quantity=quantity,
            price=price,
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            stop_price=stop_price,
            working_type=working_type,
            client_order_id=client_order_id,
            position_side=position_side,
            close_position=close_position,
        )
    # Membership tests guarded by an exact type check: a list or dict must be refused, not
    # raise TypeError from the frozenset lookup.
    if side.__class__ is not str or side not in _SIDES:
        raise VenueReject(-1117, "Invalid side.")
    kind = type
    if kind.__class__ is not str or kind not in _TYPES:
        raise VenueReject(-1116, "Invalid orderType.")
    if reduce_only is not True and reduce_only is not False:
        raise illegal("reduceOnly")
    if working_type.__class__ is not str or working_type not in _WORKING_TYPES:
        raise illegal("workingType")
    if position_side.__class__ is not str or position_side not in _POSITION_SIDES:
        raise illegal("positionSide")
    if client_order_id is not None and (
        client_order_id.__class__ is not str or not _CLIENT_ID.match(client_order_id)
    ):
        raise illegal("newClientOrderId")

    # A finite float (what clients send) is used as it is, before the missing-value test: a
    # float compared with "" goes through both types' rich comparisons to answer False.
    if quantity.__class__ is float and quantity - quantity == 0.0:
        raw_qty: float = quantity
    elif quantity is None or quantity == "":
        raise missing("quantity")
    else:
        raw_qty = _number("quantity", quantity)
    if raw_qty <= 0:
        raise VenueReject(-4003, "Quantity less than or equal to zero.")

    tif = ""
    ticks = 0
    stop = 0
    if kind == "LIMIT" or kind in STOP_LIMIT_TYPES:
        if price.__class__ is not float and (price is None or price == ""):
            raise missing("price")
        if kind != "LIMIT" and (time_in_force is None or time_in_force == ""):
            time_in_force = "GTC"  # a stop-limit's limit rests GTC unless told otherwise
        if time_in_force is None or time_in_force == "":
            raise missing("timeInForce")
        if time_in_force.__class__ is not str or time_in_force not in _TIME_IN_FORCE:
            raise VenueReject(-1115, "Invalid timeInForce.")
        tif = time_in_force
        if kind == "LIMIT" and stop_price is not None:
            raise not_required("stopPrice")
        if kind != "LIMIT":
            stop = _stop_ticks(market, stop_price)
        if price.__class__ is float and price - price == 0.0:
            raw_price: float = price
        else:
            raw_price = _number("price", price)
        if raw_price <= 0:
            raise VenueReject(-4013, "Price less than min price.")
        ticks = market.price_ticks(raw_price)
    else:
        if price is not None:
            raise not_required("price")
        if kind == "MARKET":
            if time_in_force is not None:
                raise not_required("timeInForce")
            if stop_price is not None:
                raise not_required("stopPrice")
        else:
            if time_in_force is not None and time_in_force != "GTC":
                raise VenueReject(-1115, "Invalid timeInForce.")
            tif = "GTC"
            stop = _stop_ticks(market, stop_price)

    steps = market.qty_steps(raw_qty)
    if steps <= 0:
        raise VenueReject(-4003, "Quantity less than or equal to zero.")
    if steps < market.min_steps:
        raise VenueReject(-4004, "Quantity less than min quantity.")
    if steps > (market.max_steps if kind == "LIMIT" else market.market_max_steps):
        raise VenueReject(-4005, "Quantity greater than max quantity.")
    if not reduce_only:
        reference = ticks or stop or reference_ticks
        if reference * steps * market.notional_unit < market.min_notional * MONEY_SCALE:
            raise VenueReject(
                -4164,
                f"Order's notional must be no smaller than {market.min_notional:g} "
                "(unless you choose reduce only).",
            )
    # tuple.__new__ directly: a named tuple's own __new__ is a Python-level function, a
    # measurable share of a request on the hot path. Same object, same fields, in order.
    return _new_tuple(
        OrderRequest,
        (
            market.symbol,
            side,
            kind,
            steps,
            ticks,
            tif,
            reduce_only,
            stop,
            working_type,
            client_order_id,
            position_side,
            False,
        ),
    )


def _parse_close_position(
    market: MarketSpec,
    *,
    type: Any,
    quantity: Any,
    reduce_only: Any,
    close_position: Any,
    **rest: Any,
) -> OrderRequest:
    """A ``closePosition=true`` stop: Binance takes it on STOP_MARKET and TAKE_PROFIT_MARKET
    only, without a quantity (it closes whatever is held when it triggers) and without
    ``reduceOnly`` (it is reducing by construction)."""
    if close_position is not True:
        raise illegal("closePosition")
    if type.__class__ is str and type in _TYPES and type not in _CLOSE_POSITION_TYPES:
        raise VenueReject(-4136, f"Target strategy invalid for orderType {type},closePosition true")
    if quantity is not None:
        raise not_required("quantity")
    if reduce_only is True:
        raise not_required("reduceOnly")
    # Every other check is a plain stop's; the smallest valid quantity stands in for the
    # missing one (a reduce-only stop is exempt from the min-notional filter, as this is).
    shaped = parse_order(
        market,
        reference_ticks=0,
        type=type,
        quantity=market.min_qty,
        reduce_only=True,
        **rest,
    )
    return shaped._replace(qty=0, reduce_only=False, close_position=True)


class Order:
    """An order the venue accepted. Mutable: it fills, triggers, cancels."""

    __slots__ = (
        "api_key",
        "client_order_id",
        "close_position",
        "cum_quote",
        "executed",
        "order_id",
        "orig_type",
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
        # The request's fields in one unpack (its own client id is the one given above).
        (self.symbol, self.side, self.type, self.qty, self.price, self.time_in_force,
         self.reduce_only, self.stop, self.working_type, _requested_id, self.position_side,
         self.close_position) = request  # fmt: skip
        self.orig_type = self.type
        """What was placed: a triggered stop-limit's ``type`` becomes LIMIT, this stays."""
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
        """The order in Binance's ``/fapi/v1/order`` answer shape (a fresh dict each call)."""
        # One copy of the constant template, filled in (cheaper than a 25-entry literal). Not
        # cached per order: most orders are answered once or twice, and a cached ~800-byte
        # dict per order would stay alive as long as the order history (100,000 by default).
        # Every order call ends here, so the hit of market.fmt_price and fmt_qty is inlined.
        answer = _TEMPLATE.copy()
        answer["orderId"] = self.order_id
        answer["symbol"] = self.symbol
        answer["status"] = self.status
        answer["clientOrderId"] = self.client_order_id
        # A zero price, stop or quantity keeps the template's "0" (a market order has no price;
        # a closePosition stop has no quantity until it triggers).
        price = self.price
        if price:
            text = market.price_texts.get(price)
            answer["price"] = text if text is not None else market.fmt_price(price)
        qty = self.qty
        if qty:
            text = market.qty_texts.get(qty)
            answer["origQty"] = text if text is not None else market.fmt_qty(qty)
        answer["timeInForce"] = self.time_in_force or "GTC"
        answer["type"] = self.type
        answer["origType"] = self.orig_type
        answer["reduceOnly"] = self.reduce_only
        if self.close_position:
            answer["closePosition"] = True
        answer["side"] = self.side
        answer["positionSide"] = self.position_side
        if self.stop:
            answer["stopPrice"] = market.fmt_price(self.stop)
        answer["workingType"] = self.working_type
        answer["time"] = self.time_ms
        answer["updateTime"] = self.update_ms
        executed = self.executed
        if executed:
            # Every answer about a fill passes here, so the formatting is inline. Binance prints
            # no padding: "90000.100" -> "90000.1", "5.000" -> "5".
            cum = self.cum_quote
            avg = format(
                cum / (executed * market.notional_unit) * market.tick_size,
                market.avg_price_format,
            )
            answer["avgPrice"] = avg.rstrip("0").rstrip(".") if "." in avg else avg
            text = market.qty_texts.get(executed)
            answer["executedQty"] = answer["cumQty"] = (
                text if text is not None else market.fmt_qty(executed)
            )
            whole, fraction = divmod(cum, MONEY_SCALE)
            answer["cumQuote"] = f"{whole}.{fraction:08d}".rstrip("0").rstrip(".")
        return answer


_TEMPLATE: dict[str, Any] = {
    "orderId": 0,
    "symbol": "",
    "status": NEW,
    "clientOrderId": "",
    "price": "0",
    "avgPrice": "0",
    "origQty": "0",
    "executedQty": "0",
    "cumQty": "0",
    "cumQuote": "0",
    "timeInForce": "GTC",
    "type": "",
    "origType": "",
    "reduceOnly": False,
    "closePosition": False,
    "side": "",
    "positionSide": "BOTH",
    "stopPrice": "0",
    "workingType": "CONTRACT_PRICE",
    "priceProtect": False,
    "priceMatch": "NONE",
    "selfTradePreventionMode": "EXPIRE_TAKER",
    "goodTillDate": 0,
    "time": 0,
    "updateTime": 0,
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
