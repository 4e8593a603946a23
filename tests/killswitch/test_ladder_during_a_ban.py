"""The engage ladder runs on the raw exchange, but not past the rate budget: during a venue
ban (418) the venue refuses everything and each request risks a longer ban, so the ladder waits
for the ban's end (reporting it) and then cancels; otherwise it spends the budget's cancel
reserve like any cancel."""

from __future__ import annotations

from pathlib import Path

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._pacing import ladder_pace
from safeguard.killswitch._ladder import run_ladder
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.testing import PaperAccount

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


def test_the_ladder_waits_out_a_venue_ban_then_cancels(
    funded_paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(
        risk={"require_stop": False},
        kill_switch={
            "state_dir": str(tmp_path / "state"),
            "watch_state_file": False,
            "cancel_all_on_engage": True,
        },
    )
    switch = KillSwitch(policy.kill_switch, clock=funded_paper.clock, watch=False)
    raw = funded_paper.client()
    ex = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=funded_paper.clock,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
        sleep=lambda s: funded_paper.advance(s) or False,
        ladder=False,
    )
    try:
        price = round(float(ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
        ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
        funded_paper.set_faults(
            {"rules": [{"kind": "ban", "endpoint": "GET /fapi/v1/ticker/24hr"}]}
        )
        with pytest.raises(errors.VenueBanned) as banned:
            ex.fetch_ticker(SYMBOL)
        funded_paper.set_faults({"rules": []})
        ban_ends = banned.value.until

        slept: list[float] = []

        def sleep(seconds: float) -> None:
            slept.append(seconds)
            funded_paper.advance(seconds)

        started = funded_paper.clock.time()
        report = run_ladder(
            raw,
            policy.kill_switch,
            TradingState.HALTED,
            sleep=sleep,
            clock=funded_paper.clock,
            pace=ladder_pace(ex.runtime.core.pacer.budget),
        )
        # Nothing fired into the ban: the first wait ran to its end, then every rung worked.
        assert slept[0] == pytest.approx(ban_ends - started)
        assert funded_paper.clock.time() >= ban_ends
        assert report.ok, report.outcomes
        assert [o["status"] for o in funded_paper.orders(VENUE_SYMBOL)] == ["CANCELED"]
    finally:
        ex.runtime.core.journal.close()
        switch.close()
