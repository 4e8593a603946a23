"""Automatic kill-switch triggers: the conditions under which a bot must stop itself.

Each trigger is a pure function of numbers (and ``now``) that returns a :class:`Trip` naming
itself (``code``), saying why in a sentence, carrying the numbers behind it, and the action the
policy wants (``HALTED`` or ``REDUCING``), or ``None``. Nothing here knows the kill switch: the
guard engages it with ``switch.engage(trip.reason, code=trip.code, state=trip.action,
by="trigger")``, and the latch is what keeps it engaged.

:class:`RiskMonitor` is the small holder that is fed observations (events below, each with its
``now``) and keeps the little state triggers need: sliding-window counts, the consecutive-error
streak, the age of each feed, the persisted equity peak and day start. Its rules:

- **A recovered metric does not un-trip.** Triggers only ever engage; only an explicit resume
  of the switch releases it.
- **Cooling.** A trigger that tripped stays quiet for ``cooling_period_s``: a drawdown hovering
  at its limit engages the switch once, not on every mark update. After the cooling period a
  metric still beyond its limit trips again (re-engaging an engaged switch is harmless), so a
  resume that forgot to tell the monitor cannot leave a breach unreported.
  :meth:`RiskMonitor.resume` ends every cooling period at once: after a human re-arms the switch,
  a breach that is still there must trip immediately.
- **Fail closed.** A corrupt equity file refuses to build the monitor (``ConfigError`` naming
  the file); a peak that cannot be saved trips ``STATE_STORE_UNAVAILABLE``; an observation the
  triggers cannot evaluate trips ``TRIGGER_FAILED`` (HALTED) instead of raising into a trading
  loop that might catch and ignore it.

Limits are "beyond": a count equal to its maximum, or a loss equal to the limit, is still
allowed; one more trips.
"""

from __future__ import annotations

import math
import os
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from safeguard._codes import Code
from safeguard._config import Policy, RiskLimits, TriggerConfig
from safeguard.killswitch._equity import EquityMarks, EquityStore
from safeguard.risk import _inputs
from safeguard.risk._liquidation import LiquidationOptions, get_model
from safeguard.risk._models import Account
from safeguard.risk._positions import ExitMarket, account_risks, liquidation_options
from safeguard.risk._stress import account_equity, pool_equity

Action = Literal["HALTED", "REDUCING"]
ACTIONS: tuple[str, ...] = ("HALTED", "REDUCING")


@dataclass(frozen=True, slots=True)
class Trip:
    """A trigger fired. ``numbers`` are the measurements and the limit behind the decision."""

    code: Code
    reason: str
    action: Action
    numbers: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        _inputs.choice("action", self.action, ACTIONS)
        object.__setattr__(self, "code", Code(self.code))
        object.__setattr__(self, "numbers", dict(self.numbers))


# --- pure checks -------------------------------------------------------------------------


def daily_loss_trip(
    marks: EquityMarks, equity: float, limit: float, action: Action = "HALTED"
) -> Trip | None:
    """Loss since the UTC day's start (mark-to-market equity: realised and unrealised PnL,
    fees and funding are all in it) beyond ``limit`` in quote currency."""
    _inputs.positive("max_daily_loss", limit)
    loss = marks.daily_loss(equity)
    if loss <= limit:
        return None
    return Trip(
        Code.DAILY_LOSS,
        f"daily loss {loss:,.2f} exceeds the limit {limit:,.2f} "
        f"(day {marks.day} opened at equity {marks.day_start:,.2f}, now {equity:,.2f})",
        action,
        {"loss": loss, "limit": limit, "day_start_equity": marks.day_start, "equity": equity},
    )


def drawdown_trip(
    marks: EquityMarks, equity: float, max_pct: float, action: Action = "HALTED"
) -> Trip | None:
    """Equity below the persisted peak by more than ``max_pct`` percent of the peak."""
    _inputs.positive("max_drawdown_pct", max_pct)
    drawdown = marks.drawdown_pct(equity)
    if drawdown <= max_pct:
        return None
    return Trip(
        Code.DRAWDOWN,
        f"drawdown {drawdown:.2f}% from the equity peak {marks.peak:,.2f} exceeds the limit "
        f"{max_pct:.2f}% (equity now {equity:,.2f})",
        action,
        {"drawdown_pct": drawdown, "limit_pct": max_pct, "peak": marks.peak, "equity": equity},
    )


_RATE_WHAT: Mapping[Code, str] = {
    Code.ORDER_RATE: "orders sent",
    Code.CANCEL_RATE: "cancels sent",
    Code.REJECTION_BURST: "orders rejected",
    Code.LEVERAGE_CHANGES: "leverage changes",
}


def rate_trip(
    code: Code, count: int, limit: int, window_s: float, action: Action = "HALTED"
) -> Trip | None:
    """More than ``limit`` events of one kind (``code``) within ``window_s`` seconds."""
    what = _RATE_WHAT.get(Code(code))
    if what is None:
        raise ValueError(f"code must be one of {', '.join(_RATE_WHAT)}, got {code!r}")
    _inputs.count("count", count)
    if _inputs.count("limit", limit) < 1:
        raise ValueError(f"limit must be >= 1, got {limit!r}")
    _inputs.positive("window_s", window_s)
    if count <= limit:
        return None
    return Trip(
        Code(code),
        f"{count} {what} within {window_s:g}s exceeds the limit of {limit} (runaway bot?)",
        action,
        {"count": float(count), "limit": float(limit), "window_s": window_s},
    )


def consecutive_errors_trip(streak: int, limit: int, action: Action = "HALTED") -> Trip | None:
    """More than ``limit`` venue errors in a row with no success between them."""
    _inputs.count("streak", streak)
    if _inputs.count("max_consecutive_errors", limit) < 1:
        raise ValueError(f"max_consecutive_errors must be >= 1, got {limit!r}")
    if streak <= limit:
        return None
    return Trip(
        Code.CONSECUTIVE_ERRORS,
        f"{streak} consecutive venue errors exceed the limit of {limit}",
        action,
        {"streak": float(streak), "limit": float(limit)},
    )


def ban_trip(until: float, now: float, action: Action = "HALTED") -> Trip | None:
    """The venue banned us until ``until`` (epoch seconds); nothing if the ban already ended."""
    _inputs.non_negative("until", until)
    _inputs.non_negative("now", now)
    if until <= now:
        return None
    return Trip(
        Code.VENUE_BANNED,
        f"the venue banned this client for {until - now:,.0f}s (until epoch {until:.0f})",
        action,
        {"until": until, "remaining_s": until - now},
    )


def stale_data_trip(
    ages: Mapping[str, float], max_age_s: float, action: Action = "HALTED"
) -> Trip | None:
    """A feed (by name, usually the symbol) whose newest data is older than ``max_age_s``."""
    _inputs.positive("max_data_age_s", max_age_s)
    stale = {name: _inputs.number(f"ages[{name!r}]", age) for name, age in ages.items()}
    stale = {name: age for name, age in stale.items() if age > max_age_s}
    if not stale:
        return None
    oldest = max(stale, key=lambda name: stale[name])
    listed = ", ".join(f"{name} {age:,.1f}s" for name, age in sorted(stale.items()))
    return Trip(
        Code.STALE_MARKET_DATA,
        f"market data older than {max_age_s:g}s: {listed} (frozen feed?)",
        action,
        {"age_s": stale[oldest], "limit_s": max_age_s, "stale_feeds": float(len(stale))},
    )


def liquidation_distance_trip(
    account: Account,
    stops: Mapping[str, float],
    *,
    buffer_pct: float,
    model: str = "binanceusdm",
    options: LiquidationOptions | None = None,
    stop_slippage_bps: float = 0.0,
    exits: Mapping[str, ExitMarket] | None = None,
    window_s: float = 3600.0,
    action: Action = "REDUCING",
) -> Trip | None:
    """A position whose protection no longer clears its liquidation price.

    For a position with a stop (``stops[symbol]``), the stop's fill must sit inside the
    liquidation price by ``buffer_pct`` percent of it (a long's above ``LP * (1 + buffer)``);
    without a stop, the mark itself must. The fill is priced as the pre-trade view prices it
    (:mod:`safeguard.risk._positions`): walked through ``exits[symbol]``'s book on its fill
    terms when the guard has read one, else the trigger moved ``stop_slippage_bps`` against
    the position. Liquidation prices come from the named model with ``options`` (closing fee,
    safety buffer), the cross wallet and the other cross positions coupled in. Stops are keyed
    by symbol (see :func:`~safeguard.risk._positions.account_risks` for hedge legs).
    """
    _inputs.non_negative("buffer_pct", buffer_pct)
    risks = account_risks(
        account,
        stops,
        model=get_model(model),
        options=options or LiquidationOptions(),
        stop_slippage_bps=stop_slippage_bps,
        window_s=window_s,
        exits=exits,
    )
    breaches: list[str] = []
    worst: dict[str, float] = {}
    for risk in risks:
        if risk.clears(buffer_pct):
            continue
        leg = risk.leg
        breaches.append(
            f"{leg.symbol} {'long' if leg.side > 0 else 'short'}: {risk.exit_kind} "
            f"{risk.exit_price:,.2f} is {risk.distance_pct:.2f}% from liquidation "
            f"{risk.liquidation:,.2f} (needs {buffer_pct:g}%)"
        )
        if not worst or risk.distance_pct < worst["distance_pct"]:
            worst = {
                "distance_pct": risk.distance_pct,
                "buffer_pct": buffer_pct,
                "liquidation_price": risk.liquidation,
                "guard_price": risk.exit_price,
            }
    if not breaches:
        return None
    return Trip(
        Code.LIQUIDATION_DISTANCE,
        "protection no longer clears liquidation: " + "; ".join(breaches),
        action,
        worst,
    )


def positions_beyond_limits(
    account: Account, limits: RiskLimits, *, action: Action = "REDUCING"
) -> Trip | None:
    """Open positions beyond limits that were tightened after they were opened.

    A tightened limit applies to the next order by itself; positions already beyond it cannot be
    undone by refusing orders, so the account goes to ``REDUCING`` until they are brought back.
    Leverage is effective leverage, ``max_effective_leverage`` (notional over the equity of the
    position's margin pool: the whole account for cross, its own margin for isolated), not the
    leverage setting ``max_leverage`` caps for orders. The trip's code is the first
    limit breached; its reason lists every breach.
    """
    equity = account_equity(account)
    breaches: list[tuple[Code, str, float, float]] = []
    by_symbol: dict[str, float] = {}
    for leg in account.positions:
        notional = leg.quantity * leg.mark_price
        by_symbol[leg.symbol] = by_symbol.get(leg.symbol, 0.0) + notional
        cap = limits.max_effective_leverage
        if cap is not None:
            pool = pool_equity(account, leg)
            leverage = notional / pool if pool > 0.0 else math.inf
            if leverage > cap:
                breaches.append(
                    (Code.LEVERAGE_ABOVE_POLICY, f"{leg.symbol} effective leverage", leverage, cap)
                )
    for symbol, notional in by_symbol.items():
        cap = limits.max_notional_per_position
        if cap is not None and notional > cap:
            breaches.append((Code.NOTIONAL_PER_POSITION, f"{symbol} notional", notional, cap))
        share = limits.max_concentration
        if share is not None:
            concentration = notional / equity if equity > 0.0 else math.inf
            if concentration > share:
                breaches.append(
                    (Code.CONCENTRATION, f"{symbol} share of equity", concentration, share)
                )
    total = sum(by_symbol.values())
    if limits.max_notional_per_account is not None and total > limits.max_notional_per_account:
        breaches.append(
            (Code.NOTIONAL_PER_ACCOUNT, "account notional", total, limits.max_notional_per_account)
        )
    if not breaches:
        return None
    code, _, value, limit = breaches[0]
    return Trip(
        code,
        "open positions exceed the current limits: "
        + "; ".join(f"{what} {v:,.4g} > {cap:,.4g}" for _, what, v, cap in breaches),
        action,
        {"value": value, "limit": limit, "breaches": float(len(breaches))},
    )


def _failed(event: object, exc: Exception) -> Trip:
    return Trip(
        Code.TRIGGER_FAILED,
        f"the triggers could not judge {type(event).__name__}: {type(exc).__name__}: {exc}",
        "HALTED",
        {},
    )


# --- observations ------------------------------------------------------------------------


def _check_now(now: float) -> None:
    _inputs.non_negative("now", now)


@dataclass(frozen=True, slots=True)
class EquityUpdate:
    """Mark-to-market equity (wallet incl. realised PnL, fees and funding, plus unrealised PnL)."""

    now: float
    equity: float

    def __post_init__(self) -> None:
        _check_now(self.now)
        _inputs.number("equity", self.equity)


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """The account after a fill or a mark update; ``stops`` maps a symbol to its stop price,
    ``exits`` to the market its close would fill in (the last book read, when there is one).

    Feeds the equity triggers, the liquidation-distance trigger and
    :func:`positions_beyond_limits`.
    """

    now: float
    account: Account
    stops: Mapping[str, float] = field(default_factory=dict)
    exits: Mapping[str, ExitMarket] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_now(self.now)
        if not isinstance(self.account, Account):
            raise ValueError(f"account must be an Account, got {type(self.account).__name__}")


@dataclass(frozen=True, slots=True)
class AccountUnjudged:
    """The account was read but cannot be judged (a position without a tier table that could
    not be loaded, positions or a balance the triggers cannot use): the equity and
    liquidation-distance triggers are blind, which trips ``TRIGGER_FAILED``."""

    now: float
    reason: str

    def __post_init__(self) -> None:
        _check_now(self.now)
        if not isinstance(self.reason, str) or not self.reason:
            raise ValueError(f"reason must be a non-empty string, got {self.reason!r}")


@dataclass(frozen=True, slots=True)
class MarkUpdate:
    """Fresh market data for ``symbol``. ``data_time`` is the venue's timestamp of the data
    (epoch seconds) when known: a feed that keeps delivering an old price is still frozen.
    ``stale_since``: the data is freshly stamped but cannot be trusted since then (its prices
    stopped moving, see :mod:`safeguard.risk._freshness`); the feed's age counts from it."""

    now: float
    symbol: str
    data_time: float | None = None
    stale_since: float | None = None

    def __post_init__(self) -> None:
        _check_now(self.now)
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"symbol must be a non-empty string, got {self.symbol!r}")
        if self.data_time is not None:
            _inputs.non_negative("data_time", self.data_time)
        if self.stale_since is not None:
            _inputs.non_negative("stale_since", self.stale_since)


@dataclass(frozen=True, slots=True)
class OrderSubmitted:
    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class OrderCanceled:
    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class OrderRejected:
    """The venue refused an order (or a pre-trade check did, if the guard reports those)."""

    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class LeverageChanged:
    now: float
    symbol: str

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class VenueError:
    """A request failed at the venue (network, 5xx, timeout)."""

    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class VenueOk:
    """A request succeeded: ends the consecutive-error streak."""

    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


@dataclass(frozen=True, slots=True)
class VenueBan:
    """The venue banned us (HTTP 418, or an account-level ban) until epoch ``until``."""

    now: float
    until: float

    def __post_init__(self) -> None:
        _check_now(self.now)
        _inputs.non_negative("until", self.until)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Money moved in (``amount`` > 0) or out: shifts the peak and day start, not a PnL."""

    now: float
    amount: float

    def __post_init__(self) -> None:
        _check_now(self.now)
        _inputs.number("amount", self.amount)


@dataclass(frozen=True, slots=True)
class Tick:
    """Nothing happened; time passed. Lets a frozen feed trip when no data arrives at all."""

    now: float

    def __post_init__(self) -> None:
        _check_now(self.now)


Observation = (
    EquityUpdate
    | AccountUpdate
    | AccountUnjudged
    | MarkUpdate
    | OrderSubmitted
    | OrderCanceled
    | OrderRejected
    | LeverageChanged
    | VenueError
    | VenueOk
    | VenueBan
    | Transfer
    | Tick
)


class _Window:
    """Events within the last ``window_s``, counted up to ``limit + 1`` (all a trip needs to
    know), so memory and time per event stay bounded however generous the limit."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=limit + 1)

    def add(self, now: float) -> int:
        times = self._times
        times.append(now)
        horizon = now - self.window_s
        # Times arrive in order but for clock jitter; a late one left in the middle is counted
        # a little longer than it should be, which errs toward tripping.
        while times[0] <= horizon:
            times.popleft()
        return len(times)


class RiskMonitor:
    """Feeds observations to the triggers and returns the trips to engage the switch with.

    Build it with :meth:`from_policy` (which loads the persisted equity marks and raises
    :class:`~safeguard._errors.ConfigError` naming the file if they are corrupt), or directly
    with a :class:`TriggerConfig`. ``store=None`` keeps the marks in memory only (tests,
    backtests). Thread-safe.
    """

    def __init__(
        self,
        config: TriggerConfig | None = None,
        *,
        limits: RiskLimits | None = None,
        store: EquityStore | None = None,
        liquidation_model: str = "binanceusdm",
        liquidation_options: LiquidationOptions | None = None,
    ) -> None:
        self.config = config or TriggerConfig()
        self.limits = limits or RiskLimits()
        self._store = store
        get_model(liquidation_model)  # an unknown name fails here, not on the first update
        self._model = liquidation_model
        self._options = liquidation_options or LiquidationOptions()
        self._marks = store.load() if store is not None else None
        self._lock = threading.Lock()
        self._last_trip: dict[Code, float] = {}
        self._tripped: list[Trip] = []
        self._feeds: dict[str, float] = {}
        self._stale_since: dict[str, float] = {}
        self._streak = 0
        cfg = self.config
        self._windows: dict[Code, _Window] = {
            code: _Window(limit, cfg.rate_window_s)
            for code, limit in (
                (Code.ORDER_RATE, cfg.max_orders_per_window),
                (Code.CANCEL_RATE, cfg.max_cancels_per_window),
                (Code.REJECTION_BURST, cfg.max_rejections_per_window),
                (Code.LEVERAGE_CHANGES, cfg.max_leverage_changes_per_window),
            )
            if limit is not None
        }

    @classmethod
    def from_policy(
        cls,
        policy: Policy,
        *,
        state_dir: str | os.PathLike[str] | None = None,
        account: str | None = None,
        liquidation_model: str = "binanceusdm",
    ) -> RiskMonitor:
        """A monitor for ``policy``, its equity marks kept in the kill switch's state dir
        (under ``account``'s name when several accounts share the directory).

        Liquidation prices count the closing taker fee and the safety buffer the policy's risk
        limits ask for, as the pre-trade verdict does.
        """
        directory = policy.kill_switch.state_dir if state_dir is None else state_dir
        return cls(
            policy.kill_switch.triggers,
            limits=policy.risk,
            store=EquityStore(directory, account=account),
            liquidation_model=liquidation_model,
            liquidation_options=liquidation_options(policy.risk, policy.fills.taker_fee),
        )

    @property
    def marks(self) -> EquityMarks | None:
        """The equity peak and day start, once an equity has been observed (or loaded)."""
        return self._marks

    @property
    def tripped(self) -> tuple[Trip, ...]:
        """Every trip returned since the last :meth:`resume`, oldest first."""
        with self._lock:
            return tuple(self._tripped)

    def observe(self, event: Observation) -> tuple[Trip, ...]:
        """Take one observation; return the trips it caused (after cooling), most often none."""
        if not isinstance(event, Observation):
            raise TypeError(f"not a monitor event: {type(event).__name__}")
        with self._lock:
            now = event.now
            try:
                trips = self._evaluate(event)
            except Exception as exc:
                # A limit that cannot be computed is a limit nobody is checking: halt, loudly.
                trips = [_failed(event, exc)]
            limit = self.config.max_data_age_s
            # Every event carries the time, so every event can notice a feed that went quiet.
            if limit is not None and self._feeds:
                ages = self._ages(now)
                if max(ages.values()) > limit:
                    action = self._action(Code.STALE_MARKET_DATA)
                    trips.append(stale_data_trip(ages, limit, action))
            return self._cool([t for t in trips if t is not None], now)

    def _ages(self, now: float) -> dict[str, float]:
        feeds = self._feeds
        for symbol, seen in feeds.items():
            if seen > now:
                # The clock stepped back past the data: age it from now, or a feed that
                # froze just after the step would look young for as long as the step.
                feeds[symbol] = now
        return {
            symbol: now - min(seen, self._stale_since.get(symbol, seen))
            for symbol, seen in feeds.items()
        }

    def set_limits(self, limits: RiskLimits) -> None:
        """Limits reloaded at run time. They apply from the next observation: an account update
        finding positions already beyond a tightened limit returns a ``REDUCING`` trip."""
        if not isinstance(limits, RiskLimits):
            raise ValueError(f"limits must be RiskLimits, got {type(limits).__name__}")
        with self._lock:
            self.limits = limits

    def forget_feed(self, symbol: str) -> None:
        """Stop watching ``symbol``'s data age (the bot unsubscribed on purpose)."""
        with self._lock:
            self._feeds.pop(symbol, None)
            self._stale_since.pop(symbol, None)

    def resume(self, now: float) -> None:
        """The operator re-armed the switch: forget past trips and end every cooling period,
        so a breach that is still there trips again on the next observation."""
        _check_now(now)
        with self._lock:
            self._last_trip.clear()
            self._tripped.clear()

    def restart_marks(self, equity: float, now: float) -> tuple[Trip, ...]:
        """Deliberately start a new peak and day at ``equity`` (an operator decision, e.g. after
        reviewing a drawdown). Persisted like any other change."""
        with self._lock:
            trips = self._set_marks(EquityMarks.start(equity, now), now)
            return self._cool([t for t in trips if t is not None], now)

    # --- internals ------------------------------------------------------------------------

    def _evaluate(self, event: Observation) -> list[Trip | None]:
        cfg = self.config
        match event:
            case EquityUpdate(now=now, equity=equity):
                return self._on_equity(equity, now)
            case AccountUpdate(now=now, account=account, stops=stops, exits=exits):
                trips = self._on_equity(account_equity(account), now)
                if cfg.on_liquidation_distance:
                    trips.append(
                        liquidation_distance_trip(
                            account,
                            stops,
                            buffer_pct=self.limits.min_liquidation_buffer_pct,
                            model=self._model,
                            options=self._options,
                            stop_slippage_bps=self.limits.stop_slippage_bps,
                            exits=exits,
                            window_s=self.limits.volatility_window_s,
                            action=self._action(Code.LIQUIDATION_DISTANCE),
                        )
                    )
                trips.append(positions_beyond_limits(account, self.limits))
                return trips
            case AccountUnjudged(reason=reason):
                # Equity and liquidation limits nobody can check are limits nobody checks.
                return [
                    Trip(
                        Code.TRIGGER_FAILED,
                        f"the triggers cannot judge the account: {reason}",
                        "HALTED",
                        {},
                    )
                ]
            case MarkUpdate(now=now, symbol=symbol, data_time=data_time, stale_since=stale):
                # A stamp in the future says the data is no older than now, not younger.
                seen = now if data_time is None else min(data_time, now)
                self._feeds[symbol] = max(seen, self._feeds.get(symbol, seen))
                if stale is None:
                    self._stale_since.pop(symbol, None)
                else:
                    self._stale_since[symbol] = stale
                return []
            case OrderSubmitted(now=now):
                return [self._count(Code.ORDER_RATE, now)]
            case OrderCanceled(now=now):
                return [self._count(Code.CANCEL_RATE, now)]
            case OrderRejected(now=now):
                return [self._count(Code.REJECTION_BURST, now)]
            case LeverageChanged(now=now):
                return [self._count(Code.LEVERAGE_CHANGES, now)]
            case VenueError():
                self._streak += 1
                if cfg.max_consecutive_errors is None:
                    return []
                return [
                    consecutive_errors_trip(
                        self._streak,
                        cfg.max_consecutive_errors,
                        self._action(Code.CONSECUTIVE_ERRORS),
                    )
                ]
            case VenueOk():
                self._streak = 0
                return []
            case VenueBan(now=now, until=until):
                if not cfg.on_ban:
                    return []
                return [ban_trip(until, now, self._action(Code.VENUE_BANNED))]
            case Transfer(now=now, amount=amount):
                if self._marks is None:
                    return []
                return self._set_marks(self._marks.after_transfer(amount), now)
            case Tick():
                return []
        raise AssertionError(f"unhandled event {type(event).__name__}")  # pragma: no cover

    def _on_equity(self, equity: float, now: float) -> list[Trip | None]:
        if self._marks is None:
            if equity <= 0.0:
                # No peak can start at zero or below; nothing to measure a drawdown from yet.
                return []
            trips = self._set_marks(EquityMarks.start(equity, now), now)
        else:
            trips = self._set_marks(self._marks.advance(equity, now), now)
        marks = self._marks
        assert marks is not None
        cfg = self.config
        if cfg.max_daily_loss is not None:
            trips.append(
                daily_loss_trip(marks, equity, cfg.max_daily_loss, self._action(Code.DAILY_LOSS))
            )
        if cfg.max_drawdown_pct is not None:
            trips.append(
                drawdown_trip(marks, equity, cfg.max_drawdown_pct, self._action(Code.DRAWDOWN))
            )
        return trips

    def _set_marks(self, marks: EquityMarks, now: float) -> list[Trip | None]:
        if marks is self._marks:
            return []
        # Decisions use the new marks even if saving them fails; the failure itself halts.
        self._marks = marks
        if self._store is None:
            return []
        try:
            self._store.save(marks)
        except OSError as exc:
            return [
                Trip(
                    Code.STATE_STORE_UNAVAILABLE,
                    f"cannot persist the equity peak to {self._store.path}: {exc}; a restart "
                    "would forget it",
                    "HALTED",
                    {"peak": marks.peak},
                )
            ]
        return []

    def _count(self, code: Code, now: float) -> Trip | None:
        window = self._windows.get(code)
        if window is None:
            return None
        count = window.add(now)
        return rate_trip(code, count, window.limit, window.window_s, self._action(code))

    def _action(self, code: Code) -> Action:
        for name, action in self.config.actions.items():
            if name == code:
                return action
        return self.config.action

    def _cool(self, trips: Sequence[Trip], now: float) -> tuple[Trip, ...]:
        cooling = self.config.cooling_period_s
        out: list[Trip] = []
        for trip in trips:
            last = self._last_trip.get(trip.code)
            # A clock stepped backwards must not stretch the quiet period: it ends the cooling.
            if last is not None and 0.0 <= now - last < cooling:
                continue
            self._last_trip[trip.code] = now
            self._tripped.append(trip)
            out.append(trip)
        return tuple(out)


__all__ = [
    "ACTIONS",
    "AccountUnjudged",
    "AccountUpdate",
    "Action",
    "EquityUpdate",
    "LeverageChanged",
    "MarkUpdate",
    "Observation",
    "OrderCanceled",
    "OrderRejected",
    "OrderSubmitted",
    "RiskMonitor",
    "Tick",
    "Transfer",
    "Trip",
    "VenueBan",
    "VenueError",
    "VenueOk",
    "ban_trip",
    "consecutive_errors_trip",
    "daily_loss_trip",
    "drawdown_trip",
    "liquidation_distance_trip",
    "positions_beyond_limits",
    "rate_trip",
    "stale_data_trip",
]
