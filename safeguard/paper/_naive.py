"""The naive client: plain ccxt behind the retry loop most bots start with.

Any error is retried after a fixed short pause, up to a few attempts; an order whose answer
was lost is simply sent again (ccxt gives every send a fresh client id, so the venue takes
each copy as a new order); nothing is checked before an order goes out; 429 answers are
retried like anything else, which is how an IP earns a 418 ban. It exists to be compared
with the guarded exchange on the same venue, seed and fault plan.

It records what it does in the paper journal with the guard's vocabulary (``request``,
``retry``, ``throttle``), so the summary counts both runs the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import ccxt
import ccxt.async_support

from safeguard._clock import Clock
from safeguard.paper._journal import RunJournal

_IO_PREFIXES = ("fetch_", "load_", "create_", "cancel_", "set_", "edit_")
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_BANNED_UNTIL = re.compile(r"banned until (\d+)")


class NaiveClient:
    """Forwards to ``raw``; every call that does I/O is retried blindly on any ccxt error."""

    def __init__(
        self,
        raw: Any,
        *,
        clock: Clock,
        sleep: Callable[[float], object],
        journal: RunJournal,
        attempts: int = 4,
        delay_s: float = 0.5,
    ) -> None:
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise ValueError(f"attempts must be a positive integer, got {attempts!r}")
        if not delay_s >= 0:
            raise ValueError(f"delay_s must be a number >= 0, got {delay_s!r}")
        self.exchange = raw
        self._clock = clock
        self._sleep = sleep
        self._journal = journal
        self._attempts = attempts
        self._delay_s = float(delay_s)
        self._bans: set[str] = set()
        # ccxt.pro and ccxt.async_support exchanges answer with coroutines.
        self._asynchronous = isinstance(raw, ccxt.async_support.Exchange)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.exchange, name)
        snake = _CAMEL.sub(r"_\1", name).lower()
        if not callable(attr) or not snake.startswith(_IO_PREFIXES):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._retrying(snake, attr, args, kwargs)

        return call

    def _retrying(self, method: str, fn: Any, args: tuple[Any, ...], kwargs: Any) -> Any:
        if self._asynchronous:
            return self._retrying_async(method, fn, args, kwargs)
        for attempt in range(1, self._attempts + 1):
            try:
                value = fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                self._retry_or_raise(method, attempt, exc)
            else:
                self._ok(method, attempt)
                return value
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _retrying_async(
        self, method: str, fn: Any, args: tuple[Any, ...], kwargs: Any
    ) -> Any:
        """The same loop for ccxt.pro / ``ccxt.async_support`` (a strategy on ``watch_*``);
        the pause is the same simulated sleep."""
        for attempt in range(1, self._attempts + 1):
            try:
                value = await fn(*args, **kwargs)
            except ccxt.BaseError as exc:
                self._retry_or_raise(method, attempt, exc)
            else:
                self._ok(method, attempt)
                return value
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _ok(self, method: str, attempt: int) -> None:
        self._journal.write(
            self._clock.time(), "request", method=method, attempt=attempt, outcome="ok"
        )

    def _retry_or_raise(self, method: str, attempt: int, exc: ccxt.BaseError) -> None:
        """Journal the failed attempt; raise it if it was the last, else pause before the next."""
        self._failed(method, attempt, exc)
        if attempt == self._attempts:
            raise exc
        self._journal.write(
            self._clock.time(),
            "retry",
            method=method,
            attempt=attempt,
            delay_s=self._delay_s,
            reason="any-error",
            error_type=type(exc).__name__,
            resolve_first=False,
        )
        self._sleep(self._delay_s)

    def _failed(self, method: str, attempt: int, exc: Exception) -> None:
        now = self._clock.time()
        text = str(exc)
        banned = _BANNED_UNTIL.search(text)
        throttled = banned is not None or isinstance(exc, ccxt.DDoSProtection)
        self._journal.write(
            now,
            "request",
            method=method,
            attempt=attempt,
            outcome="throttled" if throttled else "error",
            error_type=type(exc).__name__,
        )
        if banned is not None:
            until = banned.group(1)
            # Every request during a ban answers 418 with the same end time: one ban, many refusals.
            if until not in self._bans:
                self._bans.add(until)
                self._journal.write(
                    now, "throttle", action="418", seconds=int(until) / 1000.0 - now, limit=None
                )
        elif throttled:
            self._journal.write(now, "throttle", action="429", seconds=0.0, limit=None)


__all__ = ["NaiveClient"]
