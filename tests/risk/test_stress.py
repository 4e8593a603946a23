"""The portfolio stress grid: monotone, correlation-aware, depth-aware, self-consistent."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from safeguard._config import StressConfig
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._stress import (
    DepthProfile,
    StressGrid,
    account_equity,
    evaluate_cell,
    stress_test,
    survives_grid,
)
from safeguard.risk._tiers import (
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
    TierTable,
)

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
TIERS: dict[str, TierTable] = {
    BTC: BINANCE_BTCUSDT_TIERS,
    ETH: BINANCE_ETHUSDT_TIERS,
    SOL: BINANCE_SOLUSDT_TIERS,
}
MARKS = {BTC: 60_000.0, ETH: 3_000.0, SOL: 150.0}
DEEP = DepthProfile(((0.0002, 1e6), (0.001, 1e7)))
THIN = DepthProfile(((0.001, 0.5), (0.005, 1.0), (0.02, 2.0)))
DOWN = tuple(-x / 100 for x in (1, 2, 5, 10, 15, 20, 30, 40, 50, 60))
SHOCKS = tuple(sorted(DOWN + tuple(-s for s in DOWN)))


def leg(symbol: str, side: int, quantity: float, *, isolated: float | None = None) -> PositionLeg:
    mark = MARKS[symbol]
    return PositionLeg(symbol, side, quantity, mark, mark, TIERS[symbol], isolated_wallet=isolated)


def grid(depth: DepthProfile = DEEP, **kwargs: object) -> StressGrid:
    return StressGrid(shocks=SHOCKS, depth=dict.fromkeys(MARKS, depth), **kwargs)  # type: ignore[arg-type]


def leg_specs(
    smallest: float, most_isolated: float
) -> st.SearchStrategy[list[tuple[str, int, float, float | None]]]:
    """One to three legs in distinct symbols: (symbol, side, size fraction, isolated margin)."""
    return st.lists(
        st.tuples(
            st.sampled_from([BTC, ETH, SOL]),
            st.sampled_from([1, -1]),
            st.floats(smallest, 1.0),
            st.none() | st.floats(100.0, most_isolated),
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda t: t[0],
    )


LONG_BOOK = Account(
    wallet_balance=30_000.0, positions=(leg(BTC, 1, 1.0), leg(ETH, 1, 10.0), leg(SOL, 1, 100.0))
)


def test_the_cell_numbers_follow_from_the_shocked_marks() -> None:
    account = Account(wallet_balance=10_000.0, positions=(leg(BTC, 1, 1.0),))
    cell = evaluate_cell(account, grid(), "together", -0.1)
    assert cell.prices == {BTC: 54_000.0}
    assert cell.equity == pytest.approx(4_000.0)
    closing = 54_000.0 * (0.0002 + 0.0005 * (1 - 0.0002))  # slippage + taker fee
    maintenance = 54_000.0 * 0.004  # tier 1 at the shocked notional
    assert cell.margin_ratio == pytest.approx((maintenance + closing) / 4_000.0)
    assert cell.survives
    assert cell.close_cost == 0.0  # nothing was forced to close


def test_a_liquidated_cross_account_keeps_what_is_left_after_paying_for_its_exit() -> None:
    account = Account(wallet_balance=10_000.0, positions=(leg(BTC, 1, 1.0),))
    cell = evaluate_cell(account, grid(THIN), "together", -0.165)
    assert cell.liquidated == (BTC,)
    equity_at_marks = 10_000.0 - 0.165 * 60_000.0
    assert cell.equity == pytest.approx(max(equity_at_marks - cell.close_cost, 0.0))
    assert cell.close_cost > 0.0


@given(
    wallet=st.floats(1_000.0, 200_000.0),
    sizes=leg_specs(0.01, 20_000.0),
)
@settings(max_examples=60, deadline=None)
def test_a_bigger_adverse_shock_never_leaves_more_equity(
    wallet: float, sizes: list[tuple[str, int, float, float | None]]
) -> None:
    scale = {BTC: 1.0, ETH: 20.0, SOL: 400.0}  # comparable notionals per unit drawn
    positions = tuple(
        leg(symbol, side, fraction * scale[symbol], isolated=isolated)
        for symbol, side, fraction, isolated in sizes
    )
    account = Account(wallet_balance=wallet, positions=positions)
    report = stress_test(account, grid(THIN))
    # hedges_fail moves every position against itself, so |shock| is an adverse move for all.
    for shocks in (DOWN, tuple(-s for s in DOWN)):
        cells = [report.cell("hedges_fail", s) for s in shocks]
        for milder, harsher in itertools.pairwise(cells):
            assert harsher.equity <= milder.equity + 1e-6
            assert set(milder.liquidated) <= set(harsher.liquidated)
    if all(p.side == 1 for p in positions):  # a long-only book: a deeper fall is adverse too
        falls = [report.cell("together", s) for s in DOWN]
        for milder, harsher in itertools.pairwise(falls):
            assert harsher.equity <= milder.equity + 1e-6


def test_a_correlated_crash_is_harsher_than_independent_moves_for_a_long_only_book() -> None:
    report = stress_test(LONG_BOOK, grid())
    for shock in DOWN:
        together = report.cell("together", shock)
        independent = report.cell("independent", shock)
        assert together.equity <= independent.equity
        assert together.margin_ratio >= independent.margin_ratio
    assert report.cell("together", -0.2).equity < report.cell("independent", -0.2).equity
    together_bp = report.breakpoints["together"]
    independent_bp = report.breakpoints["independent"]
    assert together_bp is not None
    assert independent_bp is not None
    assert abs(together_bp.boundary) < abs(independent_bp.boundary)


def test_hedges_that_fail_sink_a_book_that_a_correlated_move_leaves_alone() -> None:
    hedged = Account(wallet_balance=10_000.0, positions=(leg(BTC, 1, 1.0), leg(ETH, -1, 20.0)))
    report = stress_test(hedged, grid())
    assert all(report.cell("together", s).survives for s in SHOCKS)
    assert not report.cell("hedges_fail", -0.2).survives
    assert report.cell("hedges_fail", -0.2).prices == {BTC: 48_000.0, ETH: 3_600.0}


def test_a_thin_book_makes_the_grid_harsher_than_a_deep_one() -> None:
    account = Account(wallet_balance=15_000.0, positions=(leg(BTC, 1, 2.0), leg(ETH, -1, 30.0)))
    deep, thin = stress_test(account, grid(DEEP)), stress_test(account, grid(THIN))
    for regime in ("together", "independent", "hedges_fail"):
        for shock in SHOCKS:
            d, t = deep.cell(regime, shock), thin.cell(regime, shock)
            assert t.equity <= d.equity + 1e-9
            assert t.margin_ratio >= d.margin_ratio
            assert set(d.liquidated) <= set(t.liquidated)
        d_bp, t_bp = deep.breakpoints[regime], thin.breakpoints[regime]
        assert d_bp is not None
        assert t_bp is not None
        assert abs(t_bp.boundary) < abs(d_bp.boundary)
    # And somewhere the difference decides survival, not just a few dollars.
    assert any(
        deep.cell(r, s).survives and not thin.cell(r, s).survives
        for r in ("together", "hedges_fail")
        for s in SHOCKS
    )


@given(
    wallet=st.floats(500.0, 100_000.0),
    btc=st.floats(0.05, 3.0),
    eth=st.floats(0.5, 60.0),
    eth_side=st.sampled_from([1, -1]),
    isolated=st.none() | st.floats(200.0, 20_000.0),
)
@settings(max_examples=50, deadline=None)
def test_the_smallest_liquidating_shock_agrees_with_the_cells(
    wallet: float, btc: float, eth: float, eth_side: int, isolated: float | None
) -> None:
    account = Account(
        wallet_balance=wallet,
        positions=(leg(BTC, 1, btc), leg(ETH, eth_side, eth, isolated=isolated)),
    )
    g = grid(THIN)
    report = stress_test(account, g)
    for regime in ("together", "hedges_fail", "independent"):
        cells = [c for c in report.cells if c.regime == regime]
        breakpoint_ = report.breakpoints[regime]
        if breakpoint_ is None:
            assert all(c.survives for c in cells)
            continue
        grid_cell = report.cell(regime, breakpoint_.grid_shock)
        assert not grid_cell.survives
        # The grid shock is the smallest liquidating one: every milder cell on its side survives.
        assert all(
            c.survives
            for c in cells
            if abs(c.shock) < abs(breakpoint_.grid_shock) and c.shock * breakpoint_.grid_shock > 0
        )
        assert abs(breakpoint_.boundary) <= abs(breakpoint_.grid_shock)
        assert not evaluate_cell(account, g, regime, breakpoint_.boundary).survives
        if regime == "hedges_fail" and breakpoint_.boundary != 0.0:
            just_inside = breakpoint_.boundary * (1 - 1e-9)
            assert evaluate_cell(account, g, regime, just_inside).survives


def test_an_isolated_position_loses_at_most_its_margin() -> None:
    account = Account(
        wallet_balance=50_000.0,
        positions=(leg(BTC, 1, 0.5), leg(SOL, -1, 200.0, isolated=1_500.0)),
    )
    cell = evaluate_cell(account, grid(), "together", 0.2)  # SOL up 20 %: 6,000 loss on 1,500
    assert cell.liquidated == (SOL,)
    assert cell.equity == pytest.approx(50_000.0 + 0.5 * 12_000.0)


def test_survives_grid_names_the_nearest_breach_or_the_closest_call() -> None:
    ok, closest = survives_grid(
        Account(wallet_balance=1_000_000.0, positions=(leg(BTC, 1, 1.0),)), grid()
    )
    assert ok
    assert closest.survives
    assert closest.shock == min(SHOCKS)  # a long's worst cell is the deepest fall
    ok, breach = survives_grid(LONG_BOOK, grid())
    report = stress_test(LONG_BOOK, grid())
    assert not ok
    assert not breach.survives
    assert abs(breach.shock) == min(abs(c.shock) for c in report.cells if not c.survives)


def test_an_account_already_under_water_fails_at_a_zero_shock() -> None:
    account = Account(
        wallet_balance=0.0,
        positions=(PositionLeg(BTC, 1, 1.0, 70_000.0, 60_000.0, BINANCE_BTCUSDT_TIERS),),
    )
    report = stress_test(account, grid())
    assert account_equity(account) == -10_000.0
    breakpoint_ = report.breakpoints["together"]
    assert breakpoint_ is not None
    assert breakpoint_.boundary == 0.0


def test_from_config_takes_percent_and_the_policy_regimes() -> None:
    config = StressConfig(shocks_pct=(-20.0, 10.0), regimes=("together",), betas={BTC: 1.5})
    g = StressGrid.from_config(config, depth={BTC: DEEP}, taker_fee=0.0004)
    assert g.shocks == (-0.2, 0.1)
    assert g.regimes == ("together",)
    assert g.beta(BTC) == 1.5
    assert g.beta(ETH) == 1.0


def test_betas_scale_the_independent_regime() -> None:
    account = Account(wallet_balance=100_000.0, positions=(leg(BTC, 1, 1.0),))
    cell = evaluate_cell(account, grid(betas={BTC: 1.5}), "independent", -0.1)
    assert cell.prices[BTC] == pytest.approx(60_000.0 * 0.85)


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: StressGrid(shocks=(math.nan,), depth={}), "shocks"),
        (lambda: StressGrid(shocks=(-1.0,), depth={}), "shocks"),
        (lambda: StressGrid(shocks=(), depth={}), "shocks"),
        (lambda: StressGrid(shocks=(0.1,), depth={}, regimes=("crash",)), "regimes"),  # type: ignore[arg-type]
        (lambda: StressGrid(shocks=(0.5,), depth={}, betas={BTC: 2.5}), "betas"),
        (lambda: StressGrid(shocks=(0.5,), depth={}, taker_fee=-0.1), "taker_fee"),
        (lambda: DepthProfile(()), "empty"),
        (lambda: DepthProfile(((0.002, 1.0), (0.001, 1.0))), "offset"),
        (lambda: DepthProfile(((0.0, 1.0),)), "offset"),
        (lambda: DepthProfile(((0.001, -1.0),)), "quantity"),
        (lambda: DepthProfile(((0.001, 1.0),), overflow_offset=0.0005), "overflow_offset"),
    ],
)
def test_nonsense_is_refused_naming_the_field(build: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        build()  # type: ignore[operator]


def test_a_symbol_without_a_depth_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="SOL/USDT:USDT"):
        stress_test(LONG_BOOK, StressGrid(shocks=(0.1,), depth={BTC: DEEP, ETH: DEEP}))


def test_inverse_positions_are_refused_rather_than_mispriced() -> None:
    from safeguard.risk._tiers import BINANCE_BTCUSD_COINM_TIERS

    inverse = PositionLeg(
        "BTC/USD:BTC", 1, 10_000.0, 60_000.0, 60_000.0, BINANCE_BTCUSD_COINM_TIERS, inverse=True
    )
    account = Account(wallet_balance=1.0, positions=(inverse,))
    with pytest.raises(ValueError, match="linear"):
        stress_test(account, StressGrid(shocks=(0.1,), depth={"BTC/USD:BTC": DEEP}))


@given(st.floats(0.01, 50.0), st.floats(0.01, 50.0))
@settings(max_examples=40, deadline=None)
def test_closing_more_never_costs_less_per_unit(small: float, extra: float) -> None:
    assume(extra > 1e-6)
    low, _ = THIN.unit_close(small, 1)
    high, _ = THIN.unit_close(small + extra, 1)
    assert high / (small + extra) >= low / small - 1e-12


@pytest.mark.parametrize(
    ("stress", "named"),
    [
        ({"shocks_pct": []}, "shocks_pct"),
        ({"shocks_pct": [-100.0]}, "shocks_pct"),
        ({"regimes": []}, "regimes"),
        ({"regimes": ["crash"]}, "regimes"),
        ({"betas": {BTC: 2.5}}, "betas"),
        ({"betas": {BTC: -1.0}}, "betas"),
    ],
)
def test_a_policy_with_an_unusable_grid_is_refused_at_load(
    stress: dict[str, object], named: str
) -> None:
    from safeguard._config import Policy
    from safeguard._errors import ConfigError

    with pytest.raises(ConfigError, match=named):
        Policy.build(risk={"stress": stress})


def test_a_profile_from_a_live_book_takes_the_worse_side_at_every_size() -> None:
    from safeguard.risk._book import OrderBook

    book = OrderBook(
        bids=((99.9, 1.0), (99.5, 3.0), (98.0, 10.0)),  # offsets 0.1 %, 0.5 %, 2 % of mid 100
        asks=((100.1, 2.0), (100.3, 2.0)),  # offsets 0.1 %, 0.3 %; 4 in all
    )
    profile = DepthProfile.from_book(book)
    offsets = [round(offset, 6) for offset, _ in profile.levels]
    sizes = [size for _, size in profile.levels]
    # sizes 0-1: both 0.1 %; 1-2: bids 0.5 % vs asks 0.1 %; 2-4: bids 0.5 % vs asks 0.3 %.
    assert offsets == [0.001, 0.005]
    assert sizes == pytest.approx([1.0, 3.0])
    # Closing either side of the position on the profile costs at least the real walk.
    for side, walk_side in ((1, "sell"), (-1, "buy")):
        slippage, _ = profile.unit_close(3.5, side)
        walk = book.walk(walk_side, 3.5)  # type: ignore[arg-type]
        real = abs(walk.notional - 3.5 * book.mid) / book.mid
        assert slippage >= real - 1e-12


@given(
    wallet=st.floats(500.0, 100_000.0),
    legs=leg_specs(0.05, 10_000.0),
)
@settings(max_examples=40, deadline=None)
def test_any_book_fares_no_better_on_a_thin_book(
    wallet: float, legs: list[tuple[str, int, float, float | None]]
) -> None:
    scale = {BTC: 2.0, ETH: 40.0, SOL: 800.0}
    account = Account(
        wallet_balance=wallet,
        positions=tuple(
            leg(symbol, side, fraction * scale[symbol], isolated=isolated)
            for symbol, side, fraction, isolated in legs
        ),
    )
    deep, thin = stress_test(account, grid(DEEP)), stress_test(account, grid(THIN))
    for d, t in zip(deep.cells, thin.cells, strict=True):
        assert (d.regime, d.shock) == (t.regime, t.shock)
        assert t.equity <= d.equity + 1e-9
        assert set(d.liquidated) <= set(t.liquidated)


JUMPY = TierTable(
    tuple(
        dataclasses.replace(tier, cum=0.0) for tier in BINANCE_BTCUSDT_TIERS.tiers
    ),  # MM jumps up at every boundary (cum off its recurrence)
    check_cum=False,
)


@given(
    wallet=st.floats(0.0, 120_000.0),
    legs=leg_specs(0.05, 20_000.0),
    shocks=st.lists(st.floats(-0.9, 0.9), min_size=1, max_size=8),
    jumpy=st.booleans(),
    beta=st.floats(0.5, 1.05),
)
@settings(max_examples=150, deadline=None)
def test_survives_grid_agrees_with_every_cell_of_the_grid(
    wallet: float,
    legs: list[tuple[str, int, float, float | None]],
    shocks: list[float],
    jumpy: bool,
    beta: float,
) -> None:
    # survives_grid proves survival from each regime's extreme shocks; the full report looks
    # at every cell. They must agree, and the closest call must be the report's worst cell.
    scale = {BTC: 8.0, ETH: 100.0, SOL: 2_000.0}
    positions = []
    for symbol, side, fraction, isolated in legs:
        mark = MARKS[symbol]
        tiers = JUMPY if jumpy and symbol == BTC else TIERS[symbol]
        positions.append(
            PositionLeg(
                symbol, side, fraction * scale[symbol], mark, mark, tiers, isolated_wallet=isolated
            )
        )
    account = Account(wallet_balance=wallet, positions=tuple(positions))
    g = StressGrid(shocks=tuple(shocks), depth=dict.fromkeys(MARKS, THIN), betas={ETH: beta})
    ok, cell = survives_grid(account, g)
    report = stress_test(account, g)
    assert ok == report.survives
    if ok:
        assert cell.equity == report.worst_cell.equity
    else:
        assert abs(cell.shock) == min(abs(c.shock) for c in report.cells if not c.survives)


def test_a_ladder_whose_margin_jumps_is_checked_cell_by_cell() -> None:
    # Without cum, 5.1 BTC's maintenance drops by ~300 as a 1.965 % fall takes it under
    # 300,000 of notional: the account fails at -1.96 % and survives at -1.97 %. The ends of
    # the grid survive; the cell between them does not, and survives_grid must see it.
    account = Account(
        wallet_balance=7_500.0, positions=(PositionLeg(BTC, 1, 5.1, 60_000.0, 60_000.0, JUMPY),)
    )
    g = StressGrid(shocks=(-0.001, -0.0196, -0.0197), depth={BTC: DEEP}, regimes=("together",))
    assert evaluate_cell(account, g, "together", -0.001).survives
    assert evaluate_cell(account, g, "together", -0.0197).survives
    ok, breach = survives_grid(account, g)
    assert not ok
    assert breach.shock == -0.0196


@given(
    bids=st.lists(st.floats(0.01, 5.0), min_size=1, max_size=12),
    asks=st.lists(st.floats(0.01, 5.0), min_size=1, max_size=12),
    bid_gaps=st.lists(st.floats(0.01, 1.0), min_size=12, max_size=12),
    ask_gaps=st.lists(st.floats(0.01, 1.0), min_size=12, max_size=12),
)
@settings(max_examples=60, deadline=None)
def test_a_profile_from_a_book_keeps_the_worse_side_at_every_cumulative_size(
    bids: list[float], asks: list[float], bid_gaps: list[float], ask_gaps: list[float]
) -> None:
    from safeguard.risk._book import OrderBook

    book = OrderBook(
        bids=tuple((100.0 - sum(bid_gaps[: i + 1]), size) for i, size in enumerate(bids)),
        asks=tuple((100.0 + sum(ask_gaps[: i + 1]), size) for i, size in enumerate(asks)),
    )
    profile = DepthProfile.from_book(book)
    mid = book.mid

    def offset_at(levels: tuple[tuple[float, float], ...], size: float, sell: bool) -> float:
        filled = 0.0
        for price, quantity in levels:
            filled += quantity
            if size <= filled * (1 + 1e-12):
                return (mid - price) / mid if sell else (price - mid) / mid
        raise AssertionError("past the book")

    filled = 0.0
    for offset, quantity in profile.levels:
        middle = filled + quantity / 2.0  # inside this profile level on both sides
        worse = max(offset_at(book.bids, middle, True), offset_at(book.asks, middle, False))
        assert offset == pytest.approx(worse, rel=1e-12)
        filled += quantity
    assert filled == pytest.approx(min(sum(bids), sum(asks)), rel=1e-12)


def test_a_book_reaching_past_twice_the_mid_still_makes_a_profile() -> None:
    # A thin book can quote an ask at 4x the mid or a bid at 0.5 % of it. The profile's
    # offsets are fractions below 1 (a bid at the mid less 100 % is free), so such levels
    # count at 99 % slippage: a forced close into them loses about everything.
    from safeguard.risk._book import OrderBook

    far_ask = OrderBook(bids=((99.0, 1.0), (50.0, 5.0)), asks=((101.0, 1.0), (400.0, 5.0)))
    far_bid = OrderBook(bids=((99.0, 1.0), (0.5, 5.0)), asks=((101.0, 1.0), (102.0, 5.0)))
    for book in (far_ask, far_bid):
        profile = DepthProfile.from_book(book)
        assert profile.levels[-1][0] == 0.99
        assert sum(size for _, size in profile.levels) == pytest.approx(6.0)
        slippage, _ = profile.unit_close(6.0, 1)
        assert slippage > 0.8 * 5.0  # five of the six units close at 1 % of the mark
