"""The latch: pure transitions, the gate, waking sleepers, listeners, cooling."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig
from safeguard._errors import TradingHalted
from safeguard.killswitch._switch import (
    Engage,
    KillSwitch,
    Refusal,
    Resume,
    ResumeRefused,
    SwitchState,
    TradingState,
    refusal_code,
    transition,
)

ACTIVE, REDUCING, HALTED = TradingState.ACTIVE, TradingState.REDUCING, TradingState.HALTED


def make(tmp_path: Path, clock: ManualClock | None = None, **overrides: Any) -> KillSwitch:
    settings: dict[str, Any] = {"state_dir": tmp_path / "state", "poll_interval_s": 0.01}
    settings.update(overrides)
    return KillSwitch(KillSwitchConfig(**settings), clock=clock, watch=False)


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


# --- the pure state machine ------------------------------------------------------------------

active = SwitchState(ACTIVE, "", "", "", 100.0)


def test_engage_from_active_sets_state_reason_and_time() -> None:
    new = transition(
        active, Engage(HALTED, "loss", "DAILY_LOSS", "trigger"), now=200.0, cooling_period_s=60
    )
    assert new == SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 200.0)


def test_engage_is_idempotent_and_never_loosens() -> None:
    halted = SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 200.0)
    assert (
        transition(halted, Engage(HALTED, "again", "MANUAL", "x"), now=300.0, cooling_period_s=60)
        is halted
    )
    assert (
        transition(
            halted, Engage(REDUCING, "softer", "MANUAL", "x"), now=300.0, cooling_period_s=60
        )
        is halted
    )


def test_a_decision_over_a_placeholder_of_the_same_severity_is_a_change() -> None:
    # A store that cannot be reached is HALTED for as long as it cannot be reached (the
    # fleet's Redis: code STATE_STORE_UNAVAILABLE, never persisted). An operator's or a
    # trigger's HALTED made meanwhile is a decision, and must not be swallowed as "already
    # engaged": it is what must hold once the store answers again.
    cut_off = SwitchState(HALTED, "lost the link", Code.STATE_STORE_UNAVAILABLE, "fleet:h:1", 200.0)
    new = transition(
        cut_off, Engage(HALTED, "stop", "MANUAL", "alice"), now=300.0, cooling_period_s=60
    )
    assert new == SwitchState(HALTED, "stop", "MANUAL", "alice", 300.0)
    # ...while the store's own failing, reported again, changes nothing.
    again = Engage(HALTED, "still lost", Code.STATE_STORE_UNAVAILABLE, "fleet:h:1")
    assert transition(cut_off, again, now=300.0, cooling_period_s=60) is cut_off
    # And a looser decision than the placeholder is no change either.
    softer = Engage(REDUCING, "reduce", "MANUAL", "alice")
    assert transition(cut_off, softer, now=300.0, cooling_period_s=60) is cut_off


def test_reducing_escalates_to_halted() -> None:
    reducing = SwitchState(REDUCING, "rate", "ORDER_RATE", "trigger", 200.0)
    new = transition(
        reducing, Engage(HALTED, "worse", "DRAWDOWN", "trigger"), now=250.0, cooling_period_s=60
    )
    assert isinstance(new, SwitchState)
    assert (new.state, new.code, new.since) == (HALTED, "DRAWDOWN", 250.0)


def test_resume_refused_during_cooling_then_allowed() -> None:
    halted = SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 200.0)
    early = transition(halted, Resume("alice"), now=259.0, cooling_period_s=60)
    assert isinstance(early, Refusal)
    assert (early.code, early.retry_at) == (Code.COOLING_PERIOD, 260.0)
    later = transition(halted, Resume("alice"), now=260.0, cooling_period_s=60)
    assert later == SwitchState(ACTIVE, "resumed", "", "alice", 260.0)


def test_an_engage_stamped_by_a_clock_running_fast_does_not_block_resume_for_as_long() -> None:
    # A bot 30 days ahead engaged; its clock was corrected. Counted from that stamp, every
    # resume was refused for 30 days and no command could lift it. A stamp within the
    # tolerance of our clock still starts the period.
    month = 30 * 86_400.0
    ahead = SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 1_000.0 + month)
    assert transition(ahead, Resume("alice"), now=1_000.0, cooling_period_s=60) == SwitchState(
        ACTIVE, "resumed", "", "alice", 1_000.0
    )
    near = SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 1_000.0 + 200.0)
    refused = transition(near, Resume("alice"), now=1_000.0, cooling_period_s=60)
    assert isinstance(refused, Refusal)
    assert refused.retry_at == 1_260.0


def test_halted_to_reducing_only_by_explicit_resume_and_keeps_code() -> None:
    halted = SwitchState(HALTED, "loss", "DAILY_LOSS", "trigger", 200.0)
    new = transition(halted, Resume("alice", to=REDUCING), now=900.0, cooling_period_s=60)
    assert new == SwitchState(REDUCING, "resumed", "DAILY_LOSS", "alice", 900.0)


def test_resume_cannot_tighten_and_resuming_active_changes_nothing() -> None:
    refused = transition(active, Resume("alice", to=REDUCING), now=900.0, cooling_period_s=0)
    assert isinstance(refused, Refusal)
    assert refused.code == Code.INVALID_INPUT
    assert transition(active, Resume("alice"), now=900.0, cooling_period_s=0) is active


@pytest.mark.parametrize(
    ("state", "reduces_only", "is_cancel", "expected"),
    [
        (ACTIVE, False, False, None),
        (REDUCING, False, False, Code.TRADING_REDUCING),
        (REDUCING, True, False, None),
        (REDUCING, False, True, None),
        (HALTED, False, False, Code.TRADING_HALTED),
        (HALTED, True, False, Code.TRADING_HALTED),
        (HALTED, False, True, None),
    ],
)
def test_what_each_state_refuses(
    state: TradingState, reduces_only: bool, is_cancel: bool, expected: Code | None
) -> None:
    assert refusal_code(state, reduces_only=reduces_only, is_cancel=is_cancel) == expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"state": "PAUSED"}, "state"),
        ({"reason": 3}, "reason"),
        ({"since": float("nan")}, "since"),
        ({"since": -1.0}, "since"),
        ({"since": True}, "since"),
        ({"state": HALTED, "reason": ""}, "reason"),
    ],
)
def test_switch_state_refuses_malformed_values(kwargs: dict[str, Any], field: str) -> None:
    values: dict[str, Any] = {"state": ACTIVE, "reason": "", "code": "", "by": "", "since": 1.0}
    values.update(kwargs)
    with pytest.raises(ValueError, match=field):
        SwitchState(**values)


# --- the gate -------------------------------------------------------------------------------


def test_fresh_switch_is_active_and_permits(tmp_path: Path) -> None:
    switch = make(tmp_path)
    assert switch.state.state is ACTIVE
    with switch.permit(reduces_only=False):
        pass


def test_halted_refuses_everything_but_cancels_before_the_body_runs(tmp_path: Path) -> None:
    switch = make(tmp_path)
    switch.engage("test", by="pytest")
    ran: list[str] = []
    for reduces_only in (False, True):
        with pytest.raises(TradingHalted) as caught, switch.permit(reduces_only=reduces_only):
            ran.append("sent")
        assert caught.value.code == Code.TRADING_HALTED
        assert caught.value.state == "HALTED"
        assert caught.value.reason == "test"
    with switch.permit(reduces_only=False, is_cancel=True):
        ran.append("cancel")
    assert ran == ["cancel"]


def test_reducing_lets_only_reducing_orders_and_cancels_through(tmp_path: Path) -> None:
    switch = make(tmp_path)
    switch.engage("rate", state=REDUCING, code=Code.ORDER_RATE, by="trigger")
    with pytest.raises(TradingHalted) as caught, switch.permit(reduces_only=False):
        pass
    assert caught.value.code == Code.TRADING_REDUCING
    with switch.permit(reduces_only=True), switch.permit(reduces_only=False, is_cancel=True):
        pass


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reduces_only": 1}, "reduces_only"),
        ({"reduces_only": None}, "reduces_only"),
        ({"reduces_only": False, "is_cancel": "yes"}, "is_cancel"),
    ],
)
def test_permit_refuses_wrong_types(tmp_path: Path, kwargs: dict[str, Any], field: str) -> None:
    switch = make(tmp_path)
    with pytest.raises(ValueError, match=field):
        switch.permit(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"reason": ""}, "reason"),
        ({"reason": "x", "by": "  "}, "by"),
        ({"reason": "x", "state": ACTIVE}, "state"),
        ({"reason": "x", "state": "STOPPED"}, "state"),
        ({"reason": "x", "code": ""}, "code"),
    ],
)
def test_engage_refuses_bad_arguments_and_stays_active(
    tmp_path: Path, kwargs: dict[str, Any], field: str
) -> None:
    switch = make(tmp_path)
    with pytest.raises(ValueError, match=field):
        switch.engage(**kwargs)
    assert switch.state.state is ACTIVE


def test_engage_accepts_state_names_and_persists_who_and_why(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    switch = make(tmp_path, clock)
    state = switch.engage(
        "drawdown 12%",
        by="trigger:drawdown",
        state="REDUCING",  # type: ignore[arg-type]
        code=Code.DRAWDOWN,
    )
    assert state == SwitchState(
        REDUCING, "drawdown 12%", "DRAWDOWN", "trigger:drawdown", 1_700_000_000.0
    )
    assert make(tmp_path).state == state  # a second process reads the same


def test_engage_twice_returns_the_first_engagement(tmp_path: Path) -> None:
    clock = ManualClock()
    switch = make(tmp_path, clock)
    first = switch.engage("one", by="a")
    clock.advance(10)
    assert switch.engage("two", by="b") == first
    assert [e["reason"] for e in switch.store.history()] == ["one"]  # type: ignore[attr-defined]


def test_a_permit_released_in_another_context_than_it_was_taken_in_is_released_there(
    tmp_path: Path,
) -> None:
    # A permit taken in one context and released in another (a copy of it, as a task or a
    # callback gets, or a fresh one): the context that released it no longer counts it as
    # held, and one that never held it is left as it was.
    switch = make(tmp_path)
    taken = switch.permit(reduces_only=False)
    taken.__enter__()
    holder = contextvars.copy_context()  # sees the permit as held
    holder.run(taken.__exit__, None, None, None)
    other = switch.permit(reduces_only=False)
    other.__enter__()
    fresh = contextvars.Context()  # never saw a permit
    fresh.run(other.__exit__, None, None, None)

    switch.engage("stop", by="pytest")
    # Nothing is in flight any more, and neither context holds a forbidden permit: a backoff
    # there sleeps its time out rather than returning at once as a holder of one would.
    assert holder.run(switch.wait, 0.01) is False
    assert fresh.run(switch.wait, 0.01) is False
    with pytest.raises(TradingHalted):
        holder.run(switch.permit(reduces_only=False).__enter__)


# --- the drain ------------------------------------------------------------------------------


def test_engage_returns_only_after_the_send_in_flight_finished(tmp_path: Path) -> None:
    switch = make(tmp_path, drain_timeout_s=30.0)
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def sender() -> None:
        with switch.permit(reduces_only=False):
            inside.set()
            release.wait(10)
            order.append("send finished")

    def engager() -> None:
        switch.engage("stop", by="pytest")
        order.append("engage returned")

    threads = [threading.Thread(target=sender)]
    threads[0].start()
    assert inside.wait(10)
    threads.append(threading.Thread(target=engager))
    threads[1].start()
    # The latch is closed at once, while the send in flight still runs.
    for _ in range(1000):
        if switch.state.state is HALTED:
            break
        threading.Event().wait(0.001)
    assert switch.state.state is HALTED
    assert order == []
    release.set()
    for thread in threads:
        thread.join(10)
    assert order == ["send finished", "engage returned"]


def test_cancel_in_flight_does_not_hold_up_a_halt(tmp_path: Path, errors: list[str]) -> None:
    switch = make(tmp_path, drain_timeout_s=30.0)
    inside, release = threading.Event(), threading.Event()

    def canceller() -> None:
        with switch.permit(reduces_only=False, is_cancel=True):
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=canceller)
    thread.start()
    assert inside.wait(10)
    try:
        assert switch.engage("stop", by="pytest").state is HALTED
        assert thread.is_alive()  # the cancel is still in flight: the engage did not wait
    finally:
        release.set()
        thread.join(10)
    assert errors == []


def test_drain_is_bounded_and_says_so(tmp_path: Path, errors: list[str]) -> None:
    switch = make(tmp_path, drain_timeout_s=0.05)
    inside, release = threading.Event(), threading.Event()

    def stuck() -> None:
        with switch.permit(reduces_only=False):
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=stuck)
    thread.start()
    assert inside.wait(10)
    try:
        assert switch.engage("stop", by="pytest").state is HALTED
        assert thread.is_alive()
    finally:
        release.set()
        thread.join(10)
    assert any("1 send(s) already past the gate did not finish" in e for e in errors)


def test_engage_from_inside_a_permit_does_not_wait_for_itself(
    tmp_path: Path, errors: list[str]
) -> None:
    switch = make(tmp_path, drain_timeout_s=0.5)
    with switch.permit(reduces_only=False):
        state = switch.engage("fill breached the loss limit", by="trigger", code=Code.DAILY_LOSS)
    assert state.state is HALTED
    assert errors == []  # no "did not finish" complaint: it did not wait on its own send


def test_an_engage_inside_its_own_permit_is_woken_by_the_last_other_send(
    tmp_path: Path, errors: list[str]
) -> None:
    """The drain counts the engaging thread's own send as one it cannot wait for: when the
    other sends finish, that is all that is left, and the engage goes on (not at its timeout).
    A drain timeout far beyond the join below: a missed wake-up leaves the engage waiting."""
    switch = make(tmp_path, drain_timeout_s=120.0)
    inside, release = threading.Event(), threading.Event()
    returned: list[TradingState] = []

    def other_sender() -> None:
        with switch.permit(reduces_only=False):
            inside.set()
            release.wait(30)

    def engager() -> None:
        with switch.permit(reduces_only=True):
            returned.append(switch.engage("loss limit", by="trigger").state)

    sending = threading.Thread(target=other_sender)
    sending.start()
    assert inside.wait(10)
    engaging = threading.Thread(target=engager)
    engaging.start()
    for _ in range(1000):
        if switch.state.state is HALTED:
            break
        threading.Event().wait(0.001)
    assert returned == []  # waiting for the other send
    release.set()
    sending.join(10)
    engaging.join(60)
    assert returned == [HALTED]
    assert errors == []


@pytest.fixture
def warnings() -> Any:
    records: list[str] = []
    logger.enable("safeguard")
    sink = logger.add(
        lambda m: records.append(str(m)),
        filter=lambda r: r["level"].name == "WARNING",
        format="{message}",
    )
    yield records
    logger.remove(sink)
    logger.disable("safeguard")


def test_a_blocking_engage_on_an_event_loop_thread_does_not_deadlock_on_that_loops_sends(
    tmp_path: Path, errors: list[str], warnings: list[str]
) -> None:
    # engage() (not engage_async) called from a coroutine while another task of the same loop
    # is inside its permit, awaiting its send. That task can only finish once engage returns
    # and gives the loop back, so waiting for it would hang for the whole drain timeout. The
    # engage closes the latch, waits for the sends other threads hold, and says plainly which
    # sends it could not wait for (and that engage_async is the call to use) instead.
    switch = make(tmp_path, drain_timeout_s=20.0)
    order: list[str] = []
    thread_inside = threading.Event()

    def thread_send() -> None:
        with switch.permit(reduces_only=False):
            thread_inside.set()
            switch.wait(60)  # on the wire until the engage wakes it (before its drain)
            order.append("the other thread's send finished")

    async def main() -> tuple[TradingState, bool]:
        task_inside, task_release = asyncio.Event(), asyncio.Event()

        async def task_send() -> None:
            with switch.permit(reduces_only=False):
                task_inside.set()
                await task_release.wait()
            order.append("the loop task's send finished")

        task = asyncio.create_task(task_send())
        await task_inside.wait()
        state = switch.engage("stop", by="pytest").state  # blocks this loop's thread
        order.append("engage returned")
        still_sending = not task.done()
        # The loop's next send is refused.
        with pytest.raises(TradingHalted), switch.permit(reduces_only=False):
            order.append("sent after the engage")
        task_release.set()
        await task
        return state, still_sending

    thread = threading.Thread(target=thread_send)
    thread.start()
    assert thread_inside.wait(10)
    try:
        state, still_sending = asyncio.run(main())
    finally:
        thread.join(10)
    assert state is HALTED
    assert still_sending  # it did not (could not) wait for its own loop's task...
    assert order == [
        "the other thread's send finished",  # ...but it did wait for the other thread's
        "engage returned",
        "the loop task's send finished",
    ]
    assert errors == []  # no drain timed out: nothing hung
    assert any(
        "1 send(s) by tasks of that loop were in flight and could not be waited for" in w
        and "engage_async()" in w
        for w in warnings
    ), warnings
    assert switch.store.load() == switch.state  # persisted like any engage


def test_an_engage_off_any_event_loop_says_nothing_about_loop_tasks(
    tmp_path: Path, warnings: list[str]
) -> None:
    # The advice to use engage_async() is for engages made on an event loop's thread only.
    switch = make(tmp_path)
    with switch.permit(reduces_only=False):
        switch.engage("stop", by="pytest")
    assert [w for w in warnings if "event loop" in w] == []


@pytest.mark.parametrize(
    ("state", "threads_forbidden"), [(HALTED, 2), (REDUCING, 1)], ids=["halted", "reducing"]
)
@pytest.mark.parametrize("loop_tasks_sending", [0, 2])
def test_a_blocking_engage_on_an_event_loop_thread_names_each_send_it_could_not_wait_for(
    tmp_path: Path,
    errors: list[str],
    warnings: list[str],
    state: TradingState,
    threads_forbidden: int,
    loop_tasks_sending: int,
) -> None:
    # No time to drain, and every send blocked until after the engage: what the engage reports
    # is exactly what the new state forbids that was in flight, split between other threads'
    # sends (waited for, in vain) and its own loop's tasks' sends (which it cannot wait for).
    # Cancels are never counted: they stay allowed.
    switch = make(tmp_path, drain_timeout_s=1e-9)
    inside, release = threading.Semaphore(0), threading.Event()

    def thread_send(reduces_only: bool, is_cancel: bool) -> None:
        with switch.permit(reduces_only=reduces_only, is_cancel=is_cancel):
            inside.release()
            release.wait(30)

    kinds = [(False, False), (True, False), (False, True)]  # opening, reduce-only, cancel
    threads = [threading.Thread(target=thread_send, args=kind) for kind in kinds]
    for thread in threads:
        thread.start()
    for _ in threads:
        assert inside.acquire(timeout=10)

    async def main() -> None:
        holding = asyncio.Semaphore(0)
        task_release = asyncio.Event()

        async def task_send(is_cancel: bool) -> None:
            with switch.permit(reduces_only=False, is_cancel=is_cancel):
                holding.release()
                await task_release.wait()

        # A loop whose tasks never took a permit, or one with two opening sends and a cancel
        # in flight, after one that finished (it counts no more).
        cancels = [True] if loop_tasks_sending else []
        if loop_tasks_sending:
            with switch.permit(reduces_only=False):
                await asyncio.sleep(0)
        tasks = [asyncio.create_task(task_send(c)) for c in [False] * loop_tasks_sending + cancels]
        for _ in tasks:
            await holding.acquire()
        switch.engage("stop", by="pytest", state=state)
        task_release.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(main())
    finally:
        release.set()
        for thread in threads:
            thread.join(10)
    assert [e.strip() for e in errors if "already past the gate did not finish" in e] == [
        f"kill switch engaged but {threads_forbidden} send(s) already past the gate did not "
        "finish within 1e-09 s; they may still reach the venue"
    ]
    unwaited = [w for w in warnings if "tasks of that loop" in w]
    if loop_tasks_sending:
        assert len(unwaited) == 1
        assert f": {loop_tasks_sending} send(s) by tasks of that loop" in unwaited[0]
    else:
        assert unwaited == []
    assert switch.state.state is state


# --- sleepers ------------------------------------------------------------------------------


def test_wait_times_out_false_and_wakes_true_on_engage(tmp_path: Path) -> None:
    switch = make(tmp_path)
    assert switch.wait(0.02) is False
    results: list[bool] = []
    started = threading.Event()

    def retrying() -> None:
        started.set()
        results.append(switch.wait(60))

    thread = threading.Thread(target=retrying)
    thread.start()
    assert started.wait(10)
    switch.engage("stop", by="pytest")
    thread.join(10)
    assert not thread.is_alive()
    assert results == [True]


def test_wait_on_an_already_engaged_switch_sleeps_instead_of_spinning(tmp_path: Path) -> None:
    switch = make(tmp_path)
    switch.engage("stop", state=REDUCING, by="pytest")
    assert switch.wait(0.02) is False  # a reduce-only retry backs off normally


async def test_wait_async_wakes_on_engage_from_another_thread(tmp_path: Path) -> None:
    switch = make(tmp_path)
    assert await switch.wait_async(0.01) is False
    waiter = asyncio.create_task(switch.wait_async(60))
    await asyncio.sleep(0.01)
    await asyncio.to_thread(switch.engage, "stop", by="pytest")
    assert await asyncio.wait_for(waiter, 10) is True


@pytest.mark.parametrize("timeout", [float("nan"), float("inf"), -1.0, "1", True])
def test_wait_refuses_nonsense_timeouts(tmp_path: Path, timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        make(tmp_path).wait(timeout)


# --- listeners and resume ------------------------------------------------------------------


def test_listeners_hear_engage_and_resume_and_can_be_removed(tmp_path: Path) -> None:
    clock = ManualClock()
    switch = make(tmp_path, clock, cooling_period_s=60)
    heard: list[TradingState] = []
    remove = switch.add_listener(lambda s: heard.append(s.state))
    switch.add_listener(lambda s: 1 / 0)  # a broken listener must not break the switch
    switch.engage("stop", by="pytest")
    clock.advance(60)
    switch.resume(by="alice")
    remove()
    switch.engage("again", by="pytest")
    assert heard == [HALTED, ACTIVE]


def test_resume_refused_during_cooling_then_allowed_and_logged(tmp_path: Path) -> None:
    clock = ManualClock(1_700_000_000.0)
    switch = make(tmp_path, clock, cooling_period_s=300)
    switch.engage("loss", by="trigger", code=Code.DAILY_LOSS)
    clock.advance(299)
    with pytest.raises(ResumeRefused) as caught:
        switch.resume(by="alice")
    assert caught.value.code == Code.COOLING_PERIOD
    assert caught.value.retry_at == 1_700_000_300.0
    assert switch.state.state is HALTED
    clock.advance(1)
    assert switch.resume(by="alice").state is ACTIVE
    with switch.permit(reduces_only=False):
        pass
    events = switch.store.history()  # type: ignore[attr-defined]
    assert [(e["event"], e["state"], e["by"]) for e in events] == [
        ("engage", "HALTED", "trigger"),
        ("resume", "ACTIVE", "alice"),
    ]


def test_resume_decides_on_the_stored_state(tmp_path: Path) -> None:
    clock = ManualClock()
    bot = make(tmp_path, clock, cooling_period_s=60)
    bot.engage("first", by="bot", state=REDUCING)
    clock.advance(100)
    other = make(tmp_path, clock, cooling_period_s=60)
    other.engage("escalated elsewhere", by="other")  # bot has not polled yet
    with pytest.raises(ResumeRefused):
        bot.resume(by="alice")
    assert bot.refresh().reason == "escalated elsewhere"


def test_a_sleeper_holding_a_permit_is_woken_before_the_drain(
    tmp_path: Path, errors: list[str]
) -> None:
    # A retry loop that backs off *inside* its permit: the engage must wake it first, or the
    # drain would wait on a send that is itself waiting.
    switch = make(tmp_path, drain_timeout_s=30.0)
    order: list[str] = []
    inside = threading.Event()

    def retrying_inside_permit() -> None:
        with switch.permit(reduces_only=False):
            inside.set()
            order.append(f"woke {switch.wait(60)}")

    thread = threading.Thread(target=retrying_inside_permit)
    thread.start()
    assert inside.wait(10)
    switch.engage("stop", by="pytest")
    order.append("engage returned")
    thread.join(10)
    assert order == ["woke True", "engage returned"]
    assert errors == []


def test_a_sleep_begun_inside_a_forbidden_permit_returns_at_once(tmp_path: Path) -> None:
    switch = make(tmp_path, drain_timeout_s=0.05)
    with switch.permit(reduces_only=True):
        switch.engage("stop", by="pytest")  # the latch closes while we hold a permit
        assert switch.wait(60) is True  # no sleeping on a send the switch now forbids
    with switch.permit(reduces_only=False, is_cancel=True):
        assert switch.wait(0.01) is False  # cancels are still allowed: a normal backoff


def test_a_sleep_delaying_a_send_the_switch_already_forbids_returns_at_once(
    tmp_path: Path,
) -> None:
    # A backoff that names the send it delays ends at once while the switch forbids that send,
    # even when the engage came before the sleep began (a retry hook that engages).
    switch = make(tmp_path)
    switch.engage("stop", by="pytest", state=REDUCING)
    assert switch.wait(60, reduces_only=False) is True
    assert switch.wait(0.01, reduces_only=True) is False  # a close may still go: a backoff
    assert switch.wait(0.01, reduces_only=False, is_cancel=True) is False
    with pytest.raises(ValueError, match="reduces_only must be a bool"):
        switch.wait(0.01, reduces_only="yes")  # type: ignore[arg-type]

    async def asynchronously() -> tuple[bool, bool]:
        return (
            await switch.wait_async(60, reduces_only=False),
            await switch.wait_async(0.01, reduces_only=True),
        )

    assert asyncio.run(asynchronously()) == (True, False)


def test_the_optional_signal_handler_engages_and_is_restored_on_close(tmp_path: Path) -> None:
    import os
    import signal

    before = signal.getsignal(signal.SIGUSR2)
    switch = make(tmp_path, install_signal_handler=True, signal="SIGUSR2")
    assert signal.getsignal(signal.SIGUSR2) == before  # built: nothing installed yet
    switch.start()
    engaged = threading.Event()
    switch.add_listener(lambda state: engaged.set())
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        assert engaged.wait(10)
        state = switch.state
        assert (state.state, state.reason) == (HALTED, "signal SIGUSR2 received")
        assert state.by == f"signal:{os.getpid()}"
    finally:
        switch.close()
    assert signal.getsignal(signal.SIGUSR2) == before


def test_signal_handler_needs_the_main_thread(tmp_path: Path) -> None:
    caught: list[BaseException] = []

    def build() -> None:
        try:
            make(tmp_path, install_signal_handler=True).start()
        except ValueError as exc:
            caught.append(exc)

    thread = threading.Thread(target=build)
    thread.start()
    thread.join(10)
    assert len(caught) == 1
    assert "install_signal_handler" in str(caught[0])


def test_an_engage_racing_another_process_keeps_the_first_engagement(tmp_path: Path) -> None:
    # Two processes both saw ACTIVE, then both engage: the second finds the first's HALTED
    # on disk when it comes to write. Engaging is idempotent across processes too: the first
    # engagement (who, why, when the cooling period began) holds, and is recorded once.
    clock = ManualClock(1_700_000_000.0)
    first, second = make(tmp_path, clock, poll_interval_s=60.0), make(tmp_path, clock)
    assert (first.state.state, second.state.state) == (ACTIVE, ACTIVE)
    second.engage("first stop", by="alice")
    clock.advance(5)
    outcome = first.engage("second stop", by="bob")
    assert (outcome.by, outcome.reason, outcome.since) == ("alice", "first stop", 1_700_000_000.0)
    assert make(tmp_path).state == outcome
    history = first.store.history()  # type: ignore[attr-defined]
    assert [(e["event"], e["by"]) for e in history] == [("engage", "alice")]


def test_an_engage_still_draining_when_a_second_engage_comes_is_announced(
    tmp_path: Path,
) -> None:
    # The second engage changes nothing, but it looks at the store (another process may have
    # resumed) and finds it behind the latch: it writes the latch's state there. The first,
    # persisting after its drain, must know that state for its own and announce it (the
    # webhook, the listeners, the ladder), not take it for another process's engage.
    switch = make(tmp_path)
    heard: list[SwitchState] = []
    switch.add_listener(heard.append)
    with switch.permit(reduces_only=False):  # an order in flight: the first engage drains it
        first = threading.Thread(target=switch.engage, args=("first",), kwargs={"by": "a"})
        first.start()
        while switch.state.state is not HALTED:  # the latch closed; the drain waits on us
            first.join(0.001)
        assert first.is_alive()
        switch.engage("second", by="b")  # as tight: changes nothing (and waits for nothing)
    first.join()
    assert [(s.state, s.reason) for s in heard] == [(HALTED, "first")]
    stored = switch.store.load()
    assert stored is not None
    assert stored.reason == "first"
    switch.close()


def test_a_switch_starts_no_thread_until_started_and_stops_it_on_close(tmp_path: Path) -> None:
    def watchers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "safeguard-killswitch-watch"]

    before = len(watchers())
    config = KillSwitchConfig(state_dir=tmp_path / "state", poll_interval_s=0.01)
    switch = KillSwitch(config)
    assert len(watchers()) == before
    assert switch.start() is switch.start()  # once: a second start does nothing
    assert len(watchers()) == before + 1
    switch.close()
    assert len(watchers()) == before
    with pytest.raises(ValueError, match="closed"):
        switch.start()
