"""The inputs of a pre-trade verdict: the order, the market around it, and the account.

All are frozen, slotted, keyword-only dataclasses that validate on construction: a field that
is present must make sense (a NaN mark, a negative amount or ``"BUY"`` for a side is a
``ValueError`` naming the field). A market field that is *absent* (``None``) is allowed here
because feeds do go missing; the verdict then denies the order (it fails closed) instead of
this constructor raising, so the caller gets a verdict that says which data was missing.

Times are epoch seconds. Prices are quote currency per base unit; amounts are base units.
Contracts are linear (USDT-margined); inverse contracts are not priced by the verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from safeguard.risk import _inputs
from safeguard.risk._book import SIDES, OrderBook, Side
from safeguard.risk._crowding import CrowdingScore
from safeguard.risk._freshness import PriceTrack
from safeguard.risk._liquidation import PositionLeg, get_model
from safeguard.risk._tiers import TierTable

OrderType = Literal["market", "limit"]
MarginMode = Literal["isolated", "cross"]
StopTrigger = Literal["mark", "last"]

ORDER_TYPES: tuple[str, ...] = ("market", "limit")
MARGIN_MODES: tuple[str, ...] = ("isolated", "cross")
STOP_TRIGGERS: tuple[str, ...] = ("mark", "last")

_EIGHT_HOURS = 8 * 3600.0


def _optional(check: object, name: str, value: object) -> None:
    if value is not None:
        check(name, value)  # type: ignore[operator]


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderIntent:
    """An order a strategy wants to place, and the stop that is to protect what it leaves.

    ``stop_price`` is the trigger of the stop-market order protecting the position *after* this
    order; ``stop_trigger`` is the price that stop watches (Binance ``workingType``: mark price
    or last traded price). ``leverage`` is the symbol's leverage setting the order runs under.

    This is the verdict's reading of an order; the guard parses a ccxt call into a
    :class:`~safeguard.guard._orders.OrderCall` first (raw type and params, client id).
    """

    symbol: str
    side: Side
    amount: float
    type: OrderType = "market"
    price: float | None = None
    """Limit price; required for limit orders and refused for market orders."""
    leverage: float = 1.0
    margin_mode: MarginMode = "cross"
    reduce_only: bool = False
    post_only: bool = False
    stop_price: float | None = None
    stop_trigger: StopTrigger = "mark"

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValueError(f"symbol must be a non-empty string, got {self.symbol!r}")
        _inputs.choice("side", self.side, SIDES)
        _inputs.positive("amount", self.amount)
        _inputs.choice("type", self.type, ORDER_TYPES)
        if self.type == "limit":
            if self.price is None:
                raise ValueError("price is required for a limit order")
            _inputs.positive("price", self.price)
        elif self.price is not None:
            raise ValueError(f"price must be None for a market order, got {self.price!r}")
        if _inputs.number("leverage", self.leverage) < 1.0:
            raise ValueError(f"leverage must be >= 1, got {self.leverage!r}")
        _inputs.choice("margin_mode", self.margin_mode, MARGIN_MODES)
        _inputs.flag("reduce_only", self.reduce_only)
        _inputs.flag("post_only", self.post_only)
        if self.post_only and self.type != "limit":
            raise ValueError("post_only applies to limit orders only")
        _optional(_inputs.positive, "stop_price", self.stop_price)
        _inputs.choice("stop_trigger", self.stop_trigger, STOP_TRIGGERS)

    @property
    def direction(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.side == "buy" else -1


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketRules:
    """What the venue publishes about a market and changes rarely: tiers, filters, the model.

    ``updated_at`` is when these were fetched; rules older than
    ``RiskLimits.max_rules_age_s`` deny new exposure, and so does a tier ladder fetched at
    ``tiers_updated_at`` (when given: the guard always says) longer than
    ``RiskLimits.max_tiers_age_s`` ago. ``liquidation_model`` names the venue formula in
    :func:`safeguard.risk._liquidation.get_model`.
    """

    tiers: TierTable
    tick_size: float
    step_size: float
    updated_at: float
    min_qty: float = 0.0
    max_qty: float | None = None
    min_notional: float = 0.0
    liquidation_model: str = "binanceusdm"
    min_price: float = 0.0
    """The venue's lowest price (Binance ``PRICE_FILTER.minPrice``); a price also needs at
    least one tick whatever this says."""
    max_price: float | None = None
    """The venue's highest price (``PRICE_FILTER.maxPrice``); ``None``: no cap published."""
    percent_price: tuple[float, float] | None = None
    """Binance's ``PERCENT_PRICE`` multipliers ``(down, up)``: a limit buy above
    ``mark x up`` or a limit sell below ``mark x down`` is refused by the venue."""
    tiers_updated_at: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.tiers, TierTable):
            raise ValueError(f"tiers must be a TierTable, got {type(self.tiers).__name__}")
        _inputs.positive("tick_size", self.tick_size)
        _inputs.positive("step_size", self.step_size)
        _inputs.non_negative("updated_at", self.updated_at)
        _optional(_inputs.non_negative, "tiers_updated_at", self.tiers_updated_at)
        _inputs.non_negative("min_qty", self.min_qty)
        _optional(_inputs.positive, "max_qty", self.max_qty)
        if self.max_qty is not None and self.max_qty < self.min_qty:
            raise ValueError(f"max_qty ({self.max_qty!r}) is below min_qty ({self.min_qty!r})")
        _inputs.non_negative("min_notional", self.min_notional)
        _inputs.non_negative("min_price", self.min_price)
        _optional(_inputs.positive, "max_price", self.max_price)
        if self.max_price is not None and self.max_price < self.min_price:
            raise ValueError(
                f"max_price ({self.max_price!r}) is below min_price ({self.min_price!r})"
            )
        if self.percent_price is not None:
            if not isinstance(self.percent_price, tuple) or len(self.percent_price) != 2:
                raise ValueError(
                    f"percent_price must be a (down, up) pair, got {self.percent_price!r}"
                )
            down, up = self.percent_price
            _inputs.positive("percent_price down", down)
            _inputs.positive("percent_price up", up)
            if not down <= 1.0 <= up:
                raise ValueError(f"percent_price must bracket 1, got {self.percent_price!r}")
        if not isinstance(self.liquidation_model, str):
            raise ValueError(f"liquidation_model must be a string, got {self.liquidation_model!r}")
        get_model(self.liquidation_model)  # an unknown name fails here, not mid-verdict

    @property
    def max_position_notional(self) -> float:
        """The largest notional any tier holds (``inf`` for an open-ended last tier)."""
        return self.tiers.tiers[-1].max_notional


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketSnapshot:
    """The market an order meets, with the time each part was observed.

    ``volatility`` is the standard deviation of returns over ``RiskLimits.volatility_window_s``
    (a fraction: 0.01 is 1 %). ``funding_rate`` is the rate of the next payment (positive: longs
    pay), paid every ``funding_interval_s`` from ``next_funding_time``. ``book_time`` defaults to
    the book's own timestamp.
    """

    symbol: str
    mark: float | None
    mark_time: float | None
    book: OrderBook | None
    rules: MarketRules | None
    volatility: float | None
    funding_rate: float | None
    next_funding_time: float | None
    funding_interval_s: float = _EIGHT_HOURS
    index: float | None = None
    last: float | None = None
    book_time: float | None = None
    last_time: float | None = None
    """When the last price was true (the ticker's time): a stop watching it needs it fresh."""
    price_tracks: tuple[PriceTrack, ...] = ()
    """How long each published price (mark, last, book mid) has stood still: a price frozen
    under fresh timestamps is stale (:mod:`safeguard.risk._freshness`)."""
    funding_cap: float | None = None
    """The venue's cap on the funding rate per interval (a fraction; the floor is its
    negative): ``risk.funding_at_cap`` prices the horizon's funding at it."""
    open_interest: float | None = None
    """Open interest in quote currency (contracts times mark): the crowd the cascade spreads
    over ``risk.stress.crowd_leverage``."""
    crowding: CrowdingScore | None = None
    """The symbol's crowding (:class:`~safeguard.risk._crowding.CrowdingMonitor`): the verdict
    tightens leverage and size for orders adding to the crowded side (``risk.crowding``)."""

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValueError(f"symbol must be a non-empty string, got {self.symbol!r}")
        _optional(_inputs.positive, "mark", self.mark)
        _optional(_inputs.non_negative, "mark_time", self.mark_time)
        if self.book is not None and not isinstance(self.book, OrderBook):
            raise ValueError(f"book must be an OrderBook, got {type(self.book).__name__}")
        if self.rules is not None and not isinstance(self.rules, MarketRules):
            raise ValueError(f"rules must be MarketRules, got {type(self.rules).__name__}")
        _optional(_inputs.positive, "volatility", self.volatility)
        if (
            self.funding_rate is not None
            and abs(_inputs.number("funding_rate", self.funding_rate)) >= 1
        ):
            raise ValueError(
                f"funding_rate must be a fraction in (-1, 1), got {self.funding_rate!r}"
            )
        _optional(_inputs.non_negative, "next_funding_time", self.next_funding_time)
        _inputs.positive("funding_interval_s", self.funding_interval_s)
        _optional(_inputs.positive, "index", self.index)
        _optional(_inputs.positive, "last", self.last)
        _optional(_inputs.non_negative, "book_time", self.book_time)
        _optional(_inputs.non_negative, "last_time", self.last_time)
        _optional(_inputs.non_negative, "open_interest", self.open_interest)
        if self.crowding is not None and not isinstance(self.crowding, CrowdingScore):
            raise ValueError(f"crowding must be a CrowdingScore, got {self.crowding!r}")
        if (
            self.funding_cap is not None
            and not 0.0 < _inputs.number("funding_cap", self.funding_cap) < 1.0
        ):
            raise ValueError(f"funding_cap must be a fraction in (0, 1), got {self.funding_cap!r}")
        if not isinstance(self.price_tracks, tuple) or not all(
            isinstance(track, PriceTrack) for track in self.price_tracks
        ):
            raise ValueError(
                f"price_tracks must be a tuple of PriceTrack, got {self.price_tracks!r}"
            )
        if self.book_time is None and self.book is not None and self.book.timestamp is not None:
            object.__setattr__(self, "book_time", self.book.timestamp)


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """The account the order would change.

    ``positions`` are the open legs (any symbol); a leg with ``isolated_wallet=None`` is cross.
    ``available_balance`` is the free margin for new orders (ccxt ``balance["free"]``); leave it
    ``None`` only for an account with no positions and no open orders, where it equals the wallet
    (otherwise the verdict denies with MISSING_ACCOUNT rather than guess).
    ``open_orders`` counts resting orders, stops included.
    """

    wallet_balance: float
    positions: tuple[PositionLeg, ...] = ()
    open_orders: int = 0
    available_balance: float | None = None

    def __post_init__(self) -> None:
        _inputs.non_negative("wallet_balance", self.wallet_balance)
        if not isinstance(self.positions, tuple):
            raise ValueError(f"positions must be a tuple, got {type(self.positions).__name__}")
        seen: set[tuple[str, str]] = set()
        for index, leg in enumerate(self.positions):
            if not isinstance(leg, PositionLeg):
                raise ValueError(f"positions[{index}] must be a PositionLeg, got {leg!r}")
            key = (leg.symbol, leg.position_side)
            if key in seen:
                raise ValueError(
                    f"positions[{index}]: a second {leg.symbol} {leg.position_side} leg"
                )
            seen.add(key)
        _inputs.count("open_orders", self.open_orders)
        _optional(_inputs.non_negative, "available_balance", self.available_balance)

    def leg(self, symbol: str) -> PositionLeg | None:
        """The one-way (``BOTH``) leg held in ``symbol``, if any."""
        for leg in self.positions:
            if leg.symbol == symbol and leg.position_side == "BOTH":
                return leg
        return None


def is_multiple(value: float, step: float) -> bool:
    """Whether ``value`` is a whole number of ``step`` (to float noise, not to a tolerance)."""
    units = value / step
    if not math.isfinite(units):
        return False  # a price past the float range is not on any tick
    return abs(units - round(units)) <= 1e-9 * max(1.0, abs(units))


__all__ = [
    "MARGIN_MODES",
    "ORDER_TYPES",
    "STOP_TRIGGERS",
    "Account",
    "MarginMode",
    "MarketRules",
    "MarketSnapshot",
    "OrderIntent",
    "OrderType",
    "StopTrigger",
    "is_multiple",
]
