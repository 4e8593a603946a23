"""The liquidator: the venue taking over what an account's margin no longer covers.

:class:`Liquidator` applies the rules of :mod:`._liquidation` each step: it finds the isolated
legs and cross accounts whose equity at the mark fell to their maintenance margin, cuts them
down a tier at a time into the book (partial liquidation), takes over what is still unhealthy,
and, when the insurance fund cannot absorb a bankrupt leg's loss, closes it against the
top-ranked opposite positions (auto-deleveraging). Its closes walk the book and drag the price
(forced flow), which is how one liquidation starts the next (a cascade). It owns the insurance
fund, the trigger ids that tie a cascade's orders together, and the crowds of leveraged
accounts placed to stand for open interest; and it answers the reports on all of that.

It is separate from the engine because it is the venue's other actor beside the traders: it
moves money and positions through the :class:`~._ledger.Ledger`, trades into the markets' books
and records through the :class:`~._timeline.Timeline`, and needs from trading only that an
account's open orders on a symbol be cancelled first (as Binance does).
"""

from __future__ import annotations

import math
import random
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from safeguard.venue._accounts import (
    CROSSED,
    ISOLATED,
    Account,
    Position,
    apply_fill,
    maintenance_margin,
    max_notional_at,
    pro_rata,
)
from safeguard.venue._book import BUY, SELL
from safeguard.venue._config import Crowd, VenueConfig
from safeguard.venue._events import (
    AccountChanged,
    AutoDeleveraged,
    Liquidation,
    MarginCall,
)
from safeguard.venue._fairness import cascades as fairness_cascades
from safeguard.venue._fairness import fairness_report
from safeguard.venue._ledger import Ledger
from safeguard.venue._liquidation import (
    Close,
    adl_score,
    bankruptcy_price,
    close_outcome,
    partial_keep,
    settle,
    smallest_healthy_close,
)
from safeguard.venue._markets import MONEY_SCALE, MarketSpec
from safeguard.venue._state import MarketState
from safeguard.venue._timeline import Timeline

MARGIN_CALL_RATIO = 0.8
"""Maintenance margin over margin balance at which the venue sends ``MARGIN_CALL``."""


class Liquidator:
    """Liquidation, auto-deleveraging and the insurance fund, for every account."""

    def __init__(
        self,
        config: VenueConfig,
        ledger: Ledger,
        markets: Mapping[str, MarketState],
        timeline: Timeline,
        *,
        cancel_open: Callable[[Account, MarketState], None],
    ) -> None:
        self._config = config
        self._ledger = ledger
        self._m = markets
        self._timeline = timeline
        # Binance cancels the account's open orders on the symbol before liquidating it.
        self._cancel_open = cancel_open
        self.insurance = round(config.insurance_fund * MONEY_SCALE)
        """The insurance fund's balance (units)."""
        self.insurance_start = self.insurance
        self._trigger_seq = 0
        self._crowds = 0

    def add_crowd(self, crowd: Crowd, m: MarketState) -> list[str]:
        """Place ``crowd`` in ``m`` (:meth:`~._engine.Venue.add_crowd`): each account opened
        with exactly its position's initial margin; their API keys."""
        spec = m.spec
        levels = sorted(crowd.leverage)
        for leverage in levels:
            if max_notional_at(spec, leverage) < crowd.notional:
                raise ValueError(
                    f"crowd: {spec.symbol} allows no {leverage}x position of "
                    f"{crowd.notional:g} (max {max_notional_at(spec, leverage):g})"
                )
        weights = [crowd.leverage[leverage] for leverage in levels]
        number = self._crowds
        self._crowds += 1
        rng = random.Random(f"{self._config.seed}:{spec.symbol}:crowd:{number}")
        price = m.feed.contract
        now_ms = self._timeline.ms()
        keys = []
        for i in range(crowd.accounts):
            key = f"crowd-{number}-{spec.symbol}-{i}"
            leverage = rng.choices(levels, weights)[0]
            offset = crowd.entry_spread_pct / 100 * ((i + 0.5) / crowd.accounts - 0.5)
            ticks = max(round(price * (1 + offset) / spec.tick_size), 1)
            steps = max(round(crowd.notional / (ticks * spec.tick_size) / spec.step_size), 1)
            cost = ticks * steps * spec.notional_unit
            margin = -(-cost // leverage)  # ceil, as an isolated open reserves it
            # As a caller's create_account would: the wallet in quote, rounded to units.
            account = self._ledger.open(key, secrets.token_hex(16), margin / MONEY_SCALE, "USDT")
            account.leverage[spec.symbol] = leverage
            account.margin_type[spec.symbol] = ISOLATED
            account.positions[(spec.symbol, "BOTH")] = Position(
                spec.symbol,
                "BOTH",
                qty=steps if crowd.side == "long" else -steps,
                cost=cost,
                isolated_margin=account.wallet,
                update_ms=now_ms,
            )
            keys.append(key)
        return keys

    def liquidations(self) -> list[Liquidation]:
        return [e for e in self._timeline.events if isinstance(e, Liquidation)]

    def report(self, api_key: str | None) -> dict[str, Any]:
        """:func:`~._fairness.fairness_report` over every liquidation and ADL close."""
        return fairness_report(
            (e for e in self._timeline.events if isinstance(e, Liquidation | AutoDeleveraged)),
            specs={symbol: m.spec for symbol, m in self._m.items()},
            income={key: account.income for key, account in self._ledger.accounts.items()},
            fund_start_units=self.insurance_start,
            fund_now_units=self.insurance,
            api_key=api_key,
            cascade_gap_s=self._cascade_gap_s(),
        )

    def cascades(self) -> list[dict[str, Any]]:
        """The liquidations grouped into cascades (:func:`~._fairness.cascades`)."""
        return fairness_cascades(self.liquidations(), gap_s=self._cascade_gap_s())

    def _cascade_gap_s(self) -> float:
        # Forced flow moves the price from the next step on: a cascade advances a step at a
        # time; three steps without a liquidation end it.
        return 3 * self._config.step_s

    def adl_ranking(self, m: MarketState, *, long: Any) -> list[tuple[float, str, str]]:
        """(score, api key, position side) of every open ``long`` (or short) leg in ``m``,
        first to be deleveraged first (:func:`~._liquidation.adl_score`)."""
        ranked = []
        for account in self._ledger.accounts.values():
            for side in ("BOTH", "LONG", "SHORT"):
                p = account.positions.get((m.spec.symbol, side))
                if p is not None and p.qty and (p.qty > 0) == long:
                    leverage = self._ledger.leverage(account, m.spec.symbol)
                    score = adl_score(p, m.spec, m.feed.mark, leverage)
                    ranked.append((score, account.api_key, side))
        # Ties go to the account that opened first (stable: insertion order).
        ranked.sort(key=lambda row: -row[0])
        return ranked

    def liquidate(self, account: Account, t: float) -> None:
        """Liquidate what the account's equity at the mark no longer covers.

        Each unhealthy leg (isolated) or the unhealthy cross account is first cut down a tier
        at a time (:meth:`_reduce`); whatever is still unhealthy after that is taken over.
        """
        # Every account, every step: the healthy case stays one pass with no allocation.
        failing: list[tuple[MarketState, Position, float, float]] = []
        cross: list[tuple[MarketState, Position]] = []
        cross_pnl = 0.0
        cross_mm = 0.0
        for (symbol, _side), p in account.positions.items():
            if not p.qty:
                continue
            m = self._m[symbol]
            spec = m.spec
            mark = m.feed.mark
            mm = maintenance_margin(spec, p.notional(spec, mark))
            pnl = p.unrealized(spec, mark)
            if self._ledger.isolated(account, symbol):
                equity = p.isolated_margin / MONEY_SCALE + pnl
                if equity <= mm:
                    failing.append((m, p, equity, mm))
            else:
                cross.append((m, p))
                cross_pnl += pnl
                cross_mm += mm
        for m, p, short_equity, short_mm in failing:
            trigger = self._new_trigger()
            left, need = self._reduce(
                account, [(m, p)], t, ISOLATED, trigger, short_equity, short_mm
            )
            if left <= need:
                self._take_over(account, m, p, t, ISOLATED, trigger, need, left, 0.0)
        if not cross:
            return
        equity = account.cross_wallet() / MONEY_SCALE + cross_pnl
        if equity <= cross_mm:
            trigger = self._new_trigger()
            equity, mm = self._reduce(account, cross, t, CROSSED, trigger, equity, cross_mm)
            if equity > mm:
                return
            for m, p in cross:
                if p.qty:
                    own = maintenance_margin(m.spec, p.notional(m.spec, m.feed.mark))
                    self._take_over(account, m, p, t, CROSSED, trigger, own, equity, mm - own)
        elif self._timeline.listeners:
            self._margin_call(account, t, equity, cross_mm, [m.spec.symbol for m, _p in cross])

    def _new_trigger(self) -> int:
        self._trigger_seq += 1
        return self._trigger_seq

    def _health(
        self, account: Account, legs: list[tuple[MarketState, Position]], margin_type: str
    ) -> tuple[float, float]:
        """(equity, maintenance margin) of an isolated leg or of the cross account, at the mark."""
        pnl = 0.0
        mm = 0.0
        for m, p in legs:
            if p.qty:
                mark = m.feed.mark
                pnl += p.unrealized(m.spec, mark)
                mm += maintenance_margin(m.spec, p.notional(m.spec, mark))
        if margin_type == ISOLATED:
            return legs[0][1].isolated_margin / MONEY_SCALE + pnl, mm
        return account.cross_wallet() / MONEY_SCALE + pnl, mm

    def _margin_call(
        self, account: Account, t: float, equity: float, mm: float, symbols: list[str]
    ) -> None:
        """Warn once when the cross margin nears liquidation; re-arm when it recovers."""
        near = mm >= equity * MARGIN_CALL_RATIO
        if near and not account.margin_called:
            self._timeline.notify(MarginCall(t, account.api_key, equity, mm, tuple(symbols)))
        account.margin_called = near

    def _reduce(
        self,
        account: Account,
        legs: list[tuple[MarketState, Position]],
        t: float,
        margin_type: str,
        trigger: int,
        equity: float,
        mm: float,
    ) -> tuple[float, float]:
        """Binance's partial liquidation: while the margin is unhealthy but not bankrupt, cut
        the largest leg above the first tier down to the tier below, by a market order into
        the book, and look again. Returns the (equity, maintenance margin) it leaves."""
        cfg = self._config
        if not cfg.partial_liquidation:
            return equity, mm
        for _ in range(cfg.max_partial_steps):
            if equity > mm or equity <= 0:
                break
            best: tuple[float, MarketState, Position, int] | None = None
            for m, p in legs:
                if not p.qty:
                    continue
                mark = m.feed.mark
                keep = partial_keep(
                    p.qty, m.spec, mark=mark, fraction=cfg.partial_liquidation_fraction
                )
                notional = p.notional(m.spec, mark)
                if keep and (best is None or notional > best[0]):
                    best = (notional, m, p, keep)
            if best is None:
                break
            _notional, m, p, keep = best
            own = maintenance_margin(m.spec, best[0])
            if not self._partial_step(
                account, m, p, keep, t, margin_type, trigger, equity, mm, own
            ):
                break
            equity, mm = self._health(account, legs, margin_type)
        return equity, mm

    def _partial_step(
        self,
        account: Account,
        m: MarketState,
        position: Position,
        keep: int,
        t: float,
        margin_type: str,
        trigger: int,
        equity: float,
        mm: float,
        own_mm: float,
    ) -> bool:
        """Close all but ``keep`` steps of ``position`` into the book for the trader, who
        realises the fills and pays the clearance fee to the fund. False if the book is empty."""
        spec = m.spec
        mark = m.feed.mark
        mark_ticks = max(round(mark / spec.tick_size), 1)
        long = position.qty > 0
        isolated = margin_type == ISOLATED
        self._cancel_open(account, m)
        fills = m.book.take(SELL if long else BUY, abs(position.qty) - keep, None)
        if not fills:
            return False
        fee_rate = self._config.liquidation_fee_rate
        smallest = smallest_healthy_close(
            position.qty, spec, mark=mark, equity=equity, other_mm=mm - own_mm, fee_rate=fee_rate
        )
        entry = position.entry_price(spec)
        collateral = position.isolated_margin if isolated else account.cross_wallet()
        bankrupt_at = bankruptcy_price(position, spec, collateral=collateral)
        now_ms = int(t * 1000)
        leverage = self._ledger.leverage(account, spec.symbol)
        margin_before = position.isolated_margin
        realized = 0
        for i in range(0, len(fills), 2):
            price, qty = fills[i], fills[i + 1]
            result = apply_fill(
                account, position, spec, -qty if long else qty, price, 0.0, leverage, isolated,
                now_ms,
            )  # fmt: skip
            realized += result.realized_pnl
            m.record_trade(t, price, qty, buyer_maker=long)
        self._forced_flow(m, fills)
        close = close_outcome(fills, mark_ticks=mark_ticks, unit=spec.notional_unit, long=long)
        left = round(equity * MONEY_SCALE) + close.slippage
        fee = min(round(close.value * fee_rate), max(left, 0))
        account.wallet -= fee
        if isolated:
            # An ordinary reduce hands the closed share's margin back to the cross wallet;
            # a liquidation step keeps it behind the rest of the leg, which it is rescuing.
            position.isolated_margin = max(margin_before + realized - fee, 0)
        self.insurance += fee
        tran_ids = self._book_liquidation_income(account, spec.symbol, realized, -fee, now_ms)
        self._timeline.record(
            self._liquidation(
                "PARTIAL",
                account,
                spec,
                position,
                t=t,
                margin_type=margin_type,
                trigger=trigger,
                signed_qty=close.qty if long else -close.qty,
                entry=entry,
                mark=mark,
                mm=own_mm,
                equity=equity,
                realized=realized,
                fee=fee,
                shortfall=0,
                close=close,
                insurance_delta=fee,
                bankrupt_at=bankrupt_at,
                slippage=close.slippage,
                smallest=smallest,
                tran_ids=tran_ids,
                position_after=spec.qty_of(position.qty),
            )
        )
        if self._timeline.listeners:
            self._timeline.notify(AccountChanged(t, account.api_key, "ORDER", (spec.symbol,)))
        return True

    def _take_over(
        self,
        account: Account,
        m: MarketState,
        position: Position,
        t: float,
        margin_type: str,
        trigger: int,
        mm: float,
        equity: float,
        other_mm: float,
    ) -> None:
        """Liquidate ``position`` at the mark, charge the fee, and close it into the book; or,
        when the insurance fund cannot absorb the loss, auto-deleverage it."""
        spec = m.spec
        mark = m.feed.mark
        mark_ticks = max(round(mark / spec.tick_size), 1)
        long = position.qty > 0
        entry = position.entry_price(spec)
        collateral = position.isolated_margin if margin_type == ISOLATED else account.cross_wallet()
        fee_rate = self._config.liquidation_fee_rate
        settled = settle(
            position, spec, mark_ticks=mark_ticks, collateral=collateral, fee_rate=fee_rate
        )
        bankrupt_at = bankruptcy_price(position, spec, collateral=collateral)
        smallest = smallest_healthy_close(
            position.qty, spec, mark=mark, equity=equity, other_mm=other_mm, fee_rate=fee_rate
        )
        side = SELL if long else BUY
        if settled.shortfall and bankrupt_at > 0:
            expected = close_outcome(
                m.book.take(side, abs(position.qty), None, dry_run=True),
                mark_ticks=mark_ticks,
                unit=spec.notional_unit,
                long=long,
            )
            if self.insurance + settled.fee - settled.shortfall + expected.slippage < 0:
                self._auto_deleverage(
                    account, m, position, t, margin_type, trigger, mm, equity, collateral,
                    smallest,
                )  # fmt: skip
                return
        account.wallet += settled.wallet_delta
        now_ms = int(t * 1000)
        tran_ids = self._book_liquidation_income(
            account, spec.symbol, settled.realized, settled.shortfall - settled.fee, now_ms
        )
        signed_qty = position.qty
        self._flatten(account, position, t)
        self._cancel_open(account, m)
        # The venue now owns the position and closes it into its own book.
        fills = m.book.take(side, abs(signed_qty), None)
        close = close_outcome(fills, mark_ticks=mark_ticks, unit=spec.notional_unit, long=long)
        for i in range(0, len(fills), 2):
            m.record_trade(t, fills[i], fills[i + 1], buyer_maker=long)
        self._forced_flow(m, fills)
        delta = settled.fee - settled.shortfall + close.slippage
        self.insurance += delta
        self._timeline.record(
            self._liquidation(
                "TAKEOVER",
                account,
                spec,
                position,
                t=t,
                margin_type=margin_type,
                trigger=trigger,
                signed_qty=signed_qty,
                entry=entry,
                mark=mark,
                mm=mm,
                equity=equity,
                realized=settled.realized,
                fee=settled.fee,
                shortfall=settled.shortfall,
                close=close,
                insurance_delta=delta,
                bankrupt_at=bankrupt_at,
                slippage=close.slippage,
                smallest=smallest,
                tran_ids=tran_ids,
            )
        )
        if self._timeline.listeners:
            self._timeline.notify(AccountChanged(t, account.api_key, "ORDER", (spec.symbol,)))

    def _auto_deleverage(
        self,
        account: Account,
        m: MarketState,
        position: Position,
        t: float,
        margin_type: str,
        trigger: int,
        mm: float,
        equity: float,
        collateral: int,
        smallest: int | None,
    ) -> None:
        """Close a bankrupt ``position`` at its bankruptcy price against the top-ranked
        opposite positions, with no fee; what they cannot take goes into the book at the
        fund's risk.

        The trader loses exactly the collateral. The opposite legs trade at the bankruptcy
        price rounded to a tick in the fund's favour (a buyer pays the tick above, a seller
        gets the one below), so the fund's change is that rounding plus the book's close of
        any rest against the bankruptcy value."""
        spec = m.spec
        mark = m.feed.mark
        mark_ticks = max(round(mark / spec.tick_size), 1)
        long = position.qty > 0
        size = abs(position.qty)
        unit = spec.notional_unit
        entry = position.entry_price(spec)
        bankrupt_at = bankruptcy_price(position, spec, collateral=collateral)
        exact = position.cost - collateral if long else position.cost + collateral
        exact_ticks = exact / (size * unit)
        # The opposite legs buy from a bankrupt long (pay the tick above) or sell to a
        # bankrupt short (get the tick below).
        price_ticks = (
            math.ceil(exact_ticks - 1e-9) if long else max(math.floor(exact_ticks + 1e-9), 1)
        )
        now_ms = int(t * 1000)
        signed_qty = position.qty
        account.wallet -= collateral
        tran_ids = self._book_liquidation_income(account, spec.symbol, -collateral, 0, now_ms)
        self._flatten(account, position, t)
        self._cancel_open(account, m)
        left = size
        traded = 0  # units the opposite legs paid (long) or received (short)
        deleveraged: list[AutoDeleveraged] = []
        for score, key, side in self.adl_ranking(m, long=not long):
            if not left or key == account.api_key:
                continue
            other = self._ledger.accounts[key]
            leg = other.positions[(spec.symbol, side)]
            take = min(left, abs(leg.qty))
            ledger = self._ledger
            result = apply_fill(
                other, leg, spec, take if long else -take, price_ticks, 0.0,
                ledger.leverage(other, spec.symbol), ledger.isolated(other, spec.symbol), now_ms,
            )  # fmt: skip
            left -= take
            traded += price_ticks * take * unit
            ids = self._book_liquidation_income(other, spec.symbol, result.realized_pnl, 0, now_ms)
            deleveraged.append(
                AutoDeleveraged(
                    time=t,
                    api_key=key,
                    symbol=spec.symbol,
                    position_side=side,
                    qty=spec.qty_of(-take if long else take),
                    price=spec.price_of(price_ticks),
                    mark_price=mark,
                    realized_pnl_units=result.realized_pnl,
                    rank_score=score,
                    trigger_id=trigger,
                    position_after=spec.qty_of(leg.qty),
                    tran_ids=ids,
                )
            )
        fills = m.book.take(SELL if long else BUY, left, None) if left else []
        rest = close_outcome(fills, mark_ticks=mark_ticks, unit=unit, long=long)
        for i in range(0, len(fills), 2):
            m.record_trade(t, fills[i], fills[i + 1], buyer_maker=long)
        self._forced_flow(m, fills)
        closed_qty = (size - left) + rest.qty
        closed_value = traded + rest.value
        rest_exact = pro_rata(exact, left, size)
        settled_value = exact - rest_exact  # what the opposite legs' part was worth at BP
        if long:
            delta = (traded - settled_value) + (rest.value - rest_exact)
        else:
            delta = (settled_value - traded) + (rest_exact - rest.value)
        self.insurance += delta
        at_mark = mark_ticks * closed_qty * unit
        self._timeline.record(
            self._liquidation(
                "ADL",
                account,
                spec,
                position,
                t=t,
                margin_type=margin_type,
                trigger=trigger,
                signed_qty=signed_qty,
                entry=entry,
                mark=mark,
                mm=mm,
                equity=equity,
                realized=-collateral,
                fee=0,
                shortfall=0,
                close=Close(closed_qty, closed_value, 0),
                insurance_delta=delta,
                bankrupt_at=bankrupt_at,
                slippage=closed_value - at_mark if long else at_mark - closed_value,
                smallest=smallest,
                tran_ids=tran_ids,
                adl_qty=spec.qty_of(size - left),
            )
        )
        for event in deleveraged:
            self._timeline.record(event)
        if self._timeline.listeners:
            self._timeline.notify(AccountChanged(t, account.api_key, "ORDER", (spec.symbol,)))
            for event in deleveraged:
                self._timeline.notify(AccountChanged(t, event.api_key, "ORDER", (spec.symbol,)))

    def _forced_flow(self, m: MarketState, fills: list[int]) -> None:
        """A liquidation close that walked the book drags the contract price (and so the
        mark) toward the worst level it reached, by ``book.forced_flow_impact``."""
        impact = self._config.book.forced_flow_impact
        if not impact or not fills:
            return
        worst = fills[-2] * m.spec.tick_size
        m.feed.displace(1.0 + impact * (worst / m.feed.contract - 1.0))

    def _book_liquidation_income(
        self, account: Account, symbol: str, realized: int, clearance: int, now_ms: int
    ) -> tuple[int, ...]:
        """Book a liquidation's realised PnL and insurance clearance; their transaction ids."""
        ids = []
        for kind, units in (("REALIZED_PNL", realized), ("INSURANCE_CLEAR", clearance)):
            if units:
                ids.append(self._ledger.book_income(account, symbol, kind, units, now_ms))
        return tuple(ids)

    def _liquidation(
        self,
        kind: str,
        account: Account,
        spec: MarketSpec,
        position: Position,
        *,
        t: float,
        margin_type: str,
        trigger: int,
        signed_qty: int,
        entry: float,
        mark: float,
        mm: float,
        equity: float,
        realized: int,
        fee: int,
        shortfall: int,
        close: Close,
        insurance_delta: int,
        bankrupt_at: float,
        slippage: int,
        smallest: int | None,
        tran_ids: tuple[int, ...],
        position_after: float = 0.0,
        adl_qty: float = 0.0,
    ) -> Liquidation:
        """The record of one liquidation order (a partial step, a take-over or an ADL), its
        quantities in steps converted once here; the fund's balance is read after the order."""
        return Liquidation(
            time=t,
            api_key=account.api_key,
            symbol=spec.symbol,
            position_side=position.position_side,
            margin_type=margin_type,
            qty=spec.qty_of(signed_qty),
            entry_price=entry,
            mark_price=mark,
            maintenance_margin=mm,
            equity_before=equity,
            realized_pnl_units=realized,
            fee_units=fee,
            shortfall_units=shortfall,
            close_avg_price=self._average_price(spec, close),
            close_qty=spec.qty_of(close.qty),
            insurance_delta_units=insurance_delta,
            insurance_fund_after_units=self.insurance,
            kind=kind,
            trigger_id=trigger,
            bankruptcy_price=bankrupt_at,
            slippage_units=slippage,
            position_after=position_after,
            smallest_healthy_close=None if smallest is None else spec.qty_of(smallest),
            adl_qty=adl_qty,
            tran_ids=tran_ids,
        )

    @staticmethod
    def _average_price(spec: MarketSpec, close: Close) -> float:
        if not close.qty:
            return 0.0
        return round(
            close.value / (close.qty * spec.notional_unit) * spec.tick_size,
            spec.price_precision + 3,
        )

    @staticmethod
    def _flatten(account: Account, position: Position, t: float) -> None:
        position.qty = 0
        position.cost = 0
        position.isolated_margin = 0
        position.update_ms = int(t * 1000)
        account.update_ms = position.update_ms


__all__ = ["MARGIN_CALL_RATIO", "Liquidator"]
