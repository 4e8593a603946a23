"""Liquidation prices, venue by venue: named models of one principle.

A position is liquidated when, at the **mark** price ``P``, the margin it can draw on equals what
the venue requires (the venues' public margin documentation, restated as equations)::

    equity(P) = maintenance requirement(P)  (+ closing fee(P) where the venue counts it)

Venues publish closed forms of this and change them quietly, so each is a named model, checked
against the principle by property tests:

``binanceusdm`` (linear) and ``binancecoinm`` (inverse)
    Binance's LP formula for one-way (``BOTH``) and hedge (``LONG``/``SHORT``) legs, isolated and
    cross: ``LP = [WB - TMM1 + UPNL1 + cumB + cumL + cumS - sB*QB*EPB - QL*EPL + QS*EPS] /
    [QB*MMRB + QL*MMRL + QS*MMRS - sB*QB - QL + QS]`` (COIN-M: the same in coin, inverted).
    The tier is the one containing the notional **at the liquidation price** (Binance states
    this explicitly; picking it at entry, or by margin, is a known mistake), found by walking
    the tiers outward from the mark. Cross: ``WB`` is the cross wallet, ``TMM1`` and
    ``UPNL1`` the maintenance and unrealised PnL of every *other symbol's* cross position at its
    own mark; hedge legs of one symbol move together and share one price. Isolated: the leg's
    own wallet, nothing else. Binance leaves the closing fee out; pass one to be conservative.
``bybit`` (linear and inverse, isolated)
    MM at the **entry** value: ``LP = EP - s*(IM - MM)/Q`` with ``MM = Q*EP*MMR - mmDeduction``
    (inverse: ``LP = N / (N/EP + s*(IM - MM))``), the tier by the entry value. Published example:
    long 1 BTC at 20,000, 50x, MMR 0.5 %: IM 400, MM 100, LP 19,700. Cross (unified) accounts are
    liquidated at the account level and have no per-position formula: the ``generic`` model
    answers for them.
``okx``, ``gate``, ``bitget`` (linear and inverse)
    Liquidated when ``(margin + UPL) / (MM + closing fee) <= 100 %``, MM being the whole
    position at its tier's rate (no deduction): ``LP = (EP - s*margin/Q) / (1 - s*(MMR + fee))``,
    inverse ``LP = N*(s + MMR + fee) / (margin + s*N/EP)``. These venues count the closing fee, so
    the fee used is at least the venue's standard taker rate even if the options give less.
``generic``
    Any venue, any table: bisection on ``equity(P) - requirement(P)`` evaluated from the
    principle with the table's cum. Slower (it is the cross-check, and the fallback).

Options (:class:`LiquidationOptions`) apply to every model: a closing fee and a safety buffer
are added to every tier's MMR, and funding the position expects to *pay* over the horizon comes
off its wallet (see :mod:`safeguard.risk._funding`).

The answer is the first price, moving from the mark against the target leg (down for a long, up
for a short), at which the account meets maintenance. If there is none (the collateral covers
the largest possible loss) the answer says so: ``price is None``, never 0, never negative. A
leg already at or under maintenance at its mark is flagged ``already_liquidatable`` and its
price is where the formula puts it (on the profit side of the mark). In cross hedge mode the
two legs share the account, and Binance shows one price on both: the answer, whichever leg is
asked about, is the account's, the first price moving *either* way from the mark at which the
account meets maintenance (below the mark for a net-long account, above for a net-short or a
fully hedged one). ``direction`` says which side of the mark the price is on and
``safe_side`` which side of it is safe, so a stop on either leg is judged against it.

Units: linear ``quantity`` in base units, money in the quote (settle) currency. Inverse
``quantity`` in USD (contracts * contract size), money in coin, tiers keyed by coin notional
(``quantity / price``).

>>> from safeguard.risk._tiers import BINANCE_BTCUSDT_TIERS
>>> leg = PositionLeg("BTC/USDT:USDT", 1, 1.0, 20_000.0, 20_000.0, BINANCE_BTCUSDT_TIERS,
...                   isolated_wallet=400.0)
>>> result = get_model("binanceusdm").liquidation_price(leg, wallet_balance=0.0)
>>> round(result.price, 2), result.tier.tier
(19678.71, 1)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal, Protocol, runtime_checkable

from safeguard._errors import ConfigError
from safeguard._profiles import PROFILES
from safeguard.risk import _inputs, _margin
from safeguard.risk._funding import FundingEstimate
from safeguard.risk._tiers import Tier, TierTable

PositionSide = Literal["BOTH", "LONG", "SHORT"]
_POSITION_SIDES: tuple[str, ...] = ("BOTH", "LONG", "SHORT")


@dataclass(frozen=True, slots=True)
class PositionLeg:
    """One position (one leg in hedge mode). Validated on construction; fields name themselves.

    ``quantity`` is > 0 (the side carries the sign): base units for linear, USD (contracts times
    contract size) for inverse. ``isolated_wallet`` is the leg's isolated margin; ``None`` means
    the leg is on the cross wallet.
    """

    symbol: str
    side: int
    quantity: float
    entry_price: float
    mark_price: float
    tiers: TierTable
    position_side: PositionSide = "BOTH"
    isolated_wallet: float | None = None
    inverse: bool = False

    def __post_init__(self) -> None:
        # Verdicts build a leg for every order, so the common case (floats, valid) runs a few
        # comparisons and the messages are only formatted for a value that fails.
        symbol = self.symbol
        if not isinstance(symbol, str) or not symbol:
            raise ValueError(f"symbol must be a non-empty string, got {symbol!r}")
        side = self.side
        if type(side) is not int or side not in (1, -1):
            raise ValueError(f"{symbol}: side must be +1 (long) or -1 (short), got {side!r}")
        # Stored as floats so an int price cannot leak integer arithmetic into the math.
        for name in ("quantity", "entry_price", "mark_price"):
            value = getattr(self, name)
            if type(value) is not float or not 0.0 < value < math.inf:
                object.__setattr__(self, name, _inputs.positive(f"{symbol}: {name}", value))
        wallet = self.isolated_wallet
        if wallet is not None and (type(wallet) is not float or not 0.0 <= wallet < math.inf):
            wallet = _inputs.non_negative(f"{symbol}: isolated_wallet", wallet)
            object.__setattr__(self, "isolated_wallet", wallet)
        table = self.tiers
        if not isinstance(table, TierTable):
            raise ValueError(f"{symbol}: tiers must be a TierTable, got {type(table).__name__}")
        if table.symbol is not None and table.symbol != symbol:
            raise ValueError(f"{symbol}: tiers are {table.symbol}'s ladder, not this market's")
        position_side = self.position_side
        if position_side != "BOTH":
            _inputs.choice(f"{symbol}: position_side", position_side, _POSITION_SIDES)
            if (position_side == "LONG") != (side == 1):
                raise ValueError(
                    f"{symbol}: position_side {position_side} contradicts side {side:+d}"
                )
        inverse = self.inverse
        if inverse is not True and inverse is not False:
            _inputs.flag(f"{symbol}: inverse", inverse)
        if table.keyed_by == "quantity":
            size = self.quantity
        else:
            size = self.quantity / self.mark_price if inverse else self.quantity * self.mark_price
        cap = table.tiers[-1].max_notional
        if size > cap:
            raise ValueError(
                f"{symbol}: tiers do not fit the position: its size {size!r} at the mark is past "
                f"the last tier's cap {cap!r} (wrong table, wrong units, or a position the venue "
                "would not hold)"
            )

    @property
    def is_cross(self) -> bool:
        return self.isolated_wallet is None

    def notional(self, price: float) -> float:
        """Value at ``price`` in the units the tiers use: quote (linear) or coin (inverse)."""
        return self.quantity / price if self.inverse else self.quantity * price

    def unrealized_pnl(self, price: float) -> float:
        """PnL at ``price`` in the margin currency (quote for linear, coin for inverse)."""
        if self.inverse:
            return self.side * self.quantity * (1.0 / self.entry_price - 1.0 / price)
        return self.side * self.quantity * (price - self.entry_price)


@dataclass(frozen=True, slots=True)
class LiquidationOptions:
    """Conservative additions every model applies. Rates are fractions (0.0005 is 0.05 %)."""

    closing_fee_rate: float = 0.0
    """Taker fee of the liquidation close, added to every tier's MMR."""
    safety_buffer_rate: float = 0.0
    """Extra maintenance margin rate assumed on top of the venue's tiers."""
    funding: FundingEstimate | None = None
    """Funding expected over the holding horizon; payments come off the wallet."""

    def __post_init__(self) -> None:
        _inputs.fraction_below_one("closing_fee_rate", self.closing_fee_rate)
        _inputs.fraction_below_one("safety_buffer_rate", self.safety_buffer_rate)
        if self.funding is not None and not isinstance(self.funding, FundingEstimate):
            raise ValueError(f"funding must be a FundingEstimate or None, got {self.funding!r}")


_NO_OPTIONS = LiquidationOptions()


@dataclass(frozen=True, slots=True)
class LiquidationPrice:
    """A model's answer. ``price is None`` means the position cannot be liquidated."""

    price: float | None
    tier: Tier | None
    """The target's tier at the liquidation price (Bybit: at the entry value)."""
    model: str
    reason: str = ""
    """Why there is no price, or why the price is on the profit side of the mark."""
    already_liquidatable: bool = False
    """At its mark the position is already at or under maintenance (opening it would be
    liquidated at once); ``price`` is then where the formula puts it, on the profit side."""
    direction: int = 0
    """Where ``price`` lies from the mark: -1 below (a fall liquidates), +1 above (a rise
    does), 0 without a price. A one-way long's is -1; in cross hedge mode both legs of a
    symbol share the account's, whichever leg is asked about."""

    @property
    def can_liquidate(self) -> bool:
        return self.price is not None

    @property
    def safe_side(self) -> int:
        """The side of ``price`` on which the account is above maintenance: +1 when prices
        above it are safe (a long's liquidation), -1 when prices below it are. A stop or a mark
        is judged by how far it sits from ``price`` on this side. One-way, it is the leg's
        side; in cross hedge mode it is the account's, the same for both legs."""
        return self.direction if self.already_liquidatable else -self.direction


@runtime_checkable
class LiquidationModel(Protocol):
    """A venue's liquidation rule. ``wallet_balance`` is the cross wallet (ignored for an
    isolated target); ``others`` are the other cross positions, hedge twin included."""

    @property
    def name(self) -> str: ...

    def liquidation_price(
        self,
        target: PositionLeg,
        *,
        wallet_balance: float,
        others: Sequence[PositionLeg] = (),
        options: LiquidationOptions = _NO_OPTIONS,
    ) -> LiquidationPrice: ...


# --- preparing the account ------------------------------------------------------------------


def _check_call(target: object, options: object) -> None:
    if not isinstance(target, PositionLeg):
        raise ValueError(f"target must be a PositionLeg, got {type(target).__name__}")
    if not isinstance(options, LiquidationOptions):
        raise ValueError(f"options must be LiquidationOptions, got {type(options).__name__}")


def _account(
    target: PositionLeg,
    wallet_balance: float,
    others: Sequence[PositionLeg],
    options: LiquidationOptions,
    extra: float,
    use_cum: bool,
) -> tuple[tuple[PositionLeg, ...], float]:
    """The legs that move with the target's price, and everything else as one constant."""
    wallet = wallet_balance
    if type(wallet) is not float or not 0.0 <= wallet < math.inf:
        wallet = _inputs.non_negative("wallet_balance", wallet_balance)
    if type(others) not in (tuple, list) and (
        isinstance(others, (str, bytes)) or not isinstance(others, Sequence)
    ):
        raise ValueError(f"others must be a sequence of PositionLeg, got {others!r}")
    if target.isolated_wallet is not None:
        moving: tuple[PositionLeg, ...] = (target,)
        constant = target.isolated_wallet
    else:
        moving, constant = _cross(target, wallet, others, extra, use_cum)
    funding = options.funding
    if funding is not None:
        for leg in moving:
            constant -= funding.cost(leg.side, leg.quantity, leg.mark_price, inverse=leg.inverse)
    return moving, constant


def _cross(
    target: PositionLeg,
    wallet: float,
    others: Sequence[PositionLeg],
    extra: float,
    use_cum: bool,
) -> tuple[tuple[PositionLeg, ...], float]:
    if not others:
        return (target,), wallet
    moving = [target]
    constant = wallet
    symbol = target.symbol
    seen = {(symbol, target.position_side)}
    inverse = target.inverse
    settle = _settle(symbol) if inverse else ""
    for index, other in enumerate(others):
        if not isinstance(other, PositionLeg):
            raise _other_error(index, other, "must be a PositionLeg")
        if other.isolated_wallet is not None:
            raise _other_error(index, other, "is isolated; pass only cross positions")
        if other.inverse != inverse:
            raise _other_error(
                index,
                other,
                f"has inverse={other.inverse} but the target {inverse}; linear and inverse "
                "positions do not share a cross wallet",
            )
        if settle and _settle(other.symbol) not in (settle, ""):
            raise _other_error(
                index,
                other,
                f"settles in another coin than {symbol}; coin-margined cross wallets are per coin",
            )
        key = (other.symbol, other.position_side)
        same = other.symbol == symbol
        if key in seen or (same and "BOTH" in (other.position_side, target.position_side)):
            raise _other_error(
                index,
                other,
                "duplicates a leg already given (one-way mode has one BOTH leg per symbol; "
                "hedge mode one LONG and one SHORT)",
            )
        seen.add(key)
        mark = other.mark_price
        if same:
            if mark != target.mark_price:
                raise _other_error(
                    index,
                    other,
                    f"has mark_price {mark!r}, the target {target.mark_price!r}; legs of one "
                    "symbol share one mark",
                )
            moving.append(other)
            continue
        quantity = other.quantity
        if inverse:
            value = quantity / mark
            pnl = other.side * quantity * (1.0 / other.entry_price - 1.0 / mark)
        else:
            value = quantity * mark
            pnl = other.side * quantity * (mark - other.entry_price)
        tier = other.tiers.tiers[_margin.tier_index(other, mark)]
        constant += pnl - value * (tier.maintenance_margin_rate + extra)
        if use_cum:
            constant += tier.cum
    return tuple(moving), constant


def _other_error(index: int, other: object, problem: str) -> ValueError:
    if isinstance(other, PositionLeg):
        return ValueError(f"others[{index}] ({other.symbol} {other.position_side}) {problem}")
    return ValueError(f"others[{index}] {problem}, got {type(other).__name__}")


def _settle(symbol: str) -> str:
    return symbol.rpartition(":")[2] if ":" in symbol else ""


# --- models ---------------------------------------------------------------------------------

_Solver = Callable[
    [Sequence[PositionLeg], float, float, bool, int, float], tuple[float, int] | None
]


def _solve(
    name: str,
    solver: _Solver,
    target: PositionLeg,
    wallet_balance: float,
    others: Sequence[PositionLeg],
    options: LiquidationOptions,
    extra: float,
    use_cum: bool,
) -> LiquidationPrice:
    moving, constant = _account(target, wallet_balance, others, options, extra, use_cum)
    if len(moving) > 1:
        return _solve_hedged(name, solver, target, moving, constant, extra, use_cum)
    mark = target.mark_price
    at_mark = _margin.excess(moving, constant, extra, use_cum, mark)
    tiers = target.tiers.tiers
    side = target.side
    if at_mark > 0.0:
        found = solver(moving, constant, extra, use_cum, -side, 1.0)
        if found is None:
            return LiquidationPrice(
                None,
                None,
                name,
                "equity stays above maintenance at every price against the position "
                "(the collateral covers the largest possible loss)",
            )
        return LiquidationPrice(found[0], tiers[found[1]], name, direction=-side)
    # Already under: the price is where equity climbs back to maintenance, on the profit side.
    found = solver(moving, constant, extra, use_cum, side, -1.0) if at_mark < 0 else None
    price, index = found if found is not None else (mark, _margin.tier_index(target, mark))
    return LiquidationPrice(
        price,
        tiers[index],
        name,
        "already at or under maintenance at the mark",
        already_liquidatable=True,
        direction=side,
    )


def _solve_hedged(
    name: str,
    solver: _Solver,
    target: PositionLeg,
    moving: tuple[PositionLeg, ...],
    constant: float,
    extra: float,
    use_cum: bool,
) -> LiquidationPrice:
    """Cross hedge mode: the account's price, the same whichever leg is asked about.

    Both legs move with the one mark, so the account (not a leg) meets maintenance, and it
    can lean either way: a net-long account is liquidated by a fall, a net-short one by a
    rise, a fully hedged one by the rise that grows its maintenance margin past its equity.
    The answer is the first price, moving either way from the mark, at which the account
    meets maintenance (on a ladder with rising rates equity minus requirement is concave in
    the price, so there is at most one each way). The legs are solved in one fixed order so
    both questions get the same float.
    """
    legs = tuple(sorted(moving, key=lambda leg: leg.position_side))  # LONG before SHORT
    mark = target.mark_price
    at_mark = _margin.excess(legs, constant, extra, use_cum, mark)
    # Above maintenance: the nearest root either way. Under it: the nearest price either way
    # where equity climbs back to maintenance (none: the mark itself).
    sign = 1.0 if at_mark > 0.0 else -1.0
    best: tuple[float, int] | None = None
    if at_mark != 0.0:
        for direction in (-1, 1):
            found = solver(legs, constant, extra, use_cum, direction, sign)
            if found is not None and (best is None or abs(found[0] - mark) < abs(best[0] - mark)):
                best = (found[0], direction)
    tiers = target.tiers.tiers
    if at_mark > 0.0:
        if best is None:
            return LiquidationPrice(
                None,
                None,
                name,
                "the account's equity stays above maintenance at every price of "
                f"{target.symbol}, either way (the collateral covers the largest possible loss)",
            )
        price, direction = best
        index = _margin.tier_index(target, price, direction)
        return LiquidationPrice(price, tiers[index], name, direction=direction)
    price, direction = best if best is not None else (mark, 0)
    index = _margin.tier_index(target, price, direction)
    return LiquidationPrice(
        price,
        tiers[index],
        name,
        "the account is already at or under maintenance at the mark",
        already_liquidatable=True,
        direction=direction,
    )


def _check_kind(name: str, target: PositionLeg, inverse: bool | None) -> None:
    if inverse is not None and target.inverse != inverse:
        kind = "inverse (coin-margined)" if inverse else "linear (USD-margined)"
        raise ValueError(
            f"{target.symbol}: inverse={target.inverse} but model {name!r} is for {kind} contracts"
        )


@dataclass(frozen=True, slots=True)
class TierWalkModel:
    """Closed form per tier segment (Binance; OKX/Gate/Bitget with ``use_cum=False``)."""

    name: str
    use_cum: bool = True
    inverse: bool | None = None
    """``True``/``False`` restricts the model to inverse/linear legs; ``None`` takes both."""
    min_closing_fee_rate: float = 0.0
    """Venues that count the closing fee: at least their standard taker rate is used."""

    def liquidation_price(
        self,
        target: PositionLeg,
        *,
        wallet_balance: float,
        others: Sequence[PositionLeg] = (),
        options: LiquidationOptions = _NO_OPTIONS,
    ) -> LiquidationPrice:
        _check_call(target, options)
        _check_kind(self.name, target, self.inverse)
        extra = max(options.closing_fee_rate, self.min_closing_fee_rate)
        extra += options.safety_buffer_rate
        return _solve(
            self.name,
            _margin.closed_form,
            target,
            wallet_balance,
            others,
            options,
            extra,
            self.use_cum,
        )


@dataclass(frozen=True, slots=True)
class GenericModel:
    """Bisection on ``equity(P) - requirement(P)`` from the principle; any venue, any table."""

    name: str = "generic"
    use_cum: bool = True

    def liquidation_price(
        self,
        target: PositionLeg,
        *,
        wallet_balance: float,
        others: Sequence[PositionLeg] = (),
        options: LiquidationOptions = _NO_OPTIONS,
    ) -> LiquidationPrice:
        _check_call(target, options)
        extra = options.closing_fee_rate + options.safety_buffer_rate
        return _solve(
            self.name,
            _margin.numeric,
            target,
            wallet_balance,
            others,
            options,
            extra,
            self.use_cum,
        )


@dataclass(frozen=True, slots=True)
class BybitModel:
    """Bybit isolated: maintenance at the entry value. Cross goes to the account-level solve."""

    name: str = "bybit"

    def liquidation_price(
        self,
        target: PositionLeg,
        *,
        wallet_balance: float,
        others: Sequence[PositionLeg] = (),
        options: LiquidationOptions = _NO_OPTIONS,
    ) -> LiquidationPrice:
        _check_call(target, options)
        if target.isolated_wallet is None:
            return _GENERIC.liquidation_price(
                target, wallet_balance=wallet_balance, others=others, options=options
            )
        _, wallet = _account(target, wallet_balance, (), options, 0.0, True)
        entry = target.entry_price
        value = target.notional(entry)
        # Past the cap (the mark was inside it, the entry is not) the top tier is extrapolated,
        # as everywhere else.
        tier = target.tiers.tiers[_margin.tier_index(target, entry)]
        rate = tier.maintenance_margin_rate + options.closing_fee_rate
        rate += options.safety_buffer_rate
        cushion = wallet - (value * rate - tier.cum)  # IM - MM (+ extra margin), money units
        side = target.side
        quantity = target.quantity
        if target.inverse:
            denominator = value + side * cushion
            # No positive root: a short never loses its cushion; a long has none at any price.
            price = (
                quantity / denominator if denominator > 0.0 else (math.inf if side > 0 else None)
            )
        else:
            price = entry - side * cushion / quantity
            if price <= 0.0:
                price = None if side > 0 else math.inf
        if price is None:
            return LiquidationPrice(
                None,
                None,
                self.name,
                "the isolated margin covers the largest possible loss",
            )
        mark = target.mark_price
        if (mark - price) * side <= 0.0:
            return LiquidationPrice(
                mark if math.isinf(price) else price,
                tier,
                self.name,
                "already at or under maintenance at the mark",
                already_liquidatable=True,
                direction=side,
            )
        return LiquidationPrice(price, tier, self.name, direction=-side)


_GENERIC = GenericModel()

MODELS: Mapping[str, LiquidationModel] = MappingProxyType(
    {
        "binanceusdm": TierWalkModel("binanceusdm", use_cum=True, inverse=False),
        "binancecoinm": TierWalkModel("binancecoinm", use_cum=True, inverse=True),
        "bybit": BybitModel(),
        # Standard (non-VIP) perpetual taker fees: the venue counts the fee in the requirement,
        # so a caller who forgets it still gets a price no further from the mark than the
        # venue's.
        "okx": TierWalkModel("okx", use_cum=False, min_closing_fee_rate=0.0005),
        "gate": TierWalkModel("gate", use_cum=False, min_closing_fee_rate=0.0005),
        "bitget": TierWalkModel("bitget", use_cum=False, min_closing_fee_rate=0.0006),
        "generic": _GENERIC,
    }
)
"""Every named model. Keys are ccxt exchange ids where the model is one venue's."""


def model_for_exchange(exchange_id: str) -> str:
    """The model that prices liquidation on the ccxt exchange ``exchange_id``: its venue
    profile's (:mod:`safeguard._profiles`), else the model of that name in :data:`MODELS`.

    An exchange with neither is a :class:`~safeguard._errors.ConfigError` naming it: another
    venue's formula, or the ``generic`` one with a table the venue does not use, would put
    liquidation where that venue does not, and every stop judged against it would be wrong.
    """
    profile = PROFILES.get(exchange_id) if isinstance(exchange_id, str) else None
    if profile is not None:
        return profile.liquidation_model
    if isinstance(exchange_id, str) and exchange_id in MODELS and exchange_id != "generic":
        return exchange_id
    raise ConfigError(
        f"no liquidation model for exchange {exchange_id!r}; models exist for "
        f"{', '.join(sorted(set(MODELS) - {'generic'}))}",
        key="exchange",
    )


def get_model(name: str) -> LiquidationModel:
    """The model called ``name``; an unknown name is a ``ValueError`` naming it."""
    model = MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise ValueError(f"unknown liquidation model {name!r}; known: {', '.join(sorted(MODELS))}")
    return model


__all__ = [
    "MODELS",
    "BybitModel",
    "FundingEstimate",
    "GenericModel",
    "LiquidationModel",
    "LiquidationOptions",
    "LiquidationPrice",
    "PositionLeg",
    "PositionSide",
    "TierWalkModel",
    "get_model",
    "model_for_exchange",
]
