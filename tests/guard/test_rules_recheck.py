"""A venue's silent change to the rules that price risk is seen within a minute.

Binance changes leverage brackets without notice; a guard that re-read them on the 30-minute
schedule of the other market rules judged 50x against a tier capped at 150x while the venue's
cap was already 20x. The ladder is now re-read every ``max_tiers_age_s / 2`` (on the order path
when due, and after any read while a position is open), and new exposure is denied once it is
older than ``max_tiers_age_s``.

Real ccxt ``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, StateChangeEvent
from safeguard.risk._outcome import Decision
from safeguard.risk._tiers import TierTable
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
BRACKETS = "GET /fapi/v1/leverageBracket"
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


def _leverage_denials(verdict: Any) -> set[str]:
    return {str(f.code) for f in verdict.denials}


def test_a_ladder_the_venue_changed_is_priced_within_a_minute(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    ex.set_leverage(50, SYMBOL)
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    paper.venue.set_tiers(VENUE_SYMBOL, CAPPED_AT_20X)  # silently, as Binance does
    paper.advance(60)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    assert str(Code.LEVERAGE_ABOVE_TIER) in _leverage_denials(verdict)


def test_a_ladder_that_cannot_be_re_read_denies_new_exposure_once_too_old(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    paper.set_faults({"rules": [{"kind": "error", "endpoint": BRACKETS, "status": 503}]})
    paper.advance(45)  # due for its re-read, which fails; still young enough to judge by
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    paper.advance(20)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.decision is Decision.DENY
    assert _leverage_denials(verdict) == {str(Code.STALE_MARKET_RULES)}
    assert "tier" in verdict.denials[0].message


def test_a_bot_holding_a_position_learns_of_a_ladder_change_while_it_only_polls(
    paper: PaperAccount, tmp_path: Path
) -> None:
    hooks = Hooks()
    changes: list[StateChangeEvent] = []
    hooks.subscribe(EventKind.STATE_CHANGE, changes.append)
    ex = paper.guarded(_policy(), state_dir=tmp_path, hooks=hooks)
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    paper.venue.set_tiers(VENUE_SYMBOL, CAPPED_AT_20X)
    for _ in range(6):  # a minute of polling prices; no order, no preview
        paper.advance(10)
        ex.fetch_ticker(SYMBOL)
    assert [c.metric for c in changes if c.endpoint == SYMBOL] == ["rules:tiers"]


def test_the_ladder_re_check_costs_two_requests_a_minute_while_a_position_is_open(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    counted = paper.set_faults(
        {"rules": [{"kind": "latency", "endpoint": BRACKETS, "ms": 0}]}  # counts, changes nothing
    )
    assert counted is not None
    for _ in range(10 * 60):  # ten minutes of a bot polling its price every second
        paper.advance(1)
        ex.fetch_ticker(SYMBOL)
    assert paper.faults_fired() == [20]
