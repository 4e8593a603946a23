"""``safeguard kill / status / resume``: in-process for the details, and the real command in
another process stopping a running bot."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from safeguard.cli import main
from safeguard.killswitch._store import FileStateStore
from safeguard.killswitch._switch import TradingState


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_kill_status_resume_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state_dir = str(tmp_path / "state")
    policy = tmp_path / "policy.toml"
    policy.write_text('[kill_switch]\ncooling_period_s = 3600.0\nstate_dir = "elsewhere"\n')

    Path(state_dir).mkdir()  # a bot made it, and never engaged
    code, out, _ = run(capsys, "status", "--state-dir", state_dir)
    assert (code, out.splitlines()[0]) == (0, "ACTIVE (never engaged)")

    code, out, _ = run(
        capsys, "kill", "--reason", "funding spike", "--by", "alice", "--state-dir", state_dir
    )
    assert code == 0
    assert out.startswith("engaged: HALTED since")
    stored = FileStateStore(state_dir).load()
    assert stored is not None
    assert (stored.state, stored.reason, stored.by, stored.code) == (
        TradingState.HALTED,
        "funding spike",
        "alice",
        "MANUAL",
    )

    code, out, _ = run(capsys, "kill", "--reason", "again", "--state-dir", state_dir)
    assert code == 0
    assert out.startswith("already HALTED since")
    assert "funding spike" in out

    code, _, err = run(
        capsys, "resume", "--by", "bob", "--policy", str(policy), "--state-dir", state_dir
    )
    assert code == 1
    assert "cooling period" in err
    assert FileStateStore(state_dir).load() == stored

    code, out, _ = run(capsys, "status", "--state-dir", state_dir, "--json", "--history", "5")
    document = json.loads(out)
    assert (code, document["state"], document["reason"]) == (0, "HALTED", "funding spike")
    assert document["resume_allowed_at"] == stored.since + 300.0  # the default cooling
    assert [e["event"] for e in document["history"]] == ["engage"]

    policy.write_text("[kill_switch]\ncooling_period_s = 0.0\n")
    code, out, _ = run(
        capsys, "resume", "--by", "bob", "--policy", str(policy), "--state-dir", state_dir
    )
    assert (code, out.split(" since")[0]) == (0, "now ACTIVE")
    stored = FileStateStore(state_dir).load()
    assert stored is not None
    assert (stored.state, stored.by) == (TradingState.ACTIVE, "bob")


def test_state_dir_comes_from_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[kill_switch]\nstate_dir = "{tmp_path / "from-policy"}"\n')
    code, _, _ = run(
        capsys, "kill", "--reason", "x", "--state", "REDUCING", "--policy", str(policy)
    )
    assert code == 0
    stored = FileStateStore(tmp_path / "from-policy").load()
    assert stored is not None
    assert stored.state is TradingState.REDUCING


def test_status_on_a_corrupt_state_says_halted_and_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileStateStore(tmp_path)
    store.state_path.write_text("{not json")
    code, out, _ = run(capsys, "status", "--state-dir", str(tmp_path))
    assert code == 2
    assert out.startswith("HALTED (fail closed)")
    assert str(store.state_path) in out
    assert store.state_path.read_text() == "{not json"  # looking never writes


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["kill", "--reason", "   "], "--reason"),
        (["status", "--history", "-1"], "--history"),
        (["kill", "--reason", "x", "--state-dir", " "], "--state-dir"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err


def test_bad_policy_is_an_error_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[kill_switch]\ncooling_period_s = -5\n")
    code, _, err = run(capsys, "resume", "--policy", str(policy), "--state-dir", str(tmp_path))
    assert code == 2
    assert "kill_switch.cooling_period_s" in err


BOT = textwrap.dedent(
    """
    import sys
    from safeguard._config import KillSwitchConfig
    from safeguard._errors import TradingHalted
    from safeguard.killswitch import KillSwitch

    config = KillSwitchConfig(state_dir=sys.argv[1], poll_interval_s=0.01)
    sent = 0
    with KillSwitch(config) as switch:
        while True:
            try:
                with switch.permit(reduces_only=False):
                    sent += 1
                    if sent == 1:
                        print("trading", flush=True)
            except TradingHalted as exc:
                print("refused", exc.code, switch.state.by, flush=True)
                break
            switch.wait(0.001)
    """
)


def test_safeguard_kill_from_another_process_stops_a_running_bot(tmp_path: Path) -> None:
    bot = subprocess.Popen(
        [sys.executable, "-c", BOT, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert bot.stdout is not None
        assert bot.stdout.readline().strip() == "trading"
        kill = subprocess.run(
            [
                sys.executable,
                "-m",
                "safeguard",
                "kill",
                "--reason",
                "operator stop",
                "--by",
                "ops",
                "--state-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert kill.returncode == 0, kill.stderr
        out, err = bot.communicate(timeout=30)
    finally:
        bot.kill()
    assert bot.returncode == 0, err
    assert out.strip() == "refused TRADING_HALTED ops"
