"""The order journal: which client order ids were about to be sent, and what became of them.

An order's client order id is written here, and fsynced, *before* the order leaves. After a
crash, a timeout or a dropped answer the journal is what lets the guard ask the venue "does
the order with this id exist?" instead of guessing, so no order is ever sent twice.

The file is JSON lines, one record per state change, append-only while running. A record is
``{"id": ..., "status": ..., "t": ...}`` plus the order's shape on the ``pending`` record.
Compaction rewrites the file atomically (temp file, fsync, rename) keeping only unresolved
orders. A torn last line (the process died mid-write) is ignored: its order never left,
because the send happens only after the write returned. Any other bad line is a
:class:`~safeguard.errors.ConfigError` naming the file and line: a journal that cannot be
read must not be silently treated as empty.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from safeguard.errors import ConfigError


class Status(StrEnum):
    PENDING = "pending"
    """Written before the first send; the order may or may not exist on the venue."""
    ACKED = "acked"
    """The venue confirmed the order (created, or found by a look-up)."""
    ABSENT = "absent"
    """Never reached the venue (blocked before sending, or known absent and not resent)."""
    REJECTED = "rejected"
    """The venue answered with a definite refusal; nothing was created."""
    UNKNOWN = "unknown"
    """Still unconfirmed after every look-up: the caller was handed ``OutcomeUnknown``."""


UNRESOLVED = frozenset({Status.PENDING, Status.UNKNOWN})


@dataclass(frozen=True, slots=True)
class Entry:
    """The latest known state of one client order id."""

    client_order_id: str
    status: Status
    symbol: str
    since: float
    """Epoch seconds of the pending record."""
    updated: float
    order_id: str | None = None
    intent: Mapping[str, Any] = field(default_factory=dict)
    """What was asked for (symbol, type, side, amount, price, conditional): enough to reconcile."""

    @property
    def resolved(self) -> bool:
        return self.status not in UNRESOLVED


class OrderJournal:
    """An append-only, fsynced JSON-lines journal of client order ids. Thread-safe.

    ``durable=False`` skips fsync (tests and benchmarks on throwaway files only): a journal that
    is not fsynced can lose the pending record in a power cut, which is exactly the case it is
    there for.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        self.path = Path(path)
        self.durable = durable
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One writer per journal: a second one would compact away the first one's pending
        # records, which are exactly the orders that must be looked up after a crash.
        self._owner = _exclusive(self.path)
        try:
            self._entries: dict[str, Entry] = _load(self.path)
            self._compact_locked()
            self._file: IO[str] = self.path.open("a", encoding="utf-8")
        except BaseException:
            os.close(self._owner)
            raise

    # --- reads -------------------------------------------------------------------------------

    def get(self, client_order_id: str) -> Entry | None:
        return self._entries.get(client_order_id)

    def unresolved(self) -> list[Entry]:
        """Orders that may exist on the venue without the guard knowing, oldest first."""
        with self._lock:
            entries = [e for e in self._entries.values() if not e.resolved]
        return sorted(entries, key=lambda e: e.since)

    def __len__(self) -> int:
        return len(self._entries)

    # --- writes ------------------------------------------------------------------------------

    def pending(
        self, client_order_id: str, *, symbol: str, intent: Mapping[str, Any], now: float
    ) -> Entry:
        """Record an order about to be sent. Returns only once the record is on disk.

        Refuses an id already in the journal: reusing a client order id is how an order gets
        doubled (or silently deduplicated into the wrong one) on the venue.
        """
        with self._lock:
            if client_order_id in self._entries:
                raise ValueError(
                    f"clientOrderId {client_order_id!r} was already used "
                    f"(journal status {self._entries[client_order_id].status})"
                )
            entry = Entry(client_order_id, Status.PENDING, symbol, now, now, None, dict(intent))
            self._append_locked(
                {
                    "id": client_order_id,
                    "status": Status.PENDING.value,
                    "t": now,
                    "symbol": symbol,
                    "intent": entry.intent,
                },
                sync=self.durable,
            )
            self._entries[client_order_id] = entry
            return entry

    def settle(
        self, client_order_id: str, status: Status, *, now: float, order_id: str | None = None
    ) -> Entry:
        """Record what became of an order. Not fsynced: losing it only costs a look-up later."""
        with self._lock:
            current = self._entries.get(client_order_id)
            if current is None:
                raise KeyError(f"clientOrderId {client_order_id!r} is not in the journal")
            entry = replace(current, status=status, updated=now, order_id=order_id)
            record: dict[str, Any] = {"id": client_order_id, "status": status.value, "t": now}
            if order_id is not None:
                record["order_id"] = order_id
            self._append_locked(record, sync=False)
            self._entries[client_order_id] = entry
            return entry

    def compact(self) -> None:
        """Rewrite the file atomically with only the unresolved orders."""
        with self._lock:
            self._file.close()
            self._compact_locked()
            self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()
                os.close(self._owner)  # releases the writer's lock

    # --- internals ---------------------------------------------------------------------------

    def _append_locked(self, record: Mapping[str, Any], *, sync: bool) -> None:
        self._file.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
        self._file.flush()
        if sync:
            _sync(self._file.fileno())

    def _compact_locked(self) -> None:
        keep = {k: e for k, e in self._entries.items() if not e.resolved}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            for e in keep.values():
                for record in _records_of(e):
                    out.write(json.dumps(record, separators=(",", ":"), default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.path.parent)
        self._entries = keep


def _records_of(entry: Entry) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [
        {
            "id": entry.client_order_id,
            "status": Status.PENDING.value,
            "t": entry.since,
            "symbol": entry.symbol,
            "intent": dict(entry.intent),
        }
    ]
    if entry.status is not Status.PENDING:
        records.append(
            {"id": entry.client_order_id, "status": entry.status.value, "t": entry.updated}
        )
    return records


def _load(path: Path) -> dict[str, Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"order journal {path} cannot be read: {exc}", key=str(path)) from exc
    entries: dict[str, Entry] = {}
    lines = text.split("\n")
    torn_tail = not text.endswith("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            _apply(entries, record)
        except (ValueError, KeyError, TypeError) as exc:
            if torn_tail and number == len(lines):
                break  # died mid-write: the send only ever follows a completed write
            raise ConfigError(
                f"order journal {path} line {number} is corrupt ({exc}); "
                "move it aside and reconcile open orders by hand",
                key=str(path),
            ) from exc
    return entries


def _apply(entries: dict[str, Entry], record: Any) -> None:
    if not isinstance(record, dict):
        raise TypeError("a record must be a JSON object")
    cid = record["id"]
    status = Status(record["status"])
    t = record["t"]
    if not isinstance(cid, str) or not isinstance(t, int | float) or isinstance(t, bool):
        raise TypeError("id must be a string and t a number")
    if status is Status.PENDING:
        symbol = record["symbol"]
        intent = record.get("intent", {})
        if not isinstance(symbol, str) or not isinstance(intent, dict):
            raise TypeError("symbol must be a string and intent an object")
        entries[cid] = Entry(cid, status, symbol, float(t), float(t), None, intent)
        return
    current = entries[cid]
    order_id = record.get("order_id", current.order_id)
    entries[cid] = replace(current, status=status, updated=float(t), order_id=order_id)


def _exclusive(path: Path) -> int:
    """Hold ``<journal>.lock`` for this journal's life; refuse if another holder has it."""
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process exclusion available
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"order journal {path} is already open (another guarded exchange with the same "
            "exchange and API key, in this process or another); give each its own journal_path",
            key=str(path),
        ) from None
    return fd


def _sync(fd: int) -> None:
    # The record's data is what must survive; fdatasync skips the metadata-only flush.
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _fsync_dir(directory: Path) -> None:
    # The rename is durable only once the directory entry is; not every platform allows it.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


__all__ = ["UNRESOLVED", "Entry", "OrderJournal", "Status"]
