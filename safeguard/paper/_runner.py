"""One side of the paper run: a strategy trading on its own mock venue, guarded or naive.

Both sides get a venue built from the same seed and the same fault plan, on simulated time
(a :class:`~safeguard._clock.ManualClock`). The runner moves the venue to each bar's time, lets
the strategy act, and records everything in the paper journal: the venue's own account of
fills and liquidations (read from the engine, which is the ground truth, not from what the
client believed), the guard's events (through its hooks), the naive client's attempts, and
one ``bar`` record of equity, marks, positions and venue health. Sleeps (the guard's backoff,
the naive client's fixed pause) advance simulated time, so a run that waits loses bars the
way a live bot would.

The guarded side also feeds a :class:`~safeguard.killswitch._triggers.RiskMonitor` with the
account's equity on each bar and engages the kill switch when a trigger trips. The guard's own
trip wire runs with every trigger off, for its early warnings alone (journaled through the
hooks): the warnings the market provokes reach the report without changing what is traded
(the paper policy escalates none).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import ccxt

from safeguard._clock import ManualClock
from safeguard._config import Policy, TriggerConfig
from safeguard.guard import guard
from safeguard.guard._events import (
    Hooks,
)
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch, TradingState
from safeguard.killswitch._triggers import EquityUpdate, RiskMonitor
from safeguard.paper._journal import RunJournal
from safeguard.paper._naive import NaiveClient
from safeguard.paper._record import OrderLog, Recorder, unified_symbol, venue_symbol
from safeguard.paper._scenario import CLIENT_TIMEOUT_MS
from safeguard.paper._strategy import Bar, StrategyFactory, TrendFollower
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

Run = Literal["guarded", "naive"]
Transport = Literal["inprocess", "http"]

START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: every run starts on the same simulated midnight."""
API_KEY = "paper-key-0123456789"
API_SECRET = "paper-secret-0123456789abcdef"
CLIENT_IP = "127.0.0.1"
NAIVE_DELAY_S = 0.5
NAIVE_ATTEMPTS = 6
DELIVERY_TURNS = 10_000
"""At most this many turns of the event loop for a bar's stream messages to be delivered (a
stalled stream sends nothing: the strategy then decides without them)."""
SETTLE_TURNS = 50
"""Turns with nothing left to send before the strategy's turn: enough for ccxt.pro to parse
the last message and the strategy's watch loops to take it."""
LISTEN_KEY_REFRESH_S = 1200.0
"""How often a stream run keeps its listen key alive, in the venue's time: ccxt.pro's own
``listenKeyRefreshRate`` (20 minutes). ccxt times its keep-alive on the wall clock, and a
paper run's hours pass in seconds of it, so without this the venue's key (an hour) would
expire under every run longer than one."""


@dataclass(frozen=True)
class PaperConfig:
    """What both sides of a paper run share."""

    policy: Policy
    faults: FaultPlan
    seed: int = 7
    duration_s: float = 86_400.0
    bar_s: float = 120.0
    symbols: tuple[str, ...] = ("BTC/USDT:USDT",)
    """ccxt unified symbols (``BTC/USDT:USDT``)."""
    wallet: float = 10_000.0
    transport: Transport = "inprocess"
    strategy: StrategyFactory = field(default=TrendFollower)

    def __post_init__(self) -> None:
        if not isinstance(self.policy, Policy):
            raise ValueError(f"policy must be a safeguard.Policy, got {type(self.policy).__name__}")
        if not isinstance(self.faults, FaultPlan):
            raise ValueError(f"faults must be a FaultPlan, got {type(self.faults).__name__}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        _finite("duration_s", self.duration_s, minimum=600.0)
        _finite("bar_s", self.bar_s, minimum=1.0)
        _finite("wallet", self.wallet, minimum=1.0)
        if self.bar_s * 20 > self.duration_s:
            raise ValueError(
                f"bar_s ({self.bar_s:g}) leaves fewer than 20 bars in duration_s "
                f"({self.duration_s:g})"
            )
        if isinstance(self.symbols, str) or not self.symbols:
            raise ValueError("symbols must list at least one market")
        for symbol in self.symbols:
            venue_symbol(symbol)  # an unknown market fails here, naming itself
        if self.transport not in ("inprocess", "http"):
            raise ValueError(f"transport must be 'inprocess' or 'http', got {self.transport!r}")
        if not callable(self.strategy):
            raise ValueError("strategy must be a callable building a strategy from the symbols")

    @property
    def bars(self) -> int:
        return int(self.duration_s // self.bar_s)

    @property
    def venue_symbols(self) -> tuple[str, ...]:
        return tuple(venue_symbol(s) for s in self.symbols)


def _finite(name: str, value: object, *, minimum: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be a finite number >= {minimum:g}, got {value!r}")


def paper_policy(base: Policy | None, state_dir: Path) -> Policy:
    """``base`` (default: the paper demo's policy) with its state kept in ``state_dir``, so a
    paper run never reads or engages a real bot's kill switch."""
    if base is None:
        base = Policy.build(
            kill_switch={"triggers": {"max_drawdown_pct": 30.0, "action": "REDUCING"}},
        )
    switch = base.kill_switch.model_copy(
        update={"state_dir": state_dir, "watch_state_file": False, "webhook_url": None}
    )
    return base.model_copy(update={"kill_switch": switch})


# --- the raw ccxt clients ---------------------------------------------------------------------


def _raw_client(
    venue: Venue, dialect: Dialect, server: VenueServer | None, *, pro: bool = False
) -> Any:
    """The strategy's ccxt client on the run's venue: blocking, or ``ccxt.pro`` (``pro``)
    for a strategy written on ``watch_*``."""
    if server is not None:
        exchange = ccxt_client(
            server.url, API_KEY, API_SECRET, timeout_ms=CLIENT_TIMEOUT_MS, pro=pro
        )
    else:
        # Injected latency is spent in simulated time, so the guard's latency figures see it.
        exchange = inprocess_client(dialect, API_KEY, API_SECRET, timeout_ms=CLIENT_TIMEOUT_MS,
                                    on_latency=venue.advance, pro=pro)  # fmt: skip
    send = exchange.create_order

    def create_order(
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        # Binance has no attached stops: the ``stopLoss`` an entry declares is for the verdict
        # only; the strategy places the protecting stop itself once the entry fills.
        sent = {k: v for k, v in (params or {}).items() if k != "stopLoss"}
        return send(symbol, type, side, amount, price, sent)

    exchange.create_order = create_order
    return exchange


# --- one side ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _market(
    config: PaperConfig,
) -> Iterator[tuple[Venue, Dialect, ManualClock, VenueServer | None]]:
    clock = ManualClock(START)
    venue = Venue(VenueConfig(seed=config.seed, symbols=config.venue_symbols), clock=clock)
    venue.create_account(API_KEY, API_SECRET, wallet=config.wallet)
    dialect = Dialect(venue, faults=config.faults)
    server = VenueServer(venue, dialect=dialect) if config.transport == "http" else None
    try:
        yield venue, dialect, clock, server
    finally:
        if server is not None:
            server.close()


def run_side(
    config: PaperConfig,
    run: Run,
    journal: RunJournal,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> None:
    """Run ``config.strategy`` on a fresh venue through the ``run`` client, journaling it.

    A strategy whose ``on_bar`` is a coroutine function is written on ``watch_*``
    (:class:`~safeguard.paper._strategy.StreamStrategy`): it trades through ccxt.pro on an
    event loop of its own (guarded: the guarded async exchange, its view fed by the
    strategy's own watches), bar for bar as the blocking strategies do."""
    strategy = config.strategy(config.symbols)
    if inspect.iscoroutinefunction(getattr(strategy, "on_bar", None)):
        asyncio.run(_run_streamed(config, run, journal, strategy, progress))
        return
    with _Side(config, run, journal, pro=False) as side:
        for index in range(config.bars):
            bar = side.open_bar(index)
            try:
                strategy.on_bar(side.logged, bar)
            except Exception as exc:
                side.failed(index, exc)
            side.close_bar(index, progress)
        side.end()


async def _run_streamed(
    config: PaperConfig,
    run: Run,
    journal: RunJournal,
    strategy: Any,
    progress: Callable[[int, int], None] | None,
) -> None:
    with _Side(config, run, journal, pro=True) as side:
        watching = asyncio.ensure_future(strategy.watch(side.logged))
        try:
            for index in range(config.bars):
                bar = side.open_bar(index)
                await side.keep_listen_key_alive()
                await side.deliver()
                try:
                    await strategy.on_bar(side.logged, bar)
                except Exception as exc:
                    side.failed(index, exc)
                side.close_bar(index, progress)
            side.end()
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watching
            await side.exchange.close()


class _Side:
    """One side's venue, client, recorder and bar bookkeeping: what the blocking and the
    streamed bar loops share (only calling the strategy differs)."""

    def __init__(self, config: PaperConfig, run: Run, journal: RunJournal, *, pro: bool) -> None:
        self.config, self.run, self.journal, self.pro = config, run, journal, pro
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _Side:
        config, journal, stack = self.config, self.journal, self._stack
        venue, dialect, clock, server = stack.enter_context(_market(config))
        self.venue, self.dialect, self.clock = venue, dialect, clock
        raw = self.raw = _raw_client(venue, dialect, server, pro=self.pro)
        self._listen_key_kept = clock.time()
        recorder = self.recorder = Recorder(
            journal, venue, dialect, api_key=API_KEY, client_ip=CLIENT_IP
        )

        def sleep(seconds: float) -> bool:
            journal.write(clock.time(), "sleep", seconds=seconds)
            recorder.ban_check()
            venue.advance(seconds)
            return False

        async def sleep_async(seconds: float) -> bool:
            return sleep(seconds)

        self.monitor: RiskMonitor | None = None
        self.switch: KillSwitch | None = None
        exchange: Any
        if self.run == "guarded":
            policy = config.policy
            hooks = Hooks()
            hooks.subscribe(None, recorder.on_event)
            switch = self.switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
            stack.callback(switch.close)
            state = Path(policy.kill_switch.state_dir)
            exchange = guard(
                raw,
                policy,
                kill_switch=switch,
                clock=clock,
                hooks=hooks,
                journal_path=state / "orders-guarded.jsonl",
                durable_journal=False,
                budget=RateBudget.standalone(policy.throttle),
                sleep=sleep,
                sleep_async=sleep_async,
                rng=random.Random(config.seed),
                triggers=RiskMonitor(_NO_TRIGGERS, limits=policy.risk),
            )
            self.monitor = RiskMonitor(policy.kill_switch.triggers, limits=policy.risk)
        else:
            exchange = NaiveClient(
                raw,
                clock=clock,
                sleep=sleep,
                journal=journal,
                attempts=NAIVE_ATTEMPTS,
                delay_s=NAIVE_DELAY_S,
            )
        self.exchange = exchange
        journal.write(
            clock.time(),
            "start",
            seed=config.seed,
            duration_s=config.duration_s,
            bar_s=config.bar_s,
            symbols=list(config.symbols),
            wallet=config.wallet,
            transport=config.transport,
            streams=self.pro,
            policy_version=config.policy.version if self.run == "guarded" else None,
            policy=config.policy.model_dump(mode="json") if self.run == "guarded" else None,
            faults=config.faults.model_dump(mode="json"),
        )
        self.logged = OrderLog(exchange, journal, venue, clock, api_key=API_KEY)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def open_bar(self, index: int) -> Bar:
        """Move the venue to the bar's time and record the bar; the strategy's turn next."""
        config, clock, recorder = self.config, self.clock, self.recorder
        due = START + (index + 1) * config.bar_s
        if clock.time() < due:
            self.venue.advance(due - clock.time())
        self.dialect.tick()  # scheduled market events fire even if the bot sends nothing
        now = clock.time()
        recorder.venue_events()
        recorder.ban_check()
        watch = None
        if self.monitor is not None and self.switch is not None:
            watch = functools.partial(_watch, self.monitor, self.switch, recorder, now)
        recorder.bar(index, now, watch)
        return Bar(index, now, config.symbols)

    async def deliver(self) -> None:
        """Give the venue's messages of this moment to the strategy's watches before its turn:
        the event loop runs until no stream session has anything left to send and the loop
        has had ``SETTLE_TURNS`` turns more (ccxt parses a message, resolves the watch, the
        strategy's loop takes it and watches again). In process that is a handful of turns
        and no wall time, so a run stays determined by its seed; over loopback each turn
        also gives the socket a millisecond."""
        hub = self.dialect.streams
        pause = 0.0 if self.config.transport == "inprocess" else 0.001
        idle = 0
        for _ in range(DELIVERY_TURNS):
            if any(session.outbox for session in hub.sessions):
                idle = 0
            else:
                idle += 1
                if idle >= SETTLE_TURNS:
                    return
            await asyncio.sleep(pause)

    async def keep_listen_key_alive(self) -> None:
        """What ccxt.pro's keep-alive timer does every 20 minutes, on the venue's clock:
        ``PUT /fapi/v1/listenKey`` for the key the strategy's user-data watches hold (none
        yet: nothing to keep). A failed renewal is ccxt's to notice: its stream breaks when
        the key expires, and its next watch asks for a new one."""
        now = self.clock.time()
        if now - self._listen_key_kept < LISTEN_KEY_REFRESH_S:
            return
        bucket = self.raw.options.get("linear")
        if not isinstance(bucket, dict) or bucket.get("listenKey") is None:
            return
        self._listen_key_kept = now
        with contextlib.suppress(ccxt.BaseError):
            await self.raw.fapiPrivatePutListenKey()

    def failed(self, index: int, exc: Exception) -> None:
        self.journal.write(self.clock.time(), "bar_error", i=index,
                           error_type=exc.__class__.__name__, message=str(exc)[:300])  # fmt: skip

    def close_bar(self, index: int, progress: Callable[[int, int], None] | None) -> None:
        self.recorder.venue_events()
        self.recorder.ban_check()
        if progress is not None:
            progress(index + 1, self.config.bars)

    def end(self) -> None:
        self.recorder.venue_events()
        self.recorder.cascades()
        self.journal.write(self.clock.time(), "end", equity=self.venue.equity(API_KEY),
                           wallet=self.venue.wallet(API_KEY))  # fmt: skip


_NO_TRIGGERS = TriggerConfig(  # the early warnings ride on the trip wire; the trips stay _watch's
    max_orders_per_window=None,
    max_cancels_per_window=None,
    max_rejections_per_window=None,
    max_leverage_changes_per_window=None,
    max_consecutive_errors=None,
    max_data_age_s=None,
    on_ban=False,
    on_liquidation_distance=False,
)


def _watch(
    monitor: RiskMonitor, switch: KillSwitch, recorder: Recorder, now: float, equity: float
) -> dict[str, Any]:
    """Feed the bar's equity to the triggers; the equity peak they measure the drawdown from
    and the trading state after them go into the bar's record (the report draws both)."""
    for trip in monitor.observe(EquityUpdate(now=now, equity=equity)):
        if str(switch.state.state) == trip.action:
            continue
        switch.engage(trip.reason, code=trip.code, state=TradingState(trip.action), by="trigger")
        recorder.kill(now, trip.action, str(trip.code), trip.reason)
    marks = monitor.marks
    return {
        "peak": None if marks is None else marks.peak,
        "trading": str(switch.state.state),
    }


__all__ = [
    "API_KEY",
    "START",
    "PaperConfig",
    "Run",
    "Transport",
    "paper_policy",
    "run_side",
    "unified_symbol",
    "venue_symbol",
]
