"""The order-book walk: prices, remainders, slippage, and refusal of malformed books."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard.risk._book import OrderBook


def ladder(best_bid: float = 100.0, tick: float = 1.0, size: float = 1.0, n: int = 5) -> OrderBook:
    return OrderBook(
        bids=tuple((best_bid - i * tick, size) for i in range(n)),
        asks=tuple((best_bid + tick + i * tick, size) for i in range(n)),
    )


def test_walk_within_first_level_has_no_slippage_against_touch_but_pays_half_spread() -> None:
    book = ladder()  # bid 100, ask 101
    walk = book.walk("buy", 0.5)
    assert walk.average_price == 101.0
    assert walk.worst_price == 101.0
    assert walk.slippage_bps == 0.0
    assert walk.slippage_vs_mid_bps == pytest.approx((101.0 - 100.5) / 100.5 * 1e4)
    assert walk.unfilled == 0.0
    assert walk.complete


def test_walk_across_levels_averages_and_reports_worst() -> None:
    book = ladder()
    walk = book.walk("buy", 2.5)  # 1 @ 101, 1 @ 102, 0.5 @ 103
    assert walk.average_price == pytest.approx((101 + 102 + 0.5 * 103) / 2.5)
    assert walk.worst_price == 103.0
    assert walk.levels_used == 3
    assert walk.slippage_bps == pytest.approx((walk.average_price - 101) / 101 * 1e4)


def test_sell_walk_takes_bids_and_slippage_is_positive_when_worse() -> None:
    walk = ladder().walk("sell", 2.0)  # 1 @ 100, 1 @ 99
    assert walk.average_price == pytest.approx(99.5)
    assert walk.slippage_bps == pytest.approx(0.5 / 100 * 1e4)


def test_walk_beyond_depth_reports_unfilled_remainder() -> None:
    walk = ladder(n=3).walk("buy", 5.0)
    assert walk.filled == pytest.approx(3.0)
    assert walk.unfilled == pytest.approx(2.0)
    assert not walk.complete


def test_limit_price_stops_the_walk() -> None:
    walk = ladder().walk("buy", 5.0, limit_price=102.0)
    assert walk.filled == pytest.approx(2.0)
    assert walk.worst_price == 102.0
    nothing = ladder().walk("buy", 1.0, limit_price=100.5)
    assert nothing.filled == 0.0
    assert nothing.average_price is None
    assert nothing.slippage_bps == 0.0


def test_depth_haircut_shrinks_every_level() -> None:
    walk = ladder().walk("buy", 1.0, depth_haircut=0.5)  # 0.5 @ 101, 0.5 @ 102
    assert walk.average_price == pytest.approx(101.5)


def test_from_ccxt_reads_levels_and_millisecond_timestamp() -> None:
    book = OrderBook.from_ccxt(
        {"bids": [[100.0, 2.0, 0]], "asks": [[101.0, 3.0]], "timestamp": 1_700_000_000_500}
    )
    assert book.best_bid == 100.0
    assert book.best_ask == 101.0
    assert book.timestamp == pytest.approx(1_700_000_000.5)
    assert book.depth("buy") == 3.0


@pytest.mark.parametrize(
    ("bids", "asks", "field"),
    [
        ((), ((101.0, 1.0),), "at least one bid"),
        (((100.0, 1.0),), ((100.0, 1.0),), "crossed"),
        (((100.0, 1.0), (100.0, 1.0)), ((101.0, 1.0),), "book.bids prices"),
        (((100.0, 1.0),), ((102.0, 1.0), (101.0, 1.0)), "book.asks prices"),
        (((math.nan, 1.0),), ((101.0, 1.0),), "book.bids[0].price"),
        (((100.0, -1.0),), ((101.0, 1.0),), "book.bids[0].size"),
        (((100.0, 1.0),), ((math.inf, 1.0),), "book.asks[0].price"),
        (((100.0, True),), ((101.0, 1.0),), "book.bids[0].size"),
        (((100.0,),), ((101.0, 1.0),), "book.bids[0]"),
        ("100", ((101.0, 1.0),), "book.bids"),
    ],
)
def test_malformed_books_are_refused_naming_the_field(
    bids: object, asks: object, field: str
) -> None:
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        OrderBook(bids=bids, asks=asks)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"side": "BUY", "amount": 1.0}, "side"),
        ({"side": "buy", "amount": 0.0}, "amount"),
        ({"side": "buy", "amount": math.nan}, "amount"),
        ({"side": "buy", "amount": 1.0, "depth_haircut": 1.0}, "depth_haircut"),
        ({"side": "buy", "amount": 1.0, "limit_price": -1.0}, "limit_price"),
    ],
)
def test_walk_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        ladder().walk(**kwargs)  # type: ignore[arg-type]


@st.composite
def thin_books(draw: st.DrawFn) -> OrderBook:
    """Books that thin out away from the touch: sizes never grow, gaps never shrink."""
    n = draw(st.integers(min_value=2, max_value=30))
    sizes = sorted(draw(st.lists(st.floats(0.01, 50.0), min_size=n, max_size=n)), reverse=True)
    gaps = sorted(draw(st.lists(st.floats(0.01, 20.0), min_size=n, max_size=n)))
    best_ask = draw(st.floats(1_000.0, 100_000.0))
    asks, price = [], best_ask
    for i in range(n):
        asks.append((price, sizes[i]))
        price += gaps[i]
    bids, price = [], best_ask - gaps[0]
    for i in range(n):
        bids.append((price, sizes[i]))
        price -= gaps[i]
    return OrderBook(bids=tuple(bids), asks=tuple(asks))


@settings(max_examples=150, deadline=None)
@given(book=thin_books(), share=st.floats(0.01, 0.5), side=st.sampled_from(["buy", "sell"]))
def test_doubling_size_in_a_thin_book_more_than_doubles_slippage(
    book: OrderBook, share: float, side: str
) -> None:
    levels = book.asks if side == "buy" else book.bids
    total = sum(size for _, size in levels)
    amount = total * share
    first_level = levels[0][1]
    single = book.walk(side, amount)  # type: ignore[arg-type]
    double = book.walk(side, 2 * amount)  # type: ignore[arg-type]
    assert double.complete
    if 2 * amount <= first_level * (1 + 1e-9):
        assert double.slippage_bps == pytest.approx(0.0, abs=1e-9)
    else:
        assert double.slippage_bps > 2 * single.slippage_bps


@settings(max_examples=100, deadline=None)
@given(book=thin_books(), share=st.floats(0.001, 2.0), side=st.sampled_from(["buy", "sell"]))
def test_walk_accounts_for_every_unit(book: OrderBook, share: float, side: str) -> None:
    levels = book.asks if side == "buy" else book.bids
    amount = sum(size for _, size in levels) * share
    walk = book.walk(side, amount)  # type: ignore[arg-type]
    assert walk.filled + walk.unfilled == pytest.approx(amount)
    assert walk.average_price is not None
    assert walk.worst_price is not None
    best, worst = levels[0][0], walk.worst_price
    assert min(best, worst) - 1e-9 <= walk.average_price <= max(best, worst) + 1e-9
    assert walk.slippage_bps >= -1e-9
