"""Correlation estimated from returns: hand-computed pairs, the fallbacks, the history it reads.

Every fallback is the configured (stressed) correlation and names why; no input, however
broken, makes the estimate a number the data does not support.
"""

from __future__ import annotations

import math
import re

import pytest

from safeguard._config import Policy
from safeguard._errors import ConfigError
from safeguard.risk._cascade import (
    CascadeMarket,
    CascadeSymbol,
    run_cascade,
)
from safeguard.risk._correlation import (
    PairEstimate,
    PriceHistory,
    estimate_correlation,
    log_returns,
    pearson,
)
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._stress import DepthProfile
from safeguard.risk._tiers import TierTable

A, B, C = "A/USDT:USDT", "B/USDT:USDT", "C/USDT:USDT"
CONFIGURED = 0.8


def closes(start: float, returns: list[float], first: int = 0) -> dict[int, float]:
    """Closes by bucket from a start price and log returns."""
    prices = {first: start}
    for i, r in enumerate(returns, start=first + 1):
        prices[i] = prices[i - 1] * math.exp(r)
    return prices


WIGGLE = [0.01 * math.sin(1.7 * i) + 0.004 * math.cos(0.3 * i) for i in range(200)]


def estimate(prices: dict[str, dict[int, float]], **kw: float) -> float:
    options: dict[str, float] = {"min_samples": 30, "full_samples": 120, **kw}
    found = estimate_correlation(
        prices,
        fallback=CONFIGURED,
        min_samples=int(options["min_samples"]),
        full_samples=int(options["full_samples"]),
        toward_one=options.get("toward_one", 0.0),
    )
    return found.correlation.rho(A, B)


def test_two_perfectly_correlated_series_measure_one() -> None:
    # B moves twice as far as A, the same way: the correlation is 1 whatever the scale.
    prices = {A: closes(100.0, WIGGLE), B: closes(7.0, [2.0 * r for r in WIGGLE])}
    assert estimate(prices) == pytest.approx(1.0, abs=1e-12)


def test_two_mirrored_series_measure_minus_one() -> None:
    prices = {A: closes(100.0, WIGGLE), B: closes(50.0, [-0.5 * r for r in WIGGLE])}
    assert estimate(prices) == pytest.approx(-1.0, abs=1e-12)


def test_a_three_return_pair_matches_the_hand_computed_correlation() -> None:
    # x = (1, -1, 2) %, y = (2, 0, 1) %: deviations (1/3, -5/3, 4/3) and (1, -1, 0) %;
    # sxy = 2, sxx = 42/9, syy = 2 (in 1e-4): rho = 2 / sqrt(84/9) = sqrt(3/7).
    assert pearson([0.01, -0.01, 0.02], [0.02, 0.0, 0.01]) == pytest.approx(math.sqrt(3 / 7))


def test_few_returns_shrink_toward_the_configured_correlation() -> None:
    prices = {A: closes(100.0, WIGGLE[:60]), B: closes(7.0, WIGGLE[:60])}
    # 60 of the 120 returns for full weight: half the measured 1, half the configured 0.8.
    assert estimate(prices) == pytest.approx(0.5 * 1.0 + 0.5 * CONFIGURED)


def test_a_measured_correlation_is_stressed_toward_one() -> None:
    prices = {A: closes(100.0, WIGGLE), B: closes(50.0, [-r for r in WIGGLE])}
    # -1 moved half the way to one: 0.
    assert estimate(prices, toward_one=0.5) == pytest.approx(0.0, abs=1e-12)


def test_too_few_common_returns_fall_back_to_the_configured_value_and_say_so() -> None:
    prices = {A: closes(100.0, WIGGLE[:29]), B: closes(7.0, [-r for r in WIGGLE[:29]])}
    found = estimate_correlation(prices, fallback=CONFIGURED, min_samples=30, full_samples=120)
    assert found.correlation.rho(A, B) == CONFIGURED
    (pair,) = found.fallbacks
    assert pair.fallback_reason == "29 common returns, 30 needed"
    assert "configured" in found.describe()


def test_returns_only_pair_where_both_symbols_have_them() -> None:
    # A's first 40 buckets and B's last 40 of 80 share none: nothing measured.
    prices = {A: closes(100.0, WIGGLE[:40]), B: closes(7.0, WIGGLE[:40], first=40)}
    found = estimate_correlation(prices, fallback=CONFIGURED, min_samples=2, full_samples=2)
    assert found.correlation.rho(A, B) == CONFIGURED
    assert found.pairs[0].samples == 0


def test_a_symbol_that_stopped_moving_falls_back_rather_than_reading_zero() -> None:
    # A halted market publishes one price: no variance, no correlation (0 would be a guess).
    prices = {A: closes(100.0, WIGGLE), B: dict.fromkeys(range(201), 7.0)}
    found = estimate_correlation(prices, fallback=CONFIGURED, min_samples=30, full_samples=120)
    assert found.correlation.rho(A, B) == CONFIGURED
    reason = found.pairs[0].fallback_reason
    assert reason is not None
    assert B in reason
    assert "did not vary" in reason


def test_nan_and_broken_prices_cut_returns_instead_of_poisoning_them() -> None:
    prices = closes(100.0, WIGGLE[:10])
    prices[3] = math.nan
    prices[6] = -1.0
    prices[8] = math.inf
    kept = log_returns(prices)
    # Returns need both ends: 3, 4, 6, 7, 8 and 9 are gone.
    assert sorted(kept) == [1, 2, 5, 10]
    assert all(math.isfinite(r) for r in kept.values())
    both = {A: prices, B: dict(prices)}
    found = estimate_correlation(both, fallback=CONFIGURED, min_samples=2, full_samples=4)
    assert found.correlation.rho(A, B) == pytest.approx(1.0)
    assert found.pairs[0].samples == 4


def test_one_symbol_has_no_pairs_and_the_configured_default() -> None:
    found = estimate_correlation(
        {A: closes(100.0, WIGGLE)}, fallback=CONFIGURED, min_samples=30, full_samples=120
    )
    assert found.pairs == ()
    assert found.correlation.rho(A, B) == CONFIGURED
    assert found.correlation.rho(A, A) == 1.0


def test_a_symbol_never_seen_falls_back() -> None:
    found = estimate_correlation(
        {A: closes(100.0, WIGGLE)},
        fallback=CONFIGURED,
        min_samples=30,
        full_samples=120,
        symbols=(A, C),
    )
    assert found.correlation.rho(A, C) == CONFIGURED
    assert found.pairs[0].fallback_reason == "0 common returns, 30 needed"


@pytest.mark.parametrize(
    ("kw", "problem"),
    [
        ({"fallback": math.nan}, "fallback must be finite"),
        ({"fallback": 1.5}, "fallback must be a correlation"),
        ({"min_samples": 1}, "min_samples must be at least 2"),
        ({"full_samples": 10}, "full_samples (10) must not be below min_samples (30)"),
        ({"toward_one": -0.1}, "toward_one must be in [0, 1]"),
    ],
)
def test_bad_settings_are_refused_with_the_problem_named(
    kw: dict[str, float], problem: str
) -> None:
    settings: dict[str, float] = {
        "fallback": CONFIGURED,
        "min_samples": 30,
        "full_samples": 120,
        "toward_one": 0.0,
        **kw,
    }
    with pytest.raises(ValueError, match=re.escape(problem)):
        estimate_correlation(
            {A: {}},
            fallback=settings["fallback"],
            min_samples=int(settings["min_samples"]),
            full_samples=int(settings["full_samples"]),
            toward_one=settings["toward_one"],
        )


# --- the history ------------------------------------------------------------------------------


def test_the_history_keeps_the_last_price_of_each_bucket() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=10)
    assert history.observe(A, 100.0, 600.0)
    assert history.observe(A, 101.0, 659.0)
    assert history.observe(A, 102.0, 660.0)
    assert history.window(720.0) == {A: {10: 101.0, 11: 102.0}}
    # The current bucket is not complete: its close is not final yet.
    assert history.window(700.0) == {A: {10: 101.0}}


def test_a_clock_going_back_does_not_rewrite_a_close() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=10)
    history.observe(A, 100.0, 600.0)
    history.observe(A, 101.0, 660.0)
    assert not history.observe(A, 50.0, 610.0)  # the clock stepped back a bucket
    assert history.window(720.0) == {A: {10: 100.0, 11: 101.0}}
    # A reading "from the future" of the estimate's now is left out of its window.
    assert history.window(665.0) == {A: {10: 100.0}}
    assert history.window(605.0) == {A: {}}


def test_a_reading_into_a_bucket_already_handed_out_changes_the_revision() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=10)
    history.observe(A, 100.0, 600.0)
    history.observe(B, 10.0, 600.0)
    history.observe(A, 101.0, 660.0)
    seen = history.revision
    window = history.window(720.0)  # buckets 10 and 11, complete
    history.observe(A, 102.0, 725.0)  # the current bucket: no window has it
    assert history.revision == seen
    assert history.window(720.0) == window
    # The clock steps back into bucket 11 for B (whose last close is in 10): B's reading is
    # taken, and a window already handed out reads differently now.
    assert history.observe(B, 11.0, 665.0)
    assert history.revision == seen + 1
    assert history.window(720.0) != window


def test_nan_prices_and_times_are_not_recorded() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=10)
    broken: list[tuple[object, float]] = [
        (math.nan, 600.0),
        (0.0, 600.0),
        (-3.0, 600.0),
        (math.inf, 600.0),
        (True, 600.0),
        ("100", 600.0),
        (100.0, math.nan),
        (100.0, math.inf),
    ]
    for price, now in broken:
        assert not history.observe(A, price, now)
    assert history.window(600.0) == {}
    assert history.revision == 0


def test_a_symbol_that_stops_trading_ages_out_of_the_window() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=5)
    for k in range(5):
        history.observe(A, 100.0 + k, 60.0 * k)
        history.observe(B, 10.0 + k, 60.0 * k)
    for k in range(5, 10):
        history.observe(A, 100.0 + k, 60.0 * k)  # B's market halted at bucket 4
    window = history.window(60.0 * 10)
    assert sorted(window[A]) == [5, 6, 7, 8, 9]
    assert window[B] == {}
    found = estimate_correlation(window, fallback=CONFIGURED, min_samples=2, full_samples=4)
    assert found.correlation.rho(A, B) == CONFIGURED


def test_the_history_holds_no_more_than_its_buckets() -> None:
    history = PriceHistory(interval_s=1.0, max_buckets=50)
    for k in range(10_000):
        history.observe(A, 100.0 + math.sin(k), float(k))
    assert len(history._closes[A]) <= 51


# --- the cascade on an estimate ----------------------------------------------------------------

FLAT = TierTable.from_rows([(0.0, math.inf, 0.01, 50.0)])
WIDE = DepthProfile(((0.001, 1e6),))
HEDGED = Account(
    wallet_balance=10.0,
    positions=(
        PositionLeg(A, 1, 1.0, 100.0, 100.0, FLAT),
        PositionLeg(B, 1, 1.0, 100.0, 100.0, FLAT),
    ),
)
MARKET = CascadeMarket(
    {s: CascadeSymbol(100.0, 1.0, WIDE, FLAT) for s in (A, B)}, latency=1.0, taker_fee=0.0005
)


def test_a_hedge_stops_hedging_when_the_measured_correlation_jumps() -> None:
    # Long A and long B on 10 of margin: B has moved against A (returns mirrored), so a 20 %
    # fall of A lifts B by 20 %: equity 10 - 20 + 20 = 10 over maintenance 0.8 + 1.2.
    calm = {A: closes(100.0, WIGGLE), B: closes(100.0, [-r for r in WIGGLE])}
    rho = estimate_correlation(calm, fallback=CONFIGURED, min_samples=30, full_samples=120)
    path = run_cascade(HEDGED, MARKET, shock_symbol=A, shock=-0.20, correlation=rho.correlation)
    assert path.equity[0].marks == pytest.approx({A: 80.0, B: 120.0})
    assert path.survives
    # The last 120 returns move together: the same estimate now reads one, and B falls with A.
    jumped = {
        A: closes(100.0, WIGGLE),
        B: closes(100.0, [-r for r in WIGGLE[:80]] + WIGGLE[80:]),
    }
    rho = estimate_correlation(
        {s: {k: p for k, p in c.items() if k >= 80} for s, c in jumped.items()},
        fallback=CONFIGURED,
        min_samples=30,
        full_samples=120,
    )
    assert rho.correlation.rho(A, B) == pytest.approx(1.0)
    crash = run_cascade(HEDGED, MARKET, shock_symbol=A, shock=-0.20, correlation=rho.correlation)
    assert crash.equity[0].marks == pytest.approx({A: 80.0, B: 80.0})
    assert crash.liquidated == ("account:A/USDT:USDT", "account:B/USDT:USDT")


def test_a_clock_going_back_within_a_bucket_does_not_rewrite_its_close() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=10)
    history.observe(A, 100.0, 600.0)
    history.observe(A, 101.0, 659.0)
    # Back 9 s, still inside bucket 10: this price came later on the venue but is stamped
    # earlier on our clock; a close taken from a clock that ran backwards spans no known
    # interval, so the reading at 659 s stays the close.
    assert not history.observe(A, 150.0, 650.0)
    assert history.window(720.0) == {A: {10: 101.0}}


@pytest.mark.parametrize("interval_s", [1e-300, 1e-3, 1e300, 86_400.0 * 2])
def test_an_interval_no_clock_can_bucket_is_refused_by_the_policy(interval_s: float) -> None:
    # 1e-300 s: now / interval overflows to infinity, and every mark the guard read raised
    # OverflowError into the bot; 1e300 s: every reading in one bucket, never a return.
    with pytest.raises(ConfigError, match=r"risk\.stress\.correlation_interval_s"):
        Policy.build(
            risk={
                "stress": {"correlation_source": "estimated", "correlation_interval_s": interval_s}
            }
        )


def test_a_reading_whose_bucket_is_not_a_number_is_not_recorded() -> None:
    # The history on its own (no policy bounds): a time over an interval that overflows has
    # no bucket; the reading is dropped, not raised into whoever read the mark.
    history = PriceHistory(interval_s=1e-300, max_buckets=10)
    assert not history.observe(A, 100.0, 1.7e9)
    with pytest.raises(ValueError, match="no bucket of 1e-300 s holds the time"):
        history.window(1.7e9)


def test_after_a_step_back_no_return_spans_the_jump() -> None:
    history = PriceHistory(interval_s=60.0, max_buckets=20)
    for k in range(5):
        history.observe(A, 100.0 + k, 60.0 * k)
        history.observe(B, 10.0 + k, 60.0 * k)
    assert not history.observe(A, 999.0, 60.0)  # refused: the clock is back at bucket 1
    # Caught up: bucket 5 holds a price from later than bucket 4's neighbour. The close
    # before it goes, for both symbols (B was not read during the step, its axis moved too).
    seen = history.revision
    assert history.observe(A, 200.0, 300.0)
    assert history.observe(B, 20.0, 300.0)
    assert history.revision == seen + 2
    assert history.window(360.0) == {
        A: {0: 100.0, 1: 101.0, 2: 102.0, 3: 103.0, 5: 200.0},
        B: {0: 10.0, 1: 11.0, 2: 12.0, 3: 13.0, 5: 20.0},
    }
    # Only the first reading after the step: the returns go on from there.
    assert history.observe(A, 201.0, 360.0)
    assert 5 in history.window(420.0)[A]


def test_known_pairs_are_taken_as_they_are_and_the_rest_measured() -> None:
    prices = {
        A: closes(100.0, WIGGLE),
        B: closes(100.0, [-r for r in WIGGLE]),
        C: closes(100.0, WIGGLE),
    }
    fresh = estimate_correlation(prices, fallback=CONFIGURED, min_samples=30, full_samples=120)
    given = PairEstimate(A, B, 0.25, 0.25, 7, 1.0)
    reused = estimate_correlation(
        prices, fallback=CONFIGURED, min_samples=30, full_samples=120, known={(A, B): given}
    )
    assert reused.pairs[0] is given
    assert reused.correlation.rho(A, B) == 0.25
    assert reused.pairs[1:] == fresh.pairs[1:]  # A~C and B~C measured as ever
