"""Streams the guard holds itself: its own watch loops feeding its view.

A bot that does not watch (it polls, or is written on the blocking ccxt client) can still have
a stream-fed view: ``hold_streams(symbols)`` on the guarded exchange runs one watch loop per
stream (mark price, order book and ticker of each symbol, and the user-data stream's orders,
positions and balance), each awaiting its stream again as soon as it answers. What a loop
brings goes through the same path as the user's own ``watch_*`` calls (:func:`feed`).

- **async face**: the loops are tasks on the running event loop; ``await holder.aclose()``.
- **sync face**: a ccxt.pro client (the blocking ccxt has no websockets) on a background
  thread that owns its own asyncio event loop; ``holder.close()`` stops it. A thread and not a
  process: the view is plain state shared in memory with the order path (the
  :class:`~safeguard.guard.market.MarketCache` replaces values rather than mutating them, so
  readers need no lock), and the thread spends its time waiting on sockets, so the GIL costs
  the order path little. The reads the view has due after a message run on the blocking
  guarded exchange in the loop's default executor, so a slow read never stalls the streams.

A loop whose watch raises (a disconnect, a depth gap, an expired listen key) logs it and
watches again after ``retry_s``; the view meanwhile shows the break (the verdict denies on it).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import ccxt

from safeguard._log import logger
from safeguard.guard.core import Send

if TYPE_CHECKING:
    from safeguard.guard.gate import PreTradeGate

MARKET_WATCHES = ("watch_mark_price", "watch_order_book", "watch_ticker")
ACCOUNT_WATCHES = ("watch_orders", "watch_positions", "watch_balance")

Reads = Callable[[list[Send]], Awaitable[None]]


async def feed(
    view: PreTradeGate,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: Callable[[], Any],
    now: Callable[[], float],
    reads: Reads,
) -> Any:
    """One watch call through the view: ``call()`` is the raw watch; its answer goes to the
    view (and is returned), its failure breaks its feed (and is raised); the reads the view
    has due after the message are made through ``reads``, on the stream's path."""
    view.watch_started(name, args, kwargs, now())
    try:
        result = call()  # ccxt.pro's watches return a coroutine or a future
        value = await result if inspect.isawaitable(result) else result
    except Exception as exc:
        view.stream_failed(name, args, kwargs, exc, now())
        raise
    finally:
        view.watch_ended(name, args, kwargs)
    await reads(view.streamed(name, args, kwargs, value, now()))
    return value


class StreamHolder:
    """The guard's own watch loops over ``client`` (a ccxt.pro exchange) for ``symbols``."""

    def __init__(
        self,
        view: PreTradeGate,
        client: Any,
        symbols: Sequence[str],
        now: Callable[[], float],
        reads: Reads,
        *,
        retry_s: float = 1.0,
        account: bool = True,
    ) -> None:
        if not symbols or not all(isinstance(s, str) and s for s in symbols):
            raise ValueError(f"hold_streams needs a list of symbols, got {symbols!r}")
        if not callable(getattr(client, "watch_mark_price", None)):
            raise ValueError(
                f"hold_streams needs a ccxt.pro exchange with watch_* methods, got "
                f"{type(client).__name__}"
            )
        self.view = view
        self.client = client
        self.symbols = list(symbols)
        self.now = now
        self.reads = reads
        self.retry_s = retry_s
        self.account = account
        self.tasks: list[asyncio.Task[None]] = []
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def watches(self) -> list[tuple[str, tuple[Any, ...]]]:
        market = [(m, (s,)) for s in self.symbols for m in MARKET_WATCHES]
        return market + ([(m, ()) for m in ACCOUNT_WATCHES] if self.account else [])

    # --- the loops (on whichever event loop runs them) ---------------------------------------

    def start_tasks(self) -> StreamHolder:
        """Start the loops as tasks on the running event loop (the async face)."""
        for name, args in self.watches():
            self.tasks.append(asyncio.ensure_future(self._loop_of(name, args)))
        return self

    async def _loop_of(self, name: str, args: tuple[Any, ...]) -> None:
        method = getattr(self.client, name)
        while not self._stopping:
            try:
                await feed(self.view, name, args, {}, lambda: method(*args), self.now, self.reads)
            except asyncio.CancelledError:
                raise
            except ccxt.BaseError as exc:
                logger.warning("held stream {}{} failed, watching again: {}", name, args, exc)
                await asyncio.sleep(self.retry_s)
            except Exception:
                logger.exception("held stream {}{} failed, watching again", name, args)
                await asyncio.sleep(self.retry_s)

    async def aclose(self) -> None:
        """Stop the loops (the async face); the client stays the caller's to close."""
        self._stopping = True
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()

    # --- the background thread (the sync face) -----------------------------------------------

    def start_thread(self) -> StreamHolder:
        """Run the loops on a daemon thread that owns its own event loop."""
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            self.start_tasks()
            started.set()
            try:
                loop.run_until_complete(asyncio.gather(*self.tasks, return_exceptions=True))
            finally:
                try:
                    loop.run_until_complete(self.client.close())
                finally:
                    loop.close()

        self._thread = threading.Thread(target=run, name="safeguard-streams", daemon=True)
        self._thread.start()
        started.wait()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread's loops and close its client (the sync face)."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        self._stopping = True
        if not loop.is_closed():
            loop.call_soon_threadsafe(lambda: [task.cancel() for task in self.tasks])
        thread.join(timeout)


__all__ = ["ACCOUNT_WATCHES", "MARKET_WATCHES", "StreamHolder", "feed"]
