"""The cascade engine: hand-computed two-position paths, its grid, its band, and its properties.

Every hand-computed case uses one flat tier (MMR 1 %, no cum), so an isolated long of quantity
``q`` entered at ``E`` with margin ``M`` is liquidated at ``P <= (q*E - M) / (q * 0.99)``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.risk._cascade import (
    CascadeMarket,
    CascadePath,
    CascadeSymbol,
    Correlation,
    CrowdPosition,
    cascade_grid,
    crowd_from_open_interest,
    liquidation_band,
    run_cascade,
)
from safeguard.risk._liquidation import PositionLeg, get_model
from safeguard.risk._models import Account
from safeguard.risk._stress import DepthProfile
from safeguard.risk._tiers import BINANCE_BTCUSDT_TIERS, TierTable

A, B, C = "A/USDT:USDT", "B/USDT:USDT", "C/USDT:USDT"
FLAT = TierTable.from_rows([(0.0, math.inf, 0.01, 50.0)])
THIN = DepthProfile(((0.01, 5.0), (0.03, 5.0)))  # overflow at 6 %
WIDE = DepthProfile(((0.001, 1e6),))
FEE = 0.0005


def _market(
    depth: DepthProfile,
    *,
    symbols: tuple[str, ...] = (A,),
    vols: tuple[float, ...] = (1.0, 1.0, 1.0),
    refill_rate: float = 0.0,
) -> CascadeMarket:
    return CascadeMarket(
        {s: CascadeSymbol(100.0, vol, depth, FLAT) for s, vol in zip(symbols, vols, strict=False)},
        latency=1.0,
        refill_rate=refill_rate,
        taker_fee=FEE,
    )


def _long(symbol: str, quantity: float = 1.0, *, margin: float | None = None) -> PositionLeg:
    return PositionLeg(symbol, 1, quantity, 100.0, 100.0, FLAT, isolated_wallet=margin)


# Two crowd longs of 1,000 notional at 100: 10x liquidates at 900/9.9 = 90.909, 8x at
# 875/9.9 = 88.384. The account's isolated long of 1 with 15 margin liquidates at 85/0.99 = 85.859.
CROWD = (CrowdPosition(A, 1, 1000.0, 10.0), CrowdPosition(A, 1, 1000.0, 8.0))
ISOLATED_LONG = Account(wallet_balance=0.0, positions=(_long(A, margin=15.0),))


def test_a_thin_book_turns_one_liquidation_into_three() -> None:
    path = run_cascade(ISOLATED_LONG, _market(THIN), shock_symbol=A, shock=-0.10, crowd=CROWD)
    # -10 % puts A at 90: only the 10x crowd long is under. Its 10 sold into 5 @ 1 % and 5 @ 3 %
    # fill at 89.1 and 87.3 (average 88.2) and leave the mark at 87.3 <= 88.384: the 8x goes.
    # Its 10 find the book eaten (no refill) and fill at the 6 % overflow: 84.6 <= 85.859.
    assert [c.node for c in path.closes] == [
        "crowd[0]:A/USDT:USDT",
        "crowd[1]:A/USDT:USDT",
        "account:A/USDT:USDT",
    ]
    assert [c.step for c in path.closes] == [1, 2, 3]
    assert [c.time for c in path.closes] == [1.0, 2.0, 3.0]
    first, second, mine = path.closes
    assert first.trigger_mark == pytest.approx(90.0)
    assert first.fill_price == pytest.approx(88.2)
    assert first.mark_after == pytest.approx(87.3)
    assert first.cost == pytest.approx(10 * (90.0 - 88.2) + FEE * 10 * 88.2)
    assert second.fill_price == pytest.approx(84.6)
    assert mine.trigger_mark == pytest.approx(84.6)
    assert mine.cost == pytest.approx(FEE * 84.6)  # nothing left to walk: no slippage, the fee
    # The account's equity: 15 + (90 - 100), then 15 + (87.3 - 100), then 15 + (84.6 - 100) is
    # under water: a pool counts for nothing below zero, open or closed.
    assert [p.equity for p in path.equity] == pytest.approx([5.0, 2.3, 0.0, 0.0])
    assert path.liquidated == ("account:A/USDT:USDT",)
    assert not path.survives


def test_a_wide_book_absorbs_the_same_liquidation() -> None:
    path = run_cascade(ISOLATED_LONG, _market(WIDE), shock_symbol=A, shock=-0.10, crowd=CROWD)
    # The 10x's 10 fill at 89.91, above the 8x's 88.384: the cascade stops after one.
    assert [c.node for c in path.closes] == ["crowd[0]:A/USDT:USDT"]
    assert path.closes[0].fill_price == pytest.approx(89.91)
    assert path.survives
    assert path.final_equity == pytest.approx(15.0 + 89.91 - 100.0)


def test_a_book_that_refills_between_steps_stops_the_chain_earlier() -> None:
    # An account long with 16.2 margin liquidates at 83.8 / 0.99 = 84.646.
    account = Account(wallet_balance=0.0, positions=(_long(A, margin=16.2),))
    eaten = run_cascade(account, _market(THIN), shock_symbol=A, shock=-0.10, crowd=CROWD)
    refilled = run_cascade(
        account, _market(THIN, refill_rate=math.inf), shock_symbol=A, shock=-0.10, crowd=CROWD
    )
    # Without refill the 8x sells into the overflow (84.6, under 84.646); with the book full
    # again it walks 1 % and 3 % from 87.3 and leaves the mark at 84.681, above it.
    assert eaten.liquidated == ("account:A/USDT:USDT",)
    assert [c.node for c in refilled.closes] == ["crowd[0]:A/USDT:USDT", "crowd[1]:A/USDT:USDT"]
    assert refilled.closes[1].mark_after == pytest.approx(87.3 * 0.97)
    assert refilled.survives


# A cross account long A and long B, where B was held as a hedge: its returns ran at -0.8
# correlation with A. Wallet 10, both 1 @ 100, equal volatilities.
HEDGED = Account(wallet_balance=10.0, positions=(_long(A), _long(B)))


def test_a_hedge_stops_hedging_when_correlation_jumps_toward_one() -> None:
    market = _market(WIDE, symbols=(A, B))
    calm = run_cascade(HEDGED, market, shock_symbol=A, shock=-0.20, correlation=-0.8)
    # B moves -0.8 * -20 % = +16 %: equity 10 - 20 + 16 = 6 over maintenance 0.8 + 1.16.
    assert calm.equity[0].marks == pytest.approx({A: 80.0, B: 116.0})
    assert calm.final_equity == pytest.approx(6.0)
    assert calm.survives
    assert not calm.closes

    stressed = Correlation(-0.8).stressed(0.9)  # -0.8 + 0.9 * 1.8 = 0.82
    assert stressed.rho(A, B) == pytest.approx(0.82)
    crash = run_cascade(HEDGED, market, shock_symbol=A, shock=-0.20, correlation=stressed)
    # B falls 16.4 % too: equity 10 - 20 - 16.4 = -26.4. A loses more, so it goes first (fill
    # 80 * 0.999), then B (83.6 * 0.999), one per step, the wallet paying each fee.
    assert crash.equity[0].marks == pytest.approx({A: 80.0, B: 83.6})
    assert crash.liquidated == ("account:A/USDT:USDT", "account:B/USDT:USDT")
    # Bankrupt from the shock on: the pool counts for nothing, never less.
    assert [point.equity for point in crash.equity] == [0.0, 0.0, 0.0]
    assert crash.account_cost == pytest.approx(
        80.0 * 0.001 + FEE * 79.92 + 83.6 * 0.001 + FEE * 83.5164
    )


def test_a_cross_pool_closes_one_position_at_a_time_and_stops_once_covered() -> None:
    account = Account(wallet_balance=21.5, positions=(_long(A), _long(B)))
    path = run_cascade(
        account, _market(WIDE, symbols=(A, B)), shock_symbol=A, shock=-0.20, correlation=0.0
    )
    # Equity 1.5 under maintenance 0.8 + 1.0: A goes; 21.5 - 20.08 - fee = 1.38 covers B's 1.0.
    assert path.liquidated == ("account:A/USDT:USDT",)
    assert path.final_equity == pytest.approx(21.5 + (79.92 - 100.0) - FEE * 79.92)


def test_the_shock_reaches_other_symbols_scaled_by_correlation_and_volatility() -> None:
    market = _market(WIDE, symbols=(A, B, C), vols=(1.0, 2.0, 0.5))
    path = run_cascade(
        Account(wallet_balance=100.0),
        market,
        shock_symbol=A,
        shock=-0.10,
        correlation=Correlation(0.5, {(C, A): -0.4}),
    )
    # move_j = rho * vol_j / vol_A * -10 %: B 0.5 * 2 -> -10 %; C -0.4 * 0.5 -> +2 %.
    assert path.equity[0].marks == pytest.approx({A: 90.0, B: 90.0, C: 102.0})


def test_the_grid_finds_the_smallest_shock_that_liquidates_at_each_correlation_and_depth() -> None:
    shocks = [-x / 100 for x in range(2, 22, 2)]
    grid = cascade_grid(
        HEDGED,
        _market(THIN, symbols=(A, B)),
        shock_symbol=A,
        shocks=shocks,
        correlations=[-0.8, 0.0, 0.9],
        depth_multipliers=[1.0, 100.0],
    )
    assert len(grid.paths) == 10 * 3 * 2
    # Correlation 0.9, deep book: equity 10 - 1.9x*100 against ~1.9 maintenance: -6 % leaves
    # 10 - 11.4 < 0, -4 % leaves 2.4 over 1.92.
    assert grid.smallest_liquidating_shock(0.9, 100.0) == -0.06
    # At -0.8 the hedge covers all but 0.2x of A's loss: even -20 % leaves 6.
    assert grid.smallest_liquidating_shock(-0.8, 100.0) is None
    # Uncorrelated, A alone: -8 % leaves 2.0 over 1.92, -10 % leaves nothing.
    assert grid.smallest_liquidating_shock(0.0, 100.0) == -0.1
    for shock in shocks:
        # A thinner book never saves a cell that a deeper one loses.
        thin, deep = grid.path(shock, 0.9, 1.0), grid.path(shock, 0.9, 100.0)
        assert len(thin.closes) >= len(deep.closes)
    assert grid.worst_path.final_equity == min(p.final_equity for p in grid.paths.values())
    with pytest.raises(KeyError):
        grid.smallest_liquidating_shock(0.5, 1.0)


def test_the_band_runs_from_the_warning_to_the_models_liquidation_price() -> None:
    (band,), account_band = liquidation_band(ISOLATED_LONG, volatility=0.01, warning_ratio=0.8)
    # Warning: 0.01 P / (15 + P - 100) = 0.8 -> P = 68 / 0.79; liquidation 85 / 0.99.
    assert band.direction == -1
    assert band.margin_ratio == pytest.approx(1.0 / 15.0)
    assert band.warning is not None
    assert band.liquidation is not None
    assert band.warning.price == pytest.approx(68.0 / 0.79)
    assert band.liquidation.price == pytest.approx(85.0 / 0.99)
    assert band.partial is None
    distance = math.log(100.0 / (85.0 / 0.99))
    assert band.liquidation.distance == pytest.approx(distance)
    assert band.liquidation.one_sigma_time == pytest.approx((distance / 0.01) ** 2)
    # One position: the account's band is the same move, as a fraction of the mark.
    assert account_band.liquidation is not None
    assert account_band.warning is not None
    assert account_band.liquidation.price == pytest.approx(0.85 / 0.99)
    assert account_band.warning.price == pytest.approx(0.68 / 0.79)


def test_the_band_has_a_partial_edge_only_when_the_venue_reduces_before_liquidating() -> None:
    (band,), _ = liquidation_band(
        ISOLATED_LONG, volatility=0.01, warning_ratio=0.5, partial_ratio=0.9
    )
    assert band.warning is not None
    assert band.partial is not None
    assert band.liquidation is not None
    # 0.01 P / (P - 85) = 0.9 -> P = 76.5 / 0.89, between the warning and the liquidation.
    assert band.partial.price == pytest.approx(76.5 / 0.89)
    assert band.warning.price > band.partial.price > band.liquidation.price


def test_a_cross_band_ends_at_the_binance_cross_liquidation_price() -> None:
    legs = (
        PositionLeg("BTC/USDT:USDT", 1, 2.0, 60_000.0, 58_000.0, BINANCE_BTCUSDT_TIERS),
        PositionLeg(A, -1, 50.0, 100.0, 104.0, FLAT),
    )
    account = Account(wallet_balance=30_000.0, positions=legs)
    bands, account_band = liquidation_band(account, volatility=0.02)
    expected = get_model("binanceusdm").liquidation_price(
        legs[0], wallet_balance=30_000.0, others=[legs[1]]
    )
    assert bands[0].liquidation is not None
    assert bands[0].liquidation.price == pytest.approx(expected.price)
    assert bands[1].direction == 1  # the short is liquidated by a rise
    assert account_band.liquidation is not None
    assert account_band.direction == -1  # net long: a fall of everything liquidates first


def test_bad_inputs_are_refused_with_the_problem_named() -> None:
    with pytest.raises(ValueError, match="no entry for B"):
        run_cascade(HEDGED, _market(WIDE), shock_symbol=A, shock=-0.1)
    moved = Account(
        wallet_balance=10.0, positions=(dataclasses.replace(_long(A), mark_price=99.0),)
    )
    with pytest.raises(ValueError, match="not the position's mark"):
        run_cascade(moved, _market(WIDE), shock_symbol=A, shock=-0.1)
    with pytest.raises(ValueError, match="at or under maintenance at the mark"):
        run_cascade(
            ISOLATED_LONG,
            _market(WIDE),
            shock_symbol=A,
            shock=-0.1,
            crowd=(CrowdPosition(A, 1, 1000.0, 200.0),),
        )
    with pytest.raises(ValueError, match="correlation"):
        Correlation(1.5)
    with pytest.raises(ValueError, match="to or below zero"):
        run_cascade(
            HEDGED,
            _market(WIDE, symbols=(A, B), vols=(1.0, 5.0)),
            shock_symbol=A,
            shock=-0.3,
            correlation=1.0,
        )
    with pytest.raises(ValueError, match="shock must be a fraction"):
        run_cascade(ISOLATED_LONG, _market(WIDE), shock_symbol=A, shock=-1.0)
    with pytest.raises(ValueError, match="partial_ratio"):
        liquidation_band(ISOLATED_LONG, volatility=0.01, warning_ratio=0.8, partial_ratio=0.5)


def test_open_interest_spreads_over_the_leverage_distribution() -> None:
    crowd = crowd_from_open_interest(A, 10_000.0, [(5.0, 0.5), (20.0, 0.5)], long_share=0.75)
    assert crowd == (
        CrowdPosition(A, 1, 3_750.0, 5.0),
        CrowdPosition(A, -1, 1_250.0, 5.0),
        CrowdPosition(A, 1, 3_750.0, 20.0),
        CrowdPosition(A, -1, 1_250.0, 20.0),
    )
    with pytest.raises(ValueError, match="sum to 1"):
        crowd_from_open_interest(A, 10_000.0, [(5.0, 0.5)])
    with pytest.raises(ValueError, match=r"leverage_shares\[0\] must be a \(leverage, share\)"):
        crowd_from_open_interest(A, 10_000.0, [5.0])  # type: ignore[list-item]


# --- properties: same inputs, same path; bigger shocks and thinner books are never kinder ---

levels = st.builds(
    lambda raw, overflow: DepthProfile(
        tuple(sorted(dict(raw).items())), min(0.99, max(dict(raw)) * overflow)
    ),
    st.lists(st.tuples(st.floats(0.0005, 0.3), st.floats(0.5, 50.0)), min_size=1, max_size=4),
    # Past the visible book a close pays between the deepest level's offset and thrice it.
    st.floats(1.0, 3.0),
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Account, CascadeMarket, tuple[CrowdPosition, ...], float]:
    """Longs only, falls only, correlation >= 0: every move and every forced close is down;
    books that never refill, refill partly, or are full again by every next step."""
    symbols = (A, B)[: draw(st.integers(1, 2))]
    depth = draw(levels)
    market = CascadeMarket(
        {s: CascadeSymbol(100.0, draw(st.floats(0.8, 1.25)), depth, FLAT) for s in symbols},
        refill_rate=draw(st.sampled_from([0.0, 0.5, math.inf])),
        latency=draw(st.sampled_from([0.0, 0.5, 2.0])),
        taker_fee=FEE,
    )
    cross = draw(st.booleans())
    legs = tuple(
        _long(s, draw(st.floats(0.5, 5.0)), margin=None if cross else draw(st.floats(5.0, 80.0)))
        for s in symbols
    )
    account = Account(wallet_balance=draw(st.floats(5.0, 150.0)) if cross else 0.0, positions=legs)
    crowd = tuple(
        CrowdPosition(draw(st.sampled_from(symbols)), 1, draw(st.floats(100.0, 2000.0)), lev)
        for lev in draw(st.lists(st.floats(2.0, 40.0), max_size=5))
    )
    return account, market, crowd, draw(st.floats(0.0, 1.0))


def _count(path: CascadePath) -> int:
    return len(path.closes)


@settings(max_examples=80, deadline=None)
@given(scenarios(), st.floats(0.0, 0.4), st.floats(0.0, 0.4))
def test_a_bigger_shock_never_liquidates_fewer_positions(
    scenario: tuple[Account, CascadeMarket, tuple[CrowdPosition, ...], float], x: float, y: float
) -> None:
    account, market, crowd, rho = scenario
    small, big = sorted((x, y))
    mild = run_cascade(account, market, shock_symbol=A, shock=-small, correlation=rho, crowd=crowd)
    harsh = run_cascade(account, market, shock_symbol=A, shock=-big, correlation=rho, crowd=crowd)
    assert _count(harsh) >= _count(mild)
    assert len(harsh.account_closes) >= len(mild.account_closes)


@settings(max_examples=80, deadline=None)
@given(scenarios(), st.floats(0.0, 0.4), st.floats(0.2, 20.0), st.floats(0.2, 20.0))
def test_a_deeper_book_never_liquidates_more_positions(
    scenario: tuple[Account, CascadeMarket, tuple[CrowdPosition, ...], float],
    shock: float,
    m: float,
    n: float,
) -> None:
    account, market, crowd, rho = scenario
    thin, deep = sorted((m, n))
    shallow = run_cascade(
        account,
        market,
        shock_symbol=A,
        shock=-shock,
        correlation=rho,
        depth_multiplier=thin,
        crowd=crowd,
    )
    deeper = run_cascade(
        account,
        market,
        shock_symbol=A,
        shock=-shock,
        correlation=rho,
        depth_multiplier=deep,
        crowd=crowd,
    )
    assert _count(deeper) <= _count(shallow)
    assert deeper.final_equity >= shallow.final_equity - 1e-9


@settings(max_examples=40, deadline=None)
@given(scenarios(), st.floats(-0.4, 0.4))
def test_the_same_inputs_give_the_same_path(
    scenario: tuple[Account, CascadeMarket, tuple[CrowdPosition, ...], float], shock: float
) -> None:
    account, market, crowd, rho = scenario
    first = run_cascade(account, market, shock_symbol=A, shock=shock, correlation=rho, crowd=crowd)
    again = run_cascade(account, market, shock_symbol=A, shock=shock, correlation=rho, crowd=crowd)
    assert first == again
    # Every step closes something, and nothing closes twice: the loop ends.
    assert len(first.equity) == len({c.step for c in first.closes}) + 1
    assert len({c.node for c in first.closes}) == len(first.closes)


def test_a_milder_shock_never_ends_a_refilling_cascade_lower_than_a_harsher_one() -> None:
    # One level of 1 at 5 %, overflow at 6 %; the book is full again by every next step.
    # Crowd longs of 1 at 100: 20x liquidates at 95/0.99 = 95.96, 15x at 93.33/0.99 = 94.28.
    # The account's isolated long of 1 with 14 margin liquidates at 86/0.99 = 86.87.
    book = DepthProfile(((0.05, 1.0),), overflow_offset=0.06)
    market = _market(book, refill_rate=math.inf)
    crowd = (CrowdPosition(A, 1, 100.0, 20.0), CrowdPosition(A, 1, 100.0, 15.0))
    account = Account(wallet_balance=0.0, positions=(_long(A, margin=14.0),))
    harsh = run_cascade(account, market, shock_symbol=A, shock=-0.06, crowd=crowd)
    # 6 %: both crowd longs at once, 2 sold into one book: 94 * (1 - 0.06) = 88.36.
    assert [c.mark_after for c in harsh.closes] == pytest.approx([94 * 0.95, 94 * 0.94])
    assert harsh.survives
    mild = run_cascade(account, market, shock_symbol=A, shock=-0.05, crowd=crowd)
    # 5 %: the 20x at 95 (to 90.25), then the 15x one step later. On the refilled book its
    # sale alone would take the mark a whole level further (85.74, past the account's 86.87);
    # a refilling book is never worse than one that does not refill: 95 * 0.94 = 89.3.
    assert [c.mark_after for c in mild.closes] == pytest.approx([95 * 0.95, 95 * 0.94])
    assert mild.survives
    assert mild.final_equity >= harsh.final_equity


@settings(max_examples=300, deadline=None)
@given(scenarios(), st.floats(0.0, 0.4), st.floats(0.0, 0.4))
def test_a_bigger_shock_never_leaves_the_account_better_off_even_as_books_refill(
    scenario: tuple[Account, CascadeMarket, tuple[CrowdPosition, ...], float], x: float, y: float
) -> None:
    account, market, crowd, rho = scenario
    small, big = sorted((x, y))
    mild = run_cascade(account, market, shock_symbol=A, shock=-small, correlation=rho, crowd=crowd)
    harsh = run_cascade(account, market, shock_symbol=A, shock=-big, correlation=rho, crowd=crowd)
    assert harsh.final_equity <= mild.final_equity + 1e-9
    assert len(harsh.account_closes) >= len(mild.account_closes)
