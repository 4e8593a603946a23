"""Event hooks: delivery by kind, unsubscribe, and hooks that fail never break the caller."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from loguru import logger

from safeguard.guard._events import (
    BandEvent,
    Event,
    EventKind,
    Hooks,
    KillEvent,
    ProtectiveStopEvent,
    RequestEvent,
    RetryEvent,
    StateChangeEvent,
    ThrottleEvent,
    VerdictEvent,
    WarningEvent,
)

SAMPLES: list[Event] = [
    RequestEvent(at=1.0, method="fetch_ticker", endpoint="GET /fapi/v1/ticker/24hr", attempt=1,
                 outcome="ok", latency_s=0.01, status=200),
    RetryEvent(at=2.0, method="create_order", attempt=1, delay_s=0.3, reason="throttled",
               error_type="DDoSProtection"),
    ThrottleEvent(at=3.0, action="wait", seconds=0.2, request_kind="READ"),
    StateChangeEvent(at=4.0, previous="NORMAL", current="DEGRADED", metric="latency_p95",
                     value=1.4, threshold=1.0),
    VerdictEvent(at=5.0, allowed=False, code="STOP_REQUIRED"),
    KillEvent(at=6.0, state="HALTED", reason="manual", by="ops"),
    ProtectiveStopEvent(at=7.0, outcome="placed", symbol="ETH/USDT:USDT",
                        entry_client_order_id="sg-1", stop_client_order_id="sg-1-sl",
                        stop_price=2900.0),
    WarningEvent(at=8.0, name="MARK_INDEX_GAP", severity="warning", message="mark off index",
                 value=1.2, threshold=1.0, symbol="BTC/USDT:USDT"),
    BandEvent(at=9.0, symbol="BTC/USDT:USDT", mark=60_000.0, margin_ratio=0.1,
              warning=55_000.0, partial=None, liquidation=54_000.0),
]  # fmt: skip


@pytest.fixture
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []
    sink_id = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    logger.enable("safeguard")
    try:
        yield lines
    finally:
        logger.disable("safeguard")
        logger.remove(sink_id)


def test_every_kind_has_an_event_class_and_events_are_frozen() -> None:
    assert {event.kind for event in SAMPLES} == set(EventKind)
    for event in SAMPLES:
        with pytest.raises(dataclasses.FrozenInstanceError):
            event.at = 0.0  # type: ignore[misc]


def test_delivery_by_kind_and_catch_all() -> None:
    hooks = Hooks()
    retries: list[Event] = []
    everything: list[Event] = []
    hooks.subscribe(EventKind.RETRY, retries.append)
    hooks.subscribe(None, everything.append)
    for event in SAMPLES:
        hooks.emit(event)
    assert retries == [SAMPLES[1]]
    assert everything == SAMPLES


def test_kind_may_be_given_as_a_string_and_unknown_kinds_are_refused() -> None:
    hooks = Hooks()
    seen: list[Event] = []
    hooks.subscribe("kill", seen.append)
    hooks.emit(SAMPLES[5])
    assert seen == [SAMPLES[5]]
    with pytest.raises(ValueError, match="kil"):
        hooks.subscribe("kil", seen.append)


def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    hooks = Hooks()
    seen: list[Event] = []
    unsubscribe = hooks.subscribe(EventKind.VERDICT, seen.append)
    hooks.emit(SAMPLES[4])
    unsubscribe()
    unsubscribe()
    hooks.emit(SAMPLES[4])
    assert seen == [SAMPLES[4]]
    assert len(hooks) == 0


def test_a_failing_hook_is_logged_and_the_others_still_run(captured_logs: list[str]) -> None:
    hooks = Hooks()
    seen: list[Event] = []

    def broken(event: Any) -> None:
        raise RuntimeError("hook bug")

    hooks.subscribe(EventKind.REQUEST, broken)
    hooks.subscribe(EventKind.REQUEST, seen.append)
    hooks.emit(SAMPLES[0])  # must not raise
    assert seen == [SAMPLES[0]]
    assert any("broken" in line and "RuntimeError: hook bug" in line for line in captured_logs)


def test_async_hooks_are_refused_at_subscription() -> None:
    async def hook(event: Any) -> None:
        return None

    with pytest.raises(ValueError, match="awaited"):
        Hooks().subscribe(EventKind.KILL, hook)
    with pytest.raises(ValueError, match="callable"):
        Hooks().subscribe(EventKind.KILL, "not a function")  # type: ignore[arg-type]


def test_a_hook_returning_a_coroutine_does_not_leak_it(captured_logs: list[str]) -> None:
    async def later() -> None:
        return None

    hooks = Hooks()
    hooks.subscribe(EventKind.KILL, lambda event: later())
    hooks.emit(SAMPLES[5])  # an un-awaited coroutine would fail the run (unraisable warning)
    assert any("awaitable" in line for line in captured_logs)


def test_subscribing_while_emitting_from_threads_is_safe() -> None:
    hooks = Hooks()
    counts = [0]
    lock = threading.Lock()

    def count(event: Any) -> None:
        with lock:
            counts[0] += 1

    hooks.subscribe(EventKind.THROTTLE, count)

    def emitter() -> None:
        for _ in range(500):
            hooks.emit(SAMPLES[2])

    def churn() -> None:
        for _ in range(200):
            hooks.subscribe(EventKind.THROTTLE, lambda event: None)()

    threads = [threading.Thread(target=emitter) for _ in range(3)]
    threads.append(threading.Thread(target=churn))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts[0] == 1500
    assert len(hooks) == 1


def test_listening_follows_subscriptions_of_the_kind_and_catch_alls() -> None:
    from safeguard.guard._events import EventKind

    hooks = Hooks()
    assert not hooks.listening(EventKind.REQUEST)
    stop = hooks.subscribe(EventKind.VERDICT, lambda event: None)
    assert hooks.listening(EventKind.VERDICT)
    assert not hooks.listening(EventKind.REQUEST)
    stop()
    assert not hooks.listening(EventKind.VERDICT)
    stop = hooks.subscribe(None, lambda event: None)
    assert hooks.listening(EventKind.REQUEST)
    assert hooks.listening(EventKind.VERDICT)
    stop()
    assert not hooks.listening(EventKind.REQUEST)
