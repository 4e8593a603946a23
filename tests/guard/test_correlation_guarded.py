"""The guard's correlation estimate follows the venue's price processes: real ccxt
``binanceusdm`` through the guard against the in-process mock venue, on simulated time.

The venue's index processes share a market-wide factor (``VenueConfig.index_correlation``);
the guard keeps the marks the bot's own reads bring (no request of its own) and measures each
pair from their returns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.risk._correlation import log_returns, pearson
from safeguard.testing import PaperAccount, paper_account
from safeguard.venue import VenueConfig
from safeguard.venue._config import Regime

BTC, ETH, SOL = "BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT"
MINUTE = 60.0


def venue(correlation: float, seed: int = 11) -> VenueConfig:
    # One regime and no jumps: the factor is the only thing the symbols share.
    return VenueConfig(
        seed=seed,
        index_correlation=correlation,
        regimes=(Regime(name="calm", annual_vol=0.8, mean_duration_s=1e9),),
        jumps_per_day=0.0,
        premium_sd=0.00001,
    )


def policy(**stress: Any) -> Policy:
    settings = {
        "correlation_source": "estimated",
        "correlation_interval_s": MINUTE,
        "correlation_toward_one": 0.0,
        **stress,
    }
    return Policy.build(
        risk={"require_stop": False, "require_stress_survival": True, "stress": settings},
        degradation={"min_samples": 100_000},
    )


@pytest.fixture
def accounts() -> Iterator[list[PaperAccount]]:
    made: list[PaperAccount] = []
    yield made
    for account in made:
        account.close()


def guarded(
    accounts: list[PaperAccount], tmp_path: Path, config: VenueConfig, **stress: Any
) -> tuple[Any, PaperAccount]:
    paper = paper_account(wallet=50_000.0, config=config)
    accounts.append(paper)
    ex = paper.guarded(policy(**stress), state_dir=tmp_path / f"run{len(accounts)}")
    ex.load_markets()
    return ex, paper


def poll_marks(
    ex: Any, paper: PaperAccount, minutes: int, symbols: tuple[str, ...]
) -> dict[str, dict[int, float]]:
    """A bot that reads its marks once a minute; returns what it read, by minute."""
    seen: dict[str, dict[int, float]] = {s: {} for s in symbols}
    for minute in range(minutes):
        for symbol in symbols:
            seen[symbol][minute] = float(ex.fetch_funding_rate(symbol)["markPrice"])
        paper.advance(MINUTE)
    return seen


def measured(seen: dict[str, dict[int, float]], a: str, b: str) -> float:
    ra, rb = log_returns(seen[a]), log_returns(seen[b])
    common = sorted(ra.keys() & rb.keys())
    found = pearson([ra[k] for k in common], [rb[k] for k in common])
    assert found is not None
    return found


def test_the_guards_estimate_follows_the_venues_correlated_prices(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    for correlation in (0.9, 0.0):
        ex, paper = guarded(accounts, tmp_path, venue(correlation))
        seen = poll_marks(ex, paper, 240, (BTC, ETH))
        estimate = ex.runtime.view.correlation_estimate((BTC, ETH), paper.clock.time())
        (pair,) = estimate.pairs
        assert pair.fallback_reason is None
        # The guard measured what the bot saw (same marks, same minutes: the window is the
        # 240 completed minutes before now).
        assert pair.samples == 239
        assert pair.measured == pytest.approx(measured(seen, BTC, ETH), abs=1e-12)
        # ...and that is the venue's process: 0.9 or 0, within the sampling error of
        # 239 returns (about 1 / sqrt(n) = 0.065 for an independent pair).
        assert pair.measured == pytest.approx(correlation, abs=0.2)
        assert pair.rho == pytest.approx(pair.measured)


def test_a_guard_that_saw_too_little_warns_that_it_used_the_configured_correlation(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    ex, paper = guarded(accounts, tmp_path, venue(0.9))
    ex.create_order(ETH, "market", "buy", 0.5)
    poll_marks(ex, paper, 5, (BTC, ETH))
    verdict = ex.preview(BTC, "market", "buy", 0.01)
    assert verdict.allowed, verdict.findings
    (warning,) = [f for f in verdict.findings if f.code is Code.CORRELATION_FALLBACK]
    assert f"{BTC}~{ETH}" in warning.message
    assert "30 needed" in warning.message
    # An hour of minutes later the pair is measured and the warning is gone.
    poll_marks(ex, paper, 60, (BTC, ETH))
    verdict = ex.preview(BTC, "market", "buy", 0.01)
    assert verdict.allowed, verdict.findings
    assert Code.CORRELATION_FALLBACK not in [f.code for f in verdict.findings]


def test_a_symbol_whose_reads_stop_ages_out_and_falls_back(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    ex, paper = guarded(accounts, tmp_path, venue(0.9), correlation_window=60)
    poll_marks(ex, paper, 60, (BTC, ETH))
    assert ex.runtime.view.correlation_estimate((BTC, ETH), paper.clock.time()).fallbacks == ()
    # The bot stops reading ETH (its market halted, or the bot lost interest): after a
    # window of BTC alone, ETH has no returns left to pair.
    poll_marks(ex, paper, 60, (BTC,))
    estimate = ex.runtime.view.correlation_estimate((BTC, ETH), paper.clock.time())
    (pair,) = estimate.fallbacks
    assert pair.rho == 0.8
    assert pair.samples == 0


def test_held_positions_feed_the_history_from_their_reads(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    ex, paper = guarded(accounts, tmp_path, venue(0.9))
    ex.create_order(SOL, "market", "buy", 10)
    ex.create_order(ETH, "market", "buy", 0.5)
    for _ in range(60):
        ex.fetch_positions()  # a bot that only watches its positions
        paper.advance(MINUTE)
    estimate = ex.runtime.view.correlation_estimate((ETH, SOL), paper.clock.time())
    (pair,) = estimate.pairs
    assert pair.fallback_reason is None
    assert pair.samples >= 55
    assert math.isfinite(pair.rho)


def test_a_frozen_feed_falls_back_instead_of_reading_no_correlation(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    ex, paper = guarded(accounts, tmp_path, venue(0.9), correlation_window=60)
    # ETH's market stops moving (a halt): its mark stands still while BTC's moves on. A flat
    # series has no correlation; reading it as 0 would call the pair unrelated.
    paper.set_faults({"rules": [{"kind": "freeze_feed", "symbol": "ETHUSDT", "mode": "prices"}]})
    poll_marks(ex, paper, 61, (BTC, ETH))
    estimate = ex.runtime.view.correlation_estimate((BTC, ETH), paper.clock.time())
    (pair,) = estimate.fallbacks
    assert pair.rho == 0.8
    assert pair.samples >= 58
    assert pair.fallback_reason is not None
    assert ETH in pair.fallback_reason
    assert "did not vary" in pair.fallback_reason


class SteppedClock:
    """The host's wall clock: the venue's time plus ``offset`` (set negative to step it
    back, as an NTP correction does)."""

    def __init__(self, paper: PaperAccount) -> None:
        self.paper = paper
        self.offset = 0.0

    def time(self) -> float:
        return self.paper.clock.time() + self.offset

    def monotonic(self) -> float:
        return self.paper.clock.time()


def test_a_clock_stepped_back_leaves_no_return_spanning_the_jump(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    ex, paper = guarded(accounts, tmp_path, venue(0.9))
    host = SteppedClock(paper)
    ex.runtime.clock = host  # the guard reads time here; the venue keeps its own
    seen = poll_marks(ex, paper, 90, (BTC, ETH))  # venue minutes 0..89, host the same
    host.offset = -45 * MINUTE
    # Host minutes 45..134 over venue minutes 90..179. The guard's time does not go back: it
    # stands at minute 89 until the host passes it, so venue minutes 90..134 all land in
    # bucket 89 (the last, 134, stays its close), and from host minute 90 on the buckets run
    # 45 venue minutes late.
    later = poll_marks(ex, paper, 90, (BTC, ETH))
    estimate = ex.runtime.view.correlation_estimate((BTC, ETH), host.time())
    (pair,) = estimate.pairs
    # Every return the guard measured is one venue minute long: minutes 1..87 before the
    # step and 135..179 after it (bucket 88's close, before the jump, is given up).
    venue_minutes = {s: {**seen[s], **{90 + m: p for m, p in later[s].items()}} for s in seen}
    kept = {
        s: {m: p for m, p in c.items() if m <= 87 or m >= 134} for s, c in venue_minutes.items()
    }
    assert pair.samples == 87 + 45
    assert pair.measured == pytest.approx(measured(kept, BTC, ETH), abs=1e-12)
