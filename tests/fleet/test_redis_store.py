"""The kill switch on Redis: one engage reaches every bot, a lost link is unsafe, and a Redis
that comes back empty never unlatches a HALTED fleet.

Real redis-server processes, real KillSwitch instances (several "bots" in one process here;
test_fleet_processes.py runs them as separate processes against the venue).
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from safeguard._codes import Code
from safeguard._config import Policy
from safeguard._errors import ConfigError, TradingHalted
from safeguard.fleet._connection import disconnected_state
from safeguard.fleet._redis_store import RedisStateStore, _to_restore, open_fleet_switch
from safeguard.killswitch._store import encode_state
from safeguard.killswitch._switch import KillSwitch, SwitchState, TradingState

pytestmark = pytest.mark.redis


def _policy(url: str, prefix: str, tmp: Any, **fleet: Any) -> Policy:
    return Policy.build(
        fleet={
            "redis_url": url,
            "key_prefix": prefix,
            "health_check_interval_s": 0.05,
            "reconnect_interval_s": 0.05,
            "command_timeout_s": 0.5,
            "connect_timeout_s": 0.5,
            **fleet,
        },
        kill_switch={"state_dir": str(tmp), "cooling_period_s": 0.0, "watch_state_file": False},
    )


@pytest.fixture
def fleet() -> Iterator[Callable[[Policy], tuple[KillSwitch, RedisStateStore]]]:
    opened: list[tuple[KillSwitch, RedisStateStore]] = []

    def open_one(policy: Policy) -> tuple[KillSwitch, RedisStateStore]:
        pair = open_fleet_switch(policy, watch=False)
        opened.append(pair)
        return pair

    yield open_one
    for switch, store in reversed(opened):
        switch.close()
        store.close()


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


def _refused(switch: KillSwitch) -> str | None:
    try:
        with switch.permit(reduces_only=False):
            return None
    except TradingHalted as exc:
        return exc.code


def test_an_engage_in_one_bot_stops_every_bot(
    redis_url: str, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_url, prefix, tmp_path)
    bots = [fleet(policy) for _ in range(3)]
    assert all(_refused(switch) is None for switch, _ in bots)

    bots[0][0].engage("runaway loop seen by bot 0", by="bot-0")

    # The engage returned only after every live bot confirmed: no waiting needed here.
    assert [_refused(switch) for switch, _ in bots] == [Code.TRADING_HALTED] * 3
    assert {switch.state.reason for switch, _ in bots} == {"runaway loop seen by bot 0"}
    [event] = bots[2][1].history()
    assert (event["event"], event["state"], event["by"]) == ("engage", "HALTED", "bot-0")

    bots[1][0].resume(by="operator")
    assert _until(lambda: all(_refused(s) is None for s, _ in bots))


def test_an_engage_returns_only_after_other_bots_drained_their_sends(
    redis_url: str, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_url, prefix, tmp_path, ack_timeout_s=5.0)
    (engager, _), (sender, _) = fleet(policy), fleet(policy)
    order: list[str] = []
    inside = threading.Event()

    def send() -> None:
        with sender.permit(reduces_only=False):
            inside.set()
            time.sleep(0.3)  # an order on the wire when the engage lands
            order.append("send finished")

    thread = threading.Thread(target=send)
    thread.start()
    assert inside.wait(5)
    engager.engage("stop", by="engager")
    order.append("engage returned")
    thread.join()
    assert order == ["send finished", "engage returned"]


def test_a_bot_that_missed_the_message_still_sees_the_state(
    redis_url: str, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_url, prefix, tmp_path)
    switch, store = fleet(policy)
    halted = SwitchState(TradingState.HALTED, "set without a message", "MANUAL", "ops", 1.0e9)
    # Written behind the channel's back (as if the message were lost): the re-read finds it.
    redis.Redis.from_url(redis_url).set(store.state_key, json.dumps(encode_state(halted)))
    assert _until(lambda: _refused(switch) == Code.TRADING_HALTED)
    assert switch.state.reason == "set without a message"


@pytest.mark.parametrize("policy_state", ["HALTED", "REDUCING"])
def test_a_lost_link_is_the_configured_safe_state_and_recovery_restores_active(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any, policy_state: str
) -> None:
    policy = _policy(redis_server.url, prefix, tmp_path, on_disconnect=policy_state)
    bots = [fleet(policy) for _ in range(2)]
    assert all(_refused(switch) is None for switch, _ in bots)

    redis_server.kill()
    assert _until(lambda: all(not store.connected for _, store in bots))
    for switch, _ in bots:
        assert _until(lambda s=switch: s.refresh().state.value == policy_state)
        assert switch.state.code == Code.STATE_STORE_UNAVAILABLE
        assert _refused(switch) is not None
        # Cancels always go; in REDUCING, so do orders that reduce.
        with switch.permit(reduces_only=False, is_cancel=True):
            pass

    redis_server.start()  # empty: no persistence
    assert _until(lambda: all(store.connected for _, store in bots))
    assert _until(lambda: all(_refused(s) is None for s, _ in bots))
    assert all(switch.state.state is TradingState.ACTIVE for switch, _ in bots)


def test_a_halted_fleet_stays_halted_when_redis_comes_back_empty(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_server.url, prefix, tmp_path, on_disconnect="REDUCING")
    bots = [fleet(policy) for _ in range(3)]
    bots[0][0].engage("daily loss", by="bot-0", code=Code.DAILY_LOSS)

    redis_server.kill()
    assert _until(lambda: all(not store.connected for _, store in bots))
    # A latch tighter than on_disconnect is kept as it is (HALTED, not REDUCING).
    assert all(switch.refresh().code == Code.DAILY_LOSS for switch, _ in bots)

    redis_server.start()
    assert _until(lambda: all(store.connected for _, store in bots))
    fresh = redis.Redis.from_url(redis_server.url)
    assert _until(lambda: fresh.get(bots[0][1].state_key) is not None)
    for switch, _ in bots:
        state = switch.refresh()
        assert (state.state, state.code, state.reason) == (
            TradingState.HALTED,
            Code.DAILY_LOSS,
            "daily loss",
        )
        assert _refused(switch) == Code.TRADING_HALTED
    assert [e["event"] for e in bots[0][1].history()][-1] == "restore"

    # A bot started after the restart sees the restored HALTED, not a fresh ACTIVE.
    late, _ = fleet(policy)
    assert late.state.code == Code.DAILY_LOSS


def test_an_engage_made_while_redis_is_down_is_written_when_it_returns(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_server.url, prefix, tmp_path, on_disconnect="REDUCING")
    (bot, store), (other, _) = fleet(policy), fleet(policy)
    redis_server.kill()
    assert _until(lambda: not store.connected)
    bot.engage("stop while cut off", by="bot")  # persisted nowhere yet: owed
    # (A refresh racing the engage may adopt the disconnected REDUCING it loaded just before;
    # the owed engage changes the store's version, so the next refresh puts HALTED back.)
    assert _until(lambda: bot.refresh().state is TradingState.HALTED)

    redis_server.start()
    assert _until(lambda: other.refresh().reason == "stop while cut off")
    assert other.state.state is TradingState.HALTED
    assert bot.refresh().state is TradingState.HALTED


def test_a_halt_by_hand_while_the_link_is_down_is_not_lost_when_it_returns(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    # Found by the simulator (seed 325, fleet mode): with the link down the switch already
    # read HALTED (the store's stand-in), so engaging HALTED was "already engaged" and did
    # nothing: nothing owed, and when Redis answered again (empty) the fleet traded on.
    policy = _policy(redis_server.url, prefix, tmp_path)  # on_disconnect: HALTED
    (bot, store), (other, _) = fleet(policy), fleet(policy)
    redis_server.kill()
    assert _until(lambda: not store.connected)
    assert _until(lambda: bot.refresh().code == Code.STATE_STORE_UNAVAILABLE)
    bot.engage("stop while cut off", by="operator")
    assert bot.unpersisted is not None  # owed to Redis, not dropped
    # ...and still owed at the next looks: the store's copy holds it, Redis does not (found
    # by the simulator, seed 449: a look found its own engage echoed back and called it
    # written).
    bot.refresh()
    bot.refresh()
    assert bot.unpersisted is not None
    redis_server.start()
    assert _until(lambda: other.refresh().reason == "stop while cut off")
    assert other.state.state is TradingState.HALTED
    assert bot.refresh().state is TradingState.HALTED
    # Paid once the reader has written it back (a look or two after the link returns).
    assert _until(lambda: bot.refresh() is not None and bot.unpersisted is None)


def test_a_corrupt_state_key_halts_the_fleet(
    redis_url: str, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_url, prefix, tmp_path)
    switch, store = fleet(policy)
    redis.Redis.from_url(redis_url).set(store.state_key, b"{not json")
    assert _until(lambda: switch.refresh().code == Code.STATE_STORE_UNAVAILABLE)
    assert _refused(switch) == Code.TRADING_HALTED


def test_a_bot_that_starts_while_redis_is_unreachable_starts_in_the_safe_state(
    prefix: str, tmp_path: Any, fleet: Any
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once the probe closes
    policy = _policy(f"redis://127.0.0.1:{port}/0", prefix, tmp_path, on_disconnect="REDUCING")
    switch, store = fleet(policy)
    assert not store.connected
    assert switch.state.state is TradingState.REDUCING
    assert _refused(switch) == Code.TRADING_REDUCING
    with pytest.raises(OSError, match="unreachable"):
        switch.resume(by="impatient operator")


# --- the pure parts ---------------------------------------------------------------------------


def _state(state: str, since: float, reason: str = "r") -> SwitchState:
    if state == "ACTIVE":
        return SwitchState(TradingState.ACTIVE, "", "", "x", since)
    return SwitchState(TradingState(state), reason, "MANUAL", "x", since)


def test_restore_writes_back_only_what_redis_lost() -> None:
    halted = _state("HALTED", 100.0)
    corrupt = ConfigError("bad")
    assert _to_restore(halted, None, None, None) is halted  # Redis came back empty
    assert _to_restore(halted, None, None, corrupt) is halted
    assert _to_restore(halted, None, _state("ACTIVE", 50.0), None) is halted  # older snapshot
    # A resume made while this bot was cut off is newer: it wins.
    assert _to_restore(halted, None, _state("ACTIVE", 150.0), None) is None
    assert _to_restore(None, None, None, None) is None
    assert _to_restore(_state("ACTIVE", 1.0), None, None, corrupt) is None
    owed = _state("HALTED", 200.0, "owed")
    assert _to_restore(_state("ACTIVE", 1.0), owed, _state("ACTIVE", 300.0), None) is owed
    assert _to_restore(None, owed, _state("HALTED", 300.0), None) is None


def test_disconnected_state_never_loosens_the_known_state() -> None:
    config = Policy.build(fleet={"on_disconnect": "REDUCING"}).fleet
    halted = _state("HALTED", 5.0)
    assert disconnected_state(config, halted, lost_at=9.0, error="e") is halted
    safe = disconnected_state(config, _state("ACTIVE", 5.0), lost_at=9.0, error="refused")
    assert (safe.state, safe.code, safe.since) == (
        TradingState.REDUCING,
        Code.STATE_STORE_UNAVAILABLE,
        9.0,
    )
    assert "refused" in safe.reason


@pytest.mark.parametrize(
    "url", ["", "http://127.0.0.1:6379", "127.0.0.1:6379", "redis//x"], ids=repr
)
def test_a_bad_url_names_the_setting(url: str) -> None:
    from safeguard.fleet._connection import connect

    with pytest.raises(ConfigError) as caught:  # in the policy: refused when it is built
        connect(Policy.build(fleet={"redis_url": url} if url else {}).fleet)
    assert caught.value.key == "fleet.redis_url"
    with pytest.raises(ConfigError) as caught:  # given apart (``--redis``): when connecting
        connect(Policy.build().fleet, url)
    assert caught.value.key == "fleet.redis_url"


def test_a_lock_left_by_a_dead_holder_expires_and_the_engage_goes_through(
    redis_url: str, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    policy = _policy(redis_url, prefix, tmp_path)
    (bot, store), (other, _) = fleet(policy), fleet(policy)
    # A process died holding the lock: its lease runs out.
    redis.Redis.from_url(redis_url).set(store.lock_key, b"dead-holder", px=300)
    bot.engage("after the dead holder", by="bot")
    assert [e["reason"] for e in store.history()] == ["after the dead holder"]
    assert other.refresh().reason == "after the dead holder"


def test_a_resume_decides_on_what_redis_holds_not_on_a_stale_copy(
    redis_url: str, prefix: str, tmp_path: Any
) -> None:
    from safeguard._clock import ManualClock
    from safeguard.killswitch._switch import ResumeRefused

    policy = Policy.build(
        fleet={"redis_url": redis_url, "key_prefix": prefix},
        kill_switch={"state_dir": str(tmp_path), "cooling_period_s": 10.0},
    )
    clock = ManualClock(1_000_000.0)
    engager, store = open_fleet_switch(policy, clock=clock, watch=False)
    engager.engage("first", by="engager", state=TradingState.REDUCING)
    # A one-shot store (the CLI's) has no reader: its copy is whatever it saw when it opened.
    one_shot = RedisStateStore(policy.fleet, listen=False)
    operator = KillSwitch(
        policy.kill_switch, store=one_shot, watch=False, clock=ManualClock(1_000_105.0)
    )
    try:
        clock.set(1_000_100.0)
        engager.engage("escalated just now", by="engager", code=Code.DAILY_LOSS)
        assert operator.state.state is TradingState.REDUCING  # its stale copy
        # The copy's REDUCING cooled off long ago; the HALTED in Redis has 5 s to go.
        with pytest.raises(ResumeRefused):
            operator.resume(by="operator")
        assert engager.refresh().reason == "escalated just now"
    finally:
        for closer in (operator.close, one_shot.close, engager.close, store.close):
            closer()


def test_an_engage_decides_on_what_redis_holds_not_on_a_stale_copy(
    redis_url: str, prefix: str, tmp_path: Any
) -> None:
    # `safeguard kill` opened on HALTED; another operator's resume landed before its engage:
    # judged on its copy the engage was a no-op, reported "already HALTED" (exit 0) while
    # Redis held ACTIVE and every bot traded on. A bot's own trigger lost its engage the same
    # way when its reader was behind.
    policy = Policy.build(
        fleet={"redis_url": redis_url, "key_prefix": prefix},
        kill_switch={"state_dir": str(tmp_path), "cooling_period_s": 0.0},
    )
    bot, store = open_fleet_switch(policy, watch=False)
    bot.engage("first", by="bot")
    one_shot = RedisStateStore(policy.fleet, listen=False)  # the CLI's: no reader
    killer = KillSwitch(policy.kill_switch, store=one_shot, watch=False)
    try:
        assert killer.state.state is TradingState.HALTED  # what it saw when it opened
        assert bot.resume(by="operator").state is TradingState.ACTIVE
        after = killer.engage("second operator", by="cli", code=Code.MANUAL)
        assert (after.state, after.reason) == (TradingState.HALTED, "second operator")
        raw = redis.Redis.from_url(redis_url).get(one_shot.state_key)
        assert raw is not None
        assert json.loads(raw)["reason"] == "second operator"
        assert _until(lambda: bot.refresh().reason == "second operator")
    finally:
        for closer in (killer.close, one_shot.close, bot.close, store.close):
            closer()


def test_a_member_that_closed_is_not_waited_for_by_the_next_engage(
    redis_url: str, prefix: str, tmp_path: Any
) -> None:
    # Found by the simulator (fleet mode): close() took the member out of the set, then its
    # reader thread, waking from its wait, checked in once more and put it back; every engage
    # of the fleet then waited ack_timeout_s for a bot that had left (and logged it as one
    # that did not confirm). Restarting bots left a trail of such ghosts.
    policy = _policy(redis_url, prefix, tmp_path, health_check_interval_s=0.005, member_ttl_s=30)
    staying = RedisStateStore(policy.fleet)
    try:
        for _ in range(15):
            leaving = RedisStateStore(policy.fleet)
            member = leaving.member
            assert _until(lambda member=member: member in staying._heartbeat())
            time.sleep(0.004)  # the reader is somewhere in its wait, as a bot's would be
            leaving.close()
            time.sleep(0.02)  # several of its intervals: a reader still running checks in
            assert member not in staying._heartbeat()
    finally:
        staying.close()


def test_a_reducing_by_hand_while_the_link_is_down_holds_the_fleet_once_it_returns(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    # Found by the simulator (seed 9284, fleet mode): the operator asked for REDUCING while the
    # link was down. The switch already read HALTED (the link's stand-in, tighter), so the
    # engage changed nothing and nothing was kept: when Redis answered, the fleet was ACTIVE.
    # The bot must stay HALTED while cut off (an engage elsewhere would go unseen), and the
    # REDUCING must hold the fleet once Redis is back.
    policy = _policy(redis_server.url, prefix, tmp_path)  # on_disconnect: HALTED
    (bot, store), (other, _) = fleet(policy), fleet(policy)
    redis_server.process.send_signal(signal.SIGSTOP)  # cut off; Redis keeps what it holds
    try:
        assert _until(lambda: not store.connected)
        assert _until(lambda: bot.refresh().code == Code.STATE_STORE_UNAVAILABLE)
        bot.engage("reduce while cut off", by="operator", state=TradingState.REDUCING)
        assert bot.refresh().state is TradingState.HALTED  # still the link's HALTED meanwhile
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert _until(lambda: other.refresh().reason == "reduce while cut off")
    assert other.state.state is TradingState.REDUCING
    assert _until(lambda: bot.refresh().state is TradingState.REDUCING)


def test_a_halt_by_hand_over_a_stored_fail_closed_halt_is_written_when_the_link_returns(
    redis_server: Any, prefix: str, tmp_path: Any, fleet: Any
) -> None:
    # Found in review of the change above: Redis holds a HALTED a bot wrote when it failed
    # closed (code STATE_STORE_UNAVAILABLE); the link is lost with the data kept (a frozen
    # server). The operator's HALTED made meanwhile was announced, then the store's copy
    # preferred the older stand-in at the same severity, the switch adopted it back, and
    # nothing of the operator's decision reached Redis or its history.
    policy = _policy(redis_server.url, prefix, tmp_path)
    (bot, store), (other, _) = fleet(policy), fleet(policy)
    client = redis.Redis.from_url(redis_server.url)
    client.set(store.state_key, b"{not json")  # a bot fails closed and writes its HALTED
    assert _until(lambda: b"STATE_STORE_UNAVAILABLE" in (client.get(store.state_key) or b""))
    redis_server.process.send_signal(signal.SIGSTOP)
    try:
        assert _until(lambda: not store.connected)
        bot.engage("operator stop while cut off", by="operator")
        time.sleep(0.05)
        assert bot.refresh().reason == "operator stop while cut off"  # not the stand-in again
        assert bot.unpersisted is not None
    finally:
        redis_server.process.send_signal(signal.SIGCONT)
    assert _until(lambda: other.refresh().reason == "operator stop while cut off")
    assert json.loads(client.get(store.state_key))["by"] == "operator"
    assert _until(lambda: bot.refresh() is not None and bot.unpersisted is None)
    assert _until(lambda: [e["by"] for e in store.history()][-1:] == ["operator"])
