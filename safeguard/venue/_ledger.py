"""The venue's accounts: who holds one, what each has chosen, and what each may still open.

:class:`Ledger` owns the accounts (wallets, positions, settings, income rows; the money rules
themselves are :mod:`._accounts`'), the transaction id every income row takes, and the leverage
and margin type an account that never chose trades under. Trading, funding and the liquidator
all move money through these accounts and read the same margin figures from here, so the
figures cannot drift apart between an order's check and a liquidation's.

It is separate from the engine because none of this depends on how orders match or when the
market steps: it needs only the markets' marks and a :class:`~._timeline.Timeline` to stamp and
announce what changed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from safeguard.venue._accounts import CROSSED, ISOLATED, Account, Income, Position, max_notional_at
from safeguard.venue._errors import VenueReject, illegal
from safeguard.venue._events import AccountChanged, LeverageChanged
from safeguard.venue._markets import MONEY_SCALE, MarketSpec
from safeguard.venue._state import MarketState
from safeguard.venue._timeline import Timeline


class Ledger:
    """Every account on the venue, and the rules for reading and changing them."""

    def __init__(
        self,
        markets: Mapping[str, MarketState],
        timeline: Timeline,
        *,
        default_leverage: int,
        default_margin_type: str,
    ) -> None:
        self.accounts: dict[str, Account] = {}
        """By API key."""
        self.tran_id = 0
        """The last income row's transaction id (ids are venue-wide and only grow)."""
        self.default_leverage: dict[str, int] = {}
        """What an account that never chose gets, per symbol (:meth:`refresh_default`): every
        margin check and fill asks, so it is not re-derived from the config each time."""
        self.default_isolated = default_margin_type == ISOLATED
        self._default_margin_type = default_margin_type
        self._leverage_ceiling = default_leverage
        self._m = markets
        self._timeline = timeline

    # --- who exists -------------------------------------------------------------------------

    def open(self, api_key: str, secret: str, wallet: float, asset: str) -> Account:
        """Open an account holding ``wallet`` quote (its deposit, booked as a transfer)."""
        if api_key in self.accounts:
            raise ValueError(f"api_key {api_key!r} already has an account")
        units = round(wallet * MONEY_SCALE)
        account = self.accounts[api_key] = Account(
            api_key=api_key,
            secret=secret,
            asset=asset,
            wallet=units,
            deposit=units,
            update_ms=self._timeline.ms(),
        )
        if units:
            self.book_income(account, "", "TRANSFER", units, self._timeline.ms())
        return account

    def get(self, api_key: Any) -> Account:
        """The account of ``api_key``; Binance's -2015 for any key that has none."""
        account = self.accounts.get(api_key) if isinstance(api_key, str) else None
        if account is None:
            raise VenueReject(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return account

    def book_income(
        self, account: Account, symbol: str, kind: str, units: int, time_ms: int, trade: str = ""
    ) -> int:
        """Add an income row (``units`` > 0 credited) to ``account``; its transaction id."""
        self.tran_id += 1
        account.income.append(Income(self.tran_id, time_ms, symbol, kind, units, trade))
        return self.tran_id

    # --- what each account trades under -----------------------------------------------------

    def refresh_default(self, spec: MarketSpec) -> None:
        """Set the leverage an account that never chose trades ``spec``'s symbol at: the
        configured default, never more than the symbol's ladder allows at all."""
        cap = int(spec.tiers.tiers[0].max_leverage)
        self.default_leverage[spec.symbol] = min(self._leverage_ceiling, cap)

    def leverage(self, account: Account, symbol: str) -> int:
        return account.leverage.get(symbol) or self.default_leverage[symbol]

    def isolated(self, account: Account, symbol: str) -> bool:
        chosen = account.margin_type.get(symbol)
        return self.default_isolated if chosen is None else chosen == ISOLATED

    # --- what each account holds ------------------------------------------------------------

    def open_positions(self, account: Account) -> list[tuple[MarketSpec, MarketState, Position]]:
        """The account's legs with a size, each with its market."""
        return [
            (self._m[symbol].spec, self._m[symbol], p)
            for (symbol, _side), p in account.positions.items()
            if p.qty
        ]

    def equity(self, account: Account) -> float:
        """Wallet plus unrealised PnL at the mark, in quote."""
        total = account.wallet / MONEY_SCALE
        for spec, m, p in self.open_positions(account):
            total += p.unrealized(spec, m.feed.mark)
        return total

    def available(self, account: Account) -> float:
        """Quote free for new margin: cross wallet + cross uPnL - cross IM - open-order IM."""
        # Every opening order asks, so Position.unrealized and .notional are inlined here
        # (the same expressions, in the same order: the figure is the same to the last bit).
        positions = account.positions
        isolated = 0
        for position in positions.values():
            isolated += position.isolated_margin
        free = (account.wallet - isolated) / MONEY_SCALE - account.order_margin
        margin_types = account.margin_type
        for (symbol, _side), position in positions.items():
            qty = position.qty
            if not qty:
                continue
            chosen = margin_types.get(symbol)  # isolated(), inlined
            if self.default_isolated if chosen is None else chosen == ISOLATED:
                continue
            m = self._m[symbol]
            value = abs(qty) * m.spec.step_size * m.feed.mark
            cost = position.cost / MONEY_SCALE
            free += value - cost if qty > 0 else cost - value
            free -= value / (account.leverage.get(symbol) or self.default_leverage[symbol])
        return free

    # --- an account's settings --------------------------------------------------------------

    def set_leverage(self, account: Account, m: MarketState, leverage: Any) -> dict[str, Any]:
        spec = m.spec
        symbol = spec.symbol
        if isinstance(leverage, bool) or not isinstance(leverage, int):
            raise illegal("leverage")
        if not 1 <= leverage <= int(spec.tiers.tiers[0].max_leverage):
            raise VenueReject(-4028, f"Leverage {leverage} is not valid")
        cap = max_notional_at(spec, leverage)
        mark = m.feed.mark
        for side in ("BOTH", "LONG", "SHORT"):
            position = account.positions.get((symbol, side))
            if position is not None and position.notional(spec, mark) > cap:
                raise VenueReject(
                    -2027, "Exceeded the maximum allowable position at current leverage."
                )
        account.leverage[symbol] = leverage
        timeline = self._timeline
        if timeline.listeners:
            timeline.notify(LeverageChanged(timeline.time(), account.api_key, symbol, leverage))
        return {
            "leverage": leverage,
            "maxNotionalValue": f"{cap:.0f}" if math.isfinite(cap) else "INF",
            "symbol": symbol,
        }

    def set_margin_type(self, account: Account, symbol: str, margin_type: Any) -> None:
        if margin_type not in (ISOLATED, CROSSED):
            raise illegal("marginType")
        current = account.margin_type.get(symbol, self._default_margin_type)
        if margin_type == current:
            raise VenueReject(-4046, "No need to change margin type.")
        if any(p.qty for (s, _side), p in account.positions.items() if s == symbol):
            raise VenueReject(-4048, "Margin type cannot be changed if there exists position.")
        if any(order.symbol == symbol for order in account.open_orders.values()):
            raise VenueReject(-4047, "Margin type cannot be changed if there exists open orders.")
        account.margin_type[symbol] = margin_type
        self._changed(account, "MARGIN_TYPE_CHANGE", symbol)

    def set_position_mode(self, account: Account, dual_side: Any) -> None:
        if not isinstance(dual_side, bool):
            raise illegal("dualSidePosition")
        if dual_side == account.dual_side:
            raise VenueReject(-4059, "No need to change position side.")
        if any(p.qty for p in account.positions.values()):
            raise VenueReject(-4068, "Position side cannot be changed if there exists position.")
        if account.open_orders:
            raise VenueReject(-4067, "Position side cannot be changed if there exists open orders.")
        account.dual_side = dual_side
        account.positions = {k: p for k, p in account.positions.items() if p.qty}

    def modify_isolated_margin(
        self, account: Account, m: MarketState, position_side: Any, amount: Any, add: Any
    ) -> dict[str, Any]:
        symbol = m.spec.symbol
        if position_side not in ("BOTH", "LONG", "SHORT") or (
            (position_side == "BOTH") == account.dual_side
        ):
            raise VenueReject(-4061, "Order's position side does not match user's setting.")
        if not (math.isfinite(amount) and amount > 0):
            raise illegal("amount")
        position = account.positions.get((symbol, position_side))
        if position is None or not position.qty or not self.isolated(account, symbol):
            raise VenueReject(-4051, "Isolated balance insufficient.")
        units = round(amount * MONEY_SCALE)
        if add:
            if amount > self.available(account):
                raise VenueReject(-2019, "Margin is insufficient.")
            position.isolated_margin += units
        else:
            spec = m.spec
            notional = position.notional(spec, m.feed.mark)
            keep = notional / self.leverage(account, symbol)
            equity = position.isolated_margin / MONEY_SCALE + position.unrealized(spec, m.feed.mark)
            if units > position.isolated_margin or equity - amount < keep:
                raise VenueReject(-4051, "Isolated balance insufficient.")
            position.isolated_margin -= units
        account.update_ms = position.update_ms = self._timeline.ms()
        self._changed(account, "MARGIN_TRANSFER", symbol)
        return {
            "amount": amount,
            "code": 200,
            "msg": "Successfully modify position margin.",
            "type": 1 if add else 2,
        }

    def _changed(self, account: Account, reason: str, symbol: str) -> None:
        timeline = self._timeline
        if timeline.listeners:
            timeline.notify(AccountChanged(timeline.time(), account.api_key, reason, (symbol,)))


__all__ = ["Ledger"]
