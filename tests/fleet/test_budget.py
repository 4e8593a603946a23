"""The shared rate budget: the Redis script decides exactly as the in-process budget does, the
windows and bans really are shared, and a lost Redis falls back to a slice of each limit."""

from __future__ import annotations

import contextlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest

from safeguard._config import FleetConfig, Policy, ThrottleConfig
from safeguard.fleet._budget import RedisRateBudget, fallback_limits
from safeguard.guard._core import Send
from safeguard.guard._orders import CallKind
from safeguard.guard._pacing import BudgetPacer
from safeguard.guard._throttle import (
    Banned,
    Go,
    Hold,
    LimitType,
    RateBudget,
    RateLimit,
    RateLimits,
    RequestKind,
    Wait,
)

pytestmark = pytest.mark.redis

LIMITS = RateLimits(
    (
        RateLimit(LimitType.REQUEST_WEIGHT, 60, 600),
        RateLimit(LimitType.ORDERS, 10, 30),
        RateLimit(LimitType.ORDERS, 60, 100),
    )
)
T0 = 1_700_000_000.0


def _fleet(url: str, prefix: str, **extra: Any) -> FleetConfig:
    return Policy.build(
        fleet={"redis_url": url, "key_prefix": prefix, "command_timeout_s": 0.5, **extra}
    ).fleet


@pytest.fixture
def budgets() -> Iterator[list[RedisRateBudget]]:
    made: list[RedisRateBudget] = []
    yield made
    for budget in made:
        budget.close()


def _same(a: object, b: object) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, Go):
        return True
    if isinstance(a, Banned) and isinstance(b, Banned):
        return a.until == pytest.approx(b.until)
    assert isinstance(a, Wait | Hold)
    assert isinstance(b, Wait | Hold)
    sa = a.seconds if isinstance(a, Wait) else a.retry_after
    sb = b.seconds if isinstance(b, Wait) else b.retry_after
    return bool(
        sa == pytest.approx(sb, abs=1e-9)
        and a.limit == b.limit
        and a.usage == pytest.approx(b.usage, abs=1e-12)
    )


@pytest.mark.parametrize("seed", range(4))
def test_the_script_decides_exactly_as_the_in_process_budget(
    redis_url: str, prefix: str, budgets: list[RedisRateBudget], seed: int
) -> None:
    rng = random.Random(seed)
    throttle = ThrottleConfig(
        soft_threshold=rng.choice([0.5, 0.7]),
        hard_threshold=rng.choice([0.8, 0.9]),
        reserve_fraction=rng.choice([0.0, 0.05, 0.1]),
        window_skew_s=rng.choice([0.0, 0.5]),
    )
    local = RateBudget.standalone(throttle, LIMITS)
    shared = RedisRateBudget(
        _fleet(redis_url, f"{prefix}-{seed}"), "ip", "acct", throttle=throttle, limits=LIMITS
    )
    budgets.append(shared)
    now = T0 + rng.uniform(0, 60)
    kinds = list(RequestKind)
    for step in range(300):
        now += rng.choice([0.0, 0.01, 0.1, 0.5, 2.0, 7.0])
        roll = rng.random()
        if roll < 0.8:
            kind = rng.choice(kinds)
            weight = rng.choice([0, 1, 5, 20, 40])
            orders = rng.choice([1, 1, 2])
            expected = local.decide(kind, weight, now, orders=orders)
            got = shared.decide(kind, weight, now, orders=orders)
            assert _same(expected, got), (step, kind, weight, expected, got)
        elif roll < 0.88:
            headers = {"X-MBX-USED-WEIGHT-1M": str(rng.randint(0, 650))}
            sent = now - rng.choice([0.0, 0.05, 30.0])
            local.observe(headers, now, sent_at=sent)
            shared.observe(headers, now, sent_at=sent)
        elif roll < 0.94:
            kind = rng.choice(kinds)
            local.refund(kind, 5, now)
            shared.refund(kind, 5, now)
        elif roll < 0.95:
            # The venue published (or a 429 named) another number: both learn it alike.
            limit = rng.choice([LimitType.REQUEST_WEIGHT, LimitType.ORDERS])
            interval = 60 if limit is LimitType.REQUEST_WEIGHT else rng.choice([1, 10])
            number = rng.choice([300, 600, 900] if interval == 60 else [5, 30, 50])
            learned = RateLimits((RateLimit(limit, interval, number),))
            assert local.learn(learned) == shared.learn(learned)
            assert shared.limits == local.limits
        elif roll < 0.985:
            retry = rng.choice(
                [None, 0.0, 1.0, 3.0, 10_000.0]
            )  # the last: cut to the longest window
            assert local.record_throttle(429, retry, now) == pytest.approx(
                shared.record_throttle(429, retry, now), abs=1e-9
            )
        else:
            until = now + rng.choice([5.0, 30.0])
            local.record_ban(until, now)
            shared.record_ban(until, now)
        assert shared.usage(now) == pytest.approx(local.usage(now), abs=1e-12)


def test_bots_share_one_budget_and_never_overspend_it(
    redis_url: str, prefix: str, budgets: list[RedisRateBudget]
) -> None:
    fleet = _fleet(redis_url, prefix)
    throttle = ThrottleConfig(soft_threshold=1.0, hard_threshold=1.0, reserve_fraction=0.0)
    limits = RateLimits((RateLimit(LimitType.REQUEST_WEIGHT, 60, 600),))
    bots = [
        RedisRateBudget(fleet, "ip", f"acct-{i}", throttle=throttle, limits=limits)
        for i in range(4)
    ]
    budgets.extend(bots)
    granted = [0] * len(bots)

    def run(index: int) -> None:
        for _ in range(100):  # 4 x 100 x 5 = 2000 asked of a 600 budget
            if isinstance(bots[index].decide(RequestKind.READ, 5, T0 + 1), Go):
                granted[index] += 5

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(bots))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 600  # every unit used once, none twice
    assert bots[0].usage(T0 + 1) == {"REQUEST_WEIGHT/1m": 1.0}
    # Weight is per IP: another account on the same IP finds it spent.
    assert isinstance(bots[3].decide(RequestKind.READ, 5, T0 + 2), Hold)


def test_a_ban_seen_by_one_bot_is_seen_by_all(
    redis_url: str, prefix: str, budgets: list[RedisRateBudget]
) -> None:
    fleet = _fleet(redis_url, prefix)
    one = RedisRateBudget(fleet, "ip", "a", limits=LIMITS)
    other = RedisRateBudget(fleet, "ip", "b", limits=LIMITS)
    elsewhere = RedisRateBudget(fleet, "another-ip", "a", limits=LIMITS)
    budgets.extend([one, other, elsewhere])
    one.record_ban(T0 + 120, T0)
    assert other.decide(RequestKind.CANCEL, 1, T0 + 1) == Banned(T0 + 120)
    assert other.banned_until(T0 + 1) == T0 + 120
    assert isinstance(elsewhere.decide(RequestKind.READ, 1, T0 + 1), Go)
    assert isinstance(other.decide(RequestKind.READ, 1, T0 + 121), Go)


def test_without_redis_a_bot_paces_on_its_slice_and_keeps_its_ban(
    redis_server: Any, prefix: str, budgets: list[RedisRateBudget]
) -> None:
    fleet = _fleet(redis_server.url, prefix, budget_fallback_share=0.25, reconnect_interval_s=0.05)
    throttle = ThrottleConfig(soft_threshold=1.0, hard_threshold=1.0, reserve_fraction=0.0)
    limits = RateLimits((RateLimit(LimitType.REQUEST_WEIGHT, 60, 600),))
    budget = RedisRateBudget(fleet, "ip", "a", throttle=throttle, limits=limits)
    other = RedisRateBudget(fleet, "ip", "b", throttle=throttle, limits=limits)
    budgets.extend([budget, other])
    assert isinstance(budget.decide(RequestKind.READ, 10, T0), Go)
    assert budget.shared

    redis_server.kill()
    granted = 0
    while isinstance(budget.decide(RequestKind.READ, 10, T0 + 1), Go):
        granted += 10
    assert not budget.shared
    assert granted == 150  # a quarter of 600, alone
    budget.record_ban(T0 + 300, T0 + 2)  # learned while alone

    redis_server.start()  # empty
    assert budget.decide(RequestKind.CANCEL, 1, T0 + 3) == Banned(T0 + 300)
    deadline = time.monotonic() + 5
    while not budget.shared and time.monotonic() < deadline:
        budget.decide(RequestKind.READ, 1, T0 + 301)
        time.sleep(0.01)
    assert budget.shared
    # Back on Redis, the ban learned alone was handed to every bot on the IP.
    assert other.decide(RequestKind.CANCEL, 1, T0 + 4) == Banned(T0 + 300)


def test_a_hanging_redis_costs_one_timeout_per_retry_interval_not_one_per_request(
    prefix: str, budgets: list[RedisRateBudget]
) -> None:
    # A server that accepts connections and never answers: every command times out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept)
    thread.start()
    try:
        url = f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
        fleet = _fleet(url, prefix, command_timeout_s=0.1, reconnect_interval_s=60.0)
        budget = RedisRateBudget(fleet, "ip", "a", limits=LIMITS)
        budgets.append(budget)
        decisions = [budget.decide(RequestKind.READ, 1, T0 + i) for i in range(50)]
        assert all(isinstance(d, Go) for d in decisions)  # the fallback slice decided
        assert not budget.shared
        assert len(accepted) == 1  # one attempt, then the fallback until the retry interval
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


def test_fallback_limits_refuse_a_share_outside_zero_to_one() -> None:
    assert fallback_limits(LIMITS, 0.001).limits[1].limit == 1
    for share in (0.0, -0.5, 1.5, float("nan")):
        with pytest.raises(ValueError, match="share"):
            fallback_limits(LIMITS, share)


@pytest.mark.parametrize(
    ("field", "value"), [("weight", -1.0), ("weight", float("nan")), ("now", float("inf"))]
)
def test_bad_inputs_name_the_field(
    redis_url: str, prefix: str, budgets: list[RedisRateBudget], field: str, value: float
) -> None:
    budget = RedisRateBudget(_fleet(redis_url, prefix), "ip", "a", limits=LIMITS)
    budgets.append(budget)
    args = {"weight": 1.0, "now": T0, field: value}
    with pytest.raises(ValueError, match=field):
        budget.decide(RequestKind.READ, args["weight"], args["now"])
    with pytest.raises(ValueError, match="ip_key"):
        RedisRateBudget(_fleet(redis_url, prefix), "", "a")


def test_a_guards_pacer_paces_on_the_fleets_shared_budget(
    redis_url: str, prefix: str, budgets: list[RedisRateBudget]
) -> None:
    """The pacer asks the fleet's budget (which has no unchecked fast path) and charges the
    windows every bot on the IP shares."""
    fleet = _fleet(redis_url, prefix)
    one = RedisRateBudget(fleet, "ip", "a", limits=LIMITS)
    other = RedisRateBudget(fleet, "ip", "b", limits=LIMITS)
    budgets.extend([one, other])
    pacer = BudgetPacer(cast(RateBudget, one))  # the RateBudget interface, as guard() casts it
    assert pacer.before(CallKind.READ, Send("fetch_tickers", ()), T0) == 0.0
    assert one.shared  # charged on Redis, not on the local fallback
    assert other.usage(T0)["REQUEST_WEIGHT/1m"] == pytest.approx(40 / 600)
