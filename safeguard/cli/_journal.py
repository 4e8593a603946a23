"""``safeguard journal PATH``: a paper run's journal explained, one decision per line.

    safeguard journal safeguard-paper-20260101-120000          # the report folder
    safeguard journal out/journal.jsonl --run naive --grep duplicate

Every denial comes with the numbers behind it ("order 42 denied STOP_BEYOND_LIQUIDATION: stop
fill 57,850 is 0.3 % beyond liquidation 57,680 ...; policy needs 1 %"), every duplicate with
how many times it reached the venue, every ban, health change, kill-switch trip and
liquidation with its figures.

Exit codes: 0 explained; 2 no such journal or a line that is not a journal record.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "journal",
        help="explain a paper run's journal: every decision with its numbers",
        description="Explain a `safeguard paper` journal (journal.jsonl, or its report folder).",
    )
    parser.add_argument("path", type=Path, help="journal.jsonl or the report folder holding it")
    parser.add_argument("--run", choices=("guarded", "naive"), help="one run only")
    parser.add_argument("--grep", metavar="TEXT", help="only lines containing TEXT")
    parser.add_argument(
        "--summary",
        action="store_true",
        help="print the figures recounted from the journal, then stop",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from safeguard.paper._explain import explain
    from safeguard.paper._journal import JOURNAL_NAME, read_journal

    path: Path = args.path / JOURNAL_NAME if args.path.is_dir() else args.path
    records = list(read_journal(path))  # ConfigError: printed by main, exit 2
    if args.summary:
        from safeguard.cli._paper import print_summary
        from safeguard.paper._summary import summarize_all

        summaries = summarize_all(records)
        print_summary({run: s for run, s in summaries.items() if args.run in (None, run)})
        return 0
    shown = 0
    try:
        for line in explain(records, run=args.run):
            if args.grep and args.grep.lower() not in line.lower():
                continue
            print(line)
            shown += 1
    except BrokenPipeError:
        # Piped into ``head``: the reader has what it wanted. Silence the exit-time flush too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    if shown == 0:
        print(
            "nothing to explain: no denials, duplicates, bans, trips or liquidations",
            file=sys.stderr,
        )
    return 0


__all__ = ["register"]
