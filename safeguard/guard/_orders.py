"""What a ccxt call means for safety: its kind and, for an order, its :class:`OrderCall`.

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

from safeguard._errors import InvalidInput

CLIENT_ORDER_ID_KEYS = ("clientOrderId", "newClientOrderId", "clientAlgoId")
"""Where a caller may put their own client order id (ccxt's unified key first)."""

_BINANCE_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_MAX_ID = 36
STOP_SUFFIX = "-sl"
"""Appended to the entry's client order id to name its protective stop."""
MAX_ENTRY_ID = _MAX_ID - len(STOP_SUFFIX)
"""The longest client id an entry carrying a protective stop may have: its stop's id is the
entry's + ``-sl``, and Binance takes at most 36 characters."""

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
"""ccxt's ``is_conditional_order``: any of these sends the order as a trigger (algo) order."""

PROTECTIVE_STOP_KEYS = ("stopLossPrice", "stopLoss")
"""How an entry declares its protective stop (ccxt's unified names)."""
TRIGGER_KEYS = (
    "triggerPrice",
    "stopPrice",
    "takeProfitPrice",
    "takeProfit",
    "trailingPercent",
    "trailingTriggerPrice",
    "callbackRate",
    "trailingDelta",
)
"""Keys that make an order a trigger order in its own right (ccxt's unified names and
Binance's): such an order is not an entry, and its ``stopLossPrice`` is its trigger."""
_TRIGGER_PRICE_KEYS = ("triggerPrice", "stopPrice", "stopLossPrice", "takeProfitPrice")
_TRAILING_KEYS = ("trailingPercent", "callbackRate", "trailingDelta")
_TRAILING_ACTIVATION_KEYS = ("trailingTriggerPrice", "activationPrice", "activatePrice")

ENTRY_TYPES = ("market", "limit")
TRIGGER_TYPES = ("stop", "stop_market", "take_profit", "take_profit_market", "trailing_stop_market")
"""Binance USD-M's conditional order types (ccxt sends each to the algo-order endpoint)."""
_PRICED_TYPES = ("limit", "stop", "take_profit")
"""Types that rest at a limit price (ccxt sends ``price`` only for these)."""

_TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "GTD", "PO")
_WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
_BOOLEAN_WORDS = ("true", "false")

# What a params entry would change if ccxt sent it: ccxt's binance create_order_request ends
# with ``extend(request, params)``, so any of these (in any spelling Binance or ccxt reads)
# would replace what the verdict judged. Keyed by the lower-case spelling.
_CHANGES_JUDGED = {
    "symbol": "symbol",
    "side": "side",
    "type": "order type",
    "ordertype": "order type",
    "quantity": "amount",
    "origqty": "amount",
    "amount": "amount",
    "cost": "amount",
    "quoteorderqty": "amount",
    "price": "price",
    "pricematch": "price",
    "positionside": "position side",
    "hedged": "position side",
    "reduceonly": "reduce-only",
    "closeposition": "close-position",
    "papi": "account",
    "portfoliomargin": "account",
    "marginmode": "account",
}
_PASSED = frozenset(
    {
        *CLIENT_ORDER_ID_KEYS,
        *PROTECTIVE_STOP_KEYS,
        *_TRIGGER_PRICE_KEYS,
        *_TRAILING_KEYS,
        *_TRAILING_ACTIVATION_KEYS,
        "reduceOnly",
        "positionSide",
        "postOnly",
        "timeInForce",
        "workingType",
        "priceProtect",
        "goodTillDate",
        "selfTradePrevention",
        "selfTradePreventionMode",
        "recvWindow",
    }
)
"""The params the guard passes to ccxt: each is judged by the verdict, or changes nothing the
verdict judged (time in force, self-trade prevention, the price a trigger watches). Anything
else is refused, never stripped: a silently dropped parameter is an order the caller did not
ask for, and an unknown one may be a new way to change the order behind the verdict's back."""


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
    STREAM = "stream"
    """A ccxt.pro ``watch_*`` / ``un_watch_*``: passed through, and its answers feed the
    guard's view (:mod:`safeguard.guard._streams`)."""
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
    if name.startswith(("watch_", "un_watch_")):
        return CallKind.STREAM
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
        return _implicit_kind(name)
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


_WORDS = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_VERBS = frozenset({"get", "post", "put", "delete", "patch"})


def _implicit_kind(name: str) -> CallKind:
    """A ccxt implicit endpoint method (``fapiPrivateGetAccount``, ``sapi_v2_post_...``) by
    its HTTP verb, the first word that is one: not a substring anywhere ("stakin*g eth*" made
    ``sapiPostEthStakingEthStake`` a read, retried after a timeout that may have carried it)."""
    words = [w.lower() for w in (name.split("_") if "_" in name else _WORDS.findall(name))]
    verb = next((w for w in words if w in _VERBS), None)
    about_orders = "order" in name.lower()
    if verb == "get":
        return CallKind.READ
    if verb == "delete":
        return CallKind.CANCEL if about_orders else CallKind.WRITE
    return CallKind.BLOCKED if about_orders else CallKind.WRITE


@dataclass(frozen=True, slots=True)
class OrderCall:
    """One order call (``create_order``, ``edit_order``, a batch entry) as the caller made it,
    in ccxt's terms (raw type, params), with the client id it will be sent under.

    Not the verdict's input: :meth:`~safeguard.guard._gate.PreTradeGate.risk_intent` reads one
    into a :class:`~safeguard.risk._models.OrderIntent` (normalized type, leverage, margin mode
    and protective stop, as the risk core judges it)."""

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
        # Asked several times per order: two look-ups, no generator.
        params = self.params
        return _true(params.get("reduceOnly")) or _true(params.get("closePosition"))

    @property
    def post_only(self) -> bool:
        """``postOnly``, or the ``timeInForce`` ccxt sends as post-only on Binance futures
        (``GTX``, or ``PO`` which ccxt turns into ``GTX``)."""
        return self.params.get("postOnly") is True or self.params.get("timeInForce") in (
            "GTX",
            "PO",
        )

    @property
    def conditional(self) -> bool:
        """A trigger order: Binance USD-M keeps those apart (algo orders, ``clientAlgoId``)."""
        return _any_set(self.params, _CONDITIONAL_KEYS)

    @property
    def protective_stop(self) -> bool:
        """A reduce-only (or ``closePosition``) trigger order that is not a take-profit: a
        stop-loss, trailing or not. It can only close, and only when the market goes against
        the position, so the kill switch lets it through even when HALTED."""
        if not self.reduce_only or not self.conditional:
            return False
        return not self.type.lower().startswith("take_profit") and not _any_set(
            self.params, ("takeProfitPrice", "takeProfit")
        )

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


def _true(value: Any) -> bool:
    """A flag set as ccxt and Binance take it: ``True`` or the string ``"true"``, any case."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def parse_call(
    symbol: Any,
    type: Any,
    side: Any,
    amount: Any,
    price: Any = None,
    params: Any = None,
    *,
    prefix: str,
    edit_of: Any = None,
    protect: bool = True,
) -> OrderCall:
    """Validate ``create_order`` arguments and fix the client order id.

    Raises :class:`~safeguard._errors.InvalidInput` naming the field for anything the venue
    would reject or that would make the risk check meaningless (NaN, infinity, non-positive
    amount, wrong types), and for any ``params`` entry that would change what the verdict
    judges (:func:`check_shape`). ``protect``: an entry's ``stopLossPrice`` / ``stopLoss`` is
    its protective stop (False inside ccxt's stop-order helpers, where it is the trigger).
    """
    if not isinstance(symbol, str) or not symbol:
        raise _invalid("symbol", f"symbol must be a non-empty string, got {symbol!r}")
    if not isinstance(type, str) or not type:
        raise _invalid("type", f"type must be a non-empty string, got {type!r}")
    if side not in ("buy", "sell"):
        raise _invalid("side", f"side must be 'buy' or 'sell', got {side!r}")
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise _invalid("params", f"params must be a dict, got {params.__class__.__name__}")
    if edit_of is not None and (not isinstance(edit_of, str | int) or isinstance(edit_of, bool)):
        raise _invalid("id", f"id must be a string, got {edit_of!r}")
    amount_value = _optional_positive("amount", amount, required=edit_of is None)
    price_value = _optional_positive("price", price, required=False)
    for key in _CONDITIONAL_KEYS + _TRAILING_ACTIVATION_KEYS:
        if params.get(key) is not None:
            _optional_positive(f"params.{key}", params[key], required=True)
    # The settle window after an ambiguous send is measured by it: it must be a real number.
    _optional_positive("params.recvWindow", params.get("recvWindow"), required=False)
    given = [params[k] for k in CLIENT_ORDER_ID_KEYS if params.get(k) is not None]
    if len(set(map(str, given))) > 1:
        raise _invalid(
            "params.clientOrderId", f"params name two different client order ids: {given!r}"
        )
    if given:
        client_id = given[0]
        check_client_order_id(client_id)
    elif edit_of is not None:
        client_id = ""  # an edit keeps the order's identity; the venue order id names it
    else:
        client_id = new_client_order_id(prefix)
    intent = OrderCall(
        symbol=symbol,
        type=type,
        side=side,
        amount=amount_value,
        price=price_value,
        params=dict(params),
        client_order_id=client_id,
        edit_of=None if edit_of is None else str(edit_of),
    )
    check_shape(intent, protect=protect)
    return intent


def protected_entry(intent: OrderCall) -> bool:
    """Whether ``intent`` is an entry declaring a protective stop: a new market or limit order,
    not reduce-only and not a trigger order itself, carrying ``stopLossPrice`` / ``stopLoss``
    (:mod:`safeguard.guard._protective` sends the stop as its own order)."""
    params = intent.params
    # The declared stop first: most orders have none, and it decides at once.
    return (
        _any_set(params, PROTECTIVE_STOP_KEYS)
        and intent.edit_of is None
        and not intent.reduce_only
        and intent.type.lower() in ENTRY_TYPES
        and not _any_set(params, TRIGGER_KEYS)
    )


def _any_set(params: Mapping[str, Any], keys: tuple[str, ...]) -> bool:
    get = params.get
    for key in keys:  # noqa: SIM110 (any() over a generator: a frame per key, on every order)
        if get(key) is not None:
            return True
    return False


def check_shape(intent: OrderCall, *, protect: bool = True) -> None:
    """Refuse an order whose venue form would differ from what the verdict judges.

    The verdict judges ``(symbol, side, amount, price, type)`` and the params it reads
    (reduce-only, post-only, the protective stop). ccxt builds the request from the same
    arguments and then lays the params over it, and turns a plain type into a trigger order
    when it sees a trigger price. So: only the params in :data:`_PASSED` go through, each with
    a value ccxt sends as given; the type is one Binance USD-M takes; and a trigger order must
    be reduce-only (it meets the market when it fires, which the verdict cannot price now; one
    that can only reduce adds no exposure to misjudge). Raises
    :class:`~safeguard._errors.InvalidInput`; nothing has been sent.
    """
    params = intent.params
    for key in params:
        if not isinstance(key, str) or key not in _PASSED:
            raise _refused_param(key)  # None too: ccxt would still lay the key over the request
    _check_values(params)
    kind = intent.type.lower()
    if kind not in ENTRY_TYPES + TRIGGER_TYPES:
        raise _invalid(
            "type",
            f"type {intent.type!r} is not an order type the guard can judge on Binance USD-M "
            f"(one of {', '.join(ENTRY_TYPES + TRIGGER_TYPES)})",
        )
    _check_time_in_force(intent, kind)
    protective = protect and protected_entry(intent)
    if protective and len(intent.client_order_id) > MAX_ENTRY_ID:
        cid = intent.client_order_id
        raise _invalid(
            "params.clientOrderId",
            f"params.clientOrderId {cid!r} is {len(cid)} characters: an entry with a "
            f"protective stop may have at most {MAX_ENTRY_ID}, so that its stop's id "
            f"({cid}{STOP_SUFFIX}) fits Binance's {_MAX_ID}",
        )
    # An edit of a plain order may declare the stop the verdict judges it with, as a new entry
    # does (the stop itself is not moved by the edit): it is no trigger of the edited order.
    declares_stop = protective or (
        intent.edit_of is not None and kind in ENTRY_TYPES and not intent.reduce_only
    )
    if not declares_stop and params.get("stopLoss") is not None:
        raise _invalid(
            "params.stopLoss",
            "params.stopLoss declares a protective stop, which only a new market or limit "
            "entry carries (not a reduce-only, trigger or edited order)",
        )
    triggers = [
        key
        for key in _TRIGGER_PRICE_KEYS
        if params.get(key) is not None and not (declares_stop and key == "stopLossPrice")
    ]
    trailing = [key for key in _TRAILING_KEYS if params.get(key) is not None]
    if len(triggers) + len(trailing) > 1:
        raise _invalid(
            f"params.{(triggers + trailing)[1]}",
            f"params name more than one trigger ({', '.join(triggers + trailing)}): ccxt "
            "would send one of them and drop the others",
        )
    if kind in _PRICED_TYPES and intent.price is None and intent.edit_of is None:
        raise _invalid("price", f"price is required for a {kind} order")
    if intent.price is not None and kind not in _PRICED_TYPES:
        # ccxt drops it without a word: a caller who meant a price cap would not get one.
        raise _invalid(
            "price",
            f"a {kind} order is sent without a price (ccxt drops it); pass price=None, or "
            "use a limit-priced type (limit, stop, take_profit)",
        )
    if not trailing:
        for key in _TRAILING_ACTIVATION_KEYS:
            if params.get(key) is not None:
                raise _invalid(f"params.{key}", f"params.{key} applies to trailing stops only")
    trigger = next(iter(triggers + trailing), None)
    if trigger is None and kind not in TRIGGER_TYPES:
        return  # a plain market or limit order: sent as judged
    what = f"{intent.type} order" + ("" if trigger is None else f" with params.{trigger}")
    if not intent.reduce_only:
        raise _invalid(
            "type" if trigger is None else f"params.{trigger}",
            f"a {what} is a trigger order: it meets the market when it fires, which the verdict "
            "cannot price now, so it must be reduceOnly (then it can only reduce); send an "
            "entry when you mean it, with stopLossPrice for its protective stop",
        )
    if trigger is None:
        raise _invalid("type", f"a {kind} order needs a trigger (params.triggerPrice)")
    if trailing and kind not in ("market", "trailing_stop_market"):
        raise _invalid(
            "type", f"a trailing stop is a market or trailing_stop_market order, not {kind}"
        )
    if kind == "trailing_stop_market" and not trailing:
        raise _invalid(
            "params.callbackRate", "a trailing_stop_market order needs params.callbackRate"
        )


def _check_time_in_force(intent: OrderCall, kind: str) -> None:
    """ccxt lays ``timeInForce`` over the one it derives from ``postOnly``: the two must agree,
    and a market order takes neither (the venue refuses it, -1106)."""
    tif = intent.params.get("timeInForce")
    if kind == "market" and tif is not None:
        raise _invalid(
            "params.timeInForce", f"a market order takes no params.timeInForce ({tif!r})"
        )
    if intent.post_only and kind not in _PRICED_TYPES:
        raise _invalid("params.postOnly", f"a {kind} order cannot be post-only (params.postOnly)")
    if intent.params.get("postOnly") is True and tif not in (None, "GTX", "PO"):
        raise _invalid(
            "params.timeInForce",
            f"params.postOnly with params.timeInForce {tif!r}: ccxt would send {tif}, not the "
            "post-only order the verdict judges",
        )


def _check_values(params: Mapping[str, Any]) -> None:
    """The passed params carry values ccxt sends as they are and the verdict reads the same."""
    for key in ("reduceOnly", "priceProtect"):
        value = params.get(key)
        if (
            value is not None
            and not isinstance(value, bool)
            and not (isinstance(value, str) and value.lower() in _BOOLEAN_WORDS)
        ):
            raise _invalid(f"params.{key}", f"params.{key} must be true or false, got {value!r}")
    post_only = params.get("postOnly")
    if post_only is not None and not isinstance(post_only, bool):
        # ccxt reads only a real bool as post-only, then sends the word as an unknown param.
        raise _invalid("params.postOnly", f"params.postOnly must be a bool, got {post_only!r}")
    position_side = params.get("positionSide")
    if position_side is not None and position_side != "BOTH":
        raise _invalid(
            "params.positionSide",
            f"params.positionSide {position_side!r} would change the position side the verdict "
            "judges: the verdict prices one-way positions (BOTH) only",
        )
    for key, allowed in (("timeInForce", _TIME_IN_FORCE), ("workingType", _WORKING_TYPES)):
        value = params.get(key)
        if value is not None and value not in allowed:
            raise _invalid(
                f"params.{key}", f"params.{key} must be one of {', '.join(allowed)}, got {value!r}"
            )
    attached = params.get("stopLoss")
    if isinstance(attached, Mapping) and set(attached) - {"triggerPrice"}:
        extra = sorted(map(str, set(attached) - {"triggerPrice"}))
        raise _invalid(
            "params.stopLoss",
            f"params.stopLoss may name only its triggerPrice, not {', '.join(extra)}: the "
            "protective stop is a close-all stop-market order",
        )
    if attached is not None:
        # The same check stopLossPrice gets: a stop the verdict cannot read is no stop.
        trigger = attached.get("triggerPrice") if isinstance(attached, Mapping) else attached
        _optional_positive("params.stopLoss", trigger, required=True)


def _refused_param(key: Any) -> InvalidInput:
    changes = _CHANGES_JUDGED.get(str(key).lower())
    if changes is not None:
        return _invalid(
            f"params.{key}",
            f"params.{key} would change the {changes} the verdict judges: pass it as "
            "create_order's own argument (or set it on the account first); nothing was sent",
        )
    return _invalid(
        f"params.{key}",
        f"params.{key} is not a parameter the guard passes to the venue (it passes "
        f"{', '.join(sorted(_PASSED))}); nothing was sent",
    )


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, field=field)


def _optional_positive(name: str, value: Any, *, required: bool) -> float | None:
    if value is None:
        if required:
            raise _invalid(name, f"{name} is required")
        return None
    if isinstance(value, bool):
        raise _invalid(name, f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # ccxt accepts numeric strings; so do we, then check them
    except OverflowError:  # an int past float's range (10**400): no finite price or size
        raise _invalid(
            name, f"{name} must be a finite number > 0, got a number too large"
        ) from None
    except (TypeError, ValueError):
        raise _invalid(name, f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number) or number <= 0.0:
        raise _invalid(name, f"{name} must be a finite number > 0, got {value!r}")
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


def check_setting(method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse a settings call whose value ccxt cannot use, before it is sent: ccxt compares
    ``set_leverage``'s argument with numbers, so a string (read from a config file) raises a
    ``TypeError`` that would look like a venue failure, be retried and count against the
    venue's health; NaN, infinity or a bool reach the venue as garbage."""
    if method != "set_leverage":
        return
    leverage = args[0] if args else kwargs.get("leverage")
    if (
        isinstance(leverage, bool)
        or not isinstance(leverage, int | float)
        or (isinstance(leverage, int) and leverage > 10**6)  # math.isfinite overflows on 10**400
        or not math.isfinite(leverage)
        or leverage < 1
    ):
        raise InvalidInput(
            f"leverage must be a finite number >= 1, got {leverage!r}; nothing was sent",
            field="leverage",
        )


_ARGUMENT_KEYS: Mapping[str, tuple[str, ...]] = {
    "set_leverage": ("leverage", "symbol"),
    "set_margin_mode": ("marginType", "symbol"),
    "add_margin": ("type", "amount", "symbol"),
    "reduce_margin": ("type", "amount", "symbol"),
    "set_margin": ("type", "amount", "symbol"),
}
"""The request fields each settings or margin call's own arguments set (ccxt's binance lays
``params`` over the request it built from them)."""


def check_argument_params(method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse ``params`` that would replace what the call's own arguments say, before it is
    sent: ``set_leverage(1, s, {"leverage": 10})`` was judged as 1x and sent as 10x,
    ``add_margin(s, x, {"type": 2})`` took margin out, ``{"symbol": ...}`` moved the call to
    another market, each past a HALTED switch that refuses the same call said plainly."""
    keys = _ARGUMENT_KEYS.get(method)
    if keys is None:
        return
    params = args[2] if len(args) > 2 else kwargs.get("params")
    if not isinstance(params, Mapping):
        return
    for key in keys:
        if key in params:
            raise InvalidInput(
                f"params.{key} would replace what {method}'s own arguments say: pass it as "
                "the argument (or call the method that means it); nothing was sent",
                field=f"params.{key}",
            )


def check_client_order_id(value: Any, *, limit: int = _MAX_ID) -> str:
    """A client order id Binance accepts: 1-36 of ``[.A-Z:/a-z0-9_-]`` (``limit``: fewer)."""
    if not isinstance(value, str) or not _BINANCE_ID.match(value) or len(value) > limit:
        raise _invalid(
            "params.clientOrderId",
            f"params.clientOrderId must be 1-{limit} characters of [.A-Z:/a-z0-9_-], got {value!r}",
        )
    return value


def new_client_order_id(prefix: str) -> str:
    """``prefix`` + random hex, 33 characters in all: unique without any shared state, and
    short enough that the protective stop's id (the entry's + ``-sl``) fits Binance's 36."""
    if len(prefix) > 16:
        raise ValueError(f"client_order_id_prefix must be at most 16 characters, got {prefix!r}")
    return check_client_order_id(prefix + secrets.token_hex(17)[: MAX_ENTRY_ID - len(prefix)])


def send_params(intent: OrderCall) -> dict[str, Any]:
    """The params ccxt sends: the caller's, with the client id under one unambiguous key and
    ``reduceOnly`` as the bool the verdict read it as (ccxt sends a word as it is)."""
    params = {
        k: v for k, v in intent.params.items() if k not in CLIENT_ORDER_ID_KEYS and v is not None
    }
    if "reduceOnly" in params:
        params["reduceOnly"] = intent.reduce_only
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


ALGO_ROUTE_FLAGS = ("trigger", "stop", "conditional")
"""The params flags that send a ccxt call to Binance's algo-order routes, when a real ``True``
(``{"trigger": 1}`` goes to the plain route)."""


def algo_route_flags(params: Any) -> dict[str, bool]:
    """The algo-route flags ``params`` carries, alone: what a look-up made on behalf of the
    call must pass to find the same order (since 2025-12-09 the plain order routes do not know
    a stop waiting in the algo service)."""
    if not isinstance(params, Mapping):
        return {}
    return {flag: True for flag in ALGO_ROUTE_FLAGS if params.get(flag) is True}


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
    "ALGO_ROUTE_FLAGS",
    "CLIENT_ORDER_ID_KEYS",
    "CLOCK_SKEW_MARGIN_S",
    "ENTRY_TYPES",
    "MAX_ENTRY_ID",
    "ORDER_METHODS",
    "PROTECTIVE_STOP_KEYS",
    "STOP_SUFFIX",
    "TRIGGER_KEYS",
    "TRIGGER_TYPES",
    "CallKind",
    "OrderCall",
    "algo_route_flags",
    "call_kind",
    "check_argument_params",
    "check_client_order_id",
    "check_shape",
    "lookup_params",
    "new_client_order_id",
    "order_client_id",
    "parse_call",
    "protected_entry",
    "raw_kind",
    "recv_window_s",
    "send_params",
]
