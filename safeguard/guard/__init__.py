"""The guarded exchange: a ccxt exchange wrapped in retries, throttling and pre-trade checks.

    import ccxt, safeguard
    ex = safeguard.guard(ccxt.binanceusdm({...}), safeguard.Policy.load("safeguard.toml"))
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000, params={"stopLossPrice": 58000})

:func:`guard` returns a :class:`~safeguard.guard._sync.GuardedExchange` for a ccxt exchange and
an :class:`~safeguard.guard._aio.AsyncGuardedExchange` for a ``ccxt.async_support`` one. Both
drive the one :class:`~safeguard.guard._core.GuardCore`; :mod:`safeguard.guard._compose` builds
them and everything they hold.
"""

from __future__ import annotations

import sys as _sys

from safeguard.guard._aio import AsyncGuardedExchange
from safeguard.guard._compose import CallablePackage as _CallablePackage
from safeguard.guard._compose import GuardOptions, guard
from safeguard.guard._events import (
    BandEvent,
    Event,
    EventKind,
    Hook,
    Hooks,
    KillEvent,
    ProtectiveStopEvent,
    RequestEvent,
    RetryEvent,
    StateChangeEvent,
    ThrottleEvent,
    VerdictEvent,
    WarningEvent,
)
from safeguard.guard._sync import GuardedExchange

__all__ = [
    "AsyncGuardedExchange",
    "BandEvent",
    "Event",
    "EventKind",
    "GuardOptions",
    "GuardedExchange",
    "Hook",
    "Hooks",
    "KillEvent",
    "ProtectiveStopEvent",
    "RequestEvent",
    "RetryEvent",
    "StateChangeEvent",
    "ThrottleEvent",
    "VerdictEvent",
    "WarningEvent",
    "guard",
]

# ``safeguard.guard`` is documented as a function, but Python binds the package attribute to
# this subpackage as soon as any ``safeguard.guard.*`` module is imported: the package itself
# is made callable, so ``safeguard.guard(exchange, policy)`` works either way.
_sys.modules[__name__].__class__ = _CallablePackage
