"""The largest amount that passes: what a caller shrinks a denied order to.

The search works in whole step sizes between the smallest amount the market's filters accept
and an upper bound no passing amount can exceed (:meth:`Order.max_amount_to_try`), keeping
one invariant: ``low`` passes, ``high`` fails. It assumes the size-dependent checks only get
worse as the amount grows, which holds for every check here for an order in one direction.

Most limits that bind are proportional to the amount (notional caps, margin, concentration,
the maximum quantity), so a failed probe says where the edge is: a cap of 40,000 against an
order notional of 60,000 puts it at two thirds of the probed amount. The search jumps there
first and checks the next step up; when the guess is off (a non-linear check such as the
stop's distance from liquidation binds) it falls back to halving. The answer is exact to one
step either way; the guesses only save probes, each of which prices the order again.
"""

from __future__ import annotations

import math

from safeguard._codes import Code
from safeguard.risk._checks import run_priced_checks, run_size_rules
from safeguard.risk._fills import FillModel
from safeguard.risk._models import is_multiple
from safeguard.risk._outcome import Finding, Severity, fmt
from safeguard.risk._pricing import Order, price_order

DENY = Severity.DENY

SIZE_CODES = frozenset(
    {
        Code.NOTIONAL_PER_ORDER,
        Code.NOTIONAL_PER_POSITION,
        Code.NOTIONAL_PER_ACCOUNT,
        Code.CONCENTRATION,
        Code.LEVERAGE_ABOVE_TIER,
        Code.INSUFFICIENT_MARGIN,
        Code.INSUFFICIENT_DEPTH,
        Code.STOP_BEYOND_LIQUIDATION,
        Code.LIQUIDATION_AT_ENTRY,
        Code.MAX_QUANTITY,
        Code.MIN_QUANTITY,
        Code.MIN_NOTIONAL,
        Code.STEP_SIZE,
        Code.REDUCE_ONLY_WOULD_FLIP,
        Code.PRICE_OUTSIDE_BAND,
        Code.DEGRADED_RISK,
        Code.STRESS_GRID_BREACH,
        Code.CROWDING,
    }
)
"""Denials a different amount could cure. Any other denial means no amount passes."""

# For limits proportional to the amount: the finding's (limit, value) keys.
_PROPORTIONAL = {
    Code.NOTIONAL_PER_ORDER: ("max", "notional"),
    Code.NOTIONAL_PER_POSITION: ("max", "notional"),
    Code.NOTIONAL_PER_ACCOUNT: ("max", "notional"),
    Code.INSUFFICIENT_MARGIN: ("available", "needed"),
    Code.CONCENTRATION: ("max", "share"),
    Code.CROWDING: ("max", "notional"),
    Code.MAX_QUANTITY: ("max_qty", "amount"),
}

_MAX_PROBES = 40
"""Probes at most (bisection alone halves a range of 2^40 steps in that many)."""


def max_safe_amount(
    order: Order, fills: FillModel, degraded: bool, findings: list[Finding]
) -> float:
    """The largest multiple of the step size that passes every size-dependent check (on both
    faces of the fill model when ``degraded``); 0 when none does."""
    if any(f.severity is DENY and f.code not in SIZE_CODES for f in findings):
        return 0.0
    step = order.rules.step_size
    low = max(1, math.ceil(order.min_amount / step - 1e-9))
    high = math.floor(order.max_amount_to_try() / step + 1e-9)
    if high < low:
        return 0.0
    probe = order.copy()
    probe.explain = False  # a probe's denials are counted, never shown
    requested = order.intent.amount
    if not any(f.severity is DENY for f in findings) and is_multiple(requested, step):
        low = max(low, round(requested / step))
    elif _denials_at(probe, fills, degraded, low * step):
        return 0.0
    failed = _denials_at(probe, fills, degraded, high * step)
    if not failed:
        return _amount(high, step)
    for _ in range(_MAX_PROBES):
        if high - low <= 1:
            break
        guess = _guess(failed, high)
        candidate = guess if guess is not None and low < guess < high else (low + high) // 2
        denials = _denials_at(probe, fills, degraded, candidate * step)
        if denials:
            high, failed = candidate, denials
            continue
        low = candidate
        if guess == candidate and candidate + 1 < high:
            # A proportional limit puts the edge right here: one probe above settles it.
            above = _denials_at(probe, fills, degraded, (candidate + 1) * step)
            if above:
                high, failed = candidate + 1, above
            else:
                low = candidate + 1
    return _amount(low, step)


def _denials_at(probe: Order, fills: FillModel, degraded: bool, amount: float) -> list[Finding]:
    """The size-dependent denials at ``amount`` (empty: it passes). Re-points ``probe``."""
    denials = run_size_rules(probe, amount)
    if denials or probe.reduce_only_flips(amount):
        return denials or [
            Finding(Code.REDUCE_ONLY_WOULD_FLIP, DENY, f"reduce-only {fmt(amount)} would flip")
        ]
    probe.set_amount(amount)
    for terms in (fills.expected, fills.degraded) if degraded else (fills.expected,):
        priced = price_order(probe, terms, amount)
        denials = [f for f in run_priced_checks(probe, priced) if f.severity is DENY]
        if denials:
            return denials
    return []


def _guess(denials: list[Finding], units: int) -> int | None:
    """Where the proportional limits among ``denials`` put the edge, in steps (or None)."""
    scale = math.inf
    for finding in denials:
        keys = _PROPORTIONAL.get(finding.code)
        if keys is None:
            continue
        limit, value = finding.values.get(keys[0]), finding.values.get(keys[1])
        if isinstance(limit, float | int) and isinstance(value, float | int) and value > 0:
            scale = min(scale, limit / value)
    if not 0.0 < scale < 1.0:
        return None
    return math.floor(units * scale)


def _amount(units: int, step: float) -> float:
    # 1658 * 0.001 is 1.6580000000000001; an amount a venue will echo back should read 1.658.
    return round(units * step, 12)


__all__ = ["SIZE_CODES", "max_safe_amount"]
