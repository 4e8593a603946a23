"""Where the kill switch's state lives between processes and restarts.

:class:`StateStore` is the small protocol a store implements; :class:`FileStateStore` keeps it
in a directory (a Redis store can implement the same protocol for a fleet):

``state.json``
    The current :class:`~safeguard.killswitch._switch.SwitchState`, replaced atomically: written
    to a temporary file in the same directory, fsynced, renamed over the old one, and the
    directory fsynced. A crash (or ``kill -9``) at any point leaves the old state or the new
    one, never half of either. Format::

        {"format": 1, "state": "HALTED", "reason": "...", "code": "MANUAL",
         "by": "cli:alice@host", "since": 1763716000.25, "host": "host", "pid": 4242}

``history.jsonl``
    Append-only, one JSON object per line per change (``event``: ``engage``/``resume``, the
    new state's fields, ``previous``, ``host``, ``pid``, ``recorded_at``), fsynced after each
    line.

``.lock``
    ``flock`` target serialising read-modify-write across processes (the kernel releases it
    when a holder dies). The holder writes ``host pid`` into it, so a process that waited
    ``lock_timeout_s`` for a holder that is alive but stuck (stopped with ``SIGSTOP``, frozen)
    gives up with an ``OSError`` naming it instead of waiting for ever: an engage then holds in
    memory and says so, and ``safeguard kill`` exits 2 rather than hang.

Failing closed: ``load`` raises :class:`~safeguard._errors.ConfigError` naming the file for
anything that is not exactly what ``save`` writes, and also when ``state.json`` is missing but
the history shows the switch was used (someone deleted the state to get trading back). Only a
directory with neither file is a fresh start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from safeguard._errors import ConfigError
from safeguard.killswitch._state import SwitchState, TradingState

FORMAT = 1
STALE_TEMPORARY_S = 60.0
LOCK_TIMEOUT_S = 10.0
"""How long :meth:`FileStateStore.lock` waits for another holder (seconds)."""
_LOCK_POLL_S = 0.01
_FIELDS = frozenset({"format", "state", "reason", "code", "by", "since", "host", "pid"})


@runtime_checkable
class StateStore(Protocol):
    """Persistence for the latch. Every method may raise ``OSError``; ``load`` also raises
    :class:`~safeguard._errors.ConfigError` for unreadable content (the switch then halts)."""

    def load(self) -> SwitchState | None:
        """The stored state, or ``None`` for a store that was never written."""
        ...

    def save(self, state: SwitchState) -> None:
        """Replace the stored state atomically."""
        ...

    def append_history(self, event: Mapping[str, Any]) -> None:
        """Append one event durably; earlier events are never rewritten."""
        ...

    def version(self) -> object:
        """A cheap token that changes whenever the state may have (``None``: nothing stored)."""
        ...

    def lock(self) -> AbstractContextManager[None]:
        """Exclusive across processes for the duration of a read-modify-write."""
        ...


@runtime_checkable
class OwesWrites(Protocol):
    """A store that may take a state in memory while it cannot write it (the fleet's Redis
    while unreachable): its ``load`` then answers with that state, which is not the same as
    holding it. The switch asks before it calls an engage persisted."""

    def owes(self, state: SwitchState) -> bool:
        """Whether ``state`` (or a tighter one) is held in memory only, still to be written."""
        ...

    def owe(self, state: SwitchState) -> None:
        """Keep ``state``, a decision it cannot take now, to write once it can (unless it then
        holds one at least as tight)."""
        ...


@runtime_checkable
class KeepsCopy(Protocol):
    """A store whose ``load`` answers from a copy kept up to date in the background (the
    fleet's Redis, through its reader): as fresh as the last message that reached it."""

    def resync(self) -> None:
        """Read the shared state now, not the copy (the switch asks before it calls an engage
        a no-op: one made just after another process resumed must not be lost to a copy that
        has not heard of the resume yet)."""
        ...


class FileStateStore:
    """A state directory on a local filesystem (see the module docstring for its layout)."""

    def __init__(
        self, directory: str | os.PathLike[str], *, lock_timeout_s: float = LOCK_TIMEOUT_S
    ) -> None:
        if isinstance(lock_timeout_s, bool) or not 0.0 < lock_timeout_s < float("inf"):
            raise ValueError(f"lock_timeout_s must be positive and finite, got {lock_timeout_s!r}")
        self.lock_timeout_s = float(lock_timeout_s)
        self.directory = Path(directory)
        self.state_path = self.directory / "state.json"
        self.history_path = self.directory / "history.jsonl"
        self.lock_path = self.directory / ".lock"
        self._local = threading.local()

    def __str__(self) -> str:
        return str(self.state_path)

    def __repr__(self) -> str:
        return f"FileStateStore({str(self.directory)!r})"

    # --- reading -----------------------------------------------------------------------------

    def version(self) -> object:
        try:
            st = os.stat(self.state_path)
        except FileNotFoundError:
            return None
        # A rename installs a new inode, so the token changes even within one mtime tick.
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> SwitchState | None:
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            if self._history_used():
                raise ConfigError(
                    f"kill switch state file {self.state_path} is missing but "
                    f"{self.history_path} records earlier changes; refusing to start ACTIVE",
                    key=str(self.state_path),
                ) from None
            return None
        return decode_state(raw, source=str(self.state_path))

    def _history_used(self) -> bool:
        try:
            return self.history_path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded events, oldest first (the last ``limit`` of them). A torn last line
        (a crash mid-append) is skipped."""
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        try:
            lines = self.history_path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        events: list[dict[str, Any]] = []
        for line in lines:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events if limit is None else events[len(events) - limit :] if limit else []

    # --- writing -----------------------------------------------------------------------------

    def save(self, state: SwitchState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        data = json.dumps(encode_state(state), sort_keys=True).encode() + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=".state.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as file:
                os.fchmod(file.fileno(), 0o644)  # mkstemp's 0600 would hide it from operators
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(tmp, self.state_path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_directory(self.directory)
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        # A writer killed between mkstemp and rename leaves its temporary file behind; one
        # older than a minute belongs to no live writer.
        cutoff = time.time() - STALE_TEMPORARY_S
        for path in self.directory.glob(".state.*.tmp"):
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def append_history(self, event: Mapping[str, Any]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(dict(event), sort_keys=True, allow_nan=False).encode() + b"\n"
        created = not self.history_path.exists()
        fd = os.open(self.history_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write under O_APPEND: lines from processes never interleave
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            _fsync_directory(self.directory)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        # Re-entrant within a thread: a second flock on a new descriptor would wait on the
        # first one forever.
        depth = getattr(self._local, "depth", 0)
        if depth:
            self._local.depth = depth + 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            self._take(fd)
            self._local.depth = 1
            yield
        finally:
            self._local.depth = 0
            os.close(fd)  # closing releases the flock

    def _take(self, fd: int) -> None:
        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
                    raise OSError(
                        f"{self.lock_path} has been held for over {self.lock_timeout_s:g} s "
                        f"by {holder or 'an unknown process'} (stopped or stuck?)"
                    ) from None
                time.sleep(_LOCK_POLL_S)
        # Who holds it, for whoever waits on it next (not durable: a hint, not state).
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{socket.gethostname()} {os.getpid()}\n".encode(), 0)


class MemoryStateStore:
    """A store that lives and dies with this process: for tests and for one-process tools
    that accept losing the state on exit. Thread-safe."""

    def __init__(self, state: SwitchState | None = None) -> None:
        self._state = state
        self._history: list[dict[str, Any]] = []
        self._version = 0
        self._lock = threading.RLock()

    def __str__(self) -> str:
        return "memory"

    def load(self) -> SwitchState | None:
        return self._state

    def save(self, state: SwitchState) -> None:
        with self._lock:
            self._state = state
            self._version += 1

    def append_history(self, event: Mapping[str, Any]) -> None:
        with self._lock:
            self._history.append(dict(event))

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._history if limit is None else self._history[-limit:] if limit else [])

    def version(self) -> object:
        return self._version if self._state is not None else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            yield


def encode_state(state: SwitchState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "state": state.state.value,
        "reason": state.reason,
        "code": state.code,
        "by": state.by,
        "since": state.since,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


def decode_state(raw: bytes, *, source: str) -> SwitchState:
    """Parse what :func:`encode_state` wrote, or raise ``ConfigError`` naming ``source``."""

    def corrupt(problem: str) -> ConfigError:
        return ConfigError(f"kill switch state file {source} is corrupt: {problem}", key=source)

    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise corrupt(f"not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise corrupt(f"expected a JSON object, got {type(data).__name__}")
    if data.get("format") != FORMAT:
        raise corrupt(f"unknown format {data.get('format')!r} (expected {FORMAT})")
    missing = sorted(_FIELDS - data.keys())
    if missing:
        raise corrupt(f"missing {', '.join(missing)}")
    since = data["since"]
    if isinstance(since, bool) or not isinstance(since, int | float) or not math.isfinite(since):
        raise corrupt(f"since must be a finite number, got {since!r}")
    try:
        return SwitchState(
            TradingState(data["state"]), data["reason"], data["code"], data["by"], float(since)
        )
    except ValueError as exc:
        raise corrupt(str(exc)) from None


def _fsync_directory(directory: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


__all__ = [
    "FORMAT",
    "LOCK_TIMEOUT_S",
    "FileStateStore",
    "KeepsCopy",
    "MemoryStateStore",
    "OwesWrites",
    "StateStore",
    "decode_state",
    "encode_state",
]
