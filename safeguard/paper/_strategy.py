"""Strategies for the paper run: the protocol a user's strategy follows, and a built-in one.

A strategy is any object with an ``on_bar(exchange, bar)`` method. The paper runner calls it
once per bar of simulated time, after the venue has moved on to ``bar.now``. ``exchange`` is a
ccxt ``binanceusdm``-like object: in the guarded run the guarded exchange, in the naive run a
plain ccxt client behind naive retries. Use ccxt's API on it (``fetch_ticker``,
``fetch_positions``, ``create_order``, ``cancel_order``, ...) exactly as on a real venue; the
same code then runs against Binance unchanged.

Whatever ``on_bar`` raises is recorded in the run's journal and the run goes on with the next
bar, as a bot's main loop would. A strategy that wants to react to a denial catches
``safeguard._errors.SafeguardError`` (guarded run) and ``ccxt.BaseError`` (either run).

A strategy is made by a *factory*: a callable taking the run's symbols (ccxt unified names,
``"BTC/USDT:USDT"``) and returning a fresh strategy, because each of the two runs needs its own
state. A class whose ``__init__`` takes ``symbols`` is a factory::

    class Buyer:
        def __init__(self, symbols):
            self.symbols = symbols

        def on_bar(self, exchange, bar):
            if bar.index == 10:
                exchange.create_order(self.symbols[0], "market", "buy", 0.01)

``safeguard paper --strategy mymodule:Buyer`` runs it (``mymodule`` alone looks for a
``Strategy`` attribute).

To declare the stop that will protect a new position, an entry carries
``params={"stopLoss": {"triggerPrice": stop}}``: the guard's pre-trade verdict prices that stop
against the liquidation price. The paper venue's clients accept the key and send the entry
without it; the protection itself is the separate reduce-only stop order the strategy places
once the entry has filled (``TrendFollower`` shows the pattern).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable


@dataclass(frozen=True, slots=True)
class Bar:
    """One step of the paper run: the ``index``-th bar, at ``now`` (epoch seconds, simulated)."""

    index: int
    now: float
    symbols: tuple[str, ...]


@runtime_checkable
class Strategy(Protocol):
    """What the paper runner calls on every bar."""

    def on_bar(self, exchange: Any, bar: Bar) -> None: ...


@runtime_checkable
class StreamStrategy(Protocol):
    """A strategy written on ``watch_*`` (ccxt.pro), the way real bots are written.

    ``watch(exchange)`` runs the strategy's watch loops until it is cancelled (the runner
    starts it once, before the first bar, and cancels it after the last); ``on_bar`` is a
    coroutine, called once per bar after the venue moved on to ``bar.now`` and that moment's
    messages reached the watches, deciding on what the watches last said. ``exchange`` is
    async: in the guarded run a guarded ``ccxt.pro.binanceusdm`` whose view is fed by these
    same watches, in the naive run plain ccxt.pro behind naive retries. The runner tells one
    from the other by ``on_bar`` being a coroutine function.
    """

    async def watch(self, exchange: Any) -> None: ...

    async def on_bar(self, exchange: Any, bar: Bar) -> None: ...


StrategyFactory = Callable[[Sequence[str]], Strategy | StreamStrategy]
"""Builds a fresh strategy for one run from the run's symbols."""


@dataclass(slots=True)
class _Leg:
    """What the trend follower remembers about one symbol between bars."""

    fast: float | None = None
    slow: float | None = None
    seen: int = 0
    units: int = 0
    last_add: float | None = None
    stop: float | None = None
    stop_id: str | None = None
    stop_amount: float = 0.0


@dataclass
class TrendFollower:
    """A leveraged trend follower that pyramids into a trend and trails a stop.

    On each bar, per symbol: read the index price (the spot basket the venue's mark tracks, so
    a wick on this venue alone does not flip the trend), update a fast and a slow exponential
    moving average, and once both are warm:

    * the fast average ``band`` above the slow one means up-trend, below means down-trend;
    * a position against the trend is closed (reduce-only market order, stop cancelled);
    * with the trend, a unit is added when flat or when the price has moved ``add_step`` in the
      trend's favour since the last add, up to ``max_units``; a unit is ``unit_leverage`` times
      the account's equity in notional, shared equally among the symbols;
    * the stop trails ``stop_distance`` behind the price and is re-placed (one reduce-only
      stop-market order covering the whole position) whenever the position or the stop moves.

    The stop is a wide catastrophe stop; the trend exit does the everyday work. Pyramiding is
    what makes it dangerous: each add brings the liquidation price closer while the stop stays
    ``stop_distance`` away, until the stop sits beyond liquidation (with the defaults: the
    second unit, once maintenance margin rates rise). The guard's verdict denies that add
    (``STOP_BEYOND_LIQUIDATION``); a plain client sends it, and a wick then liquidates the
    position before its stop can fire.
    """

    symbols: Sequence[str]
    fast_bars: int = 10
    slow_bars: int = 40
    band: float = 0.001
    unit_leverage: float = 7.5
    max_units: int = 2
    add_step: float = 0.005
    stop_distance: float = 0.06
    leverage: int = 15
    _legs: dict[str, _Leg] = field(init=False, default_factory=dict)
    _ready: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        _check_settings(
            self, ("fast_bars", "slow_bars", "max_units", "leverage"),
            ("band", "unit_leverage", "add_step", "stop_distance"),
        )  # fmt: skip
        self.symbols = tuple(self.symbols)
        self._legs = {symbol: _Leg() for symbol in self.symbols}

    def on_bar(self, exchange: Any, bar: Bar) -> None:
        if not self._ready:
            exchange.load_markets()
            for symbol in self.symbols:
                exchange.set_leverage(self.leverage, symbol)
            self._ready = True
        for symbol in self.symbols:
            self._trade(exchange, symbol)

    # --- one symbol ---------------------------------------------------------------------------

    def _trade(self, exchange: Any, symbol: str) -> None:
        leg = self._legs[symbol]
        price = _index_price(exchange.fetch_funding_rate(symbol))
        fast = leg.fast = _ema(leg.fast, price, self.fast_bars)
        slow = leg.slow = _ema(leg.slow, price, self.slow_bars)
        leg.seen += 1
        if leg.seen < self.slow_bars:
            return
        trend = 0
        if fast > slow * (1 + self.band):
            trend = 1
        elif fast < slow * (1 - self.band):
            trend = -1
        held = _signed_contracts(exchange.fetch_positions([symbol]), symbol)
        if not held and leg.units:
            self._forget(exchange, symbol, leg)  # stopped out (or liquidated) since last bar
        if held and (trend == 0 or (held > 0) != (trend > 0)):
            self._close(exchange, symbol, leg, held)
            return
        if trend == 0:
            return
        if held and leg.stop_id is None:
            leg.stop = None  # a stop that failed to place earlier: place one now
        if self._wants_unit(leg, held, trend, price):
            held = self._add_unit(exchange, symbol, leg, trend, price) or held
        self._trail(exchange, symbol, leg, held, price)

    def _wants_unit(self, leg: _Leg, held: float, trend: int, price: float) -> bool:
        if not held:
            return True
        if leg.last_add is None or leg.units >= self.max_units:
            return False
        return (price - leg.last_add) / leg.last_add * trend >= self.add_step

    def _add_unit(
        self, exchange: Any, symbol: str, leg: _Leg, trend: int, price: float
    ) -> float | None:
        equity = _equity(exchange.fetch_balance())
        # Each symbol gets its share of the equity, so more markets never mean more leverage.
        notional = self.unit_leverage * equity / len(self.symbols)
        amount = float(exchange.amount_to_precision(symbol, notional / price))
        if amount <= 0:
            return None
        side = "buy" if trend > 0 else "sell"
        stop = self._stop_for(exchange, symbol, price, trend)
        try:
            exchange.create_order(
                symbol, "market", side, amount, None, {"stopLoss": {"triggerPrice": stop}}
            )
        except Exception:
            if not leg.units:
                raise
            # A refused add ends the pyramid for this trend; the stop still gets trailed.
            leg.units = self.max_units
            return None
        leg.units += 1
        leg.last_add = price
        return _signed_contracts(exchange.fetch_positions([symbol]), symbol)

    def _stop_for(self, exchange: Any, symbol: str, price: float, trend: int) -> float:
        raw = price * (1 - self.stop_distance * trend)
        return float(exchange.price_to_precision(symbol, raw))

    def _trail(self, exchange: Any, symbol: str, leg: _Leg, held: float, price: float) -> None:
        if not held:
            return
        trend = 1 if held > 0 else -1
        wanted = self._stop_for(exchange, symbol, price, trend)
        if leg.stop is not None:
            # A stop only ever tightens; loosening it would undo what the trend gave.
            wanted = max(wanted, leg.stop) if trend > 0 else min(wanted, leg.stop)
        if wanted == leg.stop and abs(held) == leg.stop_amount and leg.stop_id is not None:
            return
        # The new stop goes in before the old one comes out: if placing it fails, the position
        # keeps the stop it had rather than none.
        replaced = leg.stop_id
        order = exchange.create_order(
            symbol,
            "market",
            "sell" if trend > 0 else "buy",
            abs(held),
            None,
            {"stopLossPrice": wanted, "reduceOnly": True},
        )
        leg.stop, leg.stop_id, leg.stop_amount = wanted, str(order["id"]), abs(held)
        if replaced is not None:
            with contextlib.suppress(Exception):
                exchange.cancel_order(replaced, symbol, {"trigger": True})

    def _cancel_stop(self, exchange: Any, symbol: str, leg: _Leg) -> None:
        if leg.stop_id is not None:
            stop_id, leg.stop_id = leg.stop_id, None
            # Already fired or gone: either way it protects nothing any more.
            with contextlib.suppress(Exception):
                exchange.cancel_order(stop_id, symbol, {"trigger": True})

    def _close(self, exchange: Any, symbol: str, leg: _Leg, held: float) -> None:
        exchange.create_order(
            symbol, "market", "sell" if held > 0 else "buy", abs(held), None, {"reduceOnly": True}
        )
        self._forget(exchange, symbol, leg)

    def _forget(self, exchange: Any, symbol: str, leg: _Leg) -> None:
        self._cancel_stop(exchange, symbol, leg)
        leg.last_add = leg.stop = None
        leg.stop_amount, leg.units = 0.0, 0


@dataclass(slots=True)
class _Watched:
    """What a stream strategy's watches last said about one symbol, and its own position."""

    last: float | None = None
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None
    fast: float | None = None
    slow: float | None = None
    seen: int = 0
    held: float = 0.0
    stop_id: str | None = None


@dataclass
class StreamTrend:
    """A trend follower written on ``watch_*``: the built-in strategy of ``safeguard paper
    --streams``.

    Its watches: each symbol's ticker (the signal: the last trade price), order book (no entry
    into an empty side) and mark price (where its stop goes), and its own orders (a stop that
    filled means the position is gone). On each bar (the runner has delivered the bar's
    messages to the watches first): a fast and a slow exponential average of the last price; the
    fast one ``band`` above (below) the slow one goes long (short) ``notional`` USDT (the entry
    declares its stop, then a reduce-only stop-market order ``stop_distance`` from the mark
    protects it); the averages crossing back closes the position and cancels its stop. Only
    orders go over REST:
    what it knows of the market comes from its streams, as in a real ccxt.pro bot.
    """

    symbols: Sequence[str]
    fast_bars: int = 5
    slow_bars: int = 20
    band: float = 0.0005
    notional: float = 2_000.0
    stop_distance: float = 0.03
    _watched: dict[str, _Watched] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        _check_settings(self, ("fast_bars", "slow_bars"), ("band", "notional", "stop_distance"))
        self.symbols = tuple(self.symbols)
        self._watched = {symbol: _Watched() for symbol in self.symbols}

    # --- the watches --------------------------------------------------------------------------

    async def watch(self, exchange: Any) -> None:
        loops = [self._keep(exchange.watch_orders, None, self._on_orders)]
        for symbol in self.symbols:
            loops.append(self._keep(exchange.watch_ticker, symbol, self._on_ticker))
            loops.append(self._keep(exchange.watch_order_book, symbol, self._on_book))
            loops.append(self._keep(exchange.watch_mark_price, symbol, self._on_mark))
        await asyncio.gather(*loops)

    @staticmethod
    async def _keep(
        method: Callable[..., Any], symbol: str | None, apply: Callable[[Any], None]
    ) -> None:
        while True:
            try:
                apply(await (method(symbol) if symbol is not None else method()))
            except asyncio.CancelledError:
                raise
            except Exception:  # a dropped stream: a bot watches again (the next turn)
                await asyncio.sleep(0)

    def _on_ticker(self, ticker: Any) -> None:
        watched = self._watched.get(ticker.get("symbol"))
        if watched is not None and ticker.get("last") is not None:
            watched.last = float(ticker["last"])

    def _on_book(self, book: Any) -> None:
        watched = self._watched.get(book.get("symbol"))
        if watched is not None:
            bids, asks = book.get("bids") or [], book.get("asks") or []
            watched.bid = float(bids[0][0]) if bids else None
            watched.ask = float(asks[0][0]) if asks else None

    def _on_mark(self, mark: Any) -> None:
        watched = self._watched.get(mark.get("symbol"))
        if watched is not None and mark.get("markPrice") is not None:
            watched.mark = float(mark["markPrice"])

    def _on_orders(self, orders: Any) -> None:
        for order in orders:
            watched = self._watched.get(order.get("symbol"))
            if (
                watched is not None
                and watched.stop_id is not None
                and str(order.get("id")) == watched.stop_id
                and order.get("status") == "closed"
            ):
                watched.held, watched.stop_id = 0.0, None  # the stop fired: the position is gone

    # --- the bar ------------------------------------------------------------------------------

    async def on_bar(self, exchange: Any, bar: Bar) -> None:
        for symbol, watched in self._watched.items():
            await self._trade(exchange, symbol, watched)

    async def _trade(self, exchange: Any, symbol: str, watched: _Watched) -> None:
        if watched.last is None or watched.mark is None:
            return
        fast = watched.fast = _ema(watched.fast, watched.last, self.fast_bars)
        slow = watched.slow = _ema(watched.slow, watched.last, self.slow_bars)
        watched.seen += 1
        if watched.seen < self.slow_bars:
            return
        trend = 1 if fast > slow * (1 + self.band) else -1 if fast < slow * (1 - self.band) else 0
        if watched.held and (watched.held > 0) != (fast > slow):
            await self._close(exchange, symbol, watched)
            return
        if watched.held or not trend or watched.bid is None or watched.ask is None:
            return  # flat with the trend, or no book to take liquidity from
        amount = float(exchange.amount_to_precision(symbol, self.notional / watched.mark))
        raw_stop = watched.mark * (1 - self.stop_distance * trend)
        stop = float(exchange.price_to_precision(symbol, raw_stop))
        entry, exit_side = ("buy", "sell") if trend > 0 else ("sell", "buy")
        order = await exchange.create_order(
            symbol, "market", entry, amount, None, {"stopLoss": {"triggerPrice": stop}}
        )
        filled = float(order.get("filled") or amount)
        watched.held = filled * trend
        placed = await exchange.create_order(
            symbol, "market", exit_side, filled, None, {"stopLossPrice": stop, "reduceOnly": True}
        )
        watched.stop_id = str(placed["id"])

    @staticmethod
    async def _close(exchange: Any, symbol: str, watched: _Watched) -> None:
        held, watched.held = watched.held, 0.0
        side = "sell" if held > 0 else "buy"
        await exchange.create_order(symbol, "market", side, abs(held), None, {"reduceOnly": True})
        stop_id, watched.stop_id = watched.stop_id, None
        if stop_id is not None:
            with contextlib.suppress(Exception):  # fired or gone: it protects nothing now
                await exchange.cancel_order(stop_id, symbol, {"trigger": True})


def _check_settings(strategy: Any, whole: tuple[str, ...], positive: tuple[str, ...]) -> None:
    """A trend strategy's settings, checked as one: symbols a non-empty list, ``whole`` ones
    positive integers (``fast_bars`` below ``slow_bars``), ``positive`` ones finite numbers
    above zero (``stop_distance`` below 1)."""
    if isinstance(strategy.symbols, str) or not strategy.symbols:
        raise ValueError("symbols must be a non-empty list of market symbols")
    for name in whole:
        value = getattr(strategy, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if strategy.fast_bars >= strategy.slow_bars:
        raise ValueError(f"fast_bars ({strategy.fast_bars}) must be below slow_bars")
    for name in positive:
        value = getattr(strategy, name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    if strategy.stop_distance >= 1:
        raise ValueError(f"stop_distance must be below 1, got {strategy.stop_distance!r}")


def _ema(previous: float | None, value: float, bars: int) -> float:
    if previous is None:
        return value
    alpha = 2.0 / (bars + 1)
    return previous + alpha * (value - previous)


def _index_price(funding: Any) -> float:
    """The index price from ccxt's ``fetch_funding_rate`` (Binance's premium index)."""
    value = funding.get("indexPrice") if isinstance(funding, Mapping) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"fetch_funding_rate gave no usable indexPrice: {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"fetch_funding_rate gave no usable indexPrice: {value!r}")
    return float(value)


def _signed_contracts(positions: Any, symbol: str) -> float:
    """The position in ``symbol`` as a signed amount (long > 0), from ccxt's ``fetch_positions``."""
    total = 0.0
    for position in positions or ():
        if not isinstance(position, Mapping) or position.get("symbol") != symbol:
            continue
        contracts = float(position.get("contracts") or 0.0)
        total += -contracts if position.get("side") == "short" else contracts
    return total


def _equity(balance: Any) -> float:
    """The account's equity in USDT from ccxt's ``fetch_balance`` (wallet plus unrealised)."""
    usdt = balance.get("USDT") if isinstance(balance, Mapping) else None
    total = usdt.get("total") if isinstance(usdt, Mapping) else None
    if total is None or not math.isfinite(float(total)) or float(total) <= 0:
        raise ValueError(f"fetch_balance gave no usable USDT equity: {total!r}")
    return float(total)


def load_factory(spec: str) -> StrategyFactory:
    """The factory named by ``MODULE[:callable]`` (``callable`` defaults to ``Strategy``).

    ``MODULE`` is an importable module name or a path to a ``.py`` file. A ``ValueError`` names
    what is missing; the module's own import errors propagate as they are.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("strategy must look like MODULE[:callable]")
    module_name, _, attribute = spec.strip().partition(":")
    attribute = attribute or "Strategy"
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise ValueError(f"strategy file not found: {path}")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise ValueError(f"strategy file cannot be imported: {path}")
        module = importlib.util.module_from_spec(loader_spec)
        loader_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ValueError(f"strategy {spec!r}: {module_name} has no callable {attribute!r}")
    return cast(StrategyFactory, factory)


__all__ = [
    "Bar",
    "Strategy",
    "StrategyFactory",
    "StreamStrategy",
    "StreamTrend",
    "TrendFollower",
    "load_factory",
]
