"""What the sync and async guarded exchanges share: forwarding, classification, order calls.

A guarded exchange looks like the ccxt exchange it wraps. Attribute reads and writes go
through to it; every method that talks to the venue is routed by
:func:`~safeguard.guard._orders.call_kind` into the core. ccxt's order helpers
(``create_limit_order``, ``create_stop_loss_order``, ...) run ccxt's own code with the guarded
exchange as ``self``, so the ``self.create_order(...)`` inside them is the guarded one; a helper
an exchange class overrides with its own request path is refused, not trusted.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import ccxt
from requests.structures import CaseInsensitiveDict

from safeguard import _errors as errors
from safeguard._clock import Clock
from safeguard._log import logger
from safeguard.guard._core import (
    Answer,
    GuardCore,
    Permit,
    Send,
    Sleep,
    Steps,
    Woke,
    new_answer,
    order_permit,
)
from safeguard.guard._holder import StreamHolder, feed
from safeguard.guard._keeper import schedule_period
from safeguard.guard._orders import CallKind, OrderCall, call_kind, parse_call, raw_kind
from safeguard.killswitch._state import Engage, SwitchState, TradingState, refusal_code

if TYPE_CHECKING:
    from safeguard.guard._gate import PreTradeGate

_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")

# ccxt's helpers whose ``stopLossPrice`` is the order's own trigger (a stop-loss *order*), not
# an entry's protective stop: inside them, create_order must not split the order in two.
_TRIGGER_HELPERS = frozenset({"create_stop_loss_order"})
_IN_TRIGGER_HELPER: ContextVar[bool] = ContextVar("safeguard_in_trigger_helper", default=False)


class SwitchLike(Protocol):
    """The kill switch as the guard uses it (``safeguard.killswitch.KillSwitch``)."""

    @property
    def state(self) -> SwitchState: ...

    def permit(
        self, *, reduces_only: bool, is_cancel: bool = False
    ) -> AbstractContextManager[None]: ...

    def wait(
        self, timeout: float, *, reduces_only: bool | None = None, is_cancel: bool = False
    ) -> bool: ...

    async def wait_async(
        self, timeout: float, *, reduces_only: bool | None = None, is_cancel: bool = False
    ) -> bool: ...

    def engage(self, reason: str, *, by: str, state: TradingState, code: str) -> object: ...

    def engage_async(
        self, reason: str, *, by: str, state: TradingState, code: str
    ) -> asyncio.Future[Any]: ...


@dataclass
class Runtime:
    """Everything one guarded exchange holds besides the ccxt instance."""

    core: GuardCore
    switch: SwitchLike
    clock: Clock
    prefix: str
    sleep: Callable[[float], bool] | None = None
    """Sync sleep override (tests with a ManualClock); default: ``switch.wait``."""
    sleep_async: Callable[[float], Awaitable[bool]] | None = None
    """Async sleep override; default: ``switch.wait_async``."""
    view: PreTradeGate | None = None
    """Where ``watch_*`` answers go (the gate, over the guard's market view)."""


_NO_PERMIT: AbstractContextManager[None] = nullcontext()
"""What a read is sent inside (nullcontext keeps no state: one serves every send)."""


def permit(switch: SwitchLike, spec: Permit | None) -> AbstractContextManager[None]:
    """The kill switch's permit for one send (none for reads: they add no exposure)."""
    if spec is None:
        return _NO_PERMIT
    return switch.permit(reduces_only=spec.reduces_only, is_cancel=spec.risk_off)


def delaying(spec: Permit | None) -> dict[str, bool]:
    """``wait``'s arguments naming the send a sleep delays (none for reads), so that an engage
    that forbids it ends the sleep at once, even one that came just before the sleep began."""
    if spec is None:
        return {}
    return {"reduces_only": spec.reduces_only, "is_cancel": spec.risk_off}


def refusal(switch: SwitchLike, spec: Permit | None) -> errors.TradingHalted | None:
    """The kill switch's refusal of a send with ``spec`` as the switch stands now, or None.

    Read without taking a permit: a call parked on a wait asks this when it wakes, so an
    engage ends the wait at once instead of after it (the permit around the send stays the
    authority for what is sent)."""
    if spec is None:
        return None
    current = switch.state
    code = refusal_code(current.state, reduces_only=spec.reduces_only, is_cancel=spec.risk_off)
    if code is None:
        return None
    return errors.TradingHalted(
        f"{code}: kill switch is {current.state} ({current.code}: {current.reason})",
        state=str(current.state),
        reason=str(current.reason),
        code=code,
    )


def response_body(raw: Any) -> Any:
    """The last answer's parsed JSON, which ccxt keeps when ``enableLastJsonResponse`` is on."""
    return getattr(raw, "last_json_response", None)


def response_headers(raw: Any) -> Mapping[str, str] | None:
    headers = getattr(raw, "last_response_headers", None)
    # ccxt's own kinds (a dict, requests' CaseInsensitiveDict for sync answers): these spare
    # the Python-level Mapping check on every request.
    if headers.__class__ is dict or headers.__class__ is CaseInsensitiveDict:
        return headers
    return headers if isinstance(headers, Mapping) else None


def _listed_symbols(symbols: Any, markets: Any, caller: str = "hold_streams") -> list[str]:
    """``symbols`` for :meth:`hold_streams` or ``keep_fresh``, each one the venue lists
    (ccxt's unified symbol).

    Checked before anything starts: a held stream for a symbol the venue does not list would
    fail and be watched again, quietly, for as long as the holder runs."""
    if isinstance(symbols, str) or not isinstance(symbols, list | tuple) or not symbols:
        raise errors.InvalidInput(
            f"{caller} needs a list of symbols (ccxt's, such as 'BTC/USDT:USDT'), got {symbols!r}",
            field="symbols",
        )
    known = markets if isinstance(markets, Mapping) else {}
    unknown = [s for s in symbols if not isinstance(s, str) or s not in known]
    if unknown:
        raise errors.InvalidInput(
            f"{caller}: {', '.join(map(repr, unknown))} not listed by the venue; name "
            "markets by ccxt's unified symbol (such as 'BTC/USDT:USDT'), not the venue's id",
            field="symbols",
        )
    return list(symbols)


def _ccxt_default(name: str) -> Any:
    return getattr(ccxt.Exchange, name, None)


class Face:
    """Base of :class:`~safeguard.guard._sync.GuardedExchange` and its async twin."""

    _OWN = frozenset({"_raw", "_rt", "_cache"})
    _raw: Any
    _rt: Runtime
    _cache: dict[str, Any]

    def __init__(self, raw: Any, runtime: Runtime) -> None:
        object.__setattr__(self, "_raw", raw)
        object.__setattr__(self, "_rt", runtime)
        object.__setattr__(self, "_cache", {})

    # --- forwarding ------------------------------------------------------------------------

    @property
    def exchange(self) -> Any:
        """The wrapped ccxt exchange. Calling it directly bypasses every check."""
        return self._raw

    @property
    def runtime(self) -> Runtime:
        return self._rt

    def __getattr__(self, name: str) -> Any:
        cached = self._cache.get(name)
        if cached is not None:
            return cached
        attr = getattr(self._raw, name)
        if not callable(attr):
            return attr
        snake = _CAMEL.sub(r"_\1", name).lower()
        if snake != name and hasattr(type(self), snake):
            # ccxt's camelCase aliases (``createOrder``) must hit the guarded method too.
            bound: Any = getattr(self, snake)
        else:
            # Classify by the snake_case spelling; call by a name the exchange really has
            # (implicit endpoints spell theirs ``fapiprivate_post_order``, not ours).
            target = snake if hasattr(self._raw, snake) else name
            bound = self._route(call_kind(snake), target, attr)
        self._cache[name] = bound
        # Also as an instance attribute: the next lookup finds it without calling this method
        # (names reach here only when the class has no such attribute, so nothing is shadowed).
        self.__dict__[name] = bound
        return bound

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self._raw, name, value)
            self._cache.pop(name, None)
            self.__dict__.pop(name, None)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {getattr(self._raw, 'id', '?')}>"

    def _route(self, kind: CallKind, name: str, attr: Any) -> Any:
        if kind is CallKind.PURE:
            return attr
        if kind is CallKind.BLOCKED:
            return _blocked(name)
        if kind is CallKind.HELPER:
            return self._helper(name)
        if kind is CallKind.RAW:
            return self._raw_path(name)
        if kind is CallKind.STREAM:
            return self._watched(name, attr)
        if name == "load_markets":
            return self._load_markets(self._guarded(kind, name))
        return self._guarded(kind, name)

    def _load_markets(self, guarded: Any) -> Any:
        """``load_markets`` made a reload whenever ccxt has no markets to answer from (then it
        reads them anyway): the view stamps markets as read only on a reload, since without
        one ccxt answers from its cache, however old (the raw client's load of an hour ago)."""

        def load_markets(reload: Any = False, params: Any = None) -> Any:
            # ccxt reads on any truthy ``reload``: the view is told a plain bool.
            reload = bool(reload) or not getattr(self._raw, "markets", None)
            return guarded(reload, {} if params is None else params)

        return load_markets

    def _watched(self, name: str, attr: Any) -> Any:
        """A ccxt.pro watch, passed through: its answer goes to the caller unchanged and to
        the guard's view, stamped with the stream's liveness; a watch that raises (a depth
        gap, a disconnect) breaks its feed. After a message, the reads the view has due
        (its schedule, the reconcile after a gap) are made here, on the stream's path, so
        the order path finds them done. Only ccxt.pro (async) has watches: awaitable."""
        view = self._rt.view
        if view is None:
            return attr
        if name.startswith("un_"):

            async def unwatch(*args: Any, **kwargs: Any) -> Any:
                view.unwatched(name, args, kwargs)
                result = attr(*args, **kwargs)
                return await result if inspect.isawaitable(result) else result

            unwatch.__name__ = name
            return unwatch

        async def watch(*args: Any, **kwargs: Any) -> Any:
            def call() -> Any:
                return attr(*args, **kwargs)

            return await feed(
                view,
                name,
                args,
                kwargs,
                call,
                self._now,
                self._stream_reads,
                self._stream_engage,
                self._raw,
            )

        watch.__name__ = name
        return watch

    async def _stream_reads(self, sends: list[Send]) -> None:
        """The view's due reads on the stream's path (the async face's guarded reads)."""
        for send in sends:
            try:
                await self._guarded(CallKind.READ, send.method)(*send.args, **send.kwargs)
            except errors.SafeguardError as exc:
                # The verdict denies on what stays missing; the stream goes on regardless.
                logger.warning("{} on the stream's path failed: {}", send.method, exc)

    def _holder(self, client: Any, symbols: Any, account: bool, retry_s: float) -> StreamHolder:
        view = self._rt.view
        if view is None:
            raise errors.ConfigError("this guarded exchange has no view to feed", key="streams")
        reads = self._stream_reads if client is self._raw else self._reads_off_loop
        listed = _listed_symbols(symbols, getattr(self._raw, "markets", None))
        return StreamHolder(
            view,
            client,
            listed,
            self._now,
            reads,
            self._stream_engage,
            retry_s=retry_s,
            account=account,
        )

    async def _reads_off_loop(self, sends: list[Send]) -> None:
        """The view's due reads on the blocking guarded exchange, in the stream thread's
        executor (a slow read must not stall the streams)."""
        await asyncio.get_running_loop().run_in_executor(None, self._read_blocking, sends)

    def _read_blocking(self, sends: list[Send]) -> None:
        """The view's due reads, off the order path, on the blocking guarded exchange."""
        for send in sends:
            try:
                self._guarded(CallKind.READ, send.method)(*send.args, **send.kwargs)
            except errors.SafeguardError as exc:
                # The verdict denies on what stays missing; the schedule goes on regardless.
                logger.warning("{} off the order path failed: {}", send.method, exc)

    def _schedule_parts(self, symbols: Any, every_s: Any) -> tuple[PreTradeGate, list[str], float]:
        """What ``keep_fresh`` needs, checked before anything starts."""
        view = self._rt.view
        if view is None:
            raise errors.ConfigError("this guarded exchange has no view to keep", key="risk")
        listed = _listed_symbols(symbols, getattr(self._raw, "markets", None), "keep_fresh")
        try:
            period = schedule_period(every_s, view.policy.risk.max_market_data_age_s)
        except ValueError as exc:
            raise errors.InvalidInput(str(exc), field="every_s") from None
        return view, listed, period

    def _raw_path(self, name: str) -> Any:
        """``request`` / ``fetch2`` / ``fetch``: reads and cancels through the guard like any
        other, everything else refused (a raw POST is an order the verdict never sees)."""
        read = self._guarded(CallKind.READ, name)
        cancel = self._guarded(CallKind.CANCEL, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            kind = raw_kind(name, args, kwargs)
            if kind is CallKind.READ:
                return read(*args, **kwargs)
            if kind is CallKind.CANCEL:
                return cancel(*args, **kwargs)
            raise errors.RequestBlocked(
                f"{name} is only passed through for GET (a read) and DELETE (a cancel): any "
                "other HTTP method can place or change an order without the pre-trade verdict, "
                "the kill switch and the order journal. Place orders with create_order / "
                "edit_order on the guarded exchange (or use .exchange to bypass the guard "
                "knowingly)"
            )

        call.__name__ = name
        return call

    def _helper(self, name: str) -> Any:
        function = getattr(type(self._raw), name)
        base = _ccxt_default(name)
        if function is not base and not _routes_through_create(function):
            # The exchange's own code (an override, or a method ccxt's base lacks) that does
            # not build its order through create_order / edit_order is not trusted.
            return _blocked(name)
        bound = function.__get__(self)
        return _as_trigger_order(bound) if name in _TRIGGER_HELPERS else bound

    def _guarded(self, kind: CallKind, name: str) -> Any:
        raise NotImplementedError

    async def _stream_engage(self, trips: Sequence[Engage]) -> None:
        """Engage for the trips a stream message caused, on the stream's path."""
        raise NotImplementedError

    # --- shared helpers for the faces ------------------------------------------------------

    def _now(self) -> float:
        return self._rt.clock.time()

    def _woke(self, sleep: Sleep, early: bool) -> Woke:
        """The reply to ``sleep``, built once it is over: the time after it (not before), and
        whether the kill switch now refuses the send it delayed."""
        return Woke(self._rt.clock.time(), early, refusal(self._rt.switch, sleep.permit))

    def _answer(self, send: Send, started: float, value: Any, error: Exception | None) -> Answer:
        """The reply to a send, with the answer's headers (and body) as ccxt kept them."""
        raw = self._raw
        if error is None and send.method == "fetch_leverage_tiers":
            _prime_brackets(raw, value)
        body = response_body(raw) if error is None else None
        return new_answer(
            value=value,
            error=error,
            headers=response_headers(raw),
            started=started,
            now=self._rt.clock.time(),
            body=body,
        )

    def _refuse_early(self, intent: OrderCall) -> None:
        """Refuse before any read when the kill switch already forbids the order: the permit
        around the send stays the authority, this only spares the verdict's reads."""
        refused = refusal(self._rt.switch, order_permit(intent))
        if refused is not None:
            raise refused

    def _intent(
        self,
        symbol: Any,
        type: Any,
        side: Any,
        amount: Any,
        price: Any = None,
        params: Any = None,
        edit_of: Any = None,
        *,
        sending: bool = True,
    ) -> OrderCall:
        intent = parse_call(
            symbol,
            type,
            side,
            amount,
            price,
            params,
            prefix=self._rt.prefix,
            edit_of=edit_of,
            protect=not _IN_TRIGGER_HELPER.get(),
        )
        if sending:
            self._refuse_early(intent)
        return intent

    # --- the steps behind each order method (the faces only drive them) -----------------------

    def _create_steps(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Steps[Any]:
        intent = self._intent(symbol, type, side, amount, price, params)
        return self._rt.core.place(intent, self._now(), protect=not _IN_TRIGGER_HELPER.get())

    def _edit_steps(
        self,
        id: str,
        symbol: str,
        type: str,
        side: str,
        amount: Any = None,
        price: Any = None,
        params: Any = None,
    ) -> Steps[Any]:
        intent = self._intent(symbol, type, side, amount, price, params, edit_of=id)
        return self._rt.core.place(intent, self._now())

    def _batch_steps(self, orders: Any, params: Any = None, *, edits: bool) -> Steps[list[Any]]:
        return self._rt.core.place_all(self._batch(orders, params, edits=edits), self._now())

    def _preview_steps(
        self, symbol: str, type: str, side: str, amount: Any, price: Any = None, params: Any = None
    ) -> Steps[Any]:
        intent = self._intent(symbol, type, side, amount, price, params, sending=False)
        # What create_order would meet first: a preview that says ALLOW while the switch
        # refuses the order would be a lie the bot acts on.
        refused = refusal(self._rt.switch, order_permit(intent))
        why = None if refused is None else (str(refused.code), str(refused))
        return self._rt.core.preview(intent, self._now(), refusal=why)

    def _batch(self, orders: Any, params: Any, *, edits: bool) -> list[OrderCall]:
        """Parse a ``create_orders`` / ``edit_orders`` list up front: one bad entry refuses
        the whole batch before anything is sent."""
        if not isinstance(orders, list) or not orders:
            raise errors.InvalidInput("orders must be a non-empty list", field="orders")
        if params is not None and not isinstance(params, Mapping):
            raise errors.InvalidInput(
                f"params must be a dict, got {params.__class__.__name__}", field="params"
            )
        shared = dict(params or {})
        intents = []
        for index, order in enumerate(orders):
            own = order.get("params") if isinstance(order, Mapping) else None
            if not isinstance(order, Mapping) or not isinstance(own, Mapping | None):
                raise errors.InvalidInput(
                    f"orders[{index}] must be a dict with a dict for params, got {order!r}",
                    field=f"orders[{index}]",
                )
            try:
                intents.append(
                    self._intent(
                        order.get("symbol"),
                        order.get("type"),
                        order.get("side"),
                        order.get("amount"),
                        order.get("price"),
                        {**shared, **(own or {})},
                        edit_of=order.get("id") if edits else None,
                    )
                )
            except errors.InvalidInput as exc:
                raise errors.InvalidInput(
                    f"orders[{index}]: {exc}", field=f"orders[{index}].{exc.field}"
                ) from None
        return intents


def _prime_brackets(raw: Any, tiers: Any) -> None:
    """Give ccxt the leverage brackets the guard just read (``fetch_leverage_tiers``), in
    the shape its ``load_leverage_brackets`` caches them: ccxt's ``fetch_positions`` loads
    them once from the same endpoint otherwise, which read the ladder twice. Only when ccxt
    has none yet (it never reloads them itself) and only from Binance's own rows."""
    options = getattr(raw, "options", None)
    if not isinstance(options, dict) or options.get("leverageBrackets") is not None:
        return
    if not isinstance(tiers, Mapping) or not str(getattr(raw, "id", "")).startswith("binance"):
        return
    brackets: dict[str, list[list[Any]]] = {}
    for symbol, ladder in tiers.items():
        rows = [t.get("info") for t in ladder or () if isinstance(t, Mapping)]
        if not rows or not all(isinstance(r, Mapping) and "maintMarginRatio" in r for r in rows):
            return  # not Binance's bracket rows: let ccxt read its own
        # ccxt's own reading of each row (strings: its position maths is Precise).
        brackets[symbol] = [
            [
                raw.safe_string_2(r, "notionalFloor", "qtyFloor"),
                raw.safe_string(r, "maintMarginRatio"),
            ]
            for r in rows
        ]
    if brackets:
        options["leverageBrackets"] = brackets


def _routes_through_create(function: Any) -> bool:
    # An exchange's own helper is trusted only if it builds the order via create_order/edit_order.
    code = getattr(function, "__code__", None)
    names = set(code.co_names) if code is not None else set()
    return bool(names & {"create_order", "edit_order", "editOrder", "createOrder"}) and not any(
        n.endswith(("PostOrder", "PutOrder", "post_order", "put_order")) for n in names
    )


def _as_trigger_order(helper: Any) -> Any:
    """Run ``helper`` with its create_order calls marked as trigger orders. A context
    variable, so concurrent threads and tasks each see only their own call."""
    if inspect.iscoroutinefunction(helper):

        async def run_async(*args: Any, **kwargs: Any) -> Any:
            token = _IN_TRIGGER_HELPER.set(True)
            try:
                return await helper(*args, **kwargs)
            finally:
                _IN_TRIGGER_HELPER.reset(token)

        return run_async

    def run(*args: Any, **kwargs: Any) -> Any:
        token = _IN_TRIGGER_HELPER.set(True)
        try:
            return helper(*args, **kwargs)
        finally:
            _IN_TRIGGER_HELPER.reset(token)

    return run


def _blocked(name: str) -> Callable[..., Any]:
    def refuse(*_: Any, **__: Any) -> Any:
        raise errors.RequestBlocked(
            f"{name} would place or change orders without the pre-trade verdict and the kill "
            "switch; use create_order / edit_order on the guarded exchange "
            "(or .exchange to bypass the guard knowingly)"
        )

    return refuse


__all__ = [
    "Face",
    "Runtime",
    "SwitchLike",
    "permit",
    "refusal",
    "response_body",
    "response_headers",
]
