"""``safeguard kill`` with a webhook: the latch is persisted and reported first, the alert is
waited for a bounded time, and the command says honestly whether it arrived."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from safeguard.killswitch._store import FileStateStore
from safeguard.killswitch._switch import TradingState
from tests.killswitch.test_cli_state_dir import environment, safeguard
from tests.killswitch.test_notify import Hook


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook([])
    yield server
    server.close()


def policy_with(tmp_path: Path, url: str) -> Path:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[kill_switch]\nwebhook_url = "{url}"\nwebhook_retry_delay_s = 0.05\n'
        f'state_dir = "{tmp_path / "state"}"\ncooling_period_s = 0.0\n'
    )
    return policy


def run(tmp_path: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return safeguard(tmp_path, environment(), *argv)


def closed_port() -> int:
    # A port nobody listens on: connecting is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stored_state(tmp_path: Path) -> TradingState | None:
    stored = FileStateStore(tmp_path / "state").load()
    return None if stored is None else stored.state


def test_kill_reports_a_delivered_alert(tmp_path: Path, hook: Hook) -> None:
    done = run(tmp_path, "kill", "--reason", "r", "--policy", str(policy_with(tmp_path, hook.url)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engaged: HALTED")
    assert "alert: delivered" in done.stdout
    assert [body["event"] for body in hook.bodies] == ["engage"]
    assert hook.bodies[0]["persisted"] is True
    assert "secret-token" not in done.stdout + done.stderr


def test_kill_with_an_unreachable_webhook_engages_and_says_the_alert_failed(
    tmp_path: Path,
) -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook/secret-token"
    done = run(
        tmp_path, "kill", "--reason", "r", "--policy", str(policy_with(tmp_path, url)),
        "--alert-wait", "30",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engaged: HALTED")
    assert stored_state(tmp_path) is TradingState.HALTED
    assert "alert NOT delivered after 5 attempt(s)" in done.stderr
    assert "ConnectError" in done.stderr
    assert "tell people yourself" in done.stderr
    assert "secret-token" not in done.stderr


def test_kill_waits_for_a_silent_webhook_only_as_long_as_asked(tmp_path: Path, hook: Hook) -> None:
    hook.release.clear()  # the receiver takes the request and never answers
    policy = str(policy_with(tmp_path, hook.url))
    done = run(tmp_path, "kill", "--reason", "r", "--policy", policy, "--alert-wait", "0.3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engaged: HALTED")
    assert stored_state(tmp_path) is TradingState.HALTED
    assert "alert NOT confirmed within 0.3 s" in done.stderr
    assert "tell people yourself" in done.stderr


def test_resume_reports_its_alert_too(tmp_path: Path, hook: Hook) -> None:
    policy = str(policy_with(tmp_path, hook.url))
    assert run(tmp_path, "kill", "--reason", "r", "--policy", policy).returncode == 0
    done = run(tmp_path, "resume", "--by", "ops", "--policy", policy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("now ACTIVE")
    assert "alert: delivered" in done.stdout
    assert [body["event"] for body in hook.bodies] == ["engage", "resume"]


def test_kill_of_an_engaged_switch_sends_no_alert_and_says_so(tmp_path: Path, hook: Hook) -> None:
    policy = str(policy_with(tmp_path, hook.url))
    assert run(tmp_path, "kill", "--reason", "r", "--policy", policy).returncode == 0
    done = run(tmp_path, "kill", "--reason", "again", "--policy", policy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("already HALTED")
    assert "alert: none sent (nothing changed)" in done.stdout
    assert len(hook.bodies) == 1


def test_kill_refuses_a_bad_alert_wait(tmp_path: Path) -> None:
    done = run(tmp_path, "kill", "--reason", "r", "--alert-wait", "nan")
    assert done.returncode == 2
    assert "--alert-wait" in done.stderr
    assert not (tmp_path / "state").exists()
