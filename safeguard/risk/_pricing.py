"""Pricing an order for the verdict: the position it leaves, its liquidation price, its stop.

:class:`Exposure` says what an order does to the position (open, add, reduce, close, flip).
:class:`Order` gathers, once per verdict, everything the checks need that does not depend on
the fill model. :func:`price_order` prices it on one face of the fill model and returns a
:class:`~safeguard.risk._outcome.Costing`: expected entry, fees, margins, the post-trade
position's liquidation price from the venue model the rules name, the stop's fill and how far
it sits from liquidation, and the funding expected over the policy's horizon.

Liquidation is computed for the position **after** the order:

- isolated: the leg's wallet is the initial margin the order posts (its added notional over the
  leverage) plus the margin already in the leg (scaled down when the order reduces it);
- cross: the cross wallet less the entry fee (plus any PnL the order realises), with every
  other cross leg as the venue sees it.

The closing fee (the taker fee, when ``RiskLimits.include_closing_fee``), the safety buffer
(``liquidation_safety_buffer_pct`` as extra MMR) and the funding payments the position expects
to make over ``funding_horizon_s`` all move the liquidation price toward the mark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from safeguard._config import RiskLimits
from safeguard.risk._book import OrderBook, Side
from safeguard.risk._cascade import (
    CascadeMarket,
    CascadeSymbol,
    CrowdPosition,
    crowd_from_open_interest,
)
from safeguard.risk._correlation import CorrelationEstimate, PairEstimate, estimate_for_policy
from safeguard.risk._fills import FillTerms, effective_price
from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import (
    LiquidationModel,
    LiquidationOptions,
    PositionLeg,
    get_model,
)
from safeguard.risk._models import Account, MarketRules, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Costing
from safeguard.risk._positions import liquidation_rates
from safeguard.risk._stress import DepthProfile, StressGrid
from safeguard.risk._trusted import trusted

PositionEffect = Literal["open", "add", "reduce", "close", "flip"]

_costing = trusted(Costing)  # no __post_init__: the same object, without 24 frozen setattrs

_DUST = 1e-12
"""Relative size below which a remaining position counts as closed (float noise)."""


@dataclass(frozen=True, slots=True)
class Exposure:
    """What an order of ``amount`` does to the one-way position in its symbol."""

    held: float
    """Signed quantity before the order."""
    after: float
    effect: PositionEffect
    reduce_only: bool = False

    @property
    def increases(self) -> bool:
        """Opens, adds to or flips a position: exposure the policy must approve.

        Never for a reduce-only order: the venue will not let it add exposure, and one that
        tries is denied for that (REDUCE_ONLY_*) rather than for lacking a stop.
        """
        return not self.reduce_only and self.effect in ("open", "add", "flip")

    @classmethod
    def of(cls, intent: OrderIntent, account: Account, amount: float) -> Exposure:
        leg = account.leg(intent.symbol)
        held = 0.0 if leg is None else leg.side * leg.quantity
        direction = 1 if intent.side == "buy" else -1
        after = held + direction * amount
        effect: PositionEffect
        if held == 0.0:
            effect = "open"
        elif held * direction > 0:
            effect = "add"
        elif abs(after) <= _DUST * abs(held):
            effect, after = "close", 0.0
        elif after * held > 0:
            effect = "reduce"
        else:
            effect = "flip"
        return cls(held, after, effect, intent.reduce_only)


@dataclass(frozen=True, slots=True)
class PricedOrder:
    costing: Costing
    entry_unfilled: float
    stop_unfilled: float
    wallet_shortfall: float = 0.0
    """How far the entry fee and the PnL the order realises take the cross wallet below zero
    (the liquidation model is then given an empty wallet, and a check reports it)."""
    position: PositionLeg | None = None
    """The order's symbol's position after the fill, as the liquidation model priced it
    (``None``: closed, or beyond the last tier)."""
    cross_wallet: float = 0.0
    """The cross wallet after the fill: less the entry fee, plus the PnL realised, less the
    margin moved into an isolated leg (plus any released from one). Never below zero."""

    def account_after(self, order: Order) -> Account:
        """The account as the order leaves it, every other position unchanged."""
        kept = tuple(p for p in order.account.positions if p is not order.leg)
        position = self.position
        return Account(
            wallet_balance=self.cross_wallet,
            positions=kept if position is None else (*kept, position),
        )


@dataclass(slots=True)
class Order:
    """The facts of one verdict that no fill model changes. Build with :meth:`build`.

    Internal to one verdict and never handed out, so it is not frozen (a frozen dataclass
    pays for every field it sets, and this one is built on a bot's order path).
    """

    intent: OrderIntent
    market: MarketSnapshot
    account: Account
    limits: RiskLimits
    now: float
    rules: MarketRules
    book: OrderBook
    mark: float
    volatility: float
    amount: float
    exposure: Exposure
    increases: bool
    """``exposure.increases``, read by most checks, so kept as a field."""
    leg: PositionLeg | None
    other_cross: tuple[PositionLeg, ...]
    other_notional: float
    equity: float
    """Wallet plus the unrealised PnL of every leg, at their marks."""
    available: float
    reference_price: float
    """The limit price, or the mark for a market order."""
    new_resting: int
    """Orders this adds to the open-order count: a limit order and a stop each rest."""
    funding: FundingEstimate | None
    funding_payments: int
    """Funding timestamps inside the horizon (0 without a funding estimate)."""
    options: LiquidationOptions
    model: LiquidationModel
    basis: float
    """What the stop's trigger price is above the mark when it watches the last price."""
    stress: StressGrid | None
    """The policy's stress grid, when ``require_stress_survival`` is on and every held
    symbol's book is known."""
    stress_blind: tuple[str, ...]
    """Held symbols the grid would need a book for and has none (the check then denies)."""
    cascade: CascadeMarket | None = None
    """The books and marks the policy's shocks cascade through (``risk.stress.cascade``)."""
    crowd: tuple[CrowdPosition, ...] = ()
    """Other traders' positions in the order's symbol and every held one, spread from each
    symbol's open interest."""
    crowd_blind: tuple[str, ...] = ()
    """Symbols the policy spreads a crowd over and whose open interest is unknown (denies)."""
    correlation: CorrelationEstimate | None = None
    """Each pair's correlation measured from recent returns, for every symbol held and the
    order's (``risk.stress.correlation_source = "estimated"``); ``None``: the configured one."""
    explain: bool = True
    """Findings name the nearest stress breach; a size search's probes need only yes or no."""

    @classmethod
    def build(
        cls,
        intent: OrderIntent,
        market: MarketSnapshot,
        account: Account,
        limits: RiskLimits,
        now: float,
        exposure: Exposure,
        closing_fee_rate: float,
        depth: Mapping[str, DepthProfile] | None = None,
        closes: Mapping[str, Mapping[int, float]] | None = None,
        open_interest: Mapping[str, float] | None = None,
    ) -> Order:
        """Gather the facts; the caller has checked that mark, book, rules and volatility exist.

        ``depth`` is the book every *other* held symbol's forced close walks in the stress grid
        (the order's own symbol walks ``market.book``); only read with
        ``limits.require_stress_survival``. ``closes`` is each symbol's recent closes by
        interval (:class:`~safeguard.risk._correlation.PriceHistory`), the cascade's estimated
        correlation's input; a symbol without them falls back to the configured correlation."""
        assert market.mark is not None
        assert market.book is not None
        assert market.rules is not None
        assert market.volatility is not None
        positions = account.positions
        leg = account.leg(intent.symbol) if positions else None
        others: tuple[PositionLeg, ...] = ()
        upnl = other_notional = 0.0
        if positions:
            others = tuple(p for p in positions if p is not leg)
            upnl = sum(p.side * p.quantity * (p.mark_price - p.entry_price) for p in positions)
            other_notional = sum(p.quantity * p.mark_price for p in others)
        available = account.available_balance
        if available is None:
            # Only an empty account may leave it out (the verdict checks that); then free
            # margin is the wallet itself.
            available = account.wallet_balance
        funding = None
        if (
            limits.funding_horizon_s > 0
            and market.funding_rate is not None
            and market.next_funding_time is not None  # missing: denied unless it only reduces
        ):
            rate = market.funding_rate
            cap = market.funding_cap if market.funding_cap is not None else limits.funding_cap_rate
            if limits.funding_at_cap and cap is not None and exposure.increases:
                # The worst the schedule allows: every payment at the cap, against the side
                # the order builds (a positive rate is paid by longs).
                rate = cap * intent.direction
            funding = _funding_estimate(
                rate,
                market.funding_interval_s,
                limits.funding_horizon_s,
                market.next_funding_time,
                now,
            )
        options = _liquidation_options(*liquidation_rates(limits, closing_fee_rate), funding)
        basis = 0.0
        if intent.stop_trigger == "last" and market.last is not None:
            basis = market.last - market.mark
        stress: StressGrid | None = None
        blind: tuple[str, ...] = ()
        cascade: CascadeMarket | None = None
        crowd: tuple[CrowdPosition, ...] = ()
        crowd_blind: tuple[str, ...] = ()
        correlation: CorrelationEstimate | None = None
        if limits.require_stress_survival:
            stress, blind = _stress_grid(
                intent.symbol, market.book, account, limits, closing_fee_rate, depth
            )
            if stress is not None and limits.stress.cascade:
                cascade = _cascade_market(intent.symbol, market, account, limits, stress)
                if limits.stress.correlation_source == "estimated":
                    correlation = _estimated(intent.symbol, account, limits, closes or {})
                if limits.stress.crowd_leverage:
                    crowd, crowd_blind = _crowd(
                        intent.symbol, market, account, limits, open_interest
                    )
        return cls(
            intent=intent,
            market=market,
            account=account,
            limits=limits,
            now=now,
            rules=market.rules,
            book=market.book,
            mark=market.mark,
            volatility=market.volatility,
            amount=intent.amount,
            exposure=exposure,
            increases=exposure.increases,
            leg=leg,
            other_cross=tuple(p for p in others if p.isolated_wallet is None) if others else (),
            other_notional=other_notional,
            equity=account.wallet_balance + upnl,
            available=available,
            reference_price=intent.price if intent.price is not None else market.mark,
            new_resting=(intent.type == "limit") + (intent.stop_price is not None),
            funding=funding,
            funding_payments=0 if funding is None else funding.payments,
            options=options,
            model=get_model(market.rules.liquidation_model),
            basis=basis,
            stress=stress,
            stress_blind=blind,
            cascade=cascade,
            crowd=crowd,
            crowd_blind=crowd_blind,
            correlation=correlation,
        )

    @property
    def leg_mode(self) -> str | None:
        if self.leg is None:
            return None
        return "cross" if self.leg.isolated_wallet is None else "isolated"

    def copy(self) -> Order:
        return replace(self)

    def set_amount(self, amount: float) -> None:
        """Re-point this order at another amount. The size search prices a dozen amounts on
        one private copy rather than copying every field a dozen times."""
        self.amount = amount
        self.exposure = Exposure.of(self.intent, self.account, amount)
        self.increases = self.exposure.increases

    def reduce_only_flips(self, amount: float) -> bool:
        held = self.exposure.held
        return self.intent.reduce_only and amount > abs(held) * (1 + 1e-12)

    @property
    def min_amount(self) -> float:
        """The smallest amount the market's filters accept."""
        smallest = max(self.rules.min_qty, self.rules.step_size)
        if not self.intent.reduce_only:
            smallest = max(smallest, self.rules.min_notional / self.reference_price)
        return smallest

    def max_amount_to_try(self) -> float:
        """An upper bound on any amount that could pass (loose is fine: the search bisects)."""
        intent, limits, rules = self.intent, self.limits, self.rules
        held = abs(self.exposure.held)
        bounds = [held + rules.max_position_notional / self.mark]
        if rules.max_qty is not None:
            bounds.append(rules.max_qty)
        if intent.reduce_only:
            bounds.append(held)
        # No fill is cheaper than half the lowest price on the book or the limit.
        levels = self.book.asks if intent.side == "buy" else self.book.bids
        floor_price = 0.5 * min(self.reference_price, levels[0][0], levels[-1][0])
        bounds.append(held + self.available * intent.leverage / floor_price)
        if limits.max_notional_per_order is not None:
            bounds.append(limits.max_notional_per_order / floor_price)
        if limits.max_notional_per_position is not None:
            bounds.append(held + limits.max_notional_per_position / self.mark)
        if intent.type == "market":
            bounds.append(self.book.depth(intent.side))
        return min(bounds)


def _stress_grid(
    symbol: str,
    book: OrderBook,
    account: Account,
    limits: RiskLimits,
    taker_fee: float,
    depth: Mapping[str, DepthProfile] | None,
) -> tuple[StressGrid | None, tuple[str, ...]]:
    """The policy's grid with every held symbol's close priced, or the symbols it lacks."""
    given = tuple(depth.items()) if depth else ()
    known = {name for name, _ in given}
    known.add(symbol)
    blind = tuple(dict.fromkeys(p.symbol for p in account.positions if p.symbol not in known))
    if blind:
        return None, blind
    # A bot asks with the same book and policy until the next book arrives: one grid per book.
    # The key's objects are held, so an ``is`` match is never a recycled id.
    last = _last_grid[0] if _last_grid else None
    if (
        last is not None
        and last[0] is book
        and last[1] is limits.stress
        and last[2] == taker_fee
        and last[3] == given
        and last[4] == symbol
    ):
        return last[5], ()
    profiles = dict(given)
    profiles[symbol] = DepthProfile.from_book(book)
    grid = StressGrid.from_config(limits.stress, depth=profiles, taker_fee=taker_fee)
    _last_grid[:] = [(book, limits.stress, taker_fee, given, symbol, grid)]
    return grid, ()


def _cascade_market(
    symbol: str,
    market: MarketSnapshot,
    account: Account,
    limits: RiskLimits,
    grid: StressGrid,
) -> CascadeMarket:
    """Every symbol the account holds (and the order's), at its mark, walking the grid's books,
    with the policy's betas as relative volatilities."""
    assert market.mark is not None
    assert market.rules is not None
    marks = {leg.symbol: leg.mark_price for leg in account.positions}
    marks[symbol] = market.mark
    # The crowd in a held symbol is margined on the ladder the account's own leg carries.
    ladders = {leg.symbol: leg.tiers for leg in account.positions}
    ladders[symbol] = market.rules.tiers
    config = limits.stress
    return CascadeMarket(
        {
            name: CascadeSymbol(mark, grid.beta(name), grid.depth[name], ladders[name])
            for name, mark in marks.items()
        },
        latency=config.cascade_latency_s,
        refill_rate=config.cascade_refill_rate,
        taker_fee=grid.taker_fee,
        model=market.rules.liquidation_model,
    )


def _crowd(
    symbol: str,
    market: MarketSnapshot,
    account: Account,
    limits: RiskLimits,
    open_interest: Mapping[str, float] | None,
) -> tuple[tuple[CrowdPosition, ...], tuple[str, ...]]:
    """The crowd of the order's symbol (from the market's open interest) and of every other
    held symbol (from ``open_interest``), and the symbols whose open interest is unknown: a
    crowd liquidated in a held symbol walks that book and moves that price just the same."""
    others = open_interest or {}
    crowd: list[CrowdPosition] = []
    blind: list[str] = []
    for name in dict.fromkeys([symbol, *(leg.symbol for leg in account.positions)]):
        value = market.open_interest if name == symbol else others.get(name)
        if value is None:
            blind.append(name)
        elif value > 0.0:  # nobody holding the market: no crowd
            crowd.extend(
                crowd_from_open_interest(
                    name,
                    value,
                    limits.stress.crowd_leverage,
                    long_share=limits.stress.crowd_long_share,
                )
            )
    return tuple(crowd), tuple(blind)


def _estimated(
    symbol: str,
    account: Account,
    limits: RiskLimits,
    closes: Mapping[str, Mapping[int, float]],
) -> CorrelationEstimate:
    """Every pair among the held symbols and the order's, from their recent closes. A guard
    hands the same closes until an interval completes: each pair is measured once per
    interval, not per verdict (a size search prices a dozen amounts on it, and a bot trading
    many symbols brings a new order symbol to the same held ones)."""
    symbols = tuple(sorted({*(leg.symbol for leg in account.positions), symbol}))
    last = _last_estimate[0] if _last_estimate else None
    # Kept by value, never by identity: a caller may write new closes into the same mapping
    # (comparing them costs microseconds; a pair's estimate, a tenth of a millisecond).
    if last is not None and last[1] == limits.stress and last[0] == closes:
        snapshot, known = last[0], last[2]
    else:
        snapshot, known = {name: dict(series) for name, series in closes.items()}, {}
    estimate = estimate_for_policy(closes, limits.stress, symbols, known=known)
    pairs = {**known, **{(pair.a, pair.b): pair for pair in estimate.pairs}}
    _last_estimate[:] = [(snapshot, limits.stress, pairs)]
    return estimate


_last_estimate: list[
    tuple[dict[str, dict[int, float]], object, dict[tuple[str, str], PairEstimate]]
] = []
"""The pairs estimated from the last closes, with a copy of those closes and the settings
(one slot, replaced whole)."""


_last_grid: list[tuple[OrderBook, object, float, tuple[object, ...], str, StressGrid]] = []
"""The last grid built, with its key (one slot: replaced whole, so threads see one or other)."""


# A verdict builds a FundingEstimate and LiquidationOptions, both validating, from the market's
# funding schedule and the policy, which change every few hours at most. Each combination of
# those floats is validated once, by the class itself (so the same errors), then built without
# re-validating; ``now`` is checked here. Anything not a plain float takes the validating path.
_validated: set[tuple[float, ...]] = set()
_VALIDATED_MAX = 4096
_trusted_funding = trusted(FundingEstimate)
_trusted_options = trusted(LiquidationOptions)


def _funding_estimate(
    rate: float, interval_s: float, horizon_s: float, next_funding_time: float, now: float
) -> FundingEstimate:
    key = (rate, interval_s, horizon_s, next_funding_time)
    if key in _validated and _floats(*key) and now.__class__ is float and 0.0 <= now < math.inf:
        return _trusted_funding(
            rate=rate,
            interval_s=interval_s,
            horizon_s=horizon_s,
            next_funding_time=next_funding_time,
            now=now,
        )
    estimate = FundingEstimate(
        rate=rate,
        interval_s=interval_s,
        horizon_s=horizon_s,
        next_funding_time=next_funding_time,
        now=now,
    )
    _remember(key)
    return estimate


def _liquidation_options(
    closing_fee_rate: float, safety_buffer_rate: float, funding: FundingEstimate | None
) -> LiquidationOptions:
    key = (closing_fee_rate, safety_buffer_rate)  # a pair: never equal to a funding key
    if key in _validated and _floats(closing_fee_rate, safety_buffer_rate):
        return _trusted_options(
            closing_fee_rate=closing_fee_rate,
            safety_buffer_rate=safety_buffer_rate,
            funding=funding,
        )
    options = LiquidationOptions(
        closing_fee_rate=closing_fee_rate, safety_buffer_rate=safety_buffer_rate, funding=funding
    )
    _remember(key)
    return options


def _floats(*values: float) -> bool:
    for value in values:  # noqa: SIM110 (all() over a generator: a frame per value, per verdict)
        if value.__class__ is not float:
            return False
    return True


def _remember(key: tuple[float, ...]) -> None:
    if _floats(*key) and len(_validated) < _VALIDATED_MAX:
        _validated.add(key)


def price_order(order: Order, terms: FillTerms, amount: float) -> PricedOrder:
    """Price ``order`` for ``amount`` on one face of the fill model."""
    intent, limits, rules = order.intent, order.limits, order.rules
    window = limits.volatility_window_s
    entry = terms.quote_entry(
        order.book, intent.side, amount, intent.price, order.volatility, window
    )
    exposure = order.exposure
    held, after, effect = exposure.held, exposure.after, exposure.effect
    quantity = abs(after)
    entry_fee = amount * entry.price * entry.fee_rate
    leverage = intent.leverage
    added = amount if effect in ("open", "add") else (quantity if effect == "flip" else 0.0)
    initial_margin = added * entry.price / leverage

    wallet = order.account.wallet_balance - entry_fee
    leg = order.leg
    if leg is not None and effect in ("reduce", "close", "flip"):
        closed = min(amount, abs(held))
        wallet += leg.side * closed * (entry.price - leg.entry_price)

    # Venues hold no negative wallet: a shortfall is reported by a check, and the liquidation
    # model prices the position on an empty wallet.
    shortfall = max(-wallet, 0.0)
    wallet = max(wallet, 0.0)
    cross_wallet = wallet
    if (
        leg is not None
        and leg.isolated_wallet is not None
        and effect in ("reduce", "close", "flip")
    ):
        # The margin a reduced, closed or flipped isolated leg no longer needs goes back.
        left = abs(after) / abs(held) if effect == "reduce" else 0.0
        cross_wallet += leg.isolated_wallet * (1.0 - left)
    model_name = rules.liquidation_model
    face, fee_rate, slippage = terms.face, entry.fee_rate, entry.slippage_bps

    def unpriced(reason: str, **position: float) -> PricedOrder:
        # The order's own costs, when no liquidation price applies to the position after it.
        return PricedOrder(
            _costing(
                face=face,
                amount=amount,
                expected_entry=entry.price,
                entry_fee_rate=fee_rate,
                entry_fee=entry_fee,
                order_notional=amount * entry.price,
                slippage_bps=slippage,
                initial_margin=initial_margin,
                liquidation_model=model_name,
                liquidation_reason=reason,
                **position,
            ),
            entry.unfilled,
            0.0,
            shortfall,
            None,
            cross_wallet,
        )

    if quantity == 0.0:
        return unpriced("the order closes the position")

    side = 1 if after > 0 else -1
    if effect == "add":
        assert leg is not None
        position_entry = (leg.quantity * leg.entry_price + amount * entry.price) / quantity
    elif effect == "reduce":
        assert leg is not None
        position_entry = leg.entry_price
    else:
        position_entry = entry.price
    isolated_wallet: float | None = None
    if intent.margin_mode == "isolated":
        kept = 0.0
        if leg is not None and leg.isolated_wallet is not None and effect in ("add", "reduce"):
            kept = leg.isolated_wallet * (1.0 if effect == "add" else quantity / abs(held))
        isolated_wallet = kept + initial_margin
        cross_wallet = max(cross_wallet - initial_margin, 0.0)
    notional = quantity * order.mark
    funding_cost = 0.0
    if order.funding is not None:
        funding_cost = order.funding_payments * side * order.funding.rate * notional
    if notional > rules.max_position_notional:
        return unpriced(
            "beyond the last tier: no venue model applies",
            position_after=after,
            position_entry=position_entry,
            position_notional=notional,
            position_initial_margin=notional / leverage,
            expected_funding=funding_cost,
        )
    tiers = rules.tiers
    tier = tiers.tier_for_notional(notional)
    target = PositionLeg(
        symbol=intent.symbol,
        side=side,
        quantity=quantity,
        entry_price=position_entry,
        mark_price=order.mark,
        tiers=tiers,
        isolated_wallet=isolated_wallet,
    )
    liquidation = order.model.liquidation_price(
        target, wallet_balance=wallet, others=order.other_cross, options=order.options
    )
    liq = liquidation.price

    stop_fill_price = stop_effective = stop_fee = distance = distance_vol = None
    stop_unfilled = 0.0
    if intent.stop_price is not None:
        close_side: Side = "sell" if side > 0 else "buy"
        stop = terms.quote_stop(
            order.book,
            close_side,
            quantity,
            intent.stop_price,
            limits.stop_slippage_bps,
            order.volatility,
            window,
        )
        stop_fill_price = stop.price
        stop_fee = quantity * stop.price * stop.fee_rate
        stop_unfilled = stop.unfilled
        # Liquidation watches the mark; a stop on the last price closes at a last-price level.
        stop_effective = effective_price(close_side, stop.price, stop.fee_rate) - order.basis
        if liq is not None:
            # Judged on the account's side of its price (for a one-way leg, the leg's side).
            distance = liquidation.safe_side * (stop_effective - liq) / liq * 100.0
            distance_vol = distance / 100.0 / order.volatility
    return PricedOrder(
        _costing(
            face=face,
            amount=amount,
            expected_entry=entry.price,
            entry_fee_rate=fee_rate,
            entry_fee=entry_fee,
            order_notional=amount * entry.price,
            slippage_bps=slippage,
            initial_margin=initial_margin,
            liquidation_model=model_name,
            liquidation_reason=liquidation.reason,
            position_after=after,
            position_entry=position_entry,
            position_notional=notional,
            position_initial_margin=notional / leverage,
            maintenance_margin=tier.maintenance_margin(notional),
            tier=tier.tier,
            tier_max_leverage=tier.max_leverage,
            liquidation_price=liq,
            stop_fill_price=stop_fill_price,
            stop_effective_price=stop_effective,
            stop_fee=stop_fee,
            stop_distance_pct=distance,
            stop_distance_vol=distance_vol,
            expected_funding=funding_cost,
        ),
        entry.unfilled,
        stop_unfilled,
        shortfall,
        target,
        cross_wallet,
    )


__all__ = ["Exposure", "Order", "PositionEffect", "PricedOrder", "price_order"]
