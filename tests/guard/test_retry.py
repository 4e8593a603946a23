"""Retry policy: full-jitter bounds, cap, Retry-After floor, total budget, tenacity faces."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard._config import RetryConfig
from safeguard.guard._classify import ErrorClass, RetryClass
from safeguard.guard._retry import (
    GiveUp,
    Retry,
    RetryPolicy,
    decide,
)

CONFIG = RetryConfig(
    max_attempts=8,
    base_delay_s=0.2,
    max_delay_s=3.0,
    total_budget_s=20.0,
    default_retry_after_s=4.0,
)
POLICY = RetryPolicy(CONFIG)
SAFE = ErrorClass(RetryClass.SAFE, "refused")
AMBIGUOUS = ErrorClass(RetryClass.AMBIGUOUS, "may-have-reached-venue")
THROTTLED = ErrorClass(RetryClass.SAFE, "throttled", throttled=True)


def test_ceiling_doubles_then_caps() -> None:
    assert [POLICY.ceiling(n) for n in range(1, 7)] == [0.2, 0.4, 0.8, 1.6, 3.0, 3.0]
    assert POLICY.ceiling(10_000) == 3.0  # no overflow for absurd attempt numbers


@settings(max_examples=300, deadline=None)
@given(
    attempt=st.integers(min_value=1, max_value=7),
    elapsed=st.floats(min_value=0.0, max_value=25.0),
    retry_after=st.one_of(st.none(), st.floats(min_value=0.0, max_value=30.0)),
    seed=st.integers(min_value=0, max_value=2**32),
    ec=st.sampled_from([SAFE, AMBIGUOUS, THROTTLED]),
)
def test_waits_stay_inside_full_jitter_floor_and_budget(
    attempt: int, elapsed: float, retry_after: float | None, seed: int, ec: ErrorClass
) -> None:
    decision = POLICY.decide(attempt, elapsed, ec, retry_after, random.Random(seed))
    remaining = CONFIG.total_budget_s - elapsed
    floor = retry_after if retry_after is not None else 0.0
    if ec.throttled and not retry_after:
        floor = CONFIG.default_retry_after_s
    if floor > remaining or remaining <= 0:
        assert decision == GiveUp("budget")
        return
    if remaining < CONFIG.base_delay_s and decision == GiveUp("budget"):
        return  # the draw wanted more than is left, and less than one backoff is left
    assert isinstance(decision, Retry)
    assert decision.delay <= remaining  # never past the total budget
    assert decision.delay >= min(floor, remaining)  # Retry-After is a floor
    assert decision.delay <= max(floor, POLICY.ceiling(attempt))  # the cap holds over jitter
    assert decision.delay <= max(floor, CONFIG.max_delay_s)
    assert decision.resolve_first is False  # reads never resolve


def test_same_seed_same_waits_and_the_jitter_really_spreads() -> None:
    def draws(seed: int) -> list[float]:
        rng = random.Random(seed)
        out = []
        for _ in range(200):
            decision = POLICY.decide(5, 0.0, SAFE, None, rng)
            assert isinstance(decision, Retry)
            out.append(decision.delay)
        return out

    assert draws(7) == draws(7)
    spread = draws(7)
    # Full jitter: uniform on [0, 3.0]. Both halves of the window are used, the mean is central.
    assert min(spread) < 0.5
    assert max(spread) > 2.5
    assert 1.2 < sum(spread) / len(spread) < 1.8


def test_retry_after_floor_beats_a_small_jitter_and_is_not_capped() -> None:
    decision = POLICY.decide(1, 0.0, SAFE, 7.5, random.Random(1))
    assert decision == Retry(7.5)  # above max_delay_s: the venue's word wins over our cap


def test_throttled_without_retry_after_waits_the_safe_default() -> None:
    decision = POLICY.decide(1, 0.0, THROTTLED, None, random.Random(1))
    assert decision == Retry(CONFIG.default_retry_after_s)


def test_a_throttle_asking_for_no_wait_still_waits_the_safe_default() -> None:
    # "429, Retry-After: 0" (or a negative value, which parses to 0): the venue said stop;
    # retrying at once is how a ban begins.
    zero = ErrorClass(RetryClass.SAFE, "throttled", throttled=True, retry_after=0.0)
    assert POLICY.decide(1, 0.0, zero, None, random.Random(1)) == Retry(4.0)
    assert POLICY.decide(1, 0.0, THROTTLED, 0.0, random.Random(1)) == Retry(4.0)
    # A failure that is not a throttle keeps its plain jitter.
    assert POLICY.decide(1, 0.0, SAFE, 0.0, Draws(low=True)) == Retry(0.0)


def test_retry_after_from_the_error_class_is_used() -> None:
    ec = ErrorClass(RetryClass.SAFE, "throttled", throttled=True, retry_after=2.0)
    assert POLICY.decide(1, 0.0, ec, None, random.Random(1)) == Retry(2.0)


def test_budget_trims_the_last_wait_and_then_gives_up() -> None:
    decision = POLICY.decide(6, 19.5, SAFE, None, random.Random(3))
    assert isinstance(decision, Retry)
    assert decision.delay <= 0.5
    assert POLICY.decide(2, 20.5, SAFE, None, random.Random(3)) == GiveUp("budget")
    assert POLICY.decide(1, 18.0, SAFE, 5.0, random.Random(3)) == GiveUp("budget")


class Draws(random.Random):
    """A jitter source that always draws the same end of the range (``low`` or the top)."""

    def __init__(self, low: bool) -> None:
        super().__init__(0)
        self.low = low

    def uniform(self, a: float, b: float) -> float:
        return a if self.low else b


def test_no_attempt_fires_at_or_past_the_budget() -> None:
    for elapsed in (20.0, 20.0 + 1e-9, 25.0):
        assert POLICY.decide(2, elapsed, SAFE, None, Draws(low=True)) == GiveUp("budget")
        assert POLICY.decide(2, elapsed, SAFE, 0.0, Draws(low=True)) == GiveUp("budget")


def test_a_trimmed_last_wait_is_never_a_burst() -> None:
    # 0.05 s left and the draw wants 1.6 s: trimming would fire the attempt at once. Give up.
    assert POLICY.decide(5, 19.95, SAFE, None, Draws(low=False)) == GiveUp("budget")
    # A draw below what is left is a plain full-jitter wait, not a trimmed one.
    assert POLICY.decide(5, 19.95, SAFE, None, Draws(low=True)) == Retry(0.0)
    # With at least base_delay_s left, the last wait is trimmed to end at the budget.
    last = POLICY.decide(5, 19.7, SAFE, None, Draws(low=False))
    assert isinstance(last, Retry)
    assert last.delay == pytest.approx(0.3)


def test_the_rate_budgets_pause_is_the_floor_of_the_one_wait() -> None:
    # The 429's Retry-After is 2 s but the budget keeps requests back 6 s (a full window):
    # one wait of 6 s, not 2 s and then 4 s more.
    ec = ErrorClass(RetryClass.SAFE, "throttled", throttled=True, retry_after=2.0)
    assert POLICY.decide(1, 0.0, ec, None, random.Random(1), at_least=6.0) == Retry(6.0)
    assert POLICY.delay(1, 0.0, ec, random.Random(1), at_least=6.0) == 6.0
    # A pause that ends past the budget gives up now instead of sleeping into the refusal.
    assert POLICY.decide(1, 15.0, ec, None, random.Random(1), at_least=6.0) == GiveUp("budget")
    with pytest.raises(ValueError, match="at_least"):
        POLICY.decide(1, 0.0, ec, None, random.Random(1), at_least=-1.0)


def test_give_up_reasons() -> None:
    rng = random.Random(0)
    never = ErrorClass(RetryClass.NEVER, "rejected")
    banned = ErrorClass(RetryClass.SAFE, "banned", throttled=True, banned=True)
    assert POLICY.decide(1, 0.0, never, None, rng) == GiveUp("never")
    assert POLICY.decide(1, 0.0, banned, None, rng) == GiveUp("banned")
    assert POLICY.decide(CONFIG.max_attempts, 0.0, SAFE, None, rng) == GiveUp("attempts")


def test_ambiguous_order_resolves_before_resending() -> None:
    decision = POLICY.decide(1, 0.0, AMBIGUOUS, None, random.Random(0), mutating=True)
    assert isinstance(decision, Retry)
    assert decision.resolve_first
    safe = POLICY.decide(1, 0.0, SAFE, None, random.Random(0), mutating=True)
    assert isinstance(safe, Retry)
    assert not safe.resolve_first  # nothing reached the venue: nothing to resolve


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"attempt": 0}, "attempt"),
        ({"attempt": True}, "attempt"),
        ({"attempt": 1.0}, "attempt"),
        ({"elapsed": float("nan")}, "elapsed"),
        ({"elapsed": -1.0}, "elapsed"),
        ({"elapsed": float("inf")}, "elapsed"),
        ({"retry_after": float("nan")}, "retry_after"),
        ({"retry_after": -2.0}, "retry_after"),
    ],
)
def test_bad_inputs_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    call: dict[str, Any] = {"attempt": 1, "elapsed": 0.0, "retry_after": None, **kwargs}
    with pytest.raises(ValueError, match=field):
        POLICY.decide(call["attempt"], call["elapsed"], SAFE, call["retry_after"], random.Random())


def test_module_level_decide_is_the_policy() -> None:
    rng_a, rng_b = random.Random(9), random.Random(9)
    assert decide(2, 1.0, SAFE, None, rng_a, config=CONFIG) == POLICY.decide(
        2, 1.0, SAFE, None, rng_b
    )
    assert decide(1, 0.0, THROTTLED) == Retry(RetryConfig().default_retry_after_s)


def test_delay_adapter_matches_decide() -> None:
    assert POLICY.delay(1, 0.0, ErrorClass(RetryClass.NEVER, "x"), random.Random(0)) is None
    assert (
        POLICY.delay(1, 0.0, SAFE, random.Random(5))
        == POLICY.decide(1, 0.0, SAFE, None, random.Random(5)).delay
    )  # type: ignore[union-attr]
