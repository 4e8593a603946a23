"""The Redis link: how a bot connects, and what it allows while the link is down.

Everything a fleet shares lives in Redis, so a bot that cannot reach Redis cannot know whether
another bot (or an operator) engaged the kill switch meanwhile. It must therefore not carry on
as if nothing happened: :func:`disconnected_state` is the pure policy that turns "the link is
down" into a latch state, ``HALTED`` or ``REDUCING`` as ``fleet.on_disconnect`` says, and never
looser than the last state the bot knew.

redis-py is an optional dependency (``pip install 'safeguard[fleet]'``), imported only when a
fleet part is built, so safeguard itself works without it.
"""

from __future__ import annotations

import os
import socket
import uuid
from types import ModuleType
from typing import TYPE_CHECKING

from safeguard._codes import Code
from safeguard._config import REDIS_SCHEMES, FleetConfig, check_url
from safeguard._errors import ConfigError
from safeguard.killswitch._switch import SwitchState, TradingState

if TYPE_CHECKING:
    import redis


def require_redis() -> ModuleType:
    """Import redis-py, or say how to install it (a :class:`ConfigError`)."""
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "fleet state needs redis-py: pip install 'safeguard[fleet]'", key="fleet.redis_url"
        ) from None
    return redis


def redis_url(config: FleetConfig, url: str | None = None) -> str:
    """The URL to connect to: ``url`` if given, else ``config.redis_url``. Raises
    :class:`ConfigError` naming ``fleet.redis_url`` when neither is set or it is no Redis URL."""
    if url is None and config.redis_url is not None:
        url = config.redis_url.get_secret_value()
    if not isinstance(url, str) or not url:
        raise ConfigError("fleet.redis_url is not set", key="fleet.redis_url")
    try:  # the policy checked its own; this one may come from ``--redis``
        return check_url(url, name="fleet.redis_url", schemes=REDIS_SCHEMES)
    except ValueError as exc:  # the message never echoes the URL: it may carry a password
        raise ConfigError(str(exc), key="fleet.redis_url") from None


def connect(config: FleetConfig, url: str | None = None) -> redis.Redis:
    """A client that fails fast: no hidden retries (the caller decides what a failure means,
    and redis-py's default backoff would hide a dead link for seconds)."""
    if not isinstance(config, FleetConfig):
        raise ValueError(f"config must be a FleetConfig, got {type(config).__name__}")
    module = require_redis()
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client: redis.Redis = module.Redis.from_url(
        redis_url(config, url),
        socket_timeout=config.command_timeout_s,
        socket_connect_timeout=config.connect_timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
        client_name=f"safeguard:{member_id()}",
    )
    return client


def key_tag(config: FleetConfig) -> str:
    """``{prefix}``: every key of a fleet starts with it. The braces are a Redis Cluster hash
    tag, so all of a fleet's keys share one slot and one script may touch any of them."""
    return "{" + config.key_prefix + "}"


def disconnected_state(
    config: FleetConfig, known: SwitchState | None, *, lost_at: float, error: str
) -> SwitchState:
    """The latch while Redis is unreachable: ``on_disconnect``, or ``known`` if tighter.

    Pure. ``known`` is the last state this bot saw in Redis (or could not write there).
    """
    floor = TradingState(config.on_disconnect)
    if known is not None and known.state.severity >= floor.severity:
        return known
    return SwitchState(
        floor,
        f"lost the link to the fleet's Redis ({error}); an engage made elsewhere would go "
        "unseen, so this bot trades as " + floor.value + " until it is back",
        Code.STATE_STORE_UNAVAILABLE,
        f"fleet:{socket.gethostname()}:{os.getpid()}",
        lost_at,
    )


def member_id() -> str:
    """A new name for one bot's link: host, pid and a random tag (pids are reused, and one
    process may run several bots)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def describe(error: BaseException) -> str:
    """One line naming a link error without any URL (which may hold a password)."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def link_errors() -> tuple[type[BaseException], ...]:
    """What a lost, refused or timed-out link raises (``except link_errors():``)."""
    return (OSError, require_redis().RedisError)


__all__ = [
    "connect",
    "describe",
    "disconnected_state",
    "key_tag",
    "link_errors",
    "member_id",
    "redis_url",
    "require_redis",
]
