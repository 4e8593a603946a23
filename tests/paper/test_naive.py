"""The naive client on the real in-process venue: what blind retries do to an order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard.paper._journal import JournalWriter, read_journal
from safeguard.paper._naive import NaiveClient
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client

KEY, SECRET = "naive-key-0123456789", "naive-secret-0123456789abcdef"


def _naive(tmp: Path, rules: list[dict[str, Any]], **options: Any) -> tuple[Any, Venue, Path]:
    clock = ManualClock(1_767_225_600.0)
    venue = Venue(VenueConfig(symbols=("BTCUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=10_000.0)
    dialect = Dialect(venue, faults=FaultPlan.parse({"rules": rules}))
    raw = inprocess_client(dialect, KEY, SECRET)
    writer = JournalWriter(tmp / "journal.jsonl")
    client = NaiveClient(
        raw, clock=clock, sleep=venue.advance, journal=writer.for_run("naive"), **options
    )
    return client, venue, writer.path


def test_a_lost_answer_makes_the_naive_client_place_the_order_twice(tmp_path: Path) -> None:
    lost = {
        "kind": "error",
        "endpoint": "POST /fapi/v1/order",
        "status": 503,
        "processed": True,
        "count": 1,
    }
    client, venue, _ = _naive(tmp_path, [lost])
    client.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    orders = venue.all_orders(KEY, symbol="BTCUSDT")
    assert len(orders) == 2  # the venue took the first one; its answer was a 503
    assert float(venue.position_risk(KEY, "BTCUSDT")[0]["positionAmt"]) == pytest.approx(0.02)


def test_every_attempt_is_journaled_and_the_last_error_is_raised(tmp_path: Path) -> None:
    always = {"kind": "error", "endpoint": "GET /fapi/v1/premiumIndex", "status": 502}
    client, venue, path = _naive(tmp_path, [always], attempts=3, delay_s=2.0)
    started = venue.clock.time()
    with pytest.raises(ccxt.OperationFailed):
        client.fetch_funding_rate("BTC/USDT:USDT")
    assert venue.clock.time() - started == pytest.approx(4.0)  # two fixed pauses, simulated
    client._journal.writer.close()
    records = list(read_journal(path))
    assert [r["kind"] for r in records] == ["request", "retry", "request", "retry", "request"]
    assert all(r["outcome"] == "error" for r in records if r["kind"] == "request")


def test_hammering_through_429s_earns_a_ban(tmp_path: Path) -> None:
    trickle = {"kind": "throttle", "weight_per_minute": 2}
    client, _, path = _naive(tmp_path, [trickle], attempts=8, delay_s=0.5)
    with pytest.raises(ccxt.DDoSProtection, match="banned until"):
        client.fetch_positions(["BTC/USDT:USDT"])
    client._journal.writer.close()
    actions = [r["action"] for r in read_journal(path) if r["kind"] == "throttle"]
    assert "418" in actions
    assert actions.count("418") == 1  # one ban, however many refusals it answered
    assert actions[0] == "429"


def test_pure_helpers_pass_through_untouched(tmp_path: Path) -> None:
    client, _, _ = _naive(tmp_path, [])
    client.load_markets()
    assert client.amount_to_precision("BTC/USDT:USDT", 0.12345) == "0.123"
    assert client.id == "binanceusdm"


@pytest.mark.parametrize(("name", "value"), [("attempts", 0), ("attempts", True), ("delay_s", -1)])
def test_bad_options_are_refused(tmp_path: Path, name: str, value: Any) -> None:
    with pytest.raises(ValueError, match=name):
        _naive(tmp_path, [], **{name: value})
