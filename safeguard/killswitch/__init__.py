"""The kill switch: a persisted latch every order path obeys, and what it does on engage.

- :mod:`~safeguard.killswitch.state`: the states and the pure transitions (no I/O, no threads).
- :mod:`~safeguard.killswitch.switch`: :class:`KillSwitch`, the latch one process holds: the
  gate, engage and resume, noticing another process's change, failing closed.
- :mod:`~safeguard.killswitch.inflight`: the sends past the gate, which an engage drains.
- :mod:`~safeguard.killswitch.store`: where the state lives (a state directory by default).
- :mod:`~safeguard.killswitch.ladder`: cancel all, flatten, arm the venue's cancel-all timer.
- :mod:`~safeguard.killswitch.notify`: the listeners and the webhook (in the background).
- :mod:`~safeguard.killswitch.triggers`: the automatic trips, watched by a ``RiskMonitor``.
- :mod:`~safeguard.killswitch.early_warnings`: early warnings, reported before they are a halt.
- :mod:`~safeguard.killswitch.equity`: the equity peak and day start, kept across restarts.
"""

from __future__ import annotations

from safeguard.killswitch.ladder import LadderReport, attach_ladder, run_ladder, run_ladder_async
from safeguard.killswitch.notify import WebhookNotifier
from safeguard.killswitch.store import FileStateStore, MemoryStateStore, StateStore
from safeguard.killswitch.switch import (
    KillSwitch,
    ResumeRefused,
    SwitchState,
    TradingState,
    transition,
)

__all__ = [
    "FileStateStore",
    "KillSwitch",
    "LadderReport",
    "MemoryStateStore",
    "ResumeRefused",
    "StateStore",
    "SwitchState",
    "TradingState",
    "WebhookNotifier",
    "attach_ladder",
    "run_ladder",
    "run_ladder_async",
    "transition",
]
