"""The paper run's default fault plan: a bad day at the venue, scheduled as shares of the run.

Times are fractions of the run's duration, so an 8-hour test run meets the same troubles in
the same order as the default 24-hour one:

====== ================ ====================================================================
share  trouble          what it tests
====== ================ ====================================================================
6 %    tier change      maintenance margin rates 2.8 points higher, leverage caps cut: a
                        stop that cleared liquidation yesterday may not today
20 %   latency spike    order answers arrive after the client's timeout although the venue
                        took the order (plus two answers lost outright): resend or look up?
32 %   throttling       the venue's limits drop to a trickle (5 weight a minute, one order
                        in 10 s): slow down, or hammer into a ban?
46 %   frozen feed      market data stops moving while trading goes on at real prices
62 %   flash crash      wicks of the contract price, 4 % for 3 minutes (the index holds):
72 %   and squeezes     down, up, down, up, so a position on either side meets one
====== ================ ====================================================================

Building the plan is pure: same duration, symbols and seed, same plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from safeguard.venue._faults import FaultPlan
from safeguard.venue._markets import DEFAULT_MARKETS

ORDER_ENDPOINT = "POST /fapi/v1/order"
CLIENT_TIMEOUT_MS = 1_000
"""Both runs' ccxt timeout: the latency spike is drawn around it, so some answers miss it."""

_LATENCY = (0.20, 0.26)
_THROTTLE = (0.32, 0.38)
_FREEZE = (0.46, 0.52)
_TIERS_AT = 0.06
_SPIKES = ((0.62, -1.0), (0.72, 1.0), (0.82, -1.0), (0.92, 1.0))
"""(share of the run, direction): crash and squeeze twice, so a position on either side meets
one whichever way the strategy happens to be leaning."""
_RATE_RISE = 0.028
_SPIKE_PCT = 4.0
_SPIKE_S = 180.0


def default_plan(duration_s: float, symbols: Sequence[str], *, seed: int = 0) -> FaultPlan:
    """The default plan for a run of ``duration_s`` seconds over venue ``symbols``
    (``"BTCUSDT"``)."""
    if isinstance(duration_s, bool) or not isinstance(duration_s, int | float):
        raise ValueError(f"duration_s must be a number, got {duration_s!r}")
    if not (math.isfinite(duration_s) and duration_s >= 600):
        raise ValueError(f"duration_s must be at least 600 (10 minutes), got {duration_s!r}")
    if isinstance(symbols, str) or not symbols:
        raise ValueError("symbols must list at least one venue symbol")
    unknown = [s for s in symbols if s not in DEFAULT_MARKETS]
    if unknown:
        raise ValueError(f"symbols: no venue market {', '.join(unknown)}")
    d = float(duration_s)
    rules: list[dict[str, Any]] = [
        {
            "kind": "latency",
            "endpoint": "POST /fapi/v1/*rder",
            "distribution": "uniform",
            "ms": 400.0,
            "high_ms": 2_500.0,
            "start_s": _LATENCY[0] * d,
            "end_s": _LATENCY[1] * d,
        },
        {
            "kind": "timeout_after_accept",
            "endpoint": ORDER_ENDPOINT,
            "start_s": _LATENCY[0] * d,
            "end_s": _LATENCY[1] * d,
            "count": 2,
            "hold_s": CLIENT_TIMEOUT_MS / 1000.0 + 1.0,
        },
        {
            "kind": "throttle",
            "start_s": _THROTTLE[0] * d,
            "end_s": _THROTTLE[1] * d,
            "weight_per_minute": 5,
            "orders_per_10s": 1,
        },
    ]
    for symbol in symbols:
        rules += [
            {"kind": "freeze_feed", "symbol": symbol, "at_s": _FREEZE[0] * d},
            {"kind": "freeze_feed", "symbol": symbol, "at_s": _FREEZE[1] * d, "mode": "off"},
            {
                "kind": "set_tiers",
                "symbol": symbol,
                "at_s": _TIERS_AT * d,
                "tiers": _harsher(symbol),
            },
        ]
        rules += [
            {
                "kind": "spike",
                "symbol": symbol,
                "at_s": share * d,
                "pct": direction * _SPIKE_PCT,
                "duration_s": min(_SPIKE_S, 0.005 * d),
            }
            for share, direction in _SPIKES
        ]
    return FaultPlan.parse({"seed": seed, "rules": rules}, source="the default paper scenario")


def _harsher(symbol: str) -> list[list[float]]:
    """``symbol``'s ladder with every maintenance rate 2.8 points higher (BTC's first tier:
    0.4 % -> 3.2 %) and leverage caps cut to what the new rates leave room for."""
    rows = []
    for tier in DEFAULT_MARKETS[symbol].tiers.tiers:
        rate = min(tier.maintenance_margin_rate + _RATE_RISE, 0.4)
        cap = max(1.0, math.floor(min(tier.max_leverage, 0.6 / rate)))
        rows.append([tier.min_notional, tier.max_notional, rate, cap])
    return rows


__all__ = ["CLIENT_TIMEOUT_MS", "ORDER_ENDPOINT", "default_plan"]
