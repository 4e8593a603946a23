"""``require_stress_survival`` through the guard, against the mock venue (BTC near 90,000)."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import paper_account

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"


def test_the_guard_refuses_an_order_the_account_would_not_survive(tmp_path: Path) -> None:
    account = paper_account(wallet=20_000.0)
    policy = Policy.build(risk={"require_stress_survival": True, "require_stop": False})
    exchange = account.guarded(policy, state_dir=tmp_path)
    # 1.5 BTC near 90,000 on 20,000: a 15 % fall loses about 20,250, a 20 % one about 27,000.
    with pytest.raises(errors.OrderDenied) as denied:
        exchange.create_order(BTC, "market", "buy", 1.5)
    assert denied.value.code == Code.STRESS_GRID_BREACH
    assert "-15 % move" in str(denied.value)
    assert account.orders() == []
    # Without the policy the same order is allowed: the grid is what refused it.
    free = paper_account(wallet=20_000.0).guarded(
        Policy.build(risk={"require_stop": False}), state_dir=tmp_path / "free"
    )
    assert free.preview(BTC, "market", "buy", 1.5).allowed
    # A second symbol held: its close is priced on the book the guard fetched to trade it.
    exchange.create_order(ETH, "market", "buy", 1.0)
    small = exchange.preview(BTC, "market", "buy", 0.05)
    assert small.allowed, small.findings
