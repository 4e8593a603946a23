"""The state directory's troubles, enforced by the kernel: a full disk and a read-only directory.

Neither is a stand-in the product could tell apart from the real thing: a full disk is
``RLIMIT_FSIZE`` at 0 (the kernel refuses, ``EFBIG``, every write that would grow a file, in
every writer of the process), and a read-only directory is its permission bits (directories
``r-x``, files ``r--``: nothing new can be created, renamed into place or opened for writing
there, ``EACCES``).

Permission bits do not stop root: ``CAP_DAC_OVERRIDE`` passes every check. When the simulator
runs as root (CI does) the calling thread gives up that capability (and
``CAP_DAC_READ_SEARCH``) from its *effective* set for the fault's window, keeping it in the
permitted set to take back at the end, so root meets the owner's bits like anyone else.
Capabilities are per thread: the window covers the thread that opened it (every bot of the
world runs there: the async ones on its event loop, whose executor runs inline) and threads
started inside the window; a thread started before it keeps its capabilities. Where the
capability cannot be dropped, :meth:`ReadOnly.begin` says the directory is still writable,
and the world counts the fault as not enforced rather than pretending it happened.

A descriptor opened before the window (the journal's, held open by a running guard) keeps
writing, as it does on a directory whose modes an operator changed under a running bot; a
filesystem remounted read-only refuses those too, which the full disk already covers for
appends.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import resource
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_FULL: list[tuple[int, int, Any]] = []
"""While the disk is full: the file-size limit and SIGXFSZ handler to put back."""


def disk_full(full: bool) -> None:
    """A full disk for the whole process: no regular file may grow (``EFBIG`` on every write
    that would). The kernel's own refusal, not a stand-in: every writer meets it."""
    if full and not _FULL:
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        _FULL.append((soft, hard, signal.signal(signal.SIGXFSZ, signal.SIG_IGN)))
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    elif not full and _FULL:
        soft, hard, handler = _FULL.pop()
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


# capabilities(7): the two that let root read and write past the permission bits.
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2
_DAC = (1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH)
_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _set_dac_override(on: bool) -> bool:
    """Raise or drop root's permission override in this thread's effective set; False where
    the system has no capabilities to change (not Linux, or capget/capset refused)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        header = _CapHeader(_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        if libc.capget(ctypes.byref(header), data) != 0:
            return False
        if on:
            data[0].effective |= data[0].permitted & _DAC
        else:
            data[0].effective &= ~_DAC
        return bool(libc.capset(ctypes.byref(header), data) == 0)
    except (OSError, AttributeError):
        return False


_DROPPED: list[str] = []
"""The read-only windows open now (the capability comes back when the last one ends)."""


@contextlib.contextmanager
def unrestricted() -> Iterator[None]:
    """The simulator's own bookkeeping inside a window (cutting a torn record, reading what a
    bot wrote): root's override back for the block, dropped again after it."""
    if not _DROPPED or os.geteuid() != 0:
        yield
        return
    _set_dac_override(True)
    try:
        yield
    finally:
        _set_dac_override(False)


class ReadOnly:
    """One directory tree made read-only for a window: :meth:`begin`, then :meth:`end`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._modes: list[tuple[Path, int]] = []
        self.open = False

    def begin(self) -> bool:
        """Make the tree read-only; True when a write there is now refused (probed)."""
        if self.open:
            return True
        self.open = True
        if os.geteuid() == 0:
            if not _DROPPED:
                _set_dac_override(False)
            _DROPPED.append(str(self.path))
        # Deepest first, so a directory loses its write bit after its children changed.
        for entry in sorted(self.path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            self._freeze(entry)
        self._freeze(self.path)
        return not self._writable()

    def end(self) -> None:
        if not self.open:
            return
        self.open = False
        # Parents first: a directory must be writable again before its children's modes
        # matter to anyone (the owner may chmod either way; the order only keeps it tidy).
        for path, mode in reversed(self._modes):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(path, mode)
        self._modes.clear()
        if str(self.path) in _DROPPED:
            _DROPPED.remove(str(self.path))
            if not _DROPPED and os.geteuid() == 0:
                _set_dac_override(True)

    def _freeze(self, path: Path) -> None:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            return
        if path.is_symlink():
            return
        self._modes.append((path, mode))
        os.chmod(path, mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))

    def _writable(self) -> bool:
        probe = self.path / ".sim-write-probe"
        try:
            probe.touch()
        except PermissionError:
            return False
        probe.unlink()
        return True


__all__ = ["ReadOnly", "disk_full", "unrestricted"]
