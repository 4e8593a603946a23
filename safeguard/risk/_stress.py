"""The portfolio stress grid: what a market shock does to the whole account.

Cross margin couples positions: one pool of equity backs them all, so a loss on one eats the
margin of the others. And correlations jump toward one in a crash, so "my positions are
diversified" holds least when it matters most. The grid therefore moves every price by a range
of shocks under several correlation *regimes* and reports, per cell, the account's equity, its
worst margin ratio and what got liquidated, plus the smallest shock that liquidates anything.

Regimes (``s`` is the grid's shock, a fraction of the mark: ``-0.2`` is a 20 % fall):

- ``together``: every symbol moves by ``s`` (correlation one, the crash case).
- ``independent``: symbols move one at a time, each by ``beta * s`` while the rest stay; the cell
  reports the worst of those one-symbol scenarios (lowest equity, highest margin ratio) and every
  symbol any of them liquidates.
- ``hedges_fail``: every position moves against itself by ``|s|`` (longs fall, shorts rise): the
  hedge that was supposed to pay for the loss loses too.

A margin pool (the cross wallet with its positions, or one isolated position with its margin) is
liquidated at the shocked marks when its equity no longer covers the venue's maintenance margin
(tier chosen by the shocked notional) **plus** what closing its positions would cost: the slippage
of walking each symbol's :class:`DepthProfile` and the taker fee. That second term is why a thin
book makes the grid harsher: the exit itself eats equity. A liquidated pool keeps what is left
after paying for its closes, never less than zero (an isolated position cannot lose more than its
margin; a cross account cannot lose more than its wallet).

Money is linear (USDT-margined) contracts: ``PnL = side * quantity * (price - entry)``. Everything
here is pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal, get_args

from safeguard._config import StressConfig
from safeguard.risk import _inputs
from safeguard.risk._book import OrderBook
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._tiers import TierTable
from safeguard.risk._trusted import trusted

Regime = Literal["together", "independent", "hedges_fail"]
REGIMES: tuple[Regime, ...] = get_args(Regime)

_BISECT_STEPS = 60
# A maintenance-margin step at a tier boundary this small (relative to the boundary) is the
# venue's rounding of cum, not a jump: TierTable accepts the same.
_JUMP_TOLERANCE = 1e-9


_relative_book = trusted(OrderBook)
_WORST_OFFSET = 0.99
"""The furthest a profile level sits from the mark (and the default overflow's cap)."""


@dataclass(frozen=True, slots=True)
class DepthProfile:
    """The book a forced close walks, relative to the mark: ``(offset, quantity)`` levels.

    ``offset`` is the level's distance from the mark as a fraction of it (``0.001`` = 10 bps;
    strictly increasing, in (0, 1)); ``quantity`` is base units at that level, on each side. What
    the levels cannot absorb fills at ``overflow_offset``, by default twice the deepest offset:
    past the visible book a forced close pays at least what the book's far end costs, and more.
    """

    levels: tuple[tuple[float, float], ...]
    overflow_offset: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.levels, str | bytes) or not isinstance(self.levels, Sequence):
            raise ValueError(f"depth levels must be (offset, quantity) pairs, got {self.levels!r}")
        if not self.levels:
            raise ValueError("depth levels must not be empty")
        levels: list[tuple[float, float]] = []
        previous = 0.0
        for index, level in enumerate(self.levels):
            if isinstance(level, str | bytes) or not isinstance(level, Sequence) or len(level) != 2:
                raise ValueError(f"levels[{index}] must be an (offset, quantity) pair: {level!r}")
            offset = _inputs.fraction_below_one(f"levels[{index}].offset", level[0])
            if offset <= previous:
                raise ValueError(
                    f"levels[{index}].offset must be > 0 and above the previous level's "
                    f"({previous!r}), got {offset!r}"
                )
            previous = offset
            levels.append((offset, _inputs.positive(f"levels[{index}].quantity", level[1])))
        deepest = levels[-1][0]
        overflow = (
            min(2.0 * deepest, _WORST_OFFSET)
            if self.overflow_offset is None
            else _inputs.fraction_below_one("overflow_offset", self.overflow_offset)
        )
        if overflow < deepest:
            raise ValueError(
                f"overflow_offset ({overflow!r}) must not be better than the deepest level "
                f"({deepest!r})"
            )
        object.__setattr__(self, "levels", tuple(levels))
        object.__setattr__(self, "overflow_offset", overflow)

    @classmethod
    def from_book(cls, book: OrderBook, *, overflow_offset: float | None = None) -> DepthProfile:
        """The profile of a live book, relative to its mid, taking the worse side at every size.

        A long's forced close walks the bids and a short's the asks; the profile is one ladder
        for both, so at each cumulative size it keeps the larger of the two sides' offsets, and
        it ends where the thinner side ends. Offsets are fractions below one (a bid 100 % under
        the mid is free), so a level further out than 99 % (an ask at twice the mid or more on
        a thin book) counts at 99 %: a forced close into it loses about everything anyway.
        """
        if not isinstance(book, OrderBook):
            raise ValueError(f"book must be an OrderBook, got {type(book).__name__}")
        mid = book.mid
        sides = [
            _steps([((mid - price) / mid, size) for price, size in book.bids]),
            _steps([((price - mid) / mid, size) for price, size in book.asks]),
        ]
        depth = min(side[-1][0] for side in sides)
        edges = sorted({edge for side in sides for edge, _ in side if edge <= depth})
        levels: list[tuple[float, float]] = []
        filled = 0.0
        # Edges rise, so each side's level for the next edge is at or after the last one's.
        cursors = [0] * len(sides)
        for edge in edges:
            for index, side in enumerate(sides):
                at = cursors[index]
                while at < len(side) - 1 and side[at][0] < edge:
                    at += 1
                cursors[index] = at
            offset = min(
                max(side[at][1] for side, at in zip(sides, cursors, strict=True)), _WORST_OFFSET
            )
            if levels and levels[-1][0] == offset:
                levels[-1] = (offset, levels[-1][1] + edge - filled)
            else:
                levels.append((offset, edge - filled))
            filled = edge
        return cls(tuple(levels), overflow_offset)

    def unit_close(self, quantity: float, side: int) -> tuple[float, float]:
        """Closing ``quantity`` of a ``side`` (+1 long, -1 short) position, per unit of mark:
        ``(slippage, traded notional)``. Multiply both by the mark for quote currency."""
        _inputs.positive("quantity", quantity)
        # Relative offsets make the cost scale with the mark, so one walk at a mark of 1.0
        # prices the close at every shocked price.
        # The levels were validated on construction (offsets rising in (0, 1), sizes > 0), so
        # the book they make is ordered and uncrossed: built without validating it again.
        book = _relative_book(
            bids=tuple((1.0 - offset, size) for offset, size in self.levels),
            asks=tuple((1.0 + offset, size) for offset, size in self.levels),
        )
        selling = side > 0
        walk = book.walk("sell" if selling else "buy", quantity)
        rest = walk.unfilled
        overflow = self.overflow_offset or 0.0
        if selling:
            notional = walk.notional + rest * (1.0 - overflow)
            return quantity - notional, notional
        notional = walk.notional + rest * (1.0 + overflow)
        return notional - quantity, notional


def _steps(levels: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(cumulative size, offset) at the end of each level."""
    out: list[tuple[float, float]] = []
    total = 0.0
    for offset, size in levels:
        total += size
        out.append((total, offset))
    return out


def account_equity(account: Account, prices: Mapping[str, float] | None = None) -> float:
    """Cross wallet + every position's unrealised PnL + every isolated margin.

    Positions are marked at ``prices[symbol]`` when given, else at their own mark. The account's
    ``wallet_balance`` is the cross wallet (isolated margins are on their legs).
    """
    require_linear(account)
    total = account.wallet_balance
    for leg in account.positions:
        price = leg.mark_price if prices is None else prices[leg.symbol]
        total += leg.unrealized_pnl(price) + (leg.isolated_wallet or 0.0)
    return total


def pool_equity(account: Account, leg: PositionLeg) -> float:
    """The equity backing ``leg`` at the marks: the whole cross pool (wallet plus every cross
    position's PnL), or the leg's own isolated margin plus its PnL."""
    require_linear(account)
    if leg.isolated_wallet is not None:
        return leg.isolated_wallet + leg.unrealized_pnl(leg.mark_price)
    return account.wallet_balance + sum(
        other.unrealized_pnl(other.mark_price)
        for other in account.positions
        if other.isolated_wallet is None
    )


def require_linear(account: Account) -> None:
    """Refuse an account holding inverse contracts (the grid and the cascade price linear
    ones only), naming them."""
    # Inverse PnL is in coin and linear PnL in quote: summing them would be a silent unit error.
    inverse = [leg.symbol for leg in account.positions if leg.inverse]
    if inverse:
        raise ValueError(
            f"account equity and the stress grid cover linear contracts only; "
            f"inverse: {', '.join(inverse)}"
        )


def _symbols(account: Account) -> tuple[str, ...]:
    return tuple(dict.fromkeys(leg.symbol for leg in account.positions))


@dataclass(frozen=True, slots=True)
class StressGrid:
    """Shocks (fractions of the mark, each in (-1, 1)), regimes, and the book every symbol's
    forced close walks. ``betas`` scale the shock per symbol in the ``independent`` regime."""

    shocks: tuple[float, ...]
    depth: Mapping[str, DepthProfile]
    regimes: tuple[Regime, ...] = REGIMES
    betas: Mapping[str, float] = field(default_factory=dict)
    taker_fee: float = 0.0005

    def __post_init__(self) -> None:
        if isinstance(self.shocks, str | bytes) or not isinstance(self.shocks, Iterable):
            raise ValueError(f"shocks must be a sequence of fractions, got {self.shocks!r}")
        shocks = sorted({_shock(f"shocks[{i}]", s) for i, s in enumerate(self.shocks)})
        if not shocks:
            raise ValueError("shocks must not be empty")
        regimes = tuple(_inputs.choice("regimes", r, REGIMES) for r in self.regimes)
        if not regimes:
            raise ValueError("regimes must not be empty")
        if not isinstance(self.depth, Mapping) or not all(
            isinstance(p, DepthProfile) for p in self.depth.values()
        ):
            raise ValueError("depth must map each symbol to a DepthProfile")
        betas = {str(k): _inputs.positive(f"betas[{k!r}]", v) for k, v in self.betas.items()}
        widest = max(abs(s) for s in shocks)
        for symbol, beta in betas.items():
            if beta * widest >= 1.0:
                raise ValueError(
                    f"betas[{symbol!r}] ({beta!r}) times the widest shock ({widest!r}) would "
                    "move the price to or below zero"
                )
        _inputs.non_negative("taker_fee", self.taker_fee)
        if self.taker_fee >= 0.1:
            raise ValueError(f"taker_fee is a fraction (0.0005 = 5 bps), got {self.taker_fee!r}")
        object.__setattr__(self, "shocks", tuple(shocks))
        object.__setattr__(self, "regimes", tuple(dict.fromkeys(regimes)))
        object.__setattr__(self, "depth", dict(self.depth))
        object.__setattr__(self, "betas", betas)

    @classmethod
    def from_config(
        cls, config: StressConfig, *, depth: Mapping[str, DepthProfile], taker_fee: float
    ) -> StressGrid:
        """The grid a policy describes (its shocks are in %, the grid's in fractions)."""
        return cls(
            shocks=tuple(pct / 100.0 for pct in config.shocks_pct),
            depth=depth,
            regimes=config.regimes,
            betas=config.betas,
            taker_fee=taker_fee,
        )

    def beta(self, symbol: str) -> float:
        return self.betas.get(symbol, 1.0)


@dataclass(frozen=True, slots=True)
class StressCell:
    """The account after one regime's shock ``shock``."""

    regime: Regime
    shock: float
    prices: Mapping[str, float]
    """Shocked marks (independent: those of the one-symbol scenario with the lowest equity)."""
    equity: float
    """Equity left: mark-to-market for surviving pools, after forced closes for liquidated ones."""
    margin_ratio: float
    """Worst pool's (maintenance margin + close cost) / equity; >= 1 liquidates; inf if broke."""
    liquidated: tuple[str, ...]
    close_cost: float
    """Slippage and fees the forced closes paid (0 when nothing was liquidated)."""

    @property
    def survives(self) -> bool:
        return not self.liquidated


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """The smallest shock that liquidates something under one regime."""

    regime: Regime
    grid_shock: float
    """The grid shock of smallest magnitude whose cell liquidates."""
    boundary: float
    """Between that grid shock and the next smaller one that survives (or zero), the shock at
    which liquidation begins, found by bisection: it liquidates, and a shock just smaller in
    magnitude does not."""


@dataclass(frozen=True, slots=True)
class StressReport:
    """Every cell of a grid for one account, and each regime's smallest liquidating shock."""

    account_equity: float
    cells: tuple[StressCell, ...]
    breakpoints: Mapping[Regime, Breakpoint | None]

    def cell(self, regime: Regime, shock: float) -> StressCell:
        for cell in self.cells:
            if cell.regime == regime and cell.shock == shock:
                return cell
        raise KeyError(f"no cell for regime {regime!r} and shock {shock!r}")

    @property
    def worst_cell(self) -> StressCell:
        return _worst(self.cells)

    @property
    def survives(self) -> bool:
        return all(cell.survives for cell in self.cells)


def stress_test(account: Account, grid: StressGrid) -> StressReport:
    """Every cell of ``grid`` for ``account``, and each regime's smallest liquidating shock."""
    book = _Book.of(account, grid)
    cells = tuple(book.cell(regime, shock) for regime in grid.regimes for shock in grid.shocks)
    breakpoints = {
        regime: _breakpoint(book, regime, [c for c in cells if c.regime == regime])
        for regime in grid.regimes
    }
    return StressReport(account_equity(account), cells, breakpoints)


def survives_grid(
    account_after_order: Account, grid: StressGrid, *, nearest: bool = True
) -> tuple[bool, StressCell]:
    """Whether no cell of ``grid`` liquidates anything, and the cell that decides it.

    The cell is the liquidating one of smallest shock magnitude (the nearest breach) when the
    account fails, else the cell with the lowest equity (the closest call). With
    ``nearest=False`` a failing account's cell is any one that liquidates (a size search only
    needs the yes or no, and finding the nearest breach costs a scan of the grid).

    The pre-trade verdict asks this for every order (and for every size its search probes), so
    a surviving account is proved with the ends of each regime's shocks alone. Along one
    regime and direction every price moves linearly with the shock, so each pool's equity is
    linear in it, and its requirement (maintenance on a ladder whose MM is continuous, hence
    convex in the notional, plus a close cost proportional to the price) is convex: equity
    minus requirement is concave, and a concave function above zero at both ends of an
    interval is above zero inside it. The lowest equity, the minimum of linear functions, is
    at an end too. A ladder whose MM jumps at a boundary (``cum`` off its recurrence) breaks
    the argument, and every cell is evaluated then, as it is to find the nearest breach.
    """
    book = _Book.of(account_after_order, grid)
    cells: list[StressCell] = []
    # Mildest shocks first: once a magnitude liquidates, no larger one can be the nearest breach.
    for magnitude in sorted({abs(s) for s in grid.shocks}):
        ring = [
            book.cell(regime, shock)
            for regime in grid.regimes
            for shock in grid.shocks
            if abs(shock) == magnitude
        ]
        cells.extend(ring)
        if not all(cell.survives for cell in ring):
            break
        if len(cells) == len(ring) and book.concave:
            # The mildest shocks survive: the widest ones decide the rest (cells already
            # priced, the mildest among them, come from the book's memo).
            ends = [
                book.cell(regime, shock)
                for regime in grid.regimes
                for shock in _ray_ends(grid.shocks, regime)
            ]
            if all(cell.survives for cell in ends):
                return True, _worst(ends)
            if not nearest:
                return False, _worst(ends)
    worst = _worst(cells)
    return worst.survives, worst


def evaluate_cell(account: Account, grid: StressGrid, regime: Regime, shock: float) -> StressCell:
    """One cell: ``regime`` applied with market shock ``shock`` (a fraction in (-1, 1))."""
    _inputs.choice("regime", regime, REGIMES)
    return _Book.of(account, grid).cell(regime, _shock("shock", shock))


@dataclass(frozen=True, slots=True)
class _Outcome:
    prices: Mapping[str, float]
    equity: float
    margin_ratio: float
    liquidated: tuple[str, ...]
    close_cost: float


def _ray_ends(shocks: Sequence[float], regime: Regime) -> tuple[float, ...]:
    """The mildest and the widest shock on each side of zero (``hedges_fail`` moves every
    position against itself by ``|shock|``, so its two sides are one ray)."""
    if regime == "hedges_fail":
        by_size = sorted(shocks, key=abs)
        return tuple(dict.fromkeys((by_size[0], by_size[-1])))
    falls = [s for s in shocks if s < 0.0]
    rises = [s for s in shocks if s >= 0.0]
    ends = [max(falls), min(falls)] if falls else []
    if rises:
        ends += [min(rises), max(rises)]
    return tuple(dict.fromkeys(ends))


def _continuous(table: TierTable) -> bool:
    """Whether the ladder's maintenance margin is continuous in the position's size along a
    price move (convex then: its rates never fall). Keyed by quantity, the tier never moves."""
    if table.keyed_by == "quantity":
        return True
    for previous, tier in pairwise(table.tiers):
        edge = tier.min_notional
        jump = tier.maintenance_margin(edge) - previous.maintenance_margin(edge)
        if abs(jump) > _JUMP_TOLERANCE * max(edge, 1.0):
            return False
    return True


@dataclass(frozen=True, slots=True)
class _Book:
    """An account bound to a grid, with each leg's close walked once (it scales with price)."""

    account: Account
    grid: StressGrid
    closes: tuple[tuple[float, float], ...]
    """Per leg, (slippage, traded notional) per unit of mark."""
    concave: bool
    """Every leg's ladder is continuous: equity minus requirement is concave along a shock."""
    symbols: tuple[str, ...]
    seen: dict[tuple[float, ...], _Outcome] = field(default_factory=dict, compare=False)
    """Outcomes by the move of every symbol: with one symbol held, a regime's cell is often
    another's (together, independent and hedges_fail all move it the same way)."""

    @classmethod
    def of(cls, account: Account, grid: StressGrid) -> _Book:
        missing = [symbol for symbol in _symbols(account) if symbol not in grid.depth]
        if missing:
            raise ValueError(
                f"the stress grid has no depth profile for {', '.join(missing)}; a forced close "
                "cannot be priced without one"
            )
        require_linear(account)
        closes = tuple(
            grid.depth[leg.symbol].unit_close(leg.quantity, leg.side) for leg in account.positions
        )
        concave = all(_continuous(leg.tiers) for leg in account.positions)
        return cls(account, grid, closes, concave, _symbols(account))

    def cell(self, regime: Regime, shock: float) -> StressCell:
        account = self.account
        if regime == "independent" and account.positions:
            outcomes = [
                self._outcome({symbol: self.grid.beta(symbol) * shock}) for symbol in self.symbols
            ]
            lowest = min(outcomes, key=lambda o: o.equity)
            return StressCell(
                regime,
                shock,
                lowest.prices,
                lowest.equity,
                max(o.margin_ratio for o in outcomes),
                tuple(sorted({s for o in outcomes for s in o.liquidated})),
                max(o.close_cost for o in outcomes),
            )
        if regime == "hedges_fail":
            # Each symbol moves against its net exposure. (In hedge mode both legs of one
            # symbol cannot lose at one price; the net is what the account is exposed to.)
            net = _net_side(account)
            moves = {symbol: -net[symbol] * abs(shock) for symbol in self.symbols}
        else:
            moves = dict.fromkeys(self.symbols, shock)
        o = self._outcome(moves)
        return StressCell(
            regime, shock, o.prices, o.equity, o.margin_ratio, o.liquidated, o.close_cost
        )

    def _outcome(self, moves: Mapping[str, float]) -> _Outcome:
        key = tuple(moves.get(symbol, 0.0) for symbol in self.symbols)
        known = self.seen.get(key)
        if known is None:
            known = self.seen[key] = self._price(moves)
        return known

    def _price(self, moves: Mapping[str, float]) -> _Outcome:
        account, grid = self.account, self.grid
        prices = {
            leg.symbol: leg.mark_price * (1.0 + moves.get(leg.symbol, 0.0))
            for leg in account.positions
        }
        # A pool is one margin balance: the cross wallet with its legs, or one isolated leg.
        pools: dict[int | None, tuple[float, list[int]]] = {None: (account.wallet_balance, [])}
        for index, leg in enumerate(account.positions):
            if leg.isolated_wallet is None:
                pools[None][1].append(index)
            else:
                pools[index] = (leg.isolated_wallet, [index])
        equity = 0.0
        worst_ratio = 0.0
        liquidated: list[str] = []
        paid = 0.0
        for wallet, members in pools.values():
            legs = [account.positions[i] for i in members]
            pool_equity = wallet + sum(leg.unrealized_pnl(prices[leg.symbol]) for leg in legs)
            if not legs:
                equity += pool_equity
                continue
            closing = 0.0
            for i, leg in zip(members, legs, strict=True):
                slippage, notional = self.closes[i]
                closing += prices[leg.symbol] * (slippage + grid.taker_fee * notional)
            requirement = closing + sum(leg_maintenance(leg, prices[leg.symbol]) for leg in legs)
            ratio = requirement / pool_equity if pool_equity > 0.0 else math.inf
            worst_ratio = max(worst_ratio, ratio)
            if ratio >= 1.0:
                liquidated.extend(leg.symbol for leg in legs)
                paid += closing
                equity += max(pool_equity - closing, 0.0)
            else:
                equity += pool_equity
        return _Outcome(prices, equity, worst_ratio, tuple(sorted(set(liquidated))), paid)


def _breakpoint(book: _Book, regime: Regime, cells: Sequence[StressCell]) -> Breakpoint | None:
    best: Breakpoint | None = None
    for direction in (-1.0, 1.0):
        side = sorted((c for c in cells if c.shock * direction >= 0.0), key=lambda c: abs(c.shock))
        survived = 0.0
        for cell in side:
            if cell.survives:
                survived = abs(cell.shock)
                continue
            boundary = _bisect(book, regime, direction, survived, abs(cell.shock))
            if best is None or abs(boundary) < abs(best.boundary):
                best = Breakpoint(regime, cell.shock, boundary)
            break
    return best


def _bisect(book: _Book, regime: Regime, direction: float, low: float, high: float) -> float:
    """Magnitudes: ``low`` survives (or is 0), ``high`` liquidates; returns a liquidating shock."""
    if low == 0.0 and book.cell(regime, 0.0).liquidated:
        return 0.0
    for _ in range(_BISECT_STEPS):
        middle = (low + high) / 2.0
        if middle in (low, high):
            break
        if book.cell(regime, direction * middle).survives:
            low = middle
        else:
            high = middle
    return direction * high


def _worst(cells: Sequence[StressCell]) -> StressCell:
    if not cells:
        raise ValueError("a stress grid needs at least one cell")
    failing = [c for c in cells if not c.survives]
    if failing:
        return min(failing, key=lambda c: (abs(c.shock), c.equity))
    return min(cells, key=lambda c: (c.equity, -abs(c.shock)))


def _net_side(account: Account) -> dict[str, float]:
    exposure: dict[str, float] = {}
    for leg in account.positions:
        exposure[leg.symbol] = exposure.get(leg.symbol, 0.0) + leg.side * leg.quantity
    return {symbol: 1.0 if net >= 0.0 else -1.0 for symbol, net in exposure.items()}


def leg_maintenance(leg: PositionLeg, price: float) -> float:
    """The maintenance margin ``leg`` needs at ``price`` (infinite past its last tier)."""
    table = leg.tiers
    try:
        return table.maintenance_margin(
            leg.quantity if table.keyed_by == "quantity" else leg.notional(price)
        )
    except ValueError:
        # Past the last tier the venue would not carry the position at all: count it as gone.
        return math.inf


def _shock(name: str, value: object) -> float:
    shock = _inputs.number(name, value)
    if not -1.0 < shock < 1.0:
        raise ValueError(
            f"{name} must be a fraction in (-1, 1) (-0.2 = a 20 % fall), got {shock!r}"
        )
    return shock


__all__ = [
    "REGIMES",
    "Breakpoint",
    "DepthProfile",
    "Regime",
    "StressCell",
    "StressGrid",
    "StressReport",
    "account_equity",
    "evaluate_cell",
    "leg_maintenance",
    "pool_equity",
    "require_linear",
    "stress_test",
    "survives_grid",
]
