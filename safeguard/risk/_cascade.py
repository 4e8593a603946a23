"""Liquidation cascades as a graph: a shock, its correlated moves, and the forced flow that follows.

The stress grid (:mod:`safeguard.risk._stress`) prices one instant. A cascade is a sequence: a
shock liquidates someone, their forced close walks a thin book and pushes the price further,
that liquidates the next one, and so on. This module steps that sequence, purely and
deterministically (no clock, no I/O, no randomness), and returns its path.

**Nodes** are margin pools: the account's cross wallet with its cross positions, each of its
isolated positions, and optionally a *crowd* of other accounts' positions (each an isolated
position opened at the mark with ``notional / leverage`` of margin; give them one by one as
:class:`CrowdPosition`, or spread an open interest over a leverage distribution with
:func:`crowd_from_open_interest`).

**Edges** are correlation and shared collateral. A shock ``x`` (a fraction of the mark) to
symbol ``i`` moves every other symbol ``j`` by the regression (beta) of ``j`` on ``i``::

    move_j = rho_ij * vol_j / vol_i * x

with ``rho`` a :class:`Correlation` (one number, or per pair) that :meth:`Correlation.stressed`
moves toward one: in a crash the hedges stop hedging. Positions on the cross wallet share one
pool: a loss on one eats the margin of all.

**Steps.** At step ``k`` (time ``k * latency``) every open pool is checked at the current marks.
An isolated pool (one of the account's isolated positions, or one of the crowd) is liquidated
once its mark reaches the liquidation price the market's named model
(:mod:`safeguard.risk._liquidation`, Binance USD-M by default) gives it; that price moves with no
other, so it is solved once per cascade input, not per step. The cross pool, under which several
prices move, is checked against the principle every model solves: equity at or under the
maintenance margin of each position's tier at its notional (Binance counts no closing fee in
the trigger). A liquidated isolated
pool closes its position; a liquidated cross pool closes one position per step, the one losing
the most, as venues do when freeing margin is enough (the next step re-checks the pool). The
closes reach the book ``latency`` seconds later, while the book refills: the depth eaten by
earlier closes comes back as ``exp(-refill_rate * latency)`` of it remains. Each close walks its
symbol's :class:`~safeguard.risk._stress.DepthProfile` (scaled by the cell's depth multiplier)
from where the earlier closes left it, fills at the levels it reaches, and leaves the mark at the
last level it touched. That move is permanent over the cascade (the book refills *at the new
price*); so forced selling only ever lowers a price and forced buying only raises it. Within a
step the crowd's closes hit the book before the account's: the account's fills are the worse
ones, the conservative order. The loop ends when a check finds nothing to liquidate; every step
closes at least one position, so it ends.

The path says which position went when, at what mark it was triggered, at what average price
it filled, what the close cost (slippage against the trigger mark plus the taker fee), and the
account's equity after every step.

**Monotone, refill or not.** A bigger shock never liquidates fewer positions nor leaves the
account more equity, and a deeper book never liquidates more (property-tested). Without refill
every price is the shocked price walked down by everything closed so far. A refilling book is
held to never be worse for a forced close than the same book without refill (its mark and fills
are floored at that still book's): a ladder moves the mark a whole level for the first unit and
a flat overflow for the last, so closes spread over refilling steps would otherwise compound
lower than the same closes bunched into one step, and a milder shock could end worse.

The pre-trade verdict asks :func:`first_breach` under ``risk.require_stress_survival``
(``risk.stress.cascade``): every policy shock to every symbol the account holds after the
order, the order's symbol's crowd spread from its open interest.

Linear (USDT-margined) contracts only, as in the stress grid.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal, NamedTuple

from safeguard.risk import _inputs
from safeguard.risk._liquidation import LiquidationModel, PositionLeg, get_model
from safeguard.risk._models import Account
from safeguard.risk._stress import DepthProfile, leg_maintenance, require_linear
from safeguard.risk._tiers import TierTable

Owner = Literal["account", "crowd"]


# --- inputs ---------------------------------------------------------------------------------


def _correlation(name: str, value: object) -> float:
    rho = _inputs.number(name, value)
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"{name} must be a correlation in [-1, 1], got {rho!r}")
    return rho


@dataclass(frozen=True, slots=True)
class Correlation:
    """Pairwise correlation of returns: ``default`` for every pair not in ``pairs``.

    ``pairs`` maps ``(symbol_a, symbol_b)`` to a correlation; order does not matter. A symbol's
    correlation with itself is one.
    """

    default: float = 0.0
    pairs: Mapping[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "default", _correlation("correlation", self.default))
        if not isinstance(self.pairs, Mapping):
            raise ValueError(f"pairs must map (symbol, symbol) to a correlation: {self.pairs!r}")
        pairs: dict[tuple[str, str], float] = {}
        for key, value in self.pairs.items():
            if not (
                isinstance(key, tuple) and len(key) == 2 and all(isinstance(s, str) for s in key)
            ):
                raise ValueError(f"correlation pair keys must be (symbol, symbol), got {key!r}")
            if key[0] == key[1]:
                raise ValueError(f"correlation of {key[0]} with itself is one; do not set it")
            rho = _correlation(f"correlation{key!r}", value)
            ordered = (min(key), max(key))
            if ordered in pairs and pairs[ordered] != rho:
                raise ValueError(f"correlation of {key!r} is given twice, differently")
            pairs[ordered] = rho
        object.__setattr__(self, "pairs", pairs)

    def rho(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        return self.pairs.get((min(a, b), max(a, b)), self.default)

    def stressed(self, toward_one: float) -> Correlation:
        """Every correlation moved ``toward_one`` of the way to one (``rho + t * (1 - rho)``):
        0 keeps it, 1 makes every pair move together, the crash case."""
        t = _inputs.number("toward_one", toward_one)
        if not 0.0 <= t <= 1.0:
            raise ValueError(f"toward_one must be in [0, 1], got {t!r}")
        return Correlation(
            self.default + t * (1.0 - self.default),
            {pair: rho + t * (1.0 - rho) for pair, rho in self.pairs.items()},
        )


@dataclass(frozen=True, slots=True)
class CascadeSymbol:
    """One market: its mark, realized volatility (any unit, the same for every symbol: only
    the ratios matter), the book a forced close walks, and the tier ladder the crowd's
    positions are margined by (the account's legs bring their own)."""

    mark: float
    volatility: float
    depth: DepthProfile
    tiers: TierTable | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "mark", _inputs.positive("mark", self.mark))
        object.__setattr__(self, "volatility", _inputs.positive("volatility", self.volatility))
        if not isinstance(self.depth, DepthProfile):
            raise ValueError(f"depth must be a DepthProfile, got {type(self.depth).__name__}")
        if self.tiers is not None and not isinstance(self.tiers, TierTable):
            raise ValueError(f"tiers must be a TierTable, got {type(self.tiers).__name__}")


@dataclass(frozen=True, slots=True)
class CascadeMarket:
    """Every symbol the cascade touches, and how the books behave between steps.

    ``latency`` (seconds) is the delay between a liquidation check and its close reaching the
    book; ``refill_rate`` (per second) is how fast eaten depth comes back: after ``latency``
    seconds ``exp(-refill_rate * latency)`` of it is still missing (``0``: never refills,
    ``math.inf``: full again by the next close). ``taker_fee`` is the fee of a forced close.
    ``model`` names the liquidation model (:data:`~safeguard.risk._liquidation.MODELS`) that
    prices every isolated position's liquidation, the crowd's included.
    """

    symbols: Mapping[str, CascadeSymbol]
    latency: float = 1.0
    refill_rate: float = 0.0
    taker_fee: float = 0.0005
    model: str = "binanceusdm"

    def __post_init__(self) -> None:
        get_model(self.model)
        if not isinstance(self.symbols, Mapping) or not self.symbols:
            raise ValueError("symbols must map at least one symbol to a CascadeSymbol")
        for symbol, spec in self.symbols.items():
            if not isinstance(spec, CascadeSymbol):
                raise ValueError(f"symbols[{symbol!r}] must be a CascadeSymbol, got {spec!r}")
        _inputs.non_negative("latency", self.latency)
        rate = self.refill_rate
        # math.inf is allowed: a book that is full again by the next step.
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate >= 0.0:
            raise ValueError(f"refill_rate must be >= 0 (per second), got {rate!r}")
        fee = _inputs.non_negative("taker_fee", self.taker_fee)
        if fee >= 0.1:
            raise ValueError(f"taker_fee is a fraction (0.0005 = 5 bps), got {fee!r}")
        object.__setattr__(self, "symbols", dict(self.symbols))

    def spec(self, symbol: str) -> CascadeSymbol:
        found = self.symbols.get(symbol)
        if found is None:
            raise ValueError(
                f"the cascade market has no entry for {symbol}: its mark, volatility and "
                "book depth are needed to move and close it"
            )
        return found

    @property
    def remaining_depletion(self) -> float:
        """The share of eaten depth still missing when the next step's closes arrive."""
        if self.refill_rate == 0.0 or self.latency == 0.0:
            return 1.0
        return math.exp(-self.refill_rate * self.latency)


@dataclass(frozen=True, slots=True)
class CrowdPosition:
    """Another account's position: opened at the mark, isolated, ``notional / leverage`` of
    margin. ``side`` is +1 long, -1 short; ``notional`` in quote currency."""

    symbol: str
    side: int
    notional: float
    leverage: float

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise ValueError(f"crowd symbol must be a non-empty string, got {self.symbol!r}")
        if type(self.side) is not int or self.side not in (1, -1):
            raise ValueError(f"crowd side must be +1 (long) or -1 (short), got {self.side!r}")
        object.__setattr__(self, "notional", _inputs.positive("notional", self.notional))
        leverage = _inputs.number("leverage", self.leverage)
        if not 1.0 <= leverage < math.inf:
            raise ValueError(f"crowd leverage must be >= 1, got {self.leverage!r}")
        object.__setattr__(self, "leverage", leverage)


def crowd_from_open_interest(
    symbol: str,
    open_interest: float,
    leverage_shares: Sequence[tuple[float, float]],
    *,
    long_share: float = 0.5,
) -> tuple[CrowdPosition, ...]:
    """Spread ``open_interest`` (quote notional) over a leverage distribution.

    ``leverage_shares`` is ``(leverage, share)`` pairs whose shares sum to one; each becomes a
    long holding ``long_share`` of its slice and a short holding the rest (a side with no
    share is left out). Deterministic: the same inputs give the same crowd.
    """
    total = _inputs.positive("open_interest", open_interest)
    longs = _inputs.number("long_share", long_share)
    if not 0.0 <= longs <= 1.0:
        raise ValueError(f"long_share must be in [0, 1], got {long_share!r}")
    if isinstance(leverage_shares, str | bytes) or not leverage_shares:
        raise ValueError("leverage_shares must list (leverage, share) pairs")
    shares: list[tuple[float, float]] = []
    for i, pair in enumerate(leverage_shares):
        if isinstance(pair, str | bytes) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"leverage_shares[{i}] must be a (leverage, share) pair: {pair!r}")
        shares.append((pair[0], _inputs.non_negative(f"leverage_shares[{i}].share", pair[1])))
    if not math.isclose(sum(share for _, share in shares), 1.0, rel_tol=1e-9):
        raise ValueError(f"leverage shares must sum to 1, got {sum(s for _, s in shares)!r}")
    crowd: list[CrowdPosition] = []
    for leverage, share in shares:
        for side, part in ((1, longs), (-1, 1.0 - longs)):
            if share * part > 0.0:
                crowd.append(CrowdPosition(symbol, side, total * share * part, leverage))
    return tuple(crowd)


# --- the path -------------------------------------------------------------------------------


class ForcedClose(NamedTuple):
    """One liquidation in the path. (A named tuple, not a dataclass: a grid makes thousands,
    and a tuple is immutable and several times cheaper to build than a frozen dataclass.)"""

    step: int
    time: float
    """Seconds after the shock at which the close reached the book."""
    owner: Owner
    node: str
    """``"account:BTC/USDT:USDT"`` (``:LONG``/``:SHORT`` for hedge legs) or ``"crowd[3]:..."``."""
    symbol: str
    side: int
    quantity: float
    trigger_mark: float
    """The mark at which the pool was found at or under maintenance."""
    fill_price: float
    """Average fill of the close on the walked book."""
    mark_after: float
    cost: float
    """Slippage against the trigger mark plus the taker fee, quote currency."""


class EquityPoint(NamedTuple):
    """The account after a step: its equity (each pool, cross or isolated, marked to market or
    holding what its closes left, and never counted below zero) and the marks."""

    step: int
    time: float
    equity: float
    marks: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class CascadePath:
    """What one shock did: every forced close in order and the account's equity along the way."""

    shock_symbol: str
    shock: float
    correlation: Correlation
    depth_multiplier: float
    closes: tuple[ForcedClose, ...]
    equity: tuple[EquityPoint, ...]
    """Step 0 is right after the shock (before any close); one point per step after."""

    @property
    def account_closes(self) -> tuple[ForcedClose, ...]:
        return tuple(close for close in self.closes if close.owner == "account")

    @property
    def liquidated(self) -> tuple[str, ...]:
        """The account's liquidated nodes, in the order they went."""
        return tuple(close.node for close in self.account_closes)

    @property
    def survives(self) -> bool:
        return not self.account_closes

    @property
    def final_equity(self) -> float:
        return self.equity[-1].equity

    @property
    def account_cost(self) -> float:
        return sum(close.cost for close in self.account_closes)

    @property
    def steps(self) -> int:
        return self.equity[-1].step


# --- the engine -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Ladder:
    """A symbol's book at one depth multiplier: cumulative sizes and their offsets."""

    ends: tuple[float, ...]
    offsets: tuple[float, ...]
    overflow: float

    @classmethod
    def of(cls, profile: DepthProfile, multiplier: float) -> _Ladder:
        ends = tuple(accumulate(size * multiplier for _, size in profile.levels))
        offsets = tuple(offset for offset, _ in profile.levels)
        return cls(ends, offsets, profile.overflow_offset or 0.0)

    def offset_at(self, eaten: float) -> float:
        """The offset of the level the ``eaten``-th unit came from (0 for an untouched book)."""
        if eaten <= 0.0:
            return 0.0
        index = bisect_left(self.ends, eaten)
        return self.offsets[index] if index < len(self.ends) else self.overflow

    def walk(self, eaten: float, quantity: float) -> float:
        """Sum of quantity times offset for units ``eaten`` to ``eaten + quantity``."""
        start, stop = eaten, eaten + quantity
        total = 0.0
        floor = 0.0
        for end, offset in zip(self.ends, self.offsets, strict=True):
            if end > start:
                total += (min(end, stop) - max(floor, start)) * offset
                if end >= stop:
                    return total
            floor = end
        return total + (stop - max(floor, start)) * self.overflow


@dataclass(slots=True)
class _SymbolBook:
    """A symbol's book through a cascade: what the closes ate, and where they left the mark.

    ``still_*`` follow the same closes on a book that never refills. A refilling book is never
    worse for a forced close than that one: its mark is held at or above (for sales) the still
    book's, and its fills too. Without that floor a refilled path is not monotone: a ladder
    moves the mark a whole level for the first unit it sells and a flat overflow for the last,
    so the same closes spread over refilling steps (a milder shock) compound to a lower price
    than bunched into one (a harsher one); the milder shock would end worse.
    """

    ladder: _Ladder
    mark: float
    bids_eaten: float = 0.0
    asks_eaten: float = 0.0
    still_mark: float = 0.0
    still_bids: float = 0.0
    still_asks: float = 0.0

    def __post_init__(self) -> None:
        self.still_mark = self.mark

    def close(self, side: int, quantity: float) -> float:
        """Walk the book for a forced close of a ``side`` position; the average fill."""
        fill, self.mark, self.bids_eaten, self.asks_eaten = _walk(
            self.ladder, self.mark, self.bids_eaten, self.asks_eaten, side, quantity
        )
        still_fill, self.still_mark, self.still_bids, self.still_asks = _walk(
            self.ladder, self.still_mark, self.still_bids, self.still_asks, side, quantity
        )
        if side > 0:
            self.mark = max(self.mark, self.still_mark)
            return max(fill, still_fill)
        self.mark = min(self.mark, self.still_mark)
        return min(fill, still_fill)

    def refill(self, remaining: float) -> None:
        self.bids_eaten *= remaining
        self.asks_eaten *= remaining


def _walk(
    ladder: _Ladder, mark: float, bids: float, asks: float, side: int, quantity: float
) -> tuple[float, float, float, float]:
    """``(fill, mark, bids eaten, asks eaten)`` after a ``side`` position's close of
    ``quantity`` from ``mark`` on a book already eaten by ``bids`` and ``asks``."""
    if side > 0:  # a long is sold into the bids
        anchor = mark / (1.0 - ladder.offset_at(bids))
        fill = anchor * (1.0 - ladder.walk(bids, quantity) / quantity)
        bids += quantity
        return fill, anchor * (1.0 - ladder.offset_at(bids)), bids, asks
    anchor = mark / (1.0 + ladder.offset_at(asks))
    fill = anchor * (1.0 + ladder.walk(asks, quantity) / quantity)
    asks += quantity
    return fill, anchor * (1.0 + ladder.offset_at(asks)), bids, asks


@dataclass(frozen=True, slots=True)
class _Trigger:
    """Where the liquidation model puts an isolated position's liquidation: at or past
    ``price`` on the losing side (``side`` +1: at or below it), or ``always`` (the position is
    already at or under maintenance), or never (``price is None``)."""

    price: float | None
    side: int
    always: bool

    @classmethod
    def of(cls, leg: PositionLeg, model: LiquidationModel) -> _Trigger:
        answer = model.liquidation_price(leg, wallet_balance=0.0)
        return cls(answer.price, leg.side, answer.already_liquidatable)

    @property
    def reach_order(self) -> float:
        """Sorts triggers on one side of one symbol into the order a moving mark reaches them
        (already liquidatable first, never liquidated last)."""
        if self.always:
            return -math.inf
        if self.price is None:
            return math.inf
        return -self.price * self.side

    def reached(self, mark: float) -> bool:
        price = self.price
        return self.always or (price is not None and (mark - price) * self.side <= 0.0)


@dataclass(slots=True)
class _Pool:
    """A margin balance and the positions it backs (open ones; closed ones are realized)."""

    owner: Owner
    wallet: float
    legs: list[tuple[str, PositionLeg]]
    trigger: _Trigger | None = None
    """An isolated pool's liquidation price (its one price moves); ``None`` for the cross pool,
    checked against the principle at every step because several prices move under it."""

    def equity(self, marks: Mapping[str, float]) -> float:
        return self.wallet + sum(leg.unrealized_pnl(marks[leg.symbol]) for _, leg in self.legs)

    def underwater(self, marks: Mapping[str, float]) -> bool:
        if not self.legs:
            return False
        trigger = self.trigger
        if trigger is not None:
            return trigger.reached(marks[self.legs[0][1].symbol])
        requirement = sum(leg_maintenance(leg, marks[leg.symbol]) for _, leg in self.legs)
        return self.equity(marks) <= requirement

    def next_to_close(self, marks: Mapping[str, float]) -> tuple[str, PositionLeg]:
        """Isolated: its one leg. Cross: the leg losing the most (first one on a tie)."""
        return min(self.legs, key=lambda item: item[1].unrealized_pnl(marks[item[1].symbol]))


def _node_name(leg: PositionLeg) -> str:
    suffix = "" if leg.position_side == "BOTH" else f":{leg.position_side}"
    return f"account:{leg.symbol}{suffix}"


def _shocked_marks(
    market: CascadeMarket, shock_symbol: str, shock: float, correlation: Correlation
) -> dict[str, float]:
    source = market.spec(shock_symbol)
    marks: dict[str, float] = {}
    for symbol, spec in market.symbols.items():
        move = correlation.rho(shock_symbol, symbol) * spec.volatility / source.volatility * shock
        if move <= -1.0:
            raise ValueError(
                f"a {shock!r} shock to {shock_symbol} moves {symbol} by {move!r} through "
                "correlation and volatility: to or below zero"
            )
        marks[symbol] = spec.mark * (1.0 + move)
    return marks


def _shock_value(value: object) -> float:
    shock = _inputs.number("shock", value)
    if not -1.0 < shock < 1.0:
        raise ValueError(f"shock must be a fraction in (-1, 1) (-0.2 = a 20 % fall), got {shock!r}")
    return shock


def _depth_multiplier(value: object) -> float:
    return _inputs.positive("depth_multiplier", value)


def _crowd_leg(index: int, member: CrowdPosition, spec: CascadeSymbol) -> PositionLeg:
    if spec.tiers is None:
        raise ValueError(
            f"crowd[{index}] is in {member.symbol}, whose cascade market entry has no tiers: "
            "a crowd position's maintenance margin needs its ladder"
        )
    mark = spec.mark
    leg = PositionLeg(
        member.symbol,
        member.side,
        member.notional / mark,
        mark,
        mark,
        spec.tiers,
        isolated_wallet=member.notional / member.leverage,
    )
    if leg.isolated_wallet is not None and leg.isolated_wallet <= leg_maintenance(leg, mark):
        raise ValueError(
            f"crowd[{index}] ({member.leverage!r}x, {member.notional!r} notional) would be at or "
            "under maintenance at the mark: a venue would not have let it open"
        )
    return leg


@dataclass(frozen=True, slots=True)
class _Prepared:
    """An account and a crowd checked against a market once, for many cascades."""

    account: Account
    market: CascadeMarket
    crowd: tuple[PositionLeg, ...]
    triggers: dict[int, _Trigger]
    """Each isolated position's liquidation trigger, by its index: account legs first, then
    the crowd (``len(account.positions) + i``). Computed once: it moves with no other price."""
    crowd_names: tuple[str, ...]
    queues: tuple[tuple[tuple[int, _Trigger, str], ...], ...]
    """The crowd by symbol and side, ``(crowd index, trigger, symbol)`` in the order a moving
    mark reaches them: longs by liquidation price falling, shorts rising."""
    # Per depth multiplier, each symbol's ladder (the grid reuses them for every cell).
    ladders: dict[float, dict[str, _Ladder]] = field(default_factory=dict, compare=False)

    @classmethod
    def of(
        cls, account: Account, market: CascadeMarket, crowd: Iterable[CrowdPosition]
    ) -> _Prepared:
        if not isinstance(account, Account):
            raise ValueError(f"account must be an Account, got {type(account).__name__}")
        if not isinstance(market, CascadeMarket):
            raise ValueError(f"market must be a CascadeMarket, got {type(market).__name__}")
        require_linear(account)
        for leg in account.positions:
            spec = market.spec(leg.symbol)
            if not math.isclose(spec.mark, leg.mark_price, rel_tol=1e-12):
                raise ValueError(
                    f"{leg.symbol}: the cascade market's mark {spec.mark!r} is not the "
                    f"position's mark {leg.mark_price!r}"
                )
        if isinstance(crowd, str | bytes):
            raise ValueError("crowd must be a sequence of CrowdPosition")
        legs: list[PositionLeg] = []
        for index, member in enumerate(crowd):
            if not isinstance(member, CrowdPosition):
                raise ValueError(f"crowd[{index}] must be a CrowdPosition, got {member!r}")
            legs.append(_crowd_leg(index, member, market.spec(member.symbol)))
        model = get_model(market.model)
        isolated = [
            (index, leg)
            for index, leg in enumerate((*account.positions, *legs))
            if leg.isolated_wallet is not None
        ]
        triggers = {index: _Trigger.of(leg, model) for index, leg in isolated}
        held = len(account.positions)
        queues = tuple(
            tuple(
                sorted(
                    (
                        (i, triggers[held + i], leg.symbol)
                        for i, leg in enumerate(legs)
                        if leg.symbol == symbol and leg.side == side
                    ),
                    key=lambda item: (item[1].reach_order, item[0]),
                )
            )
            for symbol in market.symbols
            for side in (1, -1)
        )
        names = tuple(f"crowd[{i}]:{leg.symbol}" for i, leg in enumerate(legs))
        return cls(account, market, tuple(legs), triggers, names, queues)

    def ladder(self, multiplier: float) -> dict[str, _Ladder]:
        known = self.ladders.get(multiplier)
        if known is None:
            known = self.ladders[multiplier] = {
                symbol: _Ladder.of(spec.depth, multiplier)
                for symbol, spec in self.market.symbols.items()
            }
        return known

    def run(
        self, shock_symbol: str, shock: float, correlation: Correlation, multiplier: float
    ) -> CascadePath:
        market = self.market
        marks = _shocked_marks(market, shock_symbol, shock, correlation)
        ladders = self.ladder(multiplier)
        books = {symbol: _SymbolBook(ladders[symbol], mark) for symbol, mark in marks.items()}
        account = self.account
        cross = _Pool("account", account.wallet_balance, [])
        account_pools = [cross]
        for index, leg in enumerate(account.positions):
            if leg.isolated_wallet is None:
                cross.legs.append((_node_name(leg), leg))
            else:
                pool_legs = [(_node_name(leg), leg)]
                trigger = self.triggers[index]
                account_pools.append(_Pool("account", leg.isolated_wallet, pool_legs, trigger))
        # The crowd's positions, in the order their symbol's mark reaches them: each queue's
        # next one is the only one to look at (if it is not reached, none behind it is).
        queues = [(queue, 0) for queue in self.queues]
        remaining = market.remaining_depletion
        closes: list[ForcedClose] = []
        equity = [EquityPoint(0, 0.0, _account_equity(account_pools, marks), dict(marks))]
        step = 0
        while True:
            crowd_due: list[int] = []
            for at, (queue, start) in enumerate(queues):
                head = start
                while head < len(queue) and queue[head][1].reached(marks[queue[head][2]]):
                    head += 1
                if head != start:
                    crowd_due.extend(index for index, _, _ in queue[start:head])
                    queues[at] = (queue, head)
            crowd, names = self.crowd, self.crowd_names
            due: list[tuple[_Pool | None, str, PositionLeg]] = [
                (None, names[index], crowd[index]) for index in sorted(crowd_due)
            ]
            # The crowd first: within a step its closes reach the book before the account's.
            due.extend(
                (pool, *pool.next_to_close(marks))
                for pool in account_pools
                if pool.underwater(marks)
            )
            if not due:
                break
            step += 1
            time = step * market.latency
            if remaining != 1.0:
                for book in books.values():
                    book.refill(remaining)
            for pool, node, leg in due:
                book = books[leg.symbol]
                trigger_mark = marks[leg.symbol]
                fill = book.close(leg.side, leg.quantity)
                marks[leg.symbol] = book.mark
                fee = market.taker_fee * leg.quantity * fill
                if pool is not None:
                    pool.wallet += leg.unrealized_pnl(fill) - fee
                    pool.legs.remove((node, leg))
                slippage = leg.side * leg.quantity * (trigger_mark - fill)
                closes.append(
                    ForcedClose(
                        step,
                        time,
                        "crowd" if pool is None else pool.owner,
                        node,
                        leg.symbol,
                        leg.side,
                        leg.quantity,
                        trigger_mark,
                        fill,
                        book.mark,
                        slippage + fee,
                    )
                )
            equity.append(
                EquityPoint(step, time, _account_equity(account_pools, marks), dict(marks))
            )
        return CascadePath(
            shock_symbol, shock, correlation, multiplier, tuple(closes), tuple(equity)
        )


def _account_equity(pools: Sequence[_Pool], marks: Mapping[str, float]) -> float:
    # Each pool counts at most what it holds: a bankrupt pool (open and about to be closed, or
    # closed at a loss beyond its margin) is zero, the venue's insurance fund takes the rest.
    # The account cannot lose more than its wallet and its isolated margins.
    return sum(max(pool.equity(marks), 0.0) for pool in pools)


def run_cascade(
    account: Account,
    market: CascadeMarket,
    *,
    shock_symbol: str,
    shock: float,
    correlation: Correlation | float = 0.0,
    depth_multiplier: float = 1.0,
    crowd: Sequence[CrowdPosition] = (),
) -> CascadePath:
    """The cascade a ``shock`` (fraction of the mark: ``-0.1`` is a 10 % fall) to
    ``shock_symbol`` sets off in ``account`` and ``crowd`` (see the module's description)."""
    prepared = _Prepared.of(account, market, crowd)
    market.spec(shock_symbol)
    return prepared.run(
        shock_symbol,
        _shock_value(shock),
        correlation if isinstance(correlation, Correlation) else Correlation(correlation),
        _depth_multiplier(depth_multiplier),
    )


def first_breach(
    account: Account,
    market: CascadeMarket,
    *,
    shocks: Sequence[float],
    correlation: Correlation | float,
    shock_symbols: Sequence[str] | None = None,
    crowd: Sequence[CrowdPosition] = (),
) -> CascadePath | None:
    """The cascade of smallest shock magnitude (the fall first on a tie, then the symbols in
    order) that liquidates one of the account's positions, or ``None`` when every shock to
    every symbol in ``shock_symbols`` (default: every symbol of the market) leaves the account
    whole. What the pre-trade verdict asks under ``risk.require_stress_survival``."""
    prepared = _Prepared.of(account, market, crowd)
    rho = correlation if isinstance(correlation, Correlation) else Correlation(correlation)
    symbols = tuple(market.symbols) if shock_symbols is None else tuple(shock_symbols)
    for symbol in symbols:
        market.spec(symbol)
    ordered = sorted({_shock_value(s) for s in shocks}, key=lambda s: (abs(s), s))
    for shock in ordered:
        for symbol in symbols:
            path = prepared.run(symbol, shock, rho, 1.0)
            if not path.survives:
                return path
    return None


# --- the grid -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CascadeGrid:
    """Shock size by correlation by book depth, with the cascade path behind each cell."""

    shock_symbol: str
    shocks: tuple[float, ...]
    correlations: tuple[float, ...]
    depth_multipliers: tuple[float, ...]
    paths: Mapping[tuple[float, float, float], CascadePath]
    """Keyed by ``(shock, correlation, depth_multiplier)``."""

    def path(self, shock: float, correlation: float, depth_multiplier: float) -> CascadePath:
        found = self.paths.get((shock, correlation, depth_multiplier))
        if found is None:
            raise KeyError(
                f"no cell for shock {shock!r}, correlation {correlation!r}, depth "
                f"{depth_multiplier!r}"
            )
        return found

    def smallest_liquidating_shock(
        self, correlation: float, depth_multiplier: float
    ) -> float | None:
        """The grid shock of smallest magnitude at which the account loses a position, at this
        correlation and depth (the fall on a tie); ``None`` if no shock in the grid does."""
        self.path(self.shocks[0], correlation, depth_multiplier)  # a KeyError for a wrong axis
        failing = [
            shock
            for shock in self.shocks
            if not self.paths[(shock, correlation, depth_multiplier)].survives
        ]
        return min(failing, key=lambda s: (abs(s), s)) if failing else None

    @property
    def worst_path(self) -> CascadePath:
        """The cell leaving the account the least equity (the smallest shock on a tie)."""
        return min(self.paths.values(), key=lambda p: (p.final_equity, abs(p.shock)))


def _axis(name: str, values: object) -> tuple[float, ...]:
    if isinstance(values, str | bytes) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of numbers, got {values!r}")
    axis = tuple(sorted({_inputs.number(f"{name}[{i}]", v) for i, v in enumerate(values)}))
    if not axis:
        raise ValueError(f"{name} must not be empty")
    return axis


def cascade_grid(
    account: Account,
    market: CascadeMarket,
    *,
    shock_symbol: str,
    shocks: Sequence[float],
    correlations: Sequence[float],
    depth_multipliers: Sequence[float] = (1.0,),
    crowd: Sequence[CrowdPosition] = (),
) -> CascadeGrid:
    """Every ``(shock, correlation, depth multiplier)`` cell's cascade. A correlation is one
    number for every pair of symbols; a depth multiplier scales every level of every book."""
    shock_axis = tuple(_shock_value(s) for s in _axis("shocks", shocks))
    rho_axis = tuple(_correlation("correlations", c) for c in _axis("correlations", correlations))
    depth_axis = tuple(_depth_multiplier(d) for d in _axis("depth_multipliers", depth_multipliers))
    prepared = _Prepared.of(account, market, crowd)
    market.spec(shock_symbol)
    paths = {
        (shock, rho, depth): prepared.run(shock_symbol, shock, Correlation(rho), depth)
        for rho in rho_axis
        for depth in depth_axis
        for shock in shock_axis
    }
    return CascadeGrid(shock_symbol, shock_axis, rho_axis, depth_axis, paths)


# --- the liquidation band -------------------------------------------------------------------

_BAND_BISECT_STEPS = 100
_ONE_SIGMA_HIT_PROBABILITY = 0.3173
"""2 * (1 - Phi(1)): the chance a driftless log-price touches a barrier one sigma away."""


@dataclass(frozen=True, slots=True)
class BandEdge:
    """One edge of a band: the mark (or, for the account, the move) where it is reached, and
    the rough time to get there at the given volatility."""

    price: float
    distance: float
    """``|ln(price / mark)|``: the log move to the edge."""
    one_sigma_time: float
    """``(distance / volatility)**2``, in the volatility's time unit (:func:`liquidation_band`)."""


@dataclass(frozen=True, slots=True)
class LiquidationBand:
    """From maintenance pressure to full liquidation, for one position (prices are marks of
    its symbol) or for the account (prices are ``1 + move`` of every mark, moving together).

    ``warning`` is where the margin ratio (maintenance margin over the pool's equity) crosses
    the warning level; ``partial`` where it crosses the venue's first partial-reduction level,
    when one is given; ``liquidation`` where it reaches one. ``None`` edges are not reached by
    any price on the losing side (the warning may also be passed already: ``warning_passed``).
    """

    subject: str
    mark: float
    direction: int
    """-1: a fall takes it there; +1: a rise; 0: no price liquidates it."""
    margin_ratio: float
    warning_passed: bool
    warning: BandEdge | None
    partial: BandEdge | None
    liquidation: BandEdge | None


def _edge(mark: float, price: float, volatility: float) -> BandEdge:
    distance = abs(math.log(price / mark))
    return BandEdge(price, distance, (distance / volatility) ** 2)


def _ratio_crossing(
    ratio: Callable[[float], float], level: float, start: float, end: float
) -> float:
    """Bisection for the price between ``start`` (ratio below ``level``) and ``end`` (at or
    above) where the ratio reaches ``level``; returns a price at or past the crossing."""
    low, high = start, end
    for _ in range(_BAND_BISECT_STEPS):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        if ratio(middle) >= level:
            high = middle
        else:
            low = middle
    return high


def liquidation_band(
    account: Account,
    *,
    volatility: float,
    warning_ratio: float = 0.8,
    partial_ratio: float | None = None,
    model: str = "binanceusdm",
) -> tuple[tuple[LiquidationBand, ...], LiquidationBand]:
    """Each position's band, and the account's (every mark moving together by one fraction).

    The margin ratio is maintenance margin over the pool's equity, Binance's definition: 1 is
    liquidation. The liquidation edge of a position is the named liquidation ``model``'s price
    (its cross price holds the other positions at their marks); the warning and partial edges
    are where the ratio crosses ``warning_ratio`` and ``partial_ratio``, found by bisection
    between the mark and that price (along that segment equity falls linearly and maintenance is
    convex, so the ratio crosses each level once). ``partial_ratio`` is the margin ratio at
    which the venue starts reducing the position before liquidating it (a tiered partial
    liquidation); leave it ``None`` for a venue that liquidates in one go, and the band has no
    partial edge. The account's band moves every mark by ``1 + x`` and finds, on the side that
    liquidates a pool first, where the worst pool's ratio crosses each level.

    **Time.** ``volatility`` is the realized volatility of log returns per square root of the
    time unit wanted back (hourly vol gives hours). Each edge reports ``(d / volatility)**2``
    for a log distance ``d``: the time after which the edge is one standard deviation away.
    Why this and not an expected hitting time: for a driftless random walk the expected time to
    touch a barrier is infinite (the first-passage time has a heavy tail), so no mean exists to
    report. By the reflection principle the walk has touched the edge within that time with
    probability ``2 * (1 - Phi(1))`` = 31.7 %; the median first-passage time is about 2.2 times
    longer (``(d / (0.674 * volatility))**2``). It is a rough scale, not a forecast: it ignores
    drift, jumps and volatility that rises as the price falls.
    """
    sigma = _inputs.positive("volatility", volatility)
    warning = _level("warning_ratio", warning_ratio)
    partial = None if partial_ratio is None else _level("partial_ratio", partial_ratio)
    if partial is not None and partial < warning:
        raise ValueError(
            f"partial_ratio ({partial!r}) must not be below warning_ratio ({warning!r}): the "
            "venue reduces after the warning"
        )
    require_linear(account)
    liquidation_model = get_model(model)
    bands = tuple(
        _position_band(account, leg, liquidation_model, sigma, warning, partial)
        for leg in account.positions
    )
    return bands, _account_band(account, sigma, warning, partial)


def margin_ratio(account: Account, leg: PositionLeg) -> float:
    """The margin ratio of ``leg``'s pool at the marks: maintenance over equity (Binance's
    definition; 1 liquidates, ``inf`` when the pool has no equity)."""
    legs, wallet = _pool_of(account, leg)
    return _pool_ratio(legs, wallet, {o.symbol: o.mark_price for o in account.positions})


def _level(name: str, value: object) -> float:
    level = _inputs.number(name, value)
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be a margin ratio in (0, 1), got {level!r}")
    return level


def _pool_ratio(legs: Sequence[PositionLeg], wallet: float, marks: Mapping[str, float]) -> float:
    equity = wallet + sum(leg.unrealized_pnl(marks[leg.symbol]) for leg in legs)
    maintenance = sum(leg_maintenance(leg, marks[leg.symbol]) for leg in legs)
    return maintenance / equity if equity > 0.0 else math.inf


def _pool_of(account: Account, leg: PositionLeg) -> tuple[tuple[PositionLeg, ...], float]:
    if leg.isolated_wallet is not None:
        return (leg,), leg.isolated_wallet
    return tuple(o for o in account.positions if o.isolated_wallet is None), account.wallet_balance


def _position_band(
    account: Account,
    leg: PositionLeg,
    model: LiquidationModel,
    sigma: float,
    warning: float,
    partial: float | None,
) -> LiquidationBand:
    legs, wallet = _pool_of(account, leg)
    others = [o for o in legs if o is not leg]
    answer = model.liquidation_price(leg, wallet_balance=account.wallet_balance, others=others)
    marks = {o.symbol: o.mark_price for o in account.positions}
    mark = leg.mark_price

    def ratio(price: float) -> float:
        return _pool_ratio(legs, wallet, {**marks, leg.symbol: price})

    now = ratio(mark)
    subject = _node_name(leg).removeprefix("account:")
    if answer.price is None or answer.already_liquidatable:
        return LiquidationBand(
            subject,
            mark,
            0 if answer.price is None else answer.direction,
            now,
            now >= warning,
            None,
            None,
            None,
        )
    target = answer.price
    edges: list[BandEdge | None] = []
    for level in (warning, partial):
        if level is None or now >= level:
            edges.append(None)
        else:
            edges.append(_edge(mark, _ratio_crossing(ratio, level, mark, target), sigma))
    return LiquidationBand(
        subject,
        mark,
        answer.direction,
        now,
        now >= warning,
        edges[0],
        edges[1],
        _edge(mark, target, sigma),
    )


_ACCOUNT_REACH = 0.99


def _account_band(
    account: Account, sigma: float, warning: float, partial: float | None
) -> LiquidationBand:
    pools: list[tuple[tuple[PositionLeg, ...], float]] = []
    cross = tuple(leg for leg in account.positions if leg.isolated_wallet is None)
    if cross:
        pools.append((cross, account.wallet_balance))
    pools.extend(
        ((leg,), leg.isolated_wallet)
        for leg in account.positions
        if leg.isolated_wallet is not None
    )

    def ratio(factor: float) -> float:
        marks = {leg.symbol: leg.mark_price * factor for leg in account.positions}
        return max((_pool_ratio(legs, wallet, marks) for legs, wallet in pools), default=0.0)

    now = ratio(1.0)
    best: tuple[int, float] | None = None
    for direction in (-1, 1):
        end = 1.0 + direction * _ACCOUNT_REACH
        if ratio(end) < 1.0:
            continue
        found = _ratio_crossing(ratio, 1.0, 1.0, end) if now < 1.0 else 1.0
        if best is None or abs(found - 1.0) < abs(best[1] - 1.0):
            best = (direction, found)
    if best is None or now >= 1.0:
        return LiquidationBand(
            "account", 1.0, 0 if best is None else best[0], now, now >= warning, None, None, None
        )
    direction, target = best
    edges = [
        None
        if level is None or now >= level
        else _edge(1.0, _ratio_crossing(ratio, level, 1.0, target), sigma)
        for level in (warning, partial)
    ]
    return LiquidationBand(
        "account",
        1.0,
        direction,
        now,
        now >= warning,
        edges[0],
        edges[1],
        _edge(1.0, target, sigma),
    )


__all__ = [
    "BandEdge",
    "CascadeGrid",
    "CascadeMarket",
    "CascadePath",
    "CascadeSymbol",
    "Correlation",
    "CrowdPosition",
    "EquityPoint",
    "ForcedClose",
    "LiquidationBand",
    "cascade_grid",
    "crowd_from_open_interest",
    "first_breach",
    "liquidation_band",
    "margin_ratio",
    "run_cascade",
]
