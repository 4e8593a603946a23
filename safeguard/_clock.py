"""Time as an input.

Decisions (verdicts, retry waits, throttle pacing, kill-switch transitions) never read the
clock themselves: they take ``now`` as an argument. Only the thin I/O layers hold a
:class:`Clock`, so tests and the simulated venue can drive time by hand.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """A source of time. ``time()`` is epoch seconds; ``monotonic()`` never goes backwards."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...


class SystemClock:
    """Wall time from the operating system."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to. Thread-safe; it never goes backwards."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        if not start >= 0:  # also rejects NaN
            raise ValueError(f"clock start must be a non-negative number, got {start!r}")
        self._now = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time."""
        if not seconds >= 0:  # also rejects NaN
            raise ValueError(f"a clock only moves forward, got advance({seconds!r})")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now``; refuses to go backwards."""
        with self._lock:
            if not now >= self._now:
                raise ValueError(f"a clock only moves forward: {now!r} < {self._now!r}")
            self._now = float(now)


__all__ = ["Clock", "ManualClock", "SystemClock"]
