"""No order gets through once ``engage`` has returned, under a flood of concurrent senders.

Every send takes a number from one global counter inside its permit; the engager takes a
number the moment ``engage`` returns. Any send numbered after that mark slipped through.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from pathlib import Path

from loguru import logger

from safeguard._config import KillSwitchConfig
from safeguard._errors import TradingHalted
from safeguard.killswitch._store import MemoryStateStore
from safeguard.killswitch._switch import KillSwitch, TradingState


def make(tmp_path: Path) -> KillSwitch:
    # An in-memory store: an fsync inside engage would give sends in flight time to finish
    # and hide a broken drain.
    config = KillSwitchConfig(state_dir=tmp_path, poll_interval_s=0.01, drain_timeout_s=10.0)
    return KillSwitch(config, store=MemoryStateStore(), watch=False)


def test_threads_flooding_permits_and_retry_waits(tmp_path: Path) -> None:
    switch = make(tmp_path)
    counter = itertools.count()
    sends: list[int] = []
    refusals = [0] * 8
    woke: list[bool] = []
    stop = threading.Event()

    def sender(index: int) -> None:
        while not stop.is_set():
            try:
                with switch.permit(reduces_only=index % 2 == 1):
                    time.sleep(0.002)  # the request is on the wire
                    sends.append(next(counter))
            except TradingHalted:
                refusals[index] += 1

    def retrier() -> None:
        # An order waiting out a backoff: the engage must cut the wait short, and the retry
        # that follows must be refused.
        woke.append(switch.wait(60))
        try:
            with switch.permit(reduces_only=False):
                sends.append(next(counter))
        except TradingHalted:
            woke.append(False)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(8)]
    threads += [threading.Thread(target=retrier) for _ in range(4)]
    for thread in threads:
        thread.start()
    while len(sends) < 1000:
        threading.Event().wait(0.001)
    switch.engage("flood test", by="pytest")
    mark = next(counter)
    while min(refusals) < 50:  # every sender has been refused many times since
        threading.Event().wait(0.001)
    stop.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()

    assert len(sends) >= 1000
    late = [n for n in sends if n > mark]
    assert late == [], f"{len(late)} sends after engage returned"
    assert woke.count(True) == 4  # every retry sleeper woke on the engage
    assert woke.count(False) == 4  # and its retry was refused


async def test_asyncio_tasks_flooding_permits_engaged_from_another_thread(tmp_path: Path) -> None:
    switch = make(tmp_path)
    counter = itertools.count()
    sends: list[int] = []
    refused = [0]
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            try:
                with switch.permit(reduces_only=False):
                    sends.append(next(counter))
            except TradingHalted:
                refused[0] += 1
            await asyncio.sleep(0)

    async def retrier() -> bool:
        return await switch.wait_async(60)

    tasks = [asyncio.create_task(sender()) for _ in range(50)]
    sleepers = [asyncio.create_task(retrier()) for _ in range(10)]
    while len(sends) < 5000:
        await asyncio.sleep(0.001)

    def engage() -> int:
        switch.engage("flood test", by="pytest")
        return next(counter)

    mark = await asyncio.to_thread(engage)
    while refused[0] < 1000:
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.gather(*tasks)
    assert await asyncio.wait_for(asyncio.gather(*sleepers), 10) == [True] * 10
    assert [n for n in sends if n > mark] == []


async def test_engage_async_waits_for_tasks_holding_permits_across_awaits(tmp_path: Path) -> None:
    switch = make(tmp_path)
    counter = itertools.count()
    sends: list[int] = []
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            try:
                with switch.permit(reduces_only=False):
                    await asyncio.sleep(0.05)  # the request is on the wire
                    sends.append(next(counter))
            except TradingHalted:
                await asyncio.sleep(0.001)

    tasks = [asyncio.create_task(sender()) for _ in range(20)]
    while len(sends) < 100:
        await asyncio.sleep(0.001)
    state = await switch.engage_async("flood test", by="pytest")
    mark = next(counter)
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*tasks)
    assert state.state is TradingState.HALTED
    assert [n for n in sends if n > mark] == []


async def test_sync_engage_on_the_loop_thread_does_not_stall_the_loop(tmp_path: Path) -> None:
    # A trigger in async code calling the blocking engage(): the loop's own tasks cannot
    # finish their sends while it blocks, so it must not wait for them (it would stall the
    # loop for drain_timeout_s and then complain that they did not finish).
    records: list[tuple[str, str]] = []
    logger.enable("safeguard")
    sink = logger.add(lambda m: records.append((m.record["level"].name, m.record["message"])))
    try:
        switch = make(tmp_path)
        inside = asyncio.Event()
        release = asyncio.Event()

        async def sender() -> None:
            with switch.permit(reduces_only=False):
                inside.set()
                await release.wait()

        task = asyncio.create_task(sender())
        await inside.wait()
        state = switch.engage("trigger in async code", by="pytest")
        release.set()
        await task
    finally:
        logger.remove(sink)
        logger.disable("safeguard")
    assert state.state is TradingState.HALTED
    assert [level for level, _ in records if level == "ERROR"] == []  # no "did not finish"
    (warning,) = [m for level, m in records if level == "WARNING"]
    assert "1 send(s) by tasks of that loop" in warning
