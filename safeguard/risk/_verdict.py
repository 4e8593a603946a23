"""The pre-trade verdict: one pure function from (order, market, account, limits, fills, now).

:func:`evaluate` never does I/O and never reads the clock. It runs in three passes:

1. **Gates** that need no prices: input types, the symbol, the account, and the presence and
   age of every piece of market data (here), then the market's filters and the order's shape
   (:mod:`safeguard.risk._checks`). Missing data needed to price the order ends the verdict with
   a DENY (it fails closed); stale data denies but the order is still priced so the report
   shows what it would have cost.
2. **Pricing** on the expected face of the fill model (:mod:`safeguard.risk._pricing`) and the
   checks that depend on prices: depth, notional per order / position / account, concentration,
   the tier's leverage cap, margin, liquidation at entry, the stop's fill against the
   liquidation price, and (with ``require_stress_survival``) the policy's stress grid on the
   account the order leaves. With ``degraded=True`` the same checks run again on the degraded face;
   what only the degraded face denies becomes DEGRADED_RISK.
3. **Sizing** (unless ``size_search=False``, :mod:`safeguard.risk._sizing`): the largest amount
   that passes every size-dependent check, for a caller that wants to shrink the order rather
   than drop it.

Orders that only reduce exposure are treated gently on purpose: a stale feed or a thin stop
buffer warns instead of denying them, because blocking the way out is itself a risk. They still
need an account (to prove they reduce) and valid inputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from safeguard._codes import Code
from safeguard._config import RiskLimits
from safeguard.risk._cascade import LiquidationBand, liquidation_band, margin_ratio
from safeguard.risk._checks import run_priced_checks, run_shape_checks, run_size_rules
from safeguard.risk._fills import FillFace, FillModel
from safeguard.risk._freshness import snapshot_staleness
from safeguard.risk._models import Account, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Decision, Finding, Severity, Verdict, fmt, pct
from safeguard.risk._pricing import Exposure, Order, PricedOrder, price_order
from safeguard.risk._sizing import SIZE_CODES, max_safe_amount
from safeguard.risk._stress import DepthProfile
from safeguard.risk._trusted import trusted

_verdict = trusted(Verdict)  # no __post_init__: the same object, built without frozen setattrs

DENY = Severity.DENY
WARN = Severity.WARN


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
    depth: Mapping[str, DepthProfile] | None = None,
    band: bool = False,
    closes: Mapping[str, Mapping[int, float]] | None = None,
    open_interest: Mapping[str, float] | None = None,
) -> Verdict:
    """Decide whether ``intent`` may be sent, and price it. Pure: ``now`` is epoch seconds.

    ``depth`` gives the book each *other* held symbol's forced close would walk; only the
    stress grid reads it (``limits.require_stress_survival``), and without it an account
    holding other symbols is denied new exposure under that policy (MISSING_MARKET_DATA).
    ``band=True`` adds the position's liquidation band to the verdict (an explanation, not a
    check: a bot's order path leaves it off). ``closes`` maps each symbol to its recent closes
    by interval index (:meth:`safeguard.risk._correlation.PriceHistory.window`): the cascade
    measures its correlations from them under ``risk.stress.correlation_source = "estimated"``
    (a pair without enough falls back to ``cascade_correlation`` and warns
    CORRELATION_FALLBACK); the last estimate is kept for as long as the closes handed in are
    equal to the ones it was made from. ``open_interest`` gives each *other* held symbol's
    open interest in quote currency: with ``risk.stress.crowd_leverage`` the cascade spreads a
    crowd over every symbol it moves, and one without it denies new exposure
    (MISSING_MARKET_DATA), as the order's own symbol without ``market.open_interest`` does."""
    bad = (
        _bad_types(intent, market, account, limits, fills, now, degraded, depth)
        or _bad_closes(closes)
        or _bad_open_interest(open_interest)
    )
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
            intent,
            market,
            account,
            limits,
            now,
            exposure,
            fills.expected.taker_fee,
            depth,
            closes,
            open_interest,
        )
        findings.extend(run_size_rules(order, intent.amount))
        findings.extend(run_shape_checks(order))
        if findings and any(f.severity is DENY and f.code is Code.INVALID_INPUT for f in findings):
            return _bare_verdict(intent, now, degraded, tuple(findings))
        expected = price_order(order, fills.expected, intent.amount)
        findings.extend(run_priced_checks(order, expected))
        pressure = _margin_pressure(order, expected)
        if pressure is not None:
            findings.append(pressure)
        costing = expected.costing
        if degraded:
            sick = price_order(order, fills.degraded, intent.amount)
            costing = sick.costing
            findings.extend(_degraded_only(run_priced_checks(order, sick), findings))
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
            max_safe = max_safe_amount(order, fills, degraded, findings)
        except (ValueError, ArithmeticError):
            max_safe = 0.0  # a size the arithmetic cannot price is not a safe size
    return _verdict(
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
        band=_band(order, expected) if band else None,
    )


def _margin_pressure(order: Order, priced: PricedOrder) -> Finding | None:
    """A warning, never a denial: the order leaves its position inside its liquidation band
    (the pool's margin ratio past ``risk.band_warning_ratio``)."""
    position = priced.position
    if not order.increases or position is None or position.inverse:
        return None
    ratio = margin_ratio(priced.account_after(order), position)
    level = order.limits.band_warning_ratio
    if ratio < level:
        return None
    return Finding(
        Code.MARGIN_PRESSURE,
        WARN,
        f"the {order.intent.symbol} position's margin ratio would be {pct(ratio * 100.0)} % "
        f"(maintenance over equity; 100 % liquidates), past the band's warning level "
        f"{pct(level * 100.0)} % (risk.band_warning_ratio)",
        {"margin_ratio": ratio, "warning_ratio": level},
    )


def _band(order: Order, priced: PricedOrder) -> LiquidationBand | None:
    """The position's band after the order, edge times in seconds: the market's volatility is
    per ``volatility_window_s``, so per square-root second it is that over the window's root."""
    position = priced.position
    if position is None or position.inverse:
        return None
    limits = order.limits
    try:
        bands, _ = liquidation_band(
            priced.account_after(order),
            volatility=order.volatility / math.sqrt(limits.volatility_window_s),
            warning_ratio=limits.band_warning_ratio,
            partial_ratio=limits.band_partial_ratio,
            model=order.rules.liquidation_model,
        )
    except (ValueError, ArithmeticError):
        return None  # an explanation that cannot be computed is left out, never raised
    return next((b for b in bands if b.subject == order.intent.symbol), None)


# --- pass 1: gates that need no prices ---------------------------------------------------


def _bad_types(
    intent: Any,
    market: Any,
    account: Any,
    limits: Any,
    fills: Any,
    now: Any,
    degraded: Any,
    depth: Any,
) -> str | None:
    # The guard's own call, on every order: exact classes, a float clock, no other books.
    # Identity checks answer it at once; anything else takes the full checks below.
    if (
        intent.__class__ is OrderIntent
        and market.__class__ is MarketSnapshot
        and (account is None or account.__class__ is Account)
        and limits.__class__ is RiskLimits
        and fills.__class__ is FillModel
        and now.__class__ is float
        and 0.0 <= now < math.inf
        and (degraded is True or degraded is False)
        and (depth is None or (depth.__class__ is dict and not depth))
    ):
        return None
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
    if depth is not None and (
        not isinstance(depth, Mapping)
        or not all(isinstance(k, str) and isinstance(v, DepthProfile) for k, v in depth.items())
    ):
        return f"depth must map symbols to DepthProfile, got {depth!r}"
    return None


def _bad_closes(closes: Any) -> str | None:
    """Closes are checked for shape only: a price that is not finite and positive is the
    estimator's to drop (it cuts that symbol's returns, never poisons them)."""
    if closes is None:
        return None
    if not isinstance(closes, Mapping) or not all(
        isinstance(symbol, str)
        and isinstance(series, Mapping)
        and all(isinstance(k, int) and not isinstance(k, bool) for k in series)
        for symbol, series in closes.items()
    ):
        return "closes must map symbols to {interval index (int): price}"
    return None


def _bad_open_interest(open_interest: Any) -> str | None:
    if open_interest is None:
        return None
    if not isinstance(open_interest, Mapping) or not all(
        isinstance(symbol, str)
        and not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0.0
        for symbol, value in open_interest.items()
    ):
        return (
            f"open_interest must map symbols to a finite quote notional >= 0, got {open_interest!r}"
        )
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
        if limits.funding_at_cap and market.funding_cap is None and limits.funding_cap_rate is None:
            missing.append(
                "funding_cap (risk.funding_at_cap prices funding at it; risk.funding_cap_rate "
                "stands in for a venue that does not publish it)"
            )
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
    stamps: list[tuple[str, float | None]] = [
        ("mark", market.mark_time),
        ("book", market.book_time),
    ]
    if intent.stop_trigger == "last" and intent.stop_price is not None:
        stamps.append(("last", market.last_time))  # the price the stop watches
    for name, stamp in stamps:
        if stamp is None:
            continue  # a last price of unknown time cannot be aged (the guard always says)
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
    # A fresh timestamp on a price that stopped moving (or a mark gone its own way) is stale.
    # The snapshot and the limits checked these numbers when they were built: not again here.
    stale_prices = snapshot_staleness(
        market.price_tracks,
        mark=market.mark,
        index=market.index,
        last=market.last,
        volatility=market.volatility,
        tick=market.rules.tick_size,
        limits=limits,
        now=now,
    )
    for stale in stale_prices:
        findings.append(
            Finding(
                Code.STALE_MARKET_DATA,
                severity,
                stale.reason,
                {"input": stale.input, **stale.values},
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
    tiers_time = market.rules.tiers_updated_at
    tiers_age = 0.0 if tiers_time is None else now - tiers_time
    if abs(tiers_age) > limits.max_tiers_age_s and abs(rules_age) <= limits.max_rules_age_s:
        # Venues change brackets without notice: a ladder priced on must be a recent one.
        findings.append(
            Finding(
                Code.STALE_MARKET_RULES,
                severity,
                f"the tier table is {fmt(tiers_age)} s old; "
                f"policy allows {fmt(limits.max_tiers_age_s)} s (risk.max_tiers_age_s)",
                {"age_s": tiers_age, "max_age_s": limits.max_tiers_age_s},
            )
        )
    return True


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
    return unpriced(
        findings,
        symbol=intent.symbol if typed else "?",
        side=intent.side if typed else "?",
        amount=intent.amount if typed else math.nan,
        now=now if isinstance(now, int | float) and not isinstance(now, bool) else math.nan,
        degraded=degraded is True,
    )


def unpriced(
    findings: tuple[Finding, ...],
    *,
    symbol: str,
    side: str,
    amount: float,
    now: float,
    degraded: bool = False,
) -> Verdict:
    """The verdict on an order decided before it could be priced (invalid input, an unknown
    symbol, a SEVERE venue, an account that cannot be read): the same :class:`Verdict` as any
    other, with its findings, no costing, and nothing safe to send (``max_safe_amount`` 0)."""
    return _verdict(
        decision=_decide(findings),
        findings=findings,
        symbol=symbol,
        side=side,
        amount=amount,
        face=FillFace.DEGRADED if degraded else FillFace.EXPECTED,
        costing=None,
        expected=None,
        max_safe_amount=0.0,
        now=now,
    )


__all__ = ["SIZE_CODES", "evaluate", "unpriced"]
