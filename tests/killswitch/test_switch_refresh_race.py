"""A refresh racing a local engage: neither may undo the other.

A refresh that read the store before a local engage must not loosen that engage; an engage
made while another thread reads a resume made elsewhere must land on that resume, not be
taken for one already made.
"""

from __future__ import annotations

import threading
from pathlib import Path

from loguru import logger

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig
from safeguard.killswitch._store import MemoryStateStore
from safeguard.killswitch._switch import KillSwitch, SwitchState, TradingState


class EngageDuringLoad(MemoryStateStore):
    """A real in-memory store that lets another thread's engage land while ``load`` runs."""

    def __init__(self, state: SwitchState) -> None:
        super().__init__(state)
        self.during_load: list[object] = []

    def load(self) -> SwitchState | None:
        stale = super().load()
        while self.during_load:
            action = self.during_load.pop()
            assert callable(action)
            action()
        return stale


def test_a_stale_read_does_not_undo_an_engage_that_landed_during_it(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    reducing = SwitchState(TradingState.REDUCING, "drawdown", "DRAWDOWN", "trigger", clock.time())
    store = EngageDuringLoad(reducing)
    # Polls only when asked (``_refresh(force=True)``): reading ``state`` below must not poll
    # again by itself. That poll would read the store, which really holds the REDUCING (the
    # write of the HALTED is lost on purpose), and rightly adopt it; whether it ran depended on
    # how long this thread was descheduled, which made the test flaky under load.
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False, poll_interval_s=60.0)
    switch = KillSwitch(config, clock=clock, store=store)
    assert switch.state.state is TradingState.REDUCING  # the first read polls

    # The store changes (another process wrote the same REDUCING again), so a refresh reads it;
    # while it reads, this process engages HALTED and the store write is lost (a slow store).
    store._version += 1
    lost_writes: list[SwitchState] = []
    store.save = lost_writes.append  # type: ignore[method-assign]
    store.during_load.append(lambda: switch.engage("manual stop", by="operator"))
    switch._refresh(force=True)

    assert switch.state.state is TradingState.HALTED
    assert lost_writes
    assert lost_writes[-1].state is TradingState.HALTED


def test_a_resume_made_elsewhere_is_still_adopted(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    halted = SwitchState(TradingState.HALTED, "manual", "MANUAL", "operator", clock.time())
    store = MemoryStateStore(halted)
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False, poll_interval_s=0.001)
    switch = KillSwitch(config, clock=clock, store=store)
    clock.advance(10_000)
    store.save(SwitchState(TradingState.ACTIVE, "fixed", "MANUAL", "operator", clock.time()))
    switch._refresh(force=True)
    assert switch.state.state is TradingState.ACTIVE


HANG_S = 120.0
"""Only a hang waits this long: every wait ends on an event."""


class LoadHeld(MemoryStateStore):
    """A real in-memory store whose next ``load``, once armed, waits until released."""

    def __init__(self, state: SwitchState) -> None:
        super().__init__(state)
        self.armed = False
        self.loading, self.release = threading.Event(), threading.Event()

    def load(self) -> SwitchState | None:
        if self.armed:
            self.armed = False
            self.loading.set()
            assert self.release.wait(HANG_S)
        return super().load()


def test_an_engage_while_another_thread_reads_a_resume_made_elsewhere_is_not_lost(
    tmp_path: Path,
) -> None:
    clock = ManualClock(1_700_000_000.0)
    halted = SwitchState(TradingState.HALTED, "manual", "MANUAL", "operator", clock.time())
    store = LoadHeld(halted)
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False, poll_interval_s=60.0)
    switch = KillSwitch(config, clock=clock, store=store)
    assert switch.state.state is TradingState.HALTED
    clock.advance(10_000)
    # Another process resumes; this one's watcher is reading that resume when a trigger here
    # trips (a stale feed on a held stream): this process still holds the HALTED in memory.
    store.save(SwitchState(TradingState.ACTIVE, "fixed", "", "operator", clock.time()))
    store.armed = True
    watcher = threading.Thread(target=switch.refresh, name="watcher")
    watcher.start()
    assert store.loading.wait(HANG_S)
    waiting = threading.Event()
    sink = logger.add(
        lambda _: waiting.set(), level="DEBUG", filter=lambda r: "waits for" in r["message"]
    )
    try:
        trip = threading.Thread(
            target=switch.engage,
            args=("ETH/USDT:USDT data 10 s old",),
            kwargs={"by": "trigger", "code": Code.STALE_MARKET_DATA},
        )
        trip.start()
        while trip.is_alive() and not waiting.is_set():  # done, or waiting on the watcher
            trip.join(0.001)
        store.release.set()
        watcher.join(HANG_S)
        trip.join(HANG_S)
    finally:
        logger.remove(sink)
    state = switch.state
    assert (state.state, state.code) == (TradingState.HALTED, Code.STALE_MARKET_DATA)
    stored = store.load()
    assert stored is not None
    assert (stored.state, stored.code) == (TradingState.HALTED, Code.STALE_MARKET_DATA)
