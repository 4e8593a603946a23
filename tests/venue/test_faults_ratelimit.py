"""Rate-limit bookkeeping: weight per IP per minute, orders per account, 429 strikes, 418 bans."""

from __future__ import annotations

import pytest

from safeguard.venue._ratelimit import BAN_BASE_S, BAN_MAX_S, RateLimiter, RateLimits

T0 = 1_700_000_080.0  # 40 s into a minute


def _admit(limiter: RateLimiter, limits: RateLimits, now: float, **kw: object):  # type: ignore[no-untyped-def]
    args = {"ip": "10.0.0.1", "account": None, "weight": 1, "orders": 0} | kw
    return limiter.admit(limits=limits, now=now, **args)  # type: ignore[arg-type]


def test_weight_accumulates_within_the_minute_and_rolls_over() -> None:
    limiter, limits = RateLimiter(), RateLimits(weight_per_minute=10)
    assert _admit(limiter, limits, T0, weight=4).usage.weight_1m == 4
    assert _admit(limiter, limits, T0 + 1, weight=5).usage.weight_1m == 9
    admitted = _admit(limiter, limits, T0 + 21, weight=2)  # next minute
    assert admitted.refusal is None
    assert admitted.usage.weight_1m == 2


def test_over_the_weight_limit_is_429_minus_1003_with_retry_after_to_the_minute_end() -> None:
    limiter, limits = RateLimiter(), RateLimits(weight_per_minute=3)
    assert _admit(limiter, limits, T0, weight=3).refusal is None
    refused = _admit(limiter, limits, T0, weight=1).refusal
    assert refused is not None
    assert (refused.status, refused.code, refused.retry_after_s) == (429, -1003, 20)


def test_ips_have_separate_budgets() -> None:
    limiter, limits = RateLimiter(), RateLimits(weight_per_minute=1)
    assert _admit(limiter, limits, T0, ip="a").refusal is None
    assert _admit(limiter, limits, T0, ip="b").refusal is None
    assert _admit(limiter, limits, T0, ip="a").refusal is not None


def test_order_counts_per_account_in_10s_and_1m_windows() -> None:
    limiter = RateLimiter()
    limits = RateLimits(orders_per_10s=2, orders_per_minute=3)
    first = _admit(limiter, limits, T0, account="k", orders=1, weight=0)
    assert (first.usage.orders_10s, first.usage.orders_1m) == (1, 1)
    assert first.usage.headers()["X-MBX-ORDER-COUNT-10S"] == "1"
    assert _admit(limiter, limits, T0, account="k", orders=1, weight=0).refusal is None
    refused = _admit(limiter, limits, T0, account="k", orders=1, weight=0).refusal
    assert refused is not None
    assert (refused.status, refused.code) == (429, -1015)
    assert refused.retry_after_s is None  # an order-count 429 may come without Retry-After
    assert "TEN_SECONDS" in refused.msg
    # another account on the same IP is not affected
    assert _admit(limiter, limits, T0, account="other", orders=1, weight=0).refusal is None
    # next 10 s window: the minute limit (3) is what bites now
    later = _admit(limiter, limits, T0 + 10, account="k", orders=1, weight=0)
    assert later.refusal is not None
    assert "MINUTE" in later.refusal.msg


def test_order_limit_retry_after_can_be_switched_on() -> None:
    limiter = RateLimiter(order_limit_retry_after=True)
    limits = RateLimits(orders_per_10s=1)
    _admit(limiter, limits, T0 + 3, account="k", orders=1)
    refused = _admit(limiter, limits, T0 + 3, account="k", orders=1).refusal
    assert refused is not None
    assert refused.retry_after_s == 7


def test_continuing_after_429s_earns_a_418_ban_that_doubles_for_repeat_offenders() -> None:
    limiter, limits = RateLimiter(strikes_before_ban=2), RateLimits(weight_per_minute=1)
    now = T0
    _admit(limiter, limits, now)
    statuses = [_admit(limiter, limits, now).refusal.status for _ in range(3)]  # type: ignore[union-attr]
    assert statuses == [429, 429, 418]
    until = limiter.banned_until("10.0.0.1", now)
    assert until == now + BAN_BASE_S
    banned = _admit(limiter, limits, now + 60).refusal
    assert banned is not None
    assert (banned.status, banned.code, banned.retry_after_s) == (418, -1003, 60)
    # after the ban, offend again: twice as long
    now = until + 60
    for _ in range(4):
        last = _admit(limiter, limits, now)
    assert last.refusal is not None
    assert last.refusal.status == 418
    assert limiter.banned_until("10.0.0.1", now) == now + 2 * BAN_BASE_S


def test_ban_length_is_capped_at_three_days() -> None:
    limiter = RateLimiter()
    now = T0
    lengths = []
    for _ in range(15):
        until = limiter.ban("ip", now)
        lengths.append(until - now)
        now = until
    assert lengths[:3] == [120.0, 240.0, 480.0]
    assert max(lengths) == BAN_MAX_S == 3 * 86_400
    assert lengths[-1] == BAN_MAX_S


def test_limits_read_from_exchange_info_and_tightened() -> None:
    published = RateLimits(weight_per_minute=2400, orders_per_10s=300, orders_per_minute=1200)
    assert RateLimits.from_exchange_info(published.as_exchange_info()) == published
    tight = published.tightened(orders_per_10s=5, weight_per_minute=9999)
    assert (tight.weight_per_minute, tight.orders_per_10s, tight.orders_per_minute) == (
        2400,
        5,
        1200,
    )


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, None])
def test_limits_refuse_nonsense(bad: object) -> None:
    with pytest.raises(ValueError, match="weight_per_minute"):
        RateLimits(weight_per_minute=bad)  # type: ignore[arg-type]


def test_limiter_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError, match="strikes_before_ban"):
        RateLimiter(strikes_before_ban=-1)
    with pytest.raises(ValueError, match="ban_base_s"):
        RateLimiter(ban_base_s=float("nan"))
    with pytest.raises(ValueError, match="ban_base_s"):
        RateLimiter(ban_base_s=10, ban_max_s=float("inf"))
