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
directly; :func:`build_retrying` and :func:`build_async_retrying` wrap the *same* strategy in
tenacity's ``Retrying`` / ``AsyncRetrying`` for code that prefers tenacity's loops, with the
sleep injectable so a kill-switch-aware sleeper can cut a wait short.
"""

from __future__ import annotations

import random
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypedDict, Unpack

import tenacity
from tenacity.asyncio import AsyncRetrying

from safeguard.config import RetryConfig
from safeguard.guard.classify import ErrorClass, RetryClass, classify, to_safeguard_error
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
    """The retry policy built from :class:`~safeguard.config.RetryConfig`. Immutable, pure."""

    config: RetryConfig = field(default_factory=RetryConfig)

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the jittered wait after failed attempt ``attempt`` (1-based)."""
        _check_attempt(attempt)
        base = self.config.base_delay_s
        # Cap the exponent before it overflows a float; the cap applies long before anyway.
        exponent = min(attempt - 1, 64)
        return min(self.config.max_delay_s, base * 2.0**exponent)

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


# --- tenacity faces ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptInfo:
    """Handed to ``before_attempt`` before every attempt (``previous`` is None on the first)."""

    attempt: int
    previous: ErrorClass | None
    resolve_first: bool


@dataclass(frozen=True, slots=True)
class RetryNotice:
    """Handed to ``on_retry`` before each wait."""

    attempt: int
    delay: float
    error_class: ErrorClass
    error: BaseException
    resolve_first: bool


class _Strategy:
    """The tenacity hooks, all reading one decision per failed attempt from the policy.

    tenacity calls ``retry`` first, then ``wait``, then ``stop``; the decision is made once in
    ``retry`` (so the jitter is drawn once) and read back by the others.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        classify_error: Callable[[BaseException], ErrorClass] | None = None,
        mutating: bool = False,
        client_order_id: str | None = None,
        symbol: str | None = None,
        rng: random.Random | None = None,
        before_attempt: Callable[[AttemptInfo], None] | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
        wall_time: Callable[[], float] | None = None,
    ) -> None:
        self.policy = policy
        self.classify_error = classify_error or classify
        self.mutating = mutating or client_order_id is not None
        self.client_order_id = client_order_id
        self.symbol = symbol
        self.rng = rng
        self.before_attempt = before_attempt
        self.on_retry = on_retry
        self.wall_time = wall_time or time.time
        self._steps: weakref.WeakKeyDictionary[
            tenacity.RetryCallState, tuple[ErrorClass, RetryDecision]
        ] = weakref.WeakKeyDictionary()

    def retry(self, state: tenacity.RetryCallState) -> bool:
        error = _failure(state)
        if error is None:
            return False
        ec = self.classify_error(error)
        decision = self.policy.decide(
            state.attempt_number,
            state.seconds_since_start or 0.0,
            ec,
            None,
            self.rng,
            mutating=self.mutating,
        )
        self._steps[state] = (ec, decision)
        return True

    def wait(self, state: tenacity.RetryCallState) -> float:
        decision = self._steps[state][1]
        return decision.delay if isinstance(decision, Retry) else 0.0

    def stop(self, state: tenacity.RetryCallState) -> bool:
        return isinstance(self._steps[state][1], GiveUp)

    def before(self, state: tenacity.RetryCallState) -> None:
        if self.before_attempt is None:
            return
        step = self._steps.get(state)
        previous, resolve = (None, False) if step is None else (step[0], _resolves(step[1]))
        self.before_attempt(AttemptInfo(state.attempt_number, previous, resolve))

    def before_sleep(self, state: tenacity.RetryCallState) -> None:
        if self.on_retry is None:
            return
        ec, decision = self._steps[state]
        error = _failure(state)
        if error is None or not isinstance(decision, Retry):
            return
        self.on_retry(
            RetryNotice(state.attempt_number, decision.delay, ec, error, decision.resolve_first)
        )

    def give_up(self, state: tenacity.RetryCallState) -> NoReturn:
        error = _failure(state)
        if error is None:  # tenacity only gives up after a failure
            raise RuntimeError("retry loop gave up without a failure")
        if not isinstance(error, Exception):
            raise error  # interrupts and cancellation pass through untouched
        ec = self._steps[state][0]
        mapped = to_safeguard_error(
            error,
            ec,
            now=self.wall_time(),
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            attempts=state.attempt_number,
            elapsed=state.seconds_since_start or 0.0,
        )
        if mapped is error:
            raise error
        raise mapped from mapped.__cause__  # the scrubbed copy, never the raw error

    def tenacity_kwargs(self) -> dict[str, Any]:
        return {
            "retry": self.retry,
            "wait": self.wait,
            "stop": self.stop,
            "before": self.before,
            "before_sleep": self.before_sleep,
            "retry_error_callback": self.give_up,
        }


def _failure(state: tenacity.RetryCallState) -> BaseException | None:
    outcome = state.outcome
    if outcome is None or not outcome.failed:
        return None
    return outcome.exception()


def _resolves(decision: RetryDecision) -> bool:
    return isinstance(decision, Retry) and decision.resolve_first


class RetryOptions(TypedDict, total=False):
    """What :func:`build_retrying` and :func:`build_async_retrying` accept besides the sleep.

    ``classify_error`` lets the driver pass the failed answer's status and headers
    (``lambda e: classify(e, headers=...)``). ``client_order_id`` marks the call as an order
    (and implies ``mutating``): an ambiguous failure then ends as ``OutcomeUnknown``.
    ``before_attempt`` runs before every attempt and may raise (a kill switch refusing) to end
    the loop at once; its ``resolve_first`` tells an order driver to look the order up before
    resending. ``on_retry`` hears of each wait. ``wall_time`` (epoch seconds) dates a ban.
    """

    classify_error: Callable[[BaseException], ErrorClass] | None
    mutating: bool
    client_order_id: str | None
    symbol: str | None
    rng: random.Random | None
    before_attempt: Callable[[AttemptInfo], None] | None
    on_retry: Callable[[RetryNotice], None] | None
    wall_time: Callable[[], float] | None


def build_retrying(
    config: RetryConfig, *, sleep: Callable[[float], None], **options: Unpack[RetryOptions]
) -> tenacity.Retrying:
    """A ``tenacity.Retrying`` driven by :class:`RetryPolicy`; build one per call.

    On giving up it raises the failure mapped into safeguard's error tree (``__cause__`` is the
    ccxt error): ``OutcomeUnknown`` for an order, ``RetriesExhausted`` for a read, the matching
    ``VenueRejected`` subclass for a NEVER error, ``VenueBanned`` for a ban. ``options`` are
    described on :class:`RetryOptions`.
    """
    strategy = _Strategy(RetryPolicy(config), **options)
    return tenacity.Retrying(sleep=sleep, **strategy.tenacity_kwargs())


def build_async_retrying(
    config: RetryConfig,
    *,
    sleep: Callable[[float], Awaitable[None]],
    **options: Unpack[RetryOptions],
) -> AsyncRetrying:
    """:func:`build_retrying` for ``tenacity.AsyncRetrying`` (an awaitable ``sleep``)."""
    strategy = _Strategy(RetryPolicy(config), **options)
    return AsyncRetrying(sleep=sleep, **strategy.tenacity_kwargs())


__all__ = [
    "AttemptInfo",
    "GiveUp",
    "Retry",
    "RetryDecision",
    "RetryNotice",
    "RetryOptions",
    "RetryPolicy",
    "build_async_retrying",
    "build_retrying",
    "decide",
]
