"""Many seeds, a report, replay commands, and the shrinker.

A seed that breaks an invariant is replayed with the command printed for it; the shrinker
then drops faults from its schedule, one at a time, keeping each drop that still breaks an
invariant, until no single fault can go: the fewest faults it found that still fail.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from safeguard.sim._fleet import redis_binary
from safeguard.sim._world import Outcome, SimCrash, World

DEFAULT_BARS = 16


def run_seed(seed: int, *, bars: int = DEFAULT_BARS, keep: list[int] | None = None) -> Outcome:
    """One seed, all its faults (or only those at the indices ``keep``). An exception out of
    the world itself (the product raising where no bot called it: a kill switch's resume, a
    guard's start) is that seed's failure, with its trace, not the end of the whole run."""
    world = World(seed, bars=bars, keep=keep)
    try:
        return world.run()
    except (Exception, SimCrash) as exc:  # a kill the world did not catch is its own bug
        where = traceback.extract_tb(exc.__traceback__)[-1]
        world.fail(
            "no unhandled exception",
            f"{type(exc).__name__}: {exc} (at {Path(where.filename).name}:{where.lineno})",
        )
        return world.outcome()


def replay_command(seed: int, *, bars: int = DEFAULT_BARS, keep: list[int] | None = None) -> str:
    command = f"safeguard sim --seed {seed}"
    if bars != DEFAULT_BARS:
        command += f" --bars {bars}"
    if keep is not None:
        command += f" --faults {','.join(map(str, keep)) or 'none'}"
    return command


def shrink(
    seed: int,
    *,
    bars: int = DEFAULT_BARS,
    run: Callable[[int, int, list[int]], Outcome] | None = None,
) -> tuple[list[int], Outcome]:
    """The fewest faults of the seed's schedule (indices) that still break an invariant, and
    that run's outcome. Greedy one-at-a-time removal, repeated until nothing more can go."""

    def attempt(indices: list[int]) -> Outcome:
        if run is not None:
            return run(seed, bars, indices)
        return run_seed(seed, bars=bars, keep=indices)

    everything = World.schedule_of(seed, bars)
    keep = list(range(len(everything)))
    best = attempt(keep)
    if best.ok:
        return keep, best
    changed = True
    while changed and keep:
        changed = False
        for index in list(keep):
            trial = [i for i in keep if i != index]
            outcome = attempt(trial)
            if not outcome.ok:
                keep, best, changed = trial, outcome, True
    return keep, best


@dataclass
class Report:
    seeds: int = 0
    seconds: float = 0.0
    fired: Counter[str] = field(default_factory=Counter)
    checks: Counter[str] = field(default_factory=Counter)
    orders: int = 0
    failures: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.seeds += 1
        self.fired.update(outcome.fired)
        self.checks.update(outcome.checks)
        self.orders += outcome.orders
        if not outcome.ok:
            self.failures.append(outcome)

    def lines(self, *, bars: int = DEFAULT_BARS) -> list[str]:
        rate = self.seeds / self.seconds if self.seconds else 0.0
        binary = redis_binary()
        out = [
            f"fleet mode: on ({binary})"
            if binary is not None
            else "fleet mode: off (no redis-server on PATH, or no redis-py): Redis faults "
            "were not simulated",
            f"seeds run: {self.seeds} ({bars} bars of simulated trading each) in "
            f"{self.seconds:.1f} s ({rate:.2f} seeds/s); orders on the venue: {self.orders}",
            "faults injected: "
            + ", ".join(f"{kind} {n}" for kind, n in sorted(self.fired.items())),
            "invariants checked: "
            + ", ".join(f"{name} {n}" for name, n in sorted(self.checks.items())),
            f"failures: {len(self.failures)}",
        ]
        out.extend(f"  {failure_line(outcome, bars=bars)}" for outcome in self.failures)
        return out


def run_seeds(
    seeds: Iterable[int],
    *,
    bars: int = DEFAULT_BARS,
    progress: Callable[[int, Outcome], None] | None = None,
) -> Report:
    report = Report()
    started = time.perf_counter()
    for n, seed in enumerate(seeds, start=1):
        outcome = run_seed(seed, bars=bars)
        report.add(outcome)
        report.seconds = time.perf_counter() - started
        if progress is not None:
            progress(n, outcome)
    return report


def explain(outcome: Outcome, *, bars: int = DEFAULT_BARS, keep: list[int] | None = None) -> str:
    """The failing run in a few lines: what broke, the faults, the events that led to it."""
    lines = [f"seed {outcome.seed}: {'ok' if outcome.ok else 'FAILED'}"]
    for failure in outcome.failures[:5]:
        lines.append(f"  broken: {failure.invariant} (bar {failure.bar}): {failure.detail}")
    lines.append("  faults:")
    shown = keep if keep is not None else list(range(len(outcome.faults)))
    for index, fault in zip(shown, outcome.faults, strict=False):
        lines.append(f"    [{index}] {fault.describe()}")
    if not outcome.ok:
        lines.append("  trace (last events):")
        lines.extend(f"    {line}" for line in outcome.trace)
        lines.append(f"  replay: {replay_command(outcome.seed, bars=bars, keep=keep)}")
    return "\n".join(lines)


def failure_line(outcome: Outcome, *, bars: int = DEFAULT_BARS) -> str:
    first = outcome.failures[0]
    return (
        f"seed {outcome.seed}: {first.invariant} at bar {first.bar}: {first.detail}"
        f"  -> replay: {replay_command(outcome.seed, bars=bars)}"
    )


def stderr_progress(total: int, *, bars: int = DEFAULT_BARS) -> Callable[[int, Outcome], None]:
    """A one-line progress report on stderr (no dependency): seeds done, rate, failures."""
    started = time.perf_counter()
    failed = 0

    def show(done: int, outcome: Outcome) -> None:
        nonlocal failed
        failed += not outcome.ok
        if not outcome.ok:
            sys.stderr.write(f"\r{failure_line(outcome, bars=bars)}\n")
        if done != total and done % max(1, total // 200) and outcome.ok:
            return
        elapsed = time.perf_counter() - started
        rate = done / elapsed if elapsed else 0.0
        eta = (total - done) / rate if rate else 0.0
        width = 30
        filled = int(width * done / total) if total else width
        bar = "#" * filled + "." * (width - filled)
        sys.stderr.write(
            f"\r[{bar}] {done}/{total} seeds, {rate:.2f}/s, {failed} failed, eta {eta:,.0f} s "
        )
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


__all__ = [
    "DEFAULT_BARS",
    "Report",
    "explain",
    "replay_command",
    "run_seed",
    "run_seeds",
    "shrink",
    "stderr_progress",
]
