"""A feed whose prices freeze while its timestamps run on is stale, however fresh it looks.

The mock venue's ``freeze_feed`` fault (mode ``stale_prices``, the default) keeps publishing the
prices of the moment it froze, stamped with the current time, while trading goes on at the real
ones: the guard once judged 90,009 "0 ms old" while the venue traded at 85,496. The guard now
tracks how long each published price (mark, last, book mid) has stood still and compares that
with the move its volatility predicts (:mod:`safeguard.risk._freshness`): the verdict denies new
exposure as STALE_MARKET_DATA, and the stale-data trigger counts the feed as old from when its
prices stopped.

Real ccxt ``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._core import Answer, Send
from safeguard.guard._events import Hooks
from safeguard.guard._gate import PreTradeGate
from safeguard.guard._market import MarketCache
from safeguard.guard._observe import AlwaysNormal
from safeguard.guard._tripwire import TripWire
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.killswitch._triggers import RiskMonitor
from safeguard.risk._outcome import Decision
from safeguard.testing import PaperAccount, paper_account, sandbox_policy

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
FREEZE = {"rules": [{"kind": "freeze_feed", "symbol": VENUE_SYMBOL}]}  # stale_prices


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    account.advance(6 * 3600)  # a day's range to measure volatility on
    yield account
    account.close()


def _policy(**triggers: Any) -> Policy:
    return Policy.build(
        risk={"require_stop": False},
        kill_switch={"triggers": {"max_orders_per_window": None, **triggers}},
        degradation={"min_samples": 100_000},
    )


def _stale(verdict: Any) -> list[str]:
    return [f.message for f in verdict.denials if f.code == Code.STALE_MARKET_DATA]


def test_prices_frozen_under_fresh_timestamps_deny_new_exposure(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    assert ex.preview(SYMBOL, "market", "buy", 0.01).decision is Decision.ALLOW
    paper.set_faults(FREEZE)
    ex.fetch_ticker(SYMBOL)  # the freeze takes effect with the venue's next answer
    denied_after = None
    for second in range(5, 61, 5):
        paper.advance(5)
        verdict = ex.preview(SYMBOL, "market", "buy", 0.01)
        if verdict.decision is Decision.DENY:
            denied_after = second
            break
        assert verdict.decision is Decision.ALLOW
    assert denied_after is not None
    assert denied_after <= 30
    assert any("has not moved" in message for message in _stale(verdict))
    # The timestamps alone look fresh: what gave it away is the price standing still.
    ticker = ex.fetch_ticker(SYMBOL)
    assert abs(ticker["timestamp"] / 1000 - paper.clock.time()) < 1.0


def test_a_frozen_feed_the_bot_only_polls_trips_the_stale_data_trigger(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(max_data_age_s=60.0), state_dir=tmp_path, triggers=True)
    ex.load_markets()
    paper.set_faults(FREEZE)
    ex.fetch_ticker(SYMBOL)
    for _ in range(24):  # two minutes of polling the price
        paper.advance(5)
        ex.fetch_ticker(SYMBOL)
        if ex.runtime.switch.state.state is not TradingState.ACTIVE:
            break
    state = ex.runtime.switch.state
    assert (state.state, state.code) == (TradingState.HALTED, Code.STALE_MARKET_DATA)
    assert paper.clock.time() - state.since <= 90.0


def test_a_live_feed_is_never_taken_for_a_frozen_one(paper: PaperAccount, tmp_path: Path) -> None:
    ex = paper.guarded(_policy(max_data_age_s=60.0), state_dir=tmp_path, triggers=True)
    ex.load_markets()
    for _ in range(12 * 60):  # an hour of a bot that previews every five seconds
        paper.advance(5)
        assert _stale(ex.preview(SYMBOL, "market", "buy", 0.01)) == []
    assert ex.runtime.switch.state.state is TradingState.ACTIVE


def test_a_host_clock_behind_the_venue_does_not_hide_a_frozen_feed(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # The host clock was stepped an hour back: every venue stamp now reads as the future.
    policy = sandbox_policy(tmp_path, _policy(max_data_age_s=60.0))
    host = ManualClock(paper.clock.time() - 3600.0)
    switch = KillSwitch(policy.kill_switch, clock=host, watch=False)
    ex = guard(paper.client(), policy, kill_switch=switch, clock=host, triggers=True,
               durable_journal=False, ladder=False)  # fmt: skip
    try:
        ex.load_markets()
        paper.set_faults(FREEZE)
        ex.fetch_ticker(SYMBOL)
        for _ in range(24):
            paper.advance(5)
            host.advance(5)
            ex.fetch_ticker(SYMBOL)
        assert (switch.state.state, switch.state.code) == (
            TradingState.HALTED,
            Code.STALE_MARKET_DATA,
        )
    finally:
        ex.runtime.core.journal.close()
        switch.close()


@pytest.mark.parametrize(
    ("method", "args", "broken"),
    [
        ("fetch_funding_rate", (SYMBOL,), {"markPrice": 0.0}),
        ("fetch_ticker", (SYMBOL,), {"last": None}),
        ("fetch_order_book", (SYMBOL, 5), {"bids": [[91_000.0, 1.0]], "asks": [[90_000.0, 1.0]]}),
    ],
)
def test_freshly_stamped_reads_without_a_usable_price_do_not_keep_a_feed_young(
    paper: PaperAccount, tmp_path: Path, method: str, args: tuple[Any, ...], broken: dict[str, Any]
) -> None:
    # A venue answering on time with a mark of 0, no last price or a crossed book gives no
    # price: the feed ages as if it had said nothing.
    policy = sandbox_policy(tmp_path, _policy(max_data_age_s=30.0))
    switch = KillSwitch(policy.kill_switch, clock=paper.clock, watch=False)
    monitor = RiskMonitor.from_policy(policy)
    wire = TripWire(monitor)
    gate = PreTradeGate(policy, MarketCache(policy.risk), AlwaysNormal(), Hooks(), tripwire=wire)
    raw = paper.client()
    send = Send(method, args)

    def read(answer: Any) -> None:
        now = paper.clock.time()  # as the core does: the outcome to the triggers, then the data
        with wire.collecting() as trips:  # as a guarded call does around its steps
            wire.request(send, Answer(answer, None, None, now, now), None)
            gate.absorb(send, answer, now)
        for trip in trips.take():  # what the sync face does with each Engage the core yields
            switch.engage(trip.reason, by=trip.by, state=trip.state, code=trip.code)

    try:
        read(getattr(raw, method)(*args))
        for _ in range(8):
            paper.advance(5)
            read({**getattr(raw, method)(*args), **broken})
        assert (switch.state.state, switch.state.code) == (
            TradingState.HALTED,
            Code.STALE_MARKET_DATA,
        )
    finally:
        switch.close()


def test_a_stop_on_the_last_price_is_not_judged_on_an_old_last_price(
    paper: PaperAccount, tmp_path: Path
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    last = float(ex.fetch_ticker(SYMBOL)["last"])
    params = {"stopLoss": {"triggerPrice": round(last * 0.98, 1)}, "workingType": "CONTRACT_PRICE"}
    assert ex.preview(SYMBOL, "market", "buy", 0.01, None, params).decision is Decision.ALLOW
    paper.set_faults({"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr",
                                 "status": 503}]})  # fmt: skip
    paper.advance(600)  # the ticker's re-reads fail: its last price is ten minutes old
    verdict = ex.preview(SYMBOL, "market", "buy", 0.01, None, params)
    assert verdict.decision is Decision.DENY
    assert any(message.startswith("last is") for message in _stale(verdict))
