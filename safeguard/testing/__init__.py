"""What safeguard tests itself with, for testing your own strategies.

Plain helpers, usable without pytest (everything on simulated time, seeded)::

    from safeguard.testing import paper_account

    account = paper_account(wallet=5_000)          # a venue, a ManualClock, a funded account
    exchange = account.guarded()                   # real ccxt in process, behind the guard
    account.set_faults({"rules": [{"kind": "error", "status": 503, "probability": 0.2}]})
    account.advance(3600)                          # an hour of market

The pytest fixtures in :mod:`safeguard.testing._plugin` are registered automatically when
safeguard is installed (a ``pytest11`` entry point): ``sg_venue``, ``sg_venue_client``,
``sg_guarded``, ``sg_faults``, ``sg_venue_server`` and the rest, each built on
:class:`PaperAccount`.

:mod:`safeguard.testing._ratesim` simulates greedy traffic against a venue that counts and
bans as Binance does (the throttle's tests and ``benchmarks/throttle_sim.py`` use it).

The names below are imported on first use, so ``import safeguard.testing`` (which the pytest
plugin does in every test run) stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy

if TYPE_CHECKING:
    from safeguard.testing._paper import (
        DEFAULT_API_KEY,
        DEFAULT_SECRET,
        DEFAULT_START,
        DEFAULT_SYMBOLS,
        PaperAccount,
        as_fault_plan,
        paper_account,
        sandbox_policy,
        strip_attached_stops,
    )
    from safeguard.testing._plugin import FaultSwitch

_LAZY = {
    "DEFAULT_API_KEY": "safeguard.testing._paper",
    "DEFAULT_SECRET": "safeguard.testing._paper",
    "DEFAULT_START": "safeguard.testing._paper",
    "DEFAULT_SYMBOLS": "safeguard.testing._paper",
    "FaultSwitch": "safeguard.testing._plugin",
    "PaperAccount": "safeguard.testing._paper",
    "as_fault_plan": "safeguard.testing._paper",
    "paper_account": "safeguard.testing._paper",
    "sandbox_policy": "safeguard.testing._paper",
    "strip_attached_stops": "safeguard.testing._paper",
}


__getattr__, __dir__ = _lazy.lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "DEFAULT_START",
    "DEFAULT_SYMBOLS",
    "FaultSwitch",
    "PaperAccount",
    "as_fault_plan",
    "paper_account",
    "sandbox_policy",
    "strip_attached_stops",
]
