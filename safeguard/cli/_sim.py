"""``safeguard sim``: the deterministic simulator, many seeds or one.

    safeguard sim --seeds 1000                     # seeds 0..999, a progress bar, a report
    safeguard sim --seeds 200 --start 5000 --jobs 2
    safeguard sim --seed 42                        # one seed: its faults and its trace
    safeguard sim --seed 42 --faults 1,3           # only these faults of its schedule
    safeguard sim --seed 42 --shrink               # the fewest faults that still fail

Each seed runs a population of guarded bots on the mock venue in simulated time under the
seed's faults (venue, process kills, torn writes, a full disk, clock steps, engages) and checks
the invariants after every bar (see :mod:`safeguard.sim`). A failing seed is printed with the
command that replays it.

Exit codes: 0 every invariant held; 1 an invariant broke (the report names the seeds);
2 bad arguments.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Any

MAX_SEEDS = 10_000_000


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= MAX_SEEDS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_SEEDS:,}, got {text!r}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"a seed is 0 or more, got {text!r}")
    return value


def _bars(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 4 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"expected 4 to 10000 bars, got {text!r}")
    return value


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"expected 1 to 64 jobs, got {text!r}")
    return value


def _indices(text: str) -> list[int]:
    if text.strip() == "none":
        return []
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected fault indices like 0,2,5 (or none), got {text!r}"
        ) from None
    if any(v < 0 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"fault indices are distinct and 0 or more: {text!r}")
    return sorted(values)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sim",
        help="deterministic simulation: guarded bots under seeded faults, invariants checked",
        description="Run the deterministic simulator over many seeds, or replay one seed.",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seeds", type=_count, help="how many seeds to run (default 100)")
    which.add_argument("--seed", type=_seed, help="replay this one seed, with its trace")
    parser.add_argument("--start", type=_seed, default=0, help="the first seed (default 0)")
    parser.add_argument(
        "--bars", type=_bars, default=None, help="simulated minutes per seed (default 16)"
    )
    parser.add_argument(
        "--faults", type=_indices, help="with --seed: only these faults of its schedule"
    )
    parser.add_argument(
        "--shrink", action="store_true", help="reduce each failing seed to its fewest faults"
    )
    parser.add_argument(
        "--jobs", type=_jobs, default=1, help="worker processes for --seeds (default 1)"
    )
    parser.set_defaults(handler=_run)


def _quiet() -> None:
    """No records on the terminal: each world turns safeguard's records on to read them
    itself (its oracle checks them), and loguru's default sink would print every one."""
    from safeguard._log import logger

    with contextlib.suppress(ValueError):  # already gone
        logger.remove(0)


def _run(args: argparse.Namespace) -> int:
    from safeguard._errors import ConfigError
    from safeguard.sim._runner import DEFAULT_BARS

    _quiet()
    bars = args.bars or DEFAULT_BARS
    if args.faults is not None and args.seed is None:
        raise ConfigError("--faults picks faults of one seed's schedule: give --seed too")
    if args.seed is not None:
        return _one(args.seed, bars, args.faults, shrink=args.shrink)
    return _many(args.start, args.seeds or 100, bars, args.jobs, shrink=args.shrink)


def _one(seed: int, bars: int, keep: list[int] | None, *, shrink: bool) -> int:
    from safeguard._errors import ConfigError
    from safeguard.sim._runner import explain, run_seed
    from safeguard.sim._runner import shrink as shrink_seed
    from safeguard.sim._world import World

    if keep is not None:
        size = len(World.schedule_of(seed, bars))
        if any(i >= size for i in keep):
            raise ConfigError(
                f"seed {seed} has {size} faults (indices 0 to {size - 1}); got {keep}"
            )
    outcome = run_seed(seed, bars=bars, keep=keep)
    print(explain(outcome, bars=bars, keep=keep))
    if shrink and not outcome.ok:
        kept, smallest = shrink_seed(seed, bars=bars)
        print(f"shrunk to {len(kept)} fault(s):")
        print(explain(smallest, bars=bars, keep=kept))
    return 0 if outcome.ok else 1


def _many(start: int, count: int, bars: int, jobs: int, *, shrink: bool) -> int:
    from safeguard.sim._runner import Report, explain, run_seeds
    from safeguard.sim._runner import shrink as shrink_seed

    seeds = range(start, start + count)
    progress, finish = _progress(count, bars)
    if jobs == 1:
        report = run_seeds(seeds, bars=bars, progress=progress)
    else:
        import concurrent.futures
        import multiprocessing
        import time

        report = Report()
        started = time.perf_counter()
        context = multiprocessing.get_context("spawn")  # no inherited locks or loops
        with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context) as pool:
            outcomes = pool.map(_run_one, seeds, [bars] * count, chunksize=4)
            for done, outcome in enumerate(outcomes, start=1):
                report.add(outcome)
                report.seconds = time.perf_counter() - started
                progress(done, outcome)
    finish()
    for line in report.lines(bars=bars):
        print(line)
    if shrink:
        for outcome in report.failures:
            kept, smallest = shrink_seed(outcome.seed, bars=bars)
            print(explain(smallest, bars=bars, keep=kept))
    elif report.failures:
        print(explain(report.failures[0], bars=bars))
    return 0 if not report.failures else 1


def _run_one(seed: int, bars: int) -> Any:
    from safeguard.sim._runner import run_seed

    _quiet()  # a worker process of its own
    return run_seed(seed, bars=bars)


def _progress(total: int, bars: int) -> tuple[Any, Any]:
    """A rich progress bar on a terminal, a plain line on stderr otherwise."""
    from safeguard.sim._runner import failure_line

    if sys.stderr.isatty():
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
        task = bar.add_task("seeds", total=total)
        failed = 0

        def advance(done: int, outcome: Any) -> None:
            nonlocal failed
            failed += not outcome.ok
            if not outcome.ok:
                bar.console.print(failure_line(outcome, bars=bars), markup=False, highlight=False)
            bar.update(task, completed=done, description=f"seeds ({failed} failed)")

        return advance, bar.stop
    from safeguard.sim._runner import stderr_progress

    return stderr_progress(total, bars=bars), lambda: None


__all__ = ["register"]
