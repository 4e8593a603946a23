"""The pre-trade gate: from what the guard has read to a verdict, and from a verdict to a send.

It turns the :class:`~safeguard.guard._market.MarketCache` (raw ccxt structures) into the risk
core's inputs (:class:`~safeguard.risk._models.MarketSnapshot`, ``Account``, ``OrderIntent``),
asks :func:`safeguard.risk._verdict.evaluate`, and applies what only the guard knows: the
venue's health. DEGRADED and SEVERE price the order on the degraded fill model; SEVERE with
``degradation.severe_reduce_only`` refuses anything that adds exposure. A denial that only the
degraded face produced may be shrunk to ``max_safe_amount`` when the caller opted in.

Inputs that cannot be built (a crossed book, a broken tier ladder, an unknown symbol) never
pass silently: the verdict gets ``None`` for that piece and denies with MISSING_MARKET_DATA,
or the gate denies with the code that names the problem.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import ccxt

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard._errors import OrderDenied
from safeguard._log import logger
from safeguard.guard._core import Assessment, Send
from safeguard.guard._events import EventKind, Hooks, StateChangeEvent, VerdictEvent
from safeguard.guard._exposure import Committed, committed, fold
from safeguard.guard._market import MarketCache, RuleChange, Seen, due_after
from safeguard.guard._observe import Health
from safeguard.guard._orders import OrderCall
from safeguard.guard._protective import protective_stop
from safeguard.guard._tripwire import TripWire
from safeguard.killswitch._early_warnings import ClosingPosition
from safeguard.risk import _freshness as freshness
from safeguard.risk import _verdict as risk_verdict
from safeguard.risk._book import OrderBook
from safeguard.risk._correlation import CorrelationEstimate, estimate_for_policy
from safeguard.risk._crowding import CrowdingMonitor, CrowdingReading
from safeguard.risk._fills import FillModel, FillTerms
from safeguard.risk._liquidation import (
    LiquidationModel,
    PositionLeg,
    get_model,
)
from safeguard.risk._models import Account, MarketRules, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Finding, Severity, Verdict
from safeguard.risk._positions import ExitMarket, liquidation_options, position_risk
from safeguard.risk._stress import DepthProfile
from safeguard.risk._tiers import TierTable

_MARKS = {
    "fetch_funding_rate": ("funding", "mark"),
    "fetch_ticker": ("tickers", "last"),
    "fetch_order_book": ("books", "book"),
}
"""Reads that carry a venue-stamped price: where the cache keeps each, and its price's name."""
_INTERVAL_READS = ("fetch_funding_interval", "fetch_funding_intervals")
_ACCOUNT_READS = ("fetch_balance", "fetch_positions", "fetch_leverage_tiers")
"""Reads after which the account the triggers judge may have changed."""
_RULE_READS = ("load_markets", "fetch_leverage_tiers")
_SECONDS_PER_DAY = 86_400.0
_MIN_VOLATILITY = 1e-6
"""A flat 24 h range would give zero; the verdict needs a positive number and zero is a lie."""


@dataclass(frozen=True, slots=True)
class StopCheck:
    """One open position's stop, priced again. ``distance_pct`` > 0: the stop's fill sits
    that far inside liquidation (on the safe side)."""

    symbol: str
    stop: float
    stop_fill: float
    liquidation: float
    distance_pct: float
    degraded: bool


@dataclass
class PreTradeGate:
    """The guard's :class:`~safeguard.guard._core.Gate`."""

    policy: Policy
    cache: MarketCache
    health: Health
    """The venue-health monitor: its state prices the order; data ages feed it."""
    hooks: Hooks
    shrink_when_degraded: bool = False
    """Send ``max_safe_amount`` instead of denying an order only the degraded face refuses."""
    tripwire: TripWire | None = None
    """Kill-switch triggers fed with marks and the account (opt-in)."""
    liquidation_model: str = "binanceusdm"
    """The venue's formula (:func:`~safeguard.risk._liquidation.model_for_exchange`): the
    verdict (through the market rules), the stop re-check and the hedge stop choice all use
    this one, so they cannot disagree about where liquidation is."""
    fills: FillModel = field(init=False)
    _open_interest: dict[str, tuple[Mapping[str, Any], float]] = field(default_factory=dict)
    """Per symbol, the last ``fetch_open_interest`` answer and when it came (the cascade's
    crowd and the crowding score read it; the guard does not poll it itself)."""
    crowding: CrowdingMonitor | None = field(init=False)
    """Each symbol's crowding, fed by the funding reads (``risk.crowding``, when it tightens)."""
    _account_asked: float | None = None
    """When the triggers last asked for the account themselves (see ``_account_wanted``)."""
    _mark_agreed: dict[str, float] = field(default_factory=dict)
    """Per symbol, when the mark last sat within ``risk.max_mark_gap_pct`` of the index or
    the last price (for the stale-data trigger: a mark out of band is old from then)."""
    _closes_memo: tuple[tuple[int, int], Mapping[str, Mapping[int, float]]] | None = None
    """The last return-history window handed to the verdict, with its (interval, revision)."""
    _in_flight: dict[int, OrderCall] = field(default_factory=dict)
    """Orders let go by :meth:`committing` and not yet answered, each under its own token (not
    its client id: every edit has none, and two edits in flight overwrote each other): every
    other order that adds exposure is judged as if they had filled (see :mod:`._exposure`)."""
    _tokens: Iterator[int] = field(default_factory=itertools.count)
    _committing: threading.Lock = field(default_factory=threading.Lock)
    """One order's verdict and its joining :attr:`_in_flight` are one step: two threads
    judged between each other's steps would each pass alone what they fail together."""
    _applying: threading.RLock = field(default_factory=threading.RLock)
    """Whether a read is outdated and its taking (or an answer's applying) are one step: a
    change another thread applied between them would be overwritten by the older read."""
    _parsed: dict[tuple[str, str], tuple[tuple[Any, ...], Any]] = field(default_factory=dict)
    """Books and tier tables parsed from a cached read, keyed by which read they came from:
    parsing a 100-level book or a ladder on every order would dominate the guard's cost."""

    def __post_init__(self) -> None:
        get_model(self.liquidation_model)  # an unknown name fails here, not on a re-check
        self.fills = FillModel.from_config(self.policy.fills)
        crowding = self.policy.risk.crowding
        # Opt-in: without tightening nothing reads the score, so nothing is kept.
        self.crowding = CrowdingMonitor(crowding) if crowding.max_tightening > 0 else None

    @property
    def _model(self) -> LiquidationModel:
        return get_model(self.liquidation_model)

    # --- core.Gate ---------------------------------------------------------------------------

    def refresh(self, symbol: str, now: float) -> list[Send]:
        return self.cache.refresh(symbol, now)

    def read_version(self) -> int:
        return self.cache.version

    def venue_health(self, now: float) -> str:
        state = self.health.state(now)
        return str(getattr(state, "value", state))

    def absorb(self, send: Send, value: Any, now: float, since: int | None = None) -> list[Send]:
        # Data age is not fed to the health monitor: it ages a sample on between reads, which
        # for a REST poller makes idleness look like a frozen feed; and the mark's age on
        # arrival is one symbol's, mixed with the round trip and the clocks' offset, where
        # the monitor's state is the whole venue's (a try at feeding it made one frozen
        # symbol stop every other, and a bot's clock 4 s fast degrade a healthy venue for
        # good). The verdict judges each symbol's data itself (STALE_MARKET_DATA).
        cache = self.cache
        with self._applying:
            if since is not None and cache.outdated(send, since):
                # The answer may show the account from before a change the view has taken
                # since it was sent (our order's answer, a stream's news, a newer read): a
                # keeper thread's positions read sent before a fill and taken after it rolled
                # the position back, stamped fresh. Not taken: the piece keeps its age and is
                # asked for again; the verdict denies on it once it is too old.
                logger.info("{} answered from before a newer change: not taken", send.method)
                cache.raced(send)
                return []
            newer, legs = cache.newer_legs(send, since) if since is not None else (set(), [])
            changes = cache.absorb(send, value, now)
            cache.keep_legs(newer, legs)
            cache.taken(send)
        if send.method == "fetch_open_interest" and isinstance(value, Mapping) and send.args:
            self._open_interest[str(send.args[0])] = (value, now)
        if self.crowding is not None and send.method == "fetch_funding_rate" and send.args:
            self._crowding_seen(str(send.args[0]), now)
        wanted: list[Send] = []
        if self.tripwire is not None and send.method not in _RULE_READS:
            wanted += self._account_wanted(send.method, now)
        if send.method not in _RULE_READS and cache.ladders_wanted(now):
            # A position's liquidation price rests on its ladder, which the venue may change
            # at any time: re-read it on its schedule after whatever read came first.
            cache.ladders_asked = now
            wanted.append(Send("fetch_leverage_tiers", ()))
        if self.tripwire is not None:
            self._observed(send, now, ladders_coming=bool(wanted))
            if self.tripwire.warnings is not None and send.method in _INTERVAL_READS:
                # The funding interval is a margin parameter: its flapping is judged on the
                # read that shows it, for every symbol the read named.
                for symbol in _interval_symbols(send, value):
                    if symbol in self.cache.funding_intervals:
                        self._market_warnings(symbol, now)
        if send.method == "fetch_funding_rate" and cache.intervals_wanted(now):
            cache.intervals_asked = now
            # One try, no waits (scheduled): the verdict does without it.
            wanted.append(Send("fetch_funding_intervals", (), scheduled=True))
        if changes:
            self._rules_changed(changes, now)
        return wanted

    # --- streams (the faces hand over ccxt.pro watch_* answers) -------------------------------

    def streamed(
        self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], value: Any, now: float
    ) -> list[Send]:
        """A watch answer: into the view, its stream stamped live, its marks to the triggers.
        Returns the reads due on the stream's path (:meth:`MarketCache.stream_reads`)."""
        with self._applying:
            moved = self.cache.streamed(method, args, kwargs, value, now)
        if self.tripwire is not None:
            for symbol in moved:
                funding = self.cache.funding.get(symbol)
                if funding is not None and "mark" in self.cache.prices.get(symbol, {}):
                    stale_since = self._untrusted_since(symbol, now)
                    self.tripwire.mark(symbol, funding.venue_time, now, stale_since=stale_since)
        return self.cache.stream_reads(now)

    def stream_failed(
        self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], error: Exception,
        now: float,
    ) -> None:  # fmt: skip
        if isinstance(error, ccxt.UnsubscribeError):
            return  # the caller's own un_watch_* ended it (the feed is already handed back)
        why = f"{type(error).__name__}: {error}"
        logger.warning("{} stream failed: {}", method, why)
        self.cache.stream_failed(method, args, kwargs, why, now)

    def scheduled_reads(self, symbols: Sequence[str], now: float) -> list[Send]:
        """The reads a bot without streams has due off its order path (the view keeper's
        schedule, :meth:`MarketCache.scheduled_reads`)."""
        return self.cache.scheduled_reads(symbols, now)

    def account_reconnected(self, now: float) -> list[Send]:
        """The user-data stream's watch is connected again after a break. Returns the reads
        due on the stream's path (the account's REST reconcile among them, within its
        budget): the view denies new exposure until they are in."""
        self.cache.account_reconnected(now)
        return self.cache.stream_reads(now)

    def leverage_heard(self, symbol: str, leverage: Any) -> bool:
        """The user-data stream reported ``symbol``'s leverage (``ACCOUNT_CONFIG_UPDATE``)."""
        return self.cache.leverage_heard(symbol, leverage)

    def unwatched(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.cache.unwatched(method, args, kwargs)

    def watch_started(
        self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], now: float
    ) -> None:
        self.cache.watch_started(method, args, kwargs, now)

    def watch_ended(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.cache.watch_ended(method, args, kwargs)

    def unavailable(self, send: Send, error: Exception, now: float) -> None:
        if self.tripwire is None:
            return
        failed = f"({type(error).__name__}: {error})"
        if send.method == "fetch_leverage_tiers":
            unladdered = self._unladdered()
            if unladdered and self.cache.account_consistent():
                self.tripwire.unjudged(
                    f"no tier table for {', '.join(unladdered)}, where a position is open, and "
                    f"reading it failed {failed}",
                    now,
                )
            return
        part = {"fetch_balance": "balance", "fetch_positions": "positions"}.get(send.method)
        limit = self.tripwire.monitor.config.max_data_age_s
        seen = getattr(self.cache, part) if part is not None else None
        if part is not None and limit is not None and (seen is None or seen.age(now) > limit):
            # The equity and liquidation triggers have been blind longer than the policy lets
            # market data age: that is a trigger nobody is running.
            if seen is None:
                when = "never read"
            elif math.isinf(seen.age(now)):
                when = "not read since our last order"
            else:
                when = f"last read {seen.age(now):,.0f}s ago"
            self.tripwire.unjudged(
                f"the account's {part} could not be read for the triggers ({when}) {failed}",
                now,
            )

    def _observed(self, send: Send, now: float, *, ladders_coming: bool) -> None:
        """Feed the triggers from every read, not only from the verdict's: a bot that only
        polls its account and prices must still trip on a drawdown or a frozen feed.
        ``ladders_coming``: the tier tables are being read next, so an account that lacks one
        is judged once they are in."""
        assert self.tripwire is not None
        where = _MARKS.get(send.method)
        if where is not None and send.args:
            symbol = str(send.args[0])
            piece = getattr(self.cache, where[0]).get(symbol)
            # A read on time without a usable price (a mark of 0, a crossed book) brought no
            # data: it must not keep the feed young.
            if piece is not None and where[1] in self.cache.prices.get(symbol, {}):
                stale_since = self._untrusted_since(symbol, now)
                self.tripwire.mark(symbol, piece.venue_time, now, stale_since=stale_since)
                if self.tripwire.warnings is not None:
                    self._market_warnings(symbol, now)
        elif send.method in _ACCOUNT_READS and self.cache.account_consistent():
            if ladders_coming and self._unladdered():
                # After a restart nothing has loaded the ladders yet: without them there is no
                # liquidation price and no equity. They are read next; judge then.
                return
            account = self._current_account(self._settle_of_positions(), now)
            if isinstance(account, str):
                self.tripwire.unjudged(account, now)

    def _crowding_seen(self, symbol: str, now: float) -> None:
        """One crowding reading from the funding read just absorbed (mark, index, rate) and the
        ticker's volatility; a read lacking any of them is skipped, never guessed."""
        assert self.crowding is not None
        market = self.snapshot(symbol, now)
        if (
            market.mark is None
            or market.index is None
            or market.funding_rate is None
            or market.volatility is None
        ):
            return
        try:
            self.crowding.observe(
                symbol,
                CrowdingReading(
                    now,
                    market.mark,
                    market.index,
                    market.funding_rate,
                    market.volatility,
                    market.open_interest,
                ),
            )
        except ValueError as exc:  # a clock stepped back: the reading is dropped
            logger.debug("crowding reading for {} dropped: {}", symbol, exc)

    def _market_warnings(self, symbol: str, now: float) -> None:
        """Early warnings on a fresh market read: the detectors are pure
        (:mod:`safeguard.killswitch._early_warnings`); this only gathers what they look at."""
        wire = self.tripwire
        assert wire is not None
        assert wire.warnings is not None
        market = self.snapshot(symbol, now)
        parameters: list[tuple[str, Hashable]] = [("funding interval", market.funding_interval_s)]
        if market.rules is not None:
            parameters.append(("tier table", market.rules.tiers.tiers))
        book = market.book
        # A book older than the verdict would price an order on says nothing of the exit now:
        # its levels may sit wholly on the far side of a mark that has moved since.
        seen = self.cache.books.get(symbol)
        fresh = seen is not None and seen.age(now) <= self.policy.risk.max_market_data_age_s
        wire.warn(
            wire.warnings.market(
                now,
                symbol,
                mark=market.mark,
                index=market.index,
                funding_rate=market.funding_rate,
                funding_cap=market.funding_cap
                if market.funding_cap is not None
                else self.policy.risk.funding_cap_rate,
                bids=() if book is None else book.bids,
                asks=() if book is None else book.asks,
                position=self._closing_position(symbol) if fresh else None,
                parameters=parameters,
            )
        )

    def _closing_position(self, symbol: str) -> ClosingPosition | None:
        """The one-way position in ``symbol`` and where its exit is planned: its protective
        stop, else its liquidation price (``None`` without a position or a usable account)."""
        if self.tripwire is None or self.tripwire.warnings is None:
            return None
        if self.tripwire.warnings.config.thin_book_cover is None:
            return None
        account = self._account_or_why("USDT")
        leg = account.leg(symbol) if isinstance(account, Account) else None
        if leg is None or not isinstance(account, Account):
            return None
        exit_price = self._protective_stop(leg)
        if exit_price is None:
            others = [o for o in account.positions if o is not leg and o.isolated_wallet is None]
            exit_price = self._model.liquidation_price(
                leg, wallet_balance=account.wallet_balance, others=others
            ).price
        if exit_price is None:
            return None
        return ClosingPosition(leg.side, leg.quantity, exit_price)

    def _account_wanted(self, method: str, now: float) -> list[Send]:
        """The parts of the account the triggers lack, or hold older than half the stale-data
        limit (30 s by default), at most one ask per such period: a bot that polls only its
        price (or only its balance) still has its drawdown judged."""
        assert self.tripwire is not None
        due = (self.tripwire.monitor.config.max_data_age_s or 60.0) / 2.0
        asked = self._account_asked
        if asked is not None and 0.0 <= now - asked < due:
            return []
        cache = self.cache
        wanted = []
        if due_after(cache.balance, now, due):
            wanted.append(Send("fetch_balance", ()))
        positions_due = due_after(cache.positions, now, due) or bool(cache.unsettled)
        # A filtered read refreshes the legs it names but not the view's age: enough.
        if positions_due and (method != "fetch_positions" or not cache.account_consistent()):
            wanted.append(Send("fetch_positions", ()))
        if wanted:
            self._account_asked = now
        return wanted

    def _untrusted_since(self, symbol: str, now: float) -> float | None:
        """From when ``symbol``'s freshly stamped prices cannot be trusted (frozen, or a mark
        out of band since the three last agreed), or ``None``: the same tests as the
        verdict's, on what the cache holds now."""
        cache, limits = self.cache, self.policy.risk
        funding = cache.funding.get(symbol)
        ticker = cache.tickers.get(symbol)
        f = funding.value if funding is not None else {}
        t = ticker.value if ticker is not None else {}
        market = cache.markets.get(symbol) or {}
        frozen = freshness.frozen_prices(
            cache.price_tracks(symbol),
            volatility=_volatility(t, limits.volatility_window_s),
            window_s=limits.volatility_window_s,
            tick=_positive((market.get("precision") or {}).get("price")),
            limits=limits,
            now=now,
        )
        gap = freshness.mark_out_of_band(
            _positive(f.get("markPrice")),
            _positive(f.get("indexPrice")),
            _positive(t.get("last")),
            since=self._mark_agreed.get(symbol, now),
            limits=limits,
        )
        if gap is None:
            self._mark_agreed[symbol] = now
        return freshness.untrusted_since((*frozen, *(() if gap is None else (gap,))))

    def _unladdered(self) -> list[str]:
        """Symbols with an open position whose tier table was never read."""
        return [symbol for symbol in self.cache.held() if symbol not in self.cache.tiers]

    def _settle_of_positions(self) -> str:
        for position in self.cache.positions.value if self.cache.positions else ():
            market = self.cache.markets.get(str(position.get("symbol")))
            if market is not None and market.get("settle"):
                return str(market["settle"])
        return "USDT"

    def _current_account(self, settle: str, now: float) -> Account | str:
        """The account in ``settle`` (or why it cannot be built), built once per re-read of
        any part of it (the triggers see each new one once)."""
        cache = self.cache
        return self._derived(  # type: ignore[no-any-return]
            "account",
            settle,
            (
                cache.balance,
                cache.positions,
                *cache.open_orders.values(),
                *cache.tiers.values(),
            ),
            lambda: self._account_observed(now, settle),
        )

    def placed(self, intent: OrderCall, order: Any, now: float, since: int | None = None) -> None:
        with self._applying:
            self.cache.placed(intent.symbol, order, now, since)

    @contextmanager
    def committing(self, intent: OrderCall, now: float) -> Iterator[Assessment]:
        """Judge ``intent`` and, if it may go, hold it as in flight until the block ends (the
        caller ends it once the answer is applied to the view, :meth:`placed`): meanwhile
        every other order on its symbol and side is judged as if it had filled."""
        with self._committing:
            assessment = self.assess(intent, now)
            token = next(self._tokens)
            if assessment.denial is None:
                self._in_flight[token] = assessment.intent
        try:
            yield assessment
        finally:
            with self._committing:
                self._in_flight.pop(token, None)

    def assess(self, intent: OrderCall, now: float, *, explain: bool = False) -> Assessment:
        health = self.venue_health(now)
        severe_gate = self.policy.degradation.severe_reduce_only
        if health == "SEVERE" and severe_gate and not intent.reduce_only:
            return self._refuse_unpriced(
                intent,
                Code.SEVERE_REDUCE_ONLY,
                "the venue is SEVERE and the policy allows only orders that reduce",
                now,
                health,
            )
        if self.cache.markets and intent.symbol not in self.cache.markets:
            reason = f"{intent.symbol} is not a market"
            return self._refuse_unpriced(intent, Code.UNKNOWN_SYMBOL, reason, now, health)
        reduces = intent.reduce_only
        unknown = None if reduces else self._account_gap(intent.symbol, now)
        stale = None if reduces else self.cache.stream_gap(intent.symbol, now)
        if unknown is None and stale is not None:
            # A stream-fed view is never re-read on the order path: a stream that broke or
            # went quiet leaves it unjudgeable until the stream delivers again.
            return self._refuse_unpriced(intent, Code.STALE_MARKET_DATA, stale, now, health)
        if unknown is not None:
            # Leverage and margin mode move the liquidation price more than anything else:
            # assuming 1x cross for a symbol set to isolated 50x would wave through a stop
            # beyond liquidation; an account view whose re-read failed may miss positions
            # opened since. An order that only reduces adds no exposure to misjudge.
            return self._refuse_unpriced(intent, Code.MISSING_ACCOUNT, unknown, now, health)
        try:
            risk_intent = self.risk_intent(intent)
        except ValueError as exc:
            return self._refuse_unpriced(intent, Code.INVALID_INPUT, str(exc), now, health)
        cache = self.cache
        symbol = intent.symbol
        by_market = risk_intent.type == "market"
        market = self._derived(
            "snapshot-market" if by_market else "snapshot",
            symbol,
            (
                cache.funding.get(symbol),
                cache.tickers.get(symbol),
                cache.books.get(symbol),
                cache.tiers.get(symbol),
                cache.markets.get(symbol),
                cache.rules_at,
                # The open interest read, and whether it is still young enough to count.
                self._open_interest.get(symbol),
                self._open_interest_value(symbol, 1.0, now) is not None,
            ),
            lambda: self.snapshot(symbol, now, market_order=by_market),
        )
        settle = str((cache.markets.get(symbol) or {}).get("settle") or "USDT")
        built = self._current_account(settle, now)
        account = None if isinstance(built, str) else built  # the verdict denies for None
        pending = None
        if account is not None and market.mark is not None:
            pending = committed(
                intent,
                list(self._seen_open_orders(symbol)),
                list(self._in_flight.values()),
                market.mark,
            )
        if pending is not None and account is not None and market.mark is not None:
            try:
                account = self._folded(account, intent, pending, market.mark)
            except ValueError as exc:
                code = (
                    Code.MISSING_MARKET_DATA if isinstance(exc, _NoTiers)
                    else Code.NOTIONAL_PER_POSITION  # past the last tier: no venue holds it
                )  # fmt: skip
                reason = f"{exc}: {pending.describe(intent.side)}"
                return self._refuse_unpriced(intent, code, reason, now, health)
        verdict = risk_verdict.evaluate(
            risk_intent,
            market,
            account,
            self.policy.risk,
            self.fills,
            now=now,
            degraded=health != "NORMAL",
            # The size search costs dozens of re-pricings: only when its answer is used.
            size_search=self.shrink_when_degraded or explain,
            depth=self._stress_depth(symbol, account),
            closes=self._recent_closes(now),
            open_interest=self._held_open_interest(symbol, account, now),
        )
        if verdict.allowed:
            self._emit(intent, verdict, now)
            return Assessment(intent, verdict)
        smaller = self._shrunk(intent, verdict)
        if smaller is not None:
            self._emit(intent, verdict, now, detail=f"shrunk to {smaller.amount}")
            return Assessment(smaller, verdict)
        return self._deny(intent, verdict, now, pending=pending)

    def _seen_open_orders(self, symbol: str) -> Sequence[Mapping[str, Any]]:
        seen = self.cache.open_orders.get(symbol)
        return () if seen is None else seen.value

    def _folded(
        self, account: Account, intent: OrderCall, pending: Committed, mark: float
    ) -> Account:
        """``account`` as if ``pending`` had filled (:func:`~._exposure.fold`)."""
        symbol = intent.symbol
        tiers = self._tiers(symbol)
        if tiers is None:
            raise _NoTiers(f"no tier table for {symbol} to price its pending orders on")
        hedge = str(intent.params.get("positionSide") or "BOTH").upper() != "BOTH" or any(
            leg.symbol == symbol and leg.position_side != "BOTH" for leg in account.positions
        )
        return fold(
            account,
            symbol,
            intent.side,
            pending,
            tiers=tiers,
            mark=mark,
            hedge=hedge,
            leverage=self._leverage(symbol),
            isolated=self._margin_mode(symbol) == "isolated",
        )

    # --- building the risk core's inputs -----------------------------------------------------

    def _stress_depth(self, symbol: str, account: Account | None) -> dict[str, DepthProfile]:
        """The books the stress grid closes the account's other symbols into, where cached
        (a held symbol without one denies new exposure under ``require_stress_survival``)."""
        if account is None or not self.policy.risk.require_stress_survival:
            return {}
        depth = {}
        for held in {leg.symbol for leg in account.positions if leg.symbol != symbol}:
            book = self._memo("book", held, self.cache.books.get(held), _book)
            if book is not None:
                depth[held] = DepthProfile.from_book(book)
        return depth

    def clock_stepped_back(self) -> None:
        """The clock went back: the marks read until it catches up are stamped earlier than
        they are (the guard's time does not go back), so no return may span the jump."""
        if self.cache.history is not None:
            self.cache.history.clock_stepped_back()

    def correlation_estimate(self, symbols: Sequence[str], now: float) -> CorrelationEstimate:
        """The correlations the verdict's cascade would use between ``symbols`` now: measured
        from the marks the guard has seen (``risk.stress.correlation_source = "estimated"``),
        else every pair at the configured ``cascade_correlation``."""
        return estimate_for_policy(self._recent_closes(now) or {}, self.policy.risk.stress, symbols)

    def _recent_closes(self, now: float) -> Mapping[str, Mapping[int, float]] | None:
        """The history's completed intervals, one object per interval (and per clock step
        back): the verdict keeps its estimate for as long as it is handed the same one."""
        history = self.cache.history
        if history is None:
            return None
        key = (history.bucket(now), history.revision)
        memo = self._closes_memo
        if memo is not None and memo[0] == key:
            return memo[1]
        window = history.window(now)
        self._closes_memo = (key, window)
        return window

    def _held_open_interest(
        self, symbol: str, account: Account | None, now: float
    ) -> dict[str, float]:
        """Each other held symbol's open interest, where a young enough read brought it (the
        cascade spreads a crowd over it; one without is denied by the verdict)."""
        stress = self.policy.risk.stress
        if account is None or not (self.policy.risk.require_stress_survival and stress.cascade):
            return {}
        if not stress.crowd_leverage:
            return {}
        found = {}
        for leg in account.positions:
            if leg.symbol != symbol:
                value = self._open_interest_value(leg.symbol, leg.mark_price, now)
                if value is not None:
                    found[leg.symbol] = value
        return found

    def risk_intent(self, intent: OrderCall) -> OrderIntent:
        params = intent.params
        base = intent.type.lower()
        kind = base if base in ("market", "limit") else ("limit" if intent.price else "market")
        # stopLossPrice, or stopLoss as a number or {"triggerPrice": ...}: one reading, shared
        # with the guard that sends the stop as its own order.
        stop = protective_stop(params)
        if intent.amount is None:
            raise ValueError("amount is required for the verdict")
        return OrderIntent(
            symbol=intent.symbol,
            side=intent.side,  # type: ignore[arg-type]
            amount=intent.amount,
            type=kind,  # type: ignore[arg-type]
            price=intent.price if kind == "limit" else None,
            leverage=self._leverage(intent.symbol),
            margin_mode=self._margin_mode(intent.symbol),  # type: ignore[arg-type]
            reduce_only=intent.reduce_only,
            post_only=intent.post_only and kind == "limit",
            stop_price=stop,
            stop_trigger="last" if params.get("workingType") == "CONTRACT_PRICE" else "mark",
        )

    def snapshot(self, symbol: str, now: float, *, market_order: bool = False) -> MarketSnapshot:
        """The risk core's view of ``symbol``. ``market_order``: the quantity filters of market
        orders apply (Binance's MARKET_LOT_SIZE is tighter than LOT_SIZE)."""
        cache = self.cache
        funding = cache.funding.get(symbol)
        ticker = cache.tickers.get(symbol)
        book_seen = cache.books.get(symbol)
        f = funding.value if funding is not None else {}
        t = ticker.value if ticker is not None else {}
        read = cache.funding_intervals.get(symbol)
        interval_s = read.value if read is not None else _interval_seconds(f.get("interval"))
        # A symbol the whole list left out is on the default interval as of that read.
        read_at = read.fetched if read is not None else cache.intervals_listed_at
        next_funding = f.get("fundingTimestamp") or f.get("nextFundingTimestamp")
        if funding is not None and (read_at is None or funding.fetched >= read_at):
            # The funding read is the newer: its next funding time is the schedule the venue
            # serves now, which a venue that changed the interval since moves off the old one.
            interval_s = _interval_on_schedule(interval_s, next_funding, _stamped(funding))
        # A venue value the snapshot would refuse (a funding rate of 500 %, a time before the
        # epoch) is taken as missing: the verdict then denies new exposure for it, as for any
        # missing piece, and still lets a reducing order go; raised, it failed every call.
        funding_rate = _finite(f.get("fundingRate"))
        next_funding_s = _finite(next_funding)
        return MarketSnapshot(
            symbol=symbol,
            mark=_positive(f.get("markPrice")),
            mark_time=None if funding is None else _not_negative(_stamped(funding)),
            book=self._memo("book", symbol, book_seen, _book),
            rules=self._rules(symbol, market_order=market_order),
            volatility=_volatility(t, self.policy.risk.volatility_window_s),
            funding_rate=None if funding_rate is None or abs(funding_rate) >= 1 else funding_rate,
            next_funding_time=_not_negative(
                None if next_funding_s is None else next_funding_s / 1000.0
            ),
            funding_interval_s=interval_s,
            index=_positive(f.get("indexPrice")),
            last=_positive(t.get("last")),
            last_time=None if ticker is None else _not_negative(_stamped(ticker)),
            price_tracks=cache.price_tracks(symbol),
            crowding=None if self.crowding is None else self.crowding.score(symbol),
            open_interest=self._open_interest_value(symbol, _positive(f.get("markPrice")), now),
        )

    def _open_interest_value(self, symbol: str, mark: float | None, now: float) -> float | None:
        """Open interest in quote currency from the last read, if young enough: Binance gives
        contracts (``openInterestAmount``), valued here at the mark."""
        seen = self._open_interest.get(symbol)
        limit = self.policy.risk.stress.max_open_interest_age_s
        if seen is None or not 0.0 <= now - seen[1] <= limit:
            return None
        answer = seen[0]
        value = _positive(answer.get("openInterestValue"))
        if value is not None:
            return value
        amount = _finite(answer.get("openInterestAmount"))
        if amount is None or amount < 0.0 or mark is None:
            return None
        return amount * mark  # zero is an answer: nobody holds the market

    def account(self, now: float, settle: str = "USDT") -> Account | None:
        """The risk core's view of the account in ``settle`` (the margin asset of the market
        being judged: USDT or USDC on Binance USD-M)."""
        account = self._account_or_why(settle)
        if isinstance(account, str):
            logger.warning("account unusable for the verdict: {}", account)
            return None
        return account

    def _account_or_why(self, settle: str) -> Account | str:
        """The account in ``settle``, or why it cannot be built."""
        cache = self.cache
        if cache.balance is None or cache.positions is None:
            return "balance and positions not both read yet"
        balance = cache.balance.value
        wallet = _wallet_balance(balance, settle)
        free = _finite((balance.get("free") or {}).get(settle))
        legs = []
        try:
            for position in cache.positions.value:
                leg = self._leg(position)
                if leg is not None:
                    legs.append(leg)
        except (KeyError, TypeError, ValueError) as exc:
            return f"positions unusable: {type(exc).__name__}: {exc}"
        # A snapshot: other threads add symbols to the cache meanwhile (see MarketCache).
        open_orders = sum(len(seen.value) for seen in tuple(cache.open_orders.values()))
        if wallet is None:
            return f"no {settle} wallet balance in the balance read"
        try:
            return Account(
                wallet_balance=wallet,
                positions=tuple(legs),
                open_orders=open_orders,
                available_balance=None if free is None else max(0.0, free),
            )
        except ValueError as exc:
            return f"account data unusable: {exc}"

    def _account_observed(self, now: float, settle: str) -> Account | str:
        """The account (or why not), built once per re-read; the triggers see each new one."""
        account = self._account_or_why(settle)
        if isinstance(account, Account) and self.tripwire is not None:
            stops: dict[str, float] = {}
            for leg in account.positions:
                stop = self._protective_stop(leg)
                if stop is None:
                    continue
                held = stops.get(leg.symbol)
                if held is not None:  # a hedge twin's: keep the one that must clear liquidation
                    stop = _binding_stop(self._model, account, leg, held, stop)
                stops[leg.symbol] = stop
            terms, _ = self._fill_terms(now)
            exits = {symbol: self._exit_market(symbol, terms) for symbol in stops}
            self.tripwire.account(
                account, stops, now, {s: e for s, e in exits.items() if e is not None}
            )
        return account

    def _fill_terms(self, now: float) -> tuple[FillTerms, bool]:
        """The fill model's face for the venue's health now, and whether it is the degraded."""
        degraded = self.venue_health(now) != "NORMAL"
        return (self.fills.degraded if degraded else self.fills.expected), degraded

    def _exit_market(self, symbol: str, terms: FillTerms) -> ExitMarket | None:
        """What a stop's close in ``symbol`` would fill in: the last book read and the
        volatility of the last ticker (``None`` without both: the close slips flat)."""
        book = self._memo("book", symbol, self.cache.books.get(symbol), _book)
        ticker = self.cache.tickers.get(symbol)
        if book is None or ticker is None:
            return None
        volatility = _volatility(ticker.value, self.policy.risk.volatility_window_s)
        return None if volatility is None else ExitMarket(book, volatility, terms)

    def _leg(self, position: Mapping[str, Any]) -> PositionLeg | None:
        symbol = position.get("symbol")
        contracts = _finite(position.get("contracts"))
        if not isinstance(symbol, str) or not contracts:
            return None
        tiers = self._tiers(symbol)
        if tiers is None:
            have = "an unusable" if symbol in self.cache.tiers else "no"
            raise ValueError(f"{have} tier table for {symbol}, where a position is open")
        info = position.get("info") or {}
        isolated = position.get("marginMode") == "isolated"
        size = abs(contracts) * float(position.get("contractSize") or 1.0)
        side = position.get("side")
        return PositionLeg(
            symbol=symbol,
            side=1 if side == "long" or (side is None and contracts > 0) else -1,
            quantity=size,
            entry_price=float(position["entryPrice"]),
            mark_price=self._leg_mark(symbol, position),
            tiers=tiers,
            position_side=str(info.get("positionSide") or "BOTH"),  # type: ignore[arg-type]
            isolated_wallet=_finite(info.get("isolatedWallet")) if isolated else None,
        )

    def _leg_mark(self, symbol: str, position: Mapping[str, Any]) -> float:
        """The mark a position is valued at: its row's, else the symbol's latest mark read.
        Never its entry price: a row without a usable mark (absent, 0) valued at entry would
        hide the position's loss from every check."""
        mark = _positive(position.get("markPrice"))
        if mark is None:
            funding = self.cache.funding.get(symbol)
            mark = None if funding is None else _positive(funding.value.get("markPrice"))
        if mark is None:
            raise ValueError(f"no usable mark for the open position in {symbol}")
        return mark

    def _rules(self, symbol: str, *, market_order: bool = False) -> MarketRules | None:
        market = self.cache.markets.get(symbol)
        updated = self.cache.rules_time(symbol)
        tiers_updated = self.cache.tiers_time(symbol)
        tiers = self._tiers(symbol)
        if market is None or updated is None or tiers is None:
            return None
        precision = market.get("precision") or {}
        limits = market.get("limits") or {}
        amount = limits.get("amount") or {}
        cost = limits.get("cost") or {}
        caps = [amount.get("max")]
        if market_order:
            caps.append((limits.get("market") or {}).get("max"))
        known = [float(cap) for cap in caps if cap is not None]
        prices = limits.get("price") or {}
        try:
            return MarketRules(
                tiers=tiers,
                tick_size=float(precision["price"]),
                step_size=float(precision["amount"]),
                updated_at=updated,
                tiers_updated_at=tiers_updated,
                min_qty=float(amount.get("min") or 0.0),
                max_qty=min(known) if known else None,
                min_notional=float(cost.get("min") or 0.0),
                min_price=float(prices.get("min") or 0.0),
                max_price=None if prices.get("max") is None else float(prices["max"]),
                percent_price=_percent_price(market.get("info")),
                liquidation_model=self.liquidation_model,
            )
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("market rules for {} unusable: {}", symbol, exc)
            return None

    def _tiers(self, symbol: str) -> TierTable | None:
        return self._memo("tiers", symbol, self.cache.tiers.get(symbol), _tier_table)  # type: ignore[no-any-return]

    def _memo(self, kind: str, symbol: str, seen: Any, parse: Any) -> Any:
        if seen is None:
            return None
        return self._derived(kind, symbol, (seen,), lambda: parse(seen.value))

    def _derived(self, kind: str, symbol: str, sources: tuple[Any, ...], build: Any) -> Any:
        """``build()``, reused while every one of ``sources`` is the same object as last time
        (the cache replaces a piece on every read, so identity means "nothing new")."""
        key = (kind, symbol)
        hit = self._parsed.get(key)
        if hit is not None and len(hit[0]) == len(sources):
            # A loop, not all() over a generator: asked several times for every order.
            for held, source in zip(hit[0], sources, strict=True):
                if held is not source:
                    break
            else:
                return hit[1]
        value = build()
        self._parsed[key] = (sources, value)
        return value

    def adds_risk(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        """Whether a settings call or a write moves liquidation closer, so the kill switch
        must refuse it as it refuses an opening order (HALTED let ``set_leverage`` up and
        ``reduce_margin`` through, moving a held position's liquidation from 45,185 to 75,306
        while its own protective stop was refused): a leverage above the one the view holds
        (any above 1x while that is unknown), and taking isolated margin out. The venue's own
        endpoints called through ccxt's implicit methods (``fapiPrivatePostLeverage``,
        ``fapiPrivatePostPositionMargin``) are the same calls and are judged the same."""
        flat = method.replace("_", "").lower()
        request = args[0] if args and isinstance(args[0], Mapping) else kwargs.get("params")
        request = request if isinstance(request, Mapping) else {}
        if method == "set_leverage":
            leverage = args[0] if args else kwargs.get("leverage")
            symbol = args[1] if len(args) > 1 else kwargs.get("symbol")
        elif re.search(r"post(?:um|cm)?leverage$", flat):
            leverage, symbol = request.get("leverage"), request.get("symbol")
        elif "positionmargin" in flat:
            return str(request.get("type")) != "1"  # 1 adds margin; 2 (or junk) takes it out
        elif method == "set_margin_mode":
            # No venue changes the margin mode under an open position (Binance: -4048), so it
            # cannot move a held position's liquidation; switching to cross takes risk off.
            return False
        else:
            return method.startswith(("reduce_margin", "set_margin", "modify_margin"))
        wanted = _finite(leverage) if not isinstance(leverage, bool) else None
        if wanted is None:
            return True  # junk: refused as if it raised (the venue would refuse it anyway)
        if wanted <= 1.0:
            return False  # 1x is the floor: it cannot move liquidation closer
        held = self._held_leverage(symbol)
        return held is None or wanted > held

    def _held_leverage(self, symbol: Any) -> float | None:
        """The leverage the view holds for ``symbol``, named as ccxt's unified symbol or as
        the venue's id (``BTCUSDT``: ccxt takes both)."""
        if not isinstance(symbol, str):
            return None
        held = self._setting(symbol, "leverage")
        if held is None:
            for unified, market in list(self.cache.markets.items()):
                if isinstance(market, Mapping) and market.get("id") == symbol:
                    held = self._setting(unified, "leverage")
                    break
        return None if held is None else _finite(held)

    def _setting(self, symbol: str, name: str) -> Any:
        seen = self.cache.settings.get(symbol)
        return None if seen is None else seen.value.get(name)

    def _account_gap(self, symbol: str, now: float) -> str | None:
        """Why the account view cannot judge new exposure on ``symbol`` (its leverage or
        margin mode unknown, or a part read longer ago than ``max_market_data_age_s``), or
        ``None``."""
        missing = [
            label
            for label, name in (("leverage", "leverage"), ("margin mode", "marginMode"))
            if self._setting(symbol, name) is None
        ]
        if missing:
            return f"{' and '.join(missing)} of {symbol} not read from the venue (fetch_leverages)"
        cache = self.cache
        broken = cache.account_stream_gap()
        if broken is not None:
            return broken
        orders = cache.open_orders.get(symbol)
        if orders is None:
            # Unknown is not none: the orders resting on the symbol count against the limits
            # as if filled (see _exposure); judged without them, a restart whose open-orders
            # read failed let a second 0.5 BTC buy past a cap the first already filled.
            return f"open orders of {symbol} not read from the venue (fetch_open_orders)"
        limit = self.policy.risk.max_market_data_age_s
        for label, seen in (
            ("balance", cache.balance),
            ("positions", cache.positions),
            (f"open orders of {symbol}", orders),
            (f"leverage and margin mode of {symbol}", cache.settings.get(symbol)),
        ):
            if seen is not None and cache.account_age(seen, now) > limit:
                age = cache.account_age(seen, now)
                when = "not since our last order" if math.isinf(age) else f"{age:.1f}s ago"
                return (
                    f"{label} last read {when} (the re-read failed); the policy allows "
                    f"{limit:g}s (risk.max_market_data_age_s)"
                )
        return None

    def _leverage(self, symbol: str) -> float:
        # Only reached unknown for a reduce-only order, which the leverage does not affect.
        leverage = self._setting(symbol, "leverage")
        return 1.0 if leverage is None else float(leverage)

    def _margin_mode(self, symbol: str) -> str:
        mode = self._setting(symbol, "marginMode")
        return "cross" if mode is None else str(mode)

    # --- outcomes ----------------------------------------------------------------------------

    def _shrunk(self, intent: OrderCall, verdict: Verdict) -> OrderCall | None:
        if not self.shrink_when_degraded or intent.amount is None:
            return None
        codes = {finding.code for finding in verdict.denials}
        safe = verdict.max_safe_amount
        if codes != {Code.DEGRADED_RISK} or not safe or safe >= intent.amount:
            return None
        return replace(intent, amount=safe)

    def refuse(self, intent: OrderCall, code: str, reason: str, now: float) -> Assessment:
        return self._refuse_unpriced(intent, Code(code), reason, now, self.venue_health(now))

    def _refuse_unpriced(
        self, intent: OrderCall, code: Code, reason: str, now: float, health: str
    ) -> Assessment:
        """A denial decided before the risk core ran: a full verdict all the same (one
        finding, no costing), so ``preview`` answers with one type whatever happened."""
        verdict = risk_verdict.unpriced(
            (Finding(code, Severity.DENY, reason),),
            symbol=intent.symbol,
            side=intent.side,
            amount=math.nan if intent.amount is None else intent.amount,
            now=now,
            degraded=health != "NORMAL",
        )
        return self._deny(intent, verdict, now)

    def _deny(
        self, intent: OrderCall, verdict: Verdict, now: float, *, pending: Committed | None = None
    ) -> Assessment:
        first = verdict.denials[0]
        code, reason = str(first.code), first.message
        if pending is not None:
            reason = f"{reason} ({pending.describe(intent.side)})"
        self._emit(intent, verdict, now, code=code, detail=reason)
        return Assessment(intent, verdict, OrderDenied(code, reason, verdict=verdict))

    def _emit(
        self,
        intent: OrderCall,
        verdict: Verdict,
        now: float,
        *,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        if not self.hooks.listening(EventKind.VERDICT):
            return
        self.hooks.emit(
            VerdictEvent(
                at=now,
                allowed=verdict.allowed,
                code=code,
                symbol=intent.symbol,
                client_order_id=intent.client_order_id or None,
                detail=detail,
            )
        )

    def _rules_changed(self, changes: list[RuleChange], now: float) -> None:
        for change in changes:
            logger.warning(
                "market rules changed: {} {} {!r} -> {!r}",
                change.symbol,
                change.field,
                change.old,
                change.new,
            )
            self.hooks.emit(
                StateChangeEvent(
                    at=now,
                    previous=repr(change.old),
                    current=repr(change.new),
                    metric=f"rules:{change.field}",
                    value=float("nan"),
                    threshold=float("nan"),
                    endpoint=change.symbol,
                )
            )
        self.recheck_positions(now)

    def recheck_positions(self, now: float) -> list[StopCheck]:
        """Re-price each open position's protective stop under the current rules and health.

        For every position with a resting reduce-only stop, :mod:`safeguard.risk._positions`
        works the liquidation price out again (current tiers, wallet, the other cross
        positions, closing fee and safety buffer) and prices the stop's close as the triggers
        do: through the last book read, on the fill model's face for the venue's health (the
        degraded one when DEGRADED or SEVERE), or with the flat stop slippage when no book
        and ticker have been read. A stop whose fill no longer clears liquidation
        by ``min_liquidation_buffer_pct`` is reported as a VerdictEvent (``allowed=False``,
        ``STOP_BEYOND_LIQUIDATION``) and a warning. Returns every check made.
        """
        account = self.account(now)
        if account is None:
            return []
        terms, degraded = self._fill_terms(now)
        limits = self.policy.risk
        options = liquidation_options(limits, terms.taker_fee)
        checks = []
        for leg in account.positions:
            stop = self._protective_stop(leg)
            if stop is None:
                continue
            risk = position_risk(
                account,
                leg,
                stop,
                model=self._model,
                options=options,
                stop_slippage_bps=limits.stop_slippage_bps,
                window_s=limits.volatility_window_s,
                exit_market=self._exit_market(leg.symbol, terms),
            )
            if risk is None:
                continue
            check = StopCheck(
                leg.symbol, stop, risk.exit_price, risk.liquidation, risk.distance_pct, degraded
            )
            checks.append(check)
            if not risk.clears(limits.min_liquidation_buffer_pct):
                detail = (
                    f"{leg.symbol}: stop {stop:g} now fills at {risk.exit_price:.6g}, "
                    f"{risk.distance_pct:.2f} % from liquidation {risk.liquidation:.6g} "
                    f"(policy needs {limits.min_liquidation_buffer_pct:g} %"
                    f"{', degraded fills' if degraded else ''})"
                )
                logger.warning("open position no longer protected: {}", detail)
                self.hooks.emit(
                    VerdictEvent(
                        at=now,
                        allowed=False,
                        code=Code.STOP_BEYOND_LIQUIDATION,
                        symbol=leg.symbol,
                        detail=detail,
                    )
                )
        return checks

    def _protective_stop(self, leg: PositionLeg) -> float | None:
        """The trigger of the resting stop that can only close ``leg`` (the tightest one):
        reduce-only or close-position in one-way mode; in hedge mode, where Binance refuses
        ``reduceOnly``, a stop on the closing side of the leg's own ``positionSide``."""
        seen = self.cache.open_orders.get(leg.symbol)
        closing = "sell" if leg.side > 0 else "buy"
        triggers = []
        for order in seen.value if seen is not None else ():
            info = order.get("info") or {}
            side_of = str(info.get("positionSide") or "").upper()
            if side_of and side_of != leg.position_side:
                continue  # another hedge leg's order
            reduces = (
                order.get("reduceOnly")
                or str(info.get("closePosition")).lower() == "true"
                or side_of in ("LONG", "SHORT")  # closing side of a hedge leg: only closes it
            )
            trigger = _positive(order.get("triggerPrice") or order.get("stopPrice"))
            if (
                reduces
                and trigger is not None
                and order.get("side") == closing
                and not _take_profit(order, info)
            ):
                triggers.append(trigger)
        if not triggers:
            return None
        # The stop nearest the mark fires first: that is the one that must clear liquidation.
        return max(triggers) if leg.side > 0 else min(triggers)

    def health_changed(self, event: Any) -> None:
        """Hook for the health monitor's state changes: re-check open positions when worse."""
        if getattr(event, "metric", "").startswith("rules:"):
            return
        if str(getattr(event, "current", "NORMAL")) != "NORMAL":
            self.recheck_positions(float(event.at))


class _NoTiers(ValueError):
    """The symbol's tier table is missing: the pending orders cannot be priced."""


def _take_profit(order: Mapping[str, Any], info: Mapping[str, Any]) -> bool:
    """A take-profit: it closes on the profit side of the mark, so it protects nothing (taken
    for the stop, one above a long's mark hid a stop beyond liquidation from the trigger)."""
    if order.get("takeProfitPrice"):
        return True
    kinds = (info.get("orderType"), info.get("origType"), info.get("type"), order.get("type"))
    return any(str(kind or "").upper().startswith("TAKE_PROFIT") for kind in kinds)


def _percent_price(info: Any) -> tuple[float, float] | None:
    """Binance's ``PERCENT_PRICE`` filter from the raw market (ccxt keeps it only there)."""
    filters = info.get("filters") if isinstance(info, Mapping) else None
    for entry in filters if isinstance(filters, list) else ():
        if isinstance(entry, Mapping) and entry.get("filterType") == "PERCENT_PRICE":
            down, up = _positive(entry.get("multiplierDown")), _positive(entry.get("multiplierUp"))
            if down is None or up is None:
                raise ValueError(f"PERCENT_PRICE filter unusable: {dict(entry)!r}")
            return down, up
    return None


def _tier_table(raw: Any) -> TierTable | None:
    try:
        return TierTable.from_ccxt(raw)
    except ValueError as exc:
        logger.warning("tier table unusable for the verdict: {}", exc)
        return None


def _binding_stop(
    model: LiquidationModel, account: Account, leg: PositionLeg, one: float, other: float
) -> float:
    """Of two hedge legs' stops in one symbol, the one the triggers must judge (they take one
    per symbol): the nearer the legs' shared liquidation price on its safe side, below it
    (the lower stop) for a net-long account, above it (the higher) otherwise."""
    others = [p for p in account.positions if p is not leg and p.isolated_wallet is None]
    try:
        liq = model.liquidation_price(
            leg,
            wallet_balance=account.wallet_balance,
            others=others if leg.isolated_wallet is None else (),
        )
    except ValueError:
        return min(one, other)  # the triggers refuse isolated hedge legs' symbol stops anyway
    return max(one, other) if liq.safe_side < 0 else min(one, other)


def _book(raw: Any) -> OrderBook | None:
    try:
        return OrderBook.from_ccxt(raw)
    except (ValueError, TypeError, IndexError) as exc:
        logger.warning("order book unusable for the verdict: {}", exc)
        return None


def _finite(value: Any) -> float | None:
    if value.__class__ is float:  # the usual case: no conversion (NaN and inf - inf are NaN)
        return value if value - value == 0.0 else None
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _not_negative(value: float | None) -> float | None:
    return None if value is None or value < 0 else value


def _stamped(seen: Seen) -> float:
    """When a read's data is from: the venue's stamp, or when we read it if it carries none.
    A stamp of 0 is the venue's word (the epoch: stale), not a missing one."""
    return seen.fetched if seen.venue_time is None else seen.venue_time


def _positive(value: Any) -> float | None:
    number = _finite(value)
    return number if number is not None and number > 0 else None


def _interval_symbols(send: Send, value: Any) -> list[str]:
    if send.method == "fetch_funding_interval":
        return [str(send.args[0])] if send.args else []
    return [s for s in value if isinstance(s, str)] if isinstance(value, Mapping) else []


def _interval_on_schedule(interval_s: float, next_funding_ms: Any, at: float) -> float:
    """``interval_s``, unless the venue's next funding time (read at ``at``) cannot be on it:
    off its grid (the venue shortened the interval) or further than one interval ahead (it
    lengthened it). Then the longest whole-hour interval that fits, Binance's 8, 4, 2 or 1
    hours (none fits: ``interval_s``, and the verdict judges the schedule stale)."""
    next_s = _finite(next_funding_ms)
    if next_s is None:
        return interval_s
    next_s /= 1000.0

    def fits(candidate: float) -> bool:
        # Funding times are whole hours on the venue's clock; a millisecond's rounding is not
        # another schedule, nor a reply a second older than its stamp.
        offset = next_s % candidate
        on_grid = min(offset, candidate - offset) < 1e-3
        return on_grid and next_s - at <= candidate + _SCHEDULE_SLACK_S

    if fits(interval_s):
        return interval_s
    for hours in (8, 4, 2, 1):
        if fits(hours * 3600.0):
            return hours * 3600.0
    return interval_s


_SCHEDULE_SLACK_S = 1.0


def _interval_seconds(interval: Any) -> float:
    if isinstance(interval, str) and interval.endswith("h"):
        hours = _positive(interval[:-1])
        if hours is not None:
            return hours * 3600.0
    return 8 * 3600.0


def _volatility(ticker: Mapping[str, Any], window_s: float) -> float | None:
    """Parkinson's range estimator on the 24 h high/low, scaled to the policy's window."""
    high, low = _positive(ticker.get("high")), _positive(ticker.get("low"))
    if high is None or low is None or high < low:
        return None
    daily = math.log(high / low) / (2.0 * math.sqrt(math.log(2.0)))
    return max(_MIN_VOLATILITY, daily * math.sqrt(window_s / _SECONDS_PER_DAY))


def _wallet_balance(balance: Mapping[str, Any], settle: str) -> float | None:
    info = balance.get("info") or {}
    for asset in info.get("assets") or ():
        # dict first: ccxt's rows, on the C check, without Mapping's Python-level one.
        if isinstance(asset, (dict, Mapping)) and asset.get("asset") == settle:
            return _finite(asset.get("walletBalance"))
    return _finite((balance.get("total") or {}).get(settle))


__all__ = ["PreTradeGate", "StopCheck"]
