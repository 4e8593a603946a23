"""The operator's kill switch never lies about where it acted: every process (a bot, and
``safeguard kill/status/resume`` run from any directory) resolves the same state directory, the
commands print it, and a kill that did not land says so and exits non-zero."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from safeguard._config import KillSwitchConfig, Policy
from safeguard._errors import ConfigError
from safeguard.killswitch._store import FileStateStore
from safeguard.killswitch._switch import TradingState

# What a bot sees: a KillSwitch on its policy's state directory, from its own cwd.
BOT_STATE = textwrap.dedent(
    """
    import sys
    from safeguard._config import Policy
    from safeguard.killswitch import KillSwitch

    policy = Policy.load(sys.argv[1] if len(sys.argv) > 1 else None)
    with KillSwitch(policy.kill_switch, watch=False) as switch:
        print(switch.state.state, policy.kill_switch.state_dir)
    """
)


def environment(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    for name, value in overrides.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def safeguard(cwd: Path, env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safeguard", *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def bot_state(cwd: Path, env: dict[str, str], *argv: str) -> tuple[str, str]:
    done = subprocess.run(
        [sys.executable, "-c", BOT_STATE, *argv],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    state, directory = done.stdout.split()
    return state, directory


def folders(tmp_path: Path, *names: str) -> list[Path]:
    made = [tmp_path / name for name in names]
    for folder in made:
        folder.mkdir()
    return made


def test_kill_from_another_directory_stops_the_bot_on_the_default_state_dir(
    tmp_path: Path,
) -> None:
    bot_dir, ops_dir = folders(tmp_path, "bot", "ops")
    env = environment(XDG_STATE_HOME=str(tmp_path / "xdg"))
    assert bot_state(bot_dir, env)[0] == "ACTIVE"

    kill = safeguard(ops_dir, env, "kill", "--reason", "from the ops folder", "--by", "ops")
    assert kill.returncode == 0, kill.stderr
    expected = tmp_path / "xdg" / "safeguard"
    assert f"state directory: {expected}" in kill.stdout

    assert bot_state(bot_dir, env) == ("HALTED", str(expected))


def test_the_per_user_default_without_xdg_is_under_home(tmp_path: Path) -> None:
    bot_dir, ops_dir, home = folders(tmp_path, "bot", "ops", "home")
    env = environment(XDG_STATE_HOME=None, HOME=str(home))
    kill = safeguard(ops_dir, env, "kill", "--reason", "r", "--by", "ops")
    assert kill.returncode == 0, kill.stderr
    expected = home / ".local" / "state" / "safeguard"
    assert f"state directory: {expected}" in kill.stdout
    assert bot_state(bot_dir, env) == ("HALTED", str(expected))


def test_a_relative_state_dir_in_a_policy_file_is_relative_to_that_file(tmp_path: Path) -> None:
    conf, bot_dir, ops_dir = folders(tmp_path, "conf", "bot", "ops")
    policy = conf / "policy.toml"
    policy.write_text('[kill_switch]\nstate_dir = "state"\n')
    env = environment()

    kill = safeguard(
        ops_dir, env, "kill", "--reason", "r", "--by", "ops", "--policy", "../conf/policy.toml"
    )
    assert kill.returncode == 0, kill.stderr
    assert f"state directory: {conf / 'state'}" in kill.stdout

    assert bot_state(bot_dir, env, str(policy)) == ("HALTED", str(conf / "state"))


def test_the_environment_state_dir_wins_over_the_policy_file(tmp_path: Path) -> None:
    ops_dir, bot_dir = folders(tmp_path, "ops", "bot")
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[kill_switch]\nstate_dir = "{tmp_path / "from-policy"}"\n')
    env = environment(SAFEGUARD_STATE_DIR=str(tmp_path / "from-env"))

    kill = safeguard(ops_dir, env, "kill", "--reason", "r", "--policy", str(policy))
    assert kill.returncode == 0, kill.stderr
    assert f"state directory: {tmp_path / 'from-env'}" in kill.stdout
    assert not (tmp_path / "from-policy").exists()
    assert bot_state(bot_dir, env, str(policy)) == ("HALTED", str(tmp_path / "from-env"))


def test_kill_on_a_state_dir_that_cannot_be_created_fails_loudly(tmp_path: Path) -> None:
    # Under a regular file: no directory can be made there, even by root.
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    state_dir = blocker / "state"
    kill = safeguard(
        tmp_path, environment(), "kill", "--reason", "r", "--state-dir", str(state_dir)
    )
    assert kill.returncode == 2
    assert "engaged" not in kill.stdout
    assert "NOT engaged" in kill.stderr
    assert str(state_dir) in kill.stderr


def test_kill_on_a_state_dir_env_naming_a_file_fails_loudly(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    env = environment(SAFEGUARD_STATE_DIR=str(blocker))
    kill = safeguard(tmp_path, env, "kill", "--reason", "r")
    assert kill.returncode == 2
    assert "NOT engaged" in kill.stderr
    assert blocker.read_text() == "not a directory"

    status = safeguard(tmp_path, env, "status")
    assert status.returncode == 2
    assert "not a directory" in status.stderr


def test_kill_whose_state_file_cannot_be_replaced_fails_loudly(tmp_path: Path) -> None:
    # state.json is a directory: a rename over it fails for every user, root included, while
    # the directory itself stays writable.
    (tmp_path / "state.json").mkdir()
    kill = safeguard(tmp_path, environment(), "kill", "--reason", "r", "--state-dir", str(tmp_path))
    assert kill.returncode == 2
    assert "NOT engaged" in kill.stderr


@pytest.mark.parametrize("command", [["status"], ["resume", "--by", "ops"]])
def test_status_and_resume_on_a_missing_state_dir_say_so_and_create_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "never-used"
    done = safeguard(tmp_path, environment(), *command, "--state-dir", str(missing))
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert str(missing) in done.stderr
    assert "ACTIVE" not in done.stdout
    assert not missing.exists()


def test_status_prints_the_directory_it_read(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    env = environment()
    assert safeguard(tmp_path, env, "kill", "--reason", "r", "--state-dir", "state").returncode == 0
    status = safeguard(tmp_path, env, "status", "--state-dir", str(state_dir))
    assert status.returncode == 0
    assert status.stdout.startswith("HALTED since")
    assert f"state directory: {state_dir}" in status.stdout


def test_a_relative_state_dir_in_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEGUARD_STATE_DIR", "relative/state")
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == "SAFEGUARD_STATE_DIR"
    with pytest.raises(ConfigError):
        KillSwitchConfig()
    done = safeguard(tmp_path, environment(SAFEGUARD_STATE_DIR="relative"), "kill", "--reason", "r")
    assert done.returncode == 2
    assert "SAFEGUARD_STATE_DIR" in done.stderr
    assert not (tmp_path / "relative").exists()


def test_the_library_and_the_cli_agree_on_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAFEGUARD_STATE_DIR", str(tmp_path / "shared"))
    assert KillSwitchConfig().state_dir == tmp_path / "shared"
    assert Policy.build().kill_switch.state_dir == tmp_path / "shared"
    assert Policy.load().kill_switch.state_dir == tmp_path / "shared"
    done = safeguard(
        tmp_path, environment(SAFEGUARD_STATE_DIR=str(tmp_path / "shared")), "kill", "--reason", "r"
    )
    assert done.returncode == 0, done.stderr
    stored = FileStateStore(tmp_path / "shared").load()
    assert stored is not None
    assert stored.state is TradingState.HALTED


def test_kills_racing_from_several_shells_record_one_engagement(tmp_path: Path) -> None:
    env = environment(SAFEGUARD_STATE_DIR=str(tmp_path / "state"))
    kills = [
        subprocess.Popen(
            [sys.executable, "-m", "safeguard", "kill", "--reason", f"r{i}", "--by", f"op{i}"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(4)
    ]
    outputs = [kill.communicate(timeout=120) for kill in kills]
    assert [kill.returncode for kill in kills] == [0, 0, 0, 0], outputs
    firsts = [out.split()[0] for out, _ in outputs]
    assert sorted(firsts) == ["already", "already", "already", "engaged:"]
    history = FileStateStore(tmp_path / "state").history()
    assert [event["event"] for event in history] == ["engage"]
    stored = FileStateStore(tmp_path / "state").load()
    assert stored is not None
    winner = outputs[firsts.index("engaged:")][0]
    assert f"by {stored.by} " in winner


def test_a_broken_policy_does_not_block_a_kill_aimed_at_a_state_dir(tmp_path: Path) -> None:
    # Someone edited the bots' policy during the incident; the bots still run on the old one.
    policy = tmp_path / "policy.toml"
    policy.write_text('[kill_switch]\nwebhook_url = "ftp://x"\n[risk]\nmax_levrage = 5\n')
    state_dir = tmp_path / "state"
    done = safeguard(
        tmp_path, environment(), "kill", "--reason", "r", "--policy", str(policy),
        "--state-dir", str(state_dir),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("engaged: HALTED")
    assert "kill_switch.webhook_url" in done.stderr
    assert "risk.max_levrage" in done.stderr
    stored = FileStateStore(state_dir).load()
    assert stored is not None
    assert stored.state is TradingState.HALTED


def test_a_broken_policy_with_no_state_dir_given_names_the_way_out(tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("[risk]\nmax_levrage = 5\n")
    done = safeguard(tmp_path, environment(), "kill", "--reason", "r", "--policy", str(policy))
    assert done.returncode == 2
    assert "risk.max_levrage" in done.stderr
    assert "nothing was engaged" in done.stderr
    assert "--state-dir" in done.stderr


def test_a_state_dir_variable_in_another_case_is_refused_not_half_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # KillSwitchConfig() reads SAFEGUARD_STATE_DIR exactly; a policy reading another spelling
    # would put the bot and the CLI in different directories.
    monkeypatch.setenv("safeguard_state_dir", str(tmp_path))
    with pytest.raises(ConfigError) as caught:
        Policy.load()
    assert caught.value.key == "safeguard_state_dir"


def test_a_kill_that_creates_the_state_dir_warns_that_no_bot_used_it(tmp_path: Path) -> None:
    # The bots may run as another user (another per-user default) or with another directory:
    # a kill into a directory nobody ever used reaches no running bot, and says so.
    fresh = safeguard(tmp_path, environment(), "kill", "--reason", "r", "--state-dir", "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert "did not exist" in fresh.stderr
    assert str(tmp_path / "fresh") in fresh.stderr

    (tmp_path / "used").mkdir()  # a bot keeps its journal here
    used = safeguard(tmp_path, environment(), "kill", "--reason", "r", "--state-dir", "used")
    assert used.returncode == 0, used.stderr
    assert "did not exist" not in used.stderr
