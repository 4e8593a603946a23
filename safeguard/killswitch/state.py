"""The kill switch's state and its transitions: pure, no I/O, no threads.

What the latch can be (:class:`TradingState`, :class:`SwitchState`), the two events that move
it (:class:`Engage`, :class:`Resume`) and the one function that decides (:func:`transition`),
plus which sends a state refuses (:func:`refusal_code`) and the per-kind counting an engage
drains by. :mod:`~safeguard.killswitch.switch` holds this state for one process (locks,
waiters, the drain); :mod:`~safeguard.killswitch.store` persists it and
:mod:`~safeguard.killswitch.notify` announces it. Each of them imports this module, and it
imports none of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from safeguard.codes import Code


class TradingState(StrEnum):
    """What the kill switch allows."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY: Final = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


@dataclass(frozen=True)
class SwitchState:
    """The latch's state: what it allows, why, who set it and when (epoch seconds)."""

    state: TradingState
    reason: str
    code: str
    by: str
    since: float

    def __post_init__(self) -> None:
        if not isinstance(self.state, TradingState):
            raise ValueError(f"state must be a TradingState, got {self.state!r}")
        for name in ("reason", "code", "by"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be a string, got {getattr(self, name)!r}")
        if isinstance(self.since, bool) or not isinstance(self.since, int | float):
            raise ValueError(f"since must be a number of epoch seconds, got {self.since!r}")
        if not 0.0 <= self.since < float("inf"):
            raise ValueError(f"since must be finite and non-negative, got {self.since!r}")
        if self.state is not TradingState.ACTIVE and not (self.reason and self.code):
            raise ValueError(f"a {self.state} state needs a non-empty reason and code")


@dataclass(frozen=True)
class Engage:
    """Tighten the switch to ``state`` (never loosens it)."""

    state: TradingState
    reason: str
    code: str
    by: str


@dataclass(frozen=True)
class Resume:
    """Loosen the switch to ``to`` (``ACTIVE``, or ``REDUCING`` from ``HALTED``)."""

    by: str
    to: TradingState = TradingState.ACTIVE
    reason: str = "resumed"


@dataclass(frozen=True)
class Refusal:
    """A transition that was not made, and from when (epoch seconds) it could be, if ever."""

    message: str
    code: str
    retry_at: float | None = None


def transition(
    current: SwitchState, event: Engage | Resume, *, now: float, cooling_period_s: float
) -> SwitchState | Refusal:
    """The whole state machine. Returns ``current`` itself when the event changes nothing."""
    if isinstance(event, Engage):
        if event.state.severity <= current.state.severity:
            return current
        return SwitchState(event.state, event.reason, event.code, event.by, now)
    if event.to.severity > current.state.severity:
        return Refusal(
            f"resume cannot tighten {current.state} to {event.to}; engage instead",
            Code.INVALID_INPUT,
        )
    if event.to is current.state:
        return current
    ready_at = current.since + cooling_period_s
    if now < ready_at:
        return Refusal(
            f"resume refused: {current.state} since {_iso(current.since)} ({current.reason}); "
            f"the cooling period ends in {ready_at - now:.0f} s at {_iso(ready_at)}",
            Code.COOLING_PERIOD,
            ready_at,
        )
    code = "" if event.to is TradingState.ACTIVE else current.code
    return SwitchState(event.to, event.reason, code, event.by, now)


def refusal_code(state: TradingState, *, reduces_only: bool, is_cancel: bool) -> Code | None:
    """Why ``state`` refuses this send, or ``None`` when it may go."""
    if state is TradingState.ACTIVE or is_cancel:
        return None
    if state is TradingState.REDUCING:
        return None if reduces_only else Code.TRADING_REDUCING
    return Code.TRADING_HALTED


# Sends in flight are counted per kind, so that an engage waits only for the kinds the new
# state forbids: cancels keep flowing while HALTED and must not hold an engage up.
_OPENING, _REDUCING, _CANCEL = 0, 1, 2
_BLOCKED_KINDS: Final = {
    TradingState.ACTIVE: (),
    TradingState.REDUCING: (_OPENING,),
    TradingState.HALTED: (_OPENING, _REDUCING),
}


def _kind(reduces_only: bool, is_cancel: bool) -> int:
    if type(reduces_only) is not bool:
        raise ValueError(f"reduces_only must be a bool, got {reduces_only!r}")
    if type(is_cancel) is not bool:
        raise ValueError(f"is_cancel must be a bool, got {is_cancel!r}")
    return _CANCEL if is_cancel else _REDUCING if reduces_only else _OPENING


@functools.lru_cache(maxsize=16)
def _refusal_text(state: SwitchState, code: Code) -> str:
    """The refusal's message, formatted once per state: every send the state refuses (a
    burst of them right after an engage) says the same."""
    return (
        f"{code}: kill switch is {state.state} since {_iso(state.since)} "
        f"({state.code}: {state.reason}; by {state.by})"
    )


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {value!r}")
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"timeout must be finite and non-negative, got {value!r}")
    return float(value)


Listener = Callable[[SwitchState], None]


PermitCounts = tuple[int, int, int]
_NONE_HELD: Final[PermitCounts] = (0, 0, 0)


def _plus(held: PermitCounts, kind: int, step: int) -> PermitCounts:
    counts = list(held)
    counts[kind] += step
    return (counts[0], counts[1], counts[2])


def _target(state: object) -> TradingState:
    if not isinstance(state, TradingState):
        try:
            return TradingState(str(state))
        except ValueError:
            raise ValueError(
                f"state must be one of ACTIVE, REDUCING, HALTED; got {state!r}"
            ) from None
    return state


__all__ = [
    "Engage",
    "Listener",
    "PermitCounts",
    "Refusal",
    "Resume",
    "SwitchState",
    "TradingState",
    "refusal_code",
    "transition",
]
