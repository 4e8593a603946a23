"""A venue ban, persisted: a restarted bot must not walk straight back into a 418.

Binance escalates bans for repeat offenders (2 minutes up to 3 days), so a process that
restarts and immediately sends again makes the ban longer. :class:`BanStore` keeps
``{ip_key: banned_until}`` in one small JSON file in the kill switch's ``state_dir``, written
atomically (temporary file, fsync, rename, fsync of the directory). A file that exists but
cannot be read as that document is a :class:`~safeguard._errors.ConfigError`: starting as if
no ban were in force is exactly the failure this file exists to prevent.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from safeguard._errors import ConfigError
from safeguard.killswitch._equity import atomic_write
from safeguard.risk import _inputs

FILENAME = "bans.json"
_VERSION = 1


class BanStore:
    """Bans by IP key, on disk. Thread-safe; processes serialise their read-merge-write on a
    lock file (POSIX), so a ban written by one is never lost to another's write."""

    def __init__(self, state_dir: str | os.PathLike[str]) -> None:
        self.path = Path(state_dir) / FILENAME
        self._lock = threading.Lock()

    def load(self) -> dict[str, float]:
        """Every recorded ban (expired ones included; callers compare with their ``now``)."""
        with self._lock:
            return self._read()

    def banned_until(self, ip_key: str, now: float) -> float | None:
        """The end of the ban on ``ip_key`` in force at ``now``, or None."""
        until = self.load().get(ip_key)
        return until if until is not None and until > now else None

    def record(self, ip_key: str, until: float) -> None:
        """Persist a ban on ``ip_key`` until ``until`` (epoch seconds); never shortens one."""
        if not isinstance(ip_key, str) or not ip_key:
            raise ValueError(f"ip_key must be a non-empty str, got {ip_key!r}")
        _inputs.non_negative("until", until)
        with self._lock, self._across_processes():
            bans = self._read()
            bans[ip_key] = max(bans.get(ip_key, 0.0), float(until))
            self._write(bans)

    def clear(self, ip_key: str) -> None:
        """Forget the ban on ``ip_key`` (an operator who knows better)."""
        with self._lock, self._across_processes():
            bans = self._read()
            if bans.pop(ip_key, None) is not None:
                self._write(bans)

    @contextlib.contextmanager
    def _across_processes(self) -> Iterator[None]:
        if sys.platform == "win32":  # no flock; the in-process lock still holds
            yield
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _read(self) -> dict[str, float]:
        try:
            text = self.path.read_text(encoding="utf-8")
            document = json.loads(text)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(
                f"ban file {self.path} cannot be read: {exc}", key=str(self.path)
            ) from exc
        except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, or nested too deep
            raise ConfigError(
                f"ban file {self.path} is corrupt ({exc}); fix or remove it once you are sure "
                "no ban is in force",
                key=str(self.path),
            ) from None
        bans = document.get("bans") if isinstance(document, dict) else None
        if not isinstance(bans, dict) or not all(
            isinstance(k, str)
            and isinstance(v, int | float)
            and not isinstance(v, bool)
            and math.isfinite(v)
            for k, v in bans.items()
        ):
            raise ConfigError(
                f"ban file {self.path} is not a {{'bans': {{ip_key: until}}}} document",
                key=str(self.path),
            )
        return {key: float(value) for key, value in bans.items()}

    def _write(self, bans: dict[str, float]) -> None:
        payload = json.dumps({"version": _VERSION, "bans": bans}, sort_keys=True, indent=1)
        atomic_write(self.path, payload.encode("utf-8"))


__all__ = ["FILENAME", "BanStore"]
