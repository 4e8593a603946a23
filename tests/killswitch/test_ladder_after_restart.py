"""An engagement saved before its ladder ran still gets its ladder.

The process that engages saves the state, then runs the ladder (cancel what could add
exposure, flatten). A process that dies between the two, or restarts while the switch is
engaged, finds the engagement in the store when it comes back: the switch starts engaged and
nothing changes, so a ladder attached then must run for the engagement it finds, once. A
switch that starts HALTED because its store is unreadable (nobody decided it) runs no ladder
through ``guard()``: flattening on a network blip would do the harm the switch exists to stop.

Real ccxt against the in-process mock venue; real state files; every wait is for an event.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig, Policy
from safeguard.killswitch._ladder import LadderReport, attach_ladder
from safeguard.killswitch._state import TradingState
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import paper_account, sandbox_policy
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._inprocess import inprocess_client

ETH, BTC = "ETH/USDT:USDT", "BTC/USDT:USDT"
HANG_S = 120.0
"""Only a hang waits this long: every wait ends on an event."""


def _ladders() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "safeguard-kill-ladder"]


def _book(exchange: Any) -> None:
    """A long ETH position and a resting ETH entry (a buy limit below the touch)."""
    exchange.load_markets()
    exchange.create_order(ETH, "market", "buy", 1.0)
    last = exchange.fetch_ticker(ETH)["last"]
    exchange.create_order(ETH, "limit", "buy", 0.5, round(last * 0.9, 2))


def _open_positions(exchange: Any) -> list[Any]:
    return [p for p in exchange.fetch_positions() if p["contracts"]]


def test_a_ladder_attached_after_a_restart_runs_for_the_engagement_it_finds(
    tmp_path: Path,
) -> None:
    venue = Venue(VenueConfig(symbols=("ETHUSDT", "BTCUSDT")), clock=ManualClock(1.7e9))
    venue.create_account("key", "secret", wallet=50_000.0)
    exchange = inprocess_client(venue, "key", "secret")
    _book(exchange)
    config = KillSwitchConfig(state_dir=tmp_path, flatten_on_engage=True)
    # The process that engaged saved HALTED and died before its ladder ran.
    KillSwitch(config, watch=False).engage("drawdown", by="trigger", code=Code.DRAWDOWN)

    reports: queue.Queue[LadderReport] = queue.Queue()
    with KillSwitch(config, watch=False) as restarted:
        assert restarted.state.state is TradingState.HALTED
        attach_ladder(restarted, exchange, on_report=reports.put)
        try:
            report = reports.get(timeout=HANG_S)
        except queue.Empty:
            raise AssertionError("the engagement found at start never got its ladder") from None
        restarted.refresh()  # the same engagement, seen again: no second run
    for ladder in _ladders():  # a second run, had one started, reports before this ends
        ladder.join(HANG_S)
    assert report.ok
    assert reports.empty()
    assert exchange.fetch_open_orders(ETH) == []
    assert _open_positions(exchange) == []


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False})


def test_a_guard_built_on_a_saved_engagement_cancels_what_could_add_exposure(
    tmp_path: Path,
) -> None:
    paper = paper_account(wallet=10_000)
    try:
        raw = paper.client()
        _book(raw)
        # The bot engaged (a trigger), saved HALTED and was killed before its ladder ran.
        died = KillSwitch(sandbox_policy(tmp_path, _policy()).kill_switch, watch=False)
        died.engage("drawdown", by="trigger", code=Code.DRAWDOWN)
        assert len(raw.fetch_open_orders(ETH)) == 1

        restarted = paper.guarded(_policy(), state_dir=tmp_path)  # the bot comes back

        assert restarted.runtime.switch.state.state is TradingState.HALTED
        for ladder in _ladders():  # started by guard(), on a thread of its own
            ladder.join(HANG_S)
        assert raw.fetch_open_orders(ETH) == [], "the resting entry was never cancelled"
        assert len(_open_positions(raw)) == 1  # flatten_on_engage is off: the position stays
    finally:
        paper.close()


def test_a_guard_built_on_an_unreadable_state_runs_no_ladder(tmp_path: Path) -> None:
    paper = paper_account(wallet=10_000)
    try:
        raw = paper.client()
        _book(raw)
        (tmp_path / "state.json").write_text("{not json")

        restarted = paper.guarded(_policy(), state_dir=tmp_path)

        state = restarted.runtime.switch.state
        assert (state.state, state.code) == (TradingState.HALTED, Code.STATE_STORE_UNAVAILABLE)
        # A ladder runs on a thread of its own started by guard(): none is running, and none
        # ran (it would have cancelled the entry).
        assert _ladders() == []
        assert len(raw.fetch_open_orders(ETH)) == 1
    finally:
        paper.close()
