"""Fleets: several bots on one account or IP sharing one kill switch, one rate budget and one
equity peak, in Redis (``pip install 'safeguard[fleet]'``; redis-py is imported only when a
fleet part is built).

- :mod:`~safeguard.fleet.connection`: the link, and what a bot allows while it is down.
- :mod:`~safeguard.fleet.redis_store`: the kill switch's state, pushed to every bot.
- :mod:`~safeguard.fleet.budget`: request weight and order counts, reserved atomically.
- :mod:`~safeguard.fleet.equity`: the account's equity peak and day start.
- :mod:`~safeguard.fleet.member`: :func:`join_fleet`, a guarded exchange on all of the above.

The local state directory stays the default; Redis is what several machines can share.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy

if TYPE_CHECKING:
    from safeguard.fleet.budget import RedisRateBudget
    from safeguard.fleet.connection import connect, disconnected_state
    from safeguard.fleet.equity import RedisEquityStore, account_trips, merge_marks
    from safeguard.fleet.member import FleetMember, join_fleet
    from safeguard.fleet.redis_store import RedisStateStore, attach, open_fleet_switch

# Imported on first use: ``safeguard kill --redis`` needs the store, not the guard and ccxt
# that the budget brings in, and an operator typing it during an incident must not wait.
_WHERE = {
    "FleetMember": "member",
    "RedisEquityStore": "equity",
    "RedisRateBudget": "budget",
    "RedisStateStore": "redis_store",
    "account_trips": "equity",
    "attach": "redis_store",
    "connect": "connection",
    "disconnected_state": "connection",
    "join_fleet": "member",
    "merge_marks": "equity",
    "open_fleet_switch": "redis_store",
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
