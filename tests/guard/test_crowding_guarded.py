"""The guard keeps each symbol's crowding from its funding reads and the verdict tightens the
crowded side: real ccxt ``binanceusdm`` through the guard against the mock venue, whose
contract price is spiked 4 % above an index that stays (the mark follows, funding climbs)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.risk._outcome import Decision
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _policy(max_tightening: float) -> Policy:
    return Policy.build(
        risk={
            "max_leverage": 20,
            "require_stop": False,
            "crowding": {"max_tightening": max_tightening, "tighten_from": 0.3},
        },
        degradation={"min_samples": 100_000},
    )


def _spike_and_watch(ex: object, paper: PaperAccount) -> dict[str, float]:
    paper.set_faults(
        {
            "rules": [
                {
                    "kind": "spike",
                    "symbol": VENUE_SYMBOL,
                    "pct": 4.0,
                    "duration_s": 600.0,
                    "at_s": 1.0,
                }
            ]
        }
    )
    info: dict[str, float] = {}
    for _ in range(6):
        paper.advance(10)
        info = ex.fetch_funding_rate(SYMBOL)  # type: ignore[attr-defined]
    return info


def test_a_crowded_long_side_gets_tightened_leverage_and_the_short_side_does_not(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(0.5), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(15, SYMBOL)
    ex.fetch_funding_rate(SYMBOL)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    last = _spike_and_watch(ex, paper)
    assert last["markPrice"] > last["indexPrice"] * 1.02  # the crowd is long
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    (finding,) = [f for f in verdict.findings if f.code is Code.CROWDING]
    assert finding.values["max_leverage"] < 15.0
    assert 0.3 < finding.values["score"] <= 1.0
    assert ex.preview(SYMBOL, "market", "sell", 0.01).decision is Decision.ALLOW


def test_without_tightening_crowding_changes_nothing(paper: PaperAccount, tmp_path: Path) -> None:
    ex = paper.guarded(_policy(0.0), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(15, SYMBOL)
    _spike_and_watch(ex, paper)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW


def _crowd_guarded(paper: PaperAccount, tmp_path: Path) -> Any:
    """A guard whose cascade spreads every symbol's open interest over 25x traders."""
    policy = Policy.build(
        risk={
            "max_leverage": 20,
            "require_stop": False,
            "require_stress_survival": True,
            "stress": {"shocks_pct": [-2.0, 2.0], "crowd_leverage": [[25.0, 1.0]]},
        },
        degradation={"min_samples": 100_000},
    )
    ex = paper.guarded(policy, state_dir=tmp_path)
    ex.load_markets()
    return ex


def test_the_cascades_crowd_comes_from_the_open_interest_the_bot_reads(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = _crowd_guarded(paper, tmp_path)
    blind = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert blind.decision is Decision.DENY
    (missing,) = [f for f in blind.findings if f.code is Code.MISSING_MARKET_DATA]
    assert missing.values["missing"] == "open_interest"
    assert "fetch_open_interest" in missing.message
    assert ex.fetch_open_interest(SYMBOL)["openInterestAmount"] == 0  # nobody holds it yet
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert ex.fetch_open_interest(SYMBOL)["openInterestAmount"] == pytest.approx(0.01)
    seen = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert Code.MISSING_MARKET_DATA not in seen.codes
    paper.advance(301)  # older than risk.stress.max_open_interest_age_s: missing again
    stale = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert Code.MISSING_MARKET_DATA in stale.codes


def test_every_held_symbol_needs_its_open_interest_for_the_crowd(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = _crowd_guarded(paper, tmp_path)
    eth = "ETH/USDT:USDT"
    ex.fetch_open_interest(eth)
    ex.create_order(eth, "market", "buy", 0.1)
    ex.fetch_open_interest(SYMBOL)
    paper.advance(301)  # ETH's read is now older than max_open_interest_age_s
    ex.fetch_open_interest(SYMBOL)
    # The order is in BTC, whose open interest is fresh; ETH is held and its crowd is unknown.
    blind = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert blind.decision is Decision.DENY
    (missing,) = [f for f in blind.findings if f.code is Code.MISSING_MARKET_DATA]
    assert missing.values["symbols"] == eth
    ex.fetch_open_interest(eth)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
