"""Fleets: several bots on one account or IP sharing one kill switch, one rate budget and one
equity peak, in Redis (``pip install 'safeguard[fleet]'``; redis-py is imported only when a
fleet part is built).

- :mod:`~safeguard.fleet._connection`: the link, and what a bot allows while it is down.
- :mod:`~safeguard.fleet._redis_store`: the kill switch's state, pushed to every bot.
- :mod:`~safeguard.fleet._budget`: request weight and order counts, reserved atomically.
- :mod:`~safeguard.fleet._equity`: the account's equity peak and day start.
- :mod:`~safeguard.fleet._member`: :func:`join_fleet`, a guarded exchange on all of the above.

The local state directory stays the default; Redis is what several machines can share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy

if TYPE_CHECKING:
    from safeguard.fleet._budget import RedisRateBudget
    from safeguard.fleet._connection import connect, disconnected_state
    from safeguard.fleet._equity import RedisEquityStore, account_trips, merge_marks
    from safeguard.fleet._member import FleetMember, join_fleet
    from safeguard.fleet._redis_store import RedisStateStore, attach, open_fleet_switch

# Imported on first use: ``safeguard kill --redis`` needs the store, not the guard and ccxt
# that the budget brings in, and an operator typing it during an incident must not wait.
_WHERE = {
    "FleetMember": "_member",
    "RedisEquityStore": "_equity",
    "RedisRateBudget": "_budget",
    "RedisStateStore": "_redis_store",
    "account_trips": "_equity",
    "attach": "_redis_store",
    "connect": "_connection",
    "disconnected_state": "_connection",
    "join_fleet": "_member",
    "merge_marks": "_equity",
    "open_fleet_switch": "_redis_store",
}


__getattr__, __dir__ = _lazy.lazy_exports(
    __name__, {name: f".{module}" for name, module in _WHERE.items()}, globals()
)


__all__ = [
    "FleetMember",
    "RedisEquityStore",
    "RedisRateBudget",
    "RedisStateStore",
    "account_trips",
    "attach",
    "connect",
    "disconnected_state",
    "join_fleet",
    "merge_marks",
    "open_fleet_switch",
]
