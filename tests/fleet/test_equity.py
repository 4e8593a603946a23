"""The account's equity peak and day start, shared by a fleet in Redis."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from safeguard._codes import Code
from safeguard._config import FleetConfig, Policy, TriggerConfig
from safeguard._errors import ConfigError
from safeguard.fleet._equity import RedisEquityStore, account_trips, merge_marks
from safeguard.killswitch._equity import EquityMarks, utc_day
from safeguard.killswitch._triggers import EquityUpdate, RiskMonitor

pytestmark = pytest.mark.redis

DAY0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@st.composite
def marks(draw: st.DrawFn) -> EquityMarks:
    started = DAY0 + draw(st.integers(0, 2)) * 86_400 + draw(st.integers(0, 86_000))
    start = draw(st.integers(1, 20)) * 500.0
    return EquityMarks(
        peak=max(start, draw(st.integers(1, 20)) * 500.0),
        peak_at=draw(st.integers(0, 3)) * 1.0,
        day=utc_day(started),
        day_start=start,
        day_started_at=started,
    )


@given(marks(), marks(), marks())
def test_merging_is_order_free_and_never_lowers_the_peak(
    a: EquityMarks, b: EquityMarks, c: EquityMarks
) -> None:
    assert merge_marks(a, b) == merge_marks(b, a)
    assert merge_marks(merge_marks(a, b), c) == merge_marks(a, merge_marks(b, c))
    assert merge_marks(a, a) == a
    merged = merge_marks(a, b)
    assert merged.peak == max(a.peak, b.peak)
    assert merged.day == max(a.day, b.day)
    same_day = [m for m in (a, b) if m.day == merged.day]
    assert merged.day_started_at == min(m.day_started_at for m in same_day)


@pytest.fixture
def fleet(redis_url: str, prefix: str) -> FleetConfig:
    return Policy.build(fleet={"redis_url": redis_url, "key_prefix": prefix}).fleet


@pytest.fixture
def stores(fleet: FleetConfig) -> Iterator[list[RedisEquityStore]]:
    made: list[RedisEquityStore] = []
    yield made
    for store in made:
        store.close()


def _store(fleet: FleetConfig, made: list[RedisEquityStore], account: str) -> RedisEquityStore:
    store = RedisEquityStore(fleet, account)
    made.append(store)
    return store


def test_the_drawdown_is_measured_from_the_accounts_peak_not_one_bots(
    fleet: FleetConfig, stores: list[RedisEquityStore]
) -> None:
    triggers = TriggerConfig(max_drawdown_pct=12.0)
    bot_a = RiskMonitor(triggers, store=cast(Any, _store(fleet, stores, "acct")))
    bot_b = RiskMonitor(triggers, store=cast(Any, _store(fleet, stores, "acct")))
    assert bot_b.observe(EquityUpdate(now=DAY0 + 10, equity=10_000.0)) == ()
    assert bot_a.observe(EquityUpdate(now=DAY0 + 20, equity=10_500.0)) == ()  # only A saw it
    # From B's own slice, 10 000 -> 9 000 is 10 %, under the limit; the account fell 14.3 %.
    fleet_marks = _store(fleet, stores, "acct").load()
    assert fleet_marks is not None
    assert (fleet_marks.peak, fleet_marks.day_start) == (10_500.0, 10_000.0)
    # A bot (re)started on the account measures from the account's peak.
    restarted = RiskMonitor(triggers, store=cast(Any, _store(fleet, stores, "acct")))
    [trip] = restarted.observe(EquityUpdate(now=DAY0 + 30, equity=9_000.0))
    assert trip.code == Code.DRAWDOWN
    # Accounts do not share marks.
    assert _store(fleet, stores, "other").load() is None


def test_account_trips_judge_the_account_while_the_bots_run(
    fleet: FleetConfig, stores: list[RedisEquityStore]
) -> None:
    triggers = TriggerConfig(
        max_drawdown_pct=12.0, max_daily_loss=1_200.0, actions={"DRAWDOWN": "REDUCING"}
    )
    bot_a, bot_b = _store(fleet, stores, "acct"), _store(fleet, stores, "acct")
    assert account_trips(bot_b, 10_000.0, DAY0 + 10, triggers) == ()
    assert account_trips(bot_a, 10_500.0, DAY0 + 20, triggers) == ()  # only A saw it
    # B, still running, judges 9 000 against the account's peak (-14.3 %) and day start.
    trips = {t.code: t for t in account_trips(bot_b, 9_000.0, DAY0 + 30, triggers)}
    assert set(trips) == {Code.DRAWDOWN}
    assert trips[Code.DRAWDOWN].action == "REDUCING"
    assert trips[Code.DRAWDOWN].numbers["peak"] == 10_500.0
    trips = {t.code: t for t in account_trips(bot_a, 8_700.0, DAY0 + 40, triggers)}
    assert set(trips) == {Code.DRAWDOWN, Code.DAILY_LOSS}  # 1 300 below the day's 10 000
    assert trips[Code.DAILY_LOSS].action == "HALTED"
    # No peak can start at zero or below.
    assert account_trips(_store(fleet, stores, "new"), 0.0, DAY0, triggers) == ()


def test_concurrent_saves_keep_the_highest_peak_and_the_first_start(
    fleet: FleetConfig, stores: list[RedisEquityStore]
) -> None:
    bots = [_store(fleet, stores, "acct") for _ in range(4)]

    def run(index: int) -> None:
        for step in range(25):
            equity = 10_000.0 + index * 100 + step
            bots[index].save(EquityMarks.start(equity, DAY0 + 1 + index * 25 + step))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = bots[0].load()
    assert final is not None
    assert final.peak == 10_000.0 + 300 + 24
    assert (final.day_start, final.day_started_at) == (10_000.0, DAY0 + 1)


def test_a_transfer_shifts_the_fleets_marks_once(
    fleet: FleetConfig, stores: list[RedisEquityStore]
) -> None:
    store = _store(fleet, stores, "acct")
    with pytest.raises(ValueError, match="amount"):
        store.transfer(-100.0)
    store.save(EquityMarks.start(10_000.0, DAY0 + 5))
    after = store.transfer(-4_000.0)
    assert (after.peak, after.day_start) == (6_000.0, 6_000.0)
    assert store.load() == after
    with pytest.raises(ValueError, match="amount"):
        store.transfer(float("nan"))
    with pytest.raises(ValueError, match="zero"):
        store.transfer(-6_000.0)


def test_a_corrupt_value_is_refused_not_reset(
    redis_url: str, fleet: FleetConfig, stores: list[RedisEquityStore]
) -> None:
    store = _store(fleet, stores, "acct")
    client = redis.Redis.from_url(redis_url)
    for bad in (b"{oops", b'{"format": "safeguard.equity/1"}', b'{"format": 2}'):
        client.set(store.key, bad)
        with pytest.raises(ConfigError) as caught:
            store.load()
        assert caught.value.key == store.key
        with pytest.raises(ConfigError):
            store.save(EquityMarks.start(1.0, DAY0))
    assert client.get(store.key) == b'{"format": 2}'


def test_an_unreachable_redis_halts_the_monitor(
    redis_server: Any, prefix: str, stores: list[RedisEquityStore]
) -> None:
    fleet = Policy.build(
        fleet={"redis_url": redis_server.url, "key_prefix": prefix, "command_timeout_s": 0.5}
    ).fleet
    monitor = RiskMonitor(store=cast(Any, _store(fleet, stores, "acct")))
    redis_server.kill()
    [trip] = monitor.observe(EquityUpdate(now=DAY0 + 1, equity=10_000.0))
    assert (trip.code, trip.action) == (Code.STATE_STORE_UNAVAILABLE, "HALTED")


@pytest.mark.parametrize("account", ["", "a b", "x" * 65, None])
def test_a_bad_account_name_is_refused(fleet: FleetConfig, account: Any) -> None:
    with pytest.raises(ValueError, match="account"):
        RedisEquityStore(fleet, account)
