"""join_fleet: a guarded exchange on the fleet's switch and budget (the bot processes of
test_fleet_processes.py are built with it; here, what it refuses)."""

from __future__ import annotations

import pytest

from safeguard._config import Policy

pytestmark = pytest.mark.redis


def test_join_fleet_refuses_what_it_cannot_wire(redis_url: str, prefix: str) -> None:
    import ccxt

    from safeguard.fleet._member import join_fleet

    policy = Policy.build(fleet={"redis_url": redis_url, "key_prefix": prefix})
    with pytest.raises(ValueError, match="exchange"):
        join_fleet(object(), policy)
    with pytest.raises(ValueError, match="budget"):
        join_fleet(ccxt.binanceusdm(), policy, budget=None)
    with pytest.raises(ValueError, match="policy"):
        join_fleet(ccxt.binanceusdm(), policy.fleet)  # type: ignore[arg-type]
