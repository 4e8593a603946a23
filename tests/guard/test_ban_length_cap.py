"""A 418's ban length comes from the venue's message or its Retry-After header. A garbled or
absurd value must not ban the bot for years (until an operator clears the file): the guard
caps it at Binance's longest ban, three days, and says so loudly."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard._log import logger
from safeguard.guard import guard
from safeguard.guard._classify import MAX_BAN_S
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount

SYMBOL = "BTC/USDT:USDT"
THREE_DAYS = 3 * 24 * 3600.0


def _guarded(funded_paper: PaperAccount, tmp: Path) -> Any:
    policy = Policy.build(
        risk={"require_stop": False},
        kill_switch={"state_dir": str(tmp / "state"), "watch_state_file": False},
    )
    switch = KillSwitch(policy.kill_switch, clock=funded_paper.clock, watch=False)
    return guard(
        funded_paper.client(),
        policy,
        kill_switch=switch,
        clock=funded_paper.clock,
        journal_path=tmp / "orders.jsonl",
        durable_journal=False,
        sleep=lambda s: funded_paper.advance(s) or False,
        ladder=False,
    )


@pytest.mark.parametrize(
    "rule",
    [
        pytest.param({"msg": "IP banned until 99999999999999."}, id="until-in-the-message"),
        pytest.param({"msg": "banned", "retry_after_s": 10**12}, id="retry-after-header"),
    ],
)
def test_an_absurd_ban_length_is_capped_at_three_days(
    funded_paper: PaperAccount, tmp_path: Path, rule: dict[str, Any]
) -> None:
    assert MAX_BAN_S == THREE_DAYS
    ex = _guarded(funded_paper, tmp_path)
    ex.load_markets()
    error = {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 418, "count": 1}
    funded_paper.set_faults({"rules": [{**error, "code": -1003, **rule}]})
    now = funded_paper.clock.time()
    loud: list[str] = []
    sink = logger.add(lambda message: loud.append(message.record["message"]), level="ERROR")
    try:
        with pytest.raises(errors.VenueBanned) as banned:
            ex.fetch_ticker(SYMBOL)
    finally:
        logger.remove(sink)
    assert now < banned.value.until <= now + THREE_DAYS
    persisted = json.loads((tmp_path / "state" / "bans.json").read_text())["bans"]
    assert persisted
    assert all(now < until <= now + THREE_DAYS for until in persisted.values())
    # The later refusal names the same capped end, and a bot waits that out, not years.
    with pytest.raises(errors.VenueBanned) as again:
        ex.fetch_ticker(SYMBOL)
    assert again.value.until <= now + THREE_DAYS
    assert any("capped at 3 days" in line for line in loud), loud


def test_a_ban_the_state_directory_cannot_record_still_holds_and_raises_venue_banned(
    tmp_path: Path,
) -> None:
    """The ban file cannot be written (a full disk; here its lock file's path is taken by a
    directory): the 418 still ends the call with VenueBanned, never a bare OSError, and the
    ban holds in memory, so nothing more is sent to the venue until it ends."""
    from safeguard.testing import paper_account

    account = paper_account()
    try:
        exchange = account.guarded(state_dir=tmp_path)
        exchange.load_markets()
        (tmp_path / "bans.lock").mkdir()
        account.set_faults({"rules": [{"kind": "ban", "count": 1}]})
        with pytest.raises(errors.VenueBanned):
            exchange.fetch_ticker("BTC/USDT:USDT")
        account.clear_faults()
        with pytest.raises(errors.VenueBanned, match="not sent"):
            exchange.fetch_ticker("BTC/USDT:USDT")
    finally:
        account.close()
