"""``safeguard kill|status|resume --redis URL``: the switch of a whole fleet from a shell."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard._errors import TradingHalted
from safeguard.cli import ExitCode, main
from safeguard.fleet._redis_store import RedisStateStore, open_fleet_switch
from safeguard.killswitch._switch import KillSwitch, TradingState

pytestmark = pytest.mark.redis


@pytest.fixture
def bot(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[KillSwitch]:
    policy = Policy.build(
        fleet={"redis_url": redis_url, "key_prefix": prefix, "health_check_interval_s": 0.05},
        kill_switch={"state_dir": str(tmp_path / "bot"), "watch_state_file": False},
    )
    switch, store = open_fleet_switch(policy)
    yield switch
    switch.close()
    store.close()


def _cli(*args: str) -> int:
    return main(list(args))


def test_kill_status_resume_act_on_every_bot_of_the_fleet(
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    bot: KillSwitch,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SAFEGUARD_KILL_SWITCH__COOLING_PERIOD_S", "0")
    where = ["--redis", redis_url, "--prefix", prefix, "--state-dir", str(tmp_path / "cli")]
    assert _cli("kill", "--reason", "funding spike", "--by", "alice", *where) == 0
    assert "engaged: HALTED" in capsys.readouterr().out
    # kill returns once the running bot confirmed: it refuses at once, no waiting.
    with pytest.raises(TradingHalted), bot.permit(reduces_only=False):
        pass

    assert _cli("status", "--json", "--history", "5", *where) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["code"], status["by"]) == ("HALTED", Code.MANUAL, "alice")
    assert status["reason"] == "funding spike"
    assert [e["event"] for e in status["history"]] == ["engage"]
    # The file state directory was not used.
    assert not (tmp_path / "cli" / "state.json").exists()

    assert _cli("resume", "--by", "alice", *where) == 0
    deadline = time.monotonic() + 5
    while bot.refresh().state is not TradingState.ACTIVE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert bot.state.state is TradingState.ACTIVE


def test_the_policy_names_the_fleet_redis(
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    bot: KillSwitch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "fleet.toml"
    policy.write_text(
        f'[fleet]\nredis_url = "{redis_url}"\nkey_prefix = "{prefix}"\n'
        f'[kill_switch]\nstate_dir = "{tmp_path / "unused"}"\n'
    )
    assert _cli("kill", "--reason", "from the policy", "--policy", str(policy)) == 0
    assert bot.refresh().reason == "from the policy"
    capsys.readouterr()


def test_an_unreachable_redis_changes_nothing_and_says_so(
    prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    where = ["--redis", f"redis://127.0.0.1:{port}/0", "--prefix", prefix]
    where += ["--state-dir", str(tmp_path)]
    assert _cli("kill", "--reason", "x", *where) == ExitCode.UNREACHABLE
    assert "unreachable" in capsys.readouterr().err
    assert _cli("status", *where) == ExitCode.UNREACHABLE
    said = capsys.readouterr()
    assert said.out == ""  # no state is shown: none could be read
    assert "is unreachable, so the fleet's kill-switch state cannot be read" in said.err
    assert "trades as HALTED (fleet.on_disconnect)" in said.err
    assert "trades as configured" not in said.err
    assert not (tmp_path / "state.json").exists()


def test_a_cli_store_is_not_a_member_an_engage_waits_for(redis_url: str, prefix: str) -> None:
    fleet = Policy.build(fleet={"redis_url": redis_url, "key_prefix": prefix}).fleet
    with RedisStateStore(fleet, listen=False) as one_shot:
        assert one_shot.connected
        assert one_shot.live_members() == []
    with RedisStateStore(fleet) as running:
        assert running.member in running.live_members()


def test_status_fleet_shows_the_shared_state(
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    bot: KillSwitch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from safeguard.fleet._budget import RedisRateBudget
    from safeguard.guard._throttle import RequestKind

    fleet = Policy.build(fleet={"redis_url": redis_url, "key_prefix": prefix}).fleet
    budget = RedisRateBudget(fleet, "binanceusdm@fapi", "acct")
    try:
        now = time.time()
        budget.decide(RequestKind.READ, 20, now)
        budget.record_ban(now + 600, now)
    finally:
        budget.close()
    bot.engage("seen from the shell", by="bot-7")
    where = ["--redis", redis_url, "--prefix", prefix, "--state-dir", str(tmp_path)]

    assert _cli("status", "--fleet", "--json", *where) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["state"], shown["by"]) == ("HALTED", "bot-7")
    assert len(shown["fleet"]["members"]) == 1  # the running bot; the CLI itself is no member
    weight = [w for w in shown["fleet"]["windows"] if "REQUEST_WEIGHT" in w["key"]]
    assert [w["used"] for w in weight] == [20.0]
    assert [b["scope"] for b in shown["fleet"]["bans"]] == ["binanceusdm@fapi"]

    assert _cli("status", "--fleet", *where) == 0
    text = capsys.readouterr().out
    assert "HALTED since" in text
    assert "bots checked in: 1" in text
    assert "banned: binanceusdm@fapi until" in text


def test_status_fleet_needs_a_redis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli("status", "--fleet", "--state-dir", str(tmp_path)) == 2
    assert "--fleet needs --redis" in capsys.readouterr().err


def test_kill_on_a_fleet_does_not_import_ccxt(redis_url: str, prefix: str, tmp_path: Path) -> None:
    import subprocess
    import sys

    # An operator typing it during an incident must not wait for the guard and ccxt to load.
    code = (
        "import sys; from safeguard.cli import main; "
        f"rc = main(['kill', '--reason', 'x', '--redis', {redis_url!r}, '--prefix', {prefix!r}, "
        f"'--state-dir', {str(tmp_path)!r}]); "
        "print('CCXT' if 'ccxt' in sys.modules else 'NO-CCXT', file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == "NO-CCXT"


@pytest.mark.parametrize("state", ["HALTED", "REDUCING"])
def test_kill_says_not_engaged_when_redis_is_lost_between_its_look_and_its_write(
    state: str,
    redis_server: Any,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Found in review: the CLI read its engage back from the store, and a Redis store that
    # could not write it answers with its own memory of it, so `kill` printed "engaged:" and
    # exited 0 while Redis held nothing (and the CLI's memory died with it). A REDUCING then
    # read back as the lost link's HALTED: "already HALTED", exit 0, and nothing kept.
    from safeguard.cli import _kill as kill

    built = kill._switch

    def then_redis_dies(args: Any, **options: Any) -> Any:
        made = built(args, **options)  # connected: the reachability check has passed
        redis_server.kill()
        return made

    monkeypatch.setattr(kill, "_switch", then_redis_dies)
    monkeypatch.setenv("SAFEGUARD_STATE_DIR", str(tmp_path))
    code = _cli(
        "kill", "--reason", "stop now", "--state", state, "--redis", redis_server.url,
        "--prefix", prefix,
    )  # fmt: skip
    out, err = capsys.readouterr()
    assert code != 0
    assert "engaged:" not in out
    assert "NOT engaged" in err
    redis_server.start()
    fleet = Policy.build(fleet={"redis_url": redis_server.url, "key_prefix": prefix}).fleet
    store = RedisStateStore(fleet, listen=False)
    try:
        assert store.load() is None  # the kill never reached the fleet
    finally:
        store.close()


def test_a_prefix_no_bot_uses_is_said_not_silently_obeyed(
    redis_url: str,
    prefix: str,
    tmp_path: Path,
    bot: KillSwitch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A mistyped --prefix: status answered "ACTIVE (never engaged)" and kill "engaged: HALTED",
    # both exit 0, while the running bot (on the real prefix) traded on.
    typo = ["--redis", redis_url, "--prefix", prefix + "x", "--state-dir", str(tmp_path / "cli")]
    assert _cli("status", *typo) == 2
    assert "nothing under" in capsys.readouterr().err
    assert _cli("kill", "--reason", "stop now", *typo) == 0
    captured = capsys.readouterr()
    assert "engaged: HALTED" in captured.out
    assert "WARNING: no bot is checked in under" in captured.err
    assert bot.refresh().state is TradingState.ACTIVE  # it is on the other prefix
    # On the bot's own prefix there is no warning: a bot is checked in.
    right = ["--redis", redis_url, "--prefix", prefix, "--state-dir", str(tmp_path / "cli")]
    assert _cli("kill", "--reason", "stop now", *right) == 0
    assert "WARNING" not in capsys.readouterr().err
