"""One simulated world: a venue, a population of guarded bots, the seed's faults, the checks.

Everything runs in this process on the venue's :class:`~safeguard._clock.ManualClock`: the bots
step bar by bar, every call goes through a real guarded ccxt client (sync or async) in process,
and backoffs spend simulated time. A bot's guard is a *process*: killing it means abandoning
its guarded exchange where it stands (no ``finally`` of the guard runs, no journal record is
written after the kill, its file locks go as a dead process's do) and building a new one from
the same state directory, exactly as a restarted bot would.

Async bots run on an event loop whose default executor runs its work inline and whose clock is
the venue's (a timer falls due when simulated time reaches it, and a loop with nothing to do
but wait for a timer moves simulated time there), so the order in which tasks interleave
depends on the seed alone and a failing seed replays exactly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import random
import selectors
import shutil
import tempfile
import traceback
from collections import Counter, deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard._errors import OutcomeUnknown, SafeguardError
from safeguard._log import logger
from safeguard.fleet._redis_store import RedisStateStore
from safeguard.guard._aio import AsyncGuardedExchange
from safeguard.guard._core import Done, Effect, Record, Send, Steps, driven, step
from safeguard.guard._events import later
from safeguard.guard._holder import StreamHolder
from safeguard.guard._journal import REUSABLE, OrderJournal, PendingWrite
from safeguard.guard._pacing import ladder_pace
from safeguard.guard._sync import GuardedExchange
from safeguard.guard._throttle import registry_for
from safeguard.killswitch._ladder import run_ladder, run_ladder_async
from safeguard.killswitch._store import FileStateStore, decode_state
from safeguard.killswitch._switch import KillSwitch, SwitchState, TradingState
from safeguard.sim._fleet import WAIT_S, RedisServer, fleet_settings, redis_binary, wait_until
from safeguard.sim._schedule import (
    BAR_S,
    FLEET_KINDS,
    STREAM_KINDS,
    VENUE_KINDS,
    Fault,
    draw_schedule,
    draw_triggers,
    venue_plan,
)
from safeguard.sim._storage import ReadOnly, disk_full, unrestricted
from safeguard.testing import sandbox_policy, strip_attached_stops
from safeguard.venue import Fill, FundingPayment, Liquidation, Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._markets import MONEY_SCALE

T = TypeVar("T")

SYMBOLS = ("BTCUSDT", "ETHUSDT")
CCXT_SYMBOLS = tuple(f"{s[:-4]}/USDT:USDT" for s in SYMBOLS)
WALLET = 20_000.0
START = 1_767_225_600.0
SECRET_PREFIX = "sg-sim-secret-"
JOURNALED_SENDS = frozenset({"create_order"})
"""The sends an ``after_send`` kill lands after: the journaled ones, whose orphan the restart
must settle (a kill after a cancel or an edit leaves nothing in the journal to settle)."""
TRACE_LINES = 40
LINK_DOWN = "fleet link down"
"""What the oracle calls a member's halt for its lost link to Redis (the store's
``on_disconnect``): it ends when the link is back, not by a resume."""
FLEET = (2, 3)
"""The bots (by index: the cancel/replace loop and the restarting bot) that share one kill
switch through the world's Redis when it has one (fleet mode)."""
STREAM_TURNS = 40
"""Event-loop turns given to the held streams after each bar's move of the venue."""


class SimCrash(BaseException):
    """The bot's process is killed here. A ``BaseException`` so that no ``except Exception``
    in the product runs on the way out, as none would in a killed process."""


# --- the inline executor: asyncio.to_thread without threads --------------------------------


class InlineExecutor(concurrent.futures.ThreadPoolExecutor):
    """Runs each job at once on the submitting thread (asyncio insists on a thread pool; this
    one never starts a thread): the event loop still awaits the job (so
    tasks interleave there), but in an order fixed by the seed, not by a thread scheduler."""

    def submit(
        self, fn: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # a SimCrash in a job is the awaiting task's crash
            future.set_exception(exc)
        return future


# --- the event loop on simulated time ------------------------------------------------------


class SimSelector(selectors.SelectSelector):
    """Never waits on the wall clock: a loop that would sleep until its next timer moves
    simulated time there instead (``idle(seconds)``), and one with nothing left to wait for
    raises (it would hang for ever)."""

    def __init__(self, idle: Callable[[float], None]) -> None:
        super().__init__()
        self._idle = idle

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        ready: list[tuple[Any, int]] = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            raise RuntimeError("the sim's event loop waits on nothing that can ever happen")
        self._idle(timeout)
        return ready


class SimEventLoop(asyncio.SelectorEventLoop):
    """An event loop whose time is the venue's: ``asyncio.sleep``, ``wait_for`` and ccxt's
    timers (the held streams' retry, the in-memory socket's poll, keep-alives) fall due in
    simulated time, at points the seed fixes, not when the machine gets round to them."""

    def __init__(self, clock: ManualClock, idle: Callable[[float], None]) -> None:
        super().__init__(SimSelector(idle))
        self._sim_clock = clock
        # Seconds since the loop was made: asyncio runs a timer once the time is past it by
        # its clock resolution (1 ns), which a float near the venue's epoch cannot show.
        self._origin = clock.monotonic()
        self.set_default_executor(InlineExecutor())

    def time(self) -> float:
        return self._sim_clock.monotonic() - self._origin


# --- the clock a bot's guard reads --------------------------------------------------------


class SkewedClock:
    """The venue's time plus an offset that a clock-jump fault moves (an NTP step, a VM
    resumed): ``time()`` jumps, ``monotonic()`` never does."""

    def __init__(self, base: ManualClock) -> None:
        self.base = base
        self.offset = 0.0

    def time(self) -> float:
        return self.base.time() + self.offset

    def monotonic(self) -> float:
        return self.base.monotonic()


# --- a store whose save can be killed mid-engage ------------------------------------------


def _killed_mid_engage(process: BotProcess, stage: str) -> None:
    """Where an armed mid-engage kill lands in a store: ``before_save`` (nothing written) or
    ``after_save`` (the state written, its history record not)."""
    if process.take_crash("mid_engage", stage=stage):
        raise SimCrash(f"killed mid-engage, {stage.replace('_', ' the ')}")


class KillableStore(FileStateStore):
    """The kill switch's file store; when armed, the process dies inside the engage, before
    the state is saved or between the save and the history record."""

    def __init__(self, directory: Path, process: BotProcess) -> None:
        super().__init__(directory)
        self._process = process

    def save(self, state: SwitchState) -> None:
        _killed_mid_engage(self._process, "before_save")
        super().save(state)

    def append_history(self, event: Any) -> None:
        _killed_mid_engage(self._process, "after_save")
        super().append_history(event)


class KillableRedisStore(RedisStateStore):
    """A fleet member's store, killable mid-engage like :class:`KillableStore`. It confirms
    every engage it hears at once: in the simulator no send of this member can be in flight
    while another bot engages (they all run on the world's thread), and the member adopts the
    change on that thread when the world lets it look (``refresh``) before it moves again."""

    def __init__(self, process: BotProcess, policy: Policy, url: str) -> None:
        super().__init__(policy.fleet, url=url, clock=process.clock)
        self._process = process
        self.add_listener(self._confirm)

    def _confirm(self, token: str | None) -> None:
        if token is not None:
            self.ack(token)

    def save(self, state: SwitchState) -> None:
        _killed_mid_engage(self._process, "before_save")
        super().save(state)

    def append_history(self, event: Any) -> None:
        _killed_mid_engage(self._process, "after_save")
        super().append_history(event)

    def owes_a(self, state: TradingState) -> bool:
        """Whether an engage to ``state`` (or tighter) waits in this store's memory only."""
        with self._lock:
            owed = self._owed
        return owed is not None and owed.state.severity >= state.severity

    def knows_exactly(self, state: SwitchState) -> bool:
        """Whether this member's copy is ``state`` and it owes Redis nothing."""
        with self._lock:
            return self._known == state and self._owed is None

    def knows(self) -> TradingState:
        """The tightest state this member could write back into an empty Redis."""
        with self._lock:
            known, owed = self._known, self._owed
        states = [s.state for s in (known, owed) if s is not None]
        return max(states, key=lambda s: s.severity, default=TradingState.ACTIVE)


# --- the faces: the guard's own drivers, killable between effects -------------------------


class _SimMixin:
    """What both killable faces share: the checks around each effect."""

    _OWN = frozenset({"_raw", "_rt", "_cache", "_sim", "_generation"})
    _sim: BotProcess
    _generation: int
    """The life of the process this face belongs to: a task of a killed process that the
    event loop wakes later must die, not go on inside the restarted one."""

    def _before(self, effect: Effect) -> None:
        sim = self._sim
        if sim.dead or sim.generation != self._generation:
            raise SimCrash("the process is dead")
        if sim.in_reconcile and sim.take_crash("mid_reconcile"):
            raise SimCrash("killed mid-reconcile")

    def _after(self, effect: Effect) -> None:
        sim = self._sim
        if sim.dead or sim.generation != self._generation:
            raise SimCrash("the process is dead")
        if isinstance(effect, Record) and isinstance(effect.run, PendingWrite):
            if effect.run.error is None:
                sim.world.judged(sim, effect.run)
                if sim.take_crash("after_record"):
                    sim.tear_allowed = True  # the send never left: its record may be torn
                    raise SimCrash("killed between the journal record and the send")
        elif (
            isinstance(effect, Send)
            and effect.method in JOURNALED_SENDS
            and sim.take_crash("after_send")
        ):
            raise SimCrash(f"killed after {effect.method} was sent, before its answer")


class SimGuardedExchange(_SimMixin, GuardedExchange):
    # GuardedExchange._run, with the kill checks around each effect, and a killed drive left
    # unclosed (a dead process settles nothing and engages nothing on its way out).
    def _run(self, steps: Steps[T]) -> T:
        core = self._rt.core
        with later(core.hooks) as held, core.collecting() as trips:
            steps = driven(steps, trips, held)
            try:
                effect = step(steps, None)
                while not isinstance(effect, Done):
                    self._before(effect)
                    reply = self._perform(effect)
                    self._after(effect)
                    effect = step(steps, reply)
            except SimCrash:
                self._sim.graveyard.append(steps)  # never closed: a dead process runs no cleanup
                raise
            except BaseException:
                steps.close()
                if trips.pending:
                    self._engage(trips.take())
                raise
            steps.close()
            if trips.pending:
                self._engage(trips.take())
            return effect.value

    def reconcile(self) -> list[tuple[str, Any]]:
        self._sim.in_reconcile = True
        try:
            return super().reconcile()
        finally:
            self._sim.in_reconcile = False


class SimAsyncGuardedExchange(_SimMixin, AsyncGuardedExchange):
    async def _run(self, steps: Steps[T]) -> T:
        core = self._rt.core
        with later(core.hooks) as held, core.collecting() as trips:
            steps = driven(steps, trips, held)
            try:
                effect = step(steps, None)
                while not isinstance(effect, Done):
                    self._before(effect)
                    reply = await self._perform(effect)
                    self._after(effect)
                    effect = step(steps, reply)
            except SimCrash:
                self._sim.graveyard.append(steps)
                raise
            except BaseException:
                steps.close()
                if trips.pending:
                    self._engaging(trips.take())
                raise
            steps.close()
            if trips.pending:
                self._engaging(trips.take())
            return effect.value

    async def reconcile(self) -> list[tuple[str, Any]]:
        self._sim.in_reconcile = True
        try:
            return await super().reconcile()
        finally:
            self._sim.in_reconcile = False


# --- one bot's guard process --------------------------------------------------------------


@dataclass
class Crash:
    point: str
    torn: bool
    stage: str | None = None
    then: str | None = None
    """Where the restarted process dies in turn (``mid_reconcile``: in its start-up
    reconcile, the one that has this crash's orphan to settle)."""


class BotProcess:
    """One bot's guarded exchange, built from its state directory; killable and restartable."""

    def __init__(self, world: World, index: int, *, is_async: bool, streams: bool = False) -> None:
        self.world = world
        self.index = index
        self.is_async = is_async
        self.streams = streams
        self.holder: StreamHolder | None = None
        self.api_key = f"sg-sim-key-{index}-0123456789"
        self.secret = f"{SECRET_PREFIX}{index}-{world.seed}-abcdef0123456789"
        self.state_dir = world.root / f"bot{index}"
        self.clock = SkewedClock(world.clock)
        self.crash: Crash | None = None
        """The kill armed for this process, if any."""
        self.last_crash: Crash | None = None
        """The kill that ended the last process."""
        self.dead = False
        self.down = False
        """Not running: its guard refused to start (and is tried again next bar)."""
        self.in_reconcile = False
        self.tear_allowed = False
        self.graveyard: list[Any] = []
        self.generation = 0
        self.journaled: set[str] = set()
        """Client order ids this process (this life of it) journaled."""
        self.exchange: Any = None
        self.switch: KillSwitch | None = None
        self.fleet_store: KillableRedisStore | None = None
        """A fleet member's link to the world's Redis (fleet mode)."""
        self.journal: OrderJournal | None = None
        world.venue.create_account(self.api_key, self.secret, wallet=WALLET)

    # crash arming ---------------------------------------------------------------------------

    def take_crash(self, point: str, *, stage: str | None = None) -> bool:
        crash = self.crash
        if crash is None or crash.point != point or self.dead:
            return False
        if stage is not None and crash.stage not in (None, stage):
            return False
        self.crash, self.last_crash = None, crash
        self.world.note(f"bot {self.index}: KILLED at {point}" + (f" ({stage})" if stage else ""))
        self.world.faults_fired[f"crash:{point}"] += 1
        return True

    # life -----------------------------------------------------------------------------------

    def policy(self) -> Policy:
        redis = self.world.redis
        fleet: dict[str, Any] = {}
        if redis is not None and self.index in FLEET:
            fleet = {"fleet": fleet_settings(redis.url, f"sim-{self.world.seed}")}
        base = Policy.build(
            risk={"max_notional_per_position": 8_000.0, "max_open_orders": 30},
            kill_switch={
                "cooling_period_s": 120.0,
                "triggers": self.world.triggers[self.index],
            },
            **fleet,
        )
        return sandbox_policy(self.state_dir, base)

    @property
    def running(self) -> bool:
        return not (self.dead or self.down) and self.switch is not None

    def start(self) -> None:
        from safeguard.guard import guard

        world = self.world
        policy = self.policy()
        self.dead = False
        self.tear_allowed = False
        self.generation += 1
        self.journaled = set()
        store: KillableStore | KillableRedisStore
        redis = world.redis
        if redis is not None and self.index in FLEET:
            store = self.fleet_store = KillableRedisStore(self, policy, redis.url)
        else:
            store = KillableStore(policy.kill_switch.state_dir, self)
        try:
            switch = KillSwitch(policy.kill_switch, clock=self.clock, store=store, watch=False)
        except BaseException:
            self._close_link()
            raise
        switch.add_listener(lambda state: world.switch_moved(self, switch, state))
        raw = strip_attached_stops(
            inprocess_client(
                world.dialect,
                self.api_key,
                self.secret,
                asyncio=self.is_async,
                pro=self.streams,
                on_latency=world.venue.advance,
            )
        )

        def sleep(seconds: float) -> bool:
            world.venue.advance(seconds)
            return False

        async def sleep_async(seconds: float) -> bool:
            world.venue.advance(seconds)
            return False

        from safeguard.guard._compose import api_host
        from safeguard.guard._throttle import account_fingerprint

        # The budget guard() would give the bot: the same IP window and the same account's
        # counts. Given here (a fleet member would get the fleet's, whose windows run on
        # Redis' clock, which simulated time does not move), and shared with the ladder.
        budget = registry_for(policy.kill_switch.state_dir).get(
            f"{raw.id}@{api_host(raw)}", account_fingerprint(self.api_key), config=policy.throttle
        )
        try:
            plain = guard(
                raw,
                policy,
                kill_switch=switch,
                budget=budget,
                clock=self.clock,
                durable_journal=True,
                triggers=True,
                ladder=False,  # attached below, run inline: a thread would race the seed
                sleep=sleep,
                sleep_async=sleep_async,
                rng=random.Random(f"{world.seed}-{self.index}-{self.generation}"),
            )
        except BaseException:
            switch.close()
            self._close_link()
            raise
        face = SimAsyncGuardedExchange if self.is_async else SimGuardedExchange
        exchange = face(plain.exchange, plain.runtime)
        object.__setattr__(exchange, "_sim", self)
        object.__setattr__(exchange, "_generation", self.generation)
        self.exchange = exchange
        self.switch = switch
        self.journal = plain.runtime.core.journal
        self._attach_ladder(switch, raw, policy, budget)
        world.check_halt_survived(self)

    def _close_link(self) -> None:
        """A fleet member's link to Redis goes with its process (the kernel closes its
        sockets; the store's leaving the members set stands for the member's expiry)."""
        if self.fleet_store is not None:
            self.fleet_store.close()
            self.fleet_store = None

    def _attach_ladder(self, switch: KillSwitch, raw: Any, policy: Policy, budget: Any) -> None:
        """The engage ladder (cancel-all on every decided engage), as ``guard()`` attaches it,
        paced on the same rate budget, but run inline where ``attach_ladder`` starts a thread
        (sync) or a task from another thread (async): its requests then fall at a point of the
        run the seed fixes. An async bot's ladder is a task on the sim's loop, run while the
        loop next runs (at once when the engage came from outside it)."""
        world = self.world
        config = policy.kill_switch
        pace = ladder_pace(budget)
        generation = self.generation
        done: set[tuple[TradingState, float]] = set()

        def advance(seconds: float) -> None:
            world.venue.advance(seconds)

        async def advance_async(seconds: float) -> None:
            world.venue.advance(seconds)

        def on_change(state: SwitchState) -> None:
            key = (state.state, state.since)
            if (
                state.state is TradingState.ACTIVE
                or state.code == Code.STATE_STORE_UNAVAILABLE  # not decided: guard() skips it
                or key in done
                or self.dead
                or self.generation != generation
            ):
                return
            done.add(key)
            world.faults_fired["ladder runs"] += 1
            if not self.is_async:
                run_ladder(raw, config, state, clock=self.clock, sleep=advance, pace=pace)
                return
            ladder = run_ladder_async(
                raw, config, state, clock=self.clock, sleep=advance_async, pace=pace
            )
            if asyncio._get_running_loop() is world.loop:
                world.ladders.append(asyncio.ensure_future(ladder))
            else:
                world.loop.run_until_complete(ladder)

        switch.add_listener(on_change)

    def kill(self) -> None:
        """The process dies where it stands: its descriptors close (the journal's writer lock
        goes with them), nothing else of it runs again."""
        self.dead = True
        self.crash = None
        if self.holder is not None:
            for task in self.holder.tasks:  # a dead process's loops die with it
                task.cancel()
            self.holder = None
        if self.journal is not None:
            self.journal.close()
        if self.switch is not None:
            self.switch.close()
        self._close_link()
        self.world.killed_raw.append(self.exchange.exchange if self.exchange else None)

    def stop(self) -> None:
        """A clean shutdown (the restarting bot's, and the end of the run)."""
        if self.holder is not None:
            self.world.loop.run_until_complete(self.holder.aclose())
            self.holder = None
        if self.journal is not None:
            self.journal.close()
        if self.switch is not None:
            self.switch.close()
        self._close_link()

    def journal_path(self) -> Path | None:
        return None if self.journal is None else self.journal.path


# --- the strategies -----------------------------------------------------------------------


class Behaviour:
    """A bot's behaviour. Each step is one bar's worth of guarded calls."""

    name = "strategy"
    is_async = False
    holds_streams = False
    """Its guard holds the market and user-data streams (``hold_streams``, ccxt.pro)."""
    restarts_every = 0
    """Bars between clean restarts from the bot's files (0: never)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.last: dict[str, float] = {}

    def step(self, bot: Bot) -> Any:
        raise NotImplementedError


class Bot:
    """A strategy and its process, with the sim's bookkeeping of every call it makes."""

    def __init__(self, world: World, index: int, strategy: Behaviour) -> None:
        self.world = world
        self.index = index
        self.strategy = strategy
        self.process = BotProcess(
            world, index, is_async=strategy.is_async, streams=strategy.holds_streams
        )
        self.returned: dict[str, str] = {}
        """client order id -> order id of every order a guarded call returned."""
        self.told_unknown: set[str] = set()
        """Client order ids a guarded call reported unknown to the bot."""

    @property
    def ex(self) -> Any:
        return self.process.exchange

    def call(self, method: str, *args: Any) -> Any:
        """A guarded sync call: a SafeguardError is a refusal the bot lives with; anything
        else escaping the guard is an invariant broken."""
        self.world.calls[method] += 1
        try:
            result = getattr(self.ex, method)(*args)
        except SafeguardError as exc:
            self._told(exc)
            self.world.outcomes[f"{method}: {exc.code}"] += 1
            self.world.note(f"bot {self.index}: {method} -> {exc.code}: {str(exc)[:120]}")
            return None
        except SimCrash:
            raise
        except Exception as exc:
            self.world.escaped(self, method, exc)
            return None
        self._took(method, result)
        return result

    async def acall(self, method: str, *args: Any) -> Any:
        self.world.calls[method] += 1
        try:
            result = await getattr(self.ex, method)(*args)
        except SafeguardError as exc:
            self._told(exc)
            self.world.outcomes[f"{method}: {exc.code}"] += 1
            self.world.note(f"bot {self.index}: {method} -> {exc.code}: {str(exc)[:120]}")
            return None
        except SimCrash:
            raise
        except Exception as exc:
            self.world.escaped(self, method, exc)
            return None
        self._took(method, result)
        return result

    def _told(self, exc: BaseException) -> None:
        """The orders an error reported unknown to the bot (an ``OutcomeUnknown``, or a stop
        whose send ended in one): the bot was told, and must reconcile them itself."""
        seen: BaseException | None = exc
        for _ in range(4):
            if seen is None:
                break
            if isinstance(seen, OutcomeUnknown):
                self.told_unknown.add(seen.client_order_id)
                stop = getattr(exc, "stop_client_order_id", None)
                if stop:
                    self.told_unknown.add(str(stop))
            seen = seen.__cause__ or seen.__context__

    def _took(self, method: str, result: Any) -> None:
        self.world.outcomes[f"{method}: ok"] += 1
        if method in ("create_order", "edit_order") and isinstance(result, dict):
            cid = result.get("clientOrderId")
            if cid:
                self.returned[str(cid)] = str(result.get("id"))
            self.world.note(
                f"bot {self.index}: {method} {result.get('symbol')} {result.get('side')} "
                f"{result.get('amount')} -> {result.get('id')} ({cid})"
            )


def _entry_params(stop: float) -> dict[str, Any]:
    return {"stopLoss": {"triggerPrice": stop}}


def _sized(ex: Any, symbol: str, notional: float, price: float) -> float:
    return float(ex.amount_to_precision(symbol, notional / price))


def _priced(ex: Any, symbol: str, price: float) -> float:
    return float(ex.price_to_precision(symbol, price))


def _held(positions: Any) -> float:
    return sum(
        float(p.get("contracts") or 0) * (-1 if p.get("side") == "short" else 1)
        for p in positions or ()
    )


class MarketMaker(Behaviour):
    """Quotes both sides of one market, cancels and re-quotes every bar, trims its stock."""

    name = "market-maker"

    def step(self, bot: Bot) -> None:
        symbol = CCXT_SYMBOLS[0]
        ticker = bot.call("fetch_ticker", symbol)
        if not ticker or not ticker.get("last"):
            return
        price = float(ticker["last"])
        for order in bot.call("fetch_open_orders", symbol) or []:
            bot.call("cancel_order", order["id"], symbol)
        spread = self.rng.uniform(0.001, 0.004)
        amount = _sized(bot.ex, symbol, self.rng.uniform(200, 1200), price)
        for side, sign in (("buy", 1), ("sell", -1)):
            limit = _priced(bot.ex, symbol, price * (1 - sign * spread))
            stop = _priced(bot.ex, symbol, price * (1 - sign * 0.05))
            bot.call("create_order", symbol, "limit", side, amount, limit, _entry_params(stop))
        held = _held(bot.call("fetch_positions", [symbol]))
        if abs(held) * price > 3000:
            bot.call("create_order", symbol, "market", "sell" if held > 0 else "buy",
                     abs(held), None, {"reduceOnly": True})  # fmt: skip


class CancelReplace(Behaviour):
    """Keeps one resting order per market and moves it every bar: an edit, or a cancel and a
    new order."""

    name = "cancel-replace"

    def step(self, bot: Bot) -> None:
        symbol = self.rng.choice(CCXT_SYMBOLS)
        ticker = bot.call("fetch_ticker", symbol)
        if not ticker or not ticker.get("last"):
            return
        price = float(ticker["last"])
        side = self.rng.choice(["buy", "sell"])
        sign = 1 if side == "buy" else -1
        limit = _priced(bot.ex, symbol, price * (1 - sign * self.rng.uniform(0.002, 0.02)))
        stop = _priced(bot.ex, symbol, price * (1 - sign * 0.06))
        orders = [o for o in bot.call("fetch_open_orders", symbol) or [] if o.get("side") == side]
        amount = _sized(bot.ex, symbol, self.rng.uniform(200, 900), price)
        if orders and self.rng.random() < 0.5:
            order = orders[0]
            size = order.get("amount") or amount
            bot.call("edit_order", order["id"], symbol, "limit", side, size, limit,
                     _entry_params(stop))  # fmt: skip
            return
        for order in orders:
            bot.call("cancel_order", order["id"], symbol)
        bot.call("create_order", symbol, "limit", side, amount, limit, _entry_params(stop))


class TrendFollowing(Behaviour):
    """Async: watches both markets at once and enters on a move with a declared stop, both
    entries sent concurrently (racing first orders through one journal); exits on reversal,
    and keeps a reduce-only stop order behind each position."""

    name = "trend-follower"
    is_async = True

    async def step(self, bot: Bot) -> None:
        tickers = await asyncio.gather(*(bot.acall("fetch_ticker", s) for s in CCXT_SYMBOLS))
        entries: list[Coroutine[Any, Any, Any]] = []
        for symbol, ticker in zip(CCXT_SYMBOLS, tickers, strict=True):
            if not ticker or not ticker.get("last"):
                continue
            price = float(ticker["last"])
            before = self.last.get(symbol, price)
            self.last[symbol] = price
            move = (price - before) / before
            roll = self.rng.random()
            if abs(move) > 0.0005 or roll < 0.3:
                side = "buy" if (move > 0) != (roll < 0.15) else "sell"
                sign = 1 if side == "buy" else -1
                amount = _sized(bot.ex, symbol, self.rng.uniform(300, 2500), price)
                stop = _priced(bot.ex, symbol, price * (1 - sign * self.rng.uniform(0.02, 0.05)))
                entries.append(
                    bot.acall(
                        "create_order", symbol, "market", side, amount, None, _entry_params(stop)
                    )
                )
            elif roll < 0.5:
                entries.append(self._exit(bot, symbol))
        await asyncio.gather(*entries)
        if self.rng.random() < 0.3:
            await self._protect(bot, self.rng.choice(CCXT_SYMBOLS))

    async def _exit(self, bot: Bot, symbol: str) -> None:
        held = _held(await bot.acall("fetch_positions", [symbol]))
        if held:
            await bot.acall("create_order", symbol, "market", "sell" if held > 0 else "buy",
                            abs(held), None, {"reduceOnly": True})  # fmt: skip

    async def _protect(self, bot: Bot, symbol: str) -> None:
        held = _held(await bot.acall("fetch_positions", [symbol]))
        stops = await bot.acall("fetch_open_orders", symbol, None, None, {"trigger": True}) or []
        for order in stops:
            await bot.acall("cancel_order", order["id"], symbol, {"trigger": True})
        ticker = await bot.acall("fetch_ticker", symbol)
        if not held or not ticker or not ticker.get("last"):
            return
        mark = float(ticker["last"])
        stop = _priced(bot.ex, symbol, mark * (0.96 if held > 0 else 1.04))
        await bot.acall("create_order", symbol, "market", "sell" if held > 0 else "buy",
                        abs(held), None, {"stopLossPrice": stop, "reduceOnly": True})  # fmt: skip


class Restarter(TrendFollowing):
    """A sync bot that stops cleanly and starts again from its files every few bars (a deploy,
    a cron restart), reconciling first as a restarted bot must."""

    name = "restarter"
    is_async = False
    restarts_every = 4

    def step(self, bot: Bot) -> None:  # type: ignore[override]
        symbol = self.rng.choice(CCXT_SYMBOLS)
        ticker = bot.call("fetch_ticker", symbol)
        if not ticker or not ticker.get("last"):
            return
        price = float(ticker["last"])
        held = _held(bot.call("fetch_positions", [symbol]))
        if held and self.rng.random() < 0.4:
            bot.call("create_order", symbol, "market", "sell" if held > 0 else "buy",
                     abs(held), None, {"reduceOnly": True})  # fmt: skip
            return
        side = self.rng.choice(["buy", "sell"])
        sign = 1 if side == "buy" else -1
        amount = _sized(bot.ex, symbol, self.rng.uniform(200, 2000), price)
        stop = _priced(bot.ex, symbol, price * (1 - sign * 0.04))
        kind = self.rng.choice(["market", "limit"])
        limit = _priced(bot.ex, symbol, price * (1 - sign * 0.003)) if kind == "limit" else None
        bot.call("create_order", symbol, kind, side, amount, limit, _entry_params(stop))


class StreamTrader(TrendFollowing):
    """The trend follower on ccxt.pro, its guard holding the streams of both markets and of
    its account (``hold_streams``): its view is fed by websockets the seed's stream faults
    stall, freeze, cut and whose listen key they expire."""

    name = "stream-trader"
    holds_streams = True


POPULATION: tuple[type[Behaviour], ...] = (
    MarketMaker,
    TrendFollowing,
    CancelReplace,
    Restarter,
    StreamTrader,
)


# --- the world ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    invariant: str
    detail: str
    bar: int


@dataclass
class Outcome:
    """What one seed's run found."""

    seed: int
    faults: list[Fault]
    failures: list[Failure]
    trace: list[str]
    fired: Counter[str]
    checks: Counter[str]
    orders: int

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class _Engaged:
    """An engage that returned (and was written down): from the order id past which no
    forbidden order may appear, until a resume."""

    state: TradingState
    watermark: int
    durable: bool
    resumed_at: int | None = None
    code: str = ""
    switch: KillSwitch | None = None
    """The switch that engaged: one that could not persist then may have written it since
    (it tries again at every look at its state), and is durable from then on."""


class World:
    """One seed: the venue, the bots, the schedule, the invariants."""

    def __init__(self, seed: int, *, bars: int = 16, keep: list[int] | None = None) -> None:
        self.seed = seed
        self.bars = bars
        self.bar = 0
        self.root = Path(tempfile.mkdtemp(prefix=f"sg-sim-{seed}-", dir=_scratch()))
        self.clock = ManualClock(START)
        self.venue = Venue(VenueConfig(seed=seed, symbols=SYMBOLS), clock=self.clock)
        schedule = self.schedule_of(seed, bars)
        self.schedule = schedule
        self.faults = schedule if keep is None else [schedule[i] for i in keep]
        self.dialect = Dialect(self.venue, faults=FaultPlan.parse(venue_plan(self.faults, seed)))
        self.trace: deque[str] = deque(maxlen=TRACE_LINES)
        self.failures: list[Failure] = []
        self.checks: Counter[str] = Counter()
        self.faults_fired: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.killed_raw: list[Any] = []
        self.engaged: dict[int, list[_Engaged]] = {}
        self.read_only: dict[int, ReadOnly] = {}
        """Bots whose state directory is read-only now, by index."""
        self.redis: RedisServer | None = None
        """The fleet's Redis (fleet mode: started by :meth:`run` when there is a server)."""
        self.fleet_wait_s = WAIT_S
        """How long (wall clock) the fleet may take to reach what it must at a fault."""
        self.ladders: list[asyncio.Future[Any]] = []
        self.triggers = draw_triggers(seed, bots=len(POPULATION))
        self.judged_ids: dict[int, set[str]] = {}
        self.log: list[str] = []
        self.log_checked = 0
        """Log lines already looked at for an exception a held stream caught."""
        self.loop = SimEventLoop(self.clock, self.venue.advance)
        self.loop.set_exception_handler(self._loop_exception)
        rng = random.Random(f"bots-{seed}")
        self.bots = [
            Bot(self, i, cls(random.Random(rng.random()))) for i, cls in enumerate(POPULATION)
        ]

    @staticmethod
    def schedule_of(seed: int, bars: int) -> list[Fault]:
        """The seed's whole fault schedule (what ``keep`` indexes)."""
        return draw_schedule(seed, bars=bars, bots=len(POPULATION), symbols=SYMBOLS)

    # bookkeeping ------------------------------------------------------------------------------

    def note(self, line: str) -> None:
        self.trace.append(f"[bar {self.bar} t+{self.clock.time() - START:.1f}s] {line}")

    def fail(self, invariant: str, detail: str) -> None:
        if not any(f.invariant == invariant for f in self.failures):
            self.note(f"BROKEN {invariant}: {detail}")
        self.failures.append(Failure(invariant, detail, self.bar))

    def check(self, invariant: str, ok: bool, detail: str) -> None:
        self.checks[invariant] += 1
        if not ok:
            self.fail(invariant, detail)

    def escaped(self, bot: Bot, method: str, exc: Exception) -> None:
        self.outcomes[f"{method}: ESCAPED {type(exc).__name__}"] += 1
        frames = traceback.extract_tb(exc.__traceback__)
        where = " <- ".join(f"{Path(f.filename).name}:{f.lineno}" for f in reversed(frames[-4:]))
        self.fail(
            "no unhandled exception",
            f"bot {bot.index} {method}: {type(exc).__name__}: {exc} (at {where})",
        )

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """What asyncio would print to stderr: a background future of ccxt's own (a positions
        snapshot its user-data stream spawns) that failed on a venue fault and that nobody
        awaits. Noted in the trace; the guard's own loops are checked by the log."""
        self.outcomes[f"loop: {type(context.get('exception')).__name__}"] += 1
        self.note(f"event loop: {context.get('message')}: {context.get('exception')!r}"[:200])

    def judged(self, process: BotProcess, write: PendingWrite) -> None:
        self.judged_ids.setdefault(process.index, set()).add(write._client_order_id)
        process.journaled.add(write._client_order_id)

    # the run ----------------------------------------------------------------------------------

    def run(self) -> Outcome:
        # The library leaves its records disabled; the oracle reads them (a held stream's loop
        # only logs what it caught, and no secret may reach a record), so the run turns them on.
        logger.enable("safeguard")
        sink = logger.add(self.log.append, level="DEBUG", format="{message}")
        try:
            binary = redis_binary()
            if binary is not None:
                self.redis = RedisServer(binary, self.root)
                self.redis.start()
            for bot in self.bots:
                self._restart(bot, why="start")
            for bar in range(self.bars):
                self.bar = bar
                self.venue.advance(BAR_S)
                self._apply_faults()
                self._pump_streams()
                for bot in self.bots:
                    self._step(bot)
                    self._finish_ladders()
                self._continuous()
                if self.failures:
                    break  # the trace ends where the invariant broke: the events that led to it
            else:
                self._heal()
                self._final()
        finally:
            self._close()
            logger.remove(sink)
            logger.disable("safeguard")  # as the library leaves it
        return self.outcome()

    def outcome(self) -> Outcome:
        return Outcome(
            self.seed,
            self.faults,
            self.failures,
            list(self.trace),
            self.faults_fired,
            self.checks,
            sum(len(self.venue_orders(b)) for b in self.bots),
        )

    def _step(self, bot: Bot) -> None:
        strategy = bot.strategy
        if bot.process.down:
            self._restart(bot, why="after failing to start")
        elif strategy.restarts_every and self.bar and self.bar % strategy.restarts_every == 0:
            bot.process.stop()
            self._restart(bot, why="clean restart")
        if bot.process.down:
            return
        try:
            if strategy.is_async:
                self.loop.run_until_complete(self._async_step(bot))
            else:
                strategy.step(bot)
        except SimCrash:
            self._after_crash(bot)
        if bot.index in FLEET:
            self._fleet_settle()  # its trip or restart reaches the other member before it moves

    async def _hold_streams(self, bot: Bot) -> None:
        holder = await bot.acall("hold_streams", list(CCXT_SYMBOLS))
        if isinstance(holder, StreamHolder):
            bot.process.holder = holder
            self.note(f"bot {bot.index}: holds {len(holder.tasks)} streams")

    def _pump_streams(self) -> None:
        """Let the held streams take what the venue published since the loop last ran (a
        bounded number of loop turns: each message is a few; the order is the seed's)."""
        if any(b.process.holder is not None for b in self.bots):
            for _ in range(STREAM_TURNS):
                self.loop.run_until_complete(asyncio.sleep(0))

    def _finish_ladders(self) -> None:
        """An async bot's ladders (tasks its engages started on the loop) run to their end
        before anything else happens (each reports its own failures)."""
        while self.ladders:
            ladders, self.ladders = self.ladders, []
            self.loop.run_until_complete(asyncio.gather(*ladders, return_exceptions=True))

    async def _async_step(self, bot: Bot) -> None:
        # A crash in one task kills the process: its sibling tasks die at their next effect.
        tasks = [asyncio.ensure_future(bot.strategy.step(bot))]
        done = await asyncio.gather(*tasks, return_exceptions=True)
        for result in done:
            if isinstance(result, BaseException):
                raise result
        # Sibling tasks spawned by gather inside the step have finished with it.

    def _restart(self, bot: Bot, *, why: str, arm: str | None = None) -> None:
        """Build the bot's guard from its files and reconcile, as a starting bot does; a
        crash during the reconcile kills it again, and it starts once more. A guard that
        refuses to start (its journal cannot be written: a full disk) leaves the bot down
        until the next bar, when it tries again."""
        self._end_memory_only_engages(bot)
        for _ in range(5):
            try:
                bot.process.start()
            except SimCrash:
                bot.process.kill()  # killed while the switch wrote its state at start-up
                why = "after a crash while starting"
                continue
            except SafeguardError as exc:
                bot.process.down = True
                self.outcomes[f"start: {exc.code}"] += 1
                self.note(f"bot {bot.index}: could not start ({why}): {exc.code}")
                return
            bot.process.down = False
            self.note(f"bot {bot.index}: started ({why}), generation {bot.process.generation}")
            if arm is not None:
                bot.process.crash, arm = Crash(arm, False), None
            try:
                if bot.strategy.is_async:
                    self.loop.run_until_complete(bot.acall("load_markets"))
                    self.loop.run_until_complete(bot.acall("reconcile"))
                    if bot.process.streams:
                        self.loop.run_until_complete(self._hold_streams(bot))
                else:
                    bot.call("load_markets")
                    bot.call("reconcile")
                return
            except SimCrash:
                bot.process.kill()
                why = "after a crash in its start-up reconcile"
        raise RuntimeError("a bot could not start five times in a row")

    def _end_memory_only_engages(self, bot: Bot) -> None:
        """An engage the store could not record (a full disk) holds in its process only: it
        ends with that process, as nothing on disk says it happened. Counted, not hidden."""
        for engaged in self.engaged.get(bot.index, []):
            if engaged.code == LINK_DOWN and engaged.resumed_at is None:
                # The halt a lost link imposed belonged to that process's link.
                engaged.resumed_at = self._watermark(bot)
                continue
            if not engaged.durable and engaged.switch is not None:
                # Written since, at a later look at the state: a restart must keep it. (A
                # fleet store that still owes it held it in that process's memory only.)
                store = engaged.switch.store
                owed = isinstance(store, KillableRedisStore) and store.owes_a(engaged.state)
                engaged.durable = engaged.switch.unpersisted is None and not owed
            if not engaged.durable and engaged.resumed_at is None:
                engaged.resumed_at = self._watermark(bot)
                self.faults_fired["engage lost with its process (never on disk)"] += 1
                self.note(f"bot {bot.index}: its memory-only {engaged.state} ends with it")

    def _after_crash(self, bot: Bot) -> None:
        process = bot.process
        torn = process.last_crash.torn if process.last_crash else False
        then = process.last_crash.then if process.last_crash else None
        process.kill()
        if torn:
            self._tear(process)
        self._restart(bot, why="after a crash", arm=then)

    def _tear(self, process: BotProcess) -> None:
        """A torn write: the last record of the journal cut part-way. Only a record that was
        not yet known on disk may tear: one written after the last fsync (a settle), or the
        pending record whose send never left."""
        path = process.journal_path()
        if path is None or not path.exists():
            return
        data = path.read_bytes()
        body = data.rstrip(b"\n")
        start = body.rfind(b"\n") + 1
        last = body[start:]
        if not last:
            return
        pending = b'"status":"pending"' in last
        if pending and not process.tear_allowed:
            return  # fsynced before its send: a kill cannot tear it
        cut = start + max(1, len(last) // 2)
        with unrestricted():  # the kill cut a write the descriptor could still make
            os.truncate(path, cut)  # shrinking never needs room: it tears on a full disk too
        self.faults_fired["torn_write"] += 1
        self.note(f"bot {process.index}: journal torn at byte {cut} of {len(data)}")

    def _apply_faults(self) -> None:
        for fault in self.faults:
            if fault.at == self.bar:
                self._begin(fault)
            elif fault.kind == "disk_full" and fault.at + fault.bars == self.bar:
                disk_full(False)
                self.note("disk has room again")
            elif fault.kind == "read_only" and fault.at + fault.bars == self.bar:
                self._writable_again(fault.bot)
            elif fault.kind in FLEET_KINDS and fault.at + fault.bars == self.bar:
                self._redis_fault(fault, begin=False)
            if fault.kind in VENUE_KINDS + STREAM_KINDS and fault.at == self.bar:
                self.faults_fired[fault.kind] += 1
        self._operator()
        self._fleet_settle()

    def _begin(self, fault: Fault) -> None:
        bot = self.bots[fault.bot]
        kind = fault.kind
        if kind == "crash":
            point = fault.params["point"]
            stage = random.Random(f"{self.seed}-{fault.at}").choice(["before_save", "after_save"])
            torn = bool(fault.params.get("torn"))
            if point == "mid_reconcile":
                # A reconcile has something to do after a kill: the first kill leaves an order
                # in flight, the restart's reconcile is killed while it settles it.
                bot.process.crash = Crash("after_send", torn, None, then="mid_reconcile")
            else:
                bot.process.crash = Crash(point, torn, stage)
            self.note(f"bot {bot.index}: armed crash {point}")
            if point == "mid_engage":
                self._engage(bot, TradingState.HALTED, "sim: engage to be killed")
        elif kind == "disk_full":
            disk_full(True)
            self.faults_fired["disk_full"] += 1
            self.note("disk full")
        elif kind == "read_only":
            window = self.read_only.setdefault(bot.index, ReadOnly(bot.process.state_dir))
            if window.begin():
                self.faults_fired["read_only"] += 1
                self.note(f"bot {bot.index}: state directory read-only")
            else:
                self.faults_fired["read_only (not enforceable here)"] += 1
                self.note(f"bot {bot.index}: state directory still writable (not enforced)")
        elif kind in FLEET_KINDS:
            self._redis_fault(fault, begin=True)
        elif kind == "clock_jump":
            bot.process.clock.offset += float(fault.params["seconds"])
            self.faults_fired["clock_jump"] += 1
            self.note(f"bot {bot.index}: clock jumps {fault.params['seconds']:+g} s")
        elif kind == "engage":
            self._engage(bot, TradingState(fault.params["state"]), "sim: operator engage")
        else:
            self.note(f"venue fault begins: {fault.describe()}")

    def _writable_again(self, index: int) -> None:
        window = self.read_only.pop(index, None)
        if window is not None:
            window.end()
            self.note(f"bot {index}: state directory writable again")

    def _engage(self, bot: Bot, state: TradingState, reason: str) -> None:
        switch = bot.process.switch
        if bot.process.down or switch is None:
            return  # not running: nothing to engage (its files hold what it last saved)
        try:
            result = switch.engage(reason, by="sim-operator", state=state, code="SIM")
        except SimCrash:
            self._after_crash(bot)
            return
        self.faults_fired[f"engage:{state}"] += 1
        durable = switch.unpersisted is None
        decided = result.state
        if result.code == Code.STATE_STORE_UNAVAILABLE:
            # Answered with a store's stand-in (the fleet's Redis is down, this bot HALTED):
            # the operator's decision is kept for the store, not yet in it.
            decided, durable = state, False
        self.engaged.setdefault(bot.index, []).append(
            _Engaged(decided, self._watermark(bot), durable, code="SIM", switch=switch)
        )
        self.note(f"bot {bot.index}: engaged {result.state} (durable: {durable})")
        if durable and bot.process.fleet_store is not None:
            # In Redis: it holds every member from now on (one running takes it at its next
            # look; one down finds it when it starts).
            for other in self.bots:
                if other.index in FLEET and other is not bot:
                    self.engaged.setdefault(other.index, []).append(
                        _Engaged(result.state, self._watermark(other), True, code="SIM")
                    )

    def switch_moved(self, process: BotProcess, switch: KillSwitch, state: SwitchState) -> None:
        """A bot's switch changed (its listener): an engage the guard made itself (a trigger,
        an escalated warning, a store failing closed) is held to the same invariants as the
        operator's, from the moment it returned."""
        if process.dead or process.switch is not switch:
            return  # a dead process's switch: nothing of it runs any more
        bot = self.bots[process.index]
        if process.fleet_store is not None and not state.by.startswith("fleet:"):
            # A member back on its link (whatever the fleet's state it finds there: ACTIVE, or
            # a REDUCING decided meanwhile): the halt its lost link imposed is over.
            for engaged in self.engaged.get(process.index, []):
                if engaged.resumed_at is None and engaged.code == LINK_DOWN:
                    engaged.resumed_at = self._watermark(bot)
        if state.state is TradingState.ACTIVE:
            return
        if state.by == "sim-operator":
            return
        durable = switch.unpersisted is None
        code = LINK_DOWN if state.by.startswith("fleet:") else str(state.code)
        self.engaged.setdefault(process.index, []).append(
            _Engaged(state.state, self._watermark(bot), durable, code=code, switch=switch)
        )
        self.faults_fired[f"trigger:{state.code}"] += 1
        self.note(
            f"bot {process.index}: {state.by} engaged {state.state} ({state.code}; "
            f"durable: {durable})"
        )

    def _operator(self) -> None:
        """Resume a switch once its cooling period allows, a few bars after it engaged."""
        for bot in self.bots:
            switch = bot.process.switch
            if bot.process.down or switch is None:
                continue
            try:
                # Reading the state may persist one (a store written back after a refresh):
                # an armed mid-engage kill can land there too.
                if switch.state.state is TradingState.ACTIVE:
                    continue
                switch.resume(by="sim-operator", reason="sim: resume after cooling")
            except (SafeguardError, OSError):
                # Refused (cooling), or the store cannot record it: a store raises OSError
                # then (the file store on a full disk, Redis unreachable), and the switch
                # stays engaged. The operator tries again next bar.
                continue
            except SimCrash:
                # Killed between the save and the history record: the resume is on disk, and
                # the restarted bot is rightly ACTIVE. Killed before the save, it never was.
                crash = bot.process.last_crash
                if crash is not None and crash.stage == "after_save":
                    self._mark_resumed(bot)
                self._after_crash(bot)
                continue
            self._mark_resumed(bot)

    def _mark_resumed(self, bot: Bot) -> None:
        resumed = [bot]
        if bot.process.fleet_store is not None:  # a resume in Redis re-arms every member
            resumed = [b for b in self.bots if b.index in FLEET]
        for each in resumed:
            mark = self._watermark(each)
            for engaged in self.engaged.get(each.index, []):
                if engaged.resumed_at is None:
                    engaged.resumed_at = mark
        self.note(f"bot {bot.index}: resumed")
        self._fleet_settle()

    def _heal(self) -> None:
        """The troubles end: no faults, a clock that is right, the switches re-armed, and one
        reconcile per bot; then the guard's view must match the venue's."""
        disk_full(False)
        for index in list(self.read_only):
            self._writable_again(index)
        self.bar = self.bars
        self.dialect.set_fault_plan(None)
        for symbol in SYMBOLS:
            self.venue.freeze_feed(symbol, None)
        if self.redis is not None and (self.redis.frozen or not self.redis.running):
            self._redis_back("the heal")
        now = self.clock.time()
        banned = self.dialect.limiter.banned_until("127.0.0.1", now) or now
        self.venue.advance(max(banned - now, 0.0) + 300.0)
        for bot in self.bots:
            bot.process.crash = None
            bot.process.clock.offset = 0.0
            if bot.process.down:
                self._restart(bot, why="after the disk has room again")
        self._operator()
        for bot in self.bots:
            try:
                if bot.strategy.is_async:
                    self.loop.run_until_complete(bot.acall("reconcile"))
                else:
                    bot.call("reconcile")
            except SimCrash:  # no crash is armed any more; kept for symmetry of the drive
                self._after_crash(bot)
            self._finish_ladders()

    # the fleet ----------------------------------------------------------------------------------

    def _members(self) -> list[Bot]:
        """The fleet's running members (none without fleet mode)."""
        return [b for b in self.bots if b.process.fleet_store is not None and b.process.running]

    def _redis_state(self) -> SwitchState | None:
        """What the fleet's Redis holds now (the world's own read)."""
        assert self.redis is not None
        client = self.redis.client()
        try:
            raw = client.get(f"{{sim-{self.seed}}}:ks:state")
        finally:
            client.close()
        return None if raw is None else decode_state(bytes(raw), source="sim")

    def _fleet_settle(self) -> None:
        """Wait (wall clock, bounded) until the fleet is where it must be before a bot moves
        again: with Redis unreachable, every running member knows its link is down; with
        Redis up, every member is connected and holds what Redis holds (a state one of them
        had to write back into an emptied Redis included). Then each member looks at its
        store (``refresh``) on the world's thread, where its next order will be judged; a look
        that pays Redis an engage its switch owed moves the fleet again, so once more."""
        for _ in range(2):
            members = self._members()
            if not members or not self._fleet_reaches_its_state(members):
                return
            owed = False
            for member in members:
                switch = member.process.switch
                if switch is None or not member.process.running:
                    continue
                owed = owed or switch.unpersisted is not None
                try:
                    switch.refresh()
                except SimCrash:  # a write-back it made was killed mid-engage
                    self._after_crash(member)
            if not owed:
                return

    def _fleet_reaches_its_state(self, members: list[Bot]) -> bool:
        redis = self.redis
        assert redis is not None
        stores = [m.process.fleet_store for m in members]
        if redis.running and not redis.frozen:

            def settled() -> bool:
                if not all(s is not None and s.connected for s in stores):
                    return False
                truth = self._redis_state()
                if truth is None:  # emptied: settled once nobody has anything to write back
                    return all(s is not None and s.knows() is TradingState.ACTIVE for s in stores)
                return all(s is not None and s.knows_exactly(truth) for s in stores)

            invariant = "the fleet agrees on its state"
        else:

            def settled() -> bool:
                return all(s is not None and not s.connected for s in stores)

            invariant = "a lost or frozen Redis is noticed"
        ok = wait_until(settled, self.fleet_wait_s)
        where = ", ".join(f"bot {m.index}: {m.process.fleet_store!r}" for m in members)
        self.check(invariant, ok, where)
        return ok

    def _redis_fault(self, fault: Fault, *, begin: bool) -> None:
        redis = self.redis
        if redis is None:
            if begin:
                self.faults_fired[f"{fault.kind} (no redis-server here)"] += 1
            return
        if begin:
            self.faults_fired[fault.kind] += 1
            self.note(f"fleet fault begins: {fault.describe()}")
        if fault.kind == "redis_lost" and begin:
            redis.kill()
        elif fault.kind == "redis_frozen" and begin:
            redis.freeze()
        elif fault.kind == "redis_emptied":
            self._forget_unknown("emptied")
            redis.flush()
        else:
            self._redis_back("its fault's end")
        self._fleet_settle()

    def _redis_back(self, why: str) -> None:
        redis = self.redis
        assert redis is not None
        if redis.frozen:
            redis.thaw()
        elif not redis.running:
            self._forget_unknown("back empty")
            redis.start()
        self.note(f"fleet: Redis answers again ({why})")

    def _forget_unknown(self, how: str) -> None:
        """An engage of the fleet that no running member can write back into an empty Redis
        is gone with it (the documented window: Redis without persistence, and no member
        that knew). Counted, and no longer held against the members."""
        knows = max(
            (self._member_knows(m).severity for m in self._members()),
            default=TradingState.ACTIVE.severity,
        )
        for index in FLEET:
            bot = self.bots[index]
            for engaged in self.engaged.get(index, []):
                if (
                    engaged.resumed_at is None
                    and engaged.code != LINK_DOWN
                    and engaged.state.severity > knows
                ):
                    engaged.resumed_at = self._watermark(bot)
                    self.faults_fired["fleet engage lost with Redis (no running member knew)"] += 1
                    self.note(f"bot {index}: its {engaged.state} is gone with Redis ({how})")

    @staticmethod
    def _member_knows(member: Bot) -> TradingState:
        """The tightest state a running member could write into an empty Redis: what its
        store knows or owes, or an engage its switch holds and still owes the store."""
        store, switch = member.process.fleet_store, member.process.switch
        known = store.knows() if store is not None else TradingState.ACTIVE
        owed = switch.unpersisted if switch is not None else None
        if owed is not None and owed[0].state.severity > known.severity:
            return owed[0].state
        return known

    def _fleet_holds(self) -> None:
        """Every running member holds each fleet engage still standing (not resumed, and not
        gone with an emptied Redis nobody could refill)."""
        for member in self._members():
            switch = member.process.switch
            assert switch is not None
            standing = [
                e
                for e in self.engaged.get(member.index, [])
                if e.durable and e.resumed_at is None and e.code != LINK_DOWN
            ]
            if not standing:
                continue
            tightest = max(standing, key=lambda e: e.state.severity)
            self.check(
                "a fleet engage holds in every member",
                switch.state.state.severity >= tightest.state.severity,
                f"bot {member.index} is {switch.state.state} under a fleet {tightest.state}",
            )

    # the invariants ---------------------------------------------------------------------------

    def venue_orders(self, bot: Bot) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for symbol in SYMBOLS:
            out.extend(self.venue.all_orders(bot.process.api_key, symbol=symbol))
        return out

    def _watermark(self, bot: Bot) -> int:
        return max((int(o["orderId"]) for o in self.venue_orders(bot)), default=0)

    def check_halt_survived(self, process: BotProcess) -> None:
        """HALTED never lost across a crash: a durable engage not resumed since holds in the
        new process."""
        switch = process.switch
        assert switch is not None
        standing = [
            e for e in self.engaged.get(process.index, []) if e.durable and e.resumed_at is None
        ]
        if not standing:
            return
        tightest = max(e.state.severity for e in standing)
        self.check(
            "HALTED never lost across a crash",
            switch.state.state.severity >= tightest,
            (
                f"bot {process.index} restarted {switch.state.state} after a durable engage "
                f"to {max(standing, key=lambda e: e.state.severity).state}"
            ),
        )

    def _continuous(self) -> None:
        self._streams_unbroken()
        self._fleet_holds()
        for bot in self.bots:
            orders = self.venue_orders(bot)
            judged = self.judged_ids.get(bot.index, set())
            cids = Counter(str(o["clientOrderId"]) for o in orders)
            unjudged = [c for c in cids if c not in judged]
            self.check(
                "no order the guard did not judge",
                not unjudged,
                f"bot {bot.index}: {unjudged[:3]} on the venue, never journaled",
            )
            doubled = [c for c, n in cids.items() if n > 1]
            self.check(
                "no order doubled",
                not doubled,
                f"bot {bot.index}: client ids {doubled[:3]} twice on the venue",
            )
            self._after_engage(bot, orders)
            self._answers_true(bot, orders)
            self._journal_accounted(bot)

    def _streams_unbroken(self) -> None:
        """A held stream's loop survives whatever the venue does (it logs a ccxt error and
        watches again); an exception that is not the venue's is a bug it only logged."""
        lines, self.log_checked = self.log[self.log_checked :], len(self.log)
        caught = [
            line
            for line in lines
            if line.startswith(("held stream", "the held streams'")) and "Traceback" in line
        ]
        self.check(
            "no unhandled exception",
            not caught,
            f"a held stream's loop caught {caught[0].splitlines()[-1] if caught else ''}",
        )

    def _journal_accounted(self, bot: Bot) -> None:
        """Between bars (nothing in flight): every order this process journaled is resolved
        or was reported unknown to the bot, and any still unresolved (those, or a dead
        process's orphans) are owed a look-up the guard knows of: its next order reconciles
        first."""
        process = bot.process
        journal = process.journal
        if journal is None or process.dead or process.down:
            return
        unresolved = [e.client_order_id for e in journal.unresolved()]
        untold = [c for c in unresolved if c in process.journaled and c not in bot.told_unknown]
        self.check(
            "every journaled order resolved or reported unknown",
            not untold,
            f"bot {bot.index}: {untold[:3]} unresolved, never reported unknown to the bot",
        )
        owed = bool(unresolved) and process.exchange._rt.core.reconciled
        self.check(
            "every journaled order resolved or reported unknown",
            not owed,
            (
                f"bot {bot.index}: {unresolved[:3]} unresolved, yet the guard holds itself "
                "reconciled (its next order would not look them up)"
            ),
        )

    def _after_engage(self, bot: Bot, orders: list[dict[str, Any]]) -> None:
        for engaged in self.engaged.get(bot.index, []):
            late = [
                o
                for o in orders
                if int(o["orderId"]) > engaged.watermark
                and (engaged.resumed_at is None or int(o["orderId"]) <= engaged.resumed_at)
                and not _protects(o)
                and (engaged.state is TradingState.HALTED or not _reduces_only(o))
            ]
            self.check(
                "no order after an engage returned",
                not late,
                (
                    f"bot {bot.index}: {[o['clientOrderId'] for o in late][:3]} placed "
                    f"while {engaged.state}"
                ),
            )

    def _answers_true(self, bot: Bot, orders: list[dict[str, Any]]) -> None:
        ids = {str(o["clientOrderId"]): str(o["orderId"]) for o in orders}
        untrue = [c for c, oid in bot.returned.items() if ids.get(c) != oid]
        self.check(
            "every answer true",
            not untrue,
            f"bot {bot.index}: returned orders {untrue[:3]} not on the venue as said",
        )
        journal = bot.process.journal
        if journal is None or bot.process.dead or bot.process.down:
            return
        phantom = []
        for cid in ids:
            entry = journal.get(cid)
            if entry is not None and entry.status in REUSABLE:
                phantom.append(f"{cid} ({entry.status})")
        self.check(
            "every answer true",
            not phantom,
            (
                f"bot {bot.index}: the journal says {phantom[:3]} never existed; the "
                "venue holds them"
            ),
        )

    def _final(self) -> None:
        self._continuous()
        for bot in self.bots:
            journal = bot.process.journal
            assert journal is not None
            unresolved = [e.client_order_id for e in journal.unresolved()]
            self.check(
                "every journaled order resolved or reported unknown",
                not unresolved,
                f"bot {bot.index}: {unresolved[:3]} still unresolved after the heal",
            )
            self._converged(bot)
            self._equity(bot)
        self._no_secrets()

    def _read(self, bot: Bot, method: str, *args: Any) -> Any:
        if bot.strategy.is_async:
            return self.loop.run_until_complete(bot.acall(method, *args))
        return bot.call(method, *args)

    def _converged(self, bot: Bot) -> None:
        key = bot.process.api_key
        truth = {
            f"{r['symbol'][:-4]}/USDT:USDT": float(r["positionAmt"])
            for r in self.venue.position_risk(key)
            if float(r["positionAmt"])
        }
        seen_positions = self._read(bot, "fetch_positions", list(CCXT_SYMBOLS))
        seen = {}
        for p in seen_positions or ():
            amount = float(p.get("contracts") or 0) * (-1 if p.get("side") == "short" else 1)
            if amount:
                seen[p["symbol"]] = amount
        self.check(
            "the guard's view converges to the venue's",
            seen_positions is not None and _close(seen, truth),
            f"bot {bot.index}: positions seen {seen} vs venue {truth}",
        )
        open_truth = {str(o["orderId"]) for o in self.venue.open_orders(key)}
        seen_open: set[str] = set()
        readable = True
        for symbol in CCXT_SYMBOLS:
            for params in ({}, {"trigger": True}):
                listed = self._read(bot, "fetch_open_orders", symbol, None, None, params)
                if listed is None:
                    readable = False
                seen_open |= {str(o["id"]) for o in listed or ()}
        self.check(
            "the guard's view converges to the venue's",
            readable and seen_open == open_truth,
            (
                f"bot {bot.index}: open orders seen {sorted(seen_open)[:4]} vs venue "
                f"{sorted(open_truth)[:4]}"
            ),
        )

    def _equity(self, bot: Bot) -> None:
        key = bot.process.api_key
        venue = self.venue
        balance = self._read(bot, "fetch_balance") or {}
        seen = float((balance.get("USDT") or {}).get("total") or float("nan"))
        truth = venue.equity(key)
        ledger = venue.deposit_units(key) + sum(
            e.wallet_delta_units
            for e in venue.events
            if isinstance(e, Fill | FundingPayment | Liquidation) and e.api_key == key
        )
        self.check(
            "equity and fees to the cent",
            abs(seen - truth) < 0.005 and ledger == venue.wallet_units(key),
            (
                f"bot {bot.index}: guarded {seen:,.4f} vs venue {truth:,.4f}; wallet "
                f"{venue.wallet_units(key) / MONEY_SCALE:,.8f} vs ledger "
                f"{ledger / MONEY_SCALE:,.8f}"
            ),
        )

    def _no_secrets(self) -> None:
        secrets = [b.process.secret.encode() for b in self.bots]
        leaks = []
        for path in sorted(self.root.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                leaks += [f"{path.name}" for s in secrets if s in data]
        text = "\n".join(self.log).encode()
        leaks += ["the log" for s in secrets if s in text]
        self.check(
            "no secret in any byte written",
            not leaks,
            f"a bot's API secret found in {sorted(set(leaks))}",
        )

    def _close(self) -> None:
        disk_full(False)
        for window in self.read_only.values():
            window.end()
        if self.redis is not None:
            self.redis.thaw()  # a frozen server would hold every member's goodbye
        with contextlib.suppress(Exception, SimCrash):
            self._finish_ladders()
        raws = list(self.killed_raw)
        for bot in self.bots:
            bot.process.stop()
            if bot.ex is not None:
                raws.append(bot.ex.exchange)
        for raw in raws:
            if raw is not None and asyncio.iscoroutinefunction(getattr(raw, "close", None)):
                raw.timeout_on_exit = 0  # ccxt sleeps 250 ms of wall time on close otherwise
                with contextlib.suppress(Exception):
                    self.loop.run_until_complete(raw.close())
        # The dead processes' steps are dropped only now, after every check: whatever their
        # clean-up would write goes to closed journals (and is only logged).
        with contextlib.suppress(Exception):
            for bot in self.bots:
                bot.process.graveyard.clear()
        self.loop.close()
        if self.redis is not None:
            self.redis.close()
        shutil.rmtree(self.root, ignore_errors=True)


def _reduces_only(order: dict[str, Any]) -> bool:
    """A venue order that can only reduce: reduce-only, or a stop that closes the position
    (what the guard places behind an entry: REDUCING allows it)."""
    return bool(order.get("reduceOnly") or order.get("closePosition"))


def _protects(order: dict[str, Any]) -> bool:
    """A venue order that only takes risk off when the market goes against the position: a
    reduce-only or close-position stop-loss (trailing or not). Every state lets it through, as
    it does cancels: a HALTED that refused it left an accepted entry without its stop."""
    kind = str(order.get("origType") or order.get("type") or "")
    return _reduces_only(order) and kind in ("STOP", "STOP_MARKET", "TRAILING_STOP_MARKET")


def _close(seen: dict[str, float], truth: dict[str, float]) -> bool:
    keys = set(seen) | set(truth)
    return all(abs(seen.get(k, 0.0) - truth.get(k, 0.0)) < 1e-9 for k in keys)


def _scratch() -> str | None:
    """State directories on a RAM disk when there is one: each order fsyncs its record."""
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() else None


__all__ = [
    "POPULATION",
    "Failure",
    "InlineExecutor",
    "Outcome",
    "SimCrash",
    "World",
]
