"""The verdict's inputs the gate keeps between orders follow every change to what they are
built from, at once, with no time passing.

The gate reuses the market snapshot, the account and the parsed tier table while the reads
behind them are the same objects (the order path rebuilds nothing per order otherwise). A reuse
that outlived a change would judge an order on the old figures: these pin that a new tier
table, a leverage change and a fill each reach the very next verdict. The clock never moves,
so nothing is re-read on a schedule: only the change itself can make the difference.

Real ccxt ``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.risk._outcome import Decision
from safeguard.risk._tiers import TierTable
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
CAPPED_AT_20X = TierTable.from_rows(
    [(0.0, 300_000.0, 0.025, 20.0), (300_000.0, 70_000_000.0, 0.05, 10.0)], currency="USDT"
)


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _policy(**risk: Any) -> Policy:
    return Policy.build(
        risk={"max_leverage": 125, "require_stop": False, **risk},
        degradation={"min_samples": 100_000},
        retry={"max_attempts": 2},
    )


def _denials(verdict: Any) -> set[str]:
    return {str(f.code) for f in verdict.denials}


def test_a_tier_table_read_again_reaches_the_next_verdict(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(50, SYMBOL)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    paper.venue.set_tiers(VENUE_SYMBOL, CAPPED_AT_20X)
    ex.fetch_leverage_tiers()  # the bot's own read, at the same instant
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    assert str(Code.LEVERAGE_ABOVE_TIER) in _denials(verdict)


def test_a_leverage_change_reaches_the_next_verdict(paper: PaperAccount, tmp_path: Path) -> None:
    ex = paper.guarded(_policy(max_leverage=20), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(10, SYMBOL)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    ex.set_leverage(25, SYMBOL)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    assert str(Code.LEVERAGE_ABOVE_POLICY) in _denials(verdict)
    ex.set_leverage(10, SYMBOL)  # and back: the verdict follows the way down too
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW


def test_a_fill_reaches_the_next_verdict(paper: PaperAccount, tmp_path: Path) -> None:
    notional = 0.01 * float(paper.client().fetch_ticker(SYMBOL)["last"])
    # Room for one such order in the symbol's position, not for two.
    ex = paper.guarded(_policy(max_notional_per_position=notional * 1.5), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(10, SYMBOL)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    assert str(Code.NOTIONAL_PER_POSITION) in _denials(verdict)
    # Selling reduces the position: the new leg is what it is judged against.
    assert ex.preview(SYMBOL, "market", "sell", 0.01).decision is not Decision.DENY
