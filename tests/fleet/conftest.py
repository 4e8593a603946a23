"""Real redis-server processes for the fleet tests.

``redis_server`` is a private server (a free loopback port, a temporary directory, no
persistence) that a test may kill and restart. ``redis_url`` is a clean database: the CI's
shared server (``SG_TEST_REDIS_URL``) if set, else a private one. Each test gets its own key
prefix, so tests never see each other's keys.

Without redis-server these tests skip, unless ``SG_TEST_REDIS_REQUIRED`` is set: then they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _unavailable(reason: str) -> None:
    if os.environ.get("SG_TEST_REDIS_REQUIRED"):
        pytest.fail(f"SG_TEST_REDIS_REQUIRED is set but {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 that can be killed and started again (empty)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise OSError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise OSError("redis-server did not answer PING within 10 s")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self.process = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    if not os.path.exists(REDIS_SERVER):
        _unavailable(f"redis-server not found at {REDIS_SERVER}")
    server = RedisServer(tmp_path)
    try:
        server.start()
    except OSError as exc:
        _unavailable(f"redis-server could not start: {exc}")
    yield server
    server.kill()


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    shared = os.environ.get("SG_TEST_REDIS_URL")
    if shared:
        return shared
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
def prefix() -> str:
    return f"sgtest-{uuid.uuid4().hex[:10]}"
