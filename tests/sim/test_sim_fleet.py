"""Fleet mode in the simulator: two bots share one kill switch through a real redis-server the
world runs, and the seed kills, freezes or empties it. What the fleet must do holds (a lost
link halts every member until it is back; a Redis that comes back empty does not unlatch a
halted fleet), and the oracle notices when it does not."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import pytest

from safeguard.fleet import _redis_store as redis_store
from safeguard.killswitch._switch import SwitchState, TradingState
from safeguard.sim import World, run_seed
from safeguard.sim._fleet import redis_binary
from safeguard.sim._schedule import Fault
from safeguard.sim._world import FLEET, LINK_DOWN, POPULATION
from tests.sim.test_sim import _same_up_to_fresh_names

pytestmark = pytest.mark.redis

if redis_binary() is None:
    if os.environ.get("SG_TEST_REDIS_REQUIRED"):
        pytest.fail("fleet mode needs redis-server on PATH", pytrace=False)
    pytest.skip("no redis-server on PATH: the world runs without a fleet", allow_module_level=True)

ENGAGING, RESTARTING = FLEET
assert POPULATION[RESTARTING].restarts_every == 4  # the emptied-Redis test counts on it


class _Probe(World):
    """A world with a fixed schedule that notes, after each bar's faults, what Redis holds
    and where each member's switch stands."""

    faults_for_test: ClassVar[list[Fault]] = []

    def __init__(self, seed: int, *, bars: int) -> None:
        super().__init__(seed, bars=bars)
        self.seen: dict[int, tuple[SwitchState | None, dict[int, tuple[str, bool]]]] = {}
        self.codes: dict[int, dict[int, str]] = {}
        self.link_held: dict[int, set[int]] = {}
        """Per bar, the members the oracle still holds to their lost link's HALTED."""

    @classmethod
    def schedule_of(cls, seed: int, bars: int) -> list[Fault]:
        return list(cls.faults_for_test)

    def _apply_faults(self) -> None:
        super()._apply_faults()
        redis = self.redis
        assert redis is not None
        held = self._redis_state() if redis.running and not redis.frozen else None
        members = {}
        for bot in self._members():
            store, switch = bot.process.fleet_store, bot.process.switch
            assert store is not None
            assert switch is not None
            members[bot.index] = (switch.state.state.value, store.connected)
            self.codes.setdefault(self.bar, {})[bot.index] = str(switch.state.code)
        self.seen[self.bar] = (held, members)
        self.link_held[self.bar] = {
            index
            for index in FLEET
            for e in self.engaged.get(index, [])
            if e.code == LINK_DOWN and e.resumed_at is None
        }


def _probe(faults: list[Fault], *, bars: int = 7) -> tuple[_Probe, Any]:
    world_class = type("Probe", (_Probe,), {"faults_for_test": faults})
    world = world_class(11, bars=bars)
    return world, world.run()


def test_an_emptied_redis_is_refilled_by_a_member_that_knew_and_a_restart_stays_halted() -> None:
    world, outcome = _probe(
        [
            Fault("engage", 3, 1, ENGAGING, {"state": "HALTED"}),
            Fault("redis_emptied", 3, 1),  # after the engage, in the same bar
        ]
    )
    assert outcome.ok, [f"{f.invariant}: {f.detail}" for f in outcome.failures]
    assert outcome.fired["redis_emptied"] == 1
    held, members = world.seen[3]  # just after the FLUSHALL
    assert held is not None  # a member wrote the halt back
    assert held.state is TradingState.HALTED
    assert {state for state, _ in members.values()} == {"HALTED"}
    assert set(members) == set(FLEET)
    # The restarting member started again at bar 4 (before the cooling period allowed a
    # resume) from Redis alone, and held.
    assert "fleet engage lost with Redis (no running member knew)" not in outcome.fired
    assert outcome.checks["HALTED never lost across a crash"] >= 1
    assert outcome.checks["a fleet engage holds in every member"] >= 2


def test_a_lost_redis_halts_every_member_until_it_is_back_empty_and_refilled() -> None:
    world, outcome = _probe(
        [
            Fault("engage", 2, 1, ENGAGING, {"state": "REDUCING"}),
            Fault("redis_lost", 2, 1),  # killed after the engage; started again at bar 3
        ]
    )
    assert outcome.ok, [f"{f.invariant}: {f.detail}" for f in outcome.failures]
    _, members = world.seen[2]  # killed: every member knows its link is down: HALTED
    assert set(members) == set(FLEET)
    assert all(state == "HALTED" and not up for state, up in members.values()), members
    held, members = world.seen[3]  # back, empty, and refilled by a member that knew
    assert held is not None
    assert held.state is TradingState.REDUCING
    assert all(up for _, up in members.values())
    assert outcome.checks["a lost or frozen Redis is noticed"] >= 1
    assert outcome.checks["the fleet agrees on its state"] >= 1


def test_a_frozen_redis_is_noticed_and_the_members_trade_again_once_it_answers() -> None:
    world, outcome = _probe([Fault("redis_frozen", 2, 2)])
    assert outcome.ok, [f"{f.invariant}: {f.detail}" for f in outcome.failures]
    for bar in (2, 3):
        _, members = world.seen[bar]
        assert all(state == "HALTED" and not up for state, up in members.values()), members
    _, members = world.seen[4]
    assert all(up for _, up in members.values()), members  # back on the link...
    assert len({state for state, _ in members.values()}) == 1  # ...agreeing...
    assert "STATE_STORE_UNAVAILABLE" not in world.codes[4].values()  # ...off the stand-in
    # While it was frozen, the members' orders were refused (no non-reducing order left).
    refused = sum(n for key, n in world.outcomes.items() if key.endswith("TRADING_HALTED"))
    assert refused >= 2


def test_a_redis_that_comes_back_empty_and_unlatches_the_fleet_breaks_an_invariant(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sabotage, to show the oracle can fail: members that never write back what Redis lost.
    monkeypatch.setattr(redis_store, "_to_restore", lambda *args: None)
    world_class = type(
        "Probe",
        (_Probe,),
        {
            "faults_for_test": [
                Fault("engage", 2, 1, ENGAGING, {"state": "HALTED"}),
                Fault("redis_emptied", 3, 1),
            ]
        },
    )
    world = world_class(11, bars=7)
    world.fleet_wait_s = 1.0  # the wait for a write-back that never comes
    outcome = world.run()
    broken = {f.invariant for f in outcome.failures}
    assert broken & {"the fleet agrees on its state", "HALTED never lost across a crash"}
    assert outcome.failures[0].bar == 3  # at the bar Redis was emptied


def test_a_fleet_seed_replays_exactly() -> None:
    # Redis answers on the wall clock; the world waits for the fleet at each fault, so the
    # run is still the seed's alone. Seed 15 freezes Redis for two of its eight bars.
    first, second = run_seed(15, bars=8), run_seed(15, bars=8)
    assert first.fired["redis_frozen"] == 1
    assert _same_up_to_fresh_names(first.trace) == _same_up_to_fresh_names(second.trace)
    assert first.orders == second.orders
    assert first.fired == second.fired
    assert first.checks == second.checks


def test_a_member_back_on_its_link_under_a_fleet_reducing_is_held_to_reducing_only() -> None:
    # The oracle once ended a member's halt for its lost link only when the member went
    # ACTIVE; a member that came back to a REDUCING fleet (seed 1431: a trigger's REDUCING,
    # here an operator's) stayed "HALTED" to it, and its reduce-only orders read as broken.
    world, outcome = _probe(
        [
            Fault("engage", 3, 1, ENGAGING, {"state": "REDUCING"}),
            Fault("redis_frozen", 3, 1),  # after the engage, in the same bar
        ],
        bars=8,
    )
    assert outcome.ok, [f"{f.invariant}: {f.detail}" for f in outcome.failures]
    _, members = world.seen[4]  # back on the link, to the fleet's REDUCING
    assert {state for state, _ in members.values()} == {"REDUCING"}
    assert world.link_held[3] == set(FLEET)  # frozen: both held to the link's HALTED
    assert world.link_held[4] == set()  # back: held to the fleet's REDUCING, not to that
