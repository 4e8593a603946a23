"""A pure simulation of greedy traffic against a venue that counts and bans as Binance does.

It answers one question: does a strategy that sends as fast as it is allowed, with several
requests in flight, stay under every limit while still using the budget? The venue counts
request weight and order placements in fixed windows on *its* clock (which may be offset from
ours), answers with the running totals in headers, returns 429 beyond a limit and 418 (a ban)
once 429s keep coming. Workers either ask a :class:`~safeguard.guard._throttle.RateBudget`
before every request, or (``budget=None``) behave like a plain client that only waits for its
previous answer. Time is simulated; nothing sleeps. Used by the tests and by
``benchmarks/throttle_sim.py``.
"""

from __future__ import annotations

import heapq
import math
import random
from collections import defaultdict
from dataclasses import dataclass, field

from safeguard.guard._throttle import (
    Go,
    Hold,
    LimitType,
    RateBudget,
    RateLimit,
    RequestKind,
    Wait,
)

_PLACES = (RequestKind.ORDER, RequestKind.REDUCE_ONLY)


@dataclass
class SimVenue:
    """Fixed windows on the venue's clock (ours plus ``clock_offset``)."""

    limits: tuple[RateLimit, ...]
    clock_offset: float = 0.0
    ban_after: int = 3
    """429s tolerated before the IP is banned."""
    counts: dict[tuple[str, int], float] = field(default_factory=lambda: defaultdict(float))
    throttled: int = 0
    banned_at: float | None = None

    def arrive(self, kind: RequestKind, weight: float, at: float) -> tuple[int, dict[str, str]]:
        """Count a request arriving at ``at`` (our clock); its status and answer headers."""
        if self.banned_at is not None:
            return 418, {"Retry-After": "120"}
        venue_now = at + self.clock_offset
        over = False
        for lim in self.limits:
            key = (lim.label, math.floor(venue_now / lim.interval_s))
            cost = _cost(lim, kind, weight)
            if cost and self.counts[key] + cost > lim.limit:
                over = True
            self.counts[key] += cost
        headers = {}
        for lim in self.limits:
            used = self.counts[(lim.label, math.floor(venue_now / lim.interval_s))]
            family = "USED-WEIGHT" if lim.type is LimitType.REQUEST_WEIGHT else "ORDER-COUNT"
            suffix = lim.label.split("/", 1)[1].upper()
            headers[f"X-MBX-{family}-{suffix}"] = str(int(used))
        if not over:
            return 200, headers
        self.throttled += 1
        if self.throttled > self.ban_after:
            self.banned_at = at
            return 418, {"Retry-After": "120"}
        return 429, headers


def _cost(limit: RateLimit, kind: RequestKind, weight: float) -> float:
    if limit.type is LimitType.REQUEST_WEIGHT:
        return weight
    if limit.type is LimitType.RAW_REQUESTS:
        return 1.0
    return 1.0 if kind in _PLACES else 0.0


@dataclass(frozen=True)
class SimReport:
    """What the venue saw. ``full_windows`` maps a limit label to the share of the limit used
    in each window that lay wholly inside the run."""

    sent: int
    throttled: int
    banned_at: float | None
    full_windows: dict[str, list[float]]
    cancels: dict[str, int]

    def utilisation(self, label: str) -> float:
        """The least-used full window of ``label`` (0 when there was none)."""
        return min(self.full_windows.get(label, []), default=0.0)

    def peak(self, label: str) -> float:
        return max(self.full_windows.get(label, []), default=0.0)


def simulate(
    limits: tuple[RateLimit, ...],
    *,
    budget: RateBudget | None,
    start: float,
    seconds: float,
    readers: int = 6,
    read_weight: float = 5.0,
    order_placers: int = 4,
    clock_offset: float = 0.0,
    latency: tuple[float, float] = (0.02, 0.3),
    cancel_every: float = 7.0,
    seed: int = 0,
) -> SimReport:
    """Run ``readers`` and ``order_placers`` greedy workers for ``seconds`` from ``start``.

    Each worker keeps one request in flight: it asks the budget (if any), waits as told,
    sends, and on the answer feeds the headers back and asks again. The request reaches the
    venue half-way through its latency. Separately a cancel arrives every ``cancel_every``
    seconds; ``cancels`` counts how the budget answered them (``Go`` every time means the
    reserve held). With ``budget=None`` workers send again as soon as an answer returns.
    """
    rng = random.Random(seed)
    venue = SimVenue(limits, clock_offset)
    workers = [(RequestKind.READ, read_weight)] * readers
    workers += [(RequestKind.ORDER, 0.0)] * order_placers
    queue: list[tuple[float, int, str, RequestKind, float]] = []
    for index, (kind, weight) in enumerate(workers):
        heapq.heappush(queue, (start + rng.random() * 0.1, index, "ask", kind, weight))
    for n in range(int(seconds / cancel_every)):
        at = start + cancel_every / 2 + cancel_every * n
        heapq.heappush(queue, (at, -1, "cancel", RequestKind.CANCEL, 1.0))
    cancels: dict[str, int] = defaultdict(int)
    sent = 0
    end = start + seconds
    while queue:
        now, index, action, kind, weight = heapq.heappop(queue)
        if now >= end:
            continue
        decision = budget.decide(kind, weight, now) if budget is not None else Go()
        if action == "cancel":
            cancels[type(decision).__name__] += 1
            if isinstance(decision, Go):
                sent += 1
                venue.arrive(kind, weight, now)
            continue
        if isinstance(decision, Go):
            sent += 1
            trip = rng.uniform(*latency)
            status, headers = venue.arrive(kind, weight, now + trip / 2)
            if budget is not None:
                budget.observe(headers, now + trip, sent_at=now)
                if status == 429:
                    budget.record_throttle(429, None, now + trip)
                elif status == 418:
                    budget.record_ban(now + trip + 120.0, now + trip)
            heapq.heappush(queue, (now + trip, index, "ask", kind, weight))
        elif isinstance(decision, Wait):
            heapq.heappush(queue, (now + decision.seconds, index, "ask", kind, weight))
        elif isinstance(decision, Hold):
            heapq.heappush(queue, (now + decision.retry_after, index, "ask", kind, weight))
        else:  # Banned: this worker is done
            continue
    full: dict[str, list[float]] = defaultdict(list)
    by_label = {lim.label: lim for lim in limits}
    for (label, window), used in venue.counts.items():
        lim = by_label[label]
        begins = window * lim.interval_s - clock_offset
        if begins >= start and begins + lim.interval_s <= end:
            full[label].append(used / lim.limit)
    return SimReport(sent, venue.throttled, venue.banned_at, dict(full), dict(cancels))


__all__ = ["SimReport", "SimVenue", "simulate"]
