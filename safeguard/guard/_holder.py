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
  :class:`~safeguard.guard._market.MarketCache` replaces values rather than mutating them, so
  readers need no lock), and the thread spends its time waiting on sockets, so the GIL costs
  the order path little. The reads the view has due after a message run on the blocking
  guarded exchange in the loop's default executor, so a slow read never stalls the streams.

A loop watches again the moment its watch answers: the reads the view has due after a message
are handed to one reader task and never awaited by the loop. ccxt.pro resolves only a watch
that is waiting when a message arrives; a loop still busy reading when the next message came
would miss it, and the view would wait a whole period of that stream (for ever on a clock that
moves only when told to) for the one after.

A loop whose watch raises (a disconnect, a depth gap, an expired listen key) logs it and
watches again after ``retry_s``; the view meanwhile shows the break (the verdict denies on it).
When the user-data stream's connection is back, the account's REST reconcile is handed to the
reader task like any other due read (a quiet account would otherwise never end the break).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import ccxt

from safeguard._log import logger
from safeguard.guard._core import Send, collecting
from safeguard.guard._streams import (
    ACCOUNT,
    feed_of,
    forget_dead_listen_key,
    is_user_data_url,
    leverage_update,
)
from safeguard.killswitch._state import Engage

if TYPE_CHECKING:
    from safeguard.guard._gate import PreTradeGate

MARKET_WATCHES = ("watch_mark_price", "watch_order_book", "watch_ticker")
ACCOUNT_WATCHES = ("watch_orders", "watch_positions", "watch_balance")

Reads = Callable[[list[Send]], Awaitable[None]]
Engages = Callable[[list[Engage]], Awaitable[None]]
"""How the stream path engages the kill switch for the trips a message caused."""


async def feed(
    view: PreTradeGate,
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    call: Callable[[], Any],
    now: Callable[[], float],
    reads: Reads,
    engage: Engages,
    client: Any = None,
) -> Any:
    """One watch call through the view: ``call()`` is the raw watch (of ``client``, the
    ccxt.pro exchange); its answer goes to the view (and is returned), its failure breaks its
    feed (and is raised). What the message tripped (a stale feed, a mark out of band) is
    engaged through ``engage`` before anything else, even while the bot makes no call; then
    the reads the view has due after the message are made through ``reads``, on the stream's
    path. A user-data watch that failed on a dead listen key has ccxt ask for a new key on the
    next watch (:func:`forget_dead_listen_key`)."""
    view.watch_started(name, args, kwargs, now())
    if client is not None and feed_of(name) == ACCOUNT:
        _hear_reconnects(view, client, now, reads)
        _hear_leverage(view, client)
    try:
        result = call()  # ccxt.pro's watches return a coroutine or a future
        value = await result if inspect.isawaitable(result) else result
    except Exception as exc:
        view.stream_failed(name, args, kwargs, exc, now())
        if client is not None and feed_of(name) == ACCOUNT:
            forget_dead_listen_key(client, exc)
        raise
    finally:
        view.watch_ended(name, args, kwargs)
    with collecting(view.tripwire) as trips:
        due = view.streamed(name, args, kwargs, value, now())
    if trips.pending:
        await engage(trips.take())
    await reads(due)
    return value


_RECONNECT_HOOK = "_sg_reconnect_hook"


def _hear_reconnects(
    view: PreTradeGate, client: Any, now: Callable[[], float], reads: Reads
) -> None:
    """Have ``client`` (ccxt.pro) tell ``view`` when its user-data stream connects, through
    ccxt's ``on_connected`` hook (ccxt gives it to each websocket client it makes, so it is
    set before the first user-data watch makes one). A quiet account sends no event after
    a break: the connection coming back is what lets the view reconcile and trust it again.
    The reconcile's reads are made on the stream's path (``reads``), never on the order
    path. Set once per client; the hook ccxt had still runs first."""
    if getattr(client, _RECONNECT_HOOK, None) is not None:
        return
    connected = client.on_connected
    pending: set[asyncio.Task[None]] = set()

    def on_connected(ws: Any, message: Any = None) -> None:
        connected(ws, message)
        if not is_user_data_url(client, str(getattr(ws, "url", ""))):
            return
        sends = view.account_reconnected(now())
        if sends:
            task = asyncio.ensure_future(reads(sends))
            pending.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(pending.discard)

    client.on_connected = on_connected
    setattr(client, _RECONNECT_HOOK, on_connected)


_LEVERAGE_HOOK = "_sg_leverage_hook"


def _hear_leverage(view: PreTradeGate, client: Any) -> None:
    """Have ``client`` (ccxt.pro) tell ``view`` of each ``ACCOUNT_CONFIG_UPDATE`` (a symbol's
    leverage, changed by any client on the key), which ccxt itself drops unparsed: without it
    the view would judge on the old leverage until the next reconcile read. ccxt hands each
    websocket client it makes its ``handle_message``; a client made before this (a watch the
    bot made outside the guard) is given the wrapper too. Set once per client; ccxt's own
    handling still runs, first."""
    if getattr(client, _LEVERAGE_HOOK, None) is not None:
        return
    handle = client.handle_message

    def handle_message(ws: Any, message: Any) -> Any:
        result = handle(ws, message)
        try:
            update = leverage_update(message)
            if update is None:
                return result
            venue_id, leverage = update
            market = (getattr(client, "markets_by_id", None) or {}).get(venue_id)
            if not market:  # ccxt's safe_symbol would file it under the venue's id
                logger.warning("user-data stream: leverage for unknown market {!r}", venue_id)
                return result
            symbol = market[0]["symbol"] if isinstance(market, list) else market["symbol"]
            if not view.leverage_heard(str(symbol), leverage):
                logger.warning("user-data stream: unusable leverage {!r} for {}", leverage, symbol)
        except Exception:
            # Raised into ccxt's receive loop it would stop the socket delivering anything.
            logger.exception("user-data stream: reading a leverage update failed")
        return result

    client.handle_message = handle_message
    for ws in (getattr(client, "clients", None) or {}).values():
        if getattr(ws, "on_message_callback", None) == handle:
            ws.on_message_callback = handle_message
    setattr(client, _LEVERAGE_HOOK, handle_message)


class StreamHolder:
    """The guard's own watch loops over ``client`` (a ccxt.pro exchange) for ``symbols``."""

    def __init__(
        self,
        view: PreTradeGate,
        client: Any,
        symbols: Sequence[str],
        now: Callable[[], float],
        reads: Reads,
        engage: Engages,
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
        self.engage = engage
        self.retry_s = retry_s
        self.account = account
        self.tasks: list[asyncio.Task[None]] = []
        self._due_reads: deque[list[Send]] = deque()
        self._reader: asyncio.Task[None] | None = None
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
                await feed(
                    self.view, name, args, {}, lambda: method(*args), self.now, self._hand_over,
                    self.engage, self.client,
                )  # fmt: skip
            except asyncio.CancelledError:
                raise
            except ccxt.BaseError as exc:
                logger.warning("held stream {}{} failed, watching again: {}", name, args, exc)
                await asyncio.sleep(self.retry_s)
            except Exception:
                logger.exception("held stream {}{} failed, watching again", name, args)
                await asyncio.sleep(self.retry_s)

    async def _hand_over(self, sends: list[Send]) -> None:
        """The reads due after a message, to the reader task (started if idle); returns at
        once, without yielding, so the loop's next watch is waiting before any new message
        can be handled."""
        if not sends or self._stopping:
            return
        self._due_reads.append(sends)
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read_due())

    async def _read_due(self) -> None:
        """Make the handed-over reads, one batch after another (never two at once)."""
        while self._due_reads and not self._stopping:
            sends = self._due_reads.popleft()
            try:
                await self.reads(sends)
            except asyncio.CancelledError:
                raise
            except Exception:
                # The verdict denies on what stays missing; the streams go on regardless.
                logger.exception("the held streams' reads failed")

    async def _stop(self) -> None:
        self._stopping = True
        self._due_reads.clear()
        tasks = [*self.tasks, *([self._reader] if self._reader is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.tasks.clear()
        self._reader = None

    async def aclose(self) -> None:
        """Stop the loops (the async face); the client stays the caller's to close."""
        await self._stop()

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
                loop.run_until_complete(self._stop())  # the reader, if it is still reading
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


__all__ = ["ACCOUNT_WATCHES", "MARKET_WATCHES", "Engages", "StreamHolder", "feed"]
