"""The one retry loop's policy: full-jitter exponential backoff inside a total time budget.

ccxt's own ``maxRetriesOnFailure`` retries every ``OperationFailed`` (429 and 418 included) with
no delay; the guarded exchange forces it to 0 and asks this policy instead. The policy is a
pure function of the attempt number, the time spent so far, the classified error and a random
source:

* the wait before attempt ``n + 1`` is drawn uniformly from ``[0, min(max_delay, base * 2**(n-1))]``
  ("full jitter": uncoordinated clients spread out instead of retrying in lock-step);
* ``Retry-After`` is a *floor* on that wait, and a throttled answer without one (or with
  one of 0) waits ``default_retry_after_s``; so is ``at_least``, the time the rate budget
  keeps the next attempt back anyway (a 429's pause, a full window): one wait covers both;
* nothing is retried past ``total_budget_s`` since the first attempt, or ``max_attempts``: a
  wait that would end past it gives up instead. The last wait may be trimmed to end at the
  budget, but never below ``base_delay_s``: attempts at the budget's edge do not fire in a
  burst;
* NEVER errors and bans are not retried at all; an AMBIGUOUS failure of a request that changes
  state (an order) is retried only after resolving it by client order id (``resolve_first``).

:meth:`RetryPolicy.decide` is the whole policy. The guarded exchange's sans-IO core calls it
between effects (its waits are the kill switch's, so an engage ends one at once); the kill
ladder's retries (:mod:`~safeguard.killswitch._ladder`) ask the same type.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from safeguard._config import RetryConfig
from safeguard.guard._classify import ErrorClass, RetryClass
from safeguard.risk import _inputs


@dataclass(frozen=True, slots=True)
class Retry:
    """Send again after ``delay`` seconds; if ``resolve_first``, look the order up by client
    order id first and resend only when it is known not to exist."""

    delay: float
    resolve_first: bool = False


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop retrying. ``reason`` is one of ``never``, ``banned``, ``attempts``, ``budget``."""

    reason: str


RetryDecision = Retry | GiveUp


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The retry policy built from :class:`~safeguard._config.RetryConfig`. Immutable, pure."""

    config: RetryConfig = field(default_factory=RetryConfig)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the jittered wait after failed attempt ``attempt`` (1-based)."""
        return self.config.ceiling(attempt)

    def decide(
        self,
        attempt: int,
        elapsed: float,
        error_class: ErrorClass,
        retry_after: float | None = None,
        rng: random.Random | None = None,
        *,
        mutating: bool = False,
        at_least: float = 0.0,
    ) -> RetryDecision:
        """Whether and when to try again after failed attempt number ``attempt``.

        ``elapsed`` is seconds since the first attempt started. ``retry_after`` (seconds the
        venue asked for) defaults to ``error_class.retry_after``. ``rng`` supplies the jitter;
        pass a seeded ``random.Random`` for reproducible decisions. ``mutating`` marks a request
        that changes venue state (an order), whose AMBIGUOUS failures must be resolved first.
        ``at_least`` is how long the next attempt is kept back anyway (the rate budget's pause).
        """
        _check_attempt(attempt)
        _inputs.non_negative("elapsed", elapsed)
        _inputs.non_negative("at_least", at_least)
        if retry_after is None:
            retry_after = error_class.retry_after
        else:
            _inputs.non_negative("retry_after", retry_after)

        if error_class.banned:
            return GiveUp("banned")
        if error_class.retry is RetryClass.NEVER:
            return GiveUp("never")
        if attempt >= self.config.max_attempts:
            return GiveUp("attempts")

        floor = retry_after or 0.0
        if error_class.throttled and not retry_after:
            # No Retry-After, or one of 0 (a negative one parses to 0): the venue still said
            # stop, and resending at once is how a ban begins.
            floor = self.config.default_retry_after_s
        floor = max(floor, at_least)
        remaining = self.config.total_budget_s - elapsed
        if floor > remaining or remaining <= 0.0:
            return GiveUp("budget")
        jitter = (rng if rng is not None else _shared_rng).uniform(0.0, self.ceiling(attempt))
        delay = max(floor, jitter)  # the floor wins over the jitter
        if delay > remaining:
            # The budget trims the jitter rather than wasting the last attempt a random draw
            # would have allowed, but not into a burst: a trimmed wait shorter than the
            # smallest backoff is no backoff at all.
            if remaining < self.config.base_delay_s:
                return GiveUp("budget")
            delay = remaining
        resolve = mutating and error_class.retry is RetryClass.AMBIGUOUS
        return Retry(delay=delay, resolve_first=resolve)

    def delay(
        self,
        attempt: int,
        elapsed: float,
        ec: ErrorClass,
        rng: random.Random,
        *,
        at_least: float = 0.0,
    ) -> float | None:
        """:meth:`decide` for a request that changes nothing: seconds to wait, or None."""
        decision = self.decide(attempt, elapsed, ec, None, rng, at_least=at_least)
        return decision.delay if isinstance(decision, Retry) else None


_shared_rng = random.Random()


def decide(
    attempt: int,
    elapsed: float,
    error_class: ErrorClass,
    retry_after: float | None = None,
    rng: random.Random | None = None,
    *,
    config: RetryConfig | None = None,
    mutating: bool = False,
) -> RetryDecision:
    """:meth:`RetryPolicy.decide` for a one-off question (default :class:`RetryConfig`)."""
    policy = RetryPolicy(config) if config is not None else _DEFAULT_POLICY
    return policy.decide(attempt, elapsed, error_class, retry_after, rng, mutating=mutating)


_DEFAULT_POLICY = RetryPolicy()


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")


__all__ = [
    "GiveUp",
    "Retry",
    "RetryDecision",
    "RetryPolicy",
    "decide",
]
