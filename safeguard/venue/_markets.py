"""The venue's listed contracts: linear USDT perpetuals with Binance-style filters.

A :class:`MarketSpec` is everything the engine needs to accept or refuse an order for one
symbol: tick and step (prices and quantities live as integer counts of them inside the engine,
so equality never depends on float noise), quantity limits, minimum notional, the maintenance
ladder, fees and the funding schedule. Specs validate themselves on construction and refuse
anything a venue could not list (a NaN tick, a min above a max, fees outside (-1 %, 1 %)).

Money is kept in integer units of 1e-8 quote (:data:`MONEY_SCALE`). A fill's notional is
``price_ticks * qty_steps * notional_unit`` units, exact, because ``tick * step`` must be a
whole number of 1e-8 (checked here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from types import MappingProxyType
from typing import Any, TypeVar

from safeguard.risk._tiers import (
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
    TierTable,
)
from safeguard.venue._errors import VenueReject

MONEY_SCALE = 100_000_000
"""Money units per 1 quote currency (USDT): balances and every cash flow are integers of 1e-8."""

# How far a price/tick ratio may sit from a whole number and still count as on the tick: float
# parsing of a decimal string ("90000.1") leaves ~1e-11 of noise; a real misfit is >= 1e-4.
_GRID_TOLERANCE = 1e-6
# Ladders allowing more leverage than this are looked up tier by tier instead of tabulated.
_LEVERAGE_TABLE_CAP = 1000
_TEXTS_CAP = 4096
"""Entries kept per remembered-number table of a market before it starts again empty."""
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One linear perpetual contract, with Binance USD-M's filters and rules."""

    symbol: str
    base: str
    quote: str
    tick_size: float
    step_size: float
    min_qty: float
    max_qty: float
    market_max_qty: float
    min_notional: float
    price_precision: int
    quantity_precision: int
    tiers: TierTable
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    funding_interval_s: float = 8 * 3600.0
    funding_cap: float = 0.003
    """Largest absolute funding rate per interval (Binance caps and floors it per symbol)."""
    initial_price: float = 100.0
    notional_unit: int = field(init=False, repr=False, compare=False)
    """Money units (1e-8 quote) in one tick times one step."""
    min_steps: int = field(init=False, repr=False, compare=False)
    max_steps: int = field(init=False, repr=False, compare=False)
    market_max_steps: int = field(init=False, repr=False, compare=False)
    _price_scale: float = field(init=False, repr=False, compare=False)
    _qty_scale: float = field(init=False, repr=False, compare=False)
    price_format: str = field(init=False, repr=False, compare=False)
    qty_format: str = field(init=False, repr=False, compare=False)
    avg_price_format: str = field(init=False, repr=False, compare=False)
    """``format()`` specs: prices, quantities, and average prices (three more digits)."""
    price_texts: dict[int, str] = field(init=False, repr=False, compare=False)
    qty_texts: dict[int, str] = field(init=False, repr=False, compare=False)
    """What :meth:`fmt_price` and :meth:`fmt_qty` printed, by tick and step count (at most
    ``_TEXTS_CAP`` each): every order answer prints its price and quantity, and a book's
    answers print the same few around the touch again and again (``format`` is ~20x a hit)."""
    price_values: dict[int, float] = field(init=False, repr=False, compare=False)
    qty_values: dict[int, float] = field(init=False, repr=False, compare=False)
    """The same for :meth:`price_of` and :meth:`qty_of` (every fill records both; ``round``
    to a number of digits costs more than ``format``)."""
    max_notional_by_leverage: tuple[float, ...] = field(init=False, repr=False, compare=False)
    """Largest position notional the ladder allows at each whole leverage (index = leverage),
    from 0 to the first tier's cap: every margin check reads it, so it is not re-derived."""

    def __post_init__(self) -> None:
        for name in ("symbol", "base", "quote"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.isalnum() or not value.isupper():
                raise ValueError(f"{name} must be an upper-case alphanumeric string, got {value!r}")
        if self.symbol != self.base + self.quote:
            raise ValueError(f"symbol {self.symbol!r} must be base + quote")
        for name in (
            "tick_size",
            "step_size",
            "min_qty",
            "max_qty",
            "market_max_qty",
            "min_notional",
            "initial_price",
            "funding_interval_s",
            "funding_cap",
        ):
            _positive(name, getattr(self, name))
        for name in ("maker_fee", "taker_fee"):
            value = getattr(self, name)
            _finite(name, value)
            if not -0.01 < value < 0.01:
                raise ValueError(f"{name} must lie in (-0.01, 0.01), got {value!r}")
        if self.taker_fee < 0:
            raise ValueError(f"taker_fee must be >= 0, got {self.taker_fee!r}")
        for name in ("price_precision", "quantity_precision"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 12:
                raise ValueError(f"{name} must be an int in [0, 12], got {value!r}")
        if not isinstance(self.tiers, TierTable):
            raise ValueError(f"tiers must be a TierTable, got {type(self.tiers).__name__}")
        if getattr(self.tiers, "keyed_by", "notional") != "notional":
            raise ValueError("tiers of a linear contract must be keyed by quote notional")
        if self.min_qty > self.max_qty or self.min_qty > self.market_max_qty:
            raise ValueError("min_qty must not exceed max_qty or market_max_qty")
        if self.funding_cap >= 0.1:
            raise ValueError(f"funding_cap must be below 0.1, got {self.funding_cap!r}")
        for name, size, limit in (
            ("min_qty", self.step_size, self.min_qty),
            ("max_qty", self.step_size, self.max_qty),
            ("market_max_qty", self.step_size, self.market_max_qty),
            ("initial_price", self.tick_size, self.initial_price),
        ):
            if _off_grid(limit / size):
                raise ValueError(f"{name} ({limit!r}) must be a whole multiple of {size!r}")
        if _off_grid(self.tick_size * 10**self.price_precision):
            raise ValueError("tick_size has more decimals than price_precision")
        if _off_grid(self.step_size * 10**self.quantity_precision):
            raise ValueError("step_size has more decimals than quantity_precision")
        unit = Decimal(repr(self.tick_size)) * Decimal(repr(self.step_size)) * MONEY_SCALE
        if unit != unit.to_integral_value() or unit < 1:
            raise ValueError(
                f"tick_size * step_size ({self.tick_size!r} * {self.step_size!r}) must be a "
                "whole multiple of 1e-8 so notionals are exact"
            )
        derived = {
            "notional_unit": int(unit),
            "min_steps": round(self.min_qty / self.step_size),
            "max_steps": round(self.max_qty / self.step_size),
            "market_max_steps": round(self.market_max_qty / self.step_size),
            "_price_scale": float(10**self.price_precision),
            "_qty_scale": float(10**self.quantity_precision),
            "price_format": f".{self.price_precision}f",
            "qty_format": f".{self.quantity_precision}f",
            "avg_price_format": f".{self.price_precision + 3}f",
            "max_notional_by_leverage": _max_notional_by_leverage(self.tiers),
            "price_texts": {},
            "qty_texts": {},
            "price_values": {},
            "qty_values": {},
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    # --- the grid ---------------------------------------------------------------------------

    def price_ticks(self, price: float, param: str = "price") -> int:
        """``price`` as a count of ticks; -1111 (too many decimals), -4014 (off the tick)."""
        scaled = price * self._price_scale
        if abs(scaled - round(scaled)) > _GRID_TOLERANCE:
            raise VenueReject(-1111, "Precision is over the maximum defined for this asset.")
        ticks = price / self.tick_size
        whole = round(ticks)
        if abs(ticks - whole) > _GRID_TOLERANCE:
            raise VenueReject(-4014, f"Price not increased by tick size. ({param})")
        return whole

    def qty_steps(self, quantity: float) -> int:
        """``quantity`` as a count of steps; -1111 (too many decimals), -1013 (off the step)."""
        scaled = quantity * self._qty_scale
        if abs(scaled - round(scaled)) > _GRID_TOLERANCE:
            raise VenueReject(-1111, "Precision is over the maximum defined for this asset.")
        steps = quantity / self.step_size
        whole = round(steps)
        if abs(steps - whole) > _GRID_TOLERANCE:
            raise VenueReject(-1013, "Filter failure: LOT_SIZE")
        return whole

    def price_of(self, ticks: int) -> float:
        """The float price of ``ticks`` ticks, rounded to the precision (no 0.30000000000000004)."""
        value = self.price_values.get(ticks)
        if value is None:
            value = round(ticks * self.tick_size, self.price_precision)
            _remember(self.price_values, ticks, value)
        return value

    def qty_of(self, steps: int) -> float:
        value = self.qty_values.get(steps)
        if value is None:
            value = round(steps * self.step_size, self.quantity_precision)
            _remember(self.qty_values, steps, value)
        return value

    def fmt_price(self, ticks: int) -> str:
        text = self.price_texts.get(ticks)
        if text is None:
            text = format(ticks * self.tick_size, self.price_format)
            _remember(self.price_texts, ticks, text)
        return text

    def fmt_qty(self, steps: int) -> str:
        text = self.qty_texts.get(steps)
        if text is None:
            text = format(steps * self.step_size, self.qty_format)
            _remember(self.qty_texts, steps, text)
        return text

    def with_tiers(self, tiers: TierTable) -> MarketSpec:
        return replace(self, tiers=tiers)

    def filters(self) -> list[dict[str, Any]]:
        """Binance ``exchangeInfo`` filters for this symbol."""
        p = self.price_precision
        q = self.quantity_precision
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": f"{self.tick_size:.{p}f}",
                "maxPrice": f"{self.initial_price * 100:.{p}f}",
                "tickSize": f"{self.tick_size:.{p}f}",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": f"{self.min_qty:.{q}f}",
                "maxQty": f"{self.max_qty:.{q}f}",
                "stepSize": f"{self.step_size:.{q}f}",
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": f"{self.min_qty:.{q}f}",
                "maxQty": f"{self.market_max_qty:.{q}f}",
                "stepSize": f"{self.step_size:.{q}f}",
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": f"{self.min_notional:g}"},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": "1.0500",
                "multiplierDown": "0.9500",
                "multiplierDecimal": "4",
            },
        ]


def _finite(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def _positive(name: str, value: Any) -> None:
    _finite(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _remember(table: dict[int, _T], count: int, value: _T) -> None:
    """Keep ``value`` for ``count``; a full table is emptied first, so memory stays bounded."""
    if len(table) >= _TEXTS_CAP:
        table.clear()
    table[count] = value


def _off_grid(ratio: float) -> bool:
    return abs(ratio - round(ratio)) > _GRID_TOLERANCE


def _max_notional_by_leverage(tiers: TierTable) -> tuple[float, ...]:
    """For each whole leverage up to the ladder's cap: the last tier still allowing it."""
    top = min(int(tiers.tiers[0].max_leverage), _LEVERAGE_TABLE_CAP)
    table = []
    for leverage in range(top + 1):
        allowed = 0.0
        for tier in tiers.tiers:
            if tier.max_leverage >= leverage:
                allowed = tier.max_notional
        table.append(allowed)
    return tuple(table)


def _spec(**fields: Any) -> MarketSpec:
    return MarketSpec(**fields)


DEFAULT_MARKETS: Mapping[str, MarketSpec] = MappingProxyType(
    {
        "BTCUSDT": _spec(
            symbol="BTCUSDT",
            base="BTC",
            quote="USDT",
            tick_size=0.1,
            step_size=0.001,
            min_qty=0.001,
            max_qty=1000.0,
            market_max_qty=120.0,
            min_notional=100.0,
            price_precision=2,
            quantity_precision=3,
            tiers=BINANCE_BTCUSDT_TIERS,
            funding_cap=0.003,
            initial_price=90_000.0,
        ),
        "ETHUSDT": _spec(
            symbol="ETHUSDT",
            base="ETH",
            quote="USDT",
            tick_size=0.01,
            step_size=0.001,
            min_qty=0.001,
            max_qty=10_000.0,
            market_max_qty=2_000.0,
            min_notional=20.0,
            price_precision=2,
            quantity_precision=3,
            tiers=BINANCE_ETHUSDT_TIERS,
            funding_cap=0.003,
            initial_price=3_000.0,
        ),
        "SOLUSDT": _spec(
            symbol="SOLUSDT",
            base="SOL",
            quote="USDT",
            tick_size=0.01,
            step_size=1.0,
            min_qty=1.0,
            max_qty=1_000_000.0,
            market_max_qty=5_000.0,
            min_notional=5.0,
            price_precision=4,
            quantity_precision=0,
            tiers=BINANCE_SOLUSDT_TIERS,
            funding_cap=0.0075,
            initial_price=150.0,
        ),
    }
)
"""The venue's default listings. BTCUSDT carries the real Binance ladder (first five brackets);
ETH and SOL carry plausible ones. Filters follow Binance's published values."""

__all__ = ["DEFAULT_MARKETS", "MONEY_SCALE", "MarketSpec"]
