"""The pre-trade checks, one small function each.

A check looks at one thing and returns a :class:`~safeguard.risk._outcome.Finding` (with its
stable code, a sentence with the numbers, and the numbers) or ``None``. Checks never raise for
a failing order and never do I/O; :mod:`safeguard.risk._verdict` decides which run and when.

Three families, by what they need:

- :data:`SIZE_RULES` take the order and an amount (the size search probes other amounts);
- :data:`SHAPE_CHECKS` take the order alone (no prices);
- :data:`PRICED_CHECKS` take the order priced on one face of the fill model.

Severity follows one rule: what adds exposure is denied; an order that only reduces exposure
gets a warning for the same finding, because blocking the way out is itself a risk.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from safeguard._codes import Code
from safeguard.risk._cascade import Correlation, first_breach
from safeguard.risk._crowding import tightening
from safeguard.risk._models import Account, MarketRules, is_multiple
from safeguard.risk._outcome import Finding, Severity, fmt, pct
from safeguard.risk._pricing import Order, PricedOrder
from safeguard.risk._stress import StressGrid, account_equity, survives_grid

DENY = Severity.DENY
WARN = Severity.WARN

SizeRule = Callable[[Order, float], Finding | None]
ShapeCheck = Callable[[Order], Finding | None]
PricedCheck = Callable[[Order, PricedOrder], Finding | None]

_GRID_SLACK = 1e-9
"""Float noise allowed at a price bound (a bound itself is a valid price)."""
_EFFECT_WORDS = {"open": "opens", "add": "adds to", "flip": "flips"}


# --- the market's filters -----------------------------------------------------------------


def step_size(order: Order, amount: float) -> Finding | None:
    step = order.rules.step_size
    if is_multiple(amount, step):
        return None
    return Finding(
        Code.STEP_SIZE,
        DENY,
        f"amount {fmt(amount)} is not a multiple of the step {fmt(step)}",
        {"amount": amount, "step_size": step},
    )


def min_quantity(order: Order, amount: float) -> Finding | None:
    least = order.rules.min_qty
    if amount >= least:
        return None
    return Finding(
        Code.MIN_QUANTITY,
        DENY,
        f"amount {fmt(amount)} is below the market minimum {fmt(least)}",
        {"amount": amount, "min_qty": least},
    )


def max_quantity(order: Order, amount: float) -> Finding | None:
    most = order.rules.max_qty
    if most is None or amount <= most:
        return None
    return Finding(
        Code.MAX_QUANTITY,
        DENY,
        f"amount {fmt(amount)} is above the market maximum {fmt(most)}",
        {"amount": amount, "max_qty": most},
    )


def min_notional(order: Order, amount: float) -> Finding | None:
    # Venues exempt reduce-only orders from the minimum notional so dust can be closed.
    if order.intent.reduce_only:
        return None
    least = order.rules.min_notional
    notional = amount * order.reference_price
    if notional >= least:
        return None
    return Finding(
        Code.MIN_NOTIONAL,
        DENY,
        f"notional {fmt(notional)} is below the market minimum {fmt(least)}",
        {"notional": notional, "min_notional": least},
    )


SIZE_RULES: tuple[SizeRule, ...] = (step_size, min_quantity, max_quantity, min_notional)


# --- the order's shape (no prices needed) ---------------------------------------------------


def price_tick(order: Order) -> Finding | None:
    price, tick = order.intent.price, order.rules.tick_size
    if price is None or is_multiple(price, tick):
        return None
    return Finding(
        Code.TICK_SIZE,
        DENY,
        f"price {fmt(price)} is not a multiple of the tick {fmt(tick)}",
        {"price": price, "tick_size": tick},
    )


def stop_tick(order: Order) -> Finding | None:
    stop, tick = order.intent.stop_price, order.rules.tick_size
    if stop is None or is_multiple(stop, tick):
        return None
    return Finding(
        Code.TICK_SIZE,
        DENY,
        f"stop {fmt(stop)} is not a multiple of the tick {fmt(tick)}",
        {"stop_price": stop, "tick_size": tick},
    )


def _price_filter_breach(price: float, rules: MarketRules) -> tuple[str, float] | None:
    """Why the venue's price filter refuses ``price`` (and the bound it breaks), or ``None``.

    Below one tick counts as below the minimum whatever the venue publishes: 1e-320 is a
    multiple of any tick (zero of them) and still no price at all."""
    least = max(rules.min_price, rules.tick_size)
    if price < least * (1.0 - _GRID_SLACK):
        return "below the market's minimum price", least
    if rules.max_price is not None and price > rules.max_price * (1.0 + _GRID_SLACK):
        return "above the market's maximum price", rules.max_price
    return None


def price_filter(order: Order) -> Finding | None:
    """A limit price the venue refuses: outside its min/max price, or (Binance's
    ``PERCENT_PRICE``) a buy above ``mark x up`` or a sell below ``mark x down``."""
    intent, rules = order.intent, order.rules
    price = intent.price
    if price is None:
        return None
    breach = _price_filter_breach(price, rules)
    if breach is None and rules.percent_price is not None:
        down, up = rules.percent_price
        if intent.side == "buy" and price > order.mark * up:
            breach = f"above the venue's cap of {pct(up * 100)} % of the mark", order.mark * up
        elif intent.side == "sell" and price < order.mark * down:
            breach = (
                f"below the venue's floor of {pct(down * 100)} % of the mark",
                order.mark * down,
            )
    if breach is None:
        return None
    where, bound = breach
    return Finding(
        Code.PRICE_FILTER,
        DENY,
        f"price {fmt(price)} is {where} ({fmt(bound)}): the venue would refuse the order",
        {"price": price, "bound": bound, "mark": order.mark},
    )


def stop_filter(order: Order) -> Finding | None:
    """A stop the venue would refuse to place (its price filter applies to ``stopPrice``):
    denied before the entry leaves, rather than sending the entry and failing on its stop."""
    stop = order.intent.stop_price
    breach = None if stop is None else _price_filter_breach(stop, order.rules)
    if stop is None or breach is None:
        return None
    where, bound = breach
    return Finding(
        Code.PRICE_FILTER,
        DENY if order.increases else WARN,
        f"stop {fmt(stop)} is {where} ({fmt(bound)}): the venue would refuse to place it",
        {"stop_price": stop, "bound": bound},
    )


def margin_mode(order: Order) -> Finding | None:
    intent, held_mode = order.intent, order.leg_mode
    if held_mode is None or held_mode == intent.margin_mode:
        return None
    return Finding(
        Code.INVALID_INPUT,
        DENY,
        f"margin_mode is {intent.margin_mode} but the open {intent.symbol} position is "
        f"{held_mode}; the venue will not mix them",
        {"margin_mode": intent.margin_mode, "position_margin_mode": held_mode},
    )


def price_band(order: Order) -> Finding | None:
    band, price, mark = order.limits.price_band_pct, order.intent.price, order.mark
    if band is None or price is None:
        return None
    off = (price - mark) / mark * 100.0
    if abs(off) <= band:
        return None
    return Finding(
        Code.PRICE_OUTSIDE_BAND,
        DENY,
        f"price {fmt(price)} is {pct(abs(off))} % from the mark {fmt(mark)}; "
        f"policy band is {pct(band)} %",
        {"price": price, "mark": mark, "off_pct": off, "band_pct": band},
    )


def post_only(order: Order) -> Finding | None:
    intent = order.intent
    if not intent.post_only or intent.price is None:
        return None
    touch = order.book.touch(intent.side)
    if (intent.price - touch) * intent.direction < 0:
        return None
    return Finding(
        Code.POST_ONLY_WOULD_TAKE,
        DENY,
        f"post-only {intent.side} at {fmt(intent.price)} would take: "
        f"best {'ask' if intent.side == 'buy' else 'bid'} is {fmt(touch)}",
        {"price": intent.price, "touch": touch},
    )


def reduce_only(order: Order) -> Finding | None:
    intent = order.intent
    if not intent.reduce_only:
        return None
    held = order.exposure.held
    if held == 0.0 or held * intent.direction > 0:
        what = "no position" if held == 0.0 else f"a {fmt(held)} position"
        return Finding(
            Code.REDUCE_ONLY_WOULD_INCREASE,
            DENY,
            f"reduce-only {intent.side} of {fmt(intent.amount)} against {what} "
            "would open or add exposure",
            {"position": held, "amount": intent.amount},
        )
    if not order.reduce_only_flips(intent.amount):
        return None
    return Finding(
        Code.REDUCE_ONLY_WOULD_FLIP,
        DENY,
        f"reduce-only {intent.side} of {fmt(intent.amount)} exceeds the "
        f"{fmt(abs(held))} position and would flip it",
        {"position": held, "amount": intent.amount},
    )


def _stricter(cap: float | None, mode_cap: float | None) -> float | None:
    if mode_cap is None:
        return cap
    return mode_cap if cap is None else min(cap, mode_cap)


def leverage_policy(order: Order) -> Finding | None:
    limits, leverage = order.limits, order.intent.leverage
    isolated = order.intent.margin_mode == "isolated"
    cap = _stricter(limits.max_leverage, limits.isolated_max_leverage if isolated else None)
    if not order.increases or cap is None or leverage <= cap:
        return None
    which = "isolated " if isolated and cap == limits.isolated_max_leverage else ""
    return Finding(
        Code.LEVERAGE_ABOVE_POLICY,
        DENY,
        f"leverage {fmt(leverage)}x is above the policy's {which}{fmt(cap)}x",
        {"leverage": leverage, "max_leverage": cap},
    )


def stop_required(order: Order) -> Finding | None:
    intent = order.intent
    if not order.increases or intent.stop_price is not None or not order.limits.require_stop:
        return None
    effect = order.exposure.effect
    return Finding(
        Code.STOP_REQUIRED,
        DENY,
        f"this {intent.side} {_EFFECT_WORDS.get(effect, effect)} a position without a stop; "
        "policy requires one",
        {"effect": effect},
    )


def open_orders(order: Order) -> Finding | None:
    most, new = order.limits.max_open_orders, order.new_resting
    if most is None or not new:
        return None
    open_now = order.account.open_orders
    after = open_now + new
    if after <= most:
        return None
    return Finding(
        Code.OPEN_ORDER_COUNT,
        DENY,
        f"{open_now} open orders + {new} new would make {after}; policy allows {most}",
        {"open_orders": open_now, "after": after, "max_open_orders": most},
    )


def stop_not_triggered(order: Order) -> Finding | None:
    """A stop at or through the price it watches would fire the moment it is placed."""
    intent, after = order.intent, order.exposure.after
    stop = intent.stop_price
    if stop is None or after == 0.0:
        return None
    watched = order.market.last if intent.stop_trigger == "last" else order.mark
    if watched is None:
        return None  # the data gate has already denied a stop on a missing last price
    long_after = after > 0
    if (stop < watched) if long_after else (stop > watched):
        return None
    return Finding(
        Code.STOP_WRONG_SIDE,
        DENY if order.increases else WARN,
        f"stop {fmt(stop)} is already {'at or above' if long_after else 'at or below'} "
        f"the {intent.stop_trigger} price {fmt(watched)}: it would trigger at once",
        {"stop_price": stop, "watched_price": watched},
    )


SHAPE_CHECKS: tuple[ShapeCheck, ...] = (
    price_tick,
    stop_tick,
    price_filter,
    stop_filter,
    margin_mode,
    price_band,
    post_only,
    reduce_only,
    leverage_policy,
    stop_required,
    open_orders,
    stop_not_triggered,
)


# --- checks on prices ----------------------------------------------------------------------


def entry_depth(order: Order, priced: PricedOrder) -> Finding | None:
    intent, unfilled = order.intent, priced.entry_unfilled
    if unfilled <= 0.0 or intent.type != "market":
        return None  # a limit order rests what the book cannot fill
    amount = priced.costing.amount
    return Finding(
        Code.INSUFFICIENT_DEPTH,
        DENY,
        f"market {intent.side} of {fmt(amount)} exceeds the visible book by {fmt(unfilled)}",
        {"amount": amount, "unfilled": unfilled},
    )


def fill_band(order: Order, priced: PricedOrder) -> Finding | None:
    """A market order walking a thin book can fill far from the mark: the fat-finger band
    applies to its expected fill as it does to a limit price."""
    band = order.limits.price_band_pct
    if band is None or order.intent.type != "market":
        return None
    entry, mark = priced.costing.expected_entry, order.mark
    off = (entry - mark) / mark * 100.0
    if abs(off) <= band:
        return None
    return Finding(
        Code.PRICE_OUTSIDE_BAND,
        DENY,
        f"expected fill {fmt(entry)} is {pct(abs(off))} % from the mark {fmt(mark)}; "
        f"policy band is {pct(band)} %",
        {"expected_entry": entry, "off_pct": off, "band_pct": band},
    )


def notional_per_order(order: Order, priced: PricedOrder) -> Finding | None:
    cap, notional = order.limits.max_notional_per_order, priced.costing.order_notional
    if cap is None or notional <= cap:
        return None
    return Finding(
        Code.NOTIONAL_PER_ORDER,
        DENY,
        f"order notional {fmt(notional)} is above the policy's {fmt(cap)}",
        {"notional": notional, "max": cap},
    )


def notional_per_position(order: Order, priced: PricedOrder) -> Finding | None:
    cap, notional = order.limits.max_notional_per_position, priced.costing.position_notional
    if not order.increases or cap is None or notional <= cap:
        return None
    return Finding(
        Code.NOTIONAL_PER_POSITION,
        DENY,
        f"{order.intent.symbol} position notional would be {fmt(notional)}; "
        f"policy allows {fmt(cap)}",
        {"notional": notional, "max": cap},
    )


def notional_per_account(order: Order, priced: PricedOrder) -> Finding | None:
    cap = order.limits.max_notional_per_account
    if not order.increases or cap is None:
        return None
    total = order.other_notional + priced.costing.position_notional
    if total <= cap:
        return None
    return Finding(
        Code.NOTIONAL_PER_ACCOUNT,
        DENY,
        f"account notional would be {fmt(total)}; policy allows {fmt(cap)}",
        {"notional": total, "max": cap},
    )


def concentration(order: Order, priced: PricedOrder) -> Finding | None:
    """One symbol's notional over the account's equity: a limit (stricter for an isolated
    position when the policy says so) and, below it, a warning level."""
    limits = order.limits
    isolated = order.intent.margin_mode == "isolated"
    cap = _stricter(
        limits.max_concentration, limits.isolated_max_concentration if isolated else None
    )
    warn = limits.concentration_warning
    if not order.increases or (cap is None and warn is None):
        return None
    costing = priced.costing
    equity = order.equity - costing.entry_fee
    share = costing.position_notional / equity if equity > 0 else math.inf
    if cap is not None and share > cap:
        which = "isolated " if isolated and cap == limits.isolated_max_concentration else ""
        return Finding(
            Code.CONCENTRATION,
            DENY,
            f"{order.intent.symbol} would be {fmt(share)}x equity {fmt(equity)} in notional; "
            f"policy allows {which}{fmt(cap)}x",
            {"share": share, "equity": equity, "max": cap},
        )
    if warn is None or share <= warn:
        return None
    return Finding(
        Code.CONCENTRATION,
        WARN,
        f"{order.intent.symbol} would be {fmt(share)}x equity {fmt(equity)} in notional, past "
        f"the policy's warning level {fmt(warn)}x",
        {"share": share, "equity": equity, "warning": warn},
    )


def crowding(order: Order, priced: PricedOrder) -> Finding | None:
    """A crowded symbol tightens the leverage, position-notional and concentration caps for
    orders that add to the crowded side (``risk.crowding``; the caps the policy sets)."""
    score = order.market.crowding
    if not order.increases or score is None or score.side not in (0, order.intent.direction):
        return None
    limits = order.limits
    factor = tightening(score, limits.crowding)
    if factor >= 1.0:
        return None
    isolated = order.intent.margin_mode == "isolated"
    why = f"{order.intent.symbol} is crowded (score {fmt(score.score)}"
    why += f", {'longs' if score.side > 0 else 'shorts' if score.side < 0 else 'both sides'})"
    base = {"score": score.score, "factor": factor}
    lev_cap = _stricter(limits.max_leverage, limits.isolated_max_leverage if isolated else None)
    leverage = order.intent.leverage
    if lev_cap is not None and leverage > lev_cap * factor:
        return Finding(
            Code.CROWDING,
            DENY,
            f"{why}: leverage {fmt(leverage)}x is above the tightened {fmt(lev_cap * factor)}x",
            {**base, "leverage": leverage, "max_leverage": lev_cap * factor},
        )
    costing = priced.costing
    cap = limits.max_notional_per_position
    notional = costing.position_notional
    if cap is not None and notional > cap * factor:
        return Finding(
            Code.CROWDING,
            DENY,
            f"{why}: position notional {fmt(notional)} is above the tightened {fmt(cap * factor)}",
            {**base, "notional": notional, "max": cap * factor},
        )
    share_cap = _stricter(
        limits.max_concentration, limits.isolated_max_concentration if isolated else None
    )
    equity = order.equity - costing.entry_fee
    if share_cap is not None:
        share = notional / equity if equity > 0 else math.inf
        if share > share_cap * factor:
            return Finding(
                Code.CROWDING,
                DENY,
                f"{why}: {fmt(share)}x equity in notional is above the tightened "
                f"{fmt(share_cap * factor)}x",
                {**base, "share": share, "max": share_cap * factor},
            )
    return None


def tier_leverage(order: Order, priced: PricedOrder) -> Finding | None:
    if not order.increases:
        return None
    costing, leverage = priced.costing, order.intent.leverage
    cap = costing.tier_max_leverage
    if cap is None:
        return Finding(
            Code.LEVERAGE_ABOVE_TIER,
            DENY,
            f"position notional {fmt(costing.position_notional)} is beyond the last tier "
            f"({fmt(order.rules.max_position_notional)}); the venue would refuse it",
            {"notional": costing.position_notional},
        )
    if leverage <= cap:
        return None
    return Finding(
        Code.LEVERAGE_ABOVE_TIER,
        DENY,
        f"leverage {fmt(leverage)}x is above tier {costing.tier}'s {fmt(cap)}x at notional "
        f"{fmt(costing.position_notional)}",
        {"leverage": leverage, "tier_max_leverage": cap, "tier": costing.tier},
    )


def margin(order: Order, priced: PricedOrder) -> Finding | None:
    if not order.increases:
        return None
    costing = priced.costing
    needed = costing.initial_margin + costing.entry_fee
    if needed <= order.available:
        return None
    return Finding(
        Code.INSUFFICIENT_MARGIN,
        DENY,
        f"order needs {fmt(needed)} (margin {fmt(costing.initial_margin)} + fee "
        f"{fmt(costing.entry_fee)}); {fmt(order.available)} is available",
        {"needed": needed, "available": order.available},
    )


def wallet_shortfall(order: Order, priced: PricedOrder) -> Finding | None:
    short = priced.wallet_shortfall
    if short <= 0.0:
        return None
    return Finding(
        Code.INSUFFICIENT_MARGIN,
        DENY if order.increases else WARN,
        f"the entry fee and the loss this order realises leave the wallet {fmt(short)} short; "
        "its liquidation price assumes an empty wallet",
        {"shortfall": short, "wallet": order.account.wallet_balance},
    )


def liquidation_at_entry(order: Order, priced: PricedOrder) -> Finding | None:
    liq = priced.costing.liquidation_price
    if not order.increases or liq is None:
        return None
    long_after = priced.costing.position_after > 0
    if (liq - order.mark) * (1 if long_after else -1) < 0:
        return None
    return Finding(
        Code.LIQUIDATION_AT_ENTRY,
        DENY,
        f"liquidation {fmt(liq)} is already {'above' if long_after else 'below'} "
        f"the mark {fmt(order.mark)}: the position would open liquidated",
        {"liquidation_price": liq, "mark": order.mark},
    )


def stop_side_of_entry(order: Order, priced: PricedOrder) -> Finding | None:
    intent = order.intent
    stop, entry = intent.stop_price, priced.costing.expected_entry
    if not order.increases or stop is None or (stop - entry) * intent.direction < 0:
        return None
    return Finding(
        Code.STOP_WRONG_SIDE,
        DENY,
        f"stop {fmt(stop)} is on the profit side of the expected entry {fmt(entry)} "
        f"for a {intent.side}",
        {"stop_price": stop, "expected_entry": entry},
    )


def stop_depth(order: Order, priced: PricedOrder) -> Finding | None:
    unfilled = priced.stop_unfilled
    if unfilled <= 0.0:
        return None
    return Finding(
        Code.INSUFFICIENT_DEPTH,
        DENY if order.increases else WARN,
        f"the stop's close of {fmt(abs(priced.costing.position_after))} exceeds the visible "
        f"book by {fmt(unfilled)}: its fill cannot be priced",
        {"unfilled": unfilled},
    )


def stop_buffer(order: Order, priced: PricedOrder) -> Finding | None:
    """The question the whole verdict exists for: with fees, funding and a worse-than-hoped
    fill, is the stop's fill still safely inside the liquidation price?"""
    costing = priced.costing
    distance, liq = costing.stop_distance_pct, costing.liquidation_price
    need = order.limits.min_liquidation_buffer_pct
    if distance is None or liq is None or distance >= need:
        return None  # no stop, or a position that cannot be liquidated, or a safe one
    where = f"sits {pct(distance)} % inside" if distance >= 0 else f"is {pct(-distance)} % beyond"
    return Finding(
        Code.STOP_BEYOND_LIQUIDATION,
        DENY if order.increases else WARN,
        f"stop fill {fmt(costing.stop_effective_price or 0.0)} {where} liquidation {fmt(liq)} "
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


def stress_survival(order: Order, priced: PricedOrder) -> Finding | None:
    """With ``require_stress_survival``: the account the order leaves must come through every
    cell of the policy's stress grid (no stop assumed: a gap jumps over it)."""
    if not order.increases or not order.limits.require_stress_survival:
        return None
    if order.stress_blind:
        missing = ", ".join(order.stress_blind)
        return Finding(
            Code.MISSING_MARKET_DATA,
            DENY,
            f"the stress grid has no order book for {missing}: a forced close there cannot be "
            "priced, so new exposure is denied",
            {"missing": missing},
        )
    if order.crowd_blind:
        names = ", ".join(order.crowd_blind)
        return Finding(
            Code.MISSING_MARKET_DATA,
            DENY,
            f"the cascade spreads a crowd over the open interest of {names} "
            "(risk.stress.crowd_leverage) and the market gave none (a guarded bot reads it with "
            "fetch_open_interest), so new exposure is denied",
            {"missing": "open_interest", "symbols": names},
        )
    grid = order.stress
    if grid is None or priced.position is None:
        return None  # beyond the last tier: the tier check has already denied it
    after = priced.account_after(order)
    survives, cell = survives_grid(after, grid, nearest=order.explain)
    if survives:
        return None if order.cascade is None else _cascade_survival(order, after, grid)
    equity = account_equity(after)
    loss = equity - account_equity(after, cell.prices)
    gone = ", ".join(cell.liquidated)
    # A pool already under maintenance fails the mildest shock even where the account gains.
    hit = f"lose {fmt(loss)} of" if loss > 0.0 else f"gain {fmt(-loss)} on"
    return Finding(
        Code.STRESS_GRID_BREACH,
        DENY,
        f"a {pct(cell.shock * 100.0)} % move ({cell.regime}) would {hit} the {fmt(equity)} "
        f"equity the order leaves and liquidate {gone}; policy requires the account to "
        "survive the stress grid",
        {
            "shock_pct": cell.shock * 100.0,
            "regime": cell.regime,
            "loss": loss,
            "equity": equity,
            "liquidated": gone,
        },
    )


def _cascade_survival(order: Order, after: Account, grid: StressGrid) -> Finding | None:
    """The grid's shocks again, each to every held symbol, through the cascade: correlated
    moves, and forced closes (the crowd's first) walking the books and moving the prices."""
    assert order.cascade is not None
    config = order.limits.stress
    shock_symbols = tuple(dict.fromkeys(leg.symbol for leg in after.positions))
    estimate = order.correlation
    correlation = (
        Correlation(config.cascade_correlation) if estimate is None else estimate.correlation
    )
    path = first_breach(
        after,
        order.cascade,
        shocks=grid.shocks,
        correlation=correlation,
        shock_symbols=shock_symbols,
        crowd=order.crowd,
    )
    if path is None:
        return None
    if estimate is None:
        said = fmt(config.cascade_correlation)
    else:
        said = "estimated: " + estimate.describe(among=shock_symbols)
    equity = account_equity(after)
    first = path.account_closes[0]
    gone = ", ".join(node.removeprefix("account:") for node in path.liquidated)
    crowd = sum(1 for close in path.closes if close.owner == "crowd")
    chain = f" after {crowd} crowd liquidation{'s' if crowd != 1 else ''}" if crowd else ""
    return Finding(
        Code.STRESS_GRID_BREACH,
        DENY,
        f"a {pct(path.shock * 100.0)} % shock to {path.shock_symbol} (correlation "
        f"{said}) sets off a cascade that liquidates {gone}"
        f"{chain}: {first.node.removeprefix('account:')} at step {first.step}, mark "
        f"{fmt(first.trigger_mark)}; the account ends with {fmt(path.final_equity)} of the "
        f"{fmt(equity)} equity the order leaves; policy requires it to survive the cascade",
        {
            "shock_pct": path.shock * 100.0,
            "regime": "cascade",
            "shock_symbol": path.shock_symbol,
            "loss": equity - path.final_equity,
            "equity": equity,
            "liquidated": gone,
            "crowd_liquidations": crowd,
            "trigger_mark": first.trigger_mark,
            "steps": path.steps,
            "correlation": said,
        },
    )


def correlation_fallback(order: Order, priced: PricedOrder) -> Finding | None:
    """A warning, never a denial: the cascade's correlation is measured from returns and a
    pair of the symbols the account holds after the order could not be measured, so the
    cascade used the configured value for it (no number the data does not support)."""
    estimate = order.correlation
    if estimate is None or not order.increases or order.cascade is None:
        return None
    if priced.position is None:
        return None
    held = {leg.symbol for leg in priced.account_after(order).positions}
    missing = [p for p in estimate.fallbacks if p.a in held and p.b in held]
    if not missing:
        return None
    listed = "; ".join(f"{p.a}~{p.b}: {p.fallback_reason}" for p in missing)
    return Finding(
        Code.CORRELATION_FALLBACK,
        WARN,
        f"the cascade used the configured correlation {fmt(estimate.fallback)} for pairs it "
        f"could not measure ({listed})",
        {"pairs": listed, "correlation": estimate.fallback},
    )


PRICED_CHECKS: tuple[PricedCheck, ...] = (
    entry_depth,
    fill_band,
    notional_per_order,
    notional_per_position,
    notional_per_account,
    concentration,
    crowding,
    tier_leverage,
    margin,
    wallet_shortfall,
    liquidation_at_entry,
    stop_side_of_entry,
    stop_depth,
    stop_buffer,
    stress_survival,
    correlation_fallback,
)


def run_size_rules(order: Order, amount: float) -> list[Finding]:
    found = []
    for rule in SIZE_RULES:
        finding = rule(order, amount)
        if finding is not None:
            found.append(finding)
    return found


def run_shape_checks(order: Order) -> list[Finding]:
    found = []
    for check in SHAPE_CHECKS:
        finding = check(order)
        if finding is not None:
            found.append(finding)
    return found


def run_priced_checks(order: Order, priced: PricedOrder) -> list[Finding]:
    found = []
    for check in PRICED_CHECKS:
        finding = check(order, priced)
        if finding is not None:
            found.append(finding)
    return found


__all__ = [
    "PRICED_CHECKS",
    "SHAPE_CHECKS",
    "SIZE_RULES",
    "PricedCheck",
    "ShapeCheck",
    "SizeRule",
    "run_priced_checks",
    "run_shape_checks",
    "run_size_rules",
]
