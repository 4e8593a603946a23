"""A refresh that read the store before a local engage must not loosen that engage."""

from __future__ import annotations

from pathlib import Path

from safeguard.clock import ManualClock
from safeguard.config import KillSwitchConfig
from safeguard.killswitch.store import MemoryStateStore
from safeguard.killswitch.switch import KillSwitch, SwitchState, TradingState


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
    config = KillSwitchConfig(state_dir=tmp_path, watch_state_file=False, poll_interval_s=3600.0)
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
