"""The order journal: which client order ids were about to be sent, and what became of them.

An order's client order id is written here, and fsynced, *before* the order leaves. After a
crash, a timeout or a dropped answer the journal is what lets the guard ask the venue "does
the order with this id exist?" instead of guessing, so no order is ever sent twice.

The file is JSON lines, one record per state change, append-only while running. A record is
``{"id": ..., "status": ..., "t": ...}`` plus the order's shape on the ``pending`` record.
Compaction rewrites the file atomically (temp file, fsync, rename) keeping the unresolved
orders and the latest :data:`COMPACT_AFTER` resolved ones (so an id stays refused for reuse
across restarts); it runs at start, after each reconcile, and every :data:`COMPACT_AFTER`
resolved orders.

A torn last line (the process died mid-write) is ignored: its order never left, because the
send happens only after the write returned; so is an unsynced tail that a power cut turned
into NUL bytes. A write that fails part-way (a full disk) leaves at most such a torn last
line, and the file is rewritten whole before the next record: a pending record that cannot
be written refuses the order (``RequestBlocked``, nothing sent); a settle record that cannot
be written is kept in memory (losing it only costs a look-up after a restart). Any other bad
line is a :class:`~safeguard._errors.ConfigError` naming the file and line: a journal that
cannot be read must not be silently treated as empty.

Several threads or tasks may place orders through one journal at once. An order written
``pending`` here is *in flight*: the call that wrote it settles it. A reconcile settles only
*orphans* (unresolved orders nobody in this process is settling: a previous run's, or ones a
call gave up on as unknown), and claims each one first, so two reconciles never settle the
same order and none settles (or compacts away) an order another call still has on its way.

One writer per file: a second :class:`OrderJournal` on the same path, in this process or
another, is refused (it would compact away the first one's pending records). Guarded clients
in one process on one key (a sync one for the loop and an async one for the streams) share
the key's journal instead, through :meth:`OrderJournal.shared`: one object, closed when the
last of them closes it.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from safeguard._errors import ConfigError, InvalidInput, RequestBlocked
from safeguard._log import logger

COMPACT_AFTER = 4096
"""Resolved orders settled between two compactions before the journal compacts itself, and how
many of the latest it keeps then: a bot that runs for months must not hold every order it ever
sent, and one that replays its last orders after a restart must find their ids still used."""


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
REUSABLE = frozenset({Status.ABSENT, Status.REJECTED})
"""Ids whose order never existed on the venue: sending under one again doubles nothing."""


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


_SHARED: dict[Path, OrderJournal] = {}
"""The journals :meth:`OrderJournal.shared` handed out in this process, by absolute path."""
_SHARED_LOCK = threading.Lock()


class OrderJournal:
    """An append-only, fsynced JSON-lines journal of client order ids. Thread-safe.

    ``durable=False`` skips fsync (tests and benchmarks on throwaway files only): a journal that
    is not fsynced can lose the pending record in a power cut, which is exactly the case it is
    there for.
    """

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = True) -> None:
        # The file a symlink names, not the link: its lock is the target's (a second writer
        # through a link got in beside the first), and a rewrite replaces the target (it
        # replaced the link with a plain file, splitting one journal in two).
        self.path = Path(os.path.realpath(path))
        self.durable = durable
        self._lock = threading.Lock()
        self._in_flight: dict[str, object] = {}
        """Unresolved ids that a call (or a reconcile's claim) in this process will settle,
        each with its holder: only the holder settles or lets go of it."""
        self._fd = -1
        self._file_id = (-1, -1)
        """(device, inode) of the file ``_fd`` appends to."""
        self._dirty = False
        """A write failed part-way: the file may end in a torn line until it is rewritten."""
        self._closed = False
        self._holders = 1
        """Openers still using this journal (:meth:`shared`); the last ``close`` closes it."""
        self._shared_as = Path()
        """Its key among the shared journals (when :meth:`shared` opened it)."""
        self._resolved_since_rewrite = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # One writer per journal: a second one would compact away the first one's pending
            # records, which are exactly the orders that must be looked up after a crash.
            self._owner = _exclusive(self.path)
        except OSError as exc:
            raise ConfigError(
                f"order journal {self.path} cannot be opened: {exc}", key=str(self.path)
            ) from exc
        try:
            self._entries: dict[str, Entry] = _load(self.path)
            try:
                self._rewrite_locked()
            except OSError as exc:
                raise ConfigError(
                    f"order journal {self.path} cannot be written: {exc}", key=str(self.path)
                ) from exc
        except BaseException:
            os.close(self._owner)
            raise

    @classmethod
    def shared(cls, path: str | os.PathLike[str], *, durable: bool = True) -> OrderJournal:
        """The journal at ``path`` for one more user in this process: the open one if there
        is one (it is then fsynced if any of its users asked for durability), else a new one.
        Each caller closes it once; the last ``close`` releases the file."""
        key = Path(os.path.realpath(path))  # a link and its target are one journal
        with _SHARED_LOCK:
            journal = _SHARED.get(key)
            if journal is not None:
                with journal._lock:
                    if not journal._closed:
                        journal._holders += 1
                        journal.durable = journal.durable or durable
                        return journal
            journal = cls(path, durable=durable)
            journal._shared_as = key
            _SHARED[key] = journal
            return journal

    # --- reads -------------------------------------------------------------------------------

    def get(self, client_order_id: str) -> Entry | None:
        return self._entries.get(client_order_id)

    def unresolved(self) -> list[Entry]:
        """Orders that may exist on the venue without the guard knowing, oldest first."""
        with self._lock:
            entries = [e for e in self._entries.values() if not e.resolved]
        return sorted(entries, key=lambda e: e.since)

    def orphans(self) -> list[Entry]:
        """Unresolved orders nobody in this process is settling, oldest first: what a
        reconcile must look up."""
        with self._lock:
            entries = [
                e
                for e in self._entries.values()
                if not e.resolved and e.client_order_id not in self._in_flight
            ]
        return sorted(entries, key=lambda e: e.since)

    def claim(self, client_order_id: str, *, holder: object) -> Entry | None:
        """Take an orphan to settle it as ``holder``; ``None`` if it is not one (any more):
        another call has it in flight or claimed it, or it was settled meanwhile."""
        with self._lock:
            entry = self._entries.get(client_order_id)
            if entry is None or entry.resolved or client_order_id in self._in_flight:
                return None
            self._in_flight[client_order_id] = holder if holder is not None else object()
            return entry

    def release(self, client_order_id: str, *, holder: object) -> None:
        """``holder`` will not settle ``client_order_id`` after all (its call was cut short, a
        reconcile stopped part-way): it is an orphan, for the next reconcile. Nothing changes
        when the hold already passed to another (it was settled, then claimed again)."""
        with self._lock:
            if self._in_flight.get(client_order_id) is holder:
                del self._in_flight[client_order_id]

    def __len__(self) -> int:
        return len(self._entries)

    # --- writes ------------------------------------------------------------------------------

    def pending(
        self,
        client_order_id: str,
        *,
        symbol: str,
        intent: Mapping[str, Any],
        now: float,
        holder: object = None,
    ) -> Entry:
        """Record an order about to be sent. Returns only once the record is on disk; the
        order is then in flight, held by ``holder`` (the call sending it), until its
        :meth:`settle` (or :meth:`release`).

        Refuses, so that nothing is sent: an id already in the journal (``InvalidInput``),
        since reusing a client order id is how an order gets doubled (or silently
        deduplicated into the wrong one) on the venue, unless its order never existed
        (absent, rejected); and a record that cannot be written (``RequestBlocked``).
        """
        with self._lock:
            used = self._entries.get(client_order_id)
            if used is not None and used.status not in REUSABLE:
                raise InvalidInput(
                    f"clientOrderId {client_order_id!r} was already used (journal: "
                    f"{used.status}): a client id names one order; nothing was sent",
                    field="params.clientOrderId",
                )
            entry = Entry(client_order_id, Status.PENDING, symbol, now, now, None, dict(intent))
            try:
                if self._detached_locked():
                    self._reattach_locked()
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
            except OSError as exc:
                raise RequestBlocked(
                    f"order {client_order_id} not sent: the order journal {self.path} cannot "
                    f"be written ({exc}); an order leaves only once its record is on disk"
                ) from exc
            self._entries[client_order_id] = entry
            self._in_flight[client_order_id] = holder if holder is not None else object()
            return entry

    def resent(self, client_order_id: str, *, now: float, holder: object) -> None:
        """Record that the order held by ``holder`` is about to be sent again, at ``now``:
        a restart measures the settle window from the last send, not the first. Returns only
        once the record is on disk (durable journals), as :meth:`pending` does; raises
        ``RequestBlocked`` (nothing sent) when it cannot be written.

        Without it, a process killed while a resend was on the wire restarted with the
        first send's time: the window long over, one look-up found nothing, the order was
        settled absent (an id that may be used again), and the resend then filled."""
        with self._lock:
            current = self._entries.get(client_order_id)
            if (
                current is None
                or current.resolved
                or self._in_flight.get(client_order_id) is not holder
            ):
                return
            try:
                if self._detached_locked():
                    self._reattach_locked()  # as for a pending record: not into a lost file
                self._append_line_locked(
                    _settle_line(client_order_id, Status.PENDING, now, None), sync=self.durable
                )
            except OSError as exc:
                raise RequestBlocked(
                    f"order {client_order_id} not sent again: the order journal {self.path} "
                    f"cannot be written ({exc}); a send leaves only once it is on disk"
                ) from exc
            self._entries[client_order_id] = replace(current, updated=now)

    def pending_write(
        self, client_order_id: str, *, symbol: str, intent: Mapping[str, Any], now: float
    ) -> PendingWrite:
        """:meth:`pending` as a callable for a caller that may be stopped while it runs."""
        return PendingWrite(self, client_order_id, symbol, dict(intent), now)

    def settle(
        self,
        client_order_id: str,
        status: Status,
        *,
        now: float,
        order_id: str | None = None,
        holder: object = None,
    ) -> Entry | None:
        """Record what became of an order, and let go of its hold. Not fsynced, and a record
        that cannot be written is only logged: losing it costs a look-up after a restart,
        while raising would hide from the caller an order the venue holds.

        With ``holder``, a settle that comes too late (its hold passed to a reconcile that has
        the order in hand, or settled it) changes nothing and returns ``None``.
        """
        with self._lock:
            current = self._entries.get(client_order_id)
            if current is None:
                if holder is not None:
                    return None
                raise KeyError(f"clientOrderId {client_order_id!r} is not in the journal")
            held_by = self._in_flight.get(client_order_id)
            if (
                holder is not None
                and held_by is not holder
                and (held_by is not None or current.resolved)
            ):
                return None  # another has it in hand, or settled it: too late
            entry = Entry(
                current.client_order_id,
                status,
                current.symbol,
                current.since,
                now,
                order_id,
                current.intent,
            )
            try:
                self._append_line_locked(_settle_line(client_order_id, status, now, order_id))
            except OSError as exc:
                logger.warning(
                    "order journal {} cannot be written ({}): {} is {} in memory only; after a "
                    "restart it is looked up again",
                    self.path,
                    exc,
                    client_order_id,
                    status.value,
                )
            self._entries[client_order_id] = entry
            self._in_flight.pop(client_order_id, None)
            if entry.resolved and not current.resolved:
                self._resolved_since_rewrite += 1
                if self._resolved_since_rewrite >= COMPACT_AFTER:
                    self._compact_or_warn_locked()
            return entry

    def compact(self) -> None:
        """Rewrite the file atomically: the unresolved orders (in-flight ones are unresolved
        until their call settles them: never dropped) and the latest resolved ones. A rewrite
        that cannot be written is logged; the file keeps every record until one can."""
        with self._lock:
            self._compact_or_warn_locked()

    def close(self) -> None:
        """Let go of the journal; the last of its users (:meth:`shared`) closes the file."""
        with _SHARED_LOCK, self._lock:
            if self._closed:
                return
            self._holders -= 1
            if self._holders > 0:
                return
            self._closed = True
            if _SHARED.get(self._shared_as) is self:
                del _SHARED[self._shared_as]
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
            os.close(self._owner)  # releases the writer's lock

    # --- internals ---------------------------------------------------------------------------

    def _append_locked(self, record: Mapping[str, Any], *, sync: bool) -> None:
        self._append_line_locked((_encode(record) + "\n").encode(), sync=sync)

    def _append_line_locked(self, data: bytes, *, sync: bool = False) -> None:
        if self._closed:
            raise OSError(errno.EBADF, "the journal is closed")
        if self._dirty:
            self._rewrite_locked()  # no record after a torn one: the file is made whole first
        try:
            while data:
                data = data[os.write(self._fd, data) :]
            if sync:
                _sync(self._fd)
        except OSError:
            self._dirty = True
            raise

    def _detached_locked(self) -> bool:
        """Whether the journal file is no longer the one held open (deleted or replaced
        underneath, say by a clean-up of the state directory): a pending record written to a
        deleted file would be lost with it. One ``stat`` per order; a settle record needs no
        check (the next pending rewrites the file from memory, settled states included)."""
        try:
            named = os.stat(self.path)
        except OSError:
            return True
        return (named.st_dev, named.st_ino) != self._file_id

    def _reattach_locked(self) -> None:
        """Take the lock again if it went, and write the file again from memory; refused
        (``OSError``) if another writer took the journal meanwhile."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not _same_file(_lock_path(self.path), self._owner):
            try:
                owner = _exclusive(self.path)
            except ConfigError as exc:
                raise OSError(errno.EBUSY, str(exc)) from exc
            os.close(self._owner)
            self._owner = owner
        logger.warning("order journal {} was deleted or replaced: written again", self.path)
        self._rewrite_locked()

    def _compact_or_warn_locked(self) -> None:
        try:
            self._rewrite_locked()
        except OSError as exc:
            logger.warning("order journal {} not compacted: {}", self.path, exc)

    def _rewrite_locked(self) -> None:
        """The file, rewritten atomically from memory: every unresolved order, and the latest
        :data:`COMPACT_AFTER` resolved ones (their ids stay refused for reuse)."""
        resolved = sorted((e for e in self._entries.values() if e.resolved), key=_by_update)
        latest = {e.client_order_id for e in resolved[-COMPACT_AFTER:]}
        keep = {k: e for k, e in self._entries.items() if not e.resolved or k in latest}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with tmp.open("w", encoding="utf-8") as out:
                for e in keep.values():
                    for record in _records_of(e):
                        out.write(_encode(record) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError:
            with suppress(OSError):
                tmp.unlink()
            raise
        _fsync_dir(self.path.parent)
        self._entries = keep
        self._resolved_since_rewrite = 0
        old, self._fd = self._fd, -1
        if old >= 0:
            os.close(old)
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            held = os.fstat(self._fd)
        except OSError:
            self._dirty = True  # no file to append to: the next record rewrites it again
            raise
        self._file_id = (held.st_dev, held.st_ino)
        self._dirty = False


class PendingWrite:
    """One order's pending record, written by calling this (a core ``Record`` effect's run).

    The caller may be stopped while the write is under way (the async face writes it in a
    thread, which goes on regardless). :meth:`abandon` then hands the order to the next
    reconcile whenever the write lands, and never touches an order that this write did not
    create (a refused write of a reused id leaves that id's own call in flight).
    """

    def __init__(
        self,
        journal: OrderJournal,
        client_order_id: str,
        symbol: str,
        intent: Mapping[str, Any],
        now: float,
    ) -> None:
        self._journal = journal
        self._client_order_id = client_order_id
        self._symbol = symbol
        self._intent = intent
        self._now = now
        self._lock = threading.Lock()
        self._written = False
        self._abandoned = False
        self.error: RequestBlocked | None = None
        """Why the record was not written: the order must not be sent."""

    def __call__(self) -> None:
        try:
            self._journal.pending(
                self._client_order_id,
                symbol=self._symbol,
                intent=self._intent,
                now=self._now,
                holder=self,
            )
        except RequestBlocked as exc:
            self.error = exc
            return
        with self._lock:
            self._written = True
            abandoned = self._abandoned
        if abandoned:
            self._journal.release(self._client_order_id, holder=self)

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            written = self._written
        if written:
            self._journal.release(self._client_order_id, holder=self)


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
    if entry.status is Status.PENDING and entry.updated != entry.since:
        records.append(
            {"id": entry.client_order_id, "status": Status.PENDING.value, "t": entry.updated}
        )
    if entry.status is not Status.PENDING:
        settled: dict[str, Any] = {
            "id": entry.client_order_id,
            "status": entry.status.value,
            "t": entry.updated,
        }
        if entry.order_id is not None:
            settled["order_id"] = entry.order_id
        records.append(settled)
    return records


_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
"""One record as compact JSON. Built once: ``json.dumps`` with options builds an encoder per
call, about a third of a record's cost."""


def _settle_line(client_order_id: str, status: Status, now: float, order_id: str | None) -> bytes:
    """The settle record ``{"id", "status", "t"[, "order_id"]}``, byte for byte what
    :func:`_encode` writes for that dict, assembled without encoding a dict (two per order)."""
    t = repr(now) if now.__class__ is float and now - now == 0.0 else _encode(now)
    line = f'{{"id":{_encode(client_order_id)},"status":{_encode(status.value)},"t":{t}'
    if order_id is not None:
        line += f',"order_id":{_encode(order_id)}'
    return (line + "}\n").encode()


def _by_update(entry: Entry) -> float:
    return entry.updated


def _load(path: Path) -> dict[str, Entry]:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"order journal {path} cannot be read: {exc}", key=str(path)) from exc
    entries: dict[str, Entry] = {}
    lines = data.split(b"\n")
    # After a power cut the unsynced tail may read back as NUL bytes (the file's length was
    # kept, its data not), with later bytes after them. Only unsynced records live there: a
    # settle (losing it costs a look-up) or a pending whose fsync, hence whose send, never
    # came. From the first NUL on, a record that cannot be read is such a torn write. Without
    # NUL bytes only the last piece may be torn: it is a record cut mid-write when the file
    # does not end in a newline (after a final newline the last piece is empty).
    unsynced = next((i for i, line in enumerate(lines, start=1) if b"\x00" in line), len(lines))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line.decode("utf-8"))
            _apply(entries, record)
        except (ValueError, KeyError, TypeError) as exc:
            if number >= unsynced:
                continue  # died mid-write: the send only ever follows a completed write
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
    if status is Status.PENDING and "symbol" not in record:
        # A resend's stamp (OrderJournal.resent): the order was sent again at ``t``.
        entries[cid] = replace(entries[cid], updated=float(t))
        return
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
    fd = os.open(_lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        import fcntl
    except ImportError:  # not POSIX: no cross-process exclusion available
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise ConfigError(
            f"order journal {path} is already open by another process (or another "
            "OrderJournal in this one); guarded clients on one key in one process share it, "
            "a second process needs its own journal_path",
            key=str(path),
        ) from None
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        named, held = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


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


__all__ = [
    "COMPACT_AFTER",
    "REUSABLE",
    "UNRESOLVED",
    "Entry",
    "OrderJournal",
    "PendingWrite",
    "Status",
]
