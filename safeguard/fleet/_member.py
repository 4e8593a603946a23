"""One call to make a bot a member of a fleet: its guarded exchange on the shared state.

    import ccxt, safeguard
    from safeguard.fleet._member import join_fleet

    policy = safeguard.Policy.load("fleet.toml")          # [fleet] redis_url = "redis://..."
    with join_fleet(ccxt.binanceusdm({...}), policy) as bot:
        bot.exchange.create_order(...)                     # guarded, on the fleet's switch

The kill switch is the fleet's (:func:`~safeguard.fleet._redis_store.open_fleet_switch`), the
rate budget is shared per IP and per account (:class:`~safeguard.fleet._budget.RedisRateBudget`),
and everything else is :func:`safeguard.guard.guard` as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Any

from safeguard._clock import Clock
from safeguard._config import Policy
from safeguard.fleet._budget import RedisRateBudget
from safeguard.fleet._redis_store import RedisStateStore, open_fleet_switch
from safeguard.killswitch._switch import KillSwitch


@dataclass
class FleetMember:
    """A bot in a fleet: its guarded exchange and the shared parts it holds open."""

    exchange: Any
    """The guarded exchange (``GuardedExchange`` or ``AsyncGuardedExchange``)."""
    switch: KillSwitch
    store: RedisStateStore
    budget: RedisRateBudget

    def close(self) -> None:
        """Leave the fleet: stop the switch's threads, then close the Redis connections."""
        self.switch.close()
        self.store.close()
        self.budget.close()

    def __enter__(self) -> FleetMember:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def join_fleet(
    exchange: Any,
    policy: Policy,
    *,
    url: str | None = None,
    ip_key: str | None = None,
    clock: Clock | None = None,
    **guard_options: Any,
) -> FleetMember:
    """Guard ``exchange`` on the fleet's kill switch and rate budget (``policy.fleet``).

    ``ip_key`` names what the venue counts request weight against; the default,
    ``<exchange id>@<API host>``, suits bots behind one public IP. ``guard_options`` go to
    :func:`safeguard.guard.guard` (``hooks``, ``journal_path``, ``sleep``...).
    """
    from safeguard.guard import guard
    from safeguard.guard._compose import api_host
    from safeguard.guard._throttle import account_fingerprint

    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a safeguard.Policy, got {type(policy).__name__}")
    if not isinstance(getattr(exchange, "id", None), str):
        raise ValueError(
            f"exchange must be a ccxt exchange instance, got {type(exchange).__name__}"
        )
    for taken in ("kill_switch", "budget", "clock"):
        if taken in guard_options:
            raise ValueError(f"{taken}: join_fleet provides it; pass it to guard() instead")
    switch, store = open_fleet_switch(policy, url=url, clock=clock)
    try:
        budget = RedisRateBudget(
            policy.fleet,
            ip_key or f"{exchange.id}@{api_host(exchange)}",
            account_fingerprint(getattr(exchange, "apiKey", None) or None),
            throttle=policy.throttle,
            url=url,
        )
    except BaseException:
        switch.close()
        store.close()
        raise
    try:
        guarded = guard(
            exchange,
            policy,
            kill_switch=switch,
            budget=budget,
            clock=clock,
            **guard_options,
        )
    except BaseException:
        FleetMember(None, switch, store, budget).close()
        raise
    return FleetMember(guarded, switch, store, budget)


__all__ = ["FleetMember", "join_fleet"]
