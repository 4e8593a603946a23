"""How fast the kill switch closes every order path.

1. In process: ``--senders`` threads loop ``with switch.permit(...)`` around a short "send",
   ``--waiters`` threads sleep in ``switch.wait(60)`` (retry backoffs). We call ``engage()`` and
   measure, from the call:
   - *first send refused*: the latch is closed (observed by a sender);
   - *last send in flight exited*: the last send that was past the gate when the latch closed
     has left it (stamped by its own thread): from this instant no order path can send;
   - *drain returned*: the engaging thread's drain has seen the last send exit (it needs the
     GIL back to see it): from here engage knows every order path is closed;
   - *drained* ("last order path closed"): the moment engage starts persisting, after it has
     also woken the retry sleepers (so it includes their competing for the GIL);
   - *waiters woken*: the last retry sleeper returned from ``wait``;
   - *engage returned*: including the atomic write (fsync) of the state file.
   Also the cost of one uncontended ``permit`` (what the gate adds to every order).
2. Across processes: a bot in a subprocess loops ``permit()`` with ``poll_interval_s``; we
   engage from this process through the state directory and measure state written -> bot
   refuses; then the same with the real ``safeguard kill`` command (process start included).

Run: ``.venv/bin/python benchmarks/bench_killswitch.py`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from safeguard._config import KillSwitchConfig
from safeguard._errors import TradingHalted
from safeguard.killswitch import FileStateStore, KillSwitch, SwitchState
from safeguard.killswitch._store import MemoryStateStore


class StampedStore:
    """Wraps a store; records when engage reaches its persist step (after the drain)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.locked_at: float | None = None

    def load(self) -> SwitchState | None:
        result: SwitchState | None = self.inner.load()
        return result

    def save(self, state: SwitchState) -> None:
        self.inner.save(state)

    def append_history(self, event: Mapping[str, Any]) -> None:
        self.inner.append_history(event)

    def version(self) -> object:
        return self.inner.version()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        if self.locked_at is None:
            self.locked_at = time.perf_counter()
        with self.inner.lock():
            yield


def one_round(
    senders: int, waiters: int, directory: Path | None, send_s: float
) -> dict[str, float]:
    inner: Any = FileStateStore(directory) if directory else MemoryStateStore()
    store = StampedStore(inner)
    config = KillSwitchConfig(state_dir=directory or Path("."), drain_timeout_s=5.0)
    switch = KillSwitch(config, store=store, watch=False)
    # When the engaging thread's drain returns (a private hook, benchmark only): from here it
    # knows every order path is closed; waking the retry sleepers and persisting come after.
    drained_at: list[float] = []
    drain = switch._sends.drain

    def stamped_drain(*args: Any, **kwargs: Any) -> int:
        left = drain(*args, **kwargs)
        drained_at.append(time.perf_counter())
        return left

    switch._sends.drain = stamped_drain  # type: ignore[method-assign]
    stop = threading.Event()
    woke: list[float] = []
    running = threading.Barrier(senders + waiters + 1)

    refused: list[float] = []
    last_exits: list[float] = []

    def sender() -> None:
        running.wait()
        exited = 0.0
        while not stop.is_set():
            try:
                with switch.permit(reduces_only=False):
                    time.sleep(send_s)  # on the wire: I/O releases the GIL, as a socket does
                exited = time.perf_counter()  # this thread's send is over
            except TradingHalted:
                refused.append(time.perf_counter())
                last_exits.append(exited)
                return

    def waiter() -> None:
        running.wait()
        switch.wait(60)
        woke.append(time.perf_counter())

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    threads += [threading.Thread(target=waiter) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    running.wait()
    # Engage only once every sleeper is blocked inside wait() (a private peek, benchmark only):
    # a thread that had not yet started waiting would sleep its full 60 s.
    while len(switch._changed._waiters) < waiters:  # type: ignore[attr-defined]
        time.sleep(0.001)
    start = time.perf_counter()
    switch.engage("benchmark", by="bench")
    returned = time.perf_counter()
    stop.set()
    for thread in threads:
        thread.join(10)
    switch.close()
    assert store.locked_at is not None
    return {
        "latched": min(refused) - start,
        # The last send past the gate left it: from here no order path sends (the engaging
        # thread hears of it when it next gets the GIL, "drained").
        "closed": max(0.0, max(last_exits) - start),
        "drain_returned": drained_at[0] - start,
        "drained": store.locked_at - start,
        "woken": (max(woke) - start) if woke else 0.0,
        "returned": returned - start,
    }


def permit_cost(rounds: int = 5, n: int = 100_000) -> None:
    """What the gate adds to every order: one uncontended ``permit`` entered and exited."""
    config = KillSwitchConfig(state_dir=Path("."))
    switch = KillSwitch(config, store=MemoryStateStore(), watch=False)
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(n):
            with switch.permit(reduces_only=False):
                pass
        per_call.append((time.perf_counter() - start) / n)
    print(f"permit enter+exit, uncontended, {rounds} x {n:,}")
    print("  " + summary("one permit", per_call))


def in_process(args: argparse.Namespace) -> None:
    for label, use_file in (("memory store", False), ("file store (fsync)", True)):
        rounds: list[dict[str, float]] = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                directory = Path(tmp) if use_file else None
                rounds.append(one_round(args.senders, args.waiters, directory, args.send_s))
        print(
            f"in-process, {label}: {args.senders} senders ({args.send_s * 1e6:.0f} us sends), "
            f"{args.waiters} waiters, {args.rounds} rounds"
        )
        for key, title in (
            ("latched", "engage -> first send refused"),
            ("closed", "engage -> last send in flight exited"),
            ("drain_returned", "engage -> drain returned (all closed)"),
            ("drained", "engage -> last order path closed"),
            ("woken", "engage -> last retry sleeper woken"),
            ("returned", "engage -> engage returned (persisted)"),
        ):
            print("  " + summary(title, [r[key] for r in rounds]))


BOT = textwrap.dedent(
    """
    import sys, time
    from safeguard._config import KillSwitchConfig
    from safeguard._errors import TradingHalted
    from safeguard.killswitch import KillSwitch

    config = KillSwitchConfig(state_dir=sys.argv[1], poll_interval_s=float(sys.argv[2]))
    with KillSwitch(config, watch=False) as switch:
        print("ready", flush=True)
        while True:
            try:
                with switch.permit(reduces_only=False):
                    pass
            except TradingHalted:
                print(time.time(), flush=True)
                break
            time.sleep(0.0005)  # a bot that places an order every half millisecond
    """
)


def across_processes(args: argparse.Namespace) -> None:
    for use_cli in (False, True):
        notice: list[float] = []
        total: list[float] = []
        for _ in range(args.process_rounds):
            with tempfile.TemporaryDirectory() as tmp:
                bot = subprocess.Popen(
                    [sys.executable, "-c", BOT, tmp, str(args.poll)],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert bot.stdout is not None
                assert bot.stdout.readline().strip() == "ready"
                # A random phase against the bot's poll, so the figures are not one alignment.
                time.sleep(0.1 + random.uniform(0.0, args.poll))
                started = time.time()
                if use_cli:
                    subprocess.run(
                        [sys.executable, "-m", "safeguard", "kill", "--reason", "bench",
                         "--state-dir", tmp],
                        check=True,
                        capture_output=True,
                    )  # fmt: skip
                else:
                    config = KillSwitchConfig(state_dir=Path(tmp))
                    KillSwitch(config, watch=False).engage("bench", by="bench")
                refused_at = float(bot.stdout.readline())
                bot.wait(10)
                state = FileStateStore(tmp).load()
                assert state is not None
                notice.append(refused_at - state.since)
                total.append(refused_at - started)
        how = "`safeguard kill` subprocess" if use_cli else "engage from another process"
        print(f"across processes ({how}), poll_interval_s={args.poll}, "
              f"{args.process_rounds} rounds")  # fmt: skip
        print("  " + summary("state written -> bot refuses", notice))
        print("  " + summary("command start -> bot refuses", total))


def summary(title: str, values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{title:<40} median {ms(statistics.median(ordered))}  p99 {ms(p99)}  max {ms(ordered[-1])}"
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--waiters", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--send-s", type=float, default=0.0002, help="time a send is in flight")
    parser.add_argument("--process-rounds", type=int, default=8)
    parser.add_argument("--poll", type=float, default=0.05, help="bot's poll_interval_s")
    parser.add_argument("--skip-processes", action="store_true")
    args = parser.parse_args()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average {load}")
    permit_cost()
    in_process(args)
    if not args.skip_processes:
        across_processes(args)


if __name__ == "__main__":
    main()
