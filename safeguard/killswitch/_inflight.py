"""The sends past the kill switch's gate: counted until they finish, and drained by an engage.

An engage promises that when it returns no order path can send what the new state forbids.
Closing the latch stops new sends; this module is the other half: it counts the sends already
past the gate (per kind, per event-loop thread and per context) and lets an engage wait until
the ones it forbids have finished. Kept apart from :mod:`~safeguard.killswitch._switch` because
it is a question of its own (who is still sending, and can this caller wait for them?) with
its own subtleties: a sender cannot wait for itself, and a blocking engage on an event loop's
thread cannot wait for that loop's tasks.

The counts share the switch's lock: the gate's state check and the count it adds must be one
step, or an engage could slip between them and miss a send.
"""

from __future__ import annotations

import asyncio
import threading
from contextvars import ContextVar, Token
from typing import Final

from safeguard._log import logger
from safeguard.killswitch._state import TradingState

# Sends in flight are counted per kind, so that an engage waits only for the kinds the new
# state forbids: cancels keep flowing while HALTED and must not hold an engage up.
OPENING, REDUCING, CANCEL = 0, 1, 2
BLOCKED_KINDS: Final = {
    TradingState.ACTIVE: (),
    TradingState.REDUCING: (OPENING,),
    TradingState.HALTED: (OPENING, REDUCING),
}

PermitCounts = tuple[int, int, int]
NONE_HELD: Final[PermitCounts] = (0, 0, 0)


def send_kind(reduces_only: bool, is_cancel: bool) -> int:
    """The kind a send counts as: a cancel, a reduce-only order, or an opening one."""
    if type(reduces_only) is not bool:
        raise ValueError(f"reduces_only must be a bool, got {reduces_only!r}")
    if type(is_cancel) is not bool:
        raise ValueError(f"is_cancel must be a bool, got {is_cancel!r}")
    return CANCEL if is_cancel else REDUCING if reduces_only else OPENING


def plus(held: PermitCounts, kind: int, step: int) -> PermitCounts:
    counts = list(held)
    counts[kind] += step
    return (counts[0], counts[1], counts[2])


class SendsInFlight:
    """The sends past the gate, and the engages waiting for them. Thread-safe under ``lock``
    (the switch's own)."""

    def __init__(self, lock: threading.Lock, name: str) -> None:
        self._lock = lock
        self._drained = threading.Condition(lock)  # a send exited while an engage drains
        self._counts = [0, 0, 0]
        self._per_loop: dict[int, list[int]] = {}
        self._draining: list[tuple[tuple[int, ...], int]] = []
        """Each engage draining now: the kinds it waits for, and how many of them it cannot
        wait for (its own). A send's exit wakes it only once that is all that is left."""
        # Permits held by the current thread or asyncio task (a context), so an engage made
        # from inside a permit block does not wait for itself.
        self._held: ContextVar[PermitCounts] = ContextVar(name)

    def add_locked(self, kind: int, loop_thread: int | None) -> None:
        """Count one send in. The caller holds the lock (it has just checked the state)."""
        self._counts[kind] += 1
        if loop_thread is not None:
            self._per_loop.setdefault(loop_thread, [0, 0, 0])[kind] += 1

    def hold(self, kind: int) -> Token[PermitCounts]:
        """Mark the send as this context's own, outside the lock."""
        return self._held.set(plus(self._held.get(NONE_HELD), kind, 1))

    def remove(self, kind: int, token: Token[PermitCounts] | None, loop_thread: int | None) -> None:
        """Count one send out, and wake the drain it completes."""
        if token is not None:
            try:
                self._held.reset(token)
            except ValueError:  # exited in another context than it entered: count by hand
                held = self._held.get(NONE_HELD)
                if held[kind]:
                    self._held.set(plus(held, kind, -1))
        with self._lock:
            self._counts[kind] -= 1
            if loop_thread is not None:
                self._per_loop[loop_thread][kind] -= 1
            if self._draining and any(
                self._total(kinds) <= floor for kinds, floor in self._draining
            ):
                # Only the exit that completes a drain wakes it: one wake-up per engage, not
                # one per send (each costs the engaging thread a trip through the GIL).
                self._drained.notify_all()

    def held(self) -> PermitCounts:
        """The permits the current thread or task holds."""
        return self._held.get(NONE_HELD)

    def sleeping_for(self, reduces_only: bool | None, is_cancel: bool) -> PermitCounts:
        """What a sleeper counts as its own: the permits its context holds, plus the one the
        send it delays will need. A sleep is cut short by either being forbidden."""
        held = self._held.get(NONE_HELD)
        if reduces_only is None:
            return held
        return plus(held, send_kind(reduces_only, is_cancel), 1)

    def blocking_others(self, state: TradingState, *, on_loop: bool = False) -> int:
        """Sends in flight that ``state`` forbids, except those the caller cannot wait for:
        its own (this thread's or task's), and on an event-loop thread its loop's tasks'."""
        if on_loop:
            mine = self._per_loop.get(threading.get_ident(), [0, 0, 0])
        else:
            mine = list(self._held.get(NONE_HELD))
        return sum(self._counts[k] - mine[k] for k in BLOCKED_KINDS[state])

    def _total(self, kinds: tuple[int, ...]) -> int:
        return sum(self._counts[k] for k in kinds)

    def drain(self, state: TradingState, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for the sends ``state`` forbids; return how many are left."""
        on_loop = asyncio._get_running_loop() is not None
        kinds = BLOCKED_KINDS[state]
        with self._drained:
            # What blocking_others leaves out (this thread's sends, or its loop's), fixed
            # while it waits: none of them can finish before it returns.
            waiter = (kinds, self._total(kinds) - self.blocking_others(state, on_loop=on_loop))
            self._draining.append(waiter)
            try:
                self._drained.wait_for(
                    lambda: self.blocking_others(state, on_loop=on_loop) == 0, timeout_s
                )
                left = self.blocking_others(state, on_loop=on_loop)
                unwaited = self.blocking_others(state) - left if on_loop else 0
            finally:
                self._draining.remove(waiter)
        if unwaited:
            logger.warning(
                "kill switch engaged with engage() on an event loop thread: {} send(s) by "
                "tasks of that loop were in flight and could not be waited for; use "
                "engage_async() in asyncio code",
                unwaited,
            )
        return left


__all__ = [
    "BLOCKED_KINDS",
    "CANCEL",
    "NONE_HELD",
    "OPENING",
    "REDUCING",
    "PermitCounts",
    "SendsInFlight",
    "plus",
    "send_kind",
]
