"""The paper run's figures, counted from the journal and nothing else.

:func:`summarize` reads the records of one run and returns a :class:`RunSummary`. Every number
is a count or a sum over journal records, so a summary can always be recomputed from the
journal it sits next to, and the two can never disagree.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from safeguard.paper._journal import RUNS

AMBIGUOUS_ERRORS = frozenset(
    {"RequestTimeout", "NetworkError", "ExchangeNotAvailable", "OperationFailed"}
)
"""ccxt errors after which an order may or may not exist on the venue."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one run did, from its journal records."""

    run: str
    start_equity: float
    end_equity: float
    pnl: float
    pnl_pct: float
    max_drawdown_pct: float
    orders: int
    """``create_order`` calls the strategy made."""
    orders_placed: int
    denied: dict[str, int] = field(default_factory=dict)
    """Orders the guard refused before sending, by code."""
    failed: dict[str, int] = field(default_factory=dict)
    """Orders that raised after (or instead of) reaching the venue, by code or error type."""
    venue_orders: int = 0
    """Orders the venue created for those calls."""
    duplicates: int = 0
    """Venue orders beyond the one each call asked for."""
    lost_order_answers: int = 0
    """Order sends whose answer never came (timeout, dropped, 5xx): the order may exist. The
    guard looks each up by client id; the naive client sends it again."""
    retries: int = 0
    throttled_answers: int = 0
    """Answers that were a 429 or a 418."""
    bans: int = 0
    """Times the venue banned the IP (418 with a new end time)."""
    waited_s: float = 0.0
    """Simulated seconds spent in backoff and throttle waits."""
    state_changes: int = 0
    degraded_s: float = 0.0
    """Simulated seconds the venue's health was DEGRADED or SEVERE (guarded run)."""
    kill_trips: int = 0
    liquidations: int = 0
    liquidation_loss: float = 0.0
    stops_triggered: int = 0
    bar_errors: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(records: Iterable[Mapping[str, Any]], run: str) -> RunSummary:
    """The summary of ``run`` (``guarded`` or ``naive``) from journal ``records``."""
    if run not in RUNS:
        raise ValueError(f"run must be one of {RUNS}, got {run!r}")
    mine = [r for r in records if r.get("run") == run]
    starts = [r for r in mine if r["kind"] == "start"]
    ends = [r for r in mine if r["kind"] == "end"]
    if len(starts) != 1 or len(ends) != 1:
        raise ValueError(
            f"journal holds {len(starts)} start and {len(ends)} end records for the {run} run; "
            "a complete run has one of each"
        )
    start_equity = float(starts[0]["wallet"])
    end_equity = float(ends[0]["equity"])
    orders = [r for r in mine if r["kind"] == "order"]
    kinds = Counter(r["kind"] for r in mine)
    return RunSummary(
        run=run,
        start_equity=start_equity,
        end_equity=end_equity,
        pnl=end_equity - start_equity,
        pnl_pct=(end_equity / start_equity - 1.0) * 100.0,
        max_drawdown_pct=_max_drawdown_pct(
            [start_equity, *(float(r["equity"]) for r in mine if r["kind"] == "bar"), end_equity]
        ),
        orders=len(orders),
        orders_placed=sum(1 for r in orders if r["outcome"] == "placed"),
        denied=_by_code(r for r in orders if r["outcome"] == "denied"),
        failed=_by_code(r for r in orders if r["outcome"] == "failed"),
        venue_orders=sum(int(r["copies"]) for r in orders),
        duplicates=sum(max(int(r["copies"]) - 1, 0) for r in orders),
        lost_order_answers=sum(
            1
            for r in mine
            if r["kind"] == "request"
            and r.get("method") == "create_order"
            and r.get("error_type") in AMBIGUOUS_ERRORS
        ),
        retries=kinds["retry"],
        throttled_answers=sum(
            1 for r in mine if r["kind"] == "request" and r.get("outcome") == "throttled"
        ),
        bans=kinds["ban"],
        waited_s=sum(float(r["seconds"]) for r in mine if r["kind"] == "sleep"),
        state_changes=kinds["state"],
        degraded_s=_degraded_seconds(mine, float(ends[0]["t"])),
        kill_trips=kinds["kill"],
        liquidations=kinds["liquidation"],
        liquidation_loss=sum(float(r["loss"]) for r in mine if r["kind"] == "liquidation"),
        stops_triggered=kinds["stop_triggered"],
        bar_errors=kinds["bar_error"],
    )


def summarize_all(records: Iterable[Mapping[str, Any]]) -> dict[str, RunSummary]:
    """Both runs' summaries, for the runs the journal holds."""
    rows = list(records)
    present = {r.get("run") for r in rows}
    return {run: summarize(rows, run) for run in RUNS if run in present}


def _by_code(orders: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    return dict(sorted(Counter(str(r.get("code") or "UNKNOWN") for r in orders).items()))


def _max_drawdown_pct(equities: list[float]) -> float:
    peak = -math.inf
    worst = 0.0
    for equity in equities:
        peak = max(peak, equity)
        if peak > 0:
            worst = max(worst, (peak - equity) / peak * 100.0)
    return worst


def _degraded_seconds(records: list[Mapping[str, Any]], end: float) -> float:
    total = 0.0
    since: float | None = None
    for r in records:
        if r["kind"] != "state":
            continue
        sick = r["current"] in ("DEGRADED", "SEVERE")
        if sick and since is None:
            since = float(r["t"])
        elif not sick and since is not None:
            total += float(r["t"]) - since
            since = None
    if since is not None:
        total += end - since
    return total


__all__ = ["AMBIGUOUS_ERRORS", "RunSummary", "summarize", "summarize_all"]
