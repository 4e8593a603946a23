"""Early warnings on scripted venue scenarios: real ccxt ``binanceusdm`` through the guard against
the in-process mock venue and its fault plan, on simulated time.

Each warning fires on its scenario and stays quiet just under its threshold. Where the
threshold is a measured quantity (a gap, a share of the cap, a book's cover) the scenario is run
once to measure it independently (from the venue's own answer), then twice more, with the
threshold just under and just over it: the venue is seeded, so every run is the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, WarningEvent
from safeguard.observability import Metrics
from safeguard.risk._tiers import TierTable
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
RAISED = TierTable.from_rows(
    [(0.0, 300_000.0, 0.02, 25.0), (300_000.0, 70_000_000.0, 0.05, 10.0)], currency="USDT"
)

Script = Callable[[Any, PaperAccount], None]


@pytest.fixture
def accounts() -> Iterator[list[PaperAccount]]:
    made: list[PaperAccount] = []
    yield made
    for account in made:
        account.close()


def run(
    accounts: list[PaperAccount], tmp_path: Path, warnings: dict[str, Any], script: Script
) -> tuple[list[WarningEvent], Any, Metrics]:
    """A fresh seeded venue, a guard with the warnings asked for, the script run through it."""
    paper = paper_account(wallet=10_000)
    accounts.append(paper)
    hooks = Hooks()
    seen: list[WarningEvent] = []
    hooks.subscribe(EventKind.WARNING, seen.append)
    metrics = Metrics()
    metrics.attach(hooks)
    warnings = dict(warnings)
    # The venue's funding cap is a risk setting (the verdict's funding_at_cap reads it too).
    cap = (
        {"funding_cap_rate": warnings.pop("funding_cap_rate")}
        if "funding_cap_rate" in warnings
        else {}
    )
    policy = Policy.build(
        risk={"max_leverage": 125, "require_stop": False, **cap},
        degradation={"min_samples": 100_000},
        kill_switch={"warnings": warnings},
    )
    state = tmp_path / f"run{len(accounts)}"
    ex = paper.guarded(policy, state_dir=state, triggers=True, hooks=hooks)
    ex.load_markets()
    script(ex, paper)
    return seen, ex, metrics


def names(events: list[WarningEvent]) -> list[str]:
    return [event.name for event in events]


def counted(metrics: Metrics, name: str, severity: str = "warning") -> float:
    value = metrics.registry.get_sample_value(
        "safeguard_early_warnings_total", {"name": name, "severity": severity}
    )
    return value or 0.0


def cancels(count: int) -> Script:
    def script(ex: Any, paper: PaperAccount) -> None:
        mark = float(ex.fetch_ticker(SYMBOL)["last"])
        for _ in range(count):
            order = ex.create_order(SYMBOL, "limit", "buy", 0.002, round(mark * 0.97, 1))
            ex.cancel_order(order["id"], SYMBOL)
            paper.advance(1)

    return script


def test_a_burst_of_cancels_warns_and_escalates_when_the_policy_says(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    config = {"cancel_burst": 3}
    quiet, _, _ = run(accounts, tmp_path, config, cancels(2))
    assert "CANCEL_BURST" not in names(quiet)
    fired, ex, metrics = run(accounts, tmp_path, config, cancels(3))
    assert names(fired).count("CANCEL_BURST") == 1
    assert fired[names(fired).index("CANCEL_BURST")].value == 3
    assert counted(metrics, "CANCEL_BURST") == 1
    assert ex.runtime.switch.state.state.value == "ACTIVE"  # a warning, not a halt
    escalated, ex, _ = run(
        accounts, tmp_path, {**config, "escalate": {"CANCEL_BURST": "HALTED"}}, cancels(3)
    )
    assert "CANCEL_BURST" in names(escalated)
    state = ex.runtime.switch.state
    assert state.state.value == "HALTED"
    assert state.code == "EARLY_WARNING"
    assert "CANCEL_BURST" in state.reason


def leverage_changes(count: int) -> Script:
    def script(ex: Any, paper: PaperAccount) -> None:
        for i in range(count):
            ex.set_leverage(10 + i, SYMBOL)
            paper.advance(1)

    return script


def test_leverage_changes_warn_at_their_count(accounts: list[PaperAccount], tmp_path: Path) -> None:
    config = {"leverage_changes": 3}
    assert "LEVERAGE_CHANGES" not in names(run(accounts, tmp_path, config, leverage_changes(2))[0])
    fired, _, metrics = run(accounts, tmp_path, config, leverage_changes(3))
    assert names(fired).count("LEVERAGE_CHANGES") == 1
    assert counted(metrics, "LEVERAGE_CHANGES") == 1


def spiked(measured: list[dict[str, float]], reads: int = 9) -> Script:
    """The contract price jumps 4 % for two minutes; the index stays. Reads the premium index
    (the guard's funding read) every 10 s, ``reads`` times, keeping the venue's own numbers."""

    def script(ex: Any, paper: PaperAccount) -> None:
        paper.set_faults(
            {
                "rules": [
                    {
                        "kind": "spike",
                        "symbol": VENUE_SYMBOL,
                        "pct": 4.0,
                        "duration_s": 120.0,
                        "at_s": 1.0,
                    }
                ]
            }
        )
        for _ in range(reads):
            paper.advance(10)
            info = ex.fetch_funding_rate(SYMBOL)
            measured.append(
                {
                    "mark": info["markPrice"],
                    "index": info["indexPrice"],
                    "rate": info["fundingRate"],
                }
            )

    return script


def test_the_mark_departing_from_its_index_warns_at_the_gap(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    measured: list[dict[str, float]] = []
    off = {"mark_index_gap_pct": None, "funding_near_cap": None}
    run(accounts, tmp_path, off, spiked(measured))
    widest = max(abs(m["mark"] - m["index"]) / m["index"] * 100.0 for m in measured)
    assert widest > 0.1  # the spike did move the mark off the index
    just_over = {**off, "mark_index_gap_pct": widest * 1.001}
    assert "MARK_INDEX_GAP" not in names(run(accounts, tmp_path, just_over, spiked([]))[0])
    at = {**off, "mark_index_gap_pct": widest * 0.999}
    fired, _, metrics = run(accounts, tmp_path, at, spiked([]))
    assert names(fired).count("MARK_INDEX_GAP") == 1
    warning = fired[names(fired).index("MARK_INDEX_GAP")]
    assert warning.symbol == SYMBOL
    assert warning.value == pytest.approx(widest, rel=1e-3)
    assert counted(metrics, "MARK_INDEX_GAP") == 1


def test_funding_near_its_cap_warns_at_its_share_of_the_cap(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    cap = 0.003  # the mock venue's BTCUSDT cap (its fundingInfo)
    measured: list[dict[str, float]] = []
    off = {"mark_index_gap_pct": None, "funding_near_cap": None, "funding_cap_rate": cap}
    # Two reads: the estimated rate is on its way up, not yet pinned at the cap.
    run(accounts, tmp_path, off, spiked(measured, reads=2))
    share = max(abs(m["rate"]) / cap for m in measured)
    assert 0.1 < share < 0.99
    just_over = {**off, "funding_near_cap": share * 1.001}
    assert "FUNDING_NEAR_CAP" not in names(
        run(accounts, tmp_path, just_over, spiked([], reads=2))[0]
    )
    at = {**off, "funding_near_cap": share * 0.999}
    fired, _, _ = run(accounts, tmp_path, at, spiked([], reads=2))
    assert names(fired).count("FUNDING_NEAR_CAP") == 1
    assert fired[names(fired).index("FUNDING_NEAR_CAP")].value == pytest.approx(share, rel=1e-3)


def tiers_flapping(back: bool) -> Script:
    """The venue raises the BTCUSDT ladder, then (``back``) restores the original."""

    def script(ex: Any, paper: PaperAccount) -> None:
        original = paper.venue.markets[VENUE_SYMBOL].tiers
        steps: list[TierTable] = [RAISED, original] if back else [RAISED]
        ex.preview(SYMBOL, "market", "buy", 0.01)  # the first order path reads the ladder
        ex.fetch_funding_rate(SYMBOL)
        for table in steps:
            paper.venue.set_tiers(VENUE_SYMBOL, table)
            paper.advance(60)
            ex.preview(SYMBOL, "market", "buy", 0.01)  # the order path re-reads the ladder
            ex.fetch_funding_rate(SYMBOL)

    return script


def test_a_tier_table_that_changes_back_and_forth_warns_a_single_change_does_not(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    config = {"flapping_changes": 2}
    assert "PARAMETER_FLAPPING" not in names(
        run(accounts, tmp_path, config, tiers_flapping(False))[0]
    )
    fired, _, metrics = run(accounts, tmp_path, config, tiers_flapping(True))
    assert names(fired).count("PARAMETER_FLAPPING") == 1
    assert "tier table" in fired[names(fired).index("PARAMETER_FLAPPING")].message
    assert counted(metrics, "PARAMETER_FLAPPING") == 1


def long_with_stop(ex: Any, under: float) -> float:
    """A long of 0.5 BTC with its stop ``under`` (a share) under the mark, the account read
    back; returns the stop price."""
    ex.set_leverage(10, SYMBOL)
    ex.create_order(SYMBOL, "market", "buy", 0.5)
    mark = float(ex.fetch_funding_rate(SYMBOL)["markPrice"])
    stop: float = round(mark * (1.0 - under), 1)
    ex.create_order(
        SYMBOL, "STOP_MARKET", "sell", 0.5, None, {"stopPrice": stop, "reduceOnly": True}
    )
    ex.fetch_positions([SYMBOL])
    ex.fetch_balance()
    return stop


def thin_exit(measured: list[float]) -> Script:
    """A long of 0.5 BTC with its stop 0.2 % under the mark; then the book is read."""

    def script(ex: Any, paper: PaperAccount) -> None:
        stop = long_with_stop(ex, 0.002)
        paper.advance(1)
        book = ex.fetch_order_book(SYMBOL)
        mark = float(ex.fetch_funding_rate(SYMBOL)["markPrice"])
        measured.append(sum(size for price, size in book["bids"] if stop <= price <= mark) / 0.5)

    return script


def test_a_thin_book_between_the_mark_and_the_stop_warns_under_its_cover(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    measured: list[float] = []
    run(accounts, tmp_path, {"thin_book_cover": None}, thin_exit(measured))
    cover = measured[-1]
    assert cover > 0.0
    assert "THIN_BOOK" not in names(
        run(accounts, tmp_path, {"thin_book_cover": cover * 0.999}, thin_exit([]))[0]
    )
    fired, _, _ = run(accounts, tmp_path, {"thin_book_cover": cover * 1.001}, thin_exit([]))
    assert "THIN_BOOK" in names(fired)
    assert fired[names(fired).index("THIN_BOOK")].value == pytest.approx(cover, rel=1e-6)


def thin_to_liquidation(measured: list[float]) -> Script:
    """A 50x isolated long of 0.5 BTC with no stop: its exit is its liquidation, 2 % or so
    under the mark; the book between them is read, the venue's liquidation price kept."""

    def script(ex: Any, paper: PaperAccount) -> None:
        ex.set_margin_mode("isolated", SYMBOL)
        ex.set_leverage(50, SYMBOL)
        ex.create_order(SYMBOL, "market", "buy", 0.5)
        paper.advance(1)
        ex.fetch_balance()
        (position,) = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
        liquidation = float(position["liquidationPrice"])
        book = ex.fetch_order_book(SYMBOL, 1000)
        mark = float(ex.fetch_funding_rate(SYMBOL)["markPrice"])
        inside = sum(size for price, size in book["bids"] if liquidation <= price <= mark)
        measured.append(inside / 0.5)

    return script


def test_a_thin_book_between_the_mark_and_the_liquidation_warns_under_its_cover(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    measured: list[float] = []
    run(accounts, tmp_path, {"thin_book_cover": None}, thin_to_liquidation(measured))
    cover = measured[-1]
    assert cover > 0.0
    quiet = {"thin_book_cover": cover * 0.999, "mark_index_gap_pct": None}
    assert "THIN_BOOK" not in names(run(accounts, tmp_path, quiet, thin_to_liquidation([]))[0])
    over = {"thin_book_cover": cover * 1.001, "mark_index_gap_pct": None}
    fired, _, _ = run(accounts, tmp_path, over, thin_to_liquidation([]))
    assert "THIN_BOOK" in names(fired)
    warning = fired[names(fired).index("THIN_BOOK")]
    assert warning.value == pytest.approx(cover, rel=1e-6)
    assert "exit" in warning.message


def stale_book(ex: Any, paper: PaperAccount) -> None:
    """A long with its stop 3 % under the mark and the book read once; then the price falls
    2 % and only the mark is read again: the book held is from before the fall."""
    long_with_stop(ex, 0.03)
    ex.fetch_order_book(SYMBOL)
    paper.venue.spike(VENUE_SYMBOL, -2.0, 600)
    paper.advance(60)
    ex.fetch_funding_rate(SYMBOL)


def test_a_book_older_than_the_market_data_limit_is_not_judged_thin(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    fired, ex, _ = run(accounts, tmp_path, {"mark_index_gap_pct": 1.0}, stale_book)
    [position] = ex.fetch_positions([SYMBOL])
    assert float(position["contracts"]) == pytest.approx(0.5)  # the stop held
    assert "MARK_INDEX_GAP" in names(fired)  # the fall was seen on the fresh mark
    assert "THIN_BOOK" not in names(fired)


def test_the_liquidation_band_is_a_live_metric_ending_at_the_venues_liquidation_price(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    venue_says: list[float] = []

    def script(ex: Any, paper: PaperAccount) -> None:
        ex.set_margin_mode("isolated", SYMBOL)
        ex.set_leverage(20, SYMBOL)
        ex.create_order(SYMBOL, "market", "buy", 0.5)
        paper.advance(1)
        ex.fetch_balance()
        (position,) = [p for p in ex.fetch_positions([SYMBOL]) if p["contracts"]]
        venue_says.append(float(position["liquidationPrice"]))

    _, _, metrics = run(accounts, tmp_path, {}, script)

    def gauge(edge: str) -> float | None:
        return metrics.registry.get_sample_value(
            "safeguard_liquidation_band_price", {"symbol": SYMBOL, "edge": edge}
        )

    liquidation, warning = gauge("liquidation"), gauge("warning")
    assert liquidation is not None
    assert warning is not None
    assert liquidation == pytest.approx(venue_says[-1], rel=2e-3)
    mark = float(paper_mark(accounts[-1]))
    assert mark > warning > liquidation
    ratio = metrics.registry.get_sample_value("safeguard_margin_ratio", {"symbol": SYMBOL})
    assert ratio is not None
    assert 0.0 < ratio < 0.8


def paper_mark(paper: PaperAccount) -> float:
    return float(paper.venue.premium_index(VENUE_SYMBOL)["markPrice"])  # type: ignore[call-overload]


def funding_interval_flapping(hours: list[int]) -> Script:
    """The venue's fault plan moves BTCUSDT's funding interval through ``hours`` (one change a
    minute); the bot reads the interval (``fundingInfo``) and its mark every minute."""

    def script(ex: Any, paper: PaperAccount) -> None:
        paper.set_faults(
            {
                "rules": [
                    {
                        "kind": "set_funding_interval",
                        "symbol": VENUE_SYMBOL,
                        "hours": h,
                        "at_s": 60.0 * (i + 1) - 30.0,
                    }
                    for i, h in enumerate(hours)
                ]
            }
        )
        for _ in range(len(hours) + 1):
            ex.fetch_funding_interval(SYMBOL)
            ex.fetch_funding_rate(SYMBOL)
            paper.advance(60)

    return script


def test_a_funding_interval_that_changes_back_and_forth_warns_one_change_short_does_not(
    accounts: list[PaperAccount], tmp_path: Path
) -> None:
    # 8 h -> 4 h -> 8 h: two changes, back to where it was.
    fired, ex, metrics = run(
        accounts, tmp_path, {"flapping_changes": 2}, funding_interval_flapping([4, 8])
    )
    assert names(fired).count("PARAMETER_FLAPPING") == 1
    warning = fired[names(fired).index("PARAMETER_FLAPPING")]
    assert "funding interval" in warning.message
    assert counted(metrics, "PARAMETER_FLAPPING") == 1
    # The venue served what the guard read: the interval on fundingInfo, back at 8 h.
    assert ex.fetch_funding_interval(SYMBOL)["interval"] == "8h"
    # The same two changes under a threshold of three: quiet.
    quiet, _, _ = run(
        accounts, tmp_path, {"flapping_changes": 3}, funding_interval_flapping([4, 8])
    )
    assert "PARAMETER_FLAPPING" not in names(quiet)
    # And one change that does not come back is no flapping at two.
    once, _, _ = run(accounts, tmp_path, {"flapping_changes": 2}, funding_interval_flapping([4]))
    assert "PARAMETER_FLAPPING" not in names(once)
