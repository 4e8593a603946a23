"""The equity peak and the UTC day's opening equity, persisted so a restart keeps counting.

A drawdown limit measured from a peak kept in memory resets every time the bot restarts, so a
bot that crashes and is restarted in a loop never trips it. The peak and the day-start equity
therefore live in a small JSON file in the kill switch's state directory, written atomically
(temporary file, fsync, rename, fsync of the directory) so a crash mid-write leaves the old file
or the new one, never half of either.

A file that exists but cannot be read back as exactly what :class:`EquityStore` writes is never
replaced by the current equity: that would silently reset the peak, which is the failure this
module exists to prevent. :meth:`EquityStore.load` raises :class:`~safeguard._errors.ConfigError`
naming the file, and the operator decides (fix it, or delete it to start a new peak on purpose).

:class:`EquityMarks` is the pure part: moving the marks forward takes ``now`` and never touches
the disk or the clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safeguard._errors import ConfigError
from safeguard.risk import _inputs

FORMAT = "safeguard.equity/1"
FILENAME = "equity.json"
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIELDS = frozenset({"format", "peak", "peak_at", "day", "day_start", "day_started_at"})


def utc_day(now: float) -> str:
    """The UTC calendar day containing epoch second ``now``, as ``YYYY-MM-DD``."""
    _inputs.non_negative("now", now)
    return datetime.fromtimestamp(now, UTC).date().isoformat()


@dataclass(frozen=True, slots=True)
class EquityMarks:
    """The high-water mark and the equity the current UTC day opened with.

    ``day_start`` is the first equity observed in ``day`` (safeguard sees equity only when it is
    fed one, so a bot that starts at 09:00 counts its daily loss from 09:00).
    """

    peak: float
    peak_at: float
    day: str
    day_start: float
    day_started_at: float

    def __post_init__(self) -> None:
        _inputs.positive("peak", self.peak)
        _inputs.non_negative("peak_at", self.peak_at)
        _inputs.number("day_start", self.day_start)
        _inputs.non_negative("day_started_at", self.day_started_at)
        if not isinstance(self.day, str) or utc_day(self.day_started_at) != self.day:
            raise ValueError(
                f"day must be the UTC day of day_started_at "
                f"({utc_day(self.day_started_at)!r}), got {self.day!r}"
            )

    @classmethod
    def start(cls, equity: float, now: float) -> EquityMarks:
        """Fresh marks: the peak and the day's start are today's ``equity`` (which must be > 0)."""
        _inputs.positive("equity", equity)
        return cls(peak=equity, peak_at=now, day=utc_day(now), day_start=equity, day_started_at=now)

    def advance(self, equity: float, now: float) -> EquityMarks:
        """The marks after observing ``equity`` at ``now``: a new high raises the peak; the first
        observation of a new UTC day becomes that day's start. Returns ``self`` if nothing moved,
        so a caller persists only real changes."""
        _inputs.number("equity", equity)
        day = utc_day(now)
        new_high = equity > self.peak
        peak, peak_at = (equity, now) if new_high else (self.peak, self.peak_at)
        # A clock stepped back into yesterday must not reopen yesterday.
        if day != self.day and now > self.day_started_at:
            return EquityMarks(peak, peak_at, day, equity, now)
        if not new_high:
            return self
        return EquityMarks(peak, peak_at, self.day, self.day_start, self.day_started_at)

    def after_transfer(self, amount: float) -> EquityMarks:
        """The marks after a deposit (``amount`` > 0) or withdrawal (< 0).

        Moving money in or out is not profit or loss: shifting both marks by the amount keeps a
        withdrawal from reading as a drawdown and a deposit from hiding one.
        """
        _inputs.number("amount", amount)
        if self.peak + amount <= 0.0:
            raise ValueError(
                f"amount {amount!r} would take the equity peak ({self.peak!r}) to or below zero"
            )
        return EquityMarks(
            self.peak + amount,
            self.peak_at,
            self.day,
            self.day_start + amount,
            self.day_started_at,
        )

    def drawdown_pct(self, equity: float) -> float:
        """How far ``equity`` sits below the peak, in % of the peak (0 at or above it)."""
        _inputs.number("equity", equity)
        return max(self.peak - equity, 0.0) / self.peak * 100.0

    def daily_loss(self, equity: float) -> float:
        """Loss since the day's start in quote currency (negative when the day is up)."""
        _inputs.number("equity", equity)
        return self.day_start - equity

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "peak": self.peak,
            "peak_at": self.peak_at,
            "day": self.day,
            "day_start": self.day_start,
            "day_started_at": self.day_started_at,
        }


class EquityStore:
    """The marks on disk: ``<state_dir>/equity.json``, or ``equity-<account>.json`` when several
    accounts share one state directory (the kill switch's is shared by every bot on it, and one
    account's peak must not become another's). The directory is created on first save."""

    def __init__(self, state_dir: str | os.PathLike[str], *, account: str | None = None) -> None:
        if account is not None and not _ACCOUNT_NAME.fullmatch(account or ""):
            raise ValueError(
                f"account must be 1-64 letters, digits, '.', '_' or '-', got {account!r}"
            )
        name = FILENAME if account is None else f"equity-{account}.json"
        self.path = Path(state_dir) / name

    def load(self) -> EquityMarks | None:
        """The saved marks, or ``None`` when no file exists yet.

        Raises :class:`ConfigError` (``key`` is the file's path) when the file exists but is
        unreadable, not JSON, of another format, or holds a value that fails validation.
        """
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._corrupt(f"cannot be read ({exc})") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise self._corrupt(f"is not valid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise self._corrupt(f"must hold a JSON object, found {type(data).__name__}")
        if data.get("format") != FORMAT:
            raise self._corrupt(f"has format {data.get('format')!r}, expected {FORMAT!r}")
        if set(data) != _FIELDS:
            missing = sorted(_FIELDS - set(data))
            unknown = sorted(set(data) - _FIELDS)
            raise self._corrupt(f"has missing fields {missing} or unknown fields {unknown}")
        try:
            return EquityMarks(
                peak=data["peak"],
                peak_at=data["peak_at"],
                day=data["day"],
                day_start=data["day_start"],
                day_started_at=data["day_started_at"],
            )
        except ValueError as exc:
            raise self._corrupt(f"holds an invalid value: {exc}") from exc

    def save(self, marks: EquityMarks) -> None:
        """Write ``marks`` atomically. Raises ``OSError`` if the disk refuses."""
        payload = json.dumps(marks.to_json(), sort_keys=True, allow_nan=False).encode()
        atomic_write(self.path, payload)

    def _corrupt(self, problem: str) -> ConfigError:
        return ConfigError(
            f"equity state file {self.path} {problem}; refusing to start rather than reset the "
            "drawdown peak. Restore the file, or delete it to start a new peak deliberately.",
            key=str(self.path),
        )


def atomic_write(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` so a reader sees the old bytes or the new, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    # The rename itself lives in the directory; without this a power cut can undo it.
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


__all__ = ["FILENAME", "FORMAT", "EquityMarks", "EquityStore", "atomic_write", "utc_day"]
