"""Fleet mode: a real Redis server the world runs, and what the seed does to it.

Two of the world's bots share one kill switch through Redis, as a fleet does
(:class:`~safeguard.fleet._redis_store.RedisStateStore`). The world starts its own
``redis-server`` on a Unix socket in its scratch directory (no port to collide with, no
persistence: a restart comes back empty), and the seed's fleet faults act on that process:

- **lost**: the server is killed (``SIGKILL``) and started again, empty, bars later;
- **frozen**: the server is stopped (``SIGSTOP``): connections open, nothing answered, until
  ``SIGCONT``;
- **emptied**: ``FLUSHALL`` under the running fleet.

Redis answers on the wall clock, and each store's reader thread notices a lost link on it
(``command_timeout_s``, ``health_check_interval_s``); the world waits for what the fleet must
do at each such point (every running member sees the link down; every member holds the state
Redis holds) before the next bot moves, so a seed replays the same: a member that never
notices is that seed's failure, not a race. Only the kill switch's state goes through Redis
here: the fleet's shared rate budget counts its windows on Redis' clock, which simulated time
does not move, so the members keep their own budgets.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from safeguard._errors import ConfigError

WAIT_S = 10.0
"""The longest the world waits (wall clock) for the fleet to reach what it must."""


def redis_binary() -> str | None:
    """``redis-server`` on PATH (``SG_SIM_REDIS_SERVER`` names another) with redis-py
    installed, or None: then the world runs without a fleet and counts its fleet faults as
    not simulated."""
    if importlib.util.find_spec("redis") is None:
        return None
    named = os.environ.get("SG_SIM_REDIS_SERVER")
    if not named:
        return shutil.which("redis-server")
    found = shutil.which(named)
    if found is None:
        raise ConfigError(
            f"SG_SIM_REDIS_SERVER names {named!r}, which is not an executable redis-server",
            key="SG_SIM_REDIS_SERVER",
        )
    return found


def fleet_settings(url: str, prefix: str) -> dict[str, Any]:
    """The members' ``[fleet]`` section: quick to notice a lost link (the world waits for it
    on the wall clock), and quick to stop waiting for a member that left while Redis could not
    hear it go (a process closed while Redis was frozen stays in the members' set until its
    check-in expires). Nothing the world checks depends on a confirmation arriving in time:
    each member adopts the fleet's state when the world lets it look."""
    return {
        "redis_url": url,
        "key_prefix": prefix,
        "on_disconnect": "HALTED",
        "connect_timeout_s": 0.25,
        "command_timeout_s": 0.25,
        "health_check_interval_s": 0.05,
        "reconnect_interval_s": 0.05,
        "ack_timeout_s": 0.5,
        "member_ttl_s": 0.5,
    }


class RedisServer:
    """One ``redis-server`` on a Unix socket in ``directory``, killable, freezable, empty."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.socket = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None
        self.frozen = False

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start it (empty) and wait until it answers."""
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        options = {
            "port": "0",
            "unixsocket": str(self.socket),
            "unixsocketperm": "700",
            "save": "",
            "appendonly": "no",
            "dir": str(self.directory),
            "loglevel": "warning",
            "daemonize": "no",
        }
        command = [self.binary] + [part for k, v in options.items() for part in (f"--{k}", v)]
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not wait_until(self._answers):
            self.close()
            raise RuntimeError(f"redis-server did not answer on {self.socket}")

    def _answers(self) -> bool:
        import redis

        try:
            client = redis.Redis(unix_socket_path=str(self.socket), socket_timeout=0.5)
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (OSError, redis.RedisError):
            return False

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=str(self.socket), socket_timeout=2.0)

    def kill(self) -> None:
        """Lost: the process dies where it stands; what it held is gone."""
        if self.process is None:
            return
        if self.frozen:
            self.thaw()
        self.process.kill()
        self.process.wait()
        self.process = None

    def freeze(self) -> None:
        if self.process is not None and not self.frozen:
            self.process.send_signal(signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.process is not None and self.frozen:
            self.process.send_signal(signal.SIGCONT)
            self.frozen = False

    def flush(self) -> None:
        """Emptied: every key gone under the running fleet."""
        client = self.client()
        try:
            client.flushall()
        finally:
            client.close()

    def close(self) -> None:
        self.kill()
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()


def wait_until(done: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    """Poll ``done`` on the wall clock until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


__all__ = ["WAIT_S", "RedisServer", "fleet_settings", "redis_binary", "wait_until"]
