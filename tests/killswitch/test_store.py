"""The state directory: atomic state, append-only history, failing closed on anything odd."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig
from safeguard._errors import ConfigError, TradingHalted
from safeguard.killswitch._store import FileStateStore, MemoryStateStore, StateStore
from safeguard.killswitch._switch import KillSwitch, ResumeRefused, SwitchState, TradingState

HALTED = SwitchState(TradingState.HALTED, "loss", "DAILY_LOSS", "trigger", 1_700_000_000.5)


def make(directory: Path, **overrides: Any) -> KillSwitch:
    settings: dict[str, Any] = {"state_dir": directory, "poll_interval_s": 0.01}
    settings.update(overrides)
    return KillSwitch(KillSwitchConfig(**settings), watch=False)


@pytest.fixture
def errors() -> Any:
    records: list[str] = []
    logger.enable("safeguard")
    sink = logger.add(
        lambda m: records.append(str(m)),
        filter=lambda r: r["level"].name == "ERROR",
        format="{message}",
    )
    yield records
    logger.remove(sink)
    logger.disable("safeguard")


def test_both_stores_implement_the_protocol(tmp_path: Path) -> None:
    assert isinstance(FileStateStore(tmp_path), StateStore)
    assert isinstance(MemoryStateStore(), StateStore)


def test_save_then_load_round_trips_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path / "new" / "dir")
    assert store.load() is None
    assert store.version() is None
    store.save(HALTED)
    assert store.load() == HALTED
    assert sorted(p.name for p in store.directory.iterdir()) == ["state.json"]
    document = json.loads(store.state_path.read_text())
    assert document["state"] == "HALTED"
    assert document["format"] == 1


def test_version_changes_on_every_save(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    seen = set()
    for i in range(20):
        store.save(SwitchState(TradingState.HALTED, f"r{i}", "MANUAL", "x", 1.0))
        seen.add(store.version())
    assert len(seen) == 20


def test_history_is_appended_and_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    store.append_history({"event": "engage", "n": 1})
    store.append_history({"event": "resume", "n": 2})
    with open(store.history_path, "a") as file:
        file.write('{"event": "eng')  # a crash mid-append
    assert [e["n"] for e in store.history()] == [1, 2]
    assert [e["n"] for e in store.history(1)] == [2]
    assert store.history(0) == []


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not JSON"),
        (b'{"state": "HAL', "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "expected a JSON object"),
        (b'{"format": 2}', "unknown format"),
        (b'{"format": 1, "state": "HALTED"}', "missing"),
        (
            b'{"format": 1, "state": "PAUSED", "reason": "r", "code": "c", "by": "b",'
            b' "since": 1, "host": "h", "pid": 1}',
            "PAUSED",
        ),
        (
            b'{"format": 1, "state": "HALTED", "reason": "r", "code": "c", "by": "b",'
            b' "since": NaN, "host": "h", "pid": 1}',
            "since",
        ),
        (
            b'{"format": 1, "state": "HALTED", "reason": "r", "code": "c", "by": "b",'
            b' "since": "yesterday", "host": "h", "pid": 1}',
            "since",
        ),
        (
            b'{"format": 1, "state": "HALTED", "reason": 7, "code": "c", "by": "b",'
            b' "since": 1, "host": "h", "pid": 1}',
            "reason",
        ),
    ],
)
def test_anything_but_what_save_writes_is_an_error_naming_the_file(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    store = FileStateStore(tmp_path)
    store.state_path.write_bytes(content)
    with pytest.raises(ConfigError, match=problem) as caught:
        store.load()
    assert str(store.state_path) in str(caught.value)
    assert caught.value.key == str(store.state_path)


def test_a_deleted_state_file_with_history_is_not_a_fresh_start(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    store.save(HALTED)
    store.append_history({"event": "engage"})
    store.state_path.unlink()
    with pytest.raises(ConfigError, match="missing"):
        store.load()


# --- the switch over a bad store --------------------------------------------------------------


def test_corrupt_state_file_means_halted_with_a_logged_error_naming_it(
    tmp_path: Path, errors: list[str]
) -> None:
    store = FileStateStore(tmp_path)
    store.state_path.write_text('{"state": "ACTIVE"')  # truncated: not ACTIVE, never
    switch = make(tmp_path)
    state = switch.state
    assert state.state is TradingState.HALTED
    assert state.code == Code.STATE_STORE_UNAVAILABLE
    assert str(store.state_path) in state.reason
    with pytest.raises(TradingHalted), switch.permit(reduces_only=True):
        pass
    assert any(str(store.state_path) in e for e in errors)
    # The HALTED verdict is persisted so every other process agrees.
    stored = store.load()
    assert stored is not None
    assert (stored.state, stored.code) == (TradingState.HALTED, Code.STATE_STORE_UNAVAILABLE)


def test_corrupt_state_can_be_resumed_after_cooling(tmp_path: Path) -> None:
    FileStateStore(tmp_path).state_path.write_text("garbage")
    clock = ManualClock(1_700_000_000.0)
    switch = KillSwitch(
        KillSwitchConfig(state_dir=tmp_path, cooling_period_s=60), clock=clock, watch=False
    )
    assert switch.state.state is TradingState.HALTED
    clock.advance(60)
    assert switch.resume(by="alice").state is TradingState.ACTIVE


def test_state_file_corrupted_while_running_halts_the_bot(tmp_path: Path) -> None:
    switch = make(tmp_path)
    switch.engage("x", by="a", state=TradingState.REDUCING)
    store = FileStateStore(tmp_path)
    store.state_path.write_text("{")
    assert switch.refresh().state is TradingState.HALTED
    assert switch.state.code == Code.STATE_STORE_UNAVAILABLE


def test_halted_state_keeps_its_reason_when_its_file_is_corrupted(tmp_path: Path) -> None:
    switch = make(tmp_path)
    engaged = switch.engage("operator says stop", by="alice")
    store = FileStateStore(tmp_path)
    store.state_path.write_text("{")
    assert switch.refresh() == engaged
    assert store.load() == engaged  # rewritten over the corrupt file


def test_deleted_state_file_is_put_back_rather_than_resuming(tmp_path: Path) -> None:
    switch = make(tmp_path)
    engaged = switch.engage("stop", by="alice")
    store = FileStateStore(tmp_path)
    store.state_path.unlink()
    store.history_path.unlink()  # even with no history to show it was used
    assert switch.refresh() == engaged
    assert store.load() == engaged


def test_unwritable_state_dir_still_halts_in_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    switch = make(blocker)
    state = switch.engage("stop", by="alice")
    assert state.state is TradingState.HALTED
    with pytest.raises(TradingHalted), switch.permit(reduces_only=False):
        pass


# --- two switches on one directory (the same as two processes) ----------------------------


def test_engage_in_one_switch_is_obeyed_by_another_and_its_listeners_hear(tmp_path: Path) -> None:
    bot, operator = make(tmp_path), make(tmp_path)
    heard: list[SwitchState] = []
    bot.add_listener(heard.append)
    with bot.permit(reduces_only=False):
        pass
    engaged = operator.engage("manual stop", by="alice")
    assert bot.refresh() == engaged
    with pytest.raises(TradingHalted), bot.permit(reduces_only=False):
        pass
    assert heard == [engaged]


def test_resume_elsewhere_re_arms_a_running_bot(tmp_path: Path) -> None:
    bot = make(tmp_path, cooling_period_s=0)
    bot.engage("stop", by="alice")
    make(tmp_path, cooling_period_s=0).resume(by="alice")
    assert bot.refresh().state is TradingState.ACTIVE
    with bot.permit(reduces_only=False):
        pass


def test_watcher_thread_notices_an_engage_without_any_order_traffic(tmp_path: Path) -> None:
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=0.01)
    with KillSwitch(config) as bot:
        heard = threading.Event()
        bot.add_listener(lambda state: heard.set())
        woke: list[bool] = []
        about_to_wait = threading.Event()

        def retrying() -> None:
            about_to_wait.set()
            woke.append(bot.wait(30))

        sleeper = threading.Thread(target=retrying)
        sleeper.start()
        assert about_to_wait.wait(10)
        make(tmp_path).engage("manual stop", by="alice")
        assert heard.wait(10)  # the listener ran with nobody touching the bot
        sleeper.join(10)
        assert woke == [True]  # and the sleeping retry was woken, not timed out


def test_engage_never_overwrites_a_tighter_state_stored_by_another_process(
    tmp_path: Path,
) -> None:
    bot, operator = make(tmp_path), make(tmp_path)
    operator.engage("halt everything", by="alice")
    # The bot has not polled: its own trigger asks only for REDUCING.
    state = bot.engage("order rate", by="trigger", state=TradingState.REDUCING)
    assert state.state is TradingState.HALTED
    stored = FileStateStore(tmp_path).load()
    assert stored is not None
    assert stored.reason == "halt everything"


def test_files_are_readable_by_operators(tmp_path: Path) -> None:
    make(tmp_path).engage("stop", by="alice")
    assert os.stat(tmp_path / "state.json").st_mode & 0o044 == 0o044


class FlakyStore(MemoryStateStore):
    """A networked store that can go down (raising its own error type, as a client would)."""

    down = False

    def _check(self) -> None:
        if self.down:
            raise RuntimeError("connection refused")

    def load(self) -> SwitchState | None:
        self._check()
        return super().load()

    def save(self, state: SwitchState) -> None:
        self._check()
        super().save(state)

    def version(self) -> object:
        self._check()
        return super().version()


def test_a_store_outage_halts_and_recovery_does_not_resume_by_itself(tmp_path: Path) -> None:
    store = FlakyStore()
    clock = ManualClock(1_700_000_000.0)
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=0.01, cooling_period_s=0)
    switch = KillSwitch(config, clock=clock, store=store, watch=False)
    switch.engage("x", by="a", state=TradingState.REDUCING)
    switch.resume(by="alice")  # the store now holds an ACTIVE state
    clock.advance(10)
    store.down = True
    state = switch.refresh()
    assert (state.state, state.code) == (TradingState.HALTED, Code.STATE_STORE_UNAVAILABLE)
    assert "connection refused" in state.reason
    store.down = False
    clock.advance(10)
    # The store is back with the older ACTIVE state: that is no resume. The HALTED is put back.
    assert switch.refresh().state is TradingState.HALTED
    stored = store.load()
    assert stored is not None
    assert stored.code == Code.STATE_STORE_UNAVAILABLE
    assert switch.resume(by="alice").state is TradingState.ACTIVE  # explicitly, it can


def test_a_halt_by_hand_during_an_outage_is_put_back_over_the_stored_fail_closed_halt(
    tmp_path: Path,
) -> None:
    # The store holds the HALTED this switch wrote when it failed closed; it goes down again,
    # and the operator's HALTED made meanwhile cannot be written. When the store answers with
    # that older stand-in, the operator's decision is what must stand: the switch pays what it
    # owes before it looks (a pin for the file-store side of the rule that a decision
    # replaces a stand-in; the fleet's side failed in review and is pinned in tests/fleet).
    store = FlakyStore()
    clock = ManualClock(1_700_000_000.0)
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=0.01, cooling_period_s=600)
    switch = KillSwitch(config, clock=clock, store=store, watch=False)
    store.down = True
    switch.refresh()
    store.down = False
    switch.refresh()  # the stand-in is written back: every process agrees on the HALTED
    stand_in = store.load()
    assert stand_in is not None
    assert stand_in.code == Code.STATE_STORE_UNAVAILABLE
    store.down = True
    clock.advance(10)
    switch.engage("operator stop", by="alice")
    assert switch.unpersisted is not None
    store.down = False
    clock.advance(10)
    assert switch.refresh().by == "alice"  # not the stand-in adopted back
    stored = store.load()
    assert stored is not None
    assert (stored.by, stored.reason) == ("alice", "operator stop")
    assert switch.unpersisted is None


def test_a_store_down_at_start_means_halted(tmp_path: Path) -> None:
    store = FlakyStore()
    store.down = True
    switch = KillSwitch(KillSwitchConfig(state_dir=tmp_path), store=store, watch=False)
    assert switch.state.state is TradingState.HALTED
    with pytest.raises(TradingHalted):
        switch.permit(reduces_only=True).__enter__()


def test_temporaries_left_by_a_killed_writer_are_swept(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    stale = tmp_path / ".state.dead.tmp"
    fresh = tmp_path / ".state.live.tmp"
    stale.write_text("{")
    fresh.write_text("{")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    store.save(HALTED)
    assert not stale.exists()
    assert fresh.exists()  # may belong to a writer still at work
    assert store.load() == HALTED


def test_an_engage_is_not_lost_to_a_resume_this_process_has_not_seen(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    config = KillSwitchConfig(state_dir=tmp_path, cooling_period_s=0, poll_interval_s=60)
    bot = KillSwitch(config, clock=clock, watch=False)
    bot.engage("first", by="trigger")
    clock.advance(1)
    KillSwitch(config, clock=clock, watch=False).resume(by="alice")  # bot has not polled
    clock.advance(1)
    state = bot.engage("second", by="trigger", code=Code.DRAWDOWN)
    assert (state.state, state.reason) == (TradingState.HALTED, "second")
    stored = FileStateStore(tmp_path).load()
    assert stored == state


def test_resume_respects_the_cooling_of_an_engage_the_store_never_got(tmp_path: Path) -> None:
    store = FlakyStore(SwitchState(TradingState.ACTIVE, "resumed", "", "alice", 1_600_000_000.0))
    clock = ManualClock(1_700_000_000.0)
    config = KillSwitchConfig(state_dir=tmp_path, cooling_period_s=60)
    switch = KillSwitch(config, clock=clock, store=store, watch=False)
    store.down = True
    switch.engage("loss", by="trigger", code=Code.DAILY_LOSS)  # in memory only
    store.down = False
    clock.advance(30)
    with pytest.raises(ResumeRefused):
        switch.resume(by="alice")
    clock.advance(30)
    assert switch.resume(by="alice").state is TradingState.ACTIVE


@pytest.mark.parametrize("state", [TradingState.REDUCING, TradingState.HALTED])
def test_an_engage_the_store_could_not_take_is_written_at_its_next_chance(
    tmp_path: Path, state: TradingState
) -> None:
    store = FlakyStore()
    clock = ManualClock(1_700_000_000.0)
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=60)
    switch = KillSwitch(config, clock=clock, store=store, watch=False)
    assert switch.state.state is TradingState.ACTIVE  # its one look per poll interval taken
    store.down = True
    switch.engage("loss", by="trigger", code=Code.DAILY_LOSS, state=state)
    assert switch.unpersisted is not None
    store.down = False
    # The next order's gate (allowed or refused) writes it, long before the next poll.
    with pytest.raises(TradingHalted), switch.permit(reduces_only=False):
        pass
    assert switch.unpersisted is None
    stored = store.load()
    assert stored is not None
    assert stored.state is state
    # A process started after this one died still holds the engage.
    assert KillSwitch(config, clock=clock, store=store, watch=False).state.state is state


class FullDiskStore(MemoryStateStore):
    """A store on a full disk: it reads, but refuses every write."""

    full = False

    def save(self, state: SwitchState) -> None:
        if self.full:
            raise OSError(28, "No space left on device")
        super().save(state)


def test_an_engage_the_store_cannot_take_is_tried_again_without_a_flood_of_alarms(
    tmp_path: Path,
) -> None:
    store = FullDiskStore()
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=60)
    switch = KillSwitch(config, store=store, watch=False)
    store.full = True
    critical: list[str] = []
    sink = logger.add(lambda m: critical.append(str(m)), level="CRITICAL")
    try:
        switch.engage("loss", by="trigger", state=TradingState.REDUCING)
        for _ in range(50):
            with switch.permit(reduces_only=True):
                pass  # reduce-only orders go on while the disk is full
    finally:
        logger.remove(sink)
    assert switch.unpersisted is not None  # still owed: the disk is still full
    assert len([m for m in critical if "memory only" in m]) == 1
    store.full = False
    with switch.permit(reduces_only=True):
        pass
    assert switch.unpersisted is None
    stored = store.load()
    assert stored is not None
    assert stored.state is TradingState.REDUCING


def test_a_listener_may_use_the_switch_while_it_adopts_another_process_state(
    tmp_path: Path,
) -> None:
    config = KillSwitchConfig(state_dir=tmp_path, cooling_period_s=0)
    bot = KillSwitch(config, watch=False)
    KillSwitch(config, watch=False).engage("halt", by="alice")
    resumed: list[SwitchState] = []

    def on_change(state: SwitchState) -> None:
        if state.state is TradingState.HALTED:
            resumed.append(bot.resume(by="listener"))

    bot.add_listener(on_change)

    # The bot's own engage finds the tighter HALTED in the store and adopts it; the listener
    # then resumes, which takes the store's lock: it must not be held by this thread still.
    worker = threading.Thread(target=bot.engage, args=("rate",), kwargs={"state": "REDUCING"})
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    assert [s.state for s in resumed] == [TradingState.ACTIVE]


def test_the_file_lock_is_reentrant_within_a_thread(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    with store.lock(), store.lock():
        store.save(HALTED)
    assert store.load() == HALTED


class CountingStore(MemoryStateStore):
    versions = 0

    def version(self) -> object:
        self.versions += 1
        return super().version()


def test_the_order_path_looks_at_the_store_at_most_once_per_poll_interval(
    tmp_path: Path,
) -> None:
    store = CountingStore()
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=60)
    switch = KillSwitch(config, store=store, watch=False)
    before = store.versions
    for _ in range(1000):
        with switch.permit(reduces_only=False):
            pass
        assert switch.state.state is TradingState.ACTIVE
    assert store.versions - before <= 1
    switch.refresh()  # an explicit refresh always looks
    assert store.versions - before <= 2


def _hold_the_lock(directory: Path) -> int:
    """Take the state lock as a stuck process would (stopped with SIGSTOP mid-write)."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.write(fd, b"stuckhost 4242\n")
    return fd


def test_a_lock_held_by_a_stuck_process_is_an_error_naming_the_holder(tmp_path: Path) -> None:
    fd = _hold_the_lock(tmp_path)
    try:
        store = FileStateStore(tmp_path, lock_timeout_s=0.05)
        with pytest.raises(OSError, match="stuckhost 4242") as caught, store.lock():
            pass
        assert str(store.lock_path) in str(caught.value)
    finally:
        os.close(fd)
    with FileStateStore(tmp_path, lock_timeout_s=0.05).lock():
        pass  # released: taken at once


def test_an_engage_behind_a_stuck_lock_holds_in_memory_and_says_why(tmp_path: Path) -> None:
    fd = _hold_the_lock(tmp_path)
    try:
        store = FileStateStore(tmp_path, lock_timeout_s=0.05)
        switch = KillSwitch(KillSwitchConfig(state_dir=tmp_path), store=store, watch=False)
        state = switch.engage("stop", by="ops")
        assert state.state is TradingState.HALTED  # this process stops regardless
        unpersisted = switch.unpersisted
        assert unpersisted is not None
        assert "stuckhost 4242" in unpersisted[1]
        assert store.load() is None  # nothing pretended to be written
    finally:
        os.close(fd)
