"""The pre-trade verdict: one pure function from (order, market, account, limits, fills, now).

:func:`evaluate` never does I/O and never reads the clock. It runs in three passes:

1. **Gates** that need no prices: input types, the symbol, the account, the age of every piece
   of market data, the market's filters, the order's shape, reduce-only and post-only, leverage
   policy, open-order count, the stop's presence and side. Missing data needed to price the
   order ends the verdict here with a DENY (it fails closed); stale data denies but the order
   is still priced so the report shows what it would have cost.
2. **Pricing** on the expected face of the fill model (:mod:`safeguard.risk.pricing`) and the
   checks that depend on prices: depth, notional per order / position / account, concentration,
   the tier's leverage cap, margin, liquidation at entry, and the stop's fill against the
   liquidation price. With ``degraded=True`` the same checks run again on the degraded face;
   what only the degraded face denies becomes DEGRADED_RISK.
3. **Sizing** (unless ``size_search=False``): the largest amount that passes every size-dependent
   check, for a caller that wants to shrink the order rather than drop it.

Orders that only reduce exposure are treated gently on purpose: a stale feed or a thin stop
buffer warns instead of denying them, because blocking the way out is itself a risk. They still
need an account (to prove they reduce) and valid inputs.
"""

from __future__ import annotations

import math
from typing import Any

from safeguard.codes import Code
from safeguard.config import RiskLimits
from safeguard.risk.fills import FillFace, FillModel
from safeguard.risk.models import Account, MarketSnapshot, OrderIntent, is_multiple
from safeguard.risk.outcome import Decision, Finding, Severity, Verdict, fmt, pct
from safeguard.risk.pricing import Exposure, Order, PricedOrder, price_order

DENY = Severity.DENY
WARN = Severity.WARN

# Denials that a smaller (or larger) amount could cure. Any other denial means no amount passes.
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
    }
)

_SEARCH_PROBES = 40
"""Bisection steps of the size search at most (2^-40 of the range: far below any step size)."""


def evaluate(
    intent: OrderIntent,
    market: MarketSnapshot,
    account: Account | None,
    limits: RiskLimits,
    fills: FillModel,
    *,
    now: float,
    degraded: bool = False,
    size_search: bool = True,
) -> Verdict:
    """Decide whether ``intent`` may be sent, and price it. Pure: ``now`` is epoch seconds."""
    bad = _bad_types(intent, market, account, limits, fills, now, degraded)
    if bad is not None:
        return _bare_verdict(intent, now, degraded, (Finding(Code.INVALID_INPUT, DENY, bad),))
    findings: list[Finding] = []
    if intent.symbol != market.symbol:
        findings.append(
            Finding(
                Code.UNKNOWN_SYMBOL,
                DENY,
                f"order is for {intent.symbol} but the market snapshot is for {market.symbol}",
                {"symbol": intent.symbol, "market": market.symbol},
            )
        )
        return _bare_verdict(intent, now, degraded, tuple(findings))
    if account is None:
        findings.append(
            Finding(Code.MISSING_ACCOUNT, DENY, "no account: positions and balance are unknown")
        )
        return _bare_verdict(intent, now, degraded, tuple(findings))

    exposure = Exposure.of(intent, account, intent.amount)
    if not _gate_data(intent, market, account, limits, now, exposure, findings):
        return _bare_verdict(intent, now, degraded, tuple(findings))
    try:
        # Both faces close at the taker fee, so the liquidation options are built once.
        order = Order.build(
            intent, market, account, limits, now, exposure, fills.expected.taker_fee
        )
        _gate_rules(order, intent.amount, findings)
        _gate_shape(order, findings)
        if findings and any(f.severity is DENY and f.code is Code.INVALID_INPUT for f in findings):
            return _bare_verdict(intent, now, degraded, tuple(findings))
        expected = price_order(order, fills.expected, intent.amount)
        findings.extend(_priced_checks(order, expected))
        costing = expected.costing
        if degraded:
            sick = price_order(order, fills.degraded, intent.amount)
            costing = sick.costing
            findings.extend(_degraded_only(_priced_checks(order, sick), findings))
    except (ValueError, ArithmeticError) as exc:
        # Inputs that pass validation one by one can still be absurd together (a mark of
        # 1e-300 against a 1e16 order, a 100 % safety buffer); whatever the arithmetic or the
        # liquidation model refuses is a denial, never an exception out of the verdict.
        findings.append(
            Finding(
                Code.INVALID_INPUT,
                DENY,
                f"the order could not be priced: {exc}",
                {"error": type(exc).__name__},
            )
        )
        return _bare_verdict(intent, now, degraded, tuple(findings))

    max_safe: float | None = None
    if size_search:
        try:
            max_safe = _max_safe_amount(order, fills, degraded, findings)
        except (ValueError, ArithmeticError):
            max_safe = 0.0  # a size the arithmetic cannot price is not a safe size
    return Verdict(
        decision=_decide(findings),
        findings=tuple(findings),
        symbol=intent.symbol,
        side=intent.side,
        amount=intent.amount,
        face=FillFace.DEGRADED if degraded else FillFace.EXPECTED,
        costing=costing,
        expected=expected.costing,
        max_safe_amount=max_safe,
        now=now,
    )


# --- pass 1: gates that need no prices ---------------------------------------------------


def _bad_types(
    intent: Any, market: Any, account: Any, limits: Any, fills: Any, now: Any, degraded: Any
) -> str | None:
    if not isinstance(intent, OrderIntent):
        return f"intent must be an OrderIntent, got {type(intent).__name__}"
    if not isinstance(market, MarketSnapshot):
        return f"market must be a MarketSnapshot, got {type(market).__name__}"
    if account is not None and not isinstance(account, Account):
        return f"account must be an Account or None, got {type(account).__name__}"
    if not isinstance(limits, RiskLimits):
        return f"limits must be RiskLimits, got {type(limits).__name__}"
    if not isinstance(fills, FillModel):
        return f"fills must be a FillModel, got {type(fills).__name__}"
    if (
        isinstance(now, bool)
        or not isinstance(now, int | float)
        or not math.isfinite(now)
        or now < 0
    ):
        return f"now must be a finite epoch time >= 0, got {now!r}"
    if not isinstance(degraded, bool):
        return f"degraded must be a bool, got {degraded!r}"
    return None


def _gate_data(
    intent: OrderIntent,
    market: MarketSnapshot,
    account: Account,
    limits: RiskLimits,
    now: float,
    exposure: Exposure,
    findings: list[Finding],
) -> bool:
    """Presence and age of every input. False when the order cannot be priced at all."""
    # Data problems deny anything that adds exposure; an order that only reduces may still go.
    severity = DENY if exposure.increases else WARN
    hedged = [
        p for p in account.positions if p.symbol == intent.symbol and p.position_side != "BOTH"
    ]
    if hedged:
        findings.append(
            Finding(
                Code.INVALID_INPUT,
                DENY,
                f"the account holds hedge-mode ({hedged[0].position_side}) legs in "
                f"{intent.symbol}; the verdict prices one-way positions only",
                {"position_side": hedged[0].position_side},
            )
        )
        return False
    if account.available_balance is None and (account.positions or account.open_orders):
        findings.append(
            Finding(
                Code.MISSING_ACCOUNT,
                DENY,
                "available_balance is unknown for an account with positions or open orders",
                {"positions": len(account.positions), "open_orders": account.open_orders},
            )
        )
        return False
    missing = []
    if (
        market.mark is None
        or market.mark_time is None
        or market.book is None
        or market.book_time is None
        or market.rules is None
        or market.volatility is None
    ):
        missing = [
            name
            for name, value in (
                ("mark", market.mark),
                ("mark_time", market.mark_time),
                ("book", market.book),
                ("book_time", market.book_time),
                ("rules (tiers, filters)", market.rules),
                ("volatility", market.volatility),
            )
            if value is None
        ]
    if limits.funding_horizon_s > 0 and exposure.increases:
        if market.funding_rate is None:
            missing.append("funding_rate")
        if market.next_funding_time is None:
            missing.append("next_funding_time")
    if intent.stop_trigger == "last" and intent.stop_price is not None and market.last is None:
        missing.append("last (the stop watches the last price)")
    if missing:
        findings.append(
            Finding(
                Code.MISSING_MARKET_DATA,
                DENY,
                f"missing {', '.join(missing)}: the order cannot be priced, so it is denied",
                {"missing": ", ".join(missing)},
            )
        )
        return False
    assert market.mark_time is not None
    assert market.book_time is not None
    assert market.rules is not None
    for name, stamp in (("mark", market.mark_time), ("book", market.book_time)):
        age = now - stamp
        if abs(age) > limits.max_market_data_age_s:
            findings.append(
                Finding(
                    Code.STALE_MARKET_DATA,
                    severity,
                    f"{name} is {fmt(age)} s old; "
                    f"policy allows {fmt(limits.max_market_data_age_s)} s"
                    if age > 0
                    else f"{name} is stamped {fmt(-age)} s in the future (clock skew?)",
                    {"input": name, "age_s": age, "max_age_s": limits.max_market_data_age_s},
                )
            )
    next_funding = market.next_funding_time
    if next_funding is not None and limits.funding_horizon_s > 0:
        interval = market.funding_interval_s
        # The next funding time is at most one interval ahead; one that has already passed
        # (beyond the data-age allowance) or lies further out was not refreshed.
        late = now - next_funding > limits.max_market_data_age_s
        early = next_funding - now > interval + limits.max_market_data_age_s
        if late or early:
            findings.append(
                Finding(
                    Code.STALE_MARKET_DATA,
                    severity,
                    f"next funding time is {fmt(abs(next_funding - now))} s "
                    f"{'in the past' if late else 'away'}; a fresh schedule has it within "
                    f"{fmt(interval)} s",
                    {"input": "next_funding_time", "offset_s": next_funding - now},
                )
            )
    rules_age = now - market.rules.updated_at
    if abs(rules_age) > limits.max_rules_age_s:
        findings.append(
            Finding(
                Code.STALE_MARKET_RULES,
                severity,
                f"tiers and filters are {fmt(rules_age)} s old; "
                f"policy allows {fmt(limits.max_rules_age_s)} s",
                {"age_s": rules_age, "max_age_s": limits.max_rules_age_s},
            )
        )
    return True


def _gate_rules(order: Order, amount: float, findings: list[Finding]) -> None:
    """The market's filters: tick, step, min/max quantity, min notional."""
    intent, rules = order.intent, order.rules
    if intent.price is not None and not is_multiple(intent.price, rules.tick_size):
        findings.append(
            Finding(
                Code.TICK_SIZE,
                DENY,
                f"price {fmt(intent.price)} is not a multiple of the tick {fmt(rules.tick_size)}",
                {"price": intent.price, "tick_size": rules.tick_size},
            )
        )
    if intent.stop_price is not None and not is_multiple(intent.stop_price, rules.tick_size):
        findings.append(
            Finding(
                Code.TICK_SIZE,
                DENY,
                f"stop {fmt(intent.stop_price)} is not a multiple of the tick "
                f"{fmt(rules.tick_size)}",
                {"stop_price": intent.stop_price, "tick_size": rules.tick_size},
            )
        )
    findings.extend(_size_rules(order, amount))


def _size_rules(order: Order, amount: float) -> list[Finding]:
    intent, rules = order.intent, order.rules
    out: list[Finding] = []
    if not is_multiple(amount, rules.step_size):
        out.append(
            Finding(
                Code.STEP_SIZE,
                DENY,
                f"amount {fmt(amount)} is not a multiple of the step {fmt(rules.step_size)}",
                {"amount": amount, "step_size": rules.step_size},
            )
        )
    if amount < rules.min_qty:
        out.append(
            Finding(
                Code.MIN_QUANTITY,
                DENY,
                f"amount {fmt(amount)} is below the market minimum {fmt(rules.min_qty)}",
                {"amount": amount, "min_qty": rules.min_qty},
            )
        )
    if rules.max_qty is not None and amount > rules.max_qty:
        out.append(
            Finding(
                Code.MAX_QUANTITY,
                DENY,
                f"amount {fmt(amount)} is above the market maximum {fmt(rules.max_qty)}",
                {"amount": amount, "max_qty": rules.max_qty},
            )
        )
    notional = amount * order.reference_price
    # Venues exempt reduce-only orders from the minimum notional so dust can be closed.
    if not intent.reduce_only and notional < rules.min_notional:
        out.append(
            Finding(
                Code.MIN_NOTIONAL,
                DENY,
                f"notional {fmt(notional)} is below the market minimum {fmt(rules.min_notional)}",
                {"notional": notional, "min_notional": rules.min_notional},
            )
        )
    return out


def _gate_shape(order: Order, findings: list[Finding]) -> None:
    """Band, post-only, reduce-only, margin mode, leverage policy, open orders, stop presence."""
    intent, limits, market = order.intent, order.limits, order.market
    mark = order.mark
    if order.leg is not None and order.leg_mode != intent.margin_mode:
        findings.append(
            Finding(
                Code.INVALID_INPUT,
                DENY,
                f"margin_mode is {intent.margin_mode} but the open {intent.symbol} position is "
                f"{order.leg_mode}; the venue will not mix them",
                {"margin_mode": intent.margin_mode, "position_margin_mode": order.leg_mode},
            )
        )
    band = limits.price_band_pct
    if band is not None and intent.price is not None:
        off = (intent.price - mark) / mark * 100.0
        if abs(off) > band:
            findings.append(
                Finding(
                    Code.PRICE_OUTSIDE_BAND,
                    DENY,
                    f"price {fmt(intent.price)} is {pct(abs(off))} % from the mark {fmt(mark)}; "
                    f"policy band is {pct(band)} %",
                    {"price": intent.price, "mark": mark, "off_pct": off, "band_pct": band},
                )
            )
    if intent.post_only and intent.price is not None:
        touch = order.book.touch(intent.side)
        if (intent.price - touch) * intent.direction >= 0:
            findings.append(
                Finding(
                    Code.POST_ONLY_WOULD_TAKE,
                    DENY,
                    f"post-only {intent.side} at {fmt(intent.price)} would take: "
                    f"best {'ask' if intent.side == 'buy' else 'bid'} is {fmt(touch)}",
                    {"price": intent.price, "touch": touch},
                )
            )
    if intent.reduce_only:
        held = order.exposure.held
        if held == 0.0 or held * intent.direction > 0:
            what = "no position" if held == 0.0 else f"a {fmt(held)} position"
            findings.append(
                Finding(
                    Code.REDUCE_ONLY_WOULD_INCREASE,
                    DENY,
                    f"reduce-only {intent.side} of {fmt(intent.amount)} against {what} "
                    "would open or add exposure",
                    {"position": held, "amount": intent.amount},
                )
            )
        elif order.reduce_only_flips(intent.amount):
            findings.append(
                Finding(
                    Code.REDUCE_ONLY_WOULD_FLIP,
                    DENY,
                    f"reduce-only {intent.side} of {fmt(intent.amount)} exceeds the "
                    f"{fmt(abs(held))} position and would flip it",
                    {"position": held, "amount": intent.amount},
                )
            )
    if order.increases:
        cap = limits.max_leverage
        if cap is not None and intent.leverage > cap:
            findings.append(
                Finding(
                    Code.LEVERAGE_ABOVE_POLICY,
                    DENY,
                    f"leverage {fmt(intent.leverage)}x is above the policy's {fmt(cap)}x",
                    {"leverage": intent.leverage, "max_leverage": cap},
                )
            )
        if intent.stop_price is None and limits.require_stop:
            findings.append(
                Finding(
                    Code.STOP_REQUIRED,
                    DENY,
                    f"this {intent.side} {order.exposure.effect}s a position without a stop; "
                    "policy requires one",
                    {"effect": order.exposure.effect},
                )
            )
    max_orders = limits.max_open_orders
    if max_orders is not None and order.new_resting:
        account_orders = order.account.open_orders
        after = account_orders + order.new_resting
        if after > max_orders:
            findings.append(
                Finding(
                    Code.OPEN_ORDER_COUNT,
                    DENY,
                    f"{account_orders} open orders + {order.new_resting} new would make {after}; "
                    f"policy allows {max_orders}",
                    {"open_orders": account_orders, "after": after, "max_open_orders": max_orders},
                )
            )
    stop = intent.stop_price
    if stop is not None and order.exposure.after != 0.0:
        watched = market.last if intent.stop_trigger == "last" else mark
        assert watched is not None
        long_after = order.exposure.after > 0
        if (stop >= watched) if long_after else (stop <= watched):
            findings.append(
                Finding(
                    Code.STOP_WRONG_SIDE,
                    DENY if order.increases else WARN,
                    f"stop {fmt(stop)} is already {'at or above' if long_after else 'at or below'} "
                    f"the {intent.stop_trigger} price {fmt(watched)}: it would trigger at once",
                    {"stop_price": stop, "watched_price": watched},
                )
            )


# --- pass 2: checks on prices --------------------------------------------------------------


def _priced_checks(order: Order, priced: PricedOrder) -> list[Finding]:
    intent, limits, costing = order.intent, order.limits, priced.costing
    out: list[Finding] = []
    increases = order.increases
    if priced.entry_unfilled > 0.0 and intent.type == "market":
        out.append(
            Finding(
                Code.INSUFFICIENT_DEPTH,
                DENY,
                f"market {intent.side} of {fmt(costing.amount)} exceeds the visible book by "
                f"{fmt(priced.entry_unfilled)}",
                {"amount": costing.amount, "unfilled": priced.entry_unfilled},
            )
        )
    band = limits.price_band_pct
    if band is not None and intent.type == "market":
        off = (costing.expected_entry - order.mark) / order.mark * 100.0
        if abs(off) > band:
            out.append(
                Finding(
                    Code.PRICE_OUTSIDE_BAND,
                    DENY,
                    f"expected fill {fmt(costing.expected_entry)} is {pct(abs(off))} % from the "
                    f"mark {fmt(order.mark)}; policy band is {pct(band)} %",
                    {"expected_entry": costing.expected_entry, "off_pct": off, "band_pct": band},
                )
            )
    cap = limits.max_notional_per_order
    if cap is not None and costing.order_notional > cap:
        out.append(
            Finding(
                Code.NOTIONAL_PER_ORDER,
                DENY,
                f"order notional {fmt(costing.order_notional)} is above the policy's {fmt(cap)}",
                {"notional": costing.order_notional, "max": cap},
            )
        )
    if not increases:
        out.extend(_stop_checks(order, priced, WARN))
        return out
    cap = limits.max_notional_per_position
    if cap is not None and costing.position_notional > cap:
        out.append(
            Finding(
                Code.NOTIONAL_PER_POSITION,
                DENY,
                f"{intent.symbol} position notional would be {fmt(costing.position_notional)}; "
                f"policy allows {fmt(cap)}",
                {"notional": costing.position_notional, "max": cap},
            )
        )
    cap = limits.max_notional_per_account
    total = order.other_notional + costing.position_notional
    if cap is not None and total > cap:
        out.append(
            Finding(
                Code.NOTIONAL_PER_ACCOUNT,
                DENY,
                f"account notional would be {fmt(total)}; policy allows {fmt(cap)}",
                {"notional": total, "max": cap},
            )
        )
    share_cap = limits.max_concentration
    if share_cap is not None:
        equity = order.equity - costing.entry_fee
        share = costing.position_notional / equity if equity > 0 else math.inf
        if share > share_cap:
            out.append(
                Finding(
                    Code.CONCENTRATION,
                    DENY,
                    f"{intent.symbol} would be {pct(share * 100)} % of equity {fmt(equity)}; "
                    f"policy allows {pct(share_cap * 100)} %",
                    {"share": share, "equity": equity, "max": share_cap},
                )
            )
    tier_cap = costing.tier_max_leverage
    if tier_cap is None:
        out.append(
            Finding(
                Code.LEVERAGE_ABOVE_TIER,
                DENY,
                f"position notional {fmt(costing.position_notional)} is beyond the last tier "
                f"({fmt(order.rules.max_position_notional)}); the venue would refuse it",
                {"notional": costing.position_notional},
            )
        )
    elif intent.leverage > tier_cap:
        out.append(
            Finding(
                Code.LEVERAGE_ABOVE_TIER,
                DENY,
                f"leverage {fmt(intent.leverage)}x is above tier {costing.tier}'s "
                f"{fmt(tier_cap)}x at notional {fmt(costing.position_notional)}",
                {"leverage": intent.leverage, "tier_max_leverage": tier_cap, "tier": costing.tier},
            )
        )
    needed = costing.initial_margin + costing.entry_fee
    if needed > order.available:
        out.append(
            Finding(
                Code.INSUFFICIENT_MARGIN,
                DENY,
                f"order needs {fmt(needed)} (margin {fmt(costing.initial_margin)} + fee "
                f"{fmt(costing.entry_fee)}); {fmt(order.available)} is available",
                {"needed": needed, "available": order.available},
            )
        )
    liq = costing.liquidation_price
    long_after = costing.position_after > 0
    if liq is not None and (liq - order.mark) * (1 if long_after else -1) >= 0:
        out.append(
            Finding(
                Code.LIQUIDATION_AT_ENTRY,
                DENY,
                f"liquidation {fmt(liq)} is already {'above' if long_after else 'below'} "
                f"the mark {fmt(order.mark)}: the position would open liquidated",
                {"liquidation_price": liq, "mark": order.mark},
            )
        )
    stop = intent.stop_price
    if stop is not None and (stop - costing.expected_entry) * intent.direction >= 0:
        out.append(
            Finding(
                Code.STOP_WRONG_SIDE,
                DENY,
                f"stop {fmt(stop)} is on the profit side of the expected entry "
                f"{fmt(costing.expected_entry)} for a {intent.side}",
                {"stop_price": stop, "expected_entry": costing.expected_entry},
            )
        )
    out.extend(_stop_checks(order, priced, DENY))
    return out


def _stop_checks(order: Order, priced: PricedOrder, severity: Severity) -> list[Finding]:
    costing, limits = priced.costing, order.limits
    if costing.stop_effective_price is None or costing.stop_distance_pct is None:
        return []
    out: list[Finding] = []
    if priced.stop_unfilled > 0.0:
        out.append(
            Finding(
                Code.INSUFFICIENT_DEPTH,
                severity,
                f"the stop's close of {fmt(abs(costing.position_after))} exceeds the visible book "
                f"by {fmt(priced.stop_unfilled)}: its fill cannot be priced",
                {"unfilled": priced.stop_unfilled},
            )
        )
    need = limits.min_liquidation_buffer_pct
    distance = costing.stop_distance_pct
    if distance < need:
        liq = costing.liquidation_price
        assert liq is not None
        where = (
            f"sits {pct(distance)} % inside" if distance >= 0 else f"is {pct(-distance)} % beyond"
        )
        out.append(
            Finding(
                Code.STOP_BEYOND_LIQUIDATION,
                severity,
                f"stop fill {fmt(costing.stop_effective_price)} {where} liquidation {fmt(liq)} "
                f"({pct(abs(costing.stop_distance_vol or 0.0))} x recent volatility); "
                f"policy needs {pct(need)} %",
                {
                    "stop_effective_price": costing.stop_effective_price,
                    "liquidation_price": liq,
                    "distance_pct": distance,
                    "distance_vol": costing.stop_distance_vol,
                    "required_pct": need,
                },
            )
        )
    return out


def _degraded_only(sick: list[Finding], calm: list[Finding]) -> list[Finding]:
    """Denials only the degraded face produced, restated as DEGRADED_RISK."""
    calm_denials = {f.code for f in calm if f.severity is DENY}
    out: list[Finding] = []
    for finding in sick:
        if finding.severity is DENY and finding.code not in calm_denials:
            out.append(
                Finding(
                    Code.DEGRADED_RISK,
                    DENY,
                    f"on the degraded fill model ({finding.code}): {finding.message}",
                    {"check": str(finding.code), **finding.values},
                )
            )
    return out


def _decide(findings: list[Finding] | tuple[Finding, ...]) -> Decision:
    if not findings:
        return Decision.ALLOW
    if any(f.severity is DENY for f in findings):
        return Decision.DENY
    return Decision.WARN if findings else Decision.ALLOW


def _bare_verdict(intent: Any, now: Any, degraded: Any, findings: tuple[Finding, ...]) -> Verdict:
    """A verdict for an order that could not be priced: DENY, no numbers, nothing passes."""
    typed = isinstance(intent, OrderIntent)
    return Verdict(
        decision=_decide(findings),
        findings=findings,
        symbol=intent.symbol if typed else "?",
        side=intent.side if typed else "?",
        amount=intent.amount if typed else math.nan,
        face=FillFace.DEGRADED if degraded is True else FillFace.EXPECTED,
        costing=None,
        expected=None,
        max_safe_amount=0.0,
        now=now if isinstance(now, int | float) and not isinstance(now, bool) else math.nan,
    )


# --- pass 3: the largest amount that passes ------------------------------------------------


def _passes_at(probe: Order, fills: FillModel, degraded: bool, amount: float) -> bool:
    if _size_rules(probe, amount) or probe.reduce_only_flips(amount):
        return False
    probe.set_amount(amount)
    for terms in (fills.expected, fills.degraded) if degraded else (fills.expected,):
        priced = price_order(probe, terms, amount)
        if any(f.severity is DENY for f in _priced_checks(probe, priced)):
            return False
    return True


def _max_safe_amount(
    order: Order, fills: FillModel, degraded: bool, findings: list[Finding]
) -> float:
    """Bisect over whole steps between the smallest and the largest amount worth trying.

    Assumes the size-dependent checks get worse as the amount grows (true of every check here
    for orders in one direction); the answer is then exact to one step.
    """
    if any(f.severity is DENY and f.code not in SIZE_CODES for f in findings):
        return 0.0
    step = order.rules.step_size
    low_units = max(1, math.ceil(order.min_amount / step - 1e-9))
    high_units = math.floor(order.max_amount_to_try() / step + 1e-9)
    if high_units < low_units:
        return 0.0
    requested_units = order.intent.amount / step
    passed = not any(f.severity is DENY for f in findings)
    probe = order.copy()
    if passed and is_multiple(order.intent.amount, step):
        low_units = max(low_units, round(requested_units))
    elif not _passes_at(probe, fills, degraded, low_units * step):
        return 0.0
    if _passes_at(probe, fills, degraded, high_units * step):
        return _units(high_units, step)
    # Invariant: low passes, high fails.
    for _ in range(_SEARCH_PROBES):
        if high_units - low_units <= 1:
            break
        middle = (low_units + high_units) // 2
        if _passes_at(probe, fills, degraded, middle * step):
            low_units = middle
        else:
            high_units = middle
    return _units(low_units, step)


def _units(units: int, step: float) -> float:
    # 1658 * 0.001 is 1.6580000000000001; an amount a venue will echo back should read 1.658.
    return round(units * step, 12)


__all__ = ["SIZE_CODES", "evaluate"]
