"""guard(exchange, policy) with ``fleet.redis_url`` set is a fleet member: an engage made by
another process on the same policy (``safeguard kill --policy``) stops its orders."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.fleet._redis_store import open_fleet_switch
from safeguard.guard import guard
from safeguard.testing import paper_account, strip_attached_stops
from tests.guard.test_guard_failure_releases import corrupt_equity_marks

pytestmark = pytest.mark.redis

SYMBOL = "BTC/USDT:USDT"


def test_guard_on_a_fleet_policy_obeys_the_fleet_switch(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    policy = Policy.build(
        fleet={"redis_url": redis_url, "key_prefix": prefix},
        kill_switch={"state_dir": str(tmp_path / "state")},
    )
    paper = paper_account(wallet=10_000)
    ex = guard(strip_attached_stops(paper.client()), policy, clock=paper.clock)
    operator, store = open_fleet_switch(policy, clock=paper.clock)
    try:
        ex.load_markets()
        stop = round(float(ex.fetch_ticker(SYMBOL)["last"]) * 0.9, 1)
        operator.engage("stop the fleet", by="operator")
        with pytest.raises(errors.TradingHalted):
            ex.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLoss": stop})
        assert paper.positions() == {}
    finally:
        operator.close()
        store.close()
        ex.runtime.switch.close()
        paper.close()


def test_a_failing_guard_on_a_fleet_policy_closes_the_fleet_parts_it_opened(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    policy = Policy.build(
        fleet={"redis_url": redis_url, "key_prefix": prefix},
        kill_switch={"state_dir": str(tmp_path / "state")},
    )
    paper = paper_account(wallet=10_000)
    try:
        before = set(threading.enumerate())
        corrupt_equity_marks(tmp_path / "state", paper.api_key)
        for _ in range(3):
            with pytest.raises(errors.ConfigError, match="equity-binanceusdm"):
                guard(paper.client(), policy, clock=paper.clock, triggers=True)
        leaked = [t.name for t in set(threading.enumerate()) - before if t.is_alive()]
        assert leaked == []
    finally:
        paper.close()
