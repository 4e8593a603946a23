"""The kill switch: a persisted latch every order path obeys, and what it does on engage.

- :mod:`~safeguard.killswitch._state`: the states and the pure transitions (no I/O, no threads).
- :mod:`~safeguard.killswitch._switch`: :class:`KillSwitch`, the latch one process holds: the
  gate, engage and resume, noticing another process's change, failing closed.
- :mod:`~safeguard.killswitch._inflight`: the sends past the gate, which an engage drains.
- :mod:`~safeguard.killswitch._store`: where the state lives (a state directory by default).
- :mod:`~safeguard.killswitch._ladder`: cancel all, flatten, arm the venue's cancel-all timer.
- :mod:`~safeguard.killswitch._notify`: the listeners and the webhook (in the background).
- :mod:`~safeguard.killswitch._triggers`: the automatic trips, watched by a ``RiskMonitor``.
- :mod:`~safeguard.killswitch._early_warnings`: early warnings, reported before they are a halt.
- :mod:`~safeguard.killswitch._equity`: the equity peak and day start, kept across restarts.
"""

from __future__ import annotations

from safeguard.killswitch._ladder import LadderReport, attach_ladder, run_ladder, run_ladder_async
from safeguard.killswitch._notify import WebhookNotifier
from safeguard.killswitch._store import FileStateStore, MemoryStateStore, StateStore
from safeguard.killswitch._switch import (
    KillSwitch,
    ResumeRefused,
    SwitchState,
    TradingState,
    transition,
)
from safeguard.killswitch._triggers import EquityUpdate, MarkUpdate, RiskMonitor, Trip

__all__ = [
    "EquityUpdate",
    "FileStateStore",
    "KillSwitch",
    "LadderReport",
    "MarkUpdate",
    "MemoryStateStore",
    "ResumeRefused",
    "RiskMonitor",
    "StateStore",
    "SwitchState",
    "TradingState",
    "Trip",
    "WebhookNotifier",
    "attach_ladder",
    "run_ladder",
    "run_ladder_async",
    "transition",
]
