"""The paper run's audit journal: one JSON object per line, everything the report shows.

Each record has ``t`` (simulated epoch seconds), ``run`` (``guarded`` or ``naive``) and
``kind``; the other keys depend on the kind:

==============  ==================================================================================
``start``       seed, duration_s, bar_s, symbols, wallet, transport, streams (the strategy is
                written on ``watch_*``), policy_version, faults
``bar``         i, equity, wallet, marks {symbol: mark}, positions {symbol: {amount, entry,
                liquidation, stop}}, health (NORMAL / DEGRADED / SEVERE, guarded run only)
``order``       n (the strategy's n-th order), symbol, side, type, amount, stop, reduce_only,
                outcome (``placed`` / ``denied`` / ``failed``), code, reason, findings,
                copies (how many venue orders the one call created)
``request``     method, attempt, outcome (``ok`` / ``error`` / ``throttled``), error_type
``retry``       method, attempt, delay_s, reason, resolve_first (looked up before resending)
``throttle``    action (``wait`` / ``hold`` / ``banned`` / ``429`` / ``418``), seconds, limit
``state``       previous, current, metric, value, threshold (venue health moved)
``verdict``     allowed, code, symbol, detail (the guard's pre-trade check, incl. re-checks)
``kill``        state, code, reason (the kill switch engaged)
``fill``        symbol, side, price, qty, order_id, realized_pnl
``liquidation`` symbol, side, qty, price, loss
``bar_error``   i, error_type, message (the strategy's bar raised)
``end``         equity, wallet
==============  ==================================================================================

The file is written under a temporary name and renamed when the run ends, so a journal at its
final path is always complete; a run that raised leaves only the ``.part`` file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from safeguard._errors import ConfigError

RUNS = ("guarded", "naive")
JOURNAL_NAME = "journal.jsonl"
"""The journal's file name in a report folder."""


class JournalWriter:
    """Appends records; ``close()`` (or leaving the ``with``) publishes the file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + ".part")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = self._partial.open("w", encoding="utf-8")

    def for_run(self, run: str) -> RunJournal:
        """A writer stamping every record with ``run``."""
        if run not in RUNS:
            raise ValueError(f"run must be one of {RUNS}, got {run!r}")
        return RunJournal(self, run)

    def write(self, t: float, run: str, kind: str, **fields: Any) -> None:
        if self._file is None:
            raise ValueError(f"journal {self.path} is closed")
        record = {"t": round(t, 3), "run": run, "kind": kind, **fields}
        self._file.write(json.dumps(record, default=_jsonable, allow_nan=False) + "\n")

    def close(self) -> None:
        """Publish the journal at its path (complete runs only)."""
        if self._file is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        os.replace(self._partial, self.path)

    def abandon(self) -> None:
        """Stop writing without publishing: the ``.part`` file stays for a post-mortem."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # A run that raised is not a journal of a run: never let it look like one.
        if exc_type is None:
            self.close()
        else:
            self.abandon()


class RunJournal:
    """One run's view of a :class:`JournalWriter`."""

    def __init__(self, writer: JournalWriter, run: str) -> None:
        self.writer = writer
        self.run = run

    def write(self, t: float, kind: str, **fields: Any) -> None:
        self.writer.write(t, self.run, kind, **fields)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    return str(value)


def read_journal(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """The records of a journal, in order. A line that is not a JSON object is a
    :class:`ConfigError` naming the file and line (a journal is evidence: no guessing)."""
    file = Path(path)
    try:
        handle = file.open(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"journal not found: {file}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{file}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict) or not {"t", "run", "kind"} <= record.keys():
                raise ConfigError(f"{file}:{number}: not a paper journal record (t, run, kind)")
            yield record


__all__ = ["JOURNAL_NAME", "RUNS", "JournalWriter", "RunJournal", "read_journal"]
