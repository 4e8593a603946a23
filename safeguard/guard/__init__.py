"""The guarded exchange: a ccxt exchange wrapped in retries, throttling and pre-trade checks.

    import ccxt, safeguard
    ex = safeguard.guard(ccxt.binanceusdm({...}), safeguard.Policy.load("safeguard.toml"))
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000, params={"stopLossPrice": 58000})

:func:`guard` returns a :class:`~safeguard.guard.sync.GuardedExchange` for a ccxt exchange and
an :class:`~safeguard.guard.aio.AsyncGuardedExchange` for a ``ccxt.async_support`` one. Both
drive the one :class:`~safeguard.guard.core.GuardCore`; :mod:`safeguard.guard.compose` builds
them and everything they hold.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Unpack

from safeguard.config import Policy
from safeguard.guard.aio import AsyncGuardedExchange
from safeguard.guard.compose import GuardOptions, compose
from safeguard.guard.sync import GuardedExchange


def guard(exchange: Any, policy: Policy | None = None, **options: Unpack[GuardOptions]) -> Any:
    """Wrap ``exchange`` (a ccxt or ccxt.async_support instance) in the guard.

    Options (keyword only, :class:`~safeguard.guard.compose.GuardOptions`; an unknown one is a
    ``TypeError``): ``kill_switch``, ``clock``, ``hooks``, ``journal_path``,
    ``durable_journal`` (default on), ``budget``, ``health``, ``shrink_when_degraded``,
    ``sleep``, ``sleep_async``, ``rng``, ``triggers``, ``book_depth`` (default 100),
    ``ladder`` (default on).

    ``policy`` defaults to :meth:`Policy.load` (environment only). ``kill_switch`` defaults to
    a :class:`~safeguard.killswitch.switch.KillSwitch` on ``policy.kill_switch``. The order
    journal lives in ``journal_path`` or ``kill_switch.state_dir/orders-<exchange>-<key>.jsonl``.
    ``budget`` defaults to the process-wide budget for this venue host and API key. ``health``
    defaults to a :class:`~safeguard.guard.degradation.HealthMonitor` on
    ``policy.degradation``: when it says DEGRADED or SEVERE, orders are priced on the degraded
    fill model. ``sleep`` and ``sleep_async`` replace the backoff sleep (``kill_switch.wait`` /
    ``wait_async``: they return early on an engage), for tests on a
    :class:`~safeguard.clock.ManualClock`.

    ``book_depth`` is how many levels of the order book the verdict walks (Binance weighs
    depth 50 at 2, 100 at 5, 500 at 10).

    ``triggers`` turns the automatic kill-switch triggers on: ``True`` builds a
    :class:`~safeguard.killswitch.triggers.RiskMonitor` from the policy (its equity marks in
    the state directory), or pass one. Every request outcome, order, cancel, rejection,
    leverage change, ban, mark and account re-read is fed to it, and a trip engages the switch.

    ``ladder`` (default on) runs the kill switch's engage ladder
    (:mod:`safeguard.killswitch.ladder`: cancel-all, flatten, as ``policy.kill_switch`` says)
    on the raw exchange whenever the switch engages, here or from another process. Turn it off
    only when something else already runs it for this account.

    ccxt's own retry (``maxRetriesOnFailure``) is forced to 0 and its throttler off: the guard
    owns both, and ccxt's would double the waits and retry orders blindly.
    """
    return compose(exchange, policy, options)


__all__ = ["AsyncGuardedExchange", "GuardedExchange", "guard"]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`guard`.

    ``safeguard.guard`` is documented as a function, but Python binds the package attribute to
    this subpackage as soon as any ``safeguard.guard.*`` module is imported. Making the
    subpackage callable keeps ``safeguard.guard(exchange, policy)`` working either way.
    """

    def __call__(self, exchange: Any, policy: Policy | None = None, **options: Any) -> Any:
        return guard(exchange, policy, **options)


sys.modules[__name__].__class__ = _CallableModule
