"""Cancels and reduce-only orders spend the reserve, as the guard labels them.

The budget's classes are tested on the budget (tests/guard/test_throttle.py). What only the
guard decides is which class a ccxt call is: here a guarded ``cancel_order`` and a reduce-only
``create_order`` meet a budget the venue reports at 96% used (past the 5% reserve that opening
orders and reads must leave), and go at once, while a read is held and an opening order waits
for the window to roll. Every wait the guard makes is recorded (simulated time: a wait moves
the venue's clock by exactly what the guard asked for).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
WEIGHT_PER_MINUTE = 200
ORDERS_PER_10S = 20


@dataclass
class Rig:
    account: PaperAccount
    exchange: Any
    budget: RateBudget
    waits: list[float] = field(default_factory=list)

    def fill_weight(self, share: float) -> None:
        """The venue says this share of the minute's request weight is used."""
        used = str(int(share * WEIGHT_PER_MINUTE))
        self.budget.observe({"X-MBX-USED-WEIGHT-1M": used}, self.account.clock.time())

    def fill_orders(self, share: float) -> None:
        """The venue says this share of the 10-second order count is used."""
        used = str(int(share * ORDERS_PER_10S))
        self.budget.observe({"X-MBX-ORDER-COUNT-10S": used}, self.account.clock.time())


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    account = paper_account(wallet=100_000.0)
    policy = sandbox_policy(
        tmp_path,
        Policy.build(
            risk={"require_stop": False},
            throttle={
                "weight_limit_per_minute": WEIGHT_PER_MINUTE,
                "orders_per_10s": ORDERS_PER_10S,
                "reserve_fraction": 0.05,
                "hard_threshold": 0.9,
            },
        ),
    )
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
    budget = RateBudget.standalone(policy.throttle)
    waits: list[float] = []

    def sleep(seconds: float) -> bool:
        waits.append(seconds)
        account.advance(seconds)
        return False

    exchange = guard(
        account.client(),
        policy,
        kill_switch=switch,
        clock=account.clock,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
        budget=budget,
        sleep=sleep,
    )
    exchange.load_markets()
    yield Rig(account, exchange, budget, waits)
    exchange.runtime.core.journal.close()
    switch.close()
    account.close()


def _resting_buy(rig: Rig) -> dict[str, Any]:
    mark = float(rig.exchange.fetch_ticker(SYMBOL)["last"])
    return dict(rig.exchange.create_order(SYMBOL, "limit", "buy", 0.01, round(mark * 0.97, 1)))


def test_a_guarded_cancel_spends_the_reserve_at_96_percent(rig: Rig) -> None:
    order = _resting_buy(rig)
    rig.fill_weight(0.96)
    rig.waits.clear()
    cancelled = rig.exchange.cancel_order(order["id"], SYMBOL)
    assert rig.waits == []  # sent at once
    assert cancelled["status"] == "canceled"
    assert [o["status"] for o in rig.account.orders(VENUE_SYMBOL)] == ["CANCELED"]


def test_at_96_percent_a_plain_read_is_held(rig: Rig) -> None:
    # The contrast that shows the budget really is past the reserve for everything else.
    rig.fill_weight(0.96)
    rig.waits.clear()
    with pytest.raises(errors.ThrottleHold):
        rig.exchange.fetch_ticker(SYMBOL)
    assert rig.waits == []


def test_a_guarded_reduce_only_order_spends_the_reserve_at_95_percent(rig: Rig) -> None:
    rig.exchange.create_order(SYMBOL, "market", "buy", 0.01)
    rig.exchange.fetch_positions([SYMBOL])  # the verdict of the close then needs no read
    rig.fill_orders(0.95)
    rig.waits.clear()
    closed = rig.exchange.create_order(SYMBOL, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert rig.waits == []
    assert closed["status"] == "closed"
    assert rig.account.positions() == {}


def test_at_95_percent_an_opening_order_waits_for_the_window(rig: Rig) -> None:
    rig.fill_orders(0.95)
    rig.waits.clear()
    opened = rig.exchange.create_order(SYMBOL, "market", "buy", 0.01)
    assert opened["status"] == "closed"
    assert sum(rig.waits) > 0  # it waited for the 10-second window to roll
    assert sum(rig.waits) <= 10.0 + rig.budget.config.window_skew_s
