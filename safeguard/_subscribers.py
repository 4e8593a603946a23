"""A thread-safe list of callbacks: added, removed by the function ``add`` returns, and read
as a snapshot so that a callback may add or remove others while they are being called."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C", bound=Callable[..., object])


class Subscribers(Generic[C]):
    """The callbacks one source calls. ``what`` names them in the error for a non-callable."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()
        self._callbacks: list[C] = []

    def add(self, callback: C) -> Callable[[], None]:
        """Add ``callback``; returns a function that removes it (again: does nothing)."""
        if not callable(callback):
            raise ValueError(f"{self._what} must be callable, got {callback!r}")
        with self._lock:
            self._callbacks.append(callback)

        def remove() -> None:
            with self._lock, contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    def snapshot(self) -> list[C]:
        """The callbacks now, to call outside the lock."""
        with self._lock:
            return list(self._callbacks)


__all__ = ["Subscribers"]
