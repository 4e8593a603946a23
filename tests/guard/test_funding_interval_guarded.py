"""The funding interval a guard judges by follows the venue's schedule when the venue changes
it after the bot's last ``fetch_funding_interval`` read: real ccxt ``binanceusdm`` through the
guard against the in-process mock venue, on simulated time.

The interval read (Binance's ``fundingInfo``) is only as fresh as the bot made it; the next
funding time comes with every funding read the verdict makes. When the two disagree, the
schedule the venue serves now wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
CAP = 0.003


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000.0)
    yield account
    account.close()


def guarded(paper: PaperAccount, state: Path) -> Any:
    policy = Policy.build(
        risk={
            "require_stop": False,
            "funding_at_cap": True,
            "funding_cap_rate": CAP,
            "funding_horizon_s": 8 * 3600.0,
        }
    )
    ex = paper.guarded(policy, state_dir=state)
    ex.load_markets()
    return ex


def funding_cost(ex: Any) -> float:
    """What a 0.01 BTC long expects to pay in funding over the policy's horizon."""
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert verdict.expected is not None, verdict.findings
    return float(verdict.expected.expected_funding)


def test_an_interval_the_venue_lengthened_since_it_was_read_does_not_block_orders(
    paper: PaperAccount, tmp_path: Path
) -> None:
    paper.venue.set_funding_interval(VENUE_SYMBOL, 1)
    ex = guarded(paper, tmp_path)
    assert ex.fetch_funding_interval(SYMBOL)["interval"] == "1h"
    assert ex.preview(SYMBOL, "market", "buy", 0.01).allowed
    # Back to 8 hours; the bot does not read fundingInfo again. The next funding time the
    # venue serves is hours away: not a stale schedule, a longer one.
    paper.venue.set_funding_interval(VENUE_SYMBOL, 8)
    paper.advance(60)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
    assert Code.STALE_MARKET_DATA not in [f.code for f in verdict.findings], verdict.findings
    assert verdict.allowed


def test_an_interval_the_venue_shortened_since_it_was_read_counts_every_payment(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = guarded(paper, tmp_path / "stale")
    assert ex.fetch_funding_interval(SYMBOL)["interval"] == "8h"
    eight = funding_cost(ex)
    assert eight > 0.0  # one payment at the cap within the 8 h horizon
    # The venue moves the symbol to 1 hour (its funding hit the cap); the bot does not read
    # fundingInfo again, a second bot does.
    paper.venue.set_funding_interval(VENUE_SYMBOL, 1)
    paper.advance(60)
    stale = funding_cost(ex)
    fresh_ex = guarded(paper, tmp_path / "fresh")
    assert fresh_ex.fetch_funding_interval(SYMBOL)["interval"] == "1h"
    fresh = funding_cost(fresh_ex)
    # Eight payments at the cap in the next 8 hours, not one: what the bot that read the
    # new interval is told.
    assert fresh == pytest.approx(8 * eight, rel=1e-2)
    assert stale == pytest.approx(fresh, rel=1e-9)
