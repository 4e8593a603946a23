"""The guard's decisions, written once: a sans-IO protocol the sync and async faces drive.

Every guarded call is a generator. It yields an *effect* and is resumed with what happened:

    Send(method, args, kwargs, permit)  ->  Answer(value | error, headers, started, now)
    Sleep(seconds, permit)              ->  Woke(now, early, refused)
    Record(run)                         ->  None          (a journal write, fsynced if pending)
    Engage(state, reason, code, by)     ->  None          (a kill-switch trigger tripped)

The faces (:mod:`safeguard.guard._sync`, :mod:`safeguard.guard._aio`) only perform effects:
call the ccxt method inside ``kill_switch.permit(...)``, sleep on the kill switch so that an
engage cuts a backoff short, write the journal (the async face off the event loop), or engage
the kill switch (the async face with ``engage_async``: the drain never blocks the loop).
Everything that decides lives here and takes ``now`` from the replies: throttle pacing,
retries, ambiguity resolution by client order id, the journal's transitions, the pre-trade
verdict, degradation. The pattern is tenacity's ``iter()`` and
httpcore's, applied to a whole call rather than one attempt.

The rule that keeps orders single: a send whose fate is unknown (timeout, 5xx, a dropped answer,
a duplicate-id rejection) is followed only by look-ups of its client order id, never by another
send, until the order is found (returned) or known absent (sent again, same id). Known absent
means "not found" *and* the venue's ``recvWindow`` has passed since the last send, because a
request still in flight inside the venue could otherwise land after the look-up. Within a call
that window is counted by the guard's own waits, never by its clock stepping forward.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Generator, Mapping
from contextlib import AbstractContextManager, ExitStack, nullcontext, suppress
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Generic, Protocol, TypeVar

import ccxt

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import _protective as protective
from safeguard.guard._classify import ErrorClass, RetryClass, classify, to_safeguard_error
from safeguard.guard._events import Held, Hooks, ProtectiveStopEvent
from safeguard.guard._journal import REUSABLE, Entry, OrderJournal, Status
from safeguard.guard._orders import (
    CLOCK_SKEW_MARGIN_S,
    PROTECTIVE_STOP_KEYS,
    CallKind,
    OrderCall,
    algo_route_flags,
    check_argument_params,
    check_setting,
    lookup_params,
    order_client_id,
    protected_entry,
    recv_window_s,
    send_params,
)
from safeguard.guard._redact import scrubbed_exception
from safeguard.guard._request_log import log
from safeguard.killswitch._state import Engage
from safeguard.risk._trusted import trusted

T = TypeVar("T")


# --- the protocol --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Permit:
    """What the kill switch must allow for this send."""

    reduces_only: bool
    is_cancel: bool = False
    protective: bool = False
    """A reduce-only stop-loss (the entry's own ``closePosition`` stop included): it can only
    take risk off, so the switch lets it through in every state, as it does a cancel. A HALTED
    that refused it left an accepted entry, or a position the bot tried to protect, with no
    stop at all."""

    @property
    def risk_off(self) -> bool:
        """Allowed whatever the switch's state: a cancel or a protective stop."""
        return self.is_cancel or self.protective


@dataclass(frozen=True, slots=True)
class Send:
    """Call ``method(*args, **kwargs)`` on the wrapped ccxt exchange (inside ``permit``)."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    permit: Permit | None = None
    essential: bool = False
    """A read safety depends on (a look-up, data for a verdict): it may use reserved budget."""
    scheduled: bool = False
    """A read of the view's own schedule (``keep_fresh``): it neither waits on the rate budget
    nor retries (the schedule's next pass makes it), so it never holds a closing keeper up,
    nor queues ahead of the bot's own requests for the budget."""

    @property
    def read_key(self) -> tuple[Any, ...]:
        """The read's identity, for making each at most once: its method, its arguments and
        its filters (``{"trigger": True}`` lists other orders than no filter on Binance)."""
        params = self.kwargs.get("params")
        flags = tuple(sorted(params.items())) if isinstance(params, Mapping) else ()
        return (self.method, self.args, flags)


@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds``; wake early if the kill switch engages."""

    seconds: float
    permit: Permit | None = None
    """The permit the send this sleep delays will need: on waking, the face says whether the
    kill switch now refuses it (:attr:`Woke.refused`), so an engage ends the wait at once."""


@dataclass(frozen=True, slots=True)
class Record:
    """Write to the order journal (``run`` appends, and for a pending record fsyncs). The
    effect completes before the core goes on: a pending record is on disk before its send."""

    run: Callable[[], object]


Effect = Send | Sleep | Record | Engage
"""An :class:`~safeguard.killswitch._state.Engage` is the switch's own event: a trigger tripped
on what the core saw. It is yielded before the next effect, so the send that follows a trip
meets the engaged switch's permit."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What a :class:`Send` produced. ``error`` is set instead of ``value`` on failure."""

    value: Any
    error: Exception | None
    headers: Mapping[str, str] | None
    started: float
    now: float
    body: Any = None
    """The venue's raw answer when ccxt kept it (``last_json_response``): ``load_markets``
    returns markets, but the limits the pacer learns are in the ``exchangeInfo`` behind them."""


new_answer = trusted(Answer)
"""Builds an :class:`Answer` from the face's own values (keywords), without the frozen
dataclass's per-field ``object.__setattr__``: one per request."""


@dataclass(frozen=True, slots=True)
class Woke:
    now: float
    """The time after the sleep."""
    early: bool = False
    refused: errors.SafeguardError | None = None
    """The kill switch's refusal of the delayed send (:attr:`Sleep.permit`), as it stands now."""


Reply = Answer | Woke | None
"""``None`` answers a :class:`Record` or an :class:`Engage` (and starts the steps)."""
Steps = Generator[Effect, Reply, T]


@dataclass(frozen=True, slots=True)
class Done(Generic[T]):
    """The steps finished with ``value``."""

    value: T


def step(steps: Steps[T], reply: Reply) -> Effect | Done[T]:
    """Resume ``steps`` with ``reply``: the next effect to perform, or :class:`Done`."""
    try:
        return steps.send(reply)
    except StopIteration as done:
        return Done(done.value)


class Trips:
    """The kill-switch trips one guarded call (or one stream message) caused, oldest first,
    each kept until it was performed: a call abandoned half-way (a cancelled task, an
    interrupt) still has its trips to engage, and its face engages them."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending: deque[Engage] = deque()

    def performing(self) -> Generator[Engage, Reply, None]:
        """Each pending trip as an effect; it leaves :attr:`pending` once performed."""
        pending = self.pending
        while pending:
            yield pending[0]
            pending.popleft()

    def take(self) -> list[Engage]:
        """Every pending trip, for a face to engage now (they count as performed)."""
        taken = list(self.pending)
        self.pending.clear()
        return taken


class TripSource(Protocol):
    """Where trips are recorded (the guard's :class:`~safeguard.guard._tripwire.TripWire`)."""

    def collecting(self) -> AbstractContextManager[Trips]:
        """Record the trips made in this thread or task into a fresh :class:`Trips` until the
        block ends."""
        ...


def collecting(source: TripSource | None) -> AbstractContextManager[Trips]:
    """``source.collecting()``; without triggers, a :class:`Trips` nothing is recorded in."""
    return nullcontext(Trips()) if source is None else source.collecting()


def driven(steps: Steps[T], trips: Trips, held: Held) -> Steps[T]:
    """``steps`` as a face drives them. Each kill-switch trip they cause (recorded in
    ``trips``) is yielded as an :class:`Engage` before the next effect, and before the steps
    end, however they end. The hooks ``held`` for the call
    (:func:`~safeguard.guard._events.later`) run after each send (the order leaves first) and
    before each sleep (a retry's event announces its wait); a journal write or an engage goes
    on to the send behind it."""
    reply: Reply = None
    pending = trips.pending
    try:
        while True:
            try:
                effect = steps.send(reply)
            except StopIteration as done:
                if pending:
                    yield from trips.performing()
                return done.value  # type: ignore[no-any-return]
            except Exception:
                # A refusal or an error can follow the very trip it caused (an order rejected
                # once too often): the switch engages before the caller hears of it.
                if pending:
                    yield from trips.performing()
                raise
            if pending:
                yield from trips.performing()
            if effect.__class__ is Sleep:
                held.deliver()
            reply = yield effect
            if effect.__class__ is Send:
                held.deliver()
    finally:
        steps.close()


def answered(reply: Reply) -> Answer:
    if not isinstance(reply, Answer):
        raise TypeError(f"a Send must be answered with an Answer, got {reply!r}")
    return reply


def woke(reply: Reply) -> Woke:
    if not isinstance(reply, Woke):
        raise TypeError(f"a Sleep must be answered with Woke, got {reply!r}")
    return reply


# --- the components the core consults (guard-components' values satisfy these) -------------


class Pacer(Protocol):
    """The rate budget, reduced to what the core asks of it."""

    def before(self, kind: CallKind, send: Send, now: float, deadline: float) -> float:
        """Seconds to wait before sending (0: go, and charged). Raises ``VenueBanned`` or
        ``ThrottleHold`` when waiting is not the answer, and ``ThrottleHold`` for a wait that
        would end after ``deadline`` (the call's time budget)."""
        ...

    def after(self, send: Send, answer: Answer, ec: ErrorClass | None) -> float:
        """Learn from the answer (headers, published limits); a 429 or 418 stops the budget.
        Returns how long the budget now keeps the next request back (0: it does not)."""
        ...

    def recheck(self, kind: CallKind, send: Send, now: float) -> Send | None:
        """Asked when ``before`` refused ``send``: a read that may lift the refusal (the
        venue's published limits, when a narrowed one leaves ``send`` no room and may have
        been lifted since), after which ``before`` is asked again; None to let it stand."""
        ...


class Backoff(Protocol):
    def delay(
        self,
        attempt: int,
        elapsed: float,
        ec: ErrorClass,
        rng: random.Random,
        *,
        at_least: float = 0.0,
    ) -> float | None:
        """Seconds before the next attempt, or ``None`` to give up. ``at_least``: how long the
        rate budget keeps the next attempt back anyway, so one wait covers both."""
        ...


class Gate(Protocol):
    """The pre-trade verdict and the market data it needs."""

    def refresh(self, symbol: str, now: float) -> list[Send]:
        """Reads needed before ``symbol`` can be judged (stale or missing data)."""
        ...

    def read_version(self) -> int:
        """The view's version when a read is sent, for :meth:`absorb`'s ``since``."""
        ...

    def venue_health(self, now: float) -> str:
        """The venue's health the verdict prices on now (``NORMAL``, ``DEGRADED``, ``SEVERE``)."""
        ...

    def absorb(self, send: Send, value: Any, now: float, since: int | None = None) -> list[Send]:
        """Learn from a successful read (any read, the user's too), sent at version ``since``
        (an account read that raced our own order is not taken). Returns the reads needed
        to judge what was just learnt (the account the triggers lack, a held symbol's tier
        ladder due for its re-check): the core makes them at once, through the same path."""
        ...

    def unavailable(self, send: Send, error: Exception, now: float) -> None:
        """A read :meth:`absorb` asked for failed (after its retries)."""
        ...

    def assess(self, intent: OrderCall, now: float, *, explain: bool = False) -> Assessment:
        """Judge ``intent`` on the data at hand. Pure; never raises for a denial.
        ``explain`` asks for everything a preview shows (the largest safe amount too)."""
        ...

    def placed(self, intent: OrderCall, order: Any, now: float, since: int | None = None) -> None:
        """An order now exists (``order`` is the venue's answer, ``None`` when there is none):
        apply what the answer says to the view; what it cannot say is read again first.
        ``since``: the view's version before the order was sent (an account read taken
        after it may already hold the fill: then the account is read again instead)."""
        ...

    def adds_risk(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bool:
        """Whether a settings call or a write moves liquidation closer (the kill switch then
        refuses it as it refuses an opening order)."""
        ...

    def committing(self, intent: OrderCall, now: float) -> AbstractContextManager[Assessment]:
        """Judge ``intent`` as :meth:`assess` does and, if it may go, count it as in flight
        until the block ends: every other order is judged as if it had filled."""
        ...

    def refuse(self, intent: OrderCall, code: str, reason: str, now: float) -> Assessment:
        """A denial decided outside the verdict (the kill switch's): the same full verdict."""
        ...

    def clock_stepped_back(self) -> None:
        """A reply's time was behind one already seen: the core's time stands still until the
        clock catches up, and what is read meanwhile is later than it is stamped."""
        ...


@dataclass(frozen=True, slots=True)
class Assessment:
    """The gate's answer: the verdict, and either the intent to send or the denial."""

    intent: OrderCall
    verdict: Any
    denial: errors.OrderDenied | None = None


class Observer(Protocol):
    def request(
        self, send: Send, answer: Answer, ec: ErrorClass | None, attempt: int, kind: CallKind
    ) -> None: ...

    def retry(self, send: Send, ec: ErrorClass, attempt: int, delay: float, now: float) -> None: ...


@dataclass(slots=True)
class CallBudget:
    """One call's time budget (``retry.total_budget_s``), spent as the replies' times advance.

    Counted step by step rather than as ``now - started``: a wall clock stepping back (an NTP
    step) adds nothing and never makes the time spent negative; one stepping forward spends
    the budget, which ends the call sooner rather than later."""

    total: float
    last: float
    _spent: float = 0.0

    def spent(self, now: float) -> float:
        self._spent += max(0.0, now - self.last)
        self.last = now
        return self._spent

    def deadline(self, now: float) -> float:
        """The latest time a wait may end, on the clock ``now`` is read from."""
        return now + max(self.total - self.spent(now), 0.0)


_REFRESH_TRIES = 2
"""How often the order path makes one read before a verdict: once, and once more when its
answer was not taken (a failure is not tried again: the read retried within itself)."""


# --- the core ------------------------------------------------------------------------------


@dataclass
class GuardCore:
    """Every decision of a guarded exchange. Holds state; performs no I/O."""

    exchange_id: str
    policy: Policy
    journal: OrderJournal
    pacer: Pacer
    backoff: Backoff
    gate: Gate
    observer: Observer
    settle_window_s: float = 11.0
    """How long after a send a venue may still act on it: Binance's ``recvWindow`` (10 s) plus
    a margin for the venue's clock running behind ours."""
    rng: random.Random = field(default_factory=random.Random)
    reconciled: bool = False
    """Whether a previous run's unresolved orders were settled; orders wait for it."""
    hooks: Hooks | None = None
    """Where the core's own events go (a protective stop placed or failed)."""
    rules_loaded: bool = False
    """Whether ``load_markets`` ever succeeded: until it has, a connection failure there is
    the venue being unreachable, and the first error says so."""
    trips: TripSource | None = None
    """Where the kill-switch triggers record their trips (the guard's
    :class:`~safeguard.guard._tripwire.TripWire`); None: no triggers."""

    def collecting(self) -> AbstractContextManager[Trips]:
        """The trips of the call a face is about to drive (:func:`driven`)."""
        return collecting(self.trips)

    # --- reads, cancels, settings, other writes -------------------------------------------

    def call(
        self,
        kind: CallKind,
        method: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        now: float,
    ) -> Steps[Any]:
        """Any call that is not an order. Reads retry on every transient failure; cancels and
        settings too (repeating them cannot add exposure); other writes only when the request
        surely never reached the venue."""
        if kind is CallKind.READ:
            # The read's own steps, not wrapped in another generator: a generator layer costs
            # a frame on every resume, and reads are most of the requests.
            return self._read(Send(method, args, kwargs), now)
        return self._call(kind, method, args, kwargs, now)

    def scheduled_read(self, send: Send, now: float) -> Steps[Any]:
        """A read of the view's schedule (:attr:`Send.scheduled`)."""
        return self._read(replace(send, scheduled=True), now)

    def _call(
        self,
        kind: CallKind,
        method: str,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        now: float,
    ) -> Steps[Any]:
        if kind is CallKind.SETTING:
            check_setting(method, args, kwargs)
        check_argument_params(method, args, kwargs)
        if kind is CallKind.CANCEL:
            permit: Permit | None = Permit(reduces_only=True, is_cancel=True)
        elif self.gate.adds_risk(method, args, kwargs):
            permit = Permit(reduces_only=False)  # refused as an opening order would be
        else:
            permit = None
        send = Send(method, args, kwargs, permit)
        retry_ambiguous = kind in (CallKind.CANCEL, CallKind.SETTING)
        value = yield from self._attempts(send, kind, now, retry_ambiguous=retry_ambiguous)
        if kind in (CallKind.SETTING, CallKind.CANCEL):
            # Leverage and margin mode are the verdict's; a cancel takes orders off its count.
            self.gate.absorb(send, value, self._last_now)
        return value

    def _read(self, send: Send, now: float, *, wake_on: Permit | None = None) -> Steps[Any]:
        since = self.gate.read_version()
        value = yield from self._attempts(
            send, CallKind.READ, now, retry_ambiguous=True, wake_on=wake_on
        )
        if send.method == "load_markets":
            self.rules_loaded = True
        wanted = list(self.gate.absorb(send, value, self._now_seen, since))  # self._last_now
        if not wanted:
            return value  # the usual case: the read taught the gate nothing it must follow
        made: set[tuple[Any, ...]] = set()
        while wanted:
            # Each of the gate's reads at most once per call, so the chain ends however the
            # gate answers (its reads carry hashable arguments; the caller's need not).
            follow = wanted.pop(0)
            if follow.read_key not in made:
                made.add(follow.read_key)
                # A scheduled read's follow-ups are the schedule's too: no waits, no retries.
                wanted.extend(
                    (yield from self._follow_up(follow, wake_on, scheduled=send.scheduled))
                )
        return value

    def _follow_up(
        self, wanted: Send, wake_on: Permit | None, *, scheduled: bool = False
    ) -> Steps[list[Send]]:
        """A read the gate needs to judge what a read brought (the account, a position's tier
        ladder); returns what it needs next. A failure is the gate's to act on, not the
        caller's, whose own read succeeded."""
        essential = replace(wanted, essential=True, scheduled=scheduled or wanted.scheduled)
        since = self.gate.read_version()
        try:
            value = yield from self._attempts(
                essential, CallKind.READ, self._last_now, retry_ambiguous=True, wake_on=wake_on
            )
        except errors.SafeguardError as exc:
            self.gate.unavailable(wanted, exc, self._last_now)
            return []
        return self.gate.absorb(essential, value, self._last_now, since)

    def _attempts(
        self,
        send: Send,
        kind: CallKind,
        started: float,
        *,
        retry_ambiguous: bool,
        wake_on: Permit | None = None,
    ) -> Steps[Any]:
        """Send until answered, retrying as the policy says. ``wake_on``: the permit of the
        order this read is for, when it has none of its own: a kill that would refuse the order
        ends the read's waits too."""
        wake_on = wake_on or send.permit
        attempt = 0
        now = started
        total = 0.0 if send.scheduled else self.policy.retry.total_budget_s
        # Built at the first wait or failure: until then nothing of it is spent, and the
        # deadline is the whole budget from the start (the usual request needs no more).
        budget: CallBudget | None = None
        maybe_done = False
        while True:
            attempt += 1
            # Asked here first, so a request the budget lets go at once (the usual case) costs
            # no generator; a wait goes through _pace, which asks again after each sleep.
            # Before the first wait or failure nothing of the budget is spent yet.
            deadline = started + max(total, 0.0) if budget is None else budget.deadline(now)
            try:
                wait = self.pacer.before(kind, send, now, deadline)
            except errors.RequestBlocked:
                probe = self.pacer.recheck(kind, send, now)
                if probe is None:
                    raise
                now = yield from self._recheck(probe, now, wake_on)
                budget = budget or CallBudget(total, started)  # the re-read spent some of it
                wait = self.pacer.before(kind, send, now, budget.deadline(now))
            if wait > 0.0:
                budget = budget or CallBudget(total, started)
                now = yield from self._pace(kind, send, now, budget, wake_on, wait)
            answer = yield send
            if type(answer) is not Answer:
                answer = answered(answer)
            now = self._last_now = answer.now  # the setter: it also notices a clock step back
            ec, blocked = self._observe(send, answer, attempt, kind)
            if ec is None:
                return answer.value
            budget = budget or CallBudget(total, started)
            assert answer.error is not None
            if maybe_done and send.method == "cancel_order" and _not_found(answer.error):
                # An earlier attempt may have cancelled it (or it filled meanwhile): the order
                # as it stands now is the answer, not "order not found".
                # On the routes the cancel went to: a stop's id means nothing to the plain ones.
                params = send.args[2] if len(send.args) > 2 else send.kwargs.get("params")
                lookup = Send(
                    "fetch_order",
                    tuple(send.args[:2]),
                    {"params": algo_route_flags(params)},
                    essential=True,
                )
                return (yield from self._read(lookup, now))
            maybe_done = maybe_done or ec.retry is RetryClass.AMBIGUOUS
            retryable = not send.scheduled and (
                ec.retry is RetryClass.SAFE
                or (ec.retry is RetryClass.AMBIGUOUS and retry_ambiguous)
            )
            delay = (
                self.backoff.delay(attempt, budget.spent(now), ec, self.rng, at_least=blocked)
                if retryable
                else None
            )
            if delay is None and kind is CallKind.WRITE and ec.retry is RetryClass.AMBIGUOUS:
                # A transfer or withdrawal that may have happened is not "safe to try later".
                unknown = errors.OutcomeUnknown(
                    f"{send.method} may or may not have been carried out "
                    f"({ec.error_type}: {ec.reason}); check the account before repeating it",
                    client_order_id="",
                )
                unknown.__cause__ = scrubbed_exception(answer.error)
                raise unknown
            if delay is None:
                raise self._error(answer.error, ec, now, attempt, budget.spent(now))
            self.observer.retry(send, ec, attempt, delay, now)
            now = yield from self._sleep(delay, wake_on)

    def _recheck(self, probe: Send, now: float, wake_on: Permit | None) -> Steps[float]:
        """Read what the pacer asked for before it refuses a send; returns the time after. A
        failed read leaves the limits as they were: the send is judged on them again (and
        refused unsent if they still leave it no room)."""
        try:
            yield from self._read(probe, now, wake_on=wake_on)
        except errors.TradingHalted:
            raise
        except errors.SafeguardError:
            pass
        return max(now, self._last_now)

    def _pace(
        self,
        kind: CallKind,
        send: Send,
        now: float,
        budget: CallBudget,
        wake_on: Permit | None = None,
        wait: float | None = None,
    ) -> Steps[float]:
        """Wait out the throttle (each wait re-asked: the budget may have moved), but never
        past the call's time budget: a request the rate budget cannot fit by then is held at
        once instead of being sent long after the caller asked for it. ``wait``: the budget's
        answer already asked at ``now``."""
        while True:
            if wait is None:
                wait = self.pacer.before(kind, send, now, budget.deadline(now))
            if wait <= 0.0:
                return now
            now = yield from self._sleep(wait, wake_on or send.permit)
            wait = None

    def _sleep(self, seconds: float, permit: Permit | None) -> Steps[float]:
        """Sleep before a send that needs ``permit``; returns the time after. A kill switch
        that now refuses the send ends the wait with its refusal, at once: a call parked on
        the budget or a backoff must not be refused only when its wait is over."""
        reply = woke((yield Sleep(seconds, permit)))
        if reply.refused is not None:
            raise reply.refused
        return reply.now

    def _observe(
        self, send: Send, answer: Answer, attempt: int, kind: CallKind
    ) -> tuple[ErrorClass | None, float]:
        """Classify the answer and tell the pacer and the observer. Returns the class (None:
        success) and how long the rate budget now keeps the next request back."""
        error = answer.error
        if isinstance(error, errors.SafeguardError):
            # The permit refused (or a gate decision): it never reached the wire.
            raise error
        ec = None if error is None else classify(error, headers=answer.headers)
        blocked = self.pacer.after(send, answer, ec)
        self.observer.request(send, answer, ec, attempt, kind)
        return ec, blocked

    def _error(
        self,
        exc: Exception,
        ec: ErrorClass,
        now: float,
        attempts: int,
        elapsed: float,
        intent: OrderCall | None = None,
    ) -> errors.SafeguardError:
        return to_safeguard_error(
            exc,
            ec,
            now=now,
            client_order_id=intent.client_order_id if intent else None,
            symbol=intent.symbol if intent else None,
            attempts=attempts,
            elapsed=elapsed,
            default_ban_s=self.policy.throttle.default_ban_s,
        )

    _now_seen: float = field(default=0.0, init=False)

    @property
    def _last_now(self) -> float:
        """The latest time any reply carried. Several calls may be in flight at once (threads,
        tasks) and each reply's time is a reading of the same clock: keep the newest, so no
        decision is made on an older time than one already seen."""
        return self._now_seen

    @_last_now.setter
    def _last_now(self, now: float) -> None:
        # A second or more behind the newest time is the clock stepping back (replies racing
        # each other differ by far less): the time stands still here until the clock passes
        # it again, and what is read meanwhile is later than it is stamped.
        if self._now_seen - now >= _CLOCK_STEP_S:
            self.gate.clock_stepped_back()
        self._now_seen = max(self._now_seen, now)

    # --- orders ---------------------------------------------------------------------------

    def preview(
        self, intent: OrderCall, now: float, *, refusal: tuple[str, str] | None = None
    ) -> Steps[Any]:
        """Refresh what the verdict needs, then judge without sending: the verdict.
        ``refusal`` (code, reason): the kill switch already forbids the order, so the preview
        says so, as create_order would, without reading anything."""
        self._last_now = now
        if refusal is not None:
            return self.gate.refuse(intent, *refusal, now).verdict
        yield from self._refresh(intent.symbol, now)
        return self.gate.assess(intent, self._last_now, explain=True).verdict

    def place(self, intent: OrderCall, now: float, *, protect: bool = True) -> Steps[Any]:
        """Create (or edit) one order: verdict, journal, then the never-double send.

        ``protect``: an entry's ``stopLossPrice`` / ``stopLoss`` is its protective stop, sent
        as its own order (False when ccxt's own stop-order helpers built the call: there the
        stop price is the order's trigger)."""
        self._last_now = now
        self._unused_ids([intent], protect=protect)
        if not self.reconciled:
            yield from self.reconcile(now)
        yield from self._refresh(intent.symbol, self._last_now, wake_on=order_permit(intent))
        return (yield from self._place_one(intent, protect=protect))

    def place_all(self, intents: list[OrderCall], now: float) -> Steps[list[Any]]:
        """Several orders, each through the full guard; all are judged before any is sent,
        and each again just before its own send.

        A failure part-way raises with ``placed`` (the orders already created) on the error.
        """
        self._last_now = now
        self._unused_ids(intents, protect=True)
        if not self.reconciled:
            yield from self.reconcile(now)
        for symbol, opening in _batch_permits(intents).items():
            yield from self._refresh(symbol, self._last_now, wake_on=opening)
        with ExitStack() as judged:
            # Any denial refuses the whole batch before a send, each order judged with the
            # ones before it counted as if filled (judged alone, a batch of two orders that
            # together break a cap sent the first before the second was refused).
            for intent in intents:
                assessment = judged.enter_context(self.gate.committing(intent, self._last_now))
                if assessment.denial is not None:
                    assessment.denial.placed = []  # type: ignore[attr-defined]
                    raise assessment.denial
        placed: list[Any] = []
        for intent in intents:
            try:
                # Judged again on the account the earlier orders of the batch left behind:
                # each passing alone does not mean they pass together.
                yield from self._refresh(
                    intent.symbol, self._last_now, wake_on=order_permit(intent)
                )
                placed.append((yield from self._place_one(intent)))
            except errors.SafeguardError as exc:
                exc.placed = placed  # type: ignore[attr-defined]
                raise
        return placed

    def _unused_ids(self, intents: list[OrderCall], *, protect: bool) -> None:
        """Refuse, before anything is sent, a client id the journal already holds or that the
        call names twice, the protective stops' ids included: reusing one is how an order
        gets doubled, or taken for another (the journal refuses it too, but only at the send,
        which for a stop is after its entry left)."""
        seen: set[str] = set()
        for intent in intents:
            if intent.edit_of is not None:
                continue  # an edit names an existing order (its client id, if any, is that one)
            ids = [intent.client_order_id]
            if protect and protected_entry(intent):
                ids.append(protective.stop_client_id(intent.client_order_id))
            for cid in filter(None, ids):
                entry = self.journal.get(cid)
                if entry is not None and entry.status in REUSABLE:
                    entry = None  # its order never existed: sending under it doubles nothing
                if entry is not None or cid in seen:
                    why = "twice in this call" if entry is None else f"(journal: {entry.status})"
                    raise errors.InvalidInput(
                        f"clientOrderId {cid!r} was already used {why}: a client id names one "
                        "order; nothing was sent",
                        field="params.clientOrderId",
                    )
                seen.add(cid)

    def _approved(self, intent: OrderCall) -> OrderCall:
        return self._assessed(intent).intent

    def _assessed(self, intent: OrderCall) -> Assessment:
        assessment = self.gate.assess(intent, self._last_now)
        if assessment.denial is not None:
            raise assessment.denial
        return assessment

    def _place_one(self, intent: OrderCall, *, protect: bool = True) -> Steps[Any]:
        """Judge and send one order. An entry declaring a protective stop is judged as the
        pair and sent without the stop; if it opens, adds to or flips a position, the stop
        follows as its own close-all order once the venue has accepted the entry (one that
        only reduces or closes, or that ended with nothing filled, has nothing to protect)
        (:mod:`safeguard.guard._protective`)."""
        with self.gate.committing(intent, self._last_now) as assessment:
            if assessment.denial is not None:
                raise assessment.denial
            approved = assessment.intent
            entry, plan = protective.split(approved) if protect else (approved, None)
            if plan is None:
                return (yield from self._send_one(approved))
            protects = protective.adds_exposure(assessment.verdict, entry)
            try:
                order = yield from self._send_one(
                    entry, judged_as=approved, declares=plan if protects else None
                )
            except errors.OutcomeUnknown as unknown:
                # The entry may exist with nothing protecting it: its stop is not placed blind
                # (a close-all stop for an entry that does not exist would wait to close
                # another).
                stop_id = protective.stop_client_id(entry.client_order_id)
                unknown.message = (
                    f"{unknown.message}; its protective stop {stop_id} at {plan.price:g} was "
                    "not placed: if reconcile finds the entry, protect or close the position"
                )
                unknown.args = (unknown.message,)
                raise
        if not protects or protective.ended_unfilled(order):
            return order
        stop = protective.stop_intent(entry, plan)
        try:
            # Not judged again: it was judged with its entry, and it can only close.
            placed = yield from self._send_one(stop, rejudge=False)
        except errors.SafeguardError as exc:
            self._stop_event("failed", entry, stop, plan, type(exc).__name__)
            log.error(
                "protective stop {} at {} for entry {} on {} not placed ({}): the entry stands "
                "unprotected",
                stop.client_order_id,
                plan.price,
                entry.client_order_id,
                entry.symbol,
                exc,
            )
            failed = errors.ProtectiveStopFailed(
                f"entry {entry.client_order_id} on {entry.symbol} was accepted but its "
                f"protective stop {stop.client_order_id} at {plan.price:g} was not placed "
                f"({type(exc).__name__}: {exc}); protect or close it now",
                order=order,
                stop_client_order_id=stop.client_order_id,
                symbol=entry.symbol,
            )
            raise failed from exc
        self._stop_event("placed", entry, stop, plan, None)
        return protective.attach(order, placed)

    def _stop_event(
        self,
        outcome: str,
        entry: OrderCall,
        stop: OrderCall,
        plan: protective.StopPlan,
        error_type: str | None,
    ) -> None:
        self._emit_stop(
            outcome, entry.symbol, entry.client_order_id, stop.client_order_id, plan.price,
            error_type,
        )  # fmt: skip

    def _emit_stop(
        self,
        outcome: str,
        symbol: str,
        entry_id: str,
        stop_id: str,
        price: float,
        error_type: str | None,
    ) -> None:
        if self.hooks is not None:
            self.hooks.emit(
                ProtectiveStopEvent(
                    at=self._last_now,
                    outcome=outcome,
                    symbol=symbol,
                    entry_client_order_id=entry_id,
                    stop_client_order_id=stop_id,
                    stop_price=price,
                    error_type=error_type,
                )
            )

    def _send_one(
        self,
        intent: OrderCall,
        *,
        judged_as: OrderCall | None = None,
        rejudge: bool = True,
        declares: protective.StopPlan | None = None,
    ) -> Steps[Any]:
        """Send ``intent``. A resend that needs a fresh verdict judges ``judged_as`` (the
        entry with its protective stop) or ``intent``; with ``rejudge`` False, none.
        ``declares``: the protective stop that must follow the entry, journaled with it so a
        restart that finds the entry without its stop can say so."""
        now = self._last_now
        since = self.gate.read_version()  # before the send: see Gate.placed
        try:
            if intent.edit_of is not None:
                order = yield from self._edit(intent, now)
            else:
                write = self.journal.pending_write(
                    intent.client_order_id,
                    symbol=intent.symbol,
                    intent=_journaled(intent, declares),
                    now=now,
                )
                try:
                    yield Record(write)
                except BaseException:
                    # Stopped while the pending record was being written (the async face
                    # writes it in a thread, which goes on): it may land, as an orphan that
                    # the next order reconciles first.
                    write.abandon()
                    self.reconciled = False
                    raise
                if write.error is not None:
                    raise write.error  # not on disk (a reused id, a full disk): never sent
                judge = (judged_as or intent) if rejudge else None
                try:
                    order = yield from self._create(intent, now, judge, holder=write)
                except errors.SafeguardError:
                    raise  # _create settled the entry: acked, absent, rejected or unknown
                except BaseException:
                    self._abandon(intent, holder=write)
                    raise
        except errors.SafeguardError:
            # The outcome is unknown (an order may exist): the next verdict re-reads the account.
            self.gate.placed(intent, None, self._last_now)
            raise
        self.gate.placed(intent, order, self._last_now, since)
        return order

    def _refresh(self, symbol: str, now: float, *, wake_on: Permit | None = None) -> Steps[None]:
        """Read what the verdict lacks, one read at a time (each answer can change the list:
        after ``load_markets`` an unknown symbol needs nothing more). A read that fails leaves
        its piece missing and the verdict denies for it; a ban or a hold ends the order here.
        ``wake_on``: the order's permit, so a kill ends the reads' waits (see ``_attempts``)."""
        # Each read once; one answered but not taken (it crossed another order of ours, see
        # PreTradeGate.absorb) once more, as that order has most likely been answered since.
        tries: dict[tuple[Any, ...], int] = {}
        while True:
            due = [
                s
                for s in self.gate.refresh(symbol, self._last_now)
                if tries.get(s.read_key, 0) < _REFRESH_TRIES
            ]
            if not due:
                return
            send = due[0]
            tries[send.read_key] = tries.get(send.read_key, 0) + 1
            essential = Send(send.method, send.args, send.kwargs, essential=True)
            try:
                yield from self._read(essential, self._last_now, wake_on=wake_on)
            except (errors.RetriesExhausted, errors.VenueRejected) as exc:
                tries[send.read_key] = _REFRESH_TRIES
                log.warning("{} failed before a verdict: {}", send.method, exc)
                no_rules = send.method == "load_markets" and not self.rules_loaded
                if no_rules and isinstance(exc, errors.RetriesExhausted) and unreachable(exc):
                    # No rules ever loaded and no connection: say so, rather than let the
                    # health the failures caused (SEVERE) speak for them.
                    raise errors.RetriesExhausted(
                        f"venue unreachable: the market rules could not be loaded ({exc}); "
                        "nothing was sent",
                        attempts=exc.attempts,
                        elapsed=exc.elapsed,
                    ) from exc

    def _create(
        self, intent: OrderCall, started: float, judge: OrderCall | None, *, holder: object
    ) -> Steps[Any]:
        send = Send(
            "create_order",
            (intent.symbol, intent.type, intent.side, intent.amount, intent.price),
            {"params": send_params(intent)},
            order_permit(intent),
        )
        cid = intent.client_order_id
        attempt = 0
        now = judged = started
        health = self.gate.venue_health(now) if judge is not None else ""
        amounts_sent: set[float | None] = set()
        budget = CallBudget(self.policy.retry.total_budget_s, started)
        while True:
            attempt += 1
            try:
                if judge is not None and (
                    now - judged > self.policy.risk.max_market_data_age_s
                    or (attempt > 1 and self.gate.venue_health(now) != health)
                ):
                    # A resend after a backoff or a settle window must not rest on a verdict
                    # older than the data it was allowed to use, nor on the venue's health it
                    # was priced on (a failed send may itself have tipped it into SEVERE):
                    # judge it again.
                    yield from self._refresh(intent.symbol, now, wake_on=send.permit)
                    intent, send = _rejudged(intent, send, self._approved(judge))
                    now = judged = self._last_now
                    health = self.gate.venue_health(now)
                # The budget asked here first, as in _attempts: a send it lets go at once (the
                # usual case) costs no pacing generator.
                wait = self.pacer.before(CallKind.ORDER, send, now, budget.deadline(now))
                if wait > 0.0:
                    now = yield from self._pace(CallKind.ORDER, send, now, budget, None, wait)
                if attempt > 1 or wait > 0.0:
                    # A restart measures the settle window from the last send: a resend's (or
                    # a paced first send's) time is on disk before it leaves (every earlier
                    # attempt was absent).
                    stamp = _Stamped(partial(self.journal.resent, cid, now=now, holder=holder))
                    yield Record(stamp)
                    if stamp.error is not None:
                        raise stamp.error
                amounts_sent.add(send.args[3])
                answer = answered((yield send))
                now = self._last_now = answer.now
                ec, blocked = self._observe(send, answer, attempt, CallKind.ORDER)
            except errors.SafeguardError:
                # Blocked before the wire (kill switch, ban, reserve, a verdict that changed):
                # earlier attempts were all resolved absent, so the order does not exist.
                yield self._settle(cid, Status.ABSENT, now=now, holder=holder)
                raise
            if ec is None:
                order_id = _order_id(answer.value)
                yield self._settle(cid, Status.ACKED, now=now, holder=holder, order_id=order_id)
                return answer.value
            assert answer.error is not None
            if ec.retry is RetryClass.NEVER and not ec.duplicate_client_order_id:
                yield self._settle(cid, Status.REJECTED, now=now, holder=holder)
                raise self._error(answer.error, ec, now, attempt, budget.spent(now), intent)
            if ec.retry is RetryClass.AMBIGUOUS:
                # The whole window from here: the send's own time on the wire may hide a clock
                # step, so only the waits _resolve itself makes count toward it.
                found = yield from self._resolve(
                    intent, unsettled=self._settle_window(intent), holder=holder
                )
                if found is not None and not _could_be(found, intent, amounts_sent):
                    # Another order holds this client id (a caller's id reused by another
                    # process, or after the journal forgot it): it is not this order.
                    definite = ec.duplicate_client_order_id
                    yield self._settle(
                        cid,
                        Status.REJECTED if definite else Status.UNKNOWN,
                        now=self._last_now,
                        holder=holder,
                    )
                    raise self._id_taken(intent, found, answer.error, definite=definite)
                if found is not None:
                    yield self._settle(
                        cid,
                        Status.ACKED,
                        now=self._last_now,
                        holder=holder,
                        order_id=_order_id(found),
                    )
                    return found
                now = self._last_now
            elapsed = budget.spent(now)
            delay = self.backoff.delay(attempt, elapsed, ec, self.rng, at_least=blocked)
            if delay is None:
                yield self._settle(cid, Status.ABSENT, now=now, holder=holder)
                # Every send so far is known absent: giving up is a plain "retries exhausted".
                raise self._error(answer.error, ec, now, attempt, elapsed)
            self.observer.retry(send, ec, attempt, delay, now)
            try:
                now = yield from self._sleep(delay, send.permit)
            except errors.SafeguardError:
                # The switch engaged during the backoff: every send so far is known absent.
                yield self._settle(cid, Status.ABSENT, now=self._last_now, holder=holder)
                raise

    def _id_taken(
        self, intent: OrderCall, found: Any, cause: Exception, *, definite: bool
    ) -> errors.SafeguardError:
        cid = intent.client_order_id
        held = (
            f"{found.get('side')} {found.get('amount')} {found.get('type')}, "
            f"venue id {found.get('id')}"
        )
        error: errors.SafeguardError
        if definite:
            error = errors.InvalidOrder(
                f"clientOrderId {cid!r} already names another order on {intent.symbol} "
                f"({held}): the venue refused this one as a duplicate; nothing was created. "
                "Use a fresh client id (or none: the guard makes one)"
            )
        else:
            self.reconciled = False
            error = errors.OutcomeUnknown(
                f"order {cid} on {intent.symbol} may or may not exist: looking it up by "
                f"client id found another order ({held}); reconcile before sending it again",
                client_order_id=cid,
                symbol=intent.symbol,
            )
        error.__cause__ = scrubbed_exception(cause)
        return error

    def _resolve(
        self, intent: OrderCall, *, unsettled: float, holder: object, recorded: bool = False
    ) -> Steps[Any]:
        """Find the order by client id: the order, ``None`` (known absent), or OutcomeUnknown.

        ``recorded``: the order comes from the journal (a reconcile), not from a send this
        call made: a look-up the exchange refuses for its symbol can never settle it (a
        journal of another venue or account), which is a ``ConfigError`` naming the record,
        not an ``OutcomeUnknown`` on every later order about an order it never sent.

        ``unsettled``: how long the venue may still act on the last send. It counts down
        only by the waits asked for here (for the window, or after a failed look-up), each by
        the time that passed across it but never more than was asked: a clock stepping
        forward (an NTP step) is not time the venue's ``recvWindow`` has run for, and "not
        found" before it has run out proves nothing. Each wait is measured on the clock as
        read on both sides of it, not from the newest time seen: after the clock stepped back
        that one stands still until the clock passes it again, and no wait would count."""
        cid = intent.client_order_id
        params = lookup_params(self.exchange_id, cid, conditional=intent.conditional)
        attempts = self.policy.retry.resolve_attempts
        now = self._last_now
        last_error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                found, absent, error, read_at = yield from self._lookup(intent, params, attempt)
            except Exception as exc:
                # A look-up that could not be made (a ban or a throttle hold on it, a ban that
                # could not be written down) settles nothing: the order may exist all the same,
                # so this is OutcomeUnknown, never "nothing was sent".
                last_error = exc
                now = self._last_now
                break
            now = self._last_now
            if found is not None:
                return found
            if absent:
                if unsettled <= 0.0:
                    return None
                # Not there yet, but the venue may still act on the send: look again later.
                now = woke((yield Sleep(unsettled))).now
                unsettled -= _waited(read_at, now, asked=unsettled)
                continue
            last_error = error
            if recorded and isinstance(error, ccxt.BadSymbol):
                raise errors.ConfigError(
                    f"order journal {self.journal.path} holds order {cid} on {intent.symbol}, "
                    "a symbol this exchange does not list (a journal of another venue or "
                    "account?); it cannot be looked up, so nothing is sent until it is settled: "
                    "check that order by hand, then move the journal aside",
                    key=str(self.journal.path),
                )
            if attempt < attempts:
                ec = classify(error) if error is not None else None
                delay = (
                    self.backoff.delay(attempt, 0.0, ec, self.rng) if ec is not None else None
                ) or self.policy.retry.base_delay_s
                now = woke((yield Sleep(delay))).now
                unsettled -= _waited(read_at, now, asked=delay)  # the venue's window ran too
        yield self._settle(cid, Status.UNKNOWN, now=now, holder=holder)
        self.reconciled = False  # the next order looks this one up again before it is sent
        # The type only: a ccxt message can carry the signed URL (the cause is scrubbed).
        why = f" (last: {type(last_error).__name__})" if last_error is not None else ""
        unknown = errors.OutcomeUnknown(
            f"order {cid} on {intent.symbol} may or may not exist: looking it up by client "
            f"order id did not settle it{why}; reconcile before sending it again",
            client_order_id=cid,
            symbol=intent.symbol,
        )
        unknown.__cause__ = None if last_error is None else scrubbed_exception(last_error)
        raise unknown

    def _settle_window(self, intent: OrderCall) -> float:
        # A per-call recvWindow lets the venue act on the send that much later than the
        # exchange's option says: wait out the longer of the two (same margin for clock skew).
        per_call = recv_window_s(intent.params.get("recvWindow"))
        if per_call is None:
            return self.settle_window_s
        return max(self.settle_window_s, per_call + CLOCK_SKEW_MARGIN_S)

    def _unsettled_at_restart(self, intent: OrderCall, entry: Entry) -> float:
        """What is left of a previous run's settle window, by the wall clock: this process
        waited for none of it, and the entry's time is all there is. Never more than one
        window (a clock stepped back since must not hold the restart for as long)."""
        window = self._settle_window(intent)
        return min(window, max(0.0, entry.updated + window - self._last_now))

    def _lookup(
        self, intent: OrderCall, params: Mapping[str, Any], attempt: int
    ) -> Steps[tuple[Any, bool, Exception | None, float]]:
        """One look-up: (order, False, None) / (None, True, None) absent / (None, False, err),
        and the clock as its last answer read it (a wait after it is measured from there)."""
        cid = intent.client_order_id
        by_id = Send("fetch_order", (cid, intent.symbol), {"params": dict(params)}, essential=True)
        budget = CallBudget(self.policy.retry.total_budget_s, self._last_now)
        yield from self._pace(CallKind.READ, by_id, self._last_now, budget)
        answer = answered((yield by_id))
        self._last_now = answer.now
        ec, _ = self._observe(by_id, answer, attempt, CallKind.READ)
        if ec is None:
            if _order_id(answer.value) is not None and order_client_id(answer.value) == cid:
                return answer.value, False, None, answer.now
            # ccxt parses anything (``{}`` too) into an order of Nones: an answer that does not
            # name our order proves neither that it exists nor that it does not.
            unnamed = ccxt.BadResponse(f"fetch_order for {cid} named no such order")
            return None, False, unnamed, answer.now
        if ec is not None and not _not_found(answer.error):
            return None, False, answer.error, answer.now
        # fetch_order said "no such order": confirm against the open orders, which some venues
        # index separately (and which a stale fetch_order cache can miss).
        params_open = (
            {"trigger": True}
            if intent.conditional and self.exchange_id.startswith("binance")
            else {}
        )
        open_send = Send(
            "fetch_open_orders", (intent.symbol,), {"params": params_open}, essential=True
        )
        yield from self._pace(CallKind.READ, open_send, answer.now, budget)
        listed = answered((yield open_send))
        self._last_now = listed.now
        ec, _ = self._observe(open_send, listed, attempt, CallKind.READ)
        if ec is not None:
            return None, False, listed.error, listed.now
        for order in listed.value or ():
            if order_client_id(order) == cid:
                return order, False, None, listed.now
        return None, True, None, listed.now

    def _edit(self, intent: OrderCall, started: float) -> Steps[Any]:
        # An edit names an existing order and sets absolute values: sending it twice leaves the
        # same order in the same state, so it retries like a setting.
        send = Send(
            "edit_order",
            (intent.edit_of, intent.symbol, intent.type, intent.side, intent.amount, intent.price),
            # The stop an edit declares is what the verdict judged it with, not part of the
            # edit (the stop itself is not moved): sent, the venue refused the edit (-1104).
            {"params": {k: v for k, v in intent.params.items() if k not in PROTECTIVE_STOP_KEYS}},
            order_permit(intent),
        )
        return (yield from self._attempts(send, CallKind.ORDER, started, retry_ambiguous=True))

    def _settle(
        self, cid: str, status: Status, *, now: float, holder: object, order_id: str | None = None
    ) -> Record:
        """Settle ``cid`` as its holder (the call that sent it, or the reconcile that claimed
        it): a write from a holder whose hold has passed to another changes nothing."""
        settle = partial(self.journal.settle, holder=holder, order_id=order_id)
        return Record(partial(settle, cid, status, now=now))

    def _abandon(self, intent: OrderCall, *, holder: object) -> None:
        """An order's steps stopped part-way (a cancelled task, Ctrl-C, a driver that closed
        them, an unexpected error) while the order may exist. No effect can be performed any
        more, so the journal is written here, at once, and the next order reconciles first:
        a caller that retries must not double an order the venue may already hold."""
        cid = intent.client_order_id
        # Failing to write it must not hide why the steps stopped: the entry is then
        # released as it stands (pending), an orphan the next reconcile settles all the same.
        with suppress(Exception):
            self.journal.settle(cid, Status.UNKNOWN, now=self._last_now, holder=holder)
        self.journal.release(cid, holder=holder)
        self.reconciled = False  # after the entry became an orphan: a reconcile sees it
        with suppress(Exception):
            self.gate.placed(intent, None, self._last_now)  # the account is re-read first

    # --- restart ----------------------------------------------------------------------------

    def reconcile(self, now: float) -> Steps[list[tuple[str, Any]]]:
        """Settle the journal's orphans by look-up; returns (client id, order|None).

        Orphans are what a previous run left unresolved and what this run gave up on
        (OutcomeUnknown, a call cut short). An order another thread or task of this process
        has on its way is its caller's to settle, and each orphan is claimed before its
        look-up, so concurrent reconciles never settle one order twice."""
        self._last_now = now
        settled: list[tuple[str, Any]] = []
        unprotected: list[tuple[str, str, Any]] = []
        holder = object()  # this reconcile's hold on the orphan it is settling
        for orphan in self.journal.orphans():
            entry = self.journal.claim(orphan.client_order_id, holder=holder)
            if entry is None:
                continue  # another reconcile has it, or it was settled meanwhile
            conditional = bool(entry.intent.get("conditional", False))
            intent = OrderCall(
                symbol=entry.symbol,
                type=str(entry.intent.get("type", "")),
                side=str(entry.intent.get("side", "buy")),
                amount=None,
                price=None,
                params=_reconcile_params(conditional, entry.intent.get("recv_window")),
                client_order_id=entry.client_order_id,
            )
            try:
                found = yield from self._resolve(
                    intent,
                    unsettled=self._unsettled_at_restart(intent, entry),
                    holder=holder,
                    recorded=True,
                )
            except BaseException:
                # Unknown (settled so by _resolve, which let it go) or cut short: an orphan
                # again, looked up by the next order's reconcile.
                self.journal.release(entry.client_order_id, holder=holder)
                self.reconciled = False
                raise
            now = self._last_now
            status = Status.ABSENT if found is None else Status.ACKED
            yield self._settle(
                entry.client_order_id, status, now=now, holder=holder, order_id=_order_id(found)
            )
            missing = None if found is None else self._missing_stop(entry, found)
            if missing is not None:
                unprotected.append((entry.client_order_id, missing, found))
            if found is None and conditional:
                stood = yield from self._entry_of_a_lost_stop(entry)
                if stood is not None:
                    unprotected.append(stood)
            settled.append((entry.client_order_id, found))
        if settled:
            yield Record(self.journal.compact)  # nothing settled, nothing to compact
        # Not simply True: an order another call gave up on meanwhile is an orphan to settle.
        self.reconciled = not self.journal.orphans()
        if unprotected:
            raise self._unprotected_at_restart(unprotected)
        return settled

    def _entry_of_a_lost_stop(self, stop: Entry) -> Steps[tuple[str, str, Any] | None]:
        """(entry id, stop id, entry order) when ``stop``, just found absent, was an entry's
        protective stop and that entry stands on the venue with something filled: the run
        died (or its task was cancelled) after the entry was answered and before its stop
        reached the venue. Settled quietly, that left a position with no stop and nothing
        said; the caller raises ProtectiveStopFailed for it, as for a stop never sent."""
        if not stop.client_order_id.endswith(protective.STOP_SUFFIX):
            return None
        entry_id = stop.client_order_id[: -len(protective.STOP_SUFFIX)]
        entry = self.journal.get(entry_id)
        if entry is None or entry.status is not Status.ACKED:
            return None
        intent = OrderCall(
            symbol=entry.symbol, type=str(entry.intent.get("type", "")),
            side=str(entry.intent.get("side", "buy")), amount=None, price=None,
            client_order_id=entry_id,
        )  # fmt: skip
        params = lookup_params(self.exchange_id, entry_id, conditional=False)
        try:
            found, absent, _, _ = yield from self._lookup(intent, params, 1)
        except errors.SafeguardError:  # a ban or a hold on the look-up
            found, absent = None, False
        if absent or (found is not None and protective.ended_unfilled(found)):
            return None  # nothing stands that the stop was for
        # Found standing, or not found out (the look-up failed): said all the same. The stop's
        # record is settled, so a quiet "unknown" here would never be said again.
        price = float(stop.intent.get("price") or math.nan)
        self._emit_stop("missing", entry.symbol, entry_id, stop.client_order_id, price, None)
        log.error(
            "entry {} on {} stands on the venue but its protective stop {} never reached it "
            "(the run stopped between the two): the position stands unprotected",
            entry_id,
            entry.symbol,
            stop.client_order_id,
        )
        return entry_id, stop.client_order_id, found

    def _missing_stop(self, entry: Entry, found: Any) -> str | None:
        """The client id of the protective stop ``entry`` declared, when the venue holds the
        entry but the stop was never sent (the run died between the two), else ``None``."""
        declared = entry.intent.get("protective_stop")
        if not isinstance(declared, Mapping) or protective.ended_unfilled(found):
            return None
        stop_id = str(declared.get("client_order_id"))
        if self.journal.get(stop_id) is not None:
            return None  # sent (or on its way): its own record settles it
        price = float(declared.get("price") or math.nan)
        self._emit_stop("missing", entry.symbol, entry.client_order_id, stop_id, price, None)
        log.error(
            "entry {} on {} was found on the venue at restart but its protective stop {} at {} "
            "was never placed: the position stands unprotected",
            entry.client_order_id,
            entry.symbol,
            stop_id,
            price,
        )
        return stop_id

    def _unprotected_at_restart(
        self, unprotected: list[tuple[str, str, Any]]
    ) -> errors.ProtectiveStopFailed:
        _, stop_id, order = unprotected[0]
        names = ", ".join(f"{entry} (stop {stop})" for entry, stop, _ in unprotected)
        symbol = order.get("symbol") if isinstance(order, Mapping) else None
        return errors.ProtectiveStopFailed(
            f"reconcile found entries a previous run sent whose protective stops were never "
            f"placed: {names}; protect or close them now (this call sent nothing; the journal "
            "is settled, so the next call goes ahead)",
            order=order,
            stop_client_order_id=stop_id,
            symbol=None if symbol is None else str(symbol),
        )


_CLOCK_ROUNDING_S = 1e-6
"""Epoch seconds as floats carry ~0.2 µs steps: a sleep that ends a rounding short of what it
asked for was waited in full (else a window could end in sleeps too short to move time)."""


def _waited(before: float, after: float, *, asked: float) -> float:
    """How much of a wait of ``asked`` seconds, read as ``before``..``after``, counts as
    waited: what passed, but nothing for a clock that stepped back and no more than asked
    for one that stepped forward meanwhile."""
    passed = after - before
    return asked if passed >= asked - _CLOCK_ROUNDING_S else max(0.0, passed)


class _Stamped:
    """A journal write run as a :class:`Record` whose refusal (``RequestBlocked``: the record
    is not on disk) the core raises itself, on its own terms, once the driver is back."""

    __slots__ = ("error", "write")

    def __init__(self, write: Callable[[], object]) -> None:
        self.write = write
        self.error: errors.RequestBlocked | None = None

    def __call__(self) -> None:
        try:
            self.write()
        except errors.RequestBlocked as exc:
            self.error = exc


def order_permit(intent: OrderCall) -> Permit:
    """What the kill switch must allow for ``intent`` (every order path asks this one rule)."""
    return Permit(reduces_only=intent.reduce_only, protective=intent.protective_stop)


def _batch_permits(intents: list[OrderCall]) -> dict[str, Permit]:
    """Per symbol, the permit its reads wake on: an opening order's if any order opens."""
    permits: dict[str, Permit] = {}
    for intent in intents:
        if intent.symbol not in permits or not intent.reduce_only:
            permits[intent.symbol] = order_permit(intent)
    return permits


def _rejudged(intent: OrderCall, send: Send, approved: OrderCall) -> tuple[OrderCall, Send]:
    """The order a fresh verdict allows: a degraded venue may shrink it (never grow it past
    what the caller asked). Same client id: it is still the one order, sent again."""
    if approved.amount is None or intent.amount is None or approved.amount >= intent.amount:
        return intent, send
    smaller = replace(intent, amount=approved.amount)
    args = (smaller.symbol, smaller.type, smaller.side, smaller.amount, smaller.price)
    return smaller, replace(send, args=args)


def _journaled(intent: OrderCall, declares: protective.StopPlan | None) -> dict[str, Any]:
    """The pending record of ``intent``; an entry's with the protective stop that follows it."""
    record = intent.describe()
    if declares is not None:
        record["protective_stop"] = {
            "client_order_id": protective.stop_client_id(intent.client_order_id),
            "price": declares.price,
            "working_type": declares.working_type,
        }
    return record


def _reconcile_params(conditional: bool, recv_window: Any) -> dict[str, Any]:
    # What the look-up needs of the original params: whether it was a trigger order (Binance
    # keeps those apart) and a per-call recvWindow (it stretches the settle window).
    params: dict[str, Any] = {"triggerPrice": 1.0} if conditional else {}
    if recv_window is not None:
        params["recvWindow"] = recv_window
    return params


def _could_be(order: Any, intent: OrderCall, amounts_sent: set[float | None]) -> bool:
    """Whether ``order``, found under the intent's client id, can be one of the sends made
    for it: the same symbol and side, and one of the amounts sent (a protective stop: its
    trigger), where both say."""
    if not isinstance(order, Mapping):
        return False
    if order.get("symbol") not in (None, intent.symbol) or order.get("side") not in (
        None,
        intent.side,
    ):
        return False
    if intent.params.get("closePosition") is True:
        # The guard's own protective stop has no amount: its trigger tells it apart (the
        # verdict put it on the tick, so ccxt's rounding leaves it as it is).
        return _same_number(
            order.get("triggerPrice") or order.get("stopPrice"),
            [intent.params.get("stopLossPrice")],
        )
    return _same_number(order.get("amount"), list(amounts_sent))


def _same_number(found: Any, sent: list[Any]) -> bool:
    """Whether ``found`` is one of ``sent`` (to float noise); an answer that does not say, or
    nothing sent to compare with, proves nothing either way."""
    known = [float(value) for value in sent if isinstance(value, int | float)]
    if not known or not isinstance(found, int | float) or not found > 0:
        return True
    return any(math.isclose(float(found), value, rel_tol=1e-9) for value in known)


def _order_id(order: Any) -> str | None:
    # dict first: ccxt's answer, on the C check, without Mapping's Python-level one.
    if isinstance(order, (dict, Mapping)) and order.get("id") is not None:
        return str(order["id"])
    return None


def _not_found(error: Exception | None) -> bool:
    return isinstance(error, ccxt.OrderNotFound)


def unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` failed for want of a connection (refused, reset, timed out, DNS, 503):
    not an answer the venue gave, nor a rate limit (ccxt files both under NetworkError)."""
    cause = exc.__cause__
    return isinstance(cause, ccxt.NetworkError) and not isinstance(cause, ccxt.DDoSProtection)


__all__ = [
    "Answer",
    "Assessment",
    "Backoff",
    "Done",
    "Effect",
    "Gate",
    "GuardCore",
    "Observer",
    "Pacer",
    "Permit",
    "Record",
    "Reply",
    "Send",
    "Sleep",
    "Steps",
    "TripSource",
    "Trips",
    "Woke",
    "answered",
    "collecting",
    "driven",
    "step",
    "woke",
]

_CLOCK_STEP_S = 1.0
"""A reply's time this far behind the newest one seen is the clock stepping back."""
