"""``require_stress_survival`` runs the policy's shocks through the cascade too.

A crowd of 25x longs (the order's symbol's open interest spread over the policy's leverage
distribution) is liquidated by a 5 % fall; their forced sales walk a thin book past its far
end and take the mark further, into the account's own liquidation. The stress grid alone,
which moves the price by the shock and nothing else, lets the same order through.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from safeguard._codes import Code
from safeguard._config import RiskLimits, StressConfig
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import MarketSnapshot
from safeguard.risk._outcome import Decision, Verdict
from safeguard.risk._sample import STEP, SYMBOL, sample_market, synthetic_book
from safeguard.risk._stress import DepthProfile
from safeguard.risk._tiers import TierTable
from safeguard.risk._verdict import evaluate

from .verdict_cases import FILLS, NOW, account, intent

MARK = 90_000.0
# Five levels of 1 BTC, 1 % apart: 5 BTC on each side, the far end 4 % from the touch.
THIN = synthetic_book(MARK, levels=5, gap=900.0, top_size=1.0, size_growth=0.0, timestamp=NOW)
CROWDED = dataclasses.replace(sample_market(NOW, mark=MARK), book=THIN, open_interest=1_800_000.0)


def policy(**stress: object) -> RiskLimits:
    config = StressConfig(shocks_pct=(-5.0, 5.0), regimes=("together",), **stress)  # type: ignore[arg-type]
    return RiskLimits(require_stress_survival=True, require_stop=False, stress=config)


CROWD_POLICY = policy(crowd_leverage=((25.0, 1.0),), crowd_long_share=1.0)


def judge(limits: RiskLimits, market: MarketSnapshot = CROWDED, amount: float = 1.0) -> Verdict:
    return evaluate(
        intent(
            type="limit",
            price=MARK,
            amount=amount,
            leverage=20.0,
            margin_mode="cross",
            stop_price=None,
        ),
        market,
        account(wallet_balance=6_000.0),
        limits,
        FILLS,
        now=NOW,
    )


def breach(verdict: Verdict) -> dict[str, object]:
    found = [f for f in verdict.findings if f.code is Code.STRESS_GRID_BREACH]
    assert len(found) == 1, verdict.findings
    return dict(found[0].values)


def test_the_grid_alone_lets_through_what_a_crowd_cascade_liquidates() -> None:
    # 1 BTC at 90,000 on 6,000: a 5 % fall loses 4,500 and leaves the maintenance covered.
    assert judge(policy(cascade=False)).decision is Decision.ALLOW
    assert judge(policy()).decision is Decision.ALLOW  # no crowd: the account's own close is all
    verdict = judge(CROWD_POLICY)
    assert verdict.decision is Decision.DENY
    values = breach(verdict)
    assert values["regime"] == "cascade"
    assert values["shock_pct"] == pytest.approx(-5.0)
    assert values["crowd_liquidations"] == 1
    assert values["liquidated"] == SYMBOL
    # By hand: the crowd's 20 BTC sold into 5 BTC of bids ends past the book, at twice its
    # deepest offset from the shocked mark; the account's cross pool is checked there.
    deepest = DepthProfile.from_book(THIN).levels[-1][0]
    trigger = MARK * 0.95 * (1.0 - 2.0 * deepest)
    assert values["trigger_mark"] == pytest.approx(trigger, rel=1e-9)
    message = next(f.message for f in verdict.findings if f.code is Code.STRESS_GRID_BREACH)
    assert f"{trigger:,.2f}" in message
    assert "after 1 crowd liquidation" in message


def test_a_wide_book_absorbs_the_crowds_forced_sales() -> None:
    wide = dataclasses.replace(
        CROWDED, book=synthetic_book(MARK, gap=2.0, top_size=50.0, timestamp=NOW)
    )
    assert judge(CROWD_POLICY, wide).decision is Decision.ALLOW


def test_a_crowd_policy_without_open_interest_fails_closed() -> None:
    verdict = judge(CROWD_POLICY, dataclasses.replace(CROWDED, open_interest=None))
    assert verdict.decision is Decision.DENY
    missing = [f for f in verdict.findings if f.code is Code.MISSING_MARKET_DATA]
    assert missing
    assert missing[0].values["missing"] == "open_interest"


def test_max_safe_amount_is_the_largest_size_the_cascade_leaves_standing() -> None:
    verdict = judge(CROWD_POLICY)
    safe = verdict.max_safe_amount
    assert safe is not None
    assert 0.0 < safe < 1.0
    assert judge(CROWD_POLICY, amount=safe).decision is Decision.ALLOW
    above = judge(CROWD_POLICY, amount=round(safe + STEP, 12))
    assert breach(above)["regime"] == "cascade"


def test_crowd_shares_must_sum_to_one() -> None:
    with pytest.raises(ValueError, match="sum to 1"):
        StressConfig(crowd_leverage=((25.0, 0.5), (10.0, 0.4)))


# --- the cascade's correlation measured from returns ------------------------------------------

ETH = "ETH/USDT:USDT"
ETH_MARK = 3_000.0
ETH_FLAT = TierTable.from_rows([(0.0, 10_000_000.0, 0.005, 50.0)])
ETH_DEPTH = DepthProfile(((0.0005, 1_000.0),))
WIGGLE = [0.01 * math.sin(1.7 * i) + 0.004 * math.cos(0.3 * i) for i in range(200)]


def closes(start: float, returns: list[float]) -> dict[int, float]:
    prices = {0: start}
    for i, r in enumerate(returns, start=1):
        prices[i] = prices[i - 1] * math.exp(r)
    return prices


def estimated(**stress: object) -> RiskLimits:
    settings: dict[str, object] = {"correlation_source": "estimated", **stress}
    config = StressConfig(
        shocks_pct=(-20.0, 20.0),
        regimes=("together",),
        **settings,  # type: ignore[arg-type]
    )
    return RiskLimits(require_stress_survival=True, require_stop=False, stress=config)


def judge_hedged(
    limits: RiskLimits, history: dict[str, dict[int, float]] | None, amount: float = 1.0
) -> Verdict:
    """1 BTC long bought at 60,000 (cross, 20x) next to a 20 ETH short at 3,000 on 10,000:
    a 20 % fall of BTC loses 12,000 on it, and the short gains 12,000 times the move the
    correlation gives ETH (the betas are one)."""
    short = PositionLeg(ETH, -1, 20.0, ETH_MARK, ETH_MARK, ETH_FLAT)
    return evaluate(
        intent(amount=amount, leverage=20.0, margin_mode="cross", stop_price=None, type="market"),
        sample_market(NOW),
        account(wallet_balance=10_000.0, available_balance=10_000.0 - 3_000.0, positions=(short,)),
        limits,
        FILLS,
        now=NOW,
        depth={ETH: ETH_DEPTH},
        closes=history,
    )


def codes(verdict: Verdict) -> list[Code]:
    return [f.code for f in verdict.findings]


def test_the_cascade_moves_the_hedge_by_the_measured_correlation() -> None:
    together = {SYMBOL: closes(60_000.0, WIGGLE), ETH: closes(ETH_MARK, WIGGLE)}
    # Measured 1 (stressed, still 1): ETH falls 20 % with BTC, the short gains what the long
    # loses.
    hedged = judge_hedged(estimated(), together)
    assert hedged.decision is Decision.ALLOW, hedged.findings
    assert Code.CORRELATION_FALLBACK not in codes(hedged)
    # Measured -1 and stressed halfway to one: 0. ETH stands still, the long loses 12,000
    # of the 10,000 alone: the hedge that hedged yesterday does not hedge the crash.
    mirrored = {SYMBOL: closes(60_000.0, WIGGLE), ETH: closes(ETH_MARK, [-r for r in WIGGLE])}
    verdict = judge_hedged(estimated(), mirrored)
    assert verdict.decision is Decision.DENY
    values = breach(verdict)
    assert values["regime"] == "cascade"
    assert values["shock_pct"] == pytest.approx(-20.0)
    assert f"{SYMBOL}~{ETH} 0.00 (measured -1.00 on 200 returns" in str(values["correlation"])
    # The configured 0.8 (the policy's correlation before this) lets the same order through.
    configured = judge_hedged(estimated(correlation_source="configured"), mirrored)
    assert configured.decision is Decision.ALLOW, configured.findings


def test_without_returns_the_cascade_uses_the_configured_correlation_and_warns() -> None:
    for history in (None, {}, {SYMBOL: closes(60_000.0, WIGGLE[:10])}):
        verdict = judge_hedged(estimated(), history)
        # 0.8: ETH falls 16 %, the loss is 2,400 of 10,000: it survives, and says on what.
        assert verdict.decision is Decision.WARN, verdict.findings
        (warning,) = [f for f in verdict.findings if f.code is Code.CORRELATION_FALLBACK]
        assert "configured correlation 0.8" in warning.message
        assert "common returns, 30 needed" in warning.message
    # The configured value itself denies when it is what breaks the account.
    assert judge_hedged(estimated(cascade_correlation=0.0), None).decision is Decision.DENY


def test_few_returns_are_shrunk_toward_the_configured_correlation() -> None:
    mirrored = {
        SYMBOL: closes(60_000.0, WIGGLE[:60]),
        ETH: closes(ETH_MARK, [-r for r in WIGGLE[:60]]),
    }
    # Half weight: 0.5 * 0 (measured -1, stressed) + 0.5 * 0.8 = 0.4; the loss is 7,200.
    verdict = judge_hedged(estimated(), mirrored)
    assert verdict.decision is Decision.ALLOW, verdict.findings
    # With more of the same returns the measurement wins, and it denies.
    assert judge_hedged(estimated(correlation_full_samples=60), mirrored).decision is (
        Decision.DENY
    )


def test_broken_closes_are_refused_or_cut_never_believed() -> None:
    bad_key: dict[str, dict[object, float]] = {SYMBOL: {"0": 60_000.0}}
    refused = judge_hedged(estimated(), bad_key)  # type: ignore[arg-type]
    assert refused.decision is Decision.DENY
    assert codes(refused) == [Code.INVALID_INPUT]
    # NaN, zero and infinite closes cut the returns around them: too few left, the pair
    # falls back (and warns) instead of reading a NaN correlation.
    poisoned = {
        SYMBOL: {k: (math.nan if k % 2 else p) for k, p in closes(60_000.0, WIGGLE).items()},
        ETH: {k: (math.inf if k % 3 else p) for k, p in closes(ETH_MARK, WIGGLE).items()},
    }
    verdict = judge_hedged(estimated(), poisoned)
    assert verdict.decision is Decision.WARN, verdict.findings
    assert Code.CORRELATION_FALLBACK in codes(verdict)


def test_closes_updated_in_place_are_judged_on_what_they_hold_now() -> None:
    # A caller keeping one dict of closes and writing the new interval into it: the second
    # verdict must read the returns it is handed, not the estimate of the first call.
    limits = estimated()
    history = {SYMBOL: closes(60_000.0, WIGGLE), ETH: closes(ETH_MARK, WIGGLE)}
    assert judge_hedged(limits, history).decision is Decision.ALLOW
    history[ETH].update(closes(ETH_MARK, [-r for r in WIGGLE]))
    assert judge_hedged(limits, history).decision is Decision.DENY


def test_a_verdict_on_kept_pairs_reads_as_a_fresh_one() -> None:
    # Closes with a third symbol the order does not touch: its pairs are measured (or not)
    # apart; the second verdict takes BTC~ETH from the first and must say what a verdict
    # on those two symbols' closes alone says.
    limits = estimated()
    history = {
        SYMBOL: closes(60_000.0, WIGGLE),
        ETH: closes(ETH_MARK, [-r for r in WIGGLE]),
        "SOL/USDT:USDT": closes(150.0, WIGGLE),
    }
    alone = {SYMBOL: history[SYMBOL], ETH: history[ETH]}
    fresh = breach(judge_hedged(estimated(), alone))["correlation"]
    for _ in range(2):
        assert breach(judge_hedged(limits, history))["correlation"] == fresh


# --- the crowd in every held symbol -----------------------------------------------------------

ETH_THIN = DepthProfile(((0.01, 20.0), (0.02, 20.0)))


def judge_held(open_interest: dict[str, float] | None, wallet: float = 4_000.0) -> Verdict:
    """A small BTC order next to a 20 ETH long (cross) on ``wallet``; ETH's book holds 40 ETH."""
    long_eth = PositionLeg(ETH, 1, 20.0, ETH_MARK, ETH_MARK, ETH_FLAT)
    return evaluate(
        intent(amount=0.01, leverage=20.0, margin_mode="cross", stop_price=None, type="market"),
        dataclasses.replace(sample_market(NOW), open_interest=0.0),  # nobody else in BTC
        account(wallet_balance=wallet, available_balance=1_000.0, positions=(long_eth,)),
        CROWD_POLICY,
        FILLS,
        now=NOW,
        depth={ETH: ETH_THIN},
        open_interest=open_interest,
    )


def test_a_crowd_in_a_held_symbol_cascades_into_the_account() -> None:
    # Without ETH's crowd a 5 % fall of ETH loses 3,000 of the 4,000: the account stands.
    alone = judge_held({ETH: 0.0})
    assert alone.decision is Decision.ALLOW, alone.findings
    # 1,800,000 of ETH open interest held long at 25x (600 ETH) is liquidated by the same
    # fall (at about -3.5 %); its sales run through ETH's 40 ETH of bids and past them, and
    # take ETH's mark down into the account's own liquidation. The order is in BTC: before,
    # only BTC's crowd was spread, and this passed.
    verdict = judge_held({ETH: 1_800_000.0})
    assert verdict.decision is Decision.DENY
    values = breach(verdict)
    assert values["regime"] == "cascade"
    assert values["shock_symbol"] == ETH
    assert str(values["liquidated"]).startswith(ETH)  # then BTC, the cross pool one by one
    assert values["crowd_liquidations"] == 1


def test_a_held_symbol_without_open_interest_fails_closed_and_is_named() -> None:
    for missing in (None, {}):
        verdict = judge_held(missing)
        assert verdict.decision is Decision.DENY
        (finding,) = [f for f in verdict.findings if f.code is Code.MISSING_MARKET_DATA]
        assert finding.values["symbols"] == ETH
        assert ETH in finding.message


@pytest.mark.parametrize("bad", [{ETH: math.nan}, {ETH: -1.0}, {ETH: True}, [ETH]])
def test_broken_open_interest_is_refused(bad: object) -> None:
    verdict = judge_held(bad)  # type: ignore[arg-type]
    assert verdict.decision is Decision.DENY
    assert codes(verdict) == [Code.INVALID_INPUT]


def test_each_crowd_group_the_cascade_liquidates_is_counted() -> None:
    """Two crowd groups (50x and 25x) are both forced out before the account: the finding
    counts the crowd's liquidations, not the account's own (one)."""
    two_groups = policy(crowd_leverage=((50.0, 0.5), (25.0, 0.5)), crowd_long_share=1.0)
    verdict = judge(two_groups)
    assert verdict.decision is Decision.DENY
    values = breach(verdict)
    assert values["crowd_liquidations"] == 2
    assert values["liquidated"] == SYMBOL
    assert values["shock_symbol"] == SYMBOL
    # The equity the limit entry leaves: the wallet less its maker fee; the cascade takes all.
    assert values["equity"] == pytest.approx(6_000.0 - MARK * 0.0002)
    assert values["loss"] == pytest.approx(values["equity"])
    assert values["steps"] == 2  # the crowd's closes, then the account's at the next step
    message = next(f.message for f in verdict.findings if f.code is Code.STRESS_GRID_BREACH)
    assert "after 2 crowd liquidations:" in message


def test_an_isolated_position_the_cascade_liquidates_loses_its_margin_not_the_account() -> None:
    """0.5 BTC isolated at 10x holds 4,500 of margin: the plain grid's 5 % fall leaves it
    standing, the crowd's cascade liquidates it, and the account keeps the rest of its wallet
    (the finding's loss is what the cascade takes, not the equity)."""
    verdict = evaluate(
        intent(
            type="limit",
            price=MARK,
            amount=0.5,
            leverage=10.0,
            margin_mode="isolated",
            stop_price=None,
        ),
        CROWDED,
        account(wallet_balance=6_000.0),
        CROWD_POLICY,
        FILLS,
        now=NOW,
    )
    values = breach(verdict)
    assert values["regime"] == "cascade"
    assert values["equity"] == pytest.approx(6_000.0 - 0.5 * MARK * 0.0002)
    assert values["loss"] == pytest.approx(0.5 * MARK / 10.0)


def test_the_fallback_warning_names_each_unmeasured_pair_and_the_value_used() -> None:
    verdict = judge_hedged(estimated(), None)
    (warning,) = [f for f in verdict.findings if f.code is Code.CORRELATION_FALLBACK]
    assert str(warning.severity) == "WARN"
    assert warning.values["correlation"] == pytest.approx(0.8)
    pairs = str(warning.values["pairs"])
    assert pairs.startswith(f"{SYMBOL}~{ETH}: ")  # the pair, then why it was not measured
    assert "; " not in pairs  # one pair only
    assert pairs in warning.message


def test_a_cascade_breach_says_whether_its_correlation_was_measured_or_configured() -> None:
    mirrored = {SYMBOL: closes(60_000.0, WIGGLE), ETH: closes(ETH_MARK, [-r for r in WIGGLE])}
    measured = breach(judge_hedged(estimated(), mirrored))
    assert str(measured["correlation"]).startswith(f"estimated: {SYMBOL}~{ETH} 0.00")
    configured = breach(
        judge_hedged(estimated(correlation_source="configured", cascade_correlation=0.0), mirrored)
    )
    assert configured["correlation"] == "0"
    assert configured["regime"] == "cascade"
