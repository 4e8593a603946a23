"""The kill switch's state and its transitions: pure, no I/O, no threads.

What the latch can be (:class:`TradingState`, :class:`SwitchState`), the two events that move
it (:class:`Engage`, :class:`Resume`) and the one function that decides (:func:`transition`),
plus which sends a state refuses (:func:`refusal_code`). :mod:`~safeguard.killswitch._switch`
holds this state for one process (locks, the sends in flight, waiters, the drain);
:mod:`~safeguard.killswitch._store` persists it and :mod:`~safeguard.killswitch._notify`
announces it. Each of them imports this module, and it imports none of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from safeguard._codes import Code


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

    @property
    def since_iso(self) -> str:
        """``since`` as an ISO 8601 time (UTC, to the second)."""
        return _iso(self.since)

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
        if already_holds(current, event.state, event.code):
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
    if current.since - now > FUTURE_STAMP_TOLERANCE_S:
        # Stamped by a clock running fast (a bot 30 days ahead, corrected since): counted from
        # that stamp the period would refuse every resume for as long as the clock was wrong,
        # and no command could lift it. Such a stamp says nothing of when the engage was made.
        ready_at = now
    if now < ready_at:
        return Refusal(
            f"resume refused: {current.state} since {_iso(current.since)} ({current.reason}); "
            f"the cooling period ends in {ready_at - now:.0f} s at {_iso(ready_at)}",
            Code.COOLING_PERIOD,
            ready_at,
        )
    code = "" if event.to is TradingState.ACTIVE else current.code
    return SwitchState(event.to, event.reason, code, event.by, now)


FUTURE_STAMP_TOLERANCE_S = 300.0
"""How far in our future an engage's stamp may lie and still start its cooling period (clocks
of the machines sharing a state differ by this much at most, or they are wrong)."""


def already_holds(current: SwitchState, state: TradingState, code: str) -> bool:
    """Whether ``current`` already holds an engage to ``state`` (with ``code``): it is
    tighter, or as tight and not the stand-in a store that cannot be reached puts in its place
    (code ``STATE_STORE_UNAVAILABLE``). A decision over that stand-in (an operator's, a
    trigger's) is a change: it is what must hold once the store answers again, and the
    fleet's Redis forgets its stand-in then."""
    if current.state.severity != state.severity:
        return current.state.severity > state.severity
    unavailable = Code.STATE_STORE_UNAVAILABLE
    return not (current.code == unavailable and code != unavailable)


def refusal_code(state: TradingState, *, reduces_only: bool, is_cancel: bool) -> Code | None:
    """Why ``state`` refuses this send, or ``None`` when it may go."""
    if state is TradingState.ACTIVE or is_cancel:
        return None
    if state is TradingState.REDUCING:
        return None if reduces_only else Code.TRADING_REDUCING
    return Code.TRADING_HALTED


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


Listener = Callable[[SwitchState], None]


__all__ = [
    "FUTURE_STAMP_TOLERANCE_S",
    "Engage",
    "Listener",
    "Refusal",
    "Resume",
    "SwitchState",
    "TradingState",
    "already_holds",
    "refusal_code",
    "transition",
]
