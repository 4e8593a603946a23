"""The account's equity peak and day start, shared by every bot trading the account.

A drawdown limit measured by each bot from the peak *it* saw measures a slice: bot A saw the
account at 10 500 for a moment, bot B did not, and B's drawdown reads smaller than the
account's. :class:`RedisEquityStore` keeps one set of
:class:`~safeguard.killswitch._equity.EquityMarks` per account in Redis and merges every save
into it (:func:`merge_marks`, pure): the peak is the highest any bot saw, and the day's start is
the first equity any bot saw that UTC day. A save can therefore never lower the fleet's peak
or move its day start, whatever order the bots write in.

Deposits and withdrawals shift both marks; a merge would undo that shift (the old, higher peak
would win), so they go through :meth:`RedisEquityStore.transfer`, applied atomically once.

:func:`account_trips` is the running check: each bot's equity observation joins the account's
marks (:meth:`RedisEquityStore.observe`, atomic) and the drawdown and daily-loss limits are
judged against the result. The store also answers
:class:`~safeguard.killswitch._equity.EquityStore`'s ``load``/``save``/``path``, so it can back a
:class:`~safeguard.killswitch._triggers.RiskMonitor`: a monitor then starts from the account's
marks and never lowers them, but between restarts it judges from its own copy.

Redis unreachable is an ``OSError`` (the monitor halts with ``STATE_STORE_UNAVAILABLE``); a
value that does not read back as marks is a :class:`~safeguard._errors.ConfigError` naming the
key, never a reset peak.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from safeguard._codes import Code
from safeguard._config import FleetConfig, TriggerConfig
from safeguard._errors import ConfigError
from safeguard.fleet._connection import connect, describe, key_tag, link_errors
from safeguard.killswitch._equity import FORMAT, EquityMarks
from safeguard.killswitch._triggers import Trip, daily_loss_trip, drawdown_trip
from safeguard.risk import _inputs

if TYPE_CHECKING:
    import redis

_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FIELDS = frozenset({"format", "peak", "peak_at", "day", "day_start", "day_started_at"})


def merge_marks(shared: EquityMarks | None, mine: EquityMarks) -> EquityMarks:
    """The fleet's marks after one bot's ``mine`` joins ``shared``. Pure.

    Peak: the higher (the earlier one on a tie). Day: the later UTC day; within one day, the
    start observed first. Commutative and idempotent, so the order bots save in never matters.
    """
    if shared is None:
        return mine
    top = max((shared, mine), key=lambda m: (m.peak, -m.peak_at))
    if shared.day != mine.day:
        day = max((shared, mine), key=lambda m: m.day)
    else:
        day = min((shared, mine), key=lambda m: (m.day_started_at, m.day_start))
    return EquityMarks(top.peak, top.peak_at, day.day, day.day_start, day.day_started_at)


class RedisEquityStore:
    """One account's equity marks in Redis (key ``{<prefix>}:eq:<account>``), merged on save."""

    def __init__(self, fleet: FleetConfig, account: str, *, url: str | None = None) -> None:
        if not isinstance(account, str) or not _ACCOUNT_NAME.fullmatch(account):
            raise ValueError(
                f"account must be 1-64 letters, digits, '.', '_' or '-', got {account!r}"
            )
        self._redis: redis.Redis = connect(fleet, url)
        self._errors = link_errors()
        self.key = f"{key_tag(fleet)}:eq:{account}"
        self.path = f"redis key {self.key}"
        """Where the marks live, for messages (``RiskMonitor`` names it when a save fails)."""

    def load(self) -> EquityMarks | None:
        """The fleet's marks, or ``None`` before any bot saved any. Raises ``OSError`` when
        Redis is unreachable and :class:`ConfigError` for a value that is not marks."""
        try:
            raw = self._redis.get(self.key)
        except self._errors as exc:
            raise OSError(f"fleet Redis unreachable: {describe(exc)}") from exc
        return None if raw is None else self._decode(raw)

    def save(self, marks: EquityMarks) -> None:
        """Merge ``marks`` into the fleet's (never lowers the peak)."""
        self.merge(marks)

    def merge(self, marks: EquityMarks) -> EquityMarks:
        """Merge ``marks`` into the fleet's atomically; return the fleet's marks after."""
        if not isinstance(marks, EquityMarks):
            raise ValueError(f"marks must be EquityMarks, got {type(marks).__name__}")
        return self._update(lambda shared: merge_marks(shared, marks))

    def observe(self, equity: float, now: float) -> EquityMarks | None:
        """One bot saw the account at ``equity`` (mark-to-market) at ``now``: move the fleet's
        marks forward with it, atomically, and return them (``None`` while no peak can start:
        no marks yet and ``equity`` <= 0)."""
        _inputs.number("equity", equity)
        _inputs.non_negative("now", now)
        if self.load() is None and equity <= 0.0:
            return None

        def advance(shared: EquityMarks | None) -> EquityMarks:
            if shared is None:
                return EquityMarks.start(equity, now)
            return merge_marks(shared, shared.advance(equity, now))

        return self._update(advance)

    def transfer(self, amount: float) -> EquityMarks:
        """A deposit (``amount`` > 0) or withdrawal (< 0): shift the fleet's marks once.

        Raises ValueError if no marks exist yet or the peak would reach zero."""
        _inputs.number("amount", amount)

        def shift(shared: EquityMarks | None) -> EquityMarks:
            if shared is None:
                raise ValueError("amount: no equity marks yet to apply a transfer to")
            return shared.after_transfer(amount)

        return self._update(shift)

    def close(self) -> None:
        self._redis.close()

    def _update(self, change: Any) -> EquityMarks:
        result: list[EquityMarks] = []

        def attempt(pipe: Any) -> None:
            raw = pipe.get(self.key)
            new = change(None if raw is None else self._decode(raw))
            pipe.multi()
            pipe.set(self.key, json.dumps(new.to_json(), sort_keys=True, allow_nan=False))
            result[:] = [new]

        try:
            # WATCH/MULTI: another bot's write in between makes this one start over.
            self._redis.transaction(attempt, self.key)
        except self._errors as exc:
            raise OSError(f"fleet Redis unreachable: {describe(exc)}") from exc
        return result[0]

    def _decode(self, raw: bytes | str) -> EquityMarks:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise self._corrupt(f"is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT or set(data) != _FIELDS:
            raise self._corrupt(f"is not a {FORMAT} document")
        try:
            return EquityMarks(
                peak=data["peak"],
                peak_at=data["peak_at"],
                day=data["day"],
                day_start=data["day_start"],
                day_started_at=data["day_started_at"],
            )
        except (ValueError, TypeError) as exc:
            raise self._corrupt(f"holds an invalid value: {exc}") from None

    def _corrupt(self, problem: str) -> ConfigError:
        return ConfigError(
            f"equity marks in {self.path} {problem}; refusing to start rather than reset the "
            "drawdown peak. Restore the key, or delete it to start a new peak deliberately.",
            key=self.key,
        )


def account_trips(
    store: RedisEquityStore, equity: float, now: float, config: TriggerConfig
) -> tuple[Trip, ...]:
    """The drawdown and daily-loss trips for the *account*: ``equity`` joins the fleet's marks
    and the limits of ``config`` are checked against them, not against this bot's slice.

    Call it wherever the bot feeds its :class:`~safeguard.killswitch._triggers.RiskMonitor` an
    equity, and engage the switch with what it returns. A lost link raises ``OSError``: halt.
    """
    marks = store.observe(equity, now)
    if marks is None:
        return ()
    checks = (
        (config.max_daily_loss, daily_loss_trip, Code.DAILY_LOSS),
        (config.max_drawdown_pct, drawdown_trip, Code.DRAWDOWN),
    )
    trips = []
    for limit, check, code in checks:
        if limit is not None:
            action = next((a for n, a in config.actions.items() if n == code), config.action)
            trip = check(marks, equity, limit, action)
            if trip is not None:
                trips.append(trip)
    return tuple(trips)


__all__ = ["RedisEquityStore", "account_trips", "merge_marks"]
