"""A whole paper run: both sides into one journal, then the summary and the report.

from safeguard.paper._session import run_paper
result = run_paper(config, Path("out"))
print(result.html, result.summaries["naive"].duplicates)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from safeguard.paper._journal import JOURNAL_NAME, RUNS, JournalWriter, read_journal
from safeguard.paper._report import write_report
from safeguard.paper._runner import PaperConfig, Run, run_side
from safeguard.paper._summary import RunSummary, summarize_all

Progress = Callable[[Run, int, int], None]
"""Called after each bar with the run, bars done and bars in all."""


@dataclass(frozen=True)
class PaperResult:
    out: Path
    html: Path | None
    """The report page; ``None`` without the report extra (``safeguard[report]``)."""
    journal: Path
    summaries: dict[str, RunSummary]


def run_paper(config: PaperConfig, out: Path, *, progress: Progress | None = None) -> PaperResult:
    """Run the guarded side, then the naive side, and write the report into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    journal = out / JOURNAL_NAME
    with JournalWriter(journal) as writer:
        for run in RUNS:
            side: Run = "guarded" if run == "guarded" else "naive"

            def tick(done: int, total: int, side: Run = side) -> None:
                if progress is not None:
                    progress(side, done, total)

            run_side(config, side, writer.for_run(side), progress=tick)
    records = list(read_journal(journal))
    summaries = summarize_all(records)
    html = write_report(out, records, summaries, journal_name=JOURNAL_NAME)
    return PaperResult(out=out, html=html, journal=journal, summaries=summaries)


__all__ = ["JOURNAL_NAME", "PaperResult", "Progress", "run_paper"]
