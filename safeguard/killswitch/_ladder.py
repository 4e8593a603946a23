"""The ladder: what the kill switch does to the venue when it engages.

Rungs, each switched by :class:`~safeguard._config.KillSwitchConfig`:

1. **Arm the venue's cancel-all timer** (``venue_countdown_s``; HALTED only, as it cancels
   reduce-only orders too), first, so open orders are cancelled by the venue even if this
   process dies half-way down the ladder. ccxt's unified ``cancel_all_orders_after`` where the
   exchange has it; Binance futures through the implicit ``fapiPrivatePostCountdownCancelAll``
   per symbol. A venue without one reports ``not offered``; it is never a failure.
2. **Cancel** (``cancel_all_on_engage``): every open order that could open or add exposure,
   conditional ones (stop entries) included: Binance USD-M keeps stop and take-profit orders on
   its algo-order routes since 2025-12-09, so they are listed and cancelled there too. An order
   that can only reduce a position (reduce-only, or a ``closePosition`` stop) is **kept**:
   cancelling it would leave the position it protects naked while the switch is engaged.
   HALTED cancels a symbol with one ``cancel_all_orders(symbol)`` when none of its orders is
   protective; REDUCING always cancels order by order, because the bot may place reduce-only
   orders beside the ladder.
3. **Flatten** (``flatten_on_engage``, HALTED only): for every open position a reduce-only
   IOC limit order on the other side, its price capped at ``flatten_slippage_cap_pct`` from the
   touch (a sell never below ``bid x (1 - cap)``, a buy never above ``ask x (1 + cap)``, rounded
   to the tick towards the reference). Positions are re-read after each round, up to
   ``flatten_max_attempts`` rounds. Reduce-only means a repeated send can never flip or grow a
   position. A position with no usable price is reported, never sent at market. Once a symbol
   is flat its protective orders are cancelled (``cleanup``); a symbol still open keeps them.

The ladder is written once, as a generator of steps (:func:`ladder_steps`): it yields a
:class:`Call` (a method of the ccxt exchange), :class:`Read` (an attribute) or :class:`Pause`,
and receives the result (or has the exception thrown in). :func:`run_ladder` drives it on a
sync ccxt exchange, :func:`run_ladder_async` on an ``async_support`` one; the planning
functions (:func:`plan_cancels`, :func:`plan_flatten`, :func:`capped_price`) are pure.

Pass the **raw** ccxt exchange, not a guarded one: the switch is already HALTED and would
refuse the ladder's own reduce-only orders.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from safeguard._clock import Clock, SystemClock
from safeguard._config import KillSwitchConfig, RetryConfig
from safeguard._log import logger
from safeguard.killswitch._state import SwitchState, TradingState
from safeguard.risk._book import Side

RungStatus = Literal["done", "failed", "not offered", "skipped"]

#: Implicit per-symbol countdown endpoints, for exchanges without the unified method.
COUNTDOWN_METHODS: Mapping[str, str] = {
    "binanceusdm": "fapiPrivatePostCountdownCancelAll",
    "binancecoinm": "dapiPrivatePostCountdownCancelAll",
}
READ_ATTEMPTS = 3
"""Tries of each read and cancel before the rung reports a failure."""
PAUSE_S = 0.25
"""Pause between flatten rounds (an IOC needs no longer to resolve), and the longest between
tries of one request."""

MAX_HOLD_S = 3 * 24 * 3600.0
"""The longest the ladder waits on its ``pace`` before one request (Binance's longest ban):
past it the request is reported not sent."""
Pace = Callable[[str, tuple[Any, ...], float], float]
"""``pace(method, args, now)``: seconds the request must wait (0: send it now, charged)."""
TICK_SIZE_MODE = 4  # ccxt.TICK_SIZE: market precision is the tick itself, not decimal places
CONDITIONAL_ORDER_EXCHANGES = frozenset({"binanceusdm"})
"""Exchanges that list and cancel conditional orders apart from ordinary ones (Binance USD-M's
algo orders since 2025-12-09): ccxt reaches those routes with ``{"trigger": True}``."""
TRIGGER_PARAMS: Mapping[str, Any] = {"trigger": True}


# --- steps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """Call ``exchange.<method>(*args)``; the driver awaits the result if it is awaitable."""

    method: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Read:
    """Read ``exchange.<name>``."""

    name: str


@dataclass(frozen=True)
class Pause:
    seconds: float


Step = Call | Read | Pause


@dataclass(frozen=True)
class RungOutcome:
    """What one rung did for one symbol (``symbol`` is ``None`` for account-wide steps)."""

    rung: str
    symbol: str | None
    status: RungStatus
    detail: str = ""


@dataclass
class LadderReport:
    state: TradingState
    outcomes: list[RungOutcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing failed (``not offered`` and ``skipped`` are not failures)."""
        return all(o.status != "failed" for o in self.outcomes)

    def add(self, rung: str, symbol: str | None, status: RungStatus, detail: str = "") -> None:
        outcome = RungOutcome(rung, symbol, status, detail)
        self.outcomes.append(outcome)
        log = logger.error if status == "failed" else logger.info
        log("kill ladder {} {}: {} {}", rung, symbol or "(all)", status, detail)


# --- the pure planners -------------------------------------------------------------------


@dataclass(frozen=True)
class OpenOrder:
    id: str
    symbol: str
    reduce_only: bool
    """It can only reduce a position: reduce-only, or a ``closePosition`` stop."""
    conditional: bool = False
    """Listed, and cancelled, on the exchange's conditional-order routes."""


@dataclass(frozen=True)
class Position:
    symbol: str
    side: Literal["long", "short"]
    contracts: float
    mark: float | None = None
    hedged: bool = False
    """A hedge-mode leg (positionSide LONG or SHORT), not a one-way (BOTH) position."""


@dataclass(frozen=True)
class ReduceOnlyOrder:
    symbol: str
    side: Side
    amount: float
    limit_price: float
    reference: float
    hedged: bool = False


@dataclass(frozen=True)
class CancelSymbol:
    symbol: str
    conditional: bool = False


@dataclass(frozen=True)
class CancelOrder:
    symbol: str
    order_id: str
    conditional: bool = False


def open_orders_from_ccxt(raw: object, *, conditional: bool = False) -> list[OpenOrder]:
    """ccxt ``fetch_open_orders`` output as :class:`OpenOrder` values; rejects garbage.
    ``conditional``: the listing came from the conditional-order routes."""
    orders: list[OpenOrder] = []
    for index, item in enumerate(_sequence("open_orders", raw)):
        if not isinstance(item, Mapping):
            raise ValueError(f"open_orders[{index}] must be an order mapping, got {item!r}")
        symbol, order_id = item.get("symbol"), item.get("id")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"open_orders[{index}].symbol must be a string, got {symbol!r}")
        if not isinstance(order_id, str | int) or isinstance(order_id, bool) or order_id == "":
            raise ValueError(f"open_orders[{index}].id must be a string, got {order_id!r}")
        info = item.get("info")
        closes = isinstance(info, Mapping) and info.get("closePosition") in (True, "true")
        reduces = item.get("reduceOnly") is True or closes
        orders.append(OpenOrder(str(order_id), symbol, reduces, conditional))
    return orders


def merge_open_orders(*listings: Iterable[OpenOrder]) -> list[OpenOrder]:
    """One entry per order across listings; a venue that lists a conditional order on both
    routes has it cancelled on the conditional one (the later listing wins)."""
    merged: dict[tuple[str, str], OpenOrder] = {}
    for listing in listings:
        for order in listing:
            merged[(order.symbol, order.id)] = order
    return list(merged.values())


def positions_from_ccxt(raw: object) -> list[Position]:
    """ccxt ``fetch_positions`` output as open :class:`Position` values (flat ones dropped)."""
    positions: list[Position] = []
    for index, item in enumerate(_sequence("positions", raw)):
        if not isinstance(item, Mapping):
            raise ValueError(f"positions[{index}] must be a position mapping, got {item!r}")
        symbol, side = item.get("symbol"), item.get("side")
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"positions[{index}].symbol must be a string, got {symbol!r}")
        contracts = _number(f"positions[{index}].contracts", item.get("contracts", 0) or 0)
        if contracts == 0:
            continue
        if side not in ("long", "short"):
            raise ValueError(f"positions[{index}].side must be long or short, got {side!r}")
        mark = item.get("markPrice")
        mark_price = _number(f"positions[{index}].markPrice", mark) if mark is not None else None
        info = item.get("info")
        leg = info.get("positionSide") if isinstance(info, Mapping) else None
        hedged = item.get("hedged") is True or leg in ("LONG", "SHORT")
        positions.append(Position(symbol, side, abs(contracts), mark_price or None, hedged))
    return positions


def plan_cancels(
    state: TradingState, orders: Iterable[OpenOrder]
) -> list[CancelSymbol | CancelOrder]:
    """Cancels for every order that could add exposure; protective orders are kept.

    HALTED: one cancel-all per symbol and route when none of the symbol's orders is
    protective, else order by order. REDUCING: always order by order (the bot may be placing
    reduce-only orders while the ladder runs; a cancel-all would take them too).
    """
    if state not in (TradingState.HALTED, TradingState.REDUCING):
        return []
    orders = list(orders)
    plan: list[CancelSymbol | CancelOrder] = []
    for symbol in sorted({o.symbol for o in orders}):
        mine = [o for o in orders if o.symbol == symbol]
        if state is TradingState.HALTED and not any(o.reduce_only for o in mine):
            plan += [CancelSymbol(symbol, c) for c in sorted({o.conditional for o in mine})]
        else:
            plan += [CancelOrder(symbol, o.id, o.conditional) for o in mine if not o.reduce_only]
    return plan


def plan_cleanup(
    orders: Iterable[OpenOrder], open_positions: Iterable[Position]
) -> list[CancelOrder]:
    """After a flatten: the protective orders of symbols that are now flat. A symbol still
    holding a position keeps them."""
    still_open = {p.symbol for p in open_positions}
    return [
        CancelOrder(o.symbol, o.id, o.conditional)
        for o in orders
        if o.reduce_only and o.symbol not in still_open
    ]


def capped_price(side: Side, reference: float, cap_pct: float, tick: float | None) -> float:
    """The worst price a closing order may take: ``reference`` moved by ``cap_pct`` against
    us, rounded to ``tick`` towards the reference so rounding never widens the cap."""
    reference = _number("reference", reference)
    cap_pct = _number("cap_pct", cap_pct)
    if reference <= 0:
        raise ValueError(f"reference must be positive, got {reference!r}")
    if not 0 < cap_pct < 100:
        raise ValueError(f"cap_pct must be in (0, 100), got {cap_pct!r}")
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    factor = 1 + cap_pct / 100 if side == "buy" else 1 - cap_pct / 100
    price = Decimal(repr(reference)) * Decimal(repr(factor))
    if tick is not None:
        step = Decimal(repr(_number("tick", tick)))
        if step <= 0:
            raise ValueError(f"tick must be positive, got {tick!r}")
        rounding = ROUND_FLOOR if side == "buy" else ROUND_CEILING
        price = (price / step).to_integral_value(rounding=rounding) * step
    return float(price)


def plan_flatten(
    positions: Iterable[Position],
    quotes: Mapping[str, Mapping[str, Any]],
    *,
    cap_pct: float,
    ticks: Mapping[str, float | None],
) -> tuple[list[ReduceOnlyOrder], dict[str, str]]:
    """Reduce-only orders closing ``positions``, and the symbols that cannot be closed (why).

    The reference is the touch the order would take (bid for a sell, ask for a buy), else the
    ticker's last price, else the position's mark. No reference: no order.
    """
    orders: list[ReduceOnlyOrder] = []
    problems: dict[str, str] = {}
    for position in positions:
        side: Side = "sell" if position.side == "long" else "buy"
        quote = quotes.get(position.symbol, {})
        reference = None
        for candidate in (
            quote.get("bid" if side == "sell" else "ask"),
            quote.get("last"),
            position.mark,
        ):
            if _usable(candidate):
                reference = _number("price", candidate)
                break
        if reference is None:
            problems[position.symbol] = "no usable price to cap a closing order"
            continue
        try:
            limit = capped_price(side, reference, cap_pct, ticks.get(position.symbol))
        except ValueError as exc:
            problems[position.symbol] = str(exc)
            continue
        orders.append(
            ReduceOnlyOrder(
                position.symbol, side, position.contracts, limit, reference, position.hedged
            )
        )
    return orders, problems


# --- the one executor ----------------------------------------------------------------------


def ladder_steps(
    config: KillSwitchConfig, state: SwitchState | TradingState, *, now: float, tag: str = "kill"
) -> Generator[Step, Any, LadderReport]:
    """The whole ladder as steps (see the module docstring). Returns the report.

    ``now`` is the driver's clock reading (epoch seconds) when the ladder starts; it stamps
    the flatten orders' client ids. The steps never read a clock themselves.
    """
    target = state.state if isinstance(state, SwitchState) else TradingState(state)
    report = LadderReport(target)
    if target is TradingState.ACTIVE:
        report.add("ladder", None, "skipped", "the switch is ACTIVE")
        return report
    halted = target is TradingState.HALTED
    flatten = config.flatten_on_engage and halted
    # The venue's timer cancels every order of a symbol, reduce-only ones too: HALTED only.
    countdown = config.venue_countdown_s if halted else None
    options = yield from _get("options")
    if isinstance(options, dict) and isinstance(options.get("fetchOpenOrders"), dict):
        # ccxt refuses an account-wide open-order listing until the (rate) cost is
        # acknowledged; listing every open order is exactly what the ladder needs.
        options["fetchOpenOrders"]["warnWithoutSymbol"] = False
    orders = yield from _list_open_orders(report, Call("fetch_open_orders"), conditional=False)
    if orders is not None and str((yield from _get("id"))) in CONDITIONAL_ORDER_EXCHANGES:
        listing = Call("fetch_open_orders", (None, None, None, dict(TRIGGER_PARAMS)))
        conditional = yield from _list_open_orders(report, listing, conditional=True)
        orders = merge_open_orders(orders, conditional or ())
    positions: list[Position] | None = None
    if flatten or countdown is not None:
        positions = yield from _read_positions(report)
    symbols = sorted({o.symbol for o in orders or ()} | {p.symbol for p in positions or ()})

    if countdown is not None:
        yield from _arm_countdown(report, countdown, symbols)
    if config.cancel_all_on_engage and orders is not None:
        yield from _cancel(report, plan_cancels(target, orders))
    if flatten and positions is not None:
        left = yield from _flatten(report, config, positions, tag, now)
        if config.cancel_all_on_engage and orders is not None and left is not None:
            cleanup = plan_cleanup(orders, left)
            if cleanup:
                yield from _cancel(report, cleanup, rung="cleanup")
    return report


def _list_open_orders(
    report: LadderReport, listing: Call, *, conditional: bool
) -> Generator[Step, Any, list[OpenOrder] | None]:
    kind = "conditional orders" if conditional else "open orders"
    ok, raw = yield from _retried(listing)
    if not ok:
        report.add("cancel", None, "failed", f"could not list {kind}: {raw!r}")
        return None
    try:
        return open_orders_from_ccxt(raw, conditional=conditional)
    except ValueError as exc:
        report.add("cancel", None, "failed", f"unreadable {kind}: {exc}")
        return None


def _retried(step: Call, attempts: int = READ_ATTEMPTS) -> Generator[Step, Any, tuple[bool, Any]]:
    """(True, result) or (False, the last exception). Any failure is tried again: the ladder
    only reads, cancels and sends reduce-only orders, none of which can add exposure. The
    pauses are the one retry schedule's (:meth:`~safeguard._config.RetryConfig.ceiling`)."""
    schedule = _schedule(attempts)
    error: Any = None
    for attempt in range(1, schedule.max_attempts + 1):
        if attempt > 1:
            yield Pause(schedule.ceiling(attempt - 1))
        try:
            return True, (yield step)
        except Exception as exc:
            error = exc
    return False, error


@functools.cache
def _schedule(attempts: int) -> RetryConfig:
    """``attempts`` tries, ``PAUSE_S`` apart (an emergency has no time to back off further)."""
    return RetryConfig(max_attempts=attempts, base_delay_s=PAUSE_S, max_delay_s=PAUSE_S)


def _get(name: str) -> Generator[Step, Any, Any]:
    """An exchange attribute, or ``None`` when the exchange has no such thing."""
    try:
        return (yield Read(name))
    except Exception:
        return None


def _read_positions(report: LadderReport) -> Generator[Step, Any, list[Position] | None]:
    ok, raw = yield from _retried(Call("fetch_positions"))
    if not ok:
        report.add("flatten", None, "failed", f"could not read positions: {raw!r}")
        return None
    try:
        return positions_from_ccxt(raw)
    except ValueError as exc:
        report.add("flatten", None, "failed", f"unreadable positions: {exc}")
        return None


def _arm_countdown(
    report: LadderReport, seconds: float, symbols: Sequence[str]
) -> Generator[Step, Any, None]:
    millis = int(seconds * 1000)
    has = yield from _get("has")
    if isinstance(has, Mapping) and has.get("cancelAllOrdersAfter") is True:
        ok, result = yield from _retried(Call("cancel_all_orders_after", (millis,)))
        report.add("countdown", None, *_countdown_status(ok, result, f"{seconds:g} s"))
        return
    method = COUNTDOWN_METHODS.get(str((yield from _get("id"))))
    if method is None:
        report.add("countdown", None, "not offered", "the exchange has no cancel-all timer")
        return
    for symbol in symbols:
        try:
            market = yield Call("market", (symbol,))
            params = {"symbol": market["id"], "countdownTime": millis}
        except Exception as exc:
            report.add("countdown", symbol, "failed", f"unknown market: {exc!r}")
            continue
        ok, result = yield from _retried(Call(method, (params,)))
        status, detail = _countdown_status(ok, result, f"{seconds:g} s")
        report.add("countdown", symbol, status, detail)
        if status == "not offered":
            return  # the endpoint is missing for every symbol alike


def _countdown_status(ok: bool, result: Any, armed: str) -> tuple[RungStatus, str]:
    if ok:
        return "done", f"armed for {armed}"
    if _not_offered(result):
        return "not offered", f"{type(result).__name__}: {result}"
    return "failed", repr(result)


def _not_offered(error: object) -> bool:
    """A missing method, ccxt's NotSupported, or an endpoint the venue does not know (404)."""
    if isinstance(error, AttributeError | NotImplementedError):
        return True
    names = {cls.__name__ for cls in type(error).__mro__}
    return "NotSupported" in names or " 404 " in f" {error} "


def _cancel(
    report: LadderReport, plan: Sequence[CancelSymbol | CancelOrder], *, rung: str = "cancel"
) -> Generator[Step, Any, None]:
    if not plan:
        report.add(rung, None, "done", "no open orders to cancel")
    for item in plan:
        extra = (dict(TRIGGER_PARAMS),) if item.conditional else ()
        kind = "conditional order" if item.conditional else "order"
        if isinstance(item, CancelSymbol):
            ok, result = yield from _retried(Call("cancel_all_orders", (item.symbol, *extra)))
            detail = f"all open {kind}s"
        else:
            args = (item.order_id, item.symbol, *extra)
            ok, result = yield from _retried(Call("cancel_order", args))
            detail = f"{kind} {item.order_id}"
            if not ok and "OrderNotFound" in {c.__name__ for c in type(result).__mro__}:
                ok, detail = True, f"{kind} {item.order_id} already gone"
        report.add(
            rung,
            item.symbol,
            "done" if ok else "failed",
            detail if ok else f"{detail}: {result!r}",
        )


def _flatten(
    report: LadderReport, config: KillSwitchConfig, positions: list[Position], tag: str, now: float
) -> Generator[Step, Any, list[Position] | None]:
    """Close ``positions``; returns those still open at the end (``None``: unknown)."""
    stamp = _base36(int(now * 1000))
    ticks: dict[str, float | None] = {}
    precision_mode = yield from _get("precisionMode")
    for round_number in range(1, config.flatten_max_attempts + 1):
        if round_number > 1:
            yield Pause(PAUSE_S)
            fresh = yield from _read_positions(report)
            if fresh is None:
                return None
            positions = fresh
        if not positions:
            report.add("flatten", None, "done", f"flat after {round_number - 1} round(s)")
            return []
        quotes: dict[str, Mapping[str, Any]] = {}
        for position in positions:
            ok, ticker = yield from _retried(Call("fetch_ticker", (position.symbol,)))
            quotes[position.symbol] = ticker if ok and isinstance(ticker, Mapping) else {}
            if position.symbol not in ticks:
                ticks[position.symbol] = yield from _tick(position.symbol, precision_mode)
        orders, problems = plan_flatten(
            positions, quotes, cap_pct=config.flatten_slippage_cap_pct, ticks=ticks
        )
        for symbol, problem in problems.items():
            report.add("flatten", symbol, "failed", problem)
        for index, order in enumerate(orders):
            client_id = f"sg-{tag}-{stamp}-{round_number}-{index}"[:36]
            params: dict[str, Any] = {
                "reduceOnly": True,
                "timeInForce": "IOC",
                "clientOrderId": client_id,
            }
            if order.hedged:
                # A hedge-mode leg is closed by naming it: ccxt turns ``hedged`` into the leg's
                # positionSide and drops reduceOnly, which Binance refuses alongside it.
                params["hedged"] = True
            logger.warning(
                "kill ladder flatten round {}: {} {} {} reduce-only IOC at {} (ref {})",
                round_number,
                order.side,
                order.amount,
                order.symbol,
                order.limit_price,
                order.reference,
            )
            try:
                yield Call(
                    "create_order",
                    (order.symbol, "limit", order.side, order.amount, order.limit_price, params),
                )
            except Exception as exc:  # the next round re-reads the position either way
                logger.warning("kill ladder flatten {} failed: {!r}", order.symbol, exc)
        if not orders:
            return positions
    fresh = yield from _read_positions(report)
    if fresh:
        left = ", ".join(f"{p.symbol} {p.side} {p.contracts:g}" for p in fresh)
        report.add(
            "flatten",
            None,
            "failed",
            f"still open after {config.flatten_max_attempts} round(s): {left}",
        )
    elif fresh is not None:
        report.add("flatten", None, "done", f"flat after {config.flatten_max_attempts} round(s)")
    return fresh


def _tick(symbol: str, precision_mode: object) -> Generator[Step, Any, float | None]:
    try:
        market = yield Call("market", (symbol,))
        precision = market["precision"]["price"]
    except Exception:
        return None
    if not _usable(precision):
        return None
    value = float(precision)
    return value if precision_mode == TICK_SIZE_MODE else 10.0**-value


# --- the two drivers -------------------------------------------------------------------------


def _hold(pace: Pace | None, step: Call | Read, now: float, held: float) -> float:
    """Seconds to wait before sending ``step`` (after ``held`` already waited for it)."""
    if pace is None or not isinstance(step, Call):
        return 0.0
    wait = pace(step.method, step.args, now)
    if wait <= 0:
        return 0.0
    if held + wait > MAX_HOLD_S:
        raise RuntimeError(f"{step.method} not sent: the rate budget holds it {wait:.0f}s more")
    if held == 0:
        logger.warning(
            "kill ladder holds {} {:.1f}s: the rate budget (a venue ban, a 429, a full window) "
            "says wait; sending into a ban would lengthen it",
            step.method,
            wait,
        )
    return wait


def _perform(exchange: Any, step: Call | Read) -> Any:
    if isinstance(step, Read):
        return getattr(exchange, step.name)
    return getattr(exchange, step.method)(*step.args)


def run_ladder(
    exchange: Any,
    config: KillSwitchConfig,
    state: SwitchState | TradingState,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Clock | None = None,
    pace: Pace | None = None,
) -> LadderReport:
    """Run the ladder against a sync ccxt exchange. Never raises for a venue failure.
    ``clock`` (the system clock by default) stamps the run and is read before each request
    ``pace`` (the guard's rate budget, :func:`~safeguard.guard._pacing.ladder_pace`) holds back."""
    clock = clock if clock is not None else SystemClock()
    steps = ladder_steps(config, state, now=clock.time())
    step = _resume(steps, None, None)
    while not isinstance(step, LadderReport):
        reply, error = None, None
        if isinstance(step, Pause):
            sleep(step.seconds)
        else:
            try:
                held = 0.0
                while (wait := _hold(pace, step, clock.time(), held)) > 0:
                    sleep(wait)
                    held += wait
                reply = _perform(exchange, step)
            except Exception as exc:
                error = exc
        step = _resume(steps, reply, error)
    return step


async def run_ladder_async(
    exchange: Any,
    config: KillSwitchConfig,
    state: SwitchState | TradingState,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Clock | None = None,
    pace: Pace | None = None,
) -> LadderReport:
    """Run the ladder against an ``async_support`` ccxt exchange (sync methods work too)."""
    clock = clock if clock is not None else SystemClock()
    steps = ladder_steps(config, state, now=clock.time())
    step = _resume(steps, None, None)
    while not isinstance(step, LadderReport):
        reply, error = None, None
        if isinstance(step, Pause):
            await sleep(step.seconds)
        else:
            try:
                held = 0.0
                while (wait := _hold(pace, step, clock.time(), held)) > 0:
                    await sleep(wait)
                    held += wait
                reply = _perform(exchange, step)
                if isinstance(reply, Awaitable):
                    reply = await reply
            except Exception as exc:
                error = exc
        step = _resume(steps, reply, error)
    return step


def _resume(
    steps: Generator[Step, Any, LadderReport], reply: Any, error: BaseException | None
) -> Step | LadderReport:
    """Hand the last step's result (or error) to the ladder; its next step or its report."""
    try:
        return steps.throw(error) if error is not None else steps.send(reply)
    except StopIteration as done:
        report: LadderReport = done.value
        log = logger.info if report.ok else logger.error
        log("kill ladder for {} finished: {}", report.state, "ok" if report.ok else "failures")
        return report


def attach_ladder(
    switch: Any,
    exchange: Any,
    config: KillSwitchConfig | None = None,
    *,
    loop: asyncio.AbstractEventLoop | None = None,
    on_report: Callable[[LadderReport], None] | None = None,
    clock: Clock | None = None,
    pace: Pace | None = None,
) -> Callable[[], None]:
    """Run the ladder whenever ``switch`` engages (here or from another process).

    Sync exchanges run it on a fresh thread; for an ``async_support`` exchange pass the
    ``loop`` it lives on. Each engagement (state and ``since``) runs the ladder once,
    including the one ``switch`` already holds when this is called: the process that engaged
    may have died between saving the state and running its ladder, and a restarted process
    finds the engagement with nothing changing (running it again is safe: the ladder cancels
    only what could add exposure and sends only reduce-only orders). ``on_report`` receives
    each report (alerting, tests). ``clock`` is handed to the runs (the system clock by
    default), and so is ``pace`` (see :func:`run_ladder`). Returns a function that detaches it.
    """
    config = config if config is not None else switch.config
    done: set[tuple[TradingState, float]] = set()
    lock = threading.Lock()

    def on_change(state: SwitchState) -> None:
        key = (state.state, state.since)
        with lock:
            if state.state is TradingState.ACTIVE or key in done:
                return
            done.add(key)
        if loop is not None:
            asyncio.run_coroutine_threadsafe(run_async(state), loop)
        else:
            threading.Thread(
                target=run, args=(state,), name="safeguard-kill-ladder", daemon=True
            ).start()

    def run(state: SwitchState) -> None:
        report(run_ladder(exchange, config, state, clock=clock, pace=pace))

    async def run_async(state: SwitchState) -> None:
        report(await run_ladder_async(exchange, config, state, clock=clock, pace=pace))

    def report(result: LadderReport) -> None:
        if on_report is not None:
            try:
                on_report(result)
            except Exception:
                logger.exception("kill ladder on_report callback failed")

    remove: Callable[[], None] = switch.add_listener(on_change)
    held = getattr(switch, "state", None)  # after add_listener: no change falls between
    if isinstance(held, SwitchState):
        on_change(held)
    return remove


# --- helpers ----------------------------------------------------------------------------------


def _sequence(name: str, raw: object) -> Sequence[Any]:
    if isinstance(raw, str | bytes) or not isinstance(raw, Sequence):
        raise ValueError(f"{name} must be a list, got {type(raw).__name__}")
    return raw


def _number(name: str, value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _usable(value: object) -> bool:
    try:
        number = _number("price", value)
    except ValueError:
        return False
    return number > 0


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


__all__ = [
    "COUNTDOWN_METHODS",
    "MAX_HOLD_S",
    "Call",
    "CancelOrder",
    "CancelSymbol",
    "LadderReport",
    "OpenOrder",
    "Pace",
    "Pause",
    "Position",
    "Read",
    "ReduceOnlyOrder",
    "RungOutcome",
    "Step",
    "attach_ladder",
    "capped_price",
    "ladder_steps",
    "open_orders_from_ccxt",
    "plan_cancels",
    "plan_flatten",
    "positions_from_ccxt",
    "run_ladder",
    "run_ladder_async",
]
