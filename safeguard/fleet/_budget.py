"""One rate budget for a fleet: request weight per IP and order counts per account, in Redis.

:class:`RedisRateBudget` answers exactly what :class:`~safeguard.guard._throttle.RateBudget`
answers (the same :data:`~safeguard.guard._throttle.Admission` values, the same thresholds,
reserve and pacing), but the windows it counts in live in Redis, so four bots on one IP and one
API key draw on one budget and together stay under the venue's limit. Each ``decide`` is one
Lua script run atomically by Redis: read every window the request counts against, roll the
ones whose period ended, refuse (``Wait``/``Hold``/``Banned``) or charge all of them. Two bots
can therefore never both take the last unit. The script takes ``now`` from the caller, as
every decision here does; Redis' own clock is never read.

A 418 recorded by one bot bans every bot on that IP (the ban lives with the windows), and is
also kept locally so a bot that loses Redis still knows it is banned.

While Redis is unreachable a bot falls back to a local budget holding
``fleet.budget_fallback_share`` of each limit (a quarter by default: four bots stay under the
limit together), and returns to the shared one as soon as a command succeeds again.

Keys (``P`` is ``{fleet.key_prefix}``): ``P:rl:<scope>:<LIMIT_TYPE>:<seconds>`` (hash: window
index ``w``, ``used``, pacing ``next``) with ``<scope>`` the IP key for weight and
``account:<key>`` for orders, and ``P:rl:<ip_key>:scope`` (hash: ``banned_until``,
``hold_until``, ``cancels_exempt``). Window keys expire two periods after their last use.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from safeguard._config import FleetConfig, ThrottleConfig
from safeguard._log import logger
from safeguard.fleet._connection import connect, describe, key_tag, link_errors
from safeguard.guard._throttle import (
    GO,
    HEADER_FAMILY,
    USES_RESERVE,
    Admission,
    Banned,
    Hold,
    LimitType,
    NeverFits,
    RateBudget,
    RateLimit,
    RateLimits,
    RequestKind,
    Wait,
    reported_usage,
    request_cost,
    usable_share,
)
from safeguard.risk import _inputs

if TYPE_CHECKING:
    import redis

_PER_IP = (LimitType.REQUEST_WEIGHT, LimitType.RAW_REQUESTS)

# Numbers cross the Lua boundary as strings in %.17g: Redis would truncate a Lua number reply
# to an integer, and Lua's tostring keeps only 14 digits.
_LUA_HEAD = """
local function num(s, default)
  local v = tonumber(s)
  if v == nil then return default end
  return v
end
local function str(x) return string.format('%.17g', x) end
local function load(key, now, skew, interval)
  local h = redis.call('HMGET', key, 'w', 'used', 'next')
  local w, used, nxt = num(h[1], -1), num(h[2], 0), num(h[3], 0)
  local current = math.floor((now - skew) / interval)
  if current > w then w, used, nxt = current, 0, 0 end
  return w, used, nxt
end
local function save(key, w, used, nxt, interval)
  redis.call('HSET', key, 'w', str(w), 'used', str(used), 'next', str(nxt))
  redis.call('PEXPIRE', key, math.floor(interval * 2000 + 60000))
end
"""

# KEYS[1] the IP scope; KEYS[1+i] window i.  ARGV: now, skew, soft, uses_reserve, is_read,
# is_cancel, then per window: limit, interval, cost, cap, label.
_DECIDE = (
    _LUA_HEAD
    + """
local now, skew, soft = num(ARGV[1]), num(ARGV[2]), num(ARGV[3])
local uses_reserve, is_read, is_cancel = ARGV[4] == '1', ARGV[5] == '1', ARGV[6] == '1'
local scope = redis.call(
  'HMGET', KEYS[1], 'banned_until', 'hold_until', 'cancels_exempt', 'hold_label')
local banned = num(scope[1], 0)
if banned > now then return {'banned', str(banned)} end
local hold = num(scope[2], 0)
if hold > now and not (is_cancel and scope[3] == '1') then
  return {'wait', str(hold - now), scope[4] or '429', '1'}
end
local n = (#ARGV - 6) / 5
local ws, useds, nxts = {}, {}, {}
local worst, worst_s, worst_label, worst_usage = nil, 0, '', 0
for i = 1, n do
  local base = 6 + (i - 1) * 5
  local limit, interval = num(ARGV[base + 1]), num(ARGV[base + 2])
  local cost, cap, label = num(ARGV[base + 3]), num(ARGV[base + 4]), ARGV[base + 5]
  local w, used, nxt = load(KEYS[i + 1], now, skew, interval)
  ws[i], useds[i], nxts[i] = w, used, nxt
  if cost > 0 then
    local rolls_in = math.max((w + 1) * interval + skew - now, 0)
    local verdict, secs = nil, 0
    if used + cost > cap then
      if is_read then verdict = 'hold' else verdict = 'wait' end
      secs = rolls_in
    elseif (not uses_reserve) and now < nxt then
      verdict, secs = 'wait', nxt - now
    end
    if verdict == 'hold' then
      if worst ~= 'hold' or secs > worst_s then
        worst, worst_s, worst_label, worst_usage = 'hold', secs, label, used / limit
      end
    elseif verdict ~= nil and worst ~= 'hold' then
      if worst == nil or secs > worst_s then
        worst, worst_s, worst_label, worst_usage = 'wait', secs, label, used / limit
      end
    end
  end
end
if worst ~= nil then return {worst, str(worst_s), worst_label, str(worst_usage)} end
for i = 1, n do
  local base = 6 + (i - 1) * 5
  local limit, interval = num(ARGV[base + 1]), num(ARGV[base + 2])
  local cost, cap = num(ARGV[base + 3]), num(ARGV[base + 4])
  if cost > 0 then
    local used, nxt = useds[i] + cost, nxts[i]
    if (not uses_reserve) and used > soft * limit then
      -- Past the soft threshold: space requests so the capacity left lasts the window.
      local left = cap - used
      local rolls_in = (ws[i] + 1) * interval + skew - now
      local spacing = rolls_in * cost / math.max(left + cost, cost)
      nxt = math.max(nxt, now) + spacing
    end
    save(KEYS[i + 1], ws[i], used, nxt, interval)
  end
end
return {'go'}
"""
)

# KEYS[i] window i.  ARGV: now, skew, then per window: interval, sent_window (or ''), value.
_OBSERVE = (
    _LUA_HEAD
    + """
local now, skew = num(ARGV[1]), num(ARGV[2])
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 3
  local interval, sent, value = num(ARGV[base + 1]), num(ARGV[base + 2]), num(ARGV[base + 3])
  local w, used, nxt = load(KEYS[i], now, skew, interval)
  if sent == nil or sent == w then
    if value > used then save(KEYS[i], w, value, nxt, interval) end
  end
end
return 1
"""
)

# KEYS[i] window i.  ARGV: now, skew, then per window: interval, cost (subtracted).
_REFUND = (
    _LUA_HEAD
    + """
local now, skew = num(ARGV[1]), num(ARGV[2])
for i = 1, #KEYS do
  local base = 2 + (i - 1) * 2
  local interval, cost = num(ARGV[base + 1]), num(ARGV[base + 2])
  local w, used, nxt = load(KEYS[i], now, skew, interval)
  if cost > 0 then save(KEYS[i], w, math.max(0, used - cost), nxt, interval) end
end
return 1
"""
)

# KEYS[1] the scope; KEYS[1+i] window i.  ARGV: now, skew, hard, retry_after (or ''), then per
# window: limit, interval, per_ip ('1' or '0'), label.  Returns how long everything now waits.
_THROTTLE = (
    _LUA_HEAD
    + """
local now, skew, hard, retry = num(ARGV[1]), num(ARGV[2]), num(ARGV[3]), num(ARGV[4])
local n = #KEYS - 1
local full_for = 0
local shortest, shortest_end = nil, 0
local longest = 0
local any_full = false
local ip_labels = {}
for i = 1, n do
  local base = 4 + (i - 1) * 4
  local limit, interval = num(ARGV[base + 1]), num(ARGV[base + 2])
  local per_ip, label = ARGV[base + 3] == '1', ARGV[base + 4]
  local w, used, nxt = load(KEYS[i + 1], now, skew, interval)
  local ends = (w + 1) * interval + skew
  if used / limit >= hard then
    used = math.max(used, limit)
    any_full = true
    if per_ip then ip_labels[#ip_labels + 1] = label end
    save(KEYS[i + 1], w, used, nxt, interval)
  end
  if used >= limit then full_for = math.max(full_for, ends - now) end
  if shortest == nil or interval < shortest then shortest, shortest_end = interval, ends end
  if interval > longest then longest = interval end
end
local hold = retry
if hold ~= nil and hold <= 0 then hold = nil end
if hold ~= nil then hold = math.min(hold, longest) end
if hold == nil then
  hold = 0
  if (not any_full) and shortest ~= nil then hold = math.max(shortest_end - now, 0) end
end
local scope = redis.call('HMGET', KEYS[1], 'hold_until', 'cancels_exempt')
local held_until = num(scope[1], 0)
local still_held = held_until > now
-- Only order-count windows let cancels through (cancels place no order); a full weight window
-- or an unexplained hold still running keeps them waiting too.
local exempt = any_full and #ip_labels == 0 and (scope[2] == '1' or not still_held)
if now + hold > held_until or not still_held then
  local label = '429'
  for _, l in ipairs(ip_labels) do label = label .. ' ' .. l end
  redis.call('HSET', KEYS[1], 'hold_label', label)
end
local until_ = math.max(held_until, now + hold)
redis.call('HSET', KEYS[1], 'hold_until', str(until_), 'cancels_exempt', exempt and '1' or '0')
return str(math.max(until_ - now, full_for))
"""
)

_BAN = """
local current = tonumber(redis.call('HGET', KEYS[1], 'banned_until')) or 0
local until_ = math.max(current, tonumber(ARGV[1]))
redis.call('HSET', KEYS[1], 'banned_until', string.format('%.17g', until_))
return string.format('%.17g', until_)
"""


def fallback_limits(limits: RateLimits, share: float) -> RateLimits:
    """Each limit cut to ``share`` of itself (at least 1): one bot's slice while alone."""
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share!r}")
    return RateLimits(
        tuple(
            RateLimit(lim.type, lim.interval_s, max(1, math.floor(lim.limit * share)))
            for lim in limits.limits
        )
    )


class RedisRateBudget:
    """A :class:`~safeguard.guard._throttle.RateBudget` whose windows live in Redis.

    ``ip_key`` names what the venue counts weight against (``"binanceusdm@fapi.binance.com"``
    on one public IP), ``account_key`` the account (``account_fingerprint(api_key)``). Pass it
    to ``guard(..., budget=...)``; every bot on the same keys and prefix shares it.
    """

    def __init__(
        self,
        fleet: FleetConfig,
        ip_key: str,
        account_key: str,
        *,
        throttle: ThrottleConfig | None = None,
        limits: RateLimits | None = None,
        url: str | None = None,
    ) -> None:
        for name, value in (("ip_key", ip_key), ("account_key", account_key)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty str, got {value!r}")
        self.config = throttle or ThrottleConfig()
        self._limits = limits or RateLimits.from_config(self.config)
        self._redis: redis.Redis = connect(fleet, url)
        self._errors = link_errors()
        prefix = f"{key_tag(fleet)}:rl"
        self._scope_key = f"{prefix}:{ip_key}:scope"
        self._window_prefix = {True: f"{prefix}:{ip_key}", False: f"{prefix}:account:{account_key}"}
        self._keys = self._window_keys()
        self._decide = self._redis.register_script(_DECIDE)
        self._observe = self._redis.register_script(_OBSERVE)
        self._refund = self._redis.register_script(_REFUND)
        self._throttle = self._redis.register_script(_THROTTLE)
        self._ban = self._redis.register_script(_BAN)
        self.fallback = RateBudget.standalone(
            self.config, fallback_limits(self._limits, fleet.budget_fallback_share)
        )
        self._share = fleet.budget_fallback_share
        self._reconnect_s = fleet.reconnect_interval_s
        self._retry_at = 0.0
        self._shared = True
        self._lock = threading.Lock()

    @property
    def limits(self) -> tuple[RateLimit, ...]:
        return self._limits.limits

    def _window_keys(self) -> tuple[str, ...]:
        return tuple(
            f"{self._window_prefix[lim.type in _PER_IP]}:{lim.type.value}:{lim.interval_s}"
            for lim in self._limits.limits
        )

    def learn(self, limits: RateLimits) -> bool:
        """As :meth:`RateBudget.learn`. The shared windows keep their counts (they are keyed by
        what they limit, not by the number); every bot learns the numbers from its own
        ``exchangeInfo`` and 429s, and the local fallback keeps its slice of them."""
        learned = limits.with_overrides(self.config)
        with self._lock:
            merged = {(lim.type, lim.interval_s): lim for lim in self._limits.limits}
            before = dict(merged)
            merged.update({(lim.type, lim.interval_s): lim for lim in learned.limits})
            if merged == before:
                return False
            self._limits = RateLimits(tuple(merged.values()))
            self._keys = self._window_keys()
        self.fallback.learn(fallback_limits(self._limits, self._share), policy_overrides=False)
        return True

    @property
    def shared(self) -> bool:
        """Whether the last command reached Redis (False: the local fallback is in use)."""
        return self._shared

    # --- the RateBudget interface ----------------------------------------------------------

    def decide(self, kind: RequestKind, weight: float, now: float, *, orders: int = 1) -> Admission:
        """As :meth:`RateBudget.decide`, on the fleet's shared windows."""
        kind = RequestKind(kind)
        _inputs.non_negative("weight", weight)
        _inputs.non_negative("now", now)
        if isinstance(orders, bool) or not isinstance(orders, int) or orders < 1:
            raise ValueError(f"orders must be an int >= 1, got {orders!r}")
        local_ban = self.fallback.banned_until(now)
        if local_ban is not None:
            return Banned(local_ban)
        args: list[Any] = [
            repr(float(now)),
            repr(self.config.window_skew_s),
            repr(self.config.soft_threshold),
            "1" if kind in USES_RESERVE else "0",
            "1" if kind is RequestKind.READ else "0",
            "1" if kind is RequestKind.CANCEL else "0",
        ]
        for lim in self._limits.limits:
            cost = request_cost(lim, kind, weight, orders)
            cap = usable_share(self.config, lim.limit, kind)
            if cost > 0 and cost > cap:
                raise NeverFits(kind, weight, cost, cap, lim)
            args += [lim.limit, lim.interval_s, repr(float(cost)), repr(float(cap)), lim.label]
        reply = self._run(lambda: self._decide(keys=[self._scope_key, *self._keys], args=args))
        if reply is _DOWN:
            return self.fallback.decide(kind, weight, now, orders=orders)
        verdict = _text(reply[0])
        if verdict == "go":
            return GO
        if verdict == "banned":
            return Banned(float(reply[1]))
        seconds, label, usage = float(reply[1]), _text(reply[2]), float(reply[3])
        if verdict == "hold":
            return Hold(seconds, label, usage)
        return Wait(seconds, label, usage)

    def refund(self, kind: RequestKind, weight: float, now: float, *, orders: int = 1) -> None:
        """Give back a ``Go`` that was never sent."""
        kind = RequestKind(kind)
        _inputs.non_negative("weight", weight)
        args: list[Any] = [repr(float(now)), repr(self.config.window_skew_s)]
        for lim in self._limits.limits:
            args += [lim.interval_s, repr(request_cost(lim, kind, weight, orders))]
        if self._run(lambda: self._refund(keys=list(self._keys), args=args)) is _DOWN:
            self.fallback.refund(kind, weight, now, orders=orders)

    def observe(
        self, headers: Mapping[str, str] | None, now: float, *, sent_at: float | None = None
    ) -> None:
        """Raise the shared counts to what the venue reports (never lowers them)."""
        self.fallback.observe(headers, now, sent_at=sent_at)
        if not headers:
            return
        reported = reported_usage(headers)
        if not reported:
            return
        skew = self.config.window_skew_s
        keys: list[str] = []
        args: list[Any] = [repr(float(now)), repr(skew)]
        for key, lim in zip(self._keys, self._limits.limits, strict=True):
            value = reported.get((HEADER_FAMILY.get(lim.type) or "", lim.interval_s))
            if value is None:
                continue
            sent = "" if sent_at is None else str(math.floor((sent_at - skew) / lim.interval_s))
            keys.append(key)
            args += [lim.interval_s, sent, repr(float(value))]
        if keys:
            self._run(lambda: self._observe(keys=keys, args=args))

    def record_throttle(self, status: int, retry_after: float | None, now: float) -> float:
        """A 429: every bot on the IP stops for ``Retry-After`` (or until its window rolls)."""
        if status != 429:
            raise ValueError(f"status must be 429 for a throttle, got {status!r}")
        _inputs.non_negative("now", now)
        if retry_after is not None:
            _inputs.non_negative("retry_after", retry_after)
        args: list[Any] = [
            repr(float(now)),
            repr(self.config.window_skew_s),
            repr(self.config.hard_threshold),
            "" if retry_after is None else repr(float(retry_after)),
        ]
        for lim in self._limits.limits:
            args += [lim.limit, lim.interval_s, "1" if lim.type in _PER_IP else "0", lim.label]
        local = self.fallback.record_throttle(status, retry_after, now)
        shared = self._run(lambda: self._throttle(keys=[self._scope_key, *self._keys], args=args))
        return local if shared is _DOWN else float(shared)

    def record_ban(self, until: float, now: float) -> None:
        """A 418: every bot on the IP is banned until ``until`` (kept locally too)."""
        _inputs.non_negative("until", until)
        _inputs.non_negative("now", now)
        self.fallback.record_ban(until, now)
        self._run(lambda: self._ban(keys=[self._scope_key], args=[repr(float(until))]))

    def banned_until(self, now: float) -> float | None:
        """The end of a ban on the IP in force at ``now`` (seen by any bot), or None."""
        local = self.fallback.banned_until(now)
        raw = self._run(lambda: self._redis.hget(self._scope_key, "banned_until"))
        if raw is _DOWN:
            return local
        shared = float(_text(raw)) if raw is not None else 0.0
        until = max(shared, local or 0.0)
        return until if until > now else None

    def usage(self, now: float) -> dict[str, float]:
        """Share of each limit used in its current window, fleet-wide, by label."""
        skew = self.config.window_skew_s
        rows = self._run(lambda: [self._redis.hmget(key, ["w", "used"]) for key in self._keys])
        if rows is _DOWN:
            return self.fallback.usage(now)
        out = {}
        for lim, (w, used) in zip(self._limits.limits, rows, strict=True):
            current = math.floor((now - skew) / lim.interval_s)
            fresh = w is not None and used is not None and float(_text(w)) == current
            out[lim.label] = (float(_text(used)) if fresh else 0.0) / lim.limit
        return out

    def close(self) -> None:
        self._redis.close()

    # --- the link --------------------------------------------------------------------------

    def _run(self, call: Callable[[], Any]) -> Any:
        """``call()`` against Redis, or ``_DOWN``. After a failure Redis is tried again only
        every ``reconnect_interval_s``: a dead link must not cost every request a timeout."""
        if not self._shared and time.monotonic() < self._retry_at:
            return _DOWN
        try:
            result = call()
        except self._errors as exc:
            self._lost(exc)
            return _DOWN
        if not self._shared:
            self._regained()
        return result

    def _lost(self, exc: BaseException) -> None:
        with self._lock:
            was, self._shared = self._shared, False
            self._retry_at = time.monotonic() + self._reconnect_s
        if was:
            logger.error(
                "fleet budget: Redis unreachable ({}); pacing on {:.0%} of each limit alone",
                describe(exc),
                self._share,
            )

    def _regained(self) -> None:
        with self._lock:
            self._shared = True
        logger.info("fleet budget: back on the shared budget")
        # A ban learned while alone (or lost with a restarted Redis) is every bot's ban.
        until = self.fallback.banned_until(0.0)
        if until is not None:
            self._run(lambda: self._ban(keys=[self._scope_key], args=[repr(until)]))


class _Down:
    """What :meth:`RedisRateBudget._run` returns when Redis could not be used."""


_DOWN = _Down()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["RedisRateBudget", "fallback_limits"]
