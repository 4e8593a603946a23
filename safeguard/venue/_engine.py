"""The simulated exchange: the markets, their time, and the one object every caller talks to.

:class:`Venue` is the engine behind the mock Binance USD-M venue. It never sleeps and never does
I/O: time comes from a :class:`~safeguard._clock.Clock`. With a
:class:`~safeguard._clock.ManualClock` the caller drives time (``advance(3600)`` runs an hour of
market in fixed ``step_s`` steps); with a wall clock, transports call :meth:`Venue.sync` before
each request and the market catches up lazily. Steps sit on a fixed grid from the start time, so
the same seed and the same total time give the same market however ``advance`` was chunked.

Each step moves every symbol's prices, re-centres and refills its book, fills resting orders
the market traded through, fires stops (on the mark or the last price, per ``workingType``),
pays funding at the interval boundaries and liquidates accounts whose equity at the mark fell to
their tiered maintenance requirement.

Accounts trade against the simulated market makers and against each other's resting orders
(price-time priority, self-trade prevention ``EXPIRE_TAKER``: see :mod:`._matching`). A resting
order also fills when the market makers' book trades through its price.

:class:`Venue` is a facade over collaborators that each own their share of the state: the
:class:`~._timeline.Timeline` (the time of record, the event log, the listeners), the
:class:`~._ledger.Ledger` (accounts, settings, free margin), :class:`~._trading.Trading` (orders,
matching, settlement, stops), :class:`~._funding.Funding`, the
:class:`~._liquidator.Liquidator` (partial liquidation, take-overs, ADL, the insurance fund) and
:class:`~._statements.Statements` (what an account is shown). The venue itself keeps the markets
(prices, books, the published data), moves time, and turns a caller's keys into accounts and
markets before handing the call on.

Every method that takes outside input checks all of it before changing anything and answers a
bad argument with :class:`~safeguard.venue._errors.VenueReject` carrying Binance's code; a reject
leaves the venue exactly as it was. The logic is single-threaded; ``lock`` (re-entrant) is
taken by every public method and by transports around each request (the collaborators take no
lock of their own). A collaborator's parameter that a caller's value reaches unchecked is
annotated ``Any``, as the engine's own helpers' are: the compiled copy
(``tools/venue_mypyc.py``) opens only :class:`Venue`'s public methods to any argument, and a
narrower annotation further in would turn Binance's reject into a ``TypeError`` there.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, Literal

from safeguard._clock import Clock, ManualClock
from safeguard.risk._tiers import TierTable
from safeguard.venue import _candles as candles
from safeguard.venue import _views as views
from safeguard.venue._accounts import Account
from safeguard.venue._book import SimBook
from safeguard.venue._config import Crowd, VenueConfig
from safeguard.venue._errors import VenueReject, illegal
from safeguard.venue._events import Liquidation, MarketStepped, VenueEvent
from safeguard.venue._funding import Funding, funding_rate, next_funding_time
from safeguard.venue._ledger import Ledger
from safeguard.venue._liquidator import Liquidator
from safeguard.venue._markets import DEFAULT_MARKETS, MONEY_SCALE, MarketSpec
from safeguard.venue._orders import parse_fields, parse_order
from safeguard.venue._prices import IndexProcess, PriceFeed, RegimeSpec, ReplaySeries
from safeguard.venue._state import MarketState
from safeguard.venue._statements import Statements
from safeguard.venue._timeline import Listener, Timeline
from safeguard.venue._trading import Trading

FeedFreeze = Literal["prices", "timestamps", "stale_prices"]
_FREEZE_MODES = ("prices", "timestamps", "stale_prices")
_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


class Venue:
    """A simulated linear-perpetuals exchange speaking Binance USD-M semantics."""

    def __init__(
        self,
        config: VenueConfig | None = None,
        *,
        clock: Clock | None = None,
        markets: Mapping[str, MarketSpec] | None = None,
    ) -> None:
        self.config = config if config is not None else VenueConfig()
        self.clock: Clock = clock if clock is not None else ManualClock()
        self.lock = threading.RLock()
        catalogue = markets if markets is not None else DEFAULT_MARKETS
        cfg = self.config
        unknown = [s for s in cfg.symbols if s not in catalogue]
        if unknown:
            raise ValueError(f"symbols: no market spec for {', '.join(unknown)}")
        self._start = self.clock.time()
        self._synced_to = self._start
        """The clock's time at the last :meth:`sync` (when listeners last heard time move)."""
        self._specs: dict[str, MarketSpec] = {}
        self.markets: Mapping[str, MarketSpec] = MappingProxyType(self._specs)
        self._m: dict[str, MarketState] = {}
        # Only with a correlation: the default venue's draws stay exactly what they were.
        self._market_factor = (
            random.Random(f"{cfg.seed}:market-factor") if cfg.index_correlation > 0 else None
        )
        self._initial_index: dict[str, float] = {}
        regimes = tuple(RegimeSpec(r.name, r.annual_vol, r.mean_duration_s) for r in cfg.regimes)
        for symbol in cfg.symbols:
            spec = catalogue[symbol]
            if cfg.funding_interval_s is not None:
                spec = _replace(spec, funding_interval_s=cfg.funding_interval_s)
            if cfg.funding_cap is not None:
                spec = _replace(spec, funding_cap=cfg.funding_cap)
            self._specs[symbol] = spec
            self._m[symbol] = self._new_market(spec, regimes)
        for spike in cfg.spikes:
            self._m[spike.symbol].feed.schedule_spike(
                self._start + spike.at_s, spike.pct, spike.duration_s
            )
        self._history: dict[tuple[str, int], dict[candles.Kind, list[candles.Bar]]] = {}

        # The collaborators, each owning its share of the venue's state; every public method
        # routes to one of them under the lock, and each step drives them in turn.
        self._timeline = Timeline(self.clock, self._start)
        self.events: list[VenueEvent] = self._timeline.events
        """Every event, in the order it happened."""
        self._ledger = Ledger(
            self._m,
            self._timeline,
            default_leverage=cfg.default_leverage,
            default_margin_type=cfg.default_margin_type,
        )
        for spec in self._specs.values():
            self._ledger.refresh_default(spec)
        self._accounts = self._ledger.accounts  # read directly on the order path's hits
        self._account = self._ledger.get  # a key to its account, or Binance's -2015
        self._trading = Trading(
            self._ledger,
            self._m,
            self._timeline,
            max_open_orders=cfg.max_open_orders,
            order_history=cfg.order_history,
        )
        self._funding = Funding(self._ledger, self._timeline)
        self._liquidator = Liquidator(
            cfg,
            self._ledger,
            self._m,
            self._timeline,
            cancel_open=self._trading.cancel_open,
        )
        self._statements = Statements(self._ledger, self._m, self._timeline)
        for crowd in cfg.crowd:
            self.add_crowd(crowd)

    def _new_market(self, spec: MarketSpec, regimes: tuple[RegimeSpec, ...]) -> MarketState:
        cfg = self.config
        seed = cfg.seed
        symbol = spec.symbol
        replay_path = cfg.replay.get(symbol)
        replay = None
        if replay_path is not None:
            try:
                replay = ReplaySeries.from_csv(replay_path)
            except OSError as exc:
                raise ValueError(f"replay[{symbol}]: cannot read {replay_path}: {exc}") from exc
        process = (
            None
            if replay is not None
            else IndexProcess(
                spec.initial_price,
                random.Random(f"{seed}:{symbol}:index"),
                regimes,
                jumps_per_day=cfg.jumps_per_day,
                jump_sigma=cfg.jump_sigma,
            )
        )
        feed = PriceFeed(
            index=process,
            replay=replay,
            rng=random.Random(f"{seed}:{symbol}:premium"),
            mark_window_s=cfg.mark_window_s,
            premium_mean=cfg.premium_mean,
            premium_sd=cfg.premium_sd,
            premium_reversion_s=cfg.premium_reversion_s,
        )
        feed.impact_half_life_s = cfg.book.impact_half_life_s
        if process is not None:
            process.market_loading = math.sqrt(cfg.index_correlation)
        self._initial_index[symbol] = feed.index
        price = feed.contract
        book_cfg = cfg.book
        book = SimBook(
            mid_ticks=price / spec.tick_size,
            levels=book_cfg.levels,
            gap_ticks=max(1, round(price * book_cfg.gap_bps / 10_000 / spec.tick_size)),
            spread_ticks=book_cfg.spread_ticks,
            touch_qty_steps=book_cfg.touch_notional * book_cfg.thinness / price / spec.step_size,
            growth=book_cfg.growth,
            half_life_s=book_cfg.half_life_s,
            rng=random.Random(f"{seed}:{symbol}:book"),
            now=self._start,
        )
        market = MarketState(
            spec, feed, book, trade_history=cfg.trade_history, kline_minutes=cfg.kline_minutes
        )
        # The run's first minute exists before the first step: a strategy's first tick sees it.
        market.candle(self._start, market.last, 0)
        market.record_prices(self._start)
        market.next_funding = next_funding_time(self._start, spec.funding_interval_s)
        return market

    # --- time -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move a :class:`ManualClock` forward by ``seconds`` and simulate up to it."""
        advance = getattr(self.clock, "advance", None)
        if not callable(advance):
            raise TypeError("advance() needs a ManualClock; with wall time call sync()")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f"seconds must be a number, got {seconds!r}")
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
        with self.lock:
            advance(seconds)
            self.sync()

    def sync(self) -> None:
        """Simulate every step up to ``clock.time()``."""
        with self.lock:
            now = self.clock.time()
            step = self.config.step_s
            start = self._start
            timeline = self._timeline
            done = round((timeline.now - start) / step)
            due = math.floor((now - start) / step + 1e-9)
            # A wall-clock venue that sat idle longer than max_catch_up_s skips the excess
            # rather than stalling one request for minutes; prices resume where they were.
            # Simulated time (a clock the caller advances) never skips: every funding time,
            # stop and liquidation in the advance happens.
            if not callable(getattr(self.clock, "advance", None)):
                done = max(done, due - math.floor(self.config.max_catch_up_s / step))
            timeline.stepping = True
            try:
                for k in range(done + 1, due + 1):
                    self._step(start + k * step, step)
            finally:
                timeline.stepping = False
            # Listeners hear time move, not only steps: the streams' periods run on the
            # venue's clock (the mark each second, klines each 250 ms) finer than a step, and
            # in process nothing else publishes what fell due until a socket's idle poll.
            moved = now > self._synced_to
            self._synced_to = max(self._synced_to, now)
            if (due > done or moved) and timeline.listeners:
                timeline.notify(MarketStepped(now))

    def _step(self, t: float, dt: float) -> None:
        self._timeline.now = t
        offset = t - self._start
        if self._market_factor is not None:
            # One market-wide draw per step, shared by every index process (a common factor).
            common = self._market_factor.gauss(0.0, 1.0)
            for m in self._m.values():
                m.feed.market_shock(common)
        for m in self._m.values():
            m.step(t, offset, dt)
            if m.bids or m.asks:
                self._trading.fill_resting(m, t)
            if m.stops:
                self._trading.trigger_stops(m, t)
            if t >= m.next_funding:
                self._funding.settle(m, t)
        for account in self._accounts.values():
            if account.positions:
                self._liquidator.liquidate(account, t)

    # --- listeners --------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(notice)`` for every event and notice from now on, as it happens.

        Listeners run inside the engine, under its lock: they must be quick and must not
        change the venue. Notices (:class:`~._events.OrderUpdate`,
        :class:`~._events.AccountChanged`, ...) are only built while at least one listener is
        registered.
        """
        with self.lock:
            self._timeline.listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self.lock:
            listeners = self._timeline.listeners
            if listener in listeners:
                listeners.remove(listener)

    # --- accounts ---------------------------------------------------------------------------

    def create_account(
        self, api_key: str, secret: str, *, wallet: float = 10_000.0, asset: str = "USDT"
    ) -> None:
        """Open an account with ``wallet`` of ``asset`` (USDT, the only margin asset)."""
        for name, value in (("api_key", api_key), ("secret", secret)):
            if not isinstance(value, str) or not value or not value.isprintable():
                raise ValueError(f"{name} must be a non-empty printable string")
        if isinstance(wallet, bool) or not isinstance(wallet, int | float):
            raise ValueError(f"wallet must be a number, got {wallet!r}")
        if not (math.isfinite(wallet) and wallet >= 0):
            raise ValueError(f"wallet must be a finite number >= 0, got {wallet!r}")
        if asset != "USDT":
            raise ValueError(f"asset must be USDT (the venue's margin asset), got {asset!r}")
        with self.lock:
            self._ledger.open(api_key, secret, wallet, asset)

    def secret_for(self, api_key: str) -> str | None:
        with self.lock:
            account = self._accounts.get(api_key) if isinstance(api_key, str) else None
            return account.secret if account is not None else None

    # --- market data ------------------------------------------------------------------------

    def _market(self, symbol: Any) -> MarketState:
        market = self._m.get(symbol) if isinstance(symbol, str) else None
        if market is None:
            raise VenueReject(-1121, "Invalid symbol.")
        return market

    def server_time(self) -> int:
        return int(self.clock.time() * 1000)

    def ticker_24h(self, symbol: str) -> dict[str, Any]:
        with self.lock:
            m = self._market(symbol)
            return views.ticker_24h(
                m.spec,
                last=m.shown_prices()[2],
                last_qty=m.last_qty,
                candles=self._last_day(m),
                trades=m.trades,
                now_ms=m.shown_ms(self._timeline.ms()),
            )

    def _last_day(self, m: MarketState) -> list[list[float]]:
        first = int(self._timeline.time() // 60) - 24 * 60
        return [c for c in m.candles if c[0] >= first]

    def klines(
        self,
        symbol: str,
        *,
        kind: candles.Kind = "contract",
        interval: str,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[list[Any]]:
        """Binance's kline rows for ``symbol``: seeded history, then the run's own minutes."""
        with self.lock:
            m = self._market(symbol)
            interval_s = candles.INTERVALS.get(interval) if isinstance(interval, str) else None
            if interval_s is None:
                raise VenueReject(-1120, "Invalid interval.")
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1500:
                raise illegal("limit")
            first_live = candles.bar_open(self._start, interval_s)
            now = self._timeline.time()
            live_rows = m.candles if kind == "contract" else m.price_minutes
            live = candles.aggregate(
                live_rows, kind, interval_s, first_live, candles.bar_open(now, interval_s)
            )
            past = self._history_bars(m, interval_s, first_live)[kind]
            start_s = None if start_ms is None else start_ms / 1000
            end_s = None if end_ms is None else end_ms / 1000
            bars = candles.select([*past, *live], start_s, end_s, limit)
            return candles.to_binance(bars, kind, interval_s, m.spec)

    def _history_bars(
        self, m: MarketState, interval_s: int, end_s: int
    ) -> dict[candles.Kind, list[candles.Bar]]:
        key = (m.spec.symbol, interval_s)
        cached = self._history.get(key)
        if cached is None:
            cfg = self.config
            cached = self._history[key] = candles.history(
                key=f"{cfg.seed}:{m.spec.symbol}",
                interval_s=interval_s,
                end_s=end_s,
                depth=cfg.kline_history,
                index=self._initial_index[m.spec.symbol],
                premium=cfg.premium_mean,
                annual_vol=cfg.regimes[0].annual_vol,
                spec=m.spec,
            )
        return cached

    def book_ticker(self, symbol: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            markets = [self._market(symbol)] if symbol is not None else list(self._m.values())
            return [
                views.book_ticker(
                    m.spec,
                    *m.depth(1),
                    now_ms=m.shown_ms(self._timeline.ms()),
                    update_id=m.book_version(),
                )
                for m in markets
            ]

    def depth(self, symbol: str, limit: int = 500) -> dict[str, Any]:
        with self.lock:
            m = self._market(symbol)
            if isinstance(limit, bool) or not isinstance(limit, int) or limit not in _DEPTH_LIMITS:
                raise illegal("limit")
            version = m.book_version()
            return views.depth(
                m.spec, *m.depth(limit), now_ms=m.shown_ms(self._timeline.ms()), update_id=version
            )

    def depth_update(self, symbol: str, since: int) -> dict[str, Any] | None:
        """The diff-depth event (``depthUpdate``) for everything after update id ``since``,
        or ``None`` when the book has not moved since. ``pu`` is ``since``."""
        with self.lock:
            m = self._market(symbol)
            version = m.book_version()
            if version <= since:
                return None
            bids, asks = m.book_changes_since(since)
            return views.depth_update(
                m.spec,
                bids,
                asks,
                first=since + 1,
                last=version,
                previous=since,
                now_ms=m.shown_ms(self._timeline.ms()),
            )

    def book_version(self, symbol: str) -> int:
        """The published book's current update id (what a depth snapshot now would carry)."""
        with self.lock:
            return self._market(symbol).book_version()

    def agg_trades(self, symbol: str, limit: int = 500) -> list[dict[str, Any]]:
        with self.lock:
            m = self._market(symbol)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
                raise illegal("limit")
            return views.agg_trades(m.spec, list(m.trades)[-limit:])

    def trades_since(self, symbol: str, trade_id: int) -> list[dict[str, Any]]:
        """The public tape after ``trade_id``, oldest first (``aggTrades`` rows; the venue's
        trades are never aggregated, so an aggregate id is the trade id)."""
        with self.lock:
            m = self._market(symbol)
            fresh = []
            for trade in reversed(m.trades):
                if trade[0] <= trade_id:
                    break
                fresh.append(trade)
            fresh.reverse()
            return views.agg_trades(m.spec, fresh)

    def trades(self, symbol: str, limit: int = 500, from_id: int | None = None) -> list[Any]:
        """``/fapi/v1/trades`` (latest ``limit``) or ``historicalTrades`` (from ``from_id``)."""
        with self.lock:
            m = self._market(symbol)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
                raise illegal("limit")
            tape = list(m.trades)
            if from_id is None:
                return views.trades(m.spec, tape[-limit:])
            return views.trades(m.spec, [t for t in tape if t[0] >= from_id][:limit])

    def ticker_price(self, symbol: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            markets = [self._market(symbol)] if symbol is not None else list(self._m.values())
            now_ms = self._timeline.ms()
            return [
                {
                    "symbol": m.spec.symbol,
                    "price": m.spec.fmt_price(m.shown_prices()[2]),
                    "time": m.shown_ms(now_ms),
                }
                for m in markets
            ]

    def open_interest(self, symbol: str) -> dict[str, Any]:
        """Contracts held long across every account (each long faces a short somewhere)."""
        with self.lock:
            m = self._market(symbol)
            held = sum(
                p.qty
                for account in self._accounts.values()
                for (held_symbol, _side), p in account.positions.items()
                if held_symbol == symbol and p.qty > 0
            )
            return {
                "symbol": symbol,
                "openInterest": m.spec.fmt_qty(held),
                "time": self._timeline.ms(),
            }

    def mark_price(self, symbol: str) -> float:
        with self.lock:
            return self._market(symbol).feed.mark

    def index_price(self, symbol: str) -> float:
        with self.lock:
            return self._market(symbol).feed.index

    def last_price(self, symbol: str) -> float:
        with self.lock:
            m = self._market(symbol)
            return m.spec.price_of(m.last)

    def funding_history(
        self,
        symbol: str | None = None,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Settled funding rates, oldest first (Binance: from ``startTime``, else the latest)."""
        with self.lock:
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
                raise illegal("limit")
            markets = [self._market(symbol)] if symbol is not None else list(self._m.values())
            return self._funding.history(markets, start_ms=start_ms, end_ms=end_ms, limit=limit)

    def funding_info(self) -> list[dict[str, Any]]:
        with self.lock:
            return self._funding.info(self._m.values())

    def premium_index(self, symbol: str | None = None) -> dict[str, Any] | list[dict[str, Any]]:
        with self.lock:
            if symbol is not None:
                return self._premium(self._market(symbol))
            return [self._premium(m) for m in self._m.values()]

    def _premium(self, m: MarketState) -> dict[str, Any]:
        mark, index, _last = m.shown_prices()
        return views.premium_index(
            m.spec,
            mark=mark,
            index=index,
            funding_estimate=funding_rate(m.premium.value(), cap=m.spec.funding_cap),
            next_funding_ms=int(m.next_funding * 1000),
            now_ms=m.shown_ms(self._timeline.ms()),
        )

    def exchange_info(self) -> dict[str, Any]:
        with self.lock:
            return views.exchange_info(
                self._specs.values(),
                liquidation_fee_rate=self.config.liquidation_fee_rate,
                now_ms=self.server_time(),
            )

    # --- trading ----------------------------------------------------------------------------

    def place_order(
        self,
        api_key: str,
        *,
        symbol: str,
        side: str | None,
        type: str | None,
        quantity: float | str | None,
        price: float | str | None = None,
        time_in_force: str | None = None,
        reduce_only: bool = False,
        stop_price: float | str | None = None,
        working_type: str | None = "CONTRACT_PRICE",
        client_order_id: str | None = None,
        position_side: str | None = "BOTH",
        close_position: bool = False,
    ) -> dict[str, Any]:
        """Place an order; answers Binance's order dict or raises :class:`VenueReject`.

        ``close_position`` (STOP_MARKET / TAKE_PROFIT_MARKET, no quantity): accepted with or
        without a position; when it triggers it closes the whole position its side reduces,
        and expires if there is none."""
        with self.lock:
            # _account and _market, inlined for the hit; a miss goes through them for the reject.
            account = self._accounts.get(api_key) if isinstance(api_key, str) else None
            if account is None:
                account = self._account(api_key)
            m = self._m.get(symbol) if isinstance(symbol, str) else None
            if m is None:
                m = self._market(symbol)
            request = parse_fields(
                m.spec,
                m.last,
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
            return self._trading.place(account, m, request)

    def get_order(
        self,
        api_key: str,
        *,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            self._account(api_key)
            return self._trading.get(api_key, self._market(symbol), order_id, client_order_id)

    def cancel_order(
        self,
        api_key: str,
        *,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
    ) -> dict[str, Any]:
        with self.lock:
            # _account and _market, inlined for the hit (as in place_order).
            if not isinstance(api_key, str) or api_key not in self._accounts:
                self._account(api_key)
            m = self._m.get(symbol) if isinstance(symbol, str) else None
            if m is None:
                m = self._market(symbol)
            return self._trading.cancel(api_key, m, order_id, client_order_id)

    def modify_order(
        self,
        api_key: str,
        *,
        symbol: str,
        order_id: int | None = None,
        client_order_id: str | None = None,
        side: str | None,
        quantity: float | str | None,
        price: float | str | None,
    ) -> dict[str, Any]:
        """Binance's modify (``PUT /fapi/v1/order``): a resting LIMIT order takes a new price
        and quantity under the same id, loses its queue place, and may now cross. A quantity
        at or below what already filled cancels the rest. Checked like a new order first; a
        refused edit leaves the order exactly as it was."""
        with self.lock:
            account = self._account(api_key)
            m = self._market(symbol)
            return self._trading.modify(
                account, m, order_id, client_order_id, side, quantity, price
            )

    def check_order(self, api_key: str, **fields: Any) -> None:
        """Every check :meth:`place_order` makes, and nothing placed (``/fapi/v1/order/test``)."""
        with self.lock:
            account = self._account(api_key)
            m = self._market(fields.get("symbol"))
            fields.pop("symbol")
            request = parse_order(m.spec, reference_ticks=m.last, **fields)
            self._trading.check(account, m, request)

    def open_order(
        self, api_key: str, *, symbol: str, order_id: int | None, client_order_id: str | None
    ) -> dict[str, Any]:
        """``/fapi/v1/openOrder``: the order while it is open; -2013 once it is not."""
        with self.lock:
            self._account(api_key)
            m = self._market(symbol)
            return self._trading.open_order(api_key, m, order_id, client_order_id)

    def cancel_all(self, api_key: str, *, symbol: str) -> None:
        with self.lock:
            account = self._account(api_key)
            self._trading.cancel_open(account, self._market(symbol))

    def open_orders(self, api_key: str, *, symbol: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return self._trading.open_orders(self._account_on(api_key, symbol), symbol)

    def all_orders(
        self, api_key: str, *, symbol: str, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The account's orders on ``symbol``, oldest first (the last ``limit`` if given)."""
        with self.lock:
            self._account(api_key)
            return self._trading.all_orders(api_key, self._market(symbol), limit)

    def user_trades(self, api_key: str, *, symbol: str, limit: int = 500) -> list[dict[str, Any]]:
        with self.lock:
            self._account(api_key)
            return self._trading.user_trades(api_key, self._market(symbol), limit)

    # --- account settings -------------------------------------------------------------------

    def set_leverage(self, api_key: str, *, symbol: str, leverage: int) -> dict[str, Any]:
        with self.lock:
            account = self._account(api_key)
            return self._ledger.set_leverage(account, self._market(symbol), leverage)

    def set_margin_type(self, api_key: str, *, symbol: str, margin_type: str | None) -> None:
        with self.lock:
            account = self._account(api_key)
            self._market(symbol)
            self._ledger.set_margin_type(account, symbol, margin_type)

    def set_position_mode(self, api_key: str, *, dual_side: bool) -> None:
        """Hedge mode (``dual_side=True``: LONG and SHORT legs) or one-way (``BOTH``)."""
        with self.lock:
            self._ledger.set_position_mode(self._account(api_key), dual_side)

    def modify_isolated_margin(
        self, api_key: str, *, symbol: str, position_side: str, amount: float, add: bool
    ) -> dict[str, Any]:
        """Move ``amount`` of quote into (``add``) or out of an isolated position's margin.

        Only an open isolated leg has margin of its own. Adding takes from what the account
        has free; removing leaves at least the leg's initial margin at the mark."""
        with self.lock:
            account = self._account(api_key)
            m = self._market(symbol)
            return self._ledger.modify_isolated_margin(account, m, position_side, amount, add)

    def position_mode(self, api_key: str) -> dict[str, Any]:
        with self.lock:
            return {"dualSidePosition": self._account(api_key).dual_side}

    # --- account views ----------------------------------------------------------------------

    def _account_on(self, api_key: Any, symbol: Any) -> Account:
        """The account of ``api_key``, once ``symbol`` (None: every symbol) is known listed."""
        account = self._account(api_key)
        if symbol is not None:
            self._market(symbol)
        return account

    def equity(self, api_key: str) -> float:
        """Wallet plus unrealised PnL at the mark, in quote."""
        with self.lock:
            return self._ledger.equity(self._account(api_key))

    def wallet(self, api_key: str) -> float:
        with self.lock:
            return self._account(api_key).wallet / MONEY_SCALE

    def wallet_units(self, api_key: str) -> int:
        """The exact wallet in 1e-8 quote (what reconciliation compares)."""
        with self.lock:
            return self._account(api_key).wallet

    def deposit_units(self, api_key: str) -> int:
        with self.lock:
            return self._account(api_key).deposit

    def account_update(
        self,
        api_key: str,
        reason: str,
        symbols: Sequence[str],
        balance_change_units: int = 0,
    ) -> dict[str, Any]:
        """The ``a`` of an ``ACCOUNT_UPDATE`` now: the balance and every leg of ``symbols``
        (flat ones too, so a close shows as ``"pa": "0"``)."""
        with self.lock:
            account = self._account(api_key)
            return self._statements.account_update(account, reason, symbols, balance_change_units)

    def margin_call(self, api_key: str, symbols: Sequence[str]) -> list[dict[str, Any]]:
        """The ``p`` rows of a ``MARGIN_CALL``: the open legs of ``symbols``."""
        with self.lock:
            return self._statements.margin_call(self._account(api_key), symbols)

    def account_v3(self, api_key: str) -> dict[str, Any]:
        with self.lock:
            return self._statements.account_v3(self._account(api_key))

    def position_risk(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """Open legs in ``/fapi/v3/positionRisk`` shape (with v2's leverage and marginType)."""
        with self.lock:
            return self._statements.position_risk(self._account_on(api_key, symbol), symbol)

    def symbol_config(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """``/fapi/v1/symbolConfig``: every symbol's leverage and margin type, flat ones too
        (positionRisk lists only open legs, so it cannot tell a client the settings it will
        trade under)."""
        with self.lock:
            return self._statements.symbol_config(self._account_on(api_key, symbol), symbol)

    def leverage_brackets(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            self._account(api_key)
            specs = [self._market(symbol).spec] if symbol is not None else self._specs.values()
            return views.leverage_brackets(specs)

    # --- account reports --------------------------------------------------------------------

    def income(
        self,
        api_key: str,
        *,
        symbol: str | None = None,
        income_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """``/fapi/v1/income``: every wallet change (deposit, realised PnL, commission, funding,
        liquidation clearance), oldest first. With no time window, the last 7 days."""
        with self.lock:
            account = self._account_on(api_key, symbol)
            return self._statements.income(account, symbol, income_type, start_ms, end_ms, limit)

    def commission_rate(self, api_key: str, symbol: str) -> dict[str, Any]:
        with self.lock:
            self._account(api_key)
            spec = self._market(symbol).spec
            return {
                "symbol": symbol,
                "makerCommissionRate": f"{spec.maker_fee:.6f}",
                "takerCommissionRate": f"{spec.taker_fee:.6f}",
            }

    def balance_v2(self, api_key: str) -> list[dict[str, Any]]:
        """``/fapi/v2/balance``: the one margin asset, from the same figures as the account."""
        with self.lock:
            return self._statements.balance_v2(self._account(api_key))

    def account_v2(self, api_key: str) -> dict[str, Any]:
        """``/fapi/v2/account``: v3's answer with v2's account flags and per-leg settings."""
        with self.lock:
            return self._statements.account_v2(self._account(api_key))

    def position_risk_v2(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """``/fapi/v2/positionRisk``: open legs, and a flat row for every other symbol."""
        with self.lock:
            return self._statements.position_risk_v2(self._account_on(api_key, symbol), symbol)

    def account_config(self, api_key: str) -> dict[str, Any]:
        with self.lock:
            return self._statements.account_config(self._account(api_key))

    def adl_quantile(self, api_key: str, symbol: str | None = None) -> list[dict[str, Any]]:
        """Where each of the account's open legs stands in the auto-deleveraging queue (0-4).

        Legs on the same side of a symbol, across all accounts, are ranked by Binance's score:
        PnL ratio times leverage when in profit, divided by it when at a loss. The top quarter
        is 4 (first to be deleveraged)."""
        with self.lock:
            return self._statements.adl_quantile(self._account_on(api_key, symbol), symbol)

    def force_orders(
        self,
        api_key: str,
        *,
        symbol: str | None = None,
        auto_close_type: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        """``/fapi/v1/forceOrders``: the account's liquidation orders (``LIQUIDATION``, each
        partial step one order) and auto-deleveraging closes (``ADL``), both when
        ``auto_close_type`` is None; oldest first."""
        with self.lock:
            self._account_on(api_key, symbol)
            return self._statements.force_orders(
                api_key, symbol, auto_close_type, start_ms, end_ms, limit
            )

    # --- market faults ----------------------------------------------------------------------

    def freeze_feed(self, symbol: str, mode: FeedFreeze | str | None) -> None:
        """Stage a data fault on ``symbol`` (``None`` lifts it).

        ``"prices"``: the market stops moving (timestamps stay fresh); ``"timestamps"``: prices
        move but every market-data time stays at the moment of the freeze; ``"stale_prices"``:
        market data keeps showing the prices of the moment of the freeze with fresh timestamps
        while trading continues at the real ones (the dangerous kind).
        """
        with self.lock:
            m = self._market(symbol)
            if mode is not None and mode not in _FREEZE_MODES:
                raise ValueError(f"mode must be one of {', '.join(_FREEZE_MODES)} or None")
            m.set_freeze(mode, self._timeline.ms())

    def spike(self, symbol: str, pct: float, duration_s: float) -> None:
        """Move ``symbol``'s contract price by ``pct`` % for ``duration_s`` from now.

        The index does not move, so the mark follows only through its smoothed basis.
        """
        with self.lock:
            m = self._market(symbol)
            for name, value in (("pct", pct), ("duration_s", duration_s)):
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ValueError(f"{name} must be a number, got {value!r}")
                if not math.isfinite(value):
                    raise ValueError(f"{name} must be finite, got {value!r}")
            if not -99.0 < pct <= 1000.0:
                raise ValueError(f"pct must lie in (-99, 1000], got {pct!r}")
            if duration_s <= 0:
                raise ValueError(f"duration_s must be > 0, got {duration_s!r}")
            m.feed.schedule_spike(self._timeline.time(), pct, duration_s)

    def set_tiers(self, symbol: str, tiers: TierTable | Sequence[Mapping[str, Any]]) -> None:
        """Replace ``symbol``'s maintenance ladder (a venue changing its brackets).

        ``tiers`` is a :class:`TierTable` or Binance ``leverageBracket`` rows (``bracket``,
        ``initialLeverage``, ``notionalFloor``, ``notionalCap``, ``maintMarginRatio``,
        ``cum``); a malformed ladder is a ``ValueError`` and the old one stays.
        """
        with self.lock:
            m = self._market(symbol)
            table = tiers if isinstance(tiers, TierTable) else _tiers_from_brackets(tiers)
            self._relist(m, m.spec.with_tiers(table))

    def set_funding_interval(self, symbol: str, hours: int) -> None:
        """Change ``symbol``'s funding interval (Binance moves a symbol between 8, 4 and 1
        hours when its funding hits the cap). ``fundingInfo`` shows the new
        ``fundingIntervalHours`` and the next funding time (``premiumIndex``, the markPrice
        stream's ``T``) moves to the first boundary of the new interval; a funding time already
        reached and not yet settled is settled first."""
        if isinstance(hours, bool) or not isinstance(hours, int) or not 1 <= hours <= 24:
            raise ValueError(
                f"funding interval must be a whole number of hours in 1..24, got {hours!r}"
            )
        with self.lock:
            m = self._market(symbol)
            self._relist(m, _replace(m.spec, funding_interval_s=hours * 3600.0))
            self._funding.reschedule(m, self._timeline.time())

    def _relist(self, m: MarketState, spec: MarketSpec) -> None:
        """Give ``m``'s symbol a changed listing (its ladder or its funding interval)."""
        m.spec = spec
        self._specs[spec.symbol] = spec
        self._ledger.refresh_default(spec)

    # --- liquidation ------------------------------------------------------------------------

    @property
    def insurance_fund(self) -> float:
        with self.lock:
            return self._liquidator.insurance / MONEY_SCALE

    def liquidations(self) -> list[Liquidation]:
        with self.lock:
            return self._liquidator.liquidations()

    def liquidation_report(self, api_key: str | None = None) -> dict[str, Any]:
        """The liquidation fairness report (:func:`~safeguard.venue._fairness.fairness_report`):
        every liquidation order and auto-deleveraging close, reconciled against the accounts'
        income and the insurance fund; ``api_key`` narrows the rows to one account."""
        with self.lock:
            if api_key is not None:
                self._account(api_key)
            return self._liquidator.report(api_key)

    def cascades(self) -> list[dict[str, Any]]:
        """The venue's liquidations grouped into cascades (:func:`~._fairness.cascades`): per
        symbol, orders no more than three simulation steps apart belong together."""
        with self.lock:
            return self._liquidator.cascades()

    def add_crowd(self, crowd: Crowd) -> list[str]:
        """Open ``crowd``'s accounts and positions now; returns their API keys.

        Each account holds one isolated position of ``crowd.notional`` with exactly its initial
        margin, entries spread evenly over ``entry_spread_pct`` around the contract price, the
        leverage drawn (seeded) from ``crowd.leverage``. The positions are placed, not traded:
        they stand for open interest built up before now and take no liquidity from the book.
        """
        with self.lock:
            return self._liquidator.add_crowd(crowd, self._market(crowd.symbol))

    def adl_ranking(self, symbol: str, *, long: bool) -> list[tuple[float, str, str]]:
        """(score, api key, position side) of every open ``long`` (or short) leg of
        ``symbol``, first to be deleveraged first: Binance's ADL order, the ranking
        ``/fapi/v1/adlQuantile`` reports in quintiles."""
        with self.lock:
            return self._liquidator.adl_ranking(self._market(symbol), long=long)


def _tiers_from_brackets(rows: Any) -> TierTable:
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Sequence):
        raise ValueError("tiers must be a TierTable or a list of Binance bracket dicts")
    converted = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"tiers[{index}] must be a dict of Binance bracket fields")
        converted.append(
            {
                "tier": row.get("bracket", index + 1),
                "minNotional": row.get("notionalFloor"),
                "maxNotional": row.get("notionalCap"),
                "maintenanceMarginRate": row.get("maintMarginRatio"),
                "maxLeverage": row.get("initialLeverage"),
                "info": {"cum": row["cum"]} if "cum" in row else {},
            }
        )
    return TierTable.from_ccxt(converted, check_cum=True)


def _replace(spec: MarketSpec, **changes: Any) -> MarketSpec:
    from dataclasses import replace

    return replace(spec, **changes)


__all__ = ["FeedFreeze", "Venue", "VenueConfig"]
