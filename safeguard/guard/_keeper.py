"""The view kept fresh on a schedule, for a bot without streams (REST only).

A REST-only bot's view ages between its orders. The order path reads a piece of it only once
it has reached the age its verdict allows (``risk.max_market_data_age_s``, the rules' and tier
tables' ages), and then it must: an order placed after that pays for the reads (orders 2.5 s
apart with 5 s allowed paid four extra requests each, on average), and the first order after
start pays for all of them. ``keep_fresh(symbols)`` on the guarded exchange moves those reads
off the order path: every ``every_s`` seconds a pass reads each piece that is at half its
allowed age, the schedule the stream path keeps
(:meth:`~safeguard.guard._market.MarketCache.scheduled_reads`), for ``symbols`` and every
symbol the account holds a position in. The order path then finds the
view fresh and sends what raw ccxt sends.

- **sync face**: a daemon thread (``keeper.close()`` stops it). A thread, as for the held
  streams: the view is plain state shared with the order path, and the thread spends its
  time waiting on the venue.
- **async face**: a task on the running event loop (``await keeper.aclose()``).

The first pass is made before ``keep_fresh`` returns, so the first order finds the view read.
Passes go through the guarded exchange like any read (rate budget, pacing, retries, the request
log); a read that fails is logged and asked again one due period later, and the verdict still
denies on whatever stays missing or too old. ``tick()`` makes one pass now: the thread and the
task call nothing else, and a simulated clock's tests and benchmarks call it themselves.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from safeguard._log import logger
from safeguard.guard._core import Send
from safeguard.guard._pacing import weight

if TYPE_CHECKING:
    from safeguard.guard._gate import PreTradeGate

R = TypeVar("R")


def schedule_period(every_s: Any, max_data_age_s: float) -> float:
    """The seconds between passes: ``every_s`` checked, or a quarter of the allowed data age.

    A period longer than half the allowed age would let a piece pass the age its verdict
    allows between two passes, and the order path would read it after all: refused, named."""
    longest = max_data_age_s / 2.0
    if every_s is None:
        return max_data_age_s / 4.0
    if isinstance(every_s, bool) or not isinstance(every_s, int | float):
        raise ValueError(f"keep_fresh: every_s must be a number of seconds, got {every_s!r}")
    period = float(every_s)
    if not math.isfinite(period) or period <= 0.0 or period > longest:
        raise ValueError(
            f"keep_fresh: every_s must be above 0 and at most half of "
            f"risk.max_market_data_age_s ({longest:g} s), got {every_s!r}: a longer period "
            "lets the view reach the age its verdict allows between passes"
        )
    return period


_ROUNDS = 3
"""Due reads computed again after a pass's reads, at most this often: the positions the first
pass reads name the held symbols whose pieces it must read too (a restart holding a position
in a symbol not named)."""


def scheduled_read_failed(send: Send, error: Exception) -> None:
    """A pass's read that failed or could not go now (the rate budget would have had it
    wait): the verdict denies on whatever stays missing or too old; the next pass asks
    again once the read's due period is over."""
    logger.warning("{} on the view's schedule not made: {}", send.method, error)


def schedule_weight(sends: Sequence[Send], max_data_age_s: float) -> float:
    """The request weight a minute the schedule spends on ``sends`` (a pass's market-data and
    account reads, each made every half of the allowed data age), by the rate budget's own
    weights. The rules' reads (markets, fees, tier tables) are rare and left out."""
    per_pass = sum(weight(s) for s in sends if s.method not in _RARE_READS)
    return per_pass * 60.0 / (max_data_age_s / 2.0)


_RARE_READS = frozenset({"load_markets", "fetch_trading_fee", "fetch_leverage_tiers"})


class _Schedule(Generic[R]):
    """What a pass reads (pure, the clock as input), and how the face reads it."""

    def __init__(
        self,
        view: PreTradeGate,
        symbols: Sequence[str],
        now: Callable[[], float],
        every_s: float,
        reads: Callable[[list[Send]], R],
    ) -> None:
        self.view = view
        self.symbols = list(symbols)
        self.now = now
        self.every_s = every_s
        self._reads = reads
        self.passes = 0
        """Passes made (whatever their reads answered)."""

    def _batches(self) -> Iterator[list[Send]]:
        """One pass's reads, batch by batch: after each batch the due reads are asked again,
        at most :data:`_ROUNDS` times (the positions the first batch reads name the held
        symbols whose pieces the pass must read too)."""
        for _ in range(_ROUNDS):
            sends = self.due()
            if not sends:
                return
            yield sends

    def due(self) -> list[Send]:
        sends = self.view.scheduled_reads(self.symbols, self.now())
        if self.passes == 0 and sends:
            age = self.view.policy.risk.max_market_data_age_s
            logger.info(
                "view keeper for {}: a pass every {:g}s, about {:.0f} request weight a minute "
                "(with risk.max_market_data_age_s = {:g}s)",
                ", ".join(self.symbols),
                self.every_s,
                schedule_weight(sends, age),
                age,
            )
        return sends


class ViewKeeper(_Schedule[None]):
    """The sync face's schedule: passes on a daemon thread, reads on the blocking guard."""

    _thread: threading.Thread | None = None
    _stop: threading.Event | None = None

    def tick(self) -> int:
        """One pass now; returns how many reads it made."""
        return self._pass(None)

    def _pass(self, stop: threading.Event | None) -> int:
        """One pass; on the thread it ends early once the keeper is closed (a read under
        way finishes first, and it never waits on the rate budget)."""
        made = 0
        for sends in self._batches():
            for send in sends:
                if stop is not None and stop.is_set():
                    return made
                self._reads([send])
                made += 1
        self.passes += 1
        return made

    def start(self) -> ViewKeeper:
        stop = self._stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.every_s):
                try:
                    self._pass(stop)
                except Exception:
                    # The order path reads what the schedule could not; the schedule goes on.
                    logger.exception("the view keeper's pass failed")

        self._thread = threading.Thread(target=run, name="safeguard-view-keeper", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (a pass under way finishes first)."""
        if self._stop is not None:
            self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class AsyncViewKeeper(_Schedule[Awaitable[None]]):
    """The async face's schedule: passes as a task on the running event loop."""

    _task: asyncio.Task[None] | None = None

    async def tick(self) -> int:
        """One pass now; returns how many reads it made."""
        made = 0
        for sends in self._batches():
            await self._reads(sends)
            made += len(sends)
        self.passes += 1
        return made

    def start(self) -> AsyncViewKeeper:
        async def run() -> None:
            while True:
                await asyncio.sleep(self.every_s)
                try:
                    await self.tick()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("the view keeper's pass failed")

        self._task = asyncio.ensure_future(run())
        return self

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop the task (a read under way is cancelled; its piece stays as it was). A task
        its event loop already ended (``asyncio.run`` cancels what is left) is over."""
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        if task.get_loop() is asyncio.get_running_loop():
            await asyncio.gather(task, return_exceptions=True)


__all__ = [
    "AsyncViewKeeper",
    "ViewKeeper",
    "schedule_period",
    "schedule_weight",
    "scheduled_read_failed",
]
