"""A symbol's funding interval changing at run time, as Binance moves a symbol between 8, 4 and
1 hours: served on ``fundingInfo`` and as the next funding time on ``premiumIndex`` and the
markPrice stream, read by an unmodified ccxt."""

from __future__ import annotations

import pytest

from safeguard.testing import paper_account
from safeguard.testing._paper import DEFAULT_START
from safeguard.venue._faults import FaultPlan

BTC = "BTC/USDT:USDT"


def test_fundinginfo_and_the_next_funding_time_follow_a_new_interval() -> None:
    paper = paper_account()
    try:
        client = paper.client()
        assert client.fetch_funding_interval(BTC)["interval"] == "8h"
        now_ms = int(paper.clock.time() * 1000)
        eight = client.fetch_funding_rate(BTC)["fundingTimestamp"]
        assert eight % (8 * 3_600_000) == 0
        paper.venue.set_funding_interval("BTCUSDT", 1)
        assert client.fetch_funding_interval(BTC)["interval"] == "1h"
        one = client.fetch_funding_rate(BTC)["fundingTimestamp"]
        # The next whole hour, not the next 8-hour boundary.
        assert one % 3_600_000 == 0
        assert now_ms < one <= now_ms + 3_600_000
        # Funding is paid on the new schedule: an hour later one payment is in the history.
        paper.advance(3600)
        assert client.fetch_funding_rate_history(BTC)[-1]["timestamp"] == one
    finally:
        paper.close()


def test_the_fault_plan_changes_it_on_schedule() -> None:
    paper = paper_account(
        faults={
            "rules": [{"kind": "set_funding_interval", "symbol": "BTCUSDT", "hours": 4, "at_s": 60}]
        }
    )
    try:
        client = paper.client()
        assert client.fetch_funding_interval(BTC)["interval"] == "8h"
        paper.advance(61)
        assert client.fetch_funding_interval(BTC)["interval"] == "4h"
    finally:
        paper.close()


@pytest.mark.parametrize("hours", [0, 25, 1.5, True])
def test_an_interval_that_is_not_whole_hours_in_a_day_is_refused(hours: object) -> None:
    paper = paper_account()
    try:
        with pytest.raises(ValueError, match="whole number of hours"):
            paper.venue.set_funding_interval("BTCUSDT", hours)  # type: ignore[arg-type]
    finally:
        paper.close()
    with pytest.raises(ValueError, match="hours"):
        FaultPlan.model_validate(
            {"rules": [{"kind": "set_funding_interval", "symbol": "BTCUSDT", "hours": hours}]}
        )


def test_a_funding_time_already_reached_is_still_paid_when_the_interval_changes() -> None:
    # The clock stands on 08:00 but the step grid (every 5 s from 07:59:29) has not reached
    # it: 08:00's funding is due and unsettled when the venue moves the symbol to 4 hours.
    eight = DEFAULT_START + 8 * 3600.0
    paper = paper_account(start=eight - 31.0)
    try:
        client = paper.client()
        client.create_order(BTC, "market", "buy", 0.01)
        paper.advance(31.0)
        assert paper.clock.time() == eight
        paper.venue.set_funding_interval("BTCUSDT", 4)
        paper.advance(4 * 3600.0 + 10.0)
        paid = [row["timestamp"] for row in client.fetch_funding_rate_history(BTC)]
        assert paid[-2:] == [int(eight * 1000), int((eight + 4 * 3600.0) * 1000)]
        income = client.fetch_funding_history(BTC)
        assert [row["timestamp"] for row in income] == paid[-2:]
    finally:
        paper.close()
