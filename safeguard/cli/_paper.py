"""``safeguard paper``: a strategy on the mock venue, guarded and naive, side by side.

No exchange account and no network: the built-in trend follower (or ``--strategy``) trades a
day of simulated market twice under the same seed and fault plan, once through the guarded
exchange and once through plain ccxt with naive retries. A summary table is printed and a
report (HTML, PNG plots, the JSON-lines journal, ``summary.json``) is written to ``--out``::

    safeguard paper
    safeguard paper --seed 3 --duration 6h --symbols BTC/USDT:USDT,ETH/USDT:USDT --out report
    safeguard paper --strategy mybot:MyStrategy --faults plan.toml --policy safeguard.toml
    safeguard paper --streams       # the built-in strategy written on watch_* (ccxt.pro)

Exit codes: 0 the run finished; 2 bad input (a typo in a file, an unknown symbol). A bad
``--policy`` or ``--faults`` file raises ``ConfigError``, which ``safeguard`` prints (exit 2).
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from safeguard.paper._runner import Run

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "paper",
        help="paper-trade a strategy on the mock venue, guarded and naive, and report",
        description=(
            "Run a strategy on the embedded mock venue in simulated time, twice: through the "
            "guarded exchange and through plain ccxt with naive retries, under the same seed "
            "and fault plan. Prints a summary and writes an HTML report."
        ),
    )
    parser.add_argument("--seed", type=int, default=7, help="market and fault seed (default 7)")
    parser.add_argument(
        "--duration",
        type=duration_s,
        default=86_400.0,
        help="simulated time, e.g. 24h, 90m, 2d (default 24h)",
    )
    parser.add_argument(
        "--bar",
        type=duration_s,
        default=None,
        help="time between strategy steps (default: duration / 720)",
    )
    parser.add_argument(
        "--symbols",
        default="BTC/USDT:USDT",
        help="comma-separated markets (BTC/USDT:USDT, ETH/USDT:USDT, SOL/...)",
    )
    parser.add_argument("--wallet", type=float, default=10_000.0, help="starting USDT")
    parser.add_argument(
        "--faults", type=Path, help="fault plan (TOML or JSON) instead of the default scenario"
    )
    parser.add_argument("--policy", type=Path, help="policy TOML for the guarded run")
    parser.add_argument(
        "--strategy",
        help="MODULE[:callable] building your strategy from the "
        "symbols (default: the built-in TrendFollower)",
    )
    parser.add_argument(
        "--streams",
        action="store_true",
        help="the built-in strategy written on watch_* (ccxt.pro streams; the guard's view "
        "fed by the same streams) instead of the bar-polling TrendFollower",
    )
    parser.add_argument(
        "--http",
        action="store_true",
        help="serve the venue over loopback HTTP instead of in process",
    )
    parser.add_argument(
        "--out", type=Path, help="report folder (default: ./safeguard-paper-YYYYmmdd-HHMMSS)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run)


def duration_s(text: str) -> float:
    """``"24h"``, ``"90m"``, ``"45s"``, ``"2d"`` or a number of seconds, as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 24h, 90m, 3600s)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"a duration must be positive, got {text!r}")
    return seconds


def _run(args: argparse.Namespace) -> int:
    # Imported here: matplotlib and ccxt take a while, and other commands need neither.
    from safeguard._config import Policy
    from safeguard.paper._runner import PaperConfig, paper_policy, venue_symbol
    from safeguard.paper._scenario import default_plan
    from safeguard.paper._strategy import (
        StrategyFactory,
        StreamTrend,
        TrendFollower,
        load_factory,
    )
    from safeguard.venue._faults import FaultPlan

    try:
        symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
        venue_names = [venue_symbol(s) for s in symbols]
        if not symbols:
            raise ValueError("symbols: name at least one market")
        if not args.wallet > 0 or args.wallet == float("inf"):
            raise ValueError(f"wallet must be a finite number > 0, got {args.wallet!r}")
        bar_s = args.bar if args.bar is not None else max(5.0, args.duration / 720.0)
        if args.duration < 600 or bar_s > args.duration / 20:
            raise ValueError(
                "duration must be at least 10 minutes and hold at least 20 bars "
                f"(got {args.duration:g} s with {bar_s:g} s bars)"
            )
        if args.streams and args.strategy:
            raise ValueError(
                "--streams runs the built-in stream strategy; for your own, give --strategy "
                "alone (a strategy whose on_bar is async runs on watch_*)"
            )
        factory: StrategyFactory = (
            load_factory(args.strategy)
            if args.strategy
            else StreamTrend
            if args.streams
            else TrendFollower
        )
    except ImportError as exc:
        print(
            f"safeguard paper: strategy {args.strategy!r} cannot be imported: {exc}",
            file=sys.stderr,
        )
        return 2
    except ValueError as exc:
        print(f"safeguard paper: {exc}", file=sys.stderr)
        return 2
    out: Path = args.out or Path(f"safeguard-paper-{datetime.now(UTC):%Y%m%d-%H%M%S}")
    faults = (
        FaultPlan.load(args.faults)
        if args.faults
        else default_plan(args.duration, venue_names, seed=args.seed)
    )
    base = Policy.load(args.policy) if args.policy else None
    # Before the run, not after it (the inputs are good by now: a bad one leaves no folder).
    out.mkdir(parents=True, exist_ok=True)
    if not os.access(out, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write the report there", str(out))
    with tempfile.TemporaryDirectory(prefix="safeguard-paper-state-") as state:
        config = PaperConfig(
            policy=paper_policy(base, Path(state)),
            faults=faults,
            seed=args.seed,
            duration_s=args.duration,
            bar_s=bar_s,
            symbols=tuple(_unified(s) for s in venue_names),
            wallet=float(args.wallet),
            transport="http" if args.http else "inprocess",
            strategy=factory,
        )
        result = _with_progress(config, out, enabled=not args.no_progress)
    print_summary(result.summaries)
    if result.html is not None:
        print(f"report: {result.html}")
    else:
        from safeguard.paper._report import REPORT_MISSING

        print(f"note: {REPORT_MISSING}")
    print(f"journal: {result.journal}  (explain it: safeguard journal {result.journal})")
    return 0


def _unified(venue_name: str) -> str:
    from safeguard.paper._runner import unified_symbol

    return unified_symbol(venue_name)


def _with_progress(config: Any, out: Path, *, enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from safeguard.paper._session import run_paper

    if not enabled:
        return run_paper(config, out)
    columns = (
        TextColumn("{task.description:<8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        tasks = {run: bar.add_task(run, total=config.bars) for run in ("guarded", "naive")}

        def tick(run: Run, done: int, total: int) -> None:
            bar.update(tasks[run], completed=done, total=total)

        return run_paper(config, out, progress=tick)


def print_summary(summaries: Any) -> None:
    """The runs side by side, one row per figure (``paper`` and ``journal --summary``)."""
    from rich.console import Console
    from rich.table import Table

    from safeguard.paper._report import summary_rows

    table = Table(title="paper run: " + " vs ".join(summaries), title_justify="left")
    table.add_column("")
    for run in summaries:
        table.add_column(run, justify="right")
    for label, cells in summary_rows(summaries):
        table.add_row(label, *cells)
    Console().print(table)


__all__ = ["duration_s", "print_summary", "register"]
