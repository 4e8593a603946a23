"""Tier tables: the maintenance-margin ladder a venue applies to a position's notional.

A venue does not charge one maintenance margin rate (MMR): the rate steps up with the size of the
position ("maintenance margin step ladder" on Binance, "risk limits" on Bybit, "position tiers"
on OKX). ccxt's ``fetch_leverage_tiers()`` returns every venue's ladder in one shape, one row per
tier::

    {"tier": 1, "currency": "USDT", "minNotional": 0, "maxNotional": 300000,
     "maintenanceMarginRate": 0.004, "maxLeverage": 150, "info": {"cum": "0.0", ...}}

The maintenance margin of a position whose notional ``N`` falls in tier ``k`` is

    MM(N) = N * MMR_k - cum_k

``cum`` (Binance's "maintenance amount", Bybit's ``mmDeduction``) makes ``MM`` continuous across
tier boundaries. Binance publishes it, and every bracket it publishes satisfies

    cum_1 = 0,    cum_k = cum_(k-1) + minNotional_k * (MMR_k - MMR_(k-1))

Where a venue publishes no ``cum`` the recurrence derives it. A table whose ``cum`` breaks the
recurrence is refused, because a wrong ``cum`` moves every liquidation price silently.

Units: the notional is what the venue's ladder is keyed by: quote currency for linear contracts
(``quantity * price`` in USDT), coin for Binance COIN-M (``contracts * contract_size / price``),
contracts on OKX. The table does not convert; the caller keys it consistently.

A tier covers ``[minNotional, maxNotional)``: at a boundary the higher tier applies, so the cap on
leverage errs toward the smaller number. The last tier also covers its own ``maxNotional``.

Validation on construction (:class:`TierTableError`, naming the tier and the field): at least one
tier; the first starts at 0; tiers strictly increasing by number and contiguous (each starts where
the previous ends, to 1e-9 relative); only the last may be open-ended (``math.inf``); every MMR in
(0, 1) and never decreasing; max leverage >= 1 and never increasing; each tier's MMR below its
initial margin rate ``1 / maxLeverage`` (else a position opened at the cap is born liquidated);
``cum`` finite, and on the recurrence unless ``check_cum=False``. A ladder loaded from ccxt
remembers its unified market (``symbol``), and a position on another market refuses it.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import InitVar, dataclass, field
from itertools import pairwise
from typing import Any, Literal

from safeguard._errors import ConfigError

# Venues publish cum rounded; one part in 1e9 of the tier floor, plus a dust term for coin
# ladders whose amounts are fractions of a coin, accepts their rounding and nothing coarser.
_CUM_REL_TOL = 1e-9
_CUM_ABS_TOL = 1e-8
_CONTIGUITY_REL_TOL = 1e-9


class TierTableError(ConfigError):
    """A tier table is malformed. ``tier`` is the offending tier's number (``None``: the table)."""

    code = "TIER_TABLE_ERROR"

    def __init__(self, message: str, *, key: str | None = None, tier: int | None = None) -> None:
        super().__init__(message, key=key)
        self.tier = tier


@dataclass(frozen=True, slots=True)
class Tier:
    """One rung of the ladder. ``max_notional`` may be ``math.inf`` for the last tier only."""

    tier: int
    min_notional: float
    max_notional: float
    maintenance_margin_rate: float
    max_leverage: float
    cum: float

    def __post_init__(self) -> None:
        number = self.tier
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise TierTableError(
                f"tier number must be a non-negative int, got {number!r}", key="tier", tier=None
            )
        _check_real(number, "minNotional", self.min_notional, finite=True)
        _check_real(number, "maxNotional", self.max_notional, finite=False)
        _check_real(number, "maintenanceMarginRate", self.maintenance_margin_rate, finite=True)
        _check_real(number, "maxLeverage", self.max_leverage, finite=True)
        _check_real(number, "cum", self.cum, finite=True)
        for name in ("min_notional", "max_notional", "maintenance_margin_rate", "max_leverage"):
            object.__setattr__(self, name, float(getattr(self, name)))
        object.__setattr__(self, "cum", float(self.cum))
        if self.min_notional < 0:
            raise _tier_error(number, "minNotional", f"is negative ({self.min_notional!r})")
        if not self.max_notional > self.min_notional:
            raise _tier_error(
                number,
                "maxNotional",
                f"({self.max_notional!r}) must exceed minNotional ({self.min_notional!r})",
            )
        if not 0.0 < self.maintenance_margin_rate < 1.0:
            raise _tier_error(
                number,
                "maintenanceMarginRate",
                f"must lie in (0, 1), got {self.maintenance_margin_rate!r} "
                "(a percentage passed as a fraction?)",
            )
        if not self.max_leverage >= 1.0:
            raise _tier_error(number, "maxLeverage", f"must be >= 1, got {self.max_leverage!r}")
        if not self.maintenance_margin_rate * self.max_leverage < 1.0:
            raise _tier_error(
                number,
                "maintenanceMarginRate",
                f"({self.maintenance_margin_rate!r}) must stay below the initial margin rate "
                f"1/maxLeverage ({1.0 / self.max_leverage!r}): a position opened at the cap "
                "would be born liquidated",
            )

    def maintenance_margin(self, notional: float) -> float:
        """``notional * MMR - cum`` with this tier's numbers (no check that it contains it)."""
        return notional * self.maintenance_margin_rate - self.cum


@dataclass(frozen=True, slots=True)
class TierTable:
    """An immutable, validated ladder. Build it with :meth:`from_ccxt` or :meth:`from_rows`."""

    tiers: tuple[Tier, ...]
    currency: str | None = None
    """The currency ccxt reports for the ladder (informational: Binance COIN-M reports the quote
    although its notional is in coin)."""
    keyed_by: Literal["notional", "quantity"] = "notional"
    """What the ladder's bounds measure. ``"notional"`` (Binance, Bybit, Gate, Bitget): the
    position's value at the price, so the tier moves with the price. ``"quantity"`` (OKX, whose
    tiers are in contracts): the position's size, so the tier does not move with the price.
    Bring the size into the leg's units first (:meth:`scaled` by the contract value)."""
    symbol: str | None = None
    """The unified market the ladder belongs to (from ccxt's rows), if known. A position on
    another market refuses it: the wrong ladder gives a wrong price, silently."""
    check_cum: InitVar[bool] = True
    _floors: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self, check_cum: bool) -> None:
        if self.keyed_by not in ("notional", "quantity"):
            raise TierTableError(
                f"keyed_by must be 'notional' or 'quantity', got {self.keyed_by!r}",
                key="keyed_by",
            )
        if self.symbol is not None and (not isinstance(self.symbol, str) or not self.symbol):
            raise TierTableError(f"symbol must be a non-empty string, got {self.symbol!r}")
        tiers = self.tiers
        if not isinstance(tiers, tuple) or not all(isinstance(t, Tier) for t in tiers):
            raise TierTableError("tiers must be a tuple of Tier", key="tiers")
        if not tiers:
            raise TierTableError("a tier table needs at least one tier", key="tiers")
        first = tiers[0]
        if first.min_notional != 0.0:
            raise _tier_error(
                first.tier,
                "minNotional",
                f"of the first tier must be 0 so every notional has a tier, "
                f"got {first.min_notional!r}",
            )
        if check_cum and not _close(first.cum, 0.0, 0.0):
            raise _tier_error(first.tier, "cum", f"of the first tier must be 0, got {first.cum!r}")
        for previous, tier in pairwise(tiers):
            if tier.tier <= previous.tier:
                raise _tier_error(
                    tier.tier,
                    "tier",
                    f"is out of order (it follows tier {previous.tier}); tiers must be sorted",
                )
            if math.isinf(previous.max_notional):
                raise _tier_error(
                    previous.tier, "maxNotional", "is infinite but it is not the last tier"
                )
            gap = abs(tier.min_notional - previous.max_notional)
            if gap > _CONTIGUITY_REL_TOL * previous.max_notional:
                raise _tier_error(
                    tier.tier,
                    "minNotional",
                    f"({tier.min_notional!r}) must equal the previous tier's maxNotional "
                    f"({previous.max_notional!r}): the ladder has a gap or an overlap",
                )
            if tier.maintenance_margin_rate < previous.maintenance_margin_rate:
                raise _tier_error(
                    tier.tier,
                    "maintenanceMarginRate",
                    f"({tier.maintenance_margin_rate!r}) is below the previous tier's "
                    f"({previous.maintenance_margin_rate!r}); rates never fall as size grows",
                )
            if tier.max_leverage > previous.max_leverage:
                raise _tier_error(
                    tier.tier,
                    "maxLeverage",
                    f"({tier.max_leverage!r}) exceeds the previous tier's "
                    f"({previous.max_leverage!r}); leverage never grows with size",
                )
            if check_cum:
                expected = previous.cum + tier.min_notional * (
                    tier.maintenance_margin_rate - previous.maintenance_margin_rate
                )
                if not _close(tier.cum, expected, tier.min_notional):
                    raise _tier_error(
                        tier.tier,
                        "cum",
                        f"is {tier.cum!r} but the maintenance-amount recurrence gives "
                        f"{expected:.12g} (cum_prev + minNotional * (MMR - MMR_prev))",
                    )
        object.__setattr__(self, "_floors", tuple(t.min_notional for t in tiers))

    # --- construction ---------------------------------------------------------------------

    @classmethod
    def from_ccxt(
        cls,
        rows: Sequence[Mapping[str, Any]],
        *,
        check_cum: bool = True,
        keyed_by: Literal["notional", "quantity"] = "notional",
    ) -> TierTable:
        """Load one market's list from ccxt's ``fetch_leverage_tiers()``.

        ``cum`` comes from ``info["cum"]`` (Binance) or ``info["mmDeduction"]`` (Bybit) when the
        venue publishes it, and is then checked against the recurrence unless ``check_cum`` is
        false; otherwise it is derived by the recurrence. A missing ``maxNotional`` on the last
        row means open-ended.
        """
        if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
            raise TierTableError(
                "tier rows must be a list of ccxt leverage-tier dicts (one market's list)",
                key="tiers",
            )
        parsed: list[Tier] = []
        published: list[bool] = []
        currency: str | None = None
        symbol: str | None = None
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                raise TierTableError(
                    f"tiers[{index}] must be a dict, got {type(row).__name__}",
                    key=f"tiers[{index}]",
                )
            number = _row_tier_number(row, index)
            last = index == len(rows) - 1
            raw_max = row.get("maxNotional")
            max_notional = (
                math.inf
                if raw_max is None and last
                else _row_number(row, "maxNotional", number, index)
            )
            info = row.get("info")
            cum_value: float | None = None
            if isinstance(info, Mapping):
                for key in ("cum", "mmDeduction"):
                    raw = info.get(key)
                    if raw is not None and raw != "":
                        cum_value = _parse_number(raw, number, f"info.{key}", index)
                        break
            published.append(cum_value is not None)
            parsed.append(
                Tier(
                    tier=number,
                    min_notional=_row_number(row, "minNotional", number, index),
                    max_notional=max_notional,
                    maintenance_margin_rate=_row_number(
                        row, "maintenanceMarginRate", number, index
                    ),
                    max_leverage=_row_number(row, "maxLeverage", number, index),
                    cum=0.0 if cum_value is None else cum_value,
                )
            )
            row_currency = row.get("currency")
            if currency is None and isinstance(row_currency, str):
                currency = row_currency
            row_symbol = row.get("symbol")
            if isinstance(row_symbol, str) and row_symbol:
                if symbol is not None and row_symbol != symbol:
                    raise _tier_error(
                        number,
                        "symbol",
                        f"is {row_symbol!r} but earlier rows are {symbol!r}: pass one market's "
                        "list (fetch_leverage_tiers() returns a dict of them)",
                    )
                symbol = row_symbol
        if parsed and not published[0] and all(published[1:]) and len(parsed) > 1:
            # Bybit leaves the first tier's mmDeduction empty: it is 0 by definition.
            published[0] = True
        if any(published) and not all(published):
            missing = next(t.tier for t, p in zip(parsed, published, strict=True) if not p)
            raise _tier_error(missing, "cum", "is published for some tiers but not this one")
        if not all(published):
            parsed = _with_derived_cum(parsed)
        if symbol is not None and "/" not in symbol:
            symbol = None  # a raw venue id (markets not loaded) cannot be matched to a leg
        return cls(tuple(parsed), currency, keyed_by, symbol, check_cum)

    @classmethod
    def from_rows(
        cls,
        rows: Sequence[tuple[float, float, float, float]],
        *,
        currency: str | None = None,
        keyed_by: Literal["notional", "quantity"] = "notional",
        symbol: str | None = None,
    ) -> TierTable:
        """Build from ``(min_notional, max_notional, mmr, max_leverage)`` rows; cum is derived."""
        tiers: list[Tier] = []
        for index, row in enumerate(rows):
            if not isinstance(row, tuple) or len(row) != 4:
                raise TierTableError(
                    f"rows[{index}] must be (min_notional, max_notional, mmr, max_leverage)",
                    key=f"rows[{index}]",
                )
            low, high, rate, leverage = row
            tiers.append(Tier(index + 1, low, high, rate, leverage, 0.0))
        return cls(tuple(_with_derived_cum(tiers)), currency, keyed_by, symbol)

    def to_ccxt(self, *, symbol: str | None = None) -> list[dict[str, Any]]:
        """The table in ccxt's ``fetch_leverage_tiers()`` row shape (``cum`` in ``info``)."""
        symbol = self.symbol if symbol is None else symbol
        return [
            {
                "tier": t.tier,
                "symbol": symbol,
                "currency": self.currency,
                "minNotional": t.min_notional,
                "maxNotional": None if math.isinf(t.max_notional) else t.max_notional,
                "maintenanceMarginRate": t.maintenance_margin_rate,
                "maxLeverage": t.max_leverage,
                "info": {"cum": repr(t.cum)},
            }
            for t in self.tiers
        ]

    def scaled(self, factor: float) -> TierTable:
        """The same ladder with bounds (and cum) multiplied by ``factor``.

        Converts units: an OKX ladder in contracts times the contract value is a ladder in base
        units. Maintenance margin scales with the bounds, so ``cum`` scales with them too.
        """
        if isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise ValueError(f"factor must be a number, got {factor!r}")
        if not (factor > 0.0 and math.isfinite(factor)):
            raise ValueError(f"factor must be a finite number > 0, got {factor!r}")
        tiers = tuple(
            Tier(
                t.tier,
                t.min_notional * factor,
                t.max_notional * factor,
                t.maintenance_margin_rate,
                t.max_leverage,
                t.cum * factor,
            )
            for t in self.tiers
        )
        return TierTable(tiers, self.currency, self.keyed_by, self.symbol, False)

    # --- look-ups -------------------------------------------------------------------------

    def locate(self, size: float, *, lower_at_boundary: bool = False) -> int:
        """Index of the tier for ``size``, unvalidated, for solvers on their hot path.

        ``lower_at_boundary`` reads the tiers as ``(min, max]``: a size exactly on a boundary
        gets the lower tier, the one it belongs to when it arrives there growing. Past the last
        tier's cap the last tier applies (a solver walking a price far out needs a rate, and the
        top one is the least wrong); a size at 0 gets the first tier either way.
        """
        if lower_at_boundary:
            index = bisect_left(self._floors, size) - 1
            return index if index > 0 else 0
        return bisect_right(self._floors, size) - 1

    def index_for_notional(self, notional: float) -> int:
        """Index into :attr:`tiers` of the tier containing ``notional`` (validated)."""
        if (
            isinstance(notional, bool)
            or not isinstance(notional, (int, float))
            or not notional >= 0.0
            or math.isinf(notional)
        ):
            raise ValueError(f"notional must be a finite number >= 0, got {notional!r}")
        index = bisect_right(self._floors, notional) - 1
        last = self.tiers[-1]
        if index == len(self.tiers) - 1 and notional > last.max_notional:
            raise ValueError(
                f"notional {notional!r} exceeds the last tier's maxNotional "
                f"({last.max_notional!r}); the venue would not hold a position this large"
            )
        return index

    def tier_for_notional(self, notional: float) -> Tier:
        """The tier whose ``[min_notional, max_notional)`` contains ``notional``."""
        return self.tiers[self.index_for_notional(notional)]

    def max_leverage_at(self, notional: float) -> float:
        """The highest leverage the venue allows for a position of this notional."""
        return self.tier_for_notional(notional).max_leverage

    def maintenance_margin(self, notional: float) -> float:
        """``notional * MMR - cum`` of the tier containing ``notional``."""
        return self.tier_for_notional(notional).maintenance_margin(notional)

    def __len__(self) -> int:
        return len(self.tiers)

    def __iter__(self) -> Iterator[Tier]:
        return iter(self.tiers)


def _with_derived_cum(tiers: Sequence[Tier]) -> list[Tier]:
    out: list[Tier] = []
    cum = 0.0
    previous_rate: float | None = None
    for tier in tiers:
        if previous_rate is not None:
            # Rounded so derived amounts read like the venue's (1500, not 1499.9999999999998).
            cum = round(cum + tier.min_notional * (tier.maintenance_margin_rate - previous_rate), 9)
        previous_rate = tier.maintenance_margin_rate
        out.append(
            Tier(
                tier.tier,
                tier.min_notional,
                tier.max_notional,
                tier.maintenance_margin_rate,
                tier.max_leverage,
                cum,
            )
        )
    return out


def _close(actual: float, expected: float, scale: float) -> bool:
    return abs(actual - expected) <= _CUM_ABS_TOL + _CUM_REL_TOL * abs(scale)


def _tier_error(number: int | None, field_name: str, problem: str) -> TierTableError:
    return TierTableError(f"tier {number}: {field_name} {problem}", key=field_name, tier=number)


def _check_real(number: int, field_name: str, value: object, *, finite: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _tier_error(number, field_name, f"must be a number, got {type(value).__name__}")
    if math.isnan(value) or (finite and math.isinf(value)):
        raise _tier_error(number, field_name, f"must be finite, got {value!r}")


def _parse_number(raw: object, number: int | None, field_name: str, index: int) -> float:
    if isinstance(raw, bool):
        raise _tier_error(number, field_name, f"must be a number, got {raw!r} (row {index})")
    if isinstance(raw, (int, float)):
        return float(raw)
    if isinstance(raw, str):
        try:
            return float(raw)
        except ValueError:
            pass
    raise _tier_error(number, field_name, f"must be a number, got {raw!r} (row {index})")


def _row_number(row: Mapping[str, Any], key: str, number: int, index: int) -> float:
    if key not in row or row[key] is None:
        raise _tier_error(number, key, f"is missing (row {index})")
    return _parse_number(row[key], number, key, index)


def _row_tier_number(row: Mapping[str, Any], index: int) -> int:
    raw = row.get("tier")
    if raw is None:
        raise TierTableError(f"tiers[{index}]: tier number is missing", key=f"tiers[{index}].tier")
    value = _parse_number(raw, None, "tier", index)
    if not value.is_integer() or value < 0:
        raise TierTableError(
            f"tiers[{index}]: tier number must be a non-negative integer, got {raw!r}",
            key=f"tiers[{index}].tier",
        )
    return int(value)


# --- fixture ladders ----------------------------------------------------------------------

BINANCE_BTCUSDT_TIERS = TierTable.from_rows(
    [
        (0.0, 300_000.0, 0.004, 150.0),
        (300_000.0, 800_000.0, 0.005, 100.0),
        (800_000.0, 3_000_000.0, 0.0065, 75.0),
        (3_000_000.0, 12_000_000.0, 0.01, 50.0),
        (12_000_000.0, 70_000_000.0, 0.02, 25.0),
    ],
    currency="USDT",
)
"""Binance BTC/USDT:USDT, first five brackets (cum 0, 300, 1,500, 12,000, 132,000)."""

BINANCE_ETHUSDT_TIERS = TierTable.from_rows(
    [
        (0.0, 300_000.0, 0.005, 125.0),
        (300_000.0, 800_000.0, 0.0065, 100.0),
        (800_000.0, 3_000_000.0, 0.01, 75.0),
        (3_000_000.0, 12_000_000.0, 0.02, 25.0),
        (12_000_000.0, 50_000_000.0, 0.05, 10.0),
    ],
    currency="USDT",
)
"""A plausible ETH/USDT:USDT ladder (illustrative numbers; cum by the recurrence)."""

BINANCE_SOLUSDT_TIERS = TierTable.from_rows(
    [
        (0.0, 50_000.0, 0.01, 75.0),
        (50_000.0, 250_000.0, 0.015, 50.0),
        (250_000.0, 1_000_000.0, 0.025, 25.0),
        (1_000_000.0, 5_000_000.0, 0.05, 10.0),
        (5_000_000.0, 20_000_000.0, 0.1, 5.0),
    ],
    currency="USDT",
)
"""A plausible SOL/USDT:USDT ladder (illustrative numbers; cum by the recurrence)."""

BINANCE_BTCUSD_COINM_TIERS = TierTable.from_rows(
    [
        (0.0, 5.0, 0.004, 125.0),
        (5.0, 10.0, 0.005, 100.0),
        (10.0, 20.0, 0.01, 50.0),
        (20.0, 50.0, 0.025, 20.0),
        (50.0, 100.0, 0.05, 10.0),
        (100.0, 200.0, 0.1, 5.0),
        (200.0, 400.0, 0.125, 4.0),
        (400.0, 1_000.0, 0.15, 3.0),
        (1_000.0, math.inf, 0.25, 2.0),
    ],
    currency="BTC",
)
"""Binance COIN-M BTC/USD:BTC brackets, notional in BTC (tier 7: MMR 12.5 %, cum 11.605 BTC)."""


__all__ = [
    "BINANCE_BTCUSDT_TIERS",
    "BINANCE_BTCUSD_COINM_TIERS",
    "BINANCE_ETHUSDT_TIERS",
    "BINANCE_SOLUSDT_TIERS",
    "Tier",
    "TierTable",
    "TierTableError",
]
