"""``require_stress_survival``: the verdict refuses an order the account would not survive.

The grid is the policy's (``risk.stress``); the order's own symbol is closed into the book of
the snapshot, every other held symbol into the depth the caller passes. The numbers in the
denial are checked against :func:`safeguard.risk._stress.survives_grid` run here on the account
the order leaves, built by hand.
"""

from __future__ import annotations

import dataclasses

import pytest

from safeguard._codes import Code
from safeguard._config import RiskLimits
from safeguard.risk._book import OrderBook
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._outcome import Decision
from safeguard.risk._sample import BTCUSDT_TIERS_12, STEP, SYMBOL, sample_market
from safeguard.risk._stress import DepthProfile, StressGrid, survives_grid
from safeguard.risk._tiers import BINANCE_ETHUSDT_TIERS
from safeguard.risk._verdict import evaluate

from .verdict_cases import FILLS, NOW, account, denied, intent

MARK = 90_000.0
STRESSED = RiskLimits(require_stress_survival=True)


def judge(amount: float, limits: RiskLimits = STRESSED, **kwargs: object):  # type: ignore[no-untyped-def]
    return evaluate(
        intent(amount=amount, margin_mode="cross", stop_price=81_000.0),
        sample_market(NOW, mark=MARK),
        kwargs.pop("acct", account(wallet_balance=20_000.0)),  # type: ignore[arg-type]
        limits,
        FILLS,
        now=NOW,
        **kwargs,  # type: ignore[arg-type]
    )


def test_an_order_the_account_would_not_survive_the_stress_grid_is_denied() -> None:
    # 1.5 BTC at 90,000 on a 20,000 wallet: a 15 % fall loses 20,250, more than the equity.
    assert judge(1.5, RiskLimits()).decision is Decision.ALLOW  # the grid is off by default
    verdict = judge(1.5)
    assert denied(verdict) == {"STRESS_GRID_BREACH"}
    finding = next(f for f in verdict.findings if f.code is Code.STRESS_GRID_BREACH)
    assert finding.values["shock_pct"] == pytest.approx(-15.0)
    assert finding.values["loss"] == pytest.approx(1.5 * MARK * 0.15, rel=1e-9)
    assert "-15" in finding.message
    assert "20,250" in finding.message
    assert SYMBOL in finding.message
    # The same account, by hand, through the pure grid.
    cost = verdict.costing
    assert cost is not None
    after = Account(
        wallet_balance=20_000.0 - cost.entry_fee,
        positions=(
            PositionLeg(SYMBOL, 1, 1.5, cost.position_entry or 0.0, MARK, BTCUSDT_TIERS_12),
        ),
    )
    book = sample_market(NOW, mark=MARK).book
    assert book is not None
    grid = StressGrid.from_config(
        STRESSED.stress, depth={SYMBOL: DepthProfile.from_book(book)}, taker_fee=0.0005
    )
    survives, cell = survives_grid(after, grid)
    assert not survives
    assert cell.shock == pytest.approx(-0.15)
    assert finding.values["regime"] == cell.regime


def test_an_order_that_only_reduces_is_never_refused_by_the_grid() -> None:
    held = PositionLeg(SYMBOL, 1, 1.5, MARK, MARK, BTCUSDT_TIERS_12)
    acct = Account(wallet_balance=20_000.0, positions=(held,), available_balance=6_000.0)
    verdict = evaluate(
        intent(side="sell", amount=0.5, margin_mode="cross", stop_price=None, reduce_only=True),
        sample_market(NOW, mark=MARK),
        acct,
        STRESSED,
        FILLS,
        now=NOW,
    )
    assert "STRESS_GRID_BREACH" not in {str(c) for c in verdict.codes}


def test_max_safe_amount_is_the_largest_amount_that_survives_the_grid() -> None:
    free = judge(1.5, RiskLimits(), size_search=True).max_safe_amount
    verdict = judge(1.5, size_search=True)
    edge = verdict.max_safe_amount
    assert edge is not None
    assert 0.0 < edge < 1.5
    assert free is not None
    assert free > edge  # without the grid a larger size passes
    assert judge(edge).decision is Decision.ALLOW
    assert denied(judge(round(edge + STEP, 3))) == {"STRESS_GRID_BREACH"}


def test_other_symbols_close_into_the_depth_given_and_missing_depth_fails_closed() -> None:
    eth = PositionLeg("ETH/USDT:USDT", 1, 5.0, 3_000.0, 3_000.0, BINANCE_ETHUSDT_TIERS)
    acct = Account(wallet_balance=20_000.0, positions=(eth,), available_balance=18_000.0)
    blind = judge(0.1, acct=acct)
    assert denied(blind) == {"MISSING_MARKET_DATA"}
    assert "ETH/USDT:USDT" in blind.findings[0].message
    assert blind.findings[0].values == {"missing": "ETH/USDT:USDT"}  # what a bot reads
    deep = DepthProfile(((0.0005, 1_000.0),))
    seen = judge(0.1, acct=acct, depth={"ETH/USDT:USDT": deep})
    assert seen.decision is Decision.ALLOW, seen.findings
    # 0.1 BTC is tiny; ETH 5 x 3,000 is what a shock hits, and with it the order still fits.
    heavy = PositionLeg("ETH/USDT:USDT", 1, 40.0, 3_000.0, 3_000.0, BINANCE_ETHUSDT_TIERS)
    loaded = Account(wallet_balance=20_000.0, positions=(heavy,), available_balance=8_000.0)
    breach = judge(0.1, acct=loaded, depth={"ETH/USDT:USDT": deep})
    assert denied(breach) == {"STRESS_GRID_BREACH"}
    # The grid is off: no depth is needed.
    assert judge(0.1, RiskLimits(), acct=acct).decision is Decision.ALLOW


def test_a_book_with_far_away_levels_is_still_priced_under_the_grid() -> None:
    market = sample_market(NOW, mark=MARK)
    assert market.book is not None
    # One thin ask at the touch, the rest of the asks at four times the mark.
    book = OrderBook(bids=((MARK - 0.1, 100.0),), asks=((MARK + 0.1, 0.5), (4 * MARK, 100.0)))
    verdict = evaluate(
        intent(amount=0.1, margin_mode="cross", stop_price=81_000.0),
        dataclasses.replace(market, book=book),
        account(wallet_balance=20_000.0),
        STRESSED,
        FILLS,
        now=NOW,
    )
    assert verdict.decision is Decision.ALLOW, verdict.findings


def test_an_account_already_failing_the_grid_takes_no_new_exposure() -> None:
    # An isolated ETH leg with no margin left is under maintenance at its mark: the mildest
    # shock, either way, liquidates it, so no order that adds exposure passes.
    broke = PositionLeg(
        "ETH/USDT:USDT", -1, 5.0, 3_000.0, 3_000.0, BINANCE_ETHUSDT_TIERS, isolated_wallet=0.0
    )
    acct = Account(wallet_balance=20_000.0, positions=(broke,), available_balance=20_000.0)
    deep = {"ETH/USDT:USDT": DepthProfile(((0.0005, 1_000.0),))}
    verdict = judge(0.01, acct=acct, depth=deep, size_search=True)
    assert denied(verdict) == {"STRESS_GRID_BREACH"}
    finding = verdict.denials[0]
    assert "ETH/USDT:USDT" in finding.message
    assert abs(finding.values["shock_pct"]) == 1.0  # type: ignore[arg-type]
    assert verdict.max_safe_amount == 0.0
