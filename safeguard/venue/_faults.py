"""The fault plan: what goes wrong at the mock venue, on purpose, and when.

A :class:`FaultPlan` is configuration (frozen pydantic, loadable from TOML or JSON, seeded);
a :class:`FaultInjector` is the plan running: it decides, for each request and each moment,
which fault applies. Deciding is pure: it takes ``now`` (simulated seconds), draws from its
own seeded generator and never sleeps or does I/O. The transports act on the decision (hold an
answer, close a socket, raise ``RequestTimeout``) and the dialect applies venue events
(frozen feed, price spike, new tier table) through the engine's methods.

Example (TOML)::

    seed = 7

    [[rules]]                      # about a third of orders get a JSON 503
    kind = "error"
    endpoint = "POST /fapi/v1/order"
    status = 503
    code = -1001
    probability = 0.33

    [[rules]]                      # one order accepted whose answer never arrives
    kind = "timeout_after_accept"
    endpoint = "POST /fapi/v1/order"
    count = 1

    [[rules]]                      # the order look-up misses live orders (a stale index)
    kind = "hide_order"

    [[rules]]                      # order flow throttled between t=60 s and t=120 s
    kind = "throttle"
    orders_per_10s = 5
    start_s = 60
    end_s = 120

Times (``start_s``, ``end_s``, ``at_s``) are seconds after the plan was installed, on the
venue's clock: simulated time under a ``ManualClock``, wall time otherwise.
"""

from __future__ import annotations

import fnmatch
import json
import math
import random
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator

from safeguard._config import Fraction, NonNegative, Positive, Section, config_error_from
from safeguard._errors import ConfigError
from safeguard.risk._tiers import TierTable
from safeguard.venue._config import Crowd
from safeguard.venue._ratelimit import RateLimits

PositiveInt = Annotated[int, Field(ge=1)]


class _Scheduled(Section):
    """When a per-request rule fires: endpoint, time window, probability and count."""

    endpoint: str = "*"
    """``"POST /fapi/v1/order"``, ``"/fapi/v1/order"`` (any method) or a glob
    (``"* /fapi/v3/*"``)."""
    start_s: NonNegative = 0.0
    end_s: Positive | None = None
    probability: Fraction = 1.0
    count: PositiveInt | None = None
    """Fire at most this many times."""
    skip: Annotated[int, Field(ge=0)] = 0
    """Let this many matching requests through before the rule may fire."""
    api_key: str | None = None
    """Only requests carrying this API key (one bot of several on the venue)."""

    @model_validator(mode="after")
    def _window_ordered(self) -> _Scheduled:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        if not self.endpoint.strip():
            raise ValueError("endpoint must not be empty (use '*' for every endpoint)")
        return self

    def matches(self, endpoint: str, api_key: str | None = None) -> bool:
        if self.api_key is not None and api_key != self.api_key:
            return False
        pattern = self.endpoint.strip()
        if " " not in pattern and pattern != "*":
            pattern = "* " + pattern
        return fnmatch.fnmatchcase(endpoint, pattern)

    def in_window(self, elapsed: float) -> bool:
        return self.start_s <= elapsed and (self.end_s is None or elapsed < self.end_s)


class LatencyRule(_Scheduled):
    """Extra time before the answer. ``fixed``: ``ms``; ``uniform``: ``ms``..``high_ms``;
    ``exponential``: mean ``ms``; ``lognormal``: median ``ms`` with shape ``sigma``."""

    kind: Literal["latency"] = "latency"
    distribution: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    ms: NonNegative = 0.0
    high_ms: NonNegative | None = None
    sigma: NonNegative = 0.5

    @model_validator(mode="after")
    def _bounds(self) -> LatencyRule:
        if self.distribution == "uniform" and (self.high_ms is None or self.high_ms < self.ms):
            raise ValueError("a uniform latency needs high_ms >= ms")
        return self

    def draw_s(self, rng: random.Random) -> float:
        if self.distribution == "uniform":
            assert self.high_ms is not None  # checked by the validator
            return rng.uniform(self.ms, self.high_ms) / 1000.0
        if self.distribution == "exponential":
            return rng.expovariate(1.0 / self.ms) / 1000.0 if self.ms > 0 else 0.0
        if self.distribution == "lognormal":
            return self.ms * math.exp(rng.gauss(0.0, self.sigma)) / 1000.0
        return self.ms / 1000.0


class ErrorRule(_Scheduled):
    """Answer with an error status instead of the real answer.

    ``body``: ``json`` sends ``{"code", "msg"}`` (``code`` defaults to -1003 for 429 and
    -1001 otherwise), ``html`` a gateway's HTML page, ``empty`` nothing. With ``processed``
    the request is carried out first, so an order may exist behind a 5xx: the ambiguity a
    client must resolve by looking the order up.
    """

    kind: Literal["error"] = "error"
    status: Annotated[int, Field(ge=400, le=599)] = 503
    body: Literal["json", "html", "empty"] = "json"
    code: int | None = None
    msg: str | None = None
    retry_after_s: Annotated[int, Field(ge=0)] | None = None
    processed: bool = False


class BanRule(_Scheduled):
    """Ban the caller's IP (HTTP 418), for twice as long as its previous ban."""

    kind: Literal["ban"] = "ban"


class TimeoutRule(_Scheduled):
    """Carry the request out, then never answer: over HTTP the answer is held for ``hold_s``
    (or until the client gives up) and the connection closed; in process the client gets
    ``RequestTimeout``."""

    kind: Literal["timeout_after_accept"] = "timeout_after_accept"
    hold_s: Positive = 30.0


class DropRule(_Scheduled):
    """Close the connection without an answer (after carrying the request out, by default)."""

    kind: Literal["drop"] = "drop"
    processed: bool = True


class HideOrderRule(_Scheduled):
    """The order look-up misses an order that is still open: the look-up is carried out and,
    if it found a live order (``NEW`` or ``PARTIALLY_FILLED``), answers -2013 "Order does not
    exist." instead, while open orders still list it. A venue whose order index lags its
    matching engine does this; a client that takes -2013 alone as "absent" sends the order
    again. Look-ups of orders that are not live get their real answer."""

    kind: Literal["hide_order"] = "hide_order"
    endpoint: str = "GET /fapi/v1/order"


class _Event(Section):
    """A one-off change to the market, fired once when the plan has run for ``at_s``."""

    at_s: NonNegative = 0.0
    symbol: str


class FreezeFeedRule(_Event):
    """Freeze ``symbol``'s market data (the engine's ``freeze_feed``); ``"off"`` lifts it.

    ``prices``: the market stops moving; ``timestamps``: data times stop advancing;
    ``stale_prices``: data shows the frozen prices while trading continues at real ones.
    """

    kind: Literal["freeze_feed"] = "freeze_feed"
    mode: Literal["prices", "timestamps", "stale_prices", "off"] = "stale_prices"


class SpikeRule(_Event):
    kind: Literal["spike"] = "spike"
    pct: float
    duration_s: Positive

    @model_validator(mode="after")
    def _nonzero(self) -> SpikeRule:
        if self.pct == 0 or self.pct <= -100:
            raise ValueError(f"pct must be non-zero and above -100, got {self.pct}")
        return self


class SetTiersRule(_Event):
    """Replace ``symbol``'s maintenance ladder, as rows of
    ``[min_notional, max_notional, maintenance_margin_rate, max_leverage]``."""

    kind: Literal["set_tiers"] = "set_tiers"
    tiers: list[tuple[NonNegative, Positive, Fraction, Positive]] = Field(min_length=1)

    @model_validator(mode="after")
    def _valid_ladder(self) -> SetTiersRule:
        self.table()  # a broken ladder is a configuration error now, not a surprise later
        return self

    def table(self) -> TierTable:
        return TierTable.from_rows(list(self.tiers), currency="USDT")


class SetFundingIntervalRule(_Event):
    """Move ``symbol``'s funding interval to ``hours`` (served on ``fundingInfo``; the next
    funding time on ``premiumIndex`` and the markPrice stream follows)."""

    kind: Literal["set_funding_interval"] = "set_funding_interval"
    hours: Annotated[int, Field(ge=1, le=24, strict=True)]
    """Whole hours (``true`` is no interval: strict)."""


class CrowdRule(Section):
    """Open a crowd of other traders' positions (:class:`~safeguard.venue._config.Crowd`)
    when the plan has run for ``at_s``: what a spike then liquidates, and what cascades."""

    kind: Literal["crowd"] = "crowd"
    at_s: NonNegative = 0.0
    crowd: Crowd

    @property
    def symbol(self) -> str:
        return self.crowd.symbol


class ThrottleRule(Section):
    """Tighten the rate limits while the window is open (the venue publishes them too)."""

    kind: Literal["throttle"] = "throttle"
    start_s: NonNegative = 0.0
    end_s: Positive | None = None
    weight_per_minute: PositiveInt | None = None
    orders_per_10s: PositiveInt | None = None
    orders_per_minute: PositiveInt | None = None

    def in_window(self, elapsed: float) -> bool:
        return self.start_s <= elapsed and (self.end_s is None or elapsed < self.end_s)


# --- stream faults (the websocket side: see safeguard.venue._streams) ---------------------------


class _StreamWindow(Section):
    """A stream fault that holds while its window is open (``symbol``: one market, or all)."""

    start_s: NonNegative = 0.0
    end_s: Positive | None = None
    symbol: str | None = None

    @model_validator(mode="after")
    def _window_ordered(self) -> _StreamWindow:
        if self.end_s is not None and self.end_s <= self.start_s:
            raise ValueError(f"end_s ({self.end_s}) must be after start_s ({self.start_s})")
        return self

    def in_window(self, elapsed: float) -> bool:
        return self.start_s <= elapsed and (self.end_s is None or elapsed < self.end_s)

    def covers(self, symbol: str | None) -> bool:
        return self.symbol is None or symbol is None or self.symbol == symbol


class StreamStallRule(_StreamWindow):
    """Market streams send nothing while the window is open; the connection stays up and
    keeps answering pings. Afterwards they resume where they stopped (a stall loses nothing)."""

    kind: Literal["stream_stall"] = "stream_stall"


class StreamFreezeRule(_StreamWindow):
    """Market streams keep their heartbeat but freeze their prices: periodic streams (mark
    price, tickers, klines) repeat the last values with fresh event times; the book and the
    tape go quiet."""

    kind: Literal["stream_freeze"] = "stream_freeze"


class StreamDelayRule(_StreamWindow):
    """Every stream message (market and user data) is held ``ms`` on the venue's clock."""

    kind: Literal["stream_delay"] = "stream_delay"
    ms: Positive


class DepthGapRule(Section):
    """At ``at_s``, break the diff-depth sequence of ``symbol`` once: ``drop`` loses the next
    update (the following one's ``pu`` names an update the client never saw), ``reorder``
    sends the next two in swapped order."""

    kind: Literal["depth_gap"] = "depth_gap"
    at_s: NonNegative = 0.0
    symbol: str
    mode: Literal["drop", "reorder"] = "drop"


class StreamDisconnectRule(Section):
    """At ``at_s``, the venue closes every stream connection (clients must reconnect)."""

    kind: Literal["stream_disconnect"] = "stream_disconnect"
    at_s: NonNegative = 0.0


class ListenKeyExpireRule(Section):
    """At ``at_s``, listen keys (of ``api_key``, or all) expire early: ``listenKeyExpired``
    is sent and the user-data stream ends."""

    kind: Literal["listen_key_expire"] = "listen_key_expire"
    at_s: NonNegative = 0.0
    api_key: str | None = None


StreamWindowRule = StreamStallRule | StreamFreezeRule | StreamDelayRule
StreamEventRule = DepthGapRule | StreamDisconnectRule | ListenKeyExpireRule
_STREAM_RULES = (
    StreamStallRule,
    StreamFreezeRule,
    StreamDelayRule,
    DepthGapRule,
    StreamDisconnectRule,
    ListenKeyExpireRule,
)

Rule = Annotated[
    LatencyRule
    | ErrorRule
    | BanRule
    | TimeoutRule
    | DropRule
    | HideOrderRule
    | FreezeFeedRule
    | SpikeRule
    | SetTiersRule
    | SetFundingIntervalRule
    | CrowdRule
    | ThrottleRule
    | StreamStallRule
    | StreamFreezeRule
    | StreamDelayRule
    | DepthGapRule
    | StreamDisconnectRule
    | ListenKeyExpireRule,
    Field(discriminator="kind"),
]
AnswerRule = ErrorRule | BanRule | TimeoutRule | DropRule | HideOrderRule
EventRule = FreezeFeedRule | SpikeRule | SetTiersRule | SetFundingIntervalRule | CrowdRule


class FaultPlan(Section):
    """Everything that goes wrong on purpose. The empty plan (the default) is a healthy venue."""

    seed: int = 0
    rules: list[Rule] = Field(default_factory=list)

    @classmethod
    def load(cls, path: str | Path) -> FaultPlan:
        """Load from a ``.toml`` or ``.json`` file; a :class:`ConfigError` names a bad key."""
        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"fault plan not found: {file}") from None
        try:
            data = json.loads(text) if file.suffix.lower() == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"fault plan {file} does not parse: {exc}") from exc
        return cls.parse(data, source=str(file))

    @classmethod
    def parse(cls, data: Any, *, source: str = "arguments") -> FaultPlan:
        """Validate a parsed document (a dict), raising :class:`ConfigError` naming the key."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise config_error_from(exc, source=source) from None


@dataclass(frozen=True, slots=True)
class Injection:
    """The plan's decision for one request: added latency and, maybe, a different answer."""

    latency_s: float = 0.0
    answer: AnswerRule | None = None


NO_FAULT = Injection()


@dataclass(slots=True)
class FaultInjector:
    """A :class:`FaultPlan` running since ``installed_at`` (venue clock, epoch seconds)."""

    plan: FaultPlan
    installed_at: float
    _rng: random.Random = field(init=False)
    _seen: list[int] = field(init=False)
    fired: list[int] = field(init=False)
    """How many times each rule (by index in ``plan.rules``) has fired."""

    def __post_init__(self) -> None:
        if not math.isfinite(self.installed_at):
            raise ValueError(f"installed_at must be finite, got {self.installed_at!r}")
        self._rng = random.Random(self.plan.seed)
        self._seen = [0] * len(self.plan.rules)
        self.fired = [0] * len(self.plan.rules)

    def on_request(self, endpoint: str, now: float, api_key: str | None = None) -> Injection:
        """Decide the faults for one request to ``endpoint`` (``"GET /fapi/v1/time"``)."""
        if not self.plan.rules:
            return NO_FAULT
        elapsed = now - self.installed_at
        latency = 0.0
        answer: AnswerRule | None = None
        for index, rule in enumerate(self.plan.rules):
            if isinstance(
                rule,
                ThrottleRule
                | FreezeFeedRule
                | SpikeRule
                | SetTiersRule
                | SetFundingIntervalRule
                | CrowdRule,
            ):
                continue
            if isinstance(rule, _STREAM_RULES):
                continue
            if answer is not None and not isinstance(rule, LatencyRule):
                continue
            if not (rule.matches(endpoint, api_key) and rule.in_window(elapsed)):
                continue
            if rule.count is not None and self.fired[index] >= rule.count:
                continue
            self._seen[index] += 1
            if self._seen[index] <= rule.skip:
                continue
            if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                continue
            self.fired[index] += 1
            if isinstance(rule, LatencyRule):
                latency += rule.draw_s(self._rng)
            else:
                answer = rule
        return Injection(latency, answer)

    def due_events(self, now: float) -> list[EventRule]:
        """Market events whose time has come and that have not fired yet (each fires once)."""
        elapsed = now - self.installed_at
        due: list[EventRule] = []
        for index, rule in enumerate(self.plan.rules):
            if isinstance(rule, EventRule) and self.fired[index] == 0 and rule.at_s <= elapsed:
                self.fired[index] = 1
                due.append(rule)
        return due

    def stream_windows(self, now: float) -> list[StreamWindowRule]:
        """The stream faults whose window is open at ``now``."""
        elapsed = now - self.installed_at
        return [
            rule
            for rule in self.plan.rules
            if isinstance(rule, StreamStallRule | StreamFreezeRule | StreamDelayRule)
            and rule.in_window(elapsed)
        ]

    def due_stream_events(self, now: float) -> list[StreamEventRule]:
        """One-off stream faults whose time has come (each fires once)."""
        elapsed = now - self.installed_at
        due: list[StreamEventRule] = []
        for index, rule in enumerate(self.plan.rules):
            if (
                isinstance(rule, DepthGapRule | StreamDisconnectRule | ListenKeyExpireRule)
                and self.fired[index] == 0
                and rule.at_s <= elapsed
            ):
                self.fired[index] = 1
                due.append(rule)
        return due

    def limits(self, base: RateLimits, now: float) -> RateLimits:
        """``base`` tightened by every throttle rule whose window is open at ``now``."""
        elapsed = now - self.installed_at
        out = base
        for rule in self.plan.rules:
            if isinstance(rule, ThrottleRule) and rule.in_window(elapsed):
                out = out.tightened(
                    weight_per_minute=rule.weight_per_minute,
                    orders_per_10s=rule.orders_per_10s,
                    orders_per_minute=rule.orders_per_minute,
                )
        return out

    def describe(self) -> dict[str, Any]:
        """The plan and how often each rule fired (what ``GET /admin/faults`` answers)."""
        return {
            "plan": self.plan.model_dump(mode="json"),
            "installed_at": self.installed_at,
            "fired": list(self.fired),
        }


__all__ = [
    "NO_FAULT",
    "AnswerRule",
    "BanRule",
    "CrowdRule",
    "DepthGapRule",
    "DropRule",
    "ErrorRule",
    "EventRule",
    "FaultInjector",
    "FaultPlan",
    "FreezeFeedRule",
    "HideOrderRule",
    "Injection",
    "LatencyRule",
    "ListenKeyExpireRule",
    "Rule",
    "SetFundingIntervalRule",
    "SetTiersRule",
    "SpikeRule",
    "StreamDelayRule",
    "StreamDisconnectRule",
    "StreamEventRule",
    "StreamFreezeRule",
    "StreamStallRule",
    "StreamWindowRule",
    "ThrottleRule",
    "TimeoutRule",
]
