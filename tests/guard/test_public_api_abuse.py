"""The guard tried through its public API as a careless or hostile user would.

Real ``ccxt.binanceusdm`` on the mock venue (:func:`safeguard.testing.paper_account`); the
venue's own order book and the state directory on disk are the ground truth.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from safeguard import errors
from safeguard.codes import Code
from safeguard.config import Policy
from safeguard.killswitch.switch import TradingState
from safeguard.risk.outcome import Decision, Verdict
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
ETH = "ETH/USDT:USDT"


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)
    yield paper
    paper.close()


@pytest.fixture
def ex(account: PaperAccount) -> Any:
    guarded = account.guarded(Policy.build(risk={"max_leverage": 10, "require_stop": False}))
    guarded.set_leverage(5, SYMBOL)
    return guarded


# --- preview answers what create_order would do --------------------------------------------


@pytest.mark.parametrize(
    ("state", "code"),
    [(TradingState.HALTED, Code.TRADING_HALTED), (TradingState.REDUCING, Code.TRADING_REDUCING)],
)
def test_preview_reports_the_kill_switch_refusal_create_order_would_raise(
    account: PaperAccount, ex: Any, state: TradingState, code: Code
) -> None:
    assert ex.preview(SYMBOL, "market", "buy", 0.01).allowed  # the order itself is fine
    ex.runtime.switch.engage("operator: stop", by="test", state=state)

    verdict = ex.preview(SYMBOL, "market", "buy", 0.01)

    assert isinstance(verdict, Verdict)
    assert verdict.decision is Decision.DENY
    assert verdict.codes == (code,)
    assert verdict.max_safe_amount == 0.0
    assert "operator: stop" in verdict.denials[0].message
    with pytest.raises(errors.TradingHalted) as refused:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert refused.value.code == code
    assert account.orders(VENUE_SYMBOL) == []


def test_preview_of_a_reduce_only_order_while_reducing_is_judged_normally(ex: Any) -> None:
    ex.runtime.switch.engage("operator: reduce", by="test", state=TradingState.REDUCING)
    verdict = ex.preview(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert Code.TRADING_REDUCING not in verdict.codes
    assert Code.TRADING_HALTED not in verdict.codes
