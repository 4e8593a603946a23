"""The kill switch's state in Redis, so one engage stops a whole fleet of bots.

:class:`RedisStateStore` implements :class:`~safeguard.killswitch._store.StateStore`. Keys
(``P`` is ``{fleet.key_prefix}``, braces included: a Redis Cluster hash tag)::

    P:ks:state      the current state, as FileStateStore's state.json (encode_state)
    P:ks:history    a list of history events, oldest first (RPUSH)
    P:ks:events     pub/sub channel: {"state": ..., "ack": token|null, "from": member}
    P:ks:lock       the read-modify-write lock (SET NX PX, released by compare-and-delete)
    P:ks:members    sorted set of live bots, scored by Redis' clock at their last check-in
    P:ks:ack:TOKEN  the bots that confirmed one engage (a list, expires)

**The order path never waits for Redis.** A reader thread keeps a local copy of the state
fresh from the channel, and re-reads the key every ``health_check_interval_s`` (a bot that
missed a message still sees the state). ``version()`` and ``load()`` read that copy only.

**An engage returns once the fleet has stopped.** ``save`` of a REDUCING or HALTED state
publishes it with a token, then waits (at most ``ack_timeout_s``) until every live bot has
adopted it and drained the sends already past its gate (:func:`attach` does that in each bot)
and says so. A bot that does not confirm in time is named in an error log.

**A lost link is unsafe.** While Redis is unreachable, ``load()`` answers
:func:`~safeguard.fleet._connection.disconnected_state` (``on_disconnect``, or the last known
state if tighter), so every bot trades as HALTED or REDUCING, never ACTIVE. An engage made
meanwhile is kept as *owed* and written when the link returns.

**Redis that comes back empty does not unlatch.** On every (re)connect the bot compares what
Redis holds with what it knew: a state Redis lost is written back (only into an empty key or
over a looser state, atomically in one script), so a HALTED fleet stays HALTED after a Redis
restart without persistence, and its history records the restore. A bot that never knew any
state (started while Redis was down, and Redis came back empty) has nothing to restore; run
Redis with AOF if even that window matters.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from safeguard._clock import Clock, SystemClock
from safeguard._config import FleetConfig, Policy
from safeguard._errors import ConfigError
from safeguard._log import logger
from safeguard._subscribers import Subscribers
from safeguard.fleet._connection import (
    connect,
    describe,
    disconnected_state,
    key_tag,
    link_errors,
    member_id,
)
from safeguard.killswitch._state import already_holds
from safeguard.killswitch._store import decode_state, encode_state
from safeguard.killswitch._switch import SwitchState, TradingState

if TYPE_CHECKING:
    import redis

    from safeguard.killswitch._switch import KillSwitch

StoreListener = Callable[[str | None], None]
"""Told that the state (or the link) changed; the argument is an engage's ack token."""

_SEVERITY = {"ACTIVE": 0, "REDUCING": 1, "HALTED": 2}

# Write ARGV[1] (a state document, state ARGV[3], code ARGV[4]) unless the key already holds it
# (killswitch.state.already_holds: tighter, or as tight and not a store's fail-closed stand-in
# that a decision replaces); publish it. One script, so two bots restoring after a Redis
# restart cannot undo each other's engage.
_RESTORE = """
local sev = {ACTIVE = 0, REDUCING = 1, HALTED = 2}
local want = sev[ARGV[3]]
local unavailable = 'STATE_STORE_UNAVAILABLE'
local current = redis.call('GET', KEYS[1])
if current then
  local ok, doc = pcall(cjson.decode, current)
  if ok and type(doc) == 'table' and sev[doc['state']] ~= nil then
    local held = sev[doc['state']]
    if held > want then return 0 end
    if held == want and not (doc['code'] == unavailable and ARGV[4] ~= unavailable) then
      return 0
    end
  elseif want == 0 then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('PUBLISH', KEYS[2], ARGV[2])
return 1
"""

# Check in as a live bot on Redis' clock (the fleet's machines' clocks may disagree) and
# forget bots silent for longer than the TTL.
_HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if ARGV[3] == '1' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]) * 10)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[2]), '+inf')
"""

_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisStateStore:
    """The latch's state in Redis, with a local copy the order path reads. Thread-safe.

    Construction connects once, synchronously, so a kill switch built on the store starts
    from the fleet's state (or, if Redis is unreachable, from ``on_disconnect``). ``listen``
    (default on) starts the reader thread; :meth:`close` stops it.
    """

    def __init__(
        self,
        config: FleetConfig,
        *,
        url: str | None = None,
        clock: Clock | None = None,
        listen: bool = True,
    ) -> None:
        self._config = config
        self._redis: redis.Redis = connect(config, url)
        self._errors = link_errors()
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.member = member_id()
        prefix = key_tag(config)
        self.state_key = f"{prefix}:ks:state"
        self.history_key = f"{prefix}:ks:history"
        self.channel = f"{prefix}:ks:events"
        self.lock_key = f"{prefix}:ks:lock"
        self.members_key = f"{prefix}:ks:members"
        self._ack_prefix = f"{prefix}:ks:ack:"
        self._restore = self._redis.register_script(_RESTORE)
        self._heartbeat_script = self._redis.register_script(_HEARTBEAT)
        self._unlock = self._redis.register_script(_UNLOCK)

        self._lock = threading.Lock()
        self._known: SwitchState | None = None
        self._owed: SwitchState | None = None
        self._corrupt: ConfigError | None = None
        self._up = False
        self._ever_down = False
        self._lost_at = self._clock.time()
        self._error = "not connected yet"
        self._version = 0
        self._live: list[str] = []
        self._listeners: Subscribers[StoreListener] = Subscribers("listener")
        self._watchers: Subscribers[Callable[[], None]] = Subscribers("watcher")
        self._closed = threading.Event()
        self._dispatch: queue.SimpleQueue[str | _Stop | None] = queue.SimpleQueue()
        # Only a store that listens (a running bot) can confirm engages, so only it counts as
        # a member an engage waits for; a one-shot CLI store does not.
        self._listening = listen

        try:
            self._resync()
            self._heartbeat()
            self._mark_up()
        except self._errors as exc:
            self._mark_down(exc)
        self._threads: list[threading.Thread] = []
        if listen:
            for target, name in ((self._listen, "reader"), (self._deliver, "dispatch")):
                thread = threading.Thread(
                    target=target, name=f"safeguard-fleet-{name}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def __str__(self) -> str:
        return f"redis {self.state_key}"

    def __repr__(self) -> str:
        return f"RedisStateStore({self.state_key!r}, up={self._up})"

    # --- what the order path reads (no I/O) -----------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the link to Redis is up (as of the last command or check)."""
        return self._up

    def version(self) -> object:
        return self._version

    def load(self) -> SwitchState | None:
        with self._lock:
            if self._corrupt is not None:
                raise self._corrupt
            known = _tighter(self._known, self._owed)
            if not self._up:
                return disconnected_state(
                    self._config, known, lost_at=self._lost_at, error=self._error
                )
            if known is None and self._ever_down:
                # Nothing to restore and nothing stored: ACTIVE, said out loud, so the switch
                # does not write its disconnected state back as if someone had deleted it.
                return SwitchState(TradingState.ACTIVE, "", "", "", self._lost_at)
            return known

    # --- writing ---------------------------------------------------------------------------

    def save(self, state: SwitchState) -> None:
        """Replace the state and publish it. For REDUCING and HALTED, return only once every
        live bot confirmed it stopped (or ``ack_timeout_s`` passed: the laggards are logged).

        Raises ``OSError`` when Redis is unreachable; a tightening that could not be written
        is kept and written when the link returns.
        """
        document = encode_state(state)
        token = None if state.state is TradingState.ACTIVE else uuid.uuid4().hex
        message = json.dumps({"state": document, "ack": token, "from": self.member})
        if not self._up and self._listening:
            # Known down (the reader reconnects and settles what is owed): an engage must not
            # also wait out a timeout on a link that hangs.
            self._owe(state)
            raise OSError(f"fleet Redis unreachable, state not shared: {self._error}")
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.set(self.state_key, json.dumps(document, sort_keys=True))
            pipe.publish(self.channel, message)
            pipe.execute()
        except self._errors as exc:
            self._mark_down(exc)
            self._owe(state)
            raise OSError(f"fleet Redis unreachable, state not shared: {describe(exc)}") from exc
        with self._lock:
            self._owed = None
            self._corrupt = None
            self._adopt_locked(state)
        if token is not None:
            self._await_acks(token)

    def owes(self, state: SwitchState) -> bool:
        """Whether ``state`` (or a tighter one) waits in memory to be written to Redis."""
        with self._lock:
            owed = self._owed
        return owed is not None and owed.state.severity >= state.state.severity

    def owe(self, state: SwitchState) -> None:
        """Keep ``state`` to write when Redis is back (a decision made while it cannot be
        reached), unless Redis then holds one at least as tight; see :meth:`_resync`."""
        self._owe(state)

    def _owe(self, state: SwitchState) -> None:
        """Keep a tightening Redis did not get, to write when it is back."""
        if state.state is TradingState.ACTIVE:
            return
        with self._lock:
            self._owed = _tighter(self._owed, state)
            # A new version makes every reader of the copy load it again: one that loaded the
            # disconnected state a moment before this engage must not keep that looser state.
            self._version += 1
        self._notify(None)

    def append_history(self, event: Mapping[str, Any]) -> None:
        line = json.dumps(dict(event), sort_keys=True, allow_nan=False)
        try:
            self._redis.rpush(self.history_key, line)
        except self._errors as exc:
            self._mark_down(exc)
            raise OSError(f"fleet Redis unreachable, history not written: {describe(exc)}") from exc

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The recorded events, oldest first (the last ``limit``). Raises ``OSError``."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        if limit == 0:
            return []
        try:
            raw = self._redis.lrange(self.history_key, -limit if limit else 0, -1)
        except self._errors as exc:
            raise OSError(f"fleet Redis unreachable: {describe(exc)}") from exc
        events = []
        for line in raw:
            with contextlib.suppress(ValueError):
                event = json.loads(line)
                if isinstance(event, dict):
                    events.append(event)
        return events

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The fleet-wide lock. With Redis unreachable it is skipped: ``save`` then fails (and
        keeps an engage owed), which is better than an engage that waits on a dead link."""
        if not self._up and self._listening:
            yield  # known down: save fails at once and keeps an engage owed
            return
        token = uuid.uuid4().hex
        # The lease outlasts the longest holder (an engage waiting for confirmations); a holder
        # that died lets go when it ends, and a waiter gives up only after that.
        lease = self._config.ack_timeout_s + 3 * self._config.command_timeout_s + 2.0
        lease_ms = round(lease * 1000)
        deadline = time.monotonic() + lease + 1.0
        acquired = False
        try:
            while True:
                acquired = bool(self._redis.set(self.lock_key, token, nx=True, px=lease_ms))
                if acquired or time.monotonic() >= deadline:
                    break
                time.sleep(0.001)
        except self._errors as exc:
            self._mark_down(exc)
        if not acquired:
            if self._up:
                logger.warning(
                    "fleet lock {} held past its lease; going on without it", self.lock_key
                )
            yield
            return
        try:
            # A read-modify-write must read Redis, not the copy: a change another bot made
            # just before we got the lock may still be on its way to the reader.
            self._resync()
        except self._errors as exc:
            self._mark_down(exc)
        try:
            yield
        finally:
            with contextlib.suppress(*self._errors):
                self._unlock(keys=[self.lock_key], args=[token])

    # --- the fleet -------------------------------------------------------------------------

    def add_listener(self, callback: StoreListener) -> Callable[[], None]:
        """Call ``callback(ack_token)`` (on the store's dispatch thread) after every change of
        the state or the link. Returns a function that removes it."""
        return self._listeners.add(callback)

    def add_watcher(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` on the reader thread the moment the state or the link changes.

        It must be quick (adopting the change, e.g. ``switch.refresh``): the reader waits for
        it. Slow work (draining, confirming) belongs in :meth:`add_listener`. Returns a
        function that removes it.
        """
        return self._watchers.add(callback)

    def ack(self, token: str) -> None:
        """Confirm engage ``token``: this bot adopted it and sends nothing it forbids."""
        key = self._ack_prefix + token
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.rpush(key, self.member)
            pipe.expire(key, 60)
            pipe.execute()
        except self._errors as exc:
            self._mark_down(exc)

    def live_members(self) -> list[str]:
        """The bots that checked in within ``member_ttl_s`` (as of the last check-in)."""
        with self._lock:
            return list(self._live)

    def _await_acks(self, token: str) -> None:
        key = self._ack_prefix + token
        try:
            expected = set(self._heartbeat()) - {self.member}
            confirmed: set[str] = set()
            deadline = time.monotonic() + self._config.ack_timeout_s
            # BLPOP must return before the socket timeout, or a slow fleet looks like a dead link.
            step = max(self._config.command_timeout_s / 2, 0.01)
            while expected - confirmed and (left := deadline - time.monotonic()) > 0:
                item = self._redis.blpop([key], timeout=min(left, step))
                if item is not None:
                    confirmed.add(_text(item[1]))
            self._redis.delete(key)
        except self._errors as exc:
            self._mark_down(exc)
            logger.error("kill switch: could not collect confirmations: {}", describe(exc))
            return
        if expected - confirmed:
            logger.error(
                "kill switch: {} bot(s) did not confirm the engage within {} s: {}",
                len(expected - confirmed),
                self._config.ack_timeout_s,
                ", ".join(sorted(expected - confirmed)),
            )

    # --- the reader ------------------------------------------------------------------------

    def _listen(self) -> None:
        interval = self._config.health_check_interval_s
        seen = self._version
        while not self._closed.is_set():
            # Through a Callable-typed name: redis < 8 leaves pubsub() untyped, redis 8 types
            # it, and an ignore comment would be wrong on one of the two.
            open_pubsub: Callable[..., Any] = self._redis.pubsub
            pubsub = open_pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                # Read after subscribing, so no change can fall between the read and the
                # subscription.
                self._resync()
                self._heartbeat()
                self._mark_up()
                seen = self._watch(seen)
                next_check = time.monotonic() + interval
                while not self._closed.is_set():
                    message = pubsub.get_message(timeout=max(next_check - time.monotonic(), 0))
                    if message is not None and message.get("type") == "message":
                        self._on_message(message["data"])
                    if time.monotonic() >= next_check:
                        self._resync()
                        self._heartbeat()
                        # Another thread's failed command may have marked the link down.
                        self._mark_up()
                        next_check = time.monotonic() + interval
                    seen = self._watch(seen)
            except self._errors as exc:
                if not self._closed.is_set():
                    self._mark_down(exc)
            except Exception:  # a reader that dies silently would leave the bot deaf
                logger.exception("fleet: reader failed; reconnecting")
                self._mark_down(RuntimeError("reader failed"))
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()
            seen = self._watch(seen)
            self._closed.wait(self._config.reconnect_interval_s)

    def _watch(self, seen: int) -> int:
        """Run the watchers if the copy changed since ``seen``; return the version now."""
        version = self._version
        if version != seen:
            for watcher in self._watchers.snapshot():
                try:
                    watcher()
                except Exception:
                    logger.exception("fleet: watcher {!r} failed", watcher)
        return version

    def _on_message(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            state = decode_state(json.dumps(message["state"]).encode(), source=self.channel)
            token = message.get("ack")
            sender = message.get("from")
        except (ValueError, KeyError, TypeError, ConfigError) as exc:
            # The key is the truth; a garbled message only means: read it now.
            logger.warning("fleet: unreadable message on {}: {}", self.channel, exc)
            self._resync()
            return
        with self._lock:
            self._adopt_locked(state)
        if isinstance(token, str) and sender != self.member:
            self._notify(token)

    def resync(self) -> None:
        """Read Redis now, not the copy the reader keeps (see ``KeepsCopy``): an engage that
        found nothing to tighten in the copy was lost when another process had just resumed
        (reported "already HALTED" while Redis held ACTIVE)."""
        if not self._up:
            return  # load answers with the disconnected state; nothing to read
        try:
            self._resync()
        except self._errors as exc:
            self._mark_down(exc)

    def _resync(self) -> None:
        """Read the key; write back what Redis lost; adopt the result."""
        with self._lock:
            known, owed = self._known, self._owed
        stored, corrupt = self._read()
        restore = _to_restore(known, owed, stored, corrupt)
        if restore is not None:
            document = encode_state(restore)
            message = json.dumps({"state": document, "ack": None, "from": self.member})
            wrote = self._restore(
                keys=[self.state_key, self.channel],
                args=[
                    json.dumps(document, sort_keys=True),
                    message,
                    restore.state.value,
                    str(restore.code),
                ],
            )
            if wrote:
                logger.warning(
                    "fleet: Redis held {} kill switch state; wrote back {} ({}: {})",
                    "a corrupt" if corrupt else "an older" if stored else "no",
                    restore.state,
                    restore.code,
                    restore.reason,
                )
                event = {k: v for k, v in document.items() if k != "format"}
                event |= {
                    "event": "restore" if restore is not owed else "engage",
                    "previous": stored.state.value if stored else None,
                    "recorded_at": time.time(),
                }
                self._redis.rpush(self.history_key, json.dumps(event, sort_keys=True))
            stored, corrupt = self._read()
        with self._lock:
            self._owed = None
            changed = str(corrupt) != str(self._corrupt)
            self._corrupt = corrupt
            if changed:
                self._version += 1
            if stored is not None:
                changed = self._adopt_locked(stored) or changed
        if changed:
            self._notify(None)

    def _read(self) -> tuple[SwitchState | None, ConfigError | None]:
        raw = self._redis.get(self.state_key)
        if raw is None:
            return None, None
        try:
            return decode_state(_bytes(raw), source=f"redis key {self.state_key}"), None
        except ConfigError as exc:
            return None, exc

    def _heartbeat(self) -> list[str]:
        check_in = "1" if self._listening else "0"
        raw = self._heartbeat_script(
            keys=[self.members_key], args=[self.member, self._config.member_ttl_s, check_in]
        )
        live = [_text(m) for m in raw]
        with self._lock:
            self._live = live
        return live

    def _adopt_locked(self, state: SwitchState) -> bool:
        if state == self._known:
            return False
        self._known = state
        self._version += 1
        return True

    def _mark_up(self) -> None:
        with self._lock:
            if self._up:
                return
            self._up = True
            self._version += 1
        logger.info("fleet: connected to Redis ({})", self.state_key)
        self._notify(None)

    def _mark_down(self, exc: BaseException) -> None:
        with self._lock:
            self._error = describe(exc)
            if not self._up and self._ever_down:
                return
            self._up = False
            self._ever_down = True
            self._lost_at = self._clock.time()
            self._version += 1
        logger.error(
            "fleet: lost the link to Redis ({}); trading as {} until it is back",
            self._error,
            self._config.on_disconnect,
        )
        self._notify(None)

    def _notify(self, token: str | None) -> None:
        if self._listening:  # a one-shot store has no dispatch thread to empty the queue
            self._dispatch.put(token)

    def _deliver(self) -> None:
        while True:
            item = self._dispatch.get()
            if isinstance(item, _Stop):
                return
            for listener in self._listeners.snapshot():
                try:
                    listener(item)
                except Exception:
                    logger.exception("fleet: listener {!r} failed", listener)

    # --- the end ---------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop the threads and leave the fleet (engages stop waiting for this bot)."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._dispatch.put(_Stop())
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        # Only now: a reader still between two checks would check in again after the
        # removal, and every engage would wait ack_timeout_s for a bot that has left.
        with contextlib.suppress(*self._errors):
            self._redis.zrem(self.members_key, self.member)
        with contextlib.suppress(*self._errors):
            self._redis.close()

    def __enter__(self) -> RedisStateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


class _Stop:
    """Ends the dispatch thread."""


def _to_restore(
    known: SwitchState | None,
    owed: SwitchState | None,
    stored: SwitchState | None,
    corrupt: ConfigError | None,
) -> SwitchState | None:
    """What this bot must write back into Redis after (re)connecting, if anything. Pure.

    An owed engage (made while Redis was unreachable) is written unless Redis already holds
    it (:func:`~safeguard.killswitch._state.already_holds`: tighter, or as tight and not the
    fail-closed stand-in a decision replaces). The last known state is written back only if
    Redis lost it: the key is empty, or corrupt, or older than what this bot saw (Redis
    restarted from an older snapshot). A newer state in Redis is someone's later decision (a
    resume made while this bot was cut off) and wins.
    """
    candidates = []
    if owed is not None and (stored is None or not already_holds(stored, owed.state, owed.code)):
        candidates.append(owed)
    if known is not None:
        if corrupt is not None:
            lost = known.state is not TradingState.ACTIVE
        else:
            lost = stored is None or stored.since < known.since
        if lost:
            candidates.append(known)
    chosen = None
    for candidate in candidates:
        chosen = _tighter(chosen, candidate)
    return chosen


def _tighter(a: SwitchState | None, b: SwitchState | None) -> SwitchState | None:
    """``b`` unless ``a`` already holds it (a decision beats a fail-closed stand-in of the
    same severity; otherwise the first of two as tight stays)."""
    if a is None or b is None:
        return a if b is None else b
    return a if already_holds(a, b.state, b.code) else b


def attach(switch: KillSwitch, store: RedisStateStore) -> Callable[[], None]:
    """Make ``switch`` (built on ``store``) take every change at once and confirm engages.

    Without it a bot still adopts a change on its next order or poll; with it, the change is
    adopted on the reader thread the moment it arrives, and an engage elsewhere is confirmed
    (on the dispatch thread) only after this bot's sends already past the gate have drained.
    Returns a function that detaches.
    """
    if switch.store is not store:
        raise ValueError("attach: the kill switch must be built on this store")

    def on_change(token: str | None) -> None:
        try:
            target: SwitchState | None = store.load()
        except ConfigError:
            target = None  # the switch fails closed on it by itself
        current = switch.refresh()
        deadline = time.monotonic() + 0.5
        # refresh() gives way to an order path refreshing at the same moment; try again.
        while target is not None and not _holds(current, target) and time.monotonic() < deadline:
            time.sleep(0.0005)
            current = switch.refresh()
        if token is None:
            return
        if current.state is not TradingState.ACTIVE:
            # Engaging at the state already held changes nothing; it only waits for the sends
            # already past the gate, which is what the confirmation promises.
            switch.engage(current.reason, by=current.by, state=current.state, code=current.code)
        store.ack(token)

    def adopt() -> None:
        switch.refresh()

    removers = [store.add_watcher(adopt), store.add_listener(on_change)]

    def detach() -> None:
        for remove in removers:
            remove()

    return detach


def _holds(current: SwitchState, target: SwitchState) -> bool:
    return current == target or current.state.severity > target.state.severity


def open_fleet_switch(
    policy: Policy, *, url: str | None = None, clock: Clock | None = None, watch: bool = True
) -> tuple[KillSwitch, RedisStateStore]:
    """A kill switch on the fleet's Redis (``policy.fleet``), attached. Close the switch, then
    the store."""
    from safeguard.killswitch._switch import KillSwitch

    store = RedisStateStore(policy.fleet, url=url, clock=clock)
    try:
        switch = KillSwitch(policy.kill_switch, clock=clock, store=store, watch=watch).start()
    except BaseException:
        store.close()
        raise
    attach(switch, store)
    return switch, store


__all__ = ["RedisStateStore", "StoreListener", "attach", "open_fleet_switch"]
