"""The kill switch: a latch that every order path obeys.

Three states, from least to most severe:

- ``ACTIVE``: everything is allowed.
- ``REDUCING``: only orders that reduce a position, and cancels.
- ``HALTED``: nothing but cancels.

The transitions are one pure function, :func:`transition` (current state, event, now, cooling
period) -> new state or :class:`Refusal`. Engaging only ever tightens: engaging an engaged
switch at the same or a lower severity changes nothing, ``REDUCING`` -> ``HALTED`` escalates,
and ``HALTED`` -> ``REDUCING`` happens only through an explicit ``resume(to=REDUCING)``.
Loosening (resume) is refused until ``cooling_period_s`` has passed since the last engage, so
a switch cannot flap.

:class:`KillSwitch` is the thin holder of that state for one process (the transitions are
in :mod:`~safeguard.killswitch._state`, the count of sends in flight that an engage drains in
:mod:`~safeguard.killswitch._inflight`, the listeners and the webhook in
:mod:`~safeguard.killswitch._notify`):

- ``permit(...)`` is the gate on the order path. It refuses with
  :class:`~safeguard._errors.TradingHalted` before any I/O and otherwise counts the send as in
  flight until the ``with`` block exits.
- ``engage(...)`` closes the in-memory latch first (new permits refuse), wakes the sleepers
  that hold a permit and every ``wait_async`` sleeper, waits (bounded by ``drain_timeout_s``)
  for the sends already past the gate, wakes the remaining ``wait`` sleepers (retry backoffs:
  a retry in progress is abandoned; they could not send meanwhile, their next permit refuses),
  then persists the state through the :class:`~safeguard.killswitch._store.StateStore`, logs,
  posts the webhook (in the background) and calls the listeners. When it returns, no order
  path can send any more. In asyncio code use ``engage_async``: a blocking ``engage`` on the
  loop's thread cannot wait for that loop's tasks (it says so in the log).
- Another process engages through the same state store (``safeguard kill``). The switch
  notices a change with one cheap ``version()`` (a ``stat``) at most every ``poll_interval_s``,
  on the order path, in ``wait`` and in a background watcher thread, and adopts the stored
  state (a resume made elsewhere re-arms this process too).
- Failing closed: a store that is corrupt, unreadable or down means ``HALTED`` (code
  ``STATE_STORE_UNAVAILABLE``), never ``ACTIVE``; a deleted state is written back; and a store
  that returns with an older, looser state than one it could not be given does not resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextvars import Token
from types import TracebackType
from typing import Any

from safeguard._clock import Clock, SystemClock
from safeguard._codes import Code
from safeguard._config import KillSwitchConfig
from safeguard._errors import ConfigError, ResumeRefused, TradingHalted
from safeguard._log import logger
from safeguard.killswitch._inflight import (
    BLOCKED_KINDS,
    CANCEL,
    OPENING,
    PermitCounts,
    SendsInFlight,
    send_kind,
)
from safeguard.killswitch._notify import Announcer, WebhookNotifier
from safeguard.killswitch._state import (
    Engage,
    Listener,
    Refusal,
    Resume,
    SwitchState,
    TradingState,
    already_holds,
    refusal_code,
    transition,
)
from safeguard.killswitch._store import FileStateStore, KeepsCopy, OwesWrites, StateStore


@functools.lru_cache(maxsize=16)
def _refusal_text(state: SwitchState, code: Code) -> str:
    """The refusal's message, formatted once per state: every send the state refuses (a
    burst of them right after an engage) says the same."""
    return (
        f"{code}: kill switch is {state.state} since {state.since_iso} "
        f"({state.code}: {state.reason}; by {state.by})"
    )


def _text(name: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _timeout(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"timeout must be a number of seconds, got {value!r}")
    if not 0.0 <= value < float("inf"):
        raise ValueError(f"timeout must be finite and non-negative, got {value!r}")
    return float(value)


def _target(state: object) -> TradingState:
    if not isinstance(state, TradingState):
        try:
            return TradingState(str(state))
        except ValueError:
            raise ValueError(
                f"state must be one of ACTIVE, REDUCING, HALTED; got {state!r}"
            ) from None
    return state


class _Permit:
    """One send through the gate. Checked on entry, counted until exit."""

    __slots__ = ("_kind", "_loop_thread", "_switch", "_token")

    def __init__(self, switch: KillSwitch, kind: int) -> None:
        self._switch = switch
        self._kind = kind
        self._token: Token[PermitCounts] | None = None
        self._loop_thread: int | None = None

    def __enter__(self) -> None:
        self._token, self._loop_thread = self._switch._enter(self._kind)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._switch._sends.remove(self._kind, self._token, self._loop_thread)


class KillSwitch:
    """The process's view of the latch. Thread-safe; usable from asyncio code.

    ``store`` defaults to a :class:`~safeguard.killswitch._store.FileStateStore` on
    ``config.state_dir``. Building one reads the store and starts nothing: :meth:`start` (or
    ``with KillSwitch(...) as switch:``) starts a daemon thread that polls the store every
    ``poll_interval_s`` (``watch``, default ``config.watch_state_file``) and installs the
    signal handler (``config.install_signal_handler``); :meth:`close` stops both and flushes
    notifications. Without them the switch still gates, engages and notices another process's
    engage on the order path; ``guard()`` starts the switch it builds.
    """

    def __init__(
        self,
        config: KillSwitchConfig,
        *,
        clock: Clock | None = None,
        store: StateStore | None = None,
        notifier: WebhookNotifier | None = None,
        watch: bool | None = None,
    ) -> None:
        if not isinstance(config, KillSwitchConfig):
            raise ValueError(f"config must be a KillSwitchConfig, got {type(config).__name__}")
        self._config = config
        self._clock: Clock = clock if clock is not None else SystemClock()
        if store is None:
            store = FileStateStore(config.state_dir)
        self._store: StateStore = store
        if notifier is None and config.webhook_url is not None:
            notifier = WebhookNotifier.from_config(config)
        self._announcer = Announcer(notifier, str(store))

        lock = self._lock = threading.Lock()
        self._changed = threading.Condition(lock)  # generation moved: wakes wait()
        # Sleepers that hold a permit themselves: an engage must wake them before it drains,
        # or it would wait on them. Plain sleepers hold nothing, cannot send (their next
        # permit refuses) and are woken after the drain, so they don't compete with it.
        self._changed_holding = threading.Condition(lock)
        self._sends = SendsInFlight(lock, f"safeguard_killswitch_{id(self)}")
        self._generation = 0
        self._async_wakers: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._refresh_lock = threading.Lock()
        self._refreshing: int | None = None  # the thread refreshing now
        self._next_poll = 0.0
        self._seen_version: object = None
        self._closed = threading.Event()
        self._previous_signal: Any = None
        self._store_error: str | None = None
        self._unpersisted: SwitchState | None = None  # a tightening the store never got
        self._persist_problem = ""  # why, when it did not get it

        self._state = self._load_initial()
        if self._state.state is not TradingState.ACTIVE:
            logger.warning(
                "kill switch starts {}: {} (code {}, by {}, since {})",
                self._state.state,
                self._state.reason,
                self._state.code,
                self._state.by,
                self._state.since_iso,
            )
        self._watching = config.watch_state_file if watch is None else watch
        self._watcher: threading.Thread | None = None
        self._started = False

    def start(self) -> KillSwitch:
        """Install the signal handler and start the watcher thread, as configured. Call it
        once, from the main thread when the signal handler is on; again, it does nothing."""
        if self._closed.is_set():
            raise ValueError("start: this kill switch is closed")
        if self._started:
            return self
        if self._config.install_signal_handler:
            self._install_signal_handler()  # first: it may refuse, and leave no thread behind
        if self._watching:
            self._watcher = threading.Thread(
                target=self._watch, name="safeguard-killswitch-watch", daemon=True
            )
            self._watcher.start()
        self._started = True
        return self

    # --- reading -------------------------------------------------------------------------

    @property
    def state(self) -> SwitchState:
        """The current state. Cheap: one attribute read (plus a rate-limited ``stat``)."""
        self._refresh()
        return self._state

    @property
    def config(self) -> KillSwitchConfig:
        return self._config

    @property
    def store(self) -> StateStore:
        return self._store

    @property
    def unpersisted(self) -> tuple[SwitchState, str] | None:
        """A tightening this process holds in memory only, and why the store did not take it
        (``None`` when the store has every engage made here). Other processes don't see it."""
        owed = self._unpersisted
        return None if owed is None else (owed, self._persist_problem)

    # --- the gate ------------------------------------------------------------------------

    def permit(self, *, reduces_only: bool, is_cancel: bool = False) -> _Permit:
        """Gate one send: ``with switch.permit(reduces_only=...): send()``.

        ``is_cancel``: a send that only takes risk off (a cancel, or a reduce-only stop-loss
        protecting a position), allowed in every state. Entering raises
        :class:`TradingHalted` (code ``TRADING_HALTED`` or ``TRADING_REDUCING``) when the state
        forbids the send; nothing has been sent then.
        Otherwise the send counts as in flight until the block exits, and an ``engage`` waits
        for it.
        """
        return _Permit(self, send_kind(reduces_only, is_cancel))

    def _enter(self, kind: int) -> tuple[Token[PermitCounts], int | None]:
        self._refresh()
        # Sends made by asyncio tasks are counted per event-loop thread: a blocking engage on
        # that thread cannot wait for them (they only progress when it returns).
        loop_thread = threading.get_ident() if asyncio._get_running_loop() else None
        with self._lock:  # the conditions' lock itself: the order path skips their wrappers
            current = self._state
            code = (
                None
                if current.state is TradingState.ACTIVE
                else refusal_code(
                    current.state, reduces_only=kind != OPENING, is_cancel=kind == CANCEL
                )
            )
            if code is None:
                self._sends.add_locked(kind, loop_thread)
        if code is not None:
            # Built outside the lock: an engage draining on it must not wait for a refusal.
            raise TradingHalted(
                _refusal_text(current, code),
                state=current.state.value,
                reason=current.reason,
                code=code,
            )
        return self._sends.hold(kind), loop_thread

    # --- sleeping ------------------------------------------------------------------------

    def wait(
        self, timeout: float, *, reduces_only: bool | None = None, is_cancel: bool = False
    ) -> bool:
        """Sleep up to ``timeout`` s (real time); return ``True`` early if the switch engages.

        Use it for every backoff on the order path, so a retry in progress is abandoned the
        moment the switch engages (the next ``permit`` then refuses). ``reduces_only`` (and
        ``is_cancel``), as for :meth:`permit`, name the send the sleep delays: the sleep then
        also ends at once while the switch forbids that send, even if it engaged just before
        the sleep began (say, from a retry hook).
        """
        seen, deadline = self._generation, time.monotonic() + _timeout(timeout)
        held = self._sends.sleeping_for(reduces_only, is_cancel)
        changed = self._changed_holding if any(held) else self._changed
        while (pause := self._pause(seen, deadline, held)) > 0:
            with changed:
                changed.wait_for(lambda: self._generation != seen, pause)
        return self._woken(seen, held)

    async def wait_async(
        self, timeout: float, *, reduces_only: bool | None = None, is_cancel: bool = False
    ) -> bool:
        """``wait`` for asyncio code: never blocks the event loop."""
        seen, deadline = self._generation, time.monotonic() + _timeout(timeout)
        held = self._sends.sleeping_for(reduces_only, is_cancel)
        loop = asyncio.get_running_loop()
        waker: asyncio.Future[None] = loop.create_future()
        entry = (loop, waker)
        with self._changed:
            self._async_wakers.add(entry)
        try:
            while (pause := self._pause(seen, deadline, held)) > 0:
                await asyncio.wait((waker,), timeout=pause)
        finally:
            with self._changed:
                self._async_wakers.discard(entry)
        return self._woken(seen, held)

    def _woken(self, seen: int, held: PermitCounts) -> bool:
        # A sleeper holding a permit the state now forbids is what an engage is draining: it
        # must stop sleeping (and give up its retry) even if it began after the engage.
        forbidden = any(held[kind] for kind in BLOCKED_KINDS[self._state.state])
        return self._generation != seen or forbidden

    def _pause(self, seen: int, deadline: float, held: PermitCounts) -> float:
        """How long a sleeper blocks before looking again; 0 when it should stop."""
        self._refresh()
        if self._woken(seen, held):
            return 0.0
        return max(0.0, min(deadline - time.monotonic(), self._config.poll_interval_s))

    # --- transitions ---------------------------------------------------------------------

    def engage(
        self,
        reason: str,
        *,
        by: str = "manual",
        state: TradingState = TradingState.HALTED,
        code: str = Code.MANUAL,
    ) -> SwitchState:
        """Tighten to ``state``. Returns once no order path can send what it forbids.

        Idempotent: engaging at the same or a lower severity returns the current state and
        does nothing else. Called from inside a ``permit`` block of this thread, it does not
        wait for that block (it cannot finish while we wait); from an event loop thread, use
        :meth:`engage_async` so sends held by other tasks can finish.
        """
        change = self._engage_change(reason, by=by, state=state, code=code)
        if change is None:
            # Already engaged, maybe by a thread still draining: the promise holds for us too.
            self._sends.drain(self._state.state, self._config.drain_timeout_s)
            return self._state
        previous, new = change
        left = self._sends.drain(new.state, self._config.drain_timeout_s)
        self._wake_sleepers()
        self._finish_engage(previous, new, left)
        return self._state

    def engage_async(
        self,
        reason: str,
        *,
        by: str = "manual",
        state: TradingState = TradingState.HALTED,
        code: str = Code.MANUAL,
    ) -> asyncio.Future[SwitchState]:
        """``engage`` for asyncio code: ``await switch.engage_async(...)``. Call it on the loop.

        The latch closes before this returns (new permits refuse at once, whatever happens to
        the caller next); the drain, the persisting and the announcing then run on a task of
        their own that never blocks the loop and that a cancelled caller does not cancel: an
        engage once begun is finished: when the loop itself ends first (``asyncio.run``
        cancels every task left), it is persisted and announced there and then, the drain cut
        short. Awaiting it waits for all of that.
        """
        change = self._engage_change(reason, by=by, state=state, code=code)
        task = asyncio.ensure_future(self._finish_async(change))
        _ENGAGING.add(task)
        task.add_done_callback(_ENGAGING.discard)
        return asyncio.shield(task)

    async def _finish_async(self, change: tuple[SwitchState, SwitchState] | None) -> SwitchState:
        target = self._state.state if change is None else change[1].state
        deadline = time.monotonic() + self._config.drain_timeout_s
        try:
            while (left := self._sends.blocking_others(target)) and time.monotonic() < deadline:
                await asyncio.sleep(0.0005)  # other tasks of this loop finish their sends
        except asyncio.CancelledError:
            # Only the loop's end cancels this task (asyncio.run cancels every task left when
            # the bot's main coroutine ends): the engage is finished here, blocking a closing
            # loop for one write, rather than left in memory unpersisted and unannounced.
            if change is not None:
                self._wake_sleepers()
                self._finish_engage(*change, self._sends.blocking_others(target), cut_short=True)
            raise
        if change is not None:
            self._wake_sleepers()
            await asyncio.to_thread(self._finish_engage, change[0], change[1], left)
        return self._state

    def resume(
        self, *, by: str, to: TradingState = TradingState.ACTIVE, reason: str = "resumed"
    ) -> SwitchState:
        """Re-arm explicitly. Raises :class:`ResumeRefused` during the cooling period.

        The decision is made against the stored state under the store's lock, so a resume
        can never overwrite an engage another process made a moment earlier.
        """
        event = Resume(_text("by", by), _target(to), _text("reason", reason))
        now = self._clock.time()
        with self._store.lock():
            try:
                stored = self._store.load()
            except ConfigError as exc:
                # A resume is the operator's way out of a corrupt store; the cooling period
                # still counts from the engage this process knows of.
                logger.error("kill switch state store {} unreadable: {}", self._store, exc)
                stored = None
            # The newer of the two: the store, unless this process holds a later state the
            # store never got (an engage while it was down); that one's cooling period counts.
            mine = self._state
            current = stored if stored is not None and stored.since >= mine.since else mine
            outcome = transition(
                current, event, now=now, cooling_period_s=self._config.cooling_period_s
            )
            if isinstance(outcome, Refusal):
                logger.warning("kill switch {} (asked by {})", outcome.message, by)
                raise ResumeRefused(outcome.message, code=outcome.code, retry_at=outcome.retry_at)
            if outcome is current:
                changed = self._adopt(current)
            else:
                self._store.save(outcome)
                self._seen_version = self._store.version()
                self._store.append_history(_event("resume", outcome, current))
        # Listeners run after the store's lock is released: one that engages must not wait
        # on a lock its own thread holds.
        if outcome is current:
            if changed:
                self._adopted(current)
            return current
        with self._changed:
            previous, self._state = self._state, outcome
        logger.warning(
            "kill switch resumed to {} by {} (was {}: {})",
            outcome.state,
            outcome.by,
            current.state,
            current.reason,
        )
        self._announcer.announce("resume", outcome, previous, persisted=True)
        return outcome

    def _engage_change(
        self, reason: str, *, by: str, state: TradingState, code: str
    ) -> tuple[SwitchState, SwitchState] | None:
        change = self._close_latch(reason, by=by, state=state, code=code)
        if change is None:
            # Nothing to tighten as far as this process knows; but another process may have
            # resumed since our last poll, and this engage must not be lost to that: a store
            # that answers from a copy (Redis) reads the shared state first.
            if isinstance(self._store, KeepsCopy):
                self._store.resync()
            self._refresh(force=True)
            change = self._close_latch(reason, by=by, state=state, code=code)
        if change is None:
            self._owe_under_stand_in(reason, by=by, state=state, code=code)
        return change

    def _owe_under_stand_in(self, reason: str, *, by: str, state: TradingState, code: str) -> None:
        """A decision looser than the stand-in of a store that cannot be reached (REDUCING
        asked while the fleet's Redis is down and this bot holds HALTED): the gate stays at the
        stand-in, but the decision is the fleet's state once the store answers again, so the
        store keeps it to write then (only where Redis does not hold one at least as tight)."""
        current, store = self._state, self._store
        unavailable = Code.STATE_STORE_UNAVAILABLE
        if current.code != unavailable or code == unavailable or not isinstance(store, OwesWrites):
            return
        target, why = _target(state), _text("reason", reason)
        decision = SwitchState(target, why, code, by, self._clock.time())
        store.owe(decision)
        logger.warning(
            "kill switch: {} by {} ({}) kept for {}; this bot stays {} until it answers",
            decision.state,
            decision.by,
            decision.reason,
            store,
            current.state,
        )

    def _close_latch(
        self, reason: str, *, by: str, state: TradingState, code: str
    ) -> tuple[SwitchState, SwitchState] | None:
        target = _target(state)
        if target is TradingState.ACTIVE:
            raise ValueError("state: engage needs REDUCING or HALTED; use resume() to loosen")
        event = Engage(target, _text("reason", reason), _text("code", code), _text("by", by))
        now = self._clock.time()
        with self._changed:
            previous = self._state
            outcome = transition(
                previous, event, now=now, cooling_period_s=self._config.cooling_period_s
            )
            if outcome is previous or isinstance(outcome, Refusal):
                return None
            self._state = outcome
            self._generation += 1
            self._changed_holding.notify_all()
        self._wake_async()
        return previous, outcome

    def _wake_sleepers(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def _finish_engage(
        self, previous: SwitchState, new: SwitchState, left: int, *, cut_short: bool = False
    ) -> None:
        if left:
            logger.error(
                "kill switch engaged but {} send(s) already past the gate did not finish {}; "
                "they may still reach the venue",
                left,
                "before the event loop closed"
                if cut_short
                else f"within {self._config.drain_timeout_s} s",
            )
        persisted, kept = self._persist_engage(new)
        if kept is not None:
            # Another process engaged at least as tightly first: its engagement holds (and
            # it announced it), this one changed nothing.
            logger.warning(
                "kill switch engage by {} ({}) changed nothing: already {} by {} ({})",
                new.by,
                new.reason,
                kept.state,
                kept.by,
                kept.reason,
            )
            return
        logger.critical(
            "kill switch {}: {} (code {}, by {}; was {})",
            new.state,
            new.reason,
            new.code,
            new.by,
            previous.state,
        )
        self._announcer.announce("engage", self._state, previous, persisted=persisted)

    def _persist_engage(
        self, new: SwitchState, event: str = "engage", *, alarm: bool = True
    ) -> tuple[bool, SwitchState | None]:
        """Write ``new`` unless the store already holds a state at least as tight (written by
        another process since we last looked): then that one is kept, adopted and returned.
        Returns (persisted, the stored state kept instead of ``new``)."""
        adopted = kept = None
        try:
            with self._store.lock():
                try:
                    stored = self._store.load()
                except Exception:
                    stored = None  # overwritten below by a state at least as tight
                if isinstance(self._store, OwesWrites) and self._store.owes(new):
                    # What it answered is its own memory of an engage it could not write.
                    raise OSError(f"{self._store} holds it in memory only, to write it later")
                if stored == new:
                    # Our own engage, already put there by a refresh that found the store
                    # behind the latch (another engage in this process, meanwhile): persisted.
                    self._unpersisted = None
                elif stored is not None and already_holds(stored, new.state, new.code):
                    # Another process engaged meanwhile: keep theirs. Never loosen it, and an
                    # engagement as tight is idempotent (its time starts the cooling period).
                    self._unpersisted = None
                    kept = stored
                    adopted = stored if self._adopt(stored) else None
                else:
                    self._store.save(new)
                    self._unpersisted = None
                    self._seen_version = self._store.version()
                    self._store.append_history(_event(event, new, stored))
        except Exception as exc:  # any store failure: the latch holds in memory regardless
            self._unpersisted = new
            self._persist_problem = f"{type(exc).__name__}: {exc}"
            (logger.critical if alarm else logger.debug)(
                "kill switch engaged in memory only: could not persist to {}: {}",
                self._store,
                exc,
            )
            return False, None
        if adopted is not None:
            self._adopted(adopted)  # listeners run outside the store's lock
        return True, kept

    # --- noticing other processes ----------------------------------------------------------

    def refresh(self) -> SwitchState:
        """Look at the store now (ignoring ``poll_interval_s``) and return the state."""
        self._refresh(force=True)
        return self._state

    def _refresh(self, *, force: bool = False) -> None:
        if self._unpersisted is not None:
            self._pay_owed()
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        if not self._refresh_lock.acquire(False) and not self._await_refresh(force):
            return
        self._refreshing = threading.get_ident()
        try:
            self._next_poll = now + self._config.poll_interval_s
            try:
                version = self._store.version()
                unchanged = version == self._seen_version and version is not None
                if unchanged and self._store_error is None:
                    return
                # An engage in this process between this load and the adoption below must not
                # be overwritten by the (older) state just read: remember where we were.
                generation_at_load = self._generation
                stored = self._store.load()
            except Exception as exc:  # corrupt, unreadable, or a store that is down: halt
                self._fail_closed(exc)
                return
            self._store_error = None
            self._seen_version = version
            current, owed = self._state, self._unpersisted
            if stored is None or (
                owed is not None
                and stored.state.severity < owed.state.severity
                and stored.since < owed.since
            ):
                # The state vanished, or the store is back holding a looser state older than
                # the one we could not write to it (an engage, or halting while it was
                # unreadable): that is no resume. Put ours back.
                if current.state is not TradingState.ACTIVE:
                    self._persist_engage(current, "restore", alarm=owed is None)
                return
            if self._adopt(stored, generation_at_load):
                self._adopted(stored)
        finally:
            self._refreshing = None
            self._refresh_lock.release()

    def _await_refresh(self, force: bool) -> bool:
        """Another refresh is under way. A forced one (an engage that found nothing to
        tighten, asking whether another process resumed) waits for it and then looks itself:
        deciding on the state from before that read would take an engage made after a resume
        elsewhere for one already made, and lose it. True once the lock is held."""
        if not force or self._refreshing == threading.get_ident():
            return False  # an ordinary poll skips; a refresh cannot wait for itself
        logger.debug("kill switch: an engage waits for a refresh under way in another thread")
        if self._refresh_lock.acquire(timeout=self._config.drain_timeout_s):
            return True
        logger.warning(
            "kill switch: a refresh in another thread held the store for over {} s; deciding "
            "on the state this process holds",
            self._config.drain_timeout_s,
        )
        return False

    def _pay_owed(self) -> None:
        """Write the engage the store did not take, at the first look at the state after (each
        order's gate is one), not at the next poll: a process killed once the store is back
        must leave it on disk. Tried again quietly; its alarm was raised when it failed."""
        if not self._refresh_lock.acquire(False):
            return  # a refresh is at it now: it persists or finds the owed engage
        try:
            if self._unpersisted is None:
                return
            if self._state.state is TradingState.ACTIVE:
                self._unpersisted = None  # resumed since (the resume is in the store)
                return
            self._persist_engage(self._state, alarm=False)
        finally:
            self._refresh_lock.release()

    def _adopt(self, stored: SwitchState, generation_at_load: int | None = None) -> bool:
        """Take the stored state as ours; True if it changed (then call :meth:`_adopted`).

        A looser stored state is refused when this process tightened the switch after the
        store was read (``generation_at_load``): that read predates our engage, and adopting
        it would loosen a fresh HALTED. The next refresh reads the store again.
        """
        with self._changed:
            previous = self._state
            if stored == previous:
                return False
            if (
                generation_at_load is not None
                and self._generation != generation_at_load
                and stored.state.severity < previous.state.severity
            ):
                self._seen_version = None
                return False
            self._state = stored
            tightened = stored.state.severity > previous.state.severity or (
                stored.state is not TradingState.ACTIVE and stored.since != previous.since
            )
            if tightened:
                self._generation += 1
                self._changed.notify_all()
                self._changed_holding.notify_all()
        if tightened:
            self._wake_async()
        return True

    def _adopted(self, stored: SwitchState) -> None:
        logger.warning(
            "kill switch is now {} (set by {} elsewhere: {}; code {})",
            stored.state,
            stored.by,
            stored.reason,
            stored.code,
        )
        self._announcer.call_listeners(stored)

    def _load_initial(self) -> SwitchState:
        try:
            self._seen_version = self._store.version()
            stored = self._store.load()
        except Exception as exc:
            self._store_error = str(exc)
            logger.error("kill switch HALTED: state store {} is unreadable: {}", self._store, exc)
            halted = self._halted(exc)
            self._persist_engage(halted)
            return halted
        if stored is None:
            return SwitchState(TradingState.ACTIVE, "", "", "", self._clock.time())
        return stored

    def _fail_closed(self, exc: Exception) -> None:
        if str(exc) == self._store_error:
            return  # already HALTED for this very problem; don't rewrite it every poll
        self._store_error = str(exc)
        logger.error("kill switch HALTED: state store {} is unreadable: {}", self._store, exc)
        with self._changed:
            previous = self._state
            # An existing HALTED keeps its reason (and cooling period); anything looser halts.
            halted = previous if previous.state is TradingState.HALTED else self._halted(exc)
            if halted is not previous:
                self._state = halted
                self._generation += 1
                self._changed.notify_all()
                self._changed_holding.notify_all()
        # Persisting replaces the unreadable file, so every process agrees on the HALTED.
        self._persist_engage(halted)
        if halted is not previous:
            self._wake_async()
            self._announcer.call_listeners(halted)

    def _halted(self, exc: Exception) -> SwitchState:
        return SwitchState(
            TradingState.HALTED,
            f"kill switch state unreadable, failing closed: {exc}",
            Code.STATE_STORE_UNAVAILABLE,
            f"safeguard:{socket.gethostname()}:{os.getpid()}",
            self._clock.time(),
        )

    def _watch(self) -> None:
        while not self._closed.wait(self._config.poll_interval_s):
            try:
                self._refresh()
            except Exception:  # a watcher that dies silently would stop the kill from landing
                logger.exception("kill switch watcher: refresh failed")

    # --- telling the world -----------------------------------------------------------------

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(state)`` after every change (here or seen from another process).

        Returns a function that removes it. Listeners run in the thread that made or noticed
        the change; an exception in one is logged and never stops the switch.
        """
        return self._announcer.add_listener(callback)

    def _wake_async(self) -> None:
        with self._changed:
            wakers = list(self._async_wakers)
        for loop, future in wakers:
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, future)

    # --- the signal and the end ------------------------------------------------------------

    def _install_signal_handler(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("install_signal_handler: signal handlers need the main thread")
        signum = signal.Signals[self._config.signal]

        def handler(received: int, frame: object) -> None:
            # The handler runs between bytecodes of the main thread, which may hold the lock;
            # engaging from a fresh thread cannot deadlock on it.
            threading.Thread(
                target=self.engage,
                args=(f"signal {signal.Signals(received).name} received",),
                kwargs={"by": f"signal:{os.getpid()}"},
                name="safeguard-killswitch-signal",
                daemon=True,
            ).start()

        self._previous_signal = signal.signal(signum, handler)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the watcher, restore the signal handler, flush pending notifications."""
        self._closed.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout)
        if self._previous_signal is not None:
            with contextlib.suppress(ValueError):
                signal.signal(signal.Signals[self._config.signal], self._previous_signal)
            self._previous_signal = None
        self._announcer.close(timeout)

    def __enter__(self) -> KillSwitch:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"KillSwitch({self._state.state}, store={self._store})"


_ENGAGING: set[asyncio.Task[SwitchState]] = set()
"""The async engages still draining or persisting: held until done (an event loop keeps only
weak references to its tasks)."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _event(kind: str, state: SwitchState, previous: SwitchState | None) -> dict[str, Any]:
    return {
        "event": kind,
        "state": state.state.value,
        "reason": state.reason,
        "code": state.code,
        "by": state.by,
        "since": state.since,
        "previous": previous.state.value if previous is not None else None,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "recorded_at": time.time(),
    }


__all__ = [
    "Engage",
    "KillSwitch",
    "Listener",
    "Refusal",
    "Resume",
    "ResumeRefused",
    "SwitchState",
    "TradingState",
    "refusal_code",
    "transition",
]
