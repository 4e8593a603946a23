"""Events from the guard's parts that do not know about hooks: the rate budget, the kill switch.

The pacer reports through its ``on_wait`` seam and the kill switch through its listeners; these
adapters turn those reports into :class:`~safeguard.guard._events.ThrottleEvent` and
:class:`~safeguard.guard._events.KillEvent` for the user's :class:`~safeguard.guard._events.Hooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from safeguard._clock import Clock
from safeguard.guard._events import EventKind, Hooks, KillEvent, ThrottleEvent


def throttle_reporter(hooks: Hooks, clock: Clock) -> Callable[[str, float, Any], None]:
    """The pacer's ``on_wait``: ``(action, seconds, decision)`` as a :class:`ThrottleEvent`."""

    def report(action: str, seconds: float, decision: Any) -> None:
        if not hooks.listening(EventKind.THROTTLE):
            return  # the pacer sits on the hot path: build nothing nobody hears
        limit = getattr(decision, "limit", None)
        usage = getattr(decision, "usage", None)
        hooks.emit(
            ThrottleEvent(
                at=clock.time(),
                action=action,
                seconds=max(float(seconds), 0.0),
                limit=None if limit is None else str(limit),
                usage=None if usage is None else float(usage),
            )
        )

    return report


def kill_reporter(hooks: Hooks) -> Callable[[Any], None]:
    """A kill-switch listener: every engage and resume (here or seen from another process)
    as a :class:`KillEvent`, stamped with the time the switch changed."""

    def report(state: Any) -> None:
        hooks.emit(
            KillEvent(
                at=float(state.since),
                state=str(state.state),
                reason=str(state.reason),
                by=str(state.by) or None,
                code=str(state.code) or None,
            )
        )

    return report


__all__ = ["kill_reporter", "throttle_reporter"]
