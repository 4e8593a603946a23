"""The view kept fresh on a schedule, for a bot without streams (REST only).

A REST-only bot's view ages between its orders. The order path reads a piece of it only once
it has reached the age its verdict allows (``risk.max_market_data_age_s``, the rules' and tier
tables' ages), and then it must: an order placed after that pays for the reads (orders 2.5 s
apart with 5 s allowed paid four extra requests each, on average), and the first order after
start pays for all of them. ``keep_fresh(symbols)`` on the guarded exchange moves those reads
off the order path: every ``every_s`` seconds a pass reads each piece that is at half its
allowed age, the schedule the stream path keeps (:meth:`MarketCache.scheduled_reads`), for
``symbols`` and every symbol the account holds a position in. The order path then finds the
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
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from safeguard._log import logger
from safeguard.guard._core import Send

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

    def due(self) -> list[Send]:
        return self.view.scheduled_reads(self.symbols, self.now())


class ViewKeeper(_Schedule[None]):
    """The sync face's schedule: passes on a daemon thread, reads on the blocking guard."""

    _thread: threading.Thread | None = None
    _stop: threading.Event | None = None

    def tick(self) -> int:
        """One pass now; returns how many reads it made."""
        sends = self.due()
        if sends:
            self._reads(sends)
        self.passes += 1
        return len(sends)

    def start(self) -> ViewKeeper:
        stop = self._stop = threading.Event()

        def run() -> None:
            while not stop.wait(self.every_s):
                try:
                    self.tick()
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
        sends = self.due()
        if sends:
            await self._reads(sends)
        self.passes += 1
        return len(sends)

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
        """Stop the task (a read under way is cancelled; its piece stays as it was)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


__all__ = ["AsyncViewKeeper", "ViewKeeper", "schedule_period"]
