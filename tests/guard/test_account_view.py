"""What the guard knows of the account: the settings an order runs under, how old the view is,
what the kill-switch triggers see of it, and what the switch does to the venue on engage.

Each test runs real ccxt ``binanceusdm`` against the in-process mock venue.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import errors
from safeguard.codes import Code
from safeguard.config import Policy
from safeguard.risk.outcome import Decision
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _mark(ex: Any) -> float:
    return float(ex.fetch_ticker(SYMBOL)["last"])


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
