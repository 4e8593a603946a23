"""What the guard knows of the account: the settings an order runs under, how old the view is,
what the kill-switch triggers see of it, and what the switch does to the venue on engage.

Each test runs real ccxt ``binanceusdm`` against the in-process mock venue.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.killswitch import run_ladder
from safeguard.killswitch._switch import SwitchState, TradingState
from safeguard.risk._outcome import Decision
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _mark(ex: Any) -> float:
    return float(ex.fetch_ticker(SYMBOL)["last"])


def _ladders_finish() -> None:
    """The ladder runs on its own thread, started by the engage: wait for it to end."""
    for thread in threading.enumerate():
        if thread.name == "safeguard-kill-ladder":
            thread.join(timeout=30)


def _resting(paper: PaperAccount) -> list[dict[str, Any]]:
    return [o for o in paper.orders(VENUE_SYMBOL) if o["status"] in ("NEW", "PARTIALLY_FILLED")]


# --- leverage and margin mode ----------------------------------------------------------------


def test_settings_made_by_another_client_reach_the_verdict(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # Another tool set the flat symbol to isolated 20x; fetch_positions does not list it.
    other = paper.client()
    other.load_markets()
    other.set_margin_mode("isolated", SYMBOL)
    other.set_leverage(20, SYMBOL)
    ex = paper.guarded(state_dir=tmp_path)
    ex.load_markets()
    stop = round(_mark(ex) * 0.93, 1)  # fine at 1x cross, beyond liquidation at isolated 20x
    params = {"stopLoss": {"triggerPrice": stop}}
    verdict = ex.preview(SYMBOL, "market", "buy", 0.05, None, params)
    assert verdict.decision is Decision.DENY
    assert Code.STOP_BEYOND_LIQUIDATION in {f.code for f in verdict.denials}
    with pytest.raises(errors.OrderDenied):
        ex.create_order(SYMBOL, "market", "buy", 0.05, None, params)
    assert paper.positions() == {}


def test_settings_changed_through_the_guard_are_known_at_once(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(state_dir=tmp_path)
    ex.load_markets()
    stop = round(_mark(ex) * 0.93, 1)
    params = {"stopLoss": {"triggerPrice": stop}}
    assert ex.preview(SYMBOL, "market", "buy", 0.05, None, params).decision is Decision.ALLOW
    ex.set_margin_mode("isolated", SYMBOL)
    ex.set_leverage(20, SYMBOL)
    verdict = ex.preview(SYMBOL, "market", "buy", 0.05, None, params)
    assert Code.STOP_BEYOND_LIQUIDATION in {f.code for f in verdict.denials}


def test_unknown_settings_deny_new_exposure(paper: PaperAccount, tmp_path: Path) -> None:
    ex = paper.guarded(Policy.build(retry={"max_attempts": 1}), state_dir=tmp_path)
    ex.load_markets()
    stop = round(_mark(ex) * 0.9, 1)
    paper.set_faults(
        {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/symbolConfig", "status": 503}]}
    )
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": stop}})
    assert denied.value.code == Code.MISSING_ACCOUNT
    assert paper.positions() == {}


# --- the engage ladder -----------------------------------------------------------------------


def test_engage_cancels_every_resting_order_at_the_venue(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(Policy.build(risk={"require_stop": False}), state_dir=tmp_path)
    ex.load_markets()
    ex.create_order(SYMBOL, "limit", "buy", 0.01, round(_mark(ex) * 0.97, 1))
    assert len(_resting(paper)) == 1
    ex.runtime.switch.engage("drawdown: stop everything")
    _ladders_finish()
    assert _resting(paper) == []


def test_engage_flattens_positions_when_the_policy_says_so(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(kill_switch={"flatten_on_engage": True})
    ex = paper.guarded(policy, state_dir=tmp_path)
    ex.load_markets()
    stop = round(_mark(ex) * 0.9, 1)
    ex.create_order(SYMBOL, "market", "buy", 0.05, None, {"stopLoss": {"triggerPrice": stop}})
    assert paper.positions() == {VENUE_SYMBOL: 0.05}
    ex.runtime.switch.engage("flatten everything")
    _ladders_finish()
    assert paper.positions() == {}
    assert _resting(paper) == []


def test_flatten_closes_hedge_mode_legs(paper: PaperAccount) -> None:
    raw = paper.client()
    raw.load_markets()
    raw.set_position_mode(True)
    raw.create_order(SYMBOL, "market", "buy", 0.05, None, {"positionSide": "LONG"})
    raw.create_order(SYMBOL, "market", "sell", 0.02, None, {"positionSide": "SHORT"})
    config = Policy.build(kill_switch={"flatten_on_engage": True}).kill_switch
    halted = SwitchState(TradingState.HALTED, "test", "MANUAL", "test", paper.clock.time())
    report = run_ladder(raw, config, halted, sleep=paper.advance)
    assert report.ok, report.outcomes
    assert [p for p in raw.fetch_positions() if p["contracts"]] == []


# --- how old the account view is ---------------------------------------------------------------


def test_an_account_view_whose_re_read_failed_denies_new_exposure(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(
        risk={"max_notional_per_account": 20_000},
        degradation={"min_samples": 100_000},
        retry={"max_attempts": 1},
    )
    ex = paper.guarded(policy, state_dir=tmp_path)
    ex.load_markets()
    stop = {"stopLoss": {"triggerPrice": round(_mark(ex) * 0.9, 1)}}
    assert ex.preview(SYMBOL, "market", "buy", 0.1, None, stop).decision is Decision.ALLOW
    other = paper.client()
    other.load_markets()
    other.create_order(SYMBOL, "market", "buy", 1.0)  # ~90,000 notional the guard never sees
    paper.set_faults(
        {
            "rules": [
                {"kind": "error", "endpoint": "GET /fapi/v3/positionRisk", "status": 503},
                {"kind": "error", "endpoint": "GET /fapi/v3/account", "status": 503},
            ]
        }
    )
    paper.advance(60)
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.1, None, stop)
    assert denied.value.code == Code.MISSING_ACCOUNT
    assert paper.positions() == {VENUE_SYMBOL: 1.0}


# --- the triggers see what the bot reads -------------------------------------------------------


def test_a_crash_trips_the_drawdown_trigger_while_the_bot_only_reads(
    paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(
        kill_switch={"triggers": {"max_drawdown_pct": 5.0}}, risk={"max_leverage": 50}
    )
    ex = paper.guarded(policy, state_dir=tmp_path, triggers=True)
    ex.load_markets()
    ex.set_leverage(20, SYMBOL)
    stop = round(_mark(ex) * 0.97, 1)
    ex.create_order(SYMBOL, "market", "buy", 1.0, None, {"stopLoss": {"triggerPrice": stop}})
    paper.set_faults({"rules": [{"kind": "spike", "symbol": VENUE_SYMBOL, "pct": -4,
                                 "duration_s": 600}]})  # fmt: skip
    for _ in range(6):  # the bot polls its account and prices; it places no order
        paper.advance(10)
        ex.fetch_balance()
        ex.fetch_positions([SYMBOL])
        ex.fetch_ticker(SYMBOL)
    state = ex.runtime.switch.state
    assert state.state is TradingState.HALTED
    assert state.code == Code.DRAWDOWN


def test_two_accounts_on_one_state_dir_keep_their_own_equity_peak(tmp_path: Path) -> None:
    policy = Policy.build(kill_switch={"triggers": {"max_drawdown_pct": 5.0}})
    rich = paper_account(wallet=10_000, api_key="rich-key-0123456789")
    small = paper_account(wallet=5_000, api_key="small-key-0123456789")
    try:
        peaks = []
        for paper in (rich, small):
            ex = paper.guarded(policy, state_dir=tmp_path, triggers=True)
            ex.fetch_positions()
            ex.fetch_balance()
            assert ex.runtime.switch.state.state is TradingState.ACTIVE
            peaks.append(ex.runtime.core.gate.tripwire.monitor.marks.peak)
        assert peaks == [10_000, 5_000]
    finally:
        rich.close()
        small.close()


def test_a_switch_failing_closed_on_its_store_leaves_the_orders_resting(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(Policy.build(risk={"require_stop": False}), state_dir=tmp_path)
    ex.load_markets()
    ex.create_order(SYMBOL, "limit", "buy", 0.01, round(_mark(ex) * 0.97, 1))
    switch = ex.runtime.switch
    switch.store.state_path.write_text("{ not json")
    switch.refresh()
    _ladders_finish()
    assert switch.state.state is TradingState.HALTED
    assert switch.state.code == Code.STATE_STORE_UNAVAILABLE
    assert len(_resting(paper)) == 1


async def test_engage_cancels_resting_orders_for_an_async_exchange(tmp_path: Path) -> None:
    paper = paper_account(wallet=10_000)
    try:
        ex = paper.guarded(
            Policy.build(risk={"require_stop": False}), state_dir=tmp_path, asyncio=True
        )
        await ex.load_markets()
        mark = float((await ex.fetch_ticker(SYMBOL))["last"])
        await ex.create_order(SYMBOL, "limit", "buy", 0.01, round(mark * 0.97, 1))
        assert len(_resting(paper)) == 1
        ex.runtime.switch.engage("stop everything")
        for _ in range(500):  # the ladder runs as a task on this loop: let it
            if not _resting(paper):
                break
            await asyncio.sleep(0.01)
        assert _resting(paper) == []
    finally:
        await paper.aclose()
