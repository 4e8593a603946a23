"""``require_stress_survival`` runs the policy's shocks through the cascade too.

A crowd of 25x longs (the order's symbol's open interest spread over the policy's leverage
distribution) is liquidated by a 5 % fall; their forced sales walk a thin book past its far
end and take the mark further, into the account's own liquidation. The stress grid alone,
which moves the price by the shock and nothing else, lets the same order through.
"""

from __future__ import annotations

import dataclasses

import pytest

from safeguard.codes import Code
from safeguard.config import RiskLimits, StressConfig
from safeguard.risk.models import MarketSnapshot
from safeguard.risk.outcome import Decision, Verdict
from safeguard.risk.sample import STEP, SYMBOL, sample_market, synthetic_book
from safeguard.risk.stress import DepthProfile
from safeguard.risk.verdict import evaluate

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
