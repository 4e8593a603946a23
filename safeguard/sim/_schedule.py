"""The fault schedule of one simulated run: every trouble the seed draws, at every layer.

A schedule is a list of :class:`Fault`, each independent of the others, so the shrinker can
drop any of them and the run stays meaningful: venue faults become rules of the venue's
:class:`~safeguard.venue._faults.FaultPlan`; process faults (a crash at a chosen point, a torn
write, a full disk, a clock step, an operator's engage) are applied by the world at their bar.
Drawing is pure: the same seed gives the same schedule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

BAR_S = 60.0
"""Simulated seconds between two strategy steps."""

VENUE_KINDS = (
    "errors",
    "ambiguous",
    "lookups",
    "latency",
    "html",
    "throttle",
    "ban",
    "freeze",
    "spike",
    "hide_order",
    "timeout_after_accept",
    "drop",
    "set_tiers",
)
STREAM_KINDS = (
    "stream_stall",
    "stream_freeze",
    "stream_disconnect",
    "listen_key_expire",
    "depth_gap",
)
"""Faults of the websockets the stream bot's guard holds (drawn apart from the REST ones, so
the schedules the REST faults drew before streams came stay as they were)."""
CRASH_POINTS = ("after_record", "after_send", "mid_reconcile", "mid_engage")
PROCESS_KINDS = ("crash", "disk_full", "clock_jump", "engage")
STORAGE_KINDS = ("read_only",)
"""Troubles of one bot's state directory (drawn apart from the rest, so the schedules drawn
before they came stay as they were)."""
FLEET_KINDS = ("redis_lost", "redis_frozen", "redis_emptied")
"""Troubles of the fleet's Redis (fleet mode; drawn apart from the rest, too)."""
KINDS = VENUE_KINDS + STREAM_KINDS + PROCESS_KINDS + STORAGE_KINDS + FLEET_KINDS

ORDER = "POST /fapi/v1/order"


@dataclass(frozen=True)
class Fault:
    """One trouble: ``kind`` from :data:`KINDS`, from bar ``at`` for ``bars`` bars, on
    ``bot`` (process faults; venue faults hit every bot), with its own ``params``."""

    kind: str
    at: int
    bars: int = 1
    bot: int = 0
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def describe(self) -> str:
        extra = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        on_a_bot = self.kind in PROCESS_KINDS + STORAGE_KINDS and self.kind != "disk_full"
        where = f" bot {self.bot}" if on_a_bot else ""
        span = f"bars {self.at}-{self.at + self.bars - 1}" if self.bars > 1 else f"bar {self.at}"
        return f"{self.kind}{where} at {span}" + (f" ({extra})" if extra else "")


def draw_schedule(seed: int, *, bars: int, bots: int, symbols: tuple[str, ...]) -> list[Fault]:
    """The seed's faults: a few venue troubles and a few process troubles, anywhere in the
    run (never in its last two bars, which heal)."""
    rng = random.Random(f"schedule-{seed}")
    faults: list[Fault] = []
    last = max(bars - 3, 1)
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(VENUE_KINDS)
        at = rng.randint(0, last)
        faults.append(Fault(kind, at, rng.randint(1, 6), 0, _venue_params(kind, rng, symbols)))
    for _ in range(rng.randint(1, 4)):
        kind = rng.choice(PROCESS_KINDS)
        at = rng.randint(1, last)
        bot = rng.randrange(bots)
        params: dict[str, Any] = {}
        length = 1
        if kind == "crash":
            params = {"point": rng.choice(CRASH_POINTS), "torn": rng.random() < 0.5}
        elif kind == "disk_full":
            length = rng.randint(1, 3)
        elif kind == "clock_jump":
            params = {"seconds": rng.choice([-1, 1]) * rng.choice([5, 30, 120, 900, 3600])}
        elif kind == "engage":
            params = {"state": rng.choice(["HALTED", "REDUCING"])}
        faults.append(Fault(kind, at, length, bot, params))
    streams = random.Random(f"streams-{seed}")
    for _ in range(streams.choice([0, 1, 1, 2])):
        kind = streams.choice(STREAM_KINDS)
        at = streams.randint(0, last)
        params = {"symbol": streams.choice(symbols)} if kind == "depth_gap" else {}
        if kind in ("stream_stall", "stream_freeze") and streams.random() < 0.5:
            params = {"symbol": streams.choice(symbols)}
        faults.append(Fault(kind, at, streams.randint(1, 4), 0, params))
    storage = random.Random(f"storage-{seed}")
    if storage.random() < 0.4:
        # A bot's state directory made read-only for 1-3 bars (an operator's chmod, a
        # deployment that mounts it read-only): its switch, bans, peak and a restarted
        # journal cannot be written.
        at = storage.randint(1, last)
        faults.append(Fault("read_only", at, storage.randint(1, 3), storage.randrange(bots)))
    fleet = random.Random(f"fleet-{seed}")
    if fleet.random() < 0.5:
        # The fleet's Redis killed (back empty bars later), stopped (no answer until it is
        # continued), or emptied under the running fleet.
        kind = fleet.choice(FLEET_KINDS)
        length = 1 if kind == "redis_emptied" else fleet.randint(1, 3)
        faults.append(Fault(kind, fleet.randint(1, last), length))
    faults.sort(key=lambda f: (f.at, f.kind, f.bot))
    return faults


def draw_triggers(seed: int, *, bots: int) -> list[dict[str, Any]]:
    """Each bot's automatic kill-switch triggers (``kill_switch.triggers``), drawn from the
    seed apart from its faults (the shrinker drops faults, never a bot's policy): limits
    tight enough that daily loss, drawdown from the persisted peak, runaway order and cancel
    rates and error streaks trip in some seeds; bans and stale feeds always trip (the
    defaults). A trip moves the switch to HALTED or REDUCING, as the draw says."""
    rng = random.Random(f"triggers-{seed}")
    out: list[dict[str, Any]] = []
    for _ in range(bots):
        out.append(
            {
                "max_daily_loss": rng.choice([None, 40.0, 120.0, 400.0]),
                "max_drawdown_pct": rng.choice([None, 0.3, 1.0, 3.0]),
                "max_orders_per_window": rng.choice([200, 8, 4]),
                "max_cancels_per_window": rng.choice([400, 6, 3]),
                "max_consecutive_errors": rng.choice([10, 4]),
                # The bots read once a bar: a feed is stale past two and a half bars unheard
                # (a frozen feed), not at every bar's first read.
                "max_data_age_s": 2.5 * BAR_S,
                "action": rng.choice(["HALTED", "REDUCING"]),
            }
        )
    return out


def _venue_params(kind: str, rng: random.Random, symbols: tuple[str, ...]) -> dict[str, Any]:
    if kind == "errors":
        return {"status": rng.choice([500, 503]), "probability": round(rng.uniform(0.1, 0.5), 2)}
    if kind in ("ambiguous", "lookups", "hide_order", "drop", "timeout_after_accept", "html"):
        return {"probability": round(rng.uniform(0.1, 0.5), 2)}
    if kind == "latency":
        return {"ms": rng.choice([200, 800, 3000, 12000])}
    if kind == "throttle":
        return {"orders_per_10s": rng.randint(1, 4)}
    if kind in ("freeze", "spike", "set_tiers"):
        params: dict[str, Any] = {"symbol": rng.choice(symbols)}
        if kind == "freeze":
            params["mode"] = rng.choice(["stale_prices", "timestamps", "prices"])
        elif kind == "spike":
            params["pct"] = round(rng.choice([-1, 1]) * rng.uniform(1.0, 8.0), 2)
        else:
            params["max_leverage"] = rng.choice([5, 10, 20])
        return params
    return {}


def venue_plan(faults: list[Fault], seed: int) -> dict[str, Any]:
    """The venue's fault plan (the TOML/JSON shape) for the venue faults among ``faults``;
    times count from the plan's install at bar 0."""
    rules: list[dict[str, Any]] = []
    for fault in faults:
        if fault.kind in VENUE_KINDS or fault.kind in STREAM_KINDS:
            rules.extend(_rules(fault))
    return {"seed": seed, "rules": rules}


def _rules(fault: Fault) -> list[dict[str, Any]]:
    p = fault.params
    # Bar b's strategies step at (b + 1) bars after the plan's install: the window opens half
    # a bar before that step and closes half a bar after the fault's last one.
    start = fault.at * BAR_S + BAR_S / 2
    end = start + fault.bars * BAR_S
    w = {"start_s": start, "end_s": end}
    kind = fault.kind
    if kind == "errors":
        return [{"kind": "error", "status": p["status"], "probability": p["probability"], **w}]
    if kind == "ambiguous":
        return [{"kind": "error", "endpoint": ORDER, "status": 503, "processed": True,
                 "probability": p["probability"], **w}]  # fmt: skip
    if kind == "lookups":
        return [
            {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 503,
             "probability": p["probability"], **w},
            {"kind": "drop", "endpoint": "GET /fapi/v1/openOrders",
             "probability": p["probability"], **w},
        ]  # fmt: skip
    if kind == "hide_order":
        return [{"kind": "hide_order", "probability": p["probability"], **w}]
    if kind == "drop":
        return [{"kind": "drop", "endpoint": "* /fapi/v1/order", "processed": True,
                 "probability": p["probability"], **w}]  # fmt: skip
    if kind == "timeout_after_accept":
        return [{"kind": "timeout_after_accept", "endpoint": "* /fapi/v1/order",
                 "probability": p["probability"], "hold_s": 2.0, **w}]  # fmt: skip
    if kind == "html":
        return [{"kind": "error", "status": 502, "body": "html",
                 "probability": p["probability"], **w}]  # fmt: skip
    if kind == "latency":
        return [{"kind": "latency", "distribution": "exponential", "ms": p["ms"], **w}]
    if kind == "throttle":
        return [{"kind": "throttle", "orders_per_10s": p["orders_per_10s"], **w}]
    if kind == "ban":
        return [{"kind": "ban", "count": 1, **w}]
    if kind == "freeze":
        return [
            {"kind": "freeze_feed", "symbol": p["symbol"], "mode": p["mode"], "at_s": start},
            {"kind": "freeze_feed", "symbol": p["symbol"], "mode": "off", "at_s": end},
        ]
    if kind == "spike":
        return [{"kind": "spike", "symbol": p["symbol"], "pct": p["pct"],
                 "duration_s": end - start, "at_s": start}]  # fmt: skip
    if kind == "set_tiers":
        # One tier: notional up to 50M at this leverage (maintenance margin rate 1 %).
        lev = p["max_leverage"]
        return [{"kind": "set_tiers", "symbol": p["symbol"], "at_s": start,
                 "tiers": [[0, 50_000_000, 0.01, lev]]}]  # fmt: skip
    if kind in ("stream_stall", "stream_freeze"):
        return [{"kind": kind, "symbol": p.get("symbol"), **w}]
    if kind in ("stream_disconnect", "listen_key_expire"):
        return [{"kind": kind, "at_s": start}]
    if kind == "depth_gap":
        return [{"kind": kind, "symbol": p["symbol"], "at_s": start}]
    raise ValueError(f"unknown venue fault {kind!r}")


__all__ = [
    "BAR_S",
    "CRASH_POINTS",
    "FLEET_KINDS",
    "KINDS",
    "PROCESS_KINDS",
    "STORAGE_KINDS",
    "STREAM_KINDS",
    "VENUE_KINDS",
    "Fault",
    "draw_schedule",
    "draw_triggers",
    "venue_plan",
]
