"""What a ccxt call means for safety: its kind, and for orders, the intent and the client id.

The guarded exchange forwards every attribute of the ccxt exchange it wraps; this module
decides, from a method's name and arguments alone, whether the call is a read, a cancel, an
idempotent setting, an order, or a write that must never be retried blindly. Unknown
order-placing paths are refused rather than passed through: an unguarded way to place an
order is exactly what the guard exists to close.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

CLIENT_ORDER_ID_KEYS = ("clientOrderId", "newClientOrderId", "clientAlgoId")
"""Where a caller may put their own client order id (ccxt's unified key first)."""

_BINANCE_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_MAX_ID = 36

CLOCK_SKEW_MARGIN_S = 1.0
"""Added to a ``recvWindow``: the venue measures it on its own clock, which may run behind ours."""

_CONDITIONAL_KEYS = (
    "triggerPrice",
    "stopPrice",
    "stopLossPrice",
    "takeProfitPrice",
    "trailingPercent",
    "callbackRate",
    "trailingDelta",
)


class CallKind(StrEnum):
    PURE = "pure"
    """No I/O (``market()``, ``amount_to_precision()``, attributes): forwarded untouched."""
    READ = "read"
    """Changes nothing on the venue: retried on any transient error."""
    CANCEL = "cancel"
    """Always allowed through the kill switch; repeating a cancel cannot create exposure."""
    SETTING = "setting"
    """Idempotent account setting (leverage, margin mode): repeating it sets the same value."""
    ORDER = "order"
    """Creates or changes an order: verdict, kill switch, client id, journal."""
    HELPER = "helper"
    """A ccxt helper that builds its order through ``create_order`` / ``edit_order``."""
    WRITE = "write"
    """Any other write (transfer, withdraw): sent once unless it surely never left."""
    BLOCKED = "blocked"
    """A raw order endpoint that would bypass every check."""
    RAW = "raw"
    """ccxt's generic request paths (``request``, ``fetch2``, ``fetch``): they reach any
    endpoint, so what they are is decided per call from the HTTP method (:func:`raw_kind`)."""


ORDER_METHODS = frozenset({"create_order", "edit_order", "create_orders", "edit_orders"})
_READ_PREFIXES = ("fetch_", "load_")
_SETTINGS = frozenset(
    {"set_leverage", "set_margin_mode", "set_position_mode", "set_sandbox_mode_remote"}
)
_REDUCING = frozenset({"close_position", "close_all_positions"})
# Unified methods that move money without an order. ccxt adds such methods over time: the
# walk over every callable in tests/guard/test_raw_paths.py names any new one that reaches
# the venue while still classified PURE.
_WRITE_PREFIXES = (
    "withdraw",
    "transfer",
    "borrow_",
    "repay_",
    "add_margin",
    "reduce_m",
    "modify_margin",
    "futures_transfer",
    "create_convert",
    "create_gift",
    "mint_",
    "redeem_",
)
_OTHER_READ_PREFIXES = ("tokenized_convert_", "verify_gift")
_RAW_METHOD_ARG = {"request": 2, "fetch2": 2, "fetch": 1}
"""Where each generic request path takes its HTTP method: ``request(path, api, method, ...)``,
``fetch2(path, api, method, ...)``, ``fetch(url, method, ...)``."""


def call_kind(name: str) -> CallKind:
    """Classify a ccxt attribute by name (snake_case unified or camelCase implicit API)."""
    if name.startswith("_"):
        return CallKind.PURE
    if name in ORDER_METHODS:
        return CallKind.ORDER
    if name in _RAW_METHOD_ARG:
        return CallKind.RAW
    if name.endswith("_ws"):
        return CallKind.BLOCKED  # websocket order paths bypass the REST guard entirely
    if name.endswith("_request"):
        return CallKind.PURE  # ccxt's request builders (create_order_request) only build dicts
    if (name.startswith("create_") and "order" in name) or (
        name.startswith("edit_") and "order" in name
    ):
        return CallKind.HELPER
    if name.startswith("cancel_"):
        return CallKind.CANCEL
    if name in _SETTINGS:
        return CallKind.SETTING
    if name in _REDUCING:
        return CallKind.HELPER
    if name.startswith(_READ_PREFIXES):
        return CallKind.READ
    if name.startswith(_WRITE_PREFIXES):
        return CallKind.WRITE
    if name.startswith(_OTHER_READ_PREFIXES):
        return CallKind.READ
    flat = name.replace("_", "").lower()
    if "private" in flat or "public" in flat or flat.startswith(("fapi", "dapi", "papi", "sapi")):
        return _implicit_kind(flat)
    return CallKind.PURE


def raw_kind(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> CallKind:
    """What one call of a generic request path is, from its HTTP method (ccxt's default GET).

    Only GET (a read) and DELETE (a cancel: it can only remove) go through; any other method
    can place or change an order, and a raw body never reaches the verdict, so it is BLOCKED.
    """
    position = _RAW_METHOD_ARG[name]
    method = args[position] if len(args) > position else kwargs.get("method", "GET")
    verb = method.upper() if isinstance(method, str) else ""
    if verb == "GET":
        return CallKind.READ
    if verb == "DELETE":
        return CallKind.CANCEL
    return CallKind.BLOCKED


def _implicit_kind(flat: str) -> CallKind:
    if "get" in flat:
        return CallKind.READ
    if "delete" in flat:
        return CallKind.CANCEL if "order" in flat else CallKind.WRITE
    if "order" in flat:
        return CallKind.BLOCKED
    return CallKind.WRITE


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One order as the caller asked for it, with the client id it will be sent under."""

    symbol: str
    type: str
    side: str
    amount: float | None
    price: float | None
    params: Mapping[str, Any] = field(default_factory=dict)
    client_order_id: str = ""
    edit_of: str | None = None
    """The venue order id being edited (``edit_order``), else ``None``."""

    @property
    def reduce_only(self) -> bool:
        """``reduceOnly`` (or Binance's ``closePosition``): the venue refuses it if it would
        add exposure, so the kill switch may let it through in REDUCING."""
        return any(
            value is True or (isinstance(value, str) and value.lower() == "true")
            for value in (self.params.get("reduceOnly"), self.params.get("closePosition"))
        )

    @property
    def conditional(self) -> bool:
        """A trigger order: Binance USD-M keeps those apart (algo orders, ``clientAlgoId``)."""
        return any(self.params.get(key) is not None for key in _CONDITIONAL_KEYS)

    def describe(self) -> dict[str, Any]:
        """The journal's record of the intent: plain JSON, enough to reconcile by hand."""
        return {
            "type": self.type,
            "side": self.side,
            "amount": self.amount,
            "price": self.price,
            "reduce_only": self.reduce_only,
            "conditional": self.conditional,
            "edit_of": self.edit_of,
            # A per-call recvWindow stretches the settle window, after a restart too.
            "recv_window": self.params.get("recvWindow"),
        }


def parse_intent(
    symbol: Any,
    type: Any,
    side: Any,
    amount: Any,
    price: Any = None,
    params: Any = None,
    *,
    prefix: str,
    edit_of: Any = None,
) -> OrderIntent:
    """Validate ``create_order`` arguments and fix the client order id.

    Raises ``ValueError`` naming the field for anything the venue would reject or that would
    make the risk check meaningless (NaN, infinity, non-positive amount, wrong types).
    """
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
    if not isinstance(type, str) or not type:
        raise ValueError(f"type must be a non-empty string, got {type!r}")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise ValueError(f"params must be a dict, got {params.__class__.__name__}")
    if edit_of is not None and (not isinstance(edit_of, str | int) or isinstance(edit_of, bool)):
        raise ValueError(f"id must be a string, got {edit_of!r}")
    amount_value = _optional_positive("amount", amount, required=edit_of is None)
    price_value = _optional_positive("price", price, required=False)
    for key in _CONDITIONAL_KEYS:
        if params.get(key) is not None:
            _optional_positive(f"params.{key}", params[key], required=True)
    # The settle window after an ambiguous send is measured by it: it must be a real number.
    _optional_positive("params.recvWindow", params.get("recvWindow"), required=False)
    given = [params[k] for k in CLIENT_ORDER_ID_KEYS if params.get(k) is not None]
    if len(set(map(str, given))) > 1:
        raise ValueError(f"params name two different client order ids: {given!r}")
    if given:
        client_id = given[0]
        check_client_order_id(client_id)
    elif edit_of is not None:
        client_id = ""  # an edit keeps the order's identity; the venue order id names it
    else:
        client_id = new_client_order_id(prefix)
    return OrderIntent(
        symbol=symbol,
        type=type,
        side=side,
        amount=amount_value,
        price=price_value,
        params=dict(params),
        client_order_id=client_id,
        edit_of=None if edit_of is None else str(edit_of),
    )


def _optional_positive(name: str, value: Any, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise ValueError(f"{name} is required")
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # ccxt accepts numeric strings; so do we, then check them
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return number


def recv_window_s(value: Any) -> float | None:
    """A ``recvWindow`` (milliseconds, as ccxt and Binance take it) in seconds; ``None`` when
    absent or not a finite number >= 0."""
    if value is None or isinstance(value, bool):
        return None
    try:
        seconds = float(value) / 1000.0
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0.0 else None


def check_client_order_id(value: Any) -> str:
    """A client order id Binance accepts: 1-36 of ``[.A-Z:/a-z0-9_-]``."""
    if not isinstance(value, str) or not _BINANCE_ID.match(value):
        raise ValueError(
            f"params.clientOrderId must be 1-36 characters of [.A-Z:/a-z0-9_-], got {value!r}"
        )
    return value


def new_client_order_id(prefix: str) -> str:
    """``prefix`` + random hex, 36 characters in all: unique without any shared state."""
    if len(prefix) > 16:
        raise ValueError(f"client_order_id_prefix must be at most 16 characters, got {prefix!r}")
    return check_client_order_id(prefix + secrets.token_hex(18)[: _MAX_ID - len(prefix)])


def send_params(intent: OrderIntent) -> dict[str, Any]:
    """The params ccxt sends: the caller's, with the client id under one unambiguous key."""
    params = {k: v for k, v in intent.params.items() if k not in CLIENT_ORDER_ID_KEYS}
    if intent.client_order_id:
        params["clientOrderId"] = intent.client_order_id
    return params


def lookup_params(exchange_id: str, client_order_id: str, *, conditional: bool) -> dict[str, Any]:
    """``fetch_order`` params that find an order by client id on this venue.

    ccxt's binance ``fetch_order`` turns ``origClientOrderId`` into the query of the same name
    (``clientAlgoId`` with ``trigger`` for the USD-M algo orders that conditional orders
    become). Other venues take ccxt's unified ``clientOrderId``.
    """
    if exchange_id.startswith("binance"):
        if conditional:
            return {"trigger": True, "clientAlgoId": client_order_id}
        return {"origClientOrderId": client_order_id}
    return {"clientOrderId": client_order_id}


def order_client_id(order: Any) -> str | None:
    """The client id in a ccxt order structure (or its raw ``info``)."""
    if not isinstance(order, Mapping):
        return None
    value = order.get("clientOrderId")
    if value:
        return str(value)
    info = order.get("info")
    if isinstance(info, Mapping):
        for key in ("clientOrderId", "clientAlgoId", "newClientOrderId"):
            if info.get(key):
                return str(info[key])
    return None


__all__ = [
    "CLIENT_ORDER_ID_KEYS",
    "CLOCK_SKEW_MARGIN_S",
    "ORDER_METHODS",
    "CallKind",
    "OrderIntent",
    "call_kind",
    "check_client_order_id",
    "lookup_params",
    "new_client_order_id",
    "order_client_id",
    "parse_intent",
    "raw_kind",
    "recv_window_s",
    "send_params",
]
