"""What an account is shown about itself: balances, positions, settings, income, its queue places.

:class:`Statements` builds the account answers (``/fapi/v3/account``, ``positionRisk`` with
Binance's liquidation price, ``balance``, ``symbolConfig``, ``income``, ``adlQuantile``,
``forceOrders`` and the user-data stream's ``ACCOUNT_UPDATE`` and ``MARGIN_CALL`` rows) from
the :class:`~._ledger.Ledger`'s accounts, the markets' marks and the recorded events, in the
shapes of :mod:`._views`.

It is separate from the engine because it only reads: nothing here changes an account, so the
whole read side of the account API sits in one place, apart from the code that moves money.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from safeguard.venue import _views as views
from safeguard.venue._accounts import Account, maintenance_margin
from safeguard.venue._errors import illegal
from safeguard.venue._events import AutoDeleveraged, Liquidation
from safeguard.venue._ledger import Ledger
from safeguard.venue._liquidation import adl_score, liquidation_price
from safeguard.venue._markets import MONEY_SCALE, MarketSpec
from safeguard.venue._state import MarketState
from safeguard.venue._timeline import Timeline
from safeguard.venue._views import money as money_text


class Statements:
    """The account answers, read from the ledger, the markets and the event log."""

    def __init__(
        self, ledger: Ledger, markets: Mapping[str, MarketState], timeline: Timeline
    ) -> None:
        self._ledger = ledger
        self._m = markets
        self._timeline = timeline

    def _listed(self, symbol: str | None) -> list[MarketSpec]:
        """``symbol``'s listing (already checked by the caller), or every symbol's."""
        if symbol is not None:
            return [self._m[symbol].spec]
        return [m.spec for m in self._m.values()]

    def figures(self, account: Account) -> list[views.PositionFigures]:
        """The margin figures of each of ``account``'s open legs, at the mark."""
        figures = []
        for spec, m, p in self._ledger.open_positions(account):
            mark = m.feed.mark
            notional = p.notional(spec, mark)
            leverage = self._ledger.leverage(account, spec.symbol)
            figures.append(
                views.PositionFigures(
                    spec=spec,
                    position=p,
                    mark=mark,
                    notional=notional,
                    unrealized=p.unrealized(spec, mark),
                    initial_margin=notional / leverage,
                    maintenance_margin=maintenance_margin(spec, notional),
                    leverage=leverage,
                    isolated=self._ledger.isolated(account, spec.symbol),
                )
            )
        return figures

    def account_update(
        self, account: Account, reason: str, symbols: Sequence[str], balance_change_units: int
    ) -> dict[str, Any]:
        rows = [
            views.ws_position(
                self._m[symbol].spec,
                p,
                mark=self._m[symbol].feed.mark,
                isolated=self._ledger.isolated(account, symbol),
            )
            for (symbol, _side), p in account.positions.items()
            if symbol in symbols
        ]
        return views.ws_account(account, reason, rows, balance_change_units)

    def margin_call(self, account: Account, symbols: Sequence[str]) -> list[dict[str, Any]]:
        return [
            {
                "s": f.spec.symbol,
                "ps": f.position.position_side,
                "pa": f.spec.fmt_qty(f.position.qty),
                "mt": "ISOLATED" if f.isolated else "CROSSED",
                "iw": money_text(f.position.isolated_margin),
                "mp": f"{f.mark:.8f}",
                "up": f"{f.unrealized:.8f}",
                "mm": f"{f.maintenance_margin:.8f}",
            }
            for f in self.figures(account)
            if f.spec.symbol in symbols
        ]

    def account_v3(self, account: Account) -> dict[str, Any]:
        return views.account_v3(
            account, self.figures(account), available=self._ledger.available(account)
        )

    def account_v2(self, account: Account) -> dict[str, Any]:
        figures = self.figures(account)
        answer = views.account_v3(account, figures, available=self._ledger.available(account))
        return views.account_v2(answer, figures)

    def balance_v2(self, account: Account) -> list[dict[str, Any]]:
        asset = self.account_v3(account)["assets"][0]
        return [views.balance_v2(asset)]

    def position_risk(self, account: Account, symbol: str | None) -> list[dict[str, Any]]:
        return [
            views.position_risk(f, liquidation_price=self._liquidation_price(account, f))
            for f in self.figures(account)
            if symbol is None or f.spec.symbol == symbol
        ]

    def position_risk_v2(self, account: Account, symbol: str | None) -> list[dict[str, Any]]:
        rows = self.position_risk(account, symbol)
        held = {r["symbol"] for r in rows}
        specs = self._listed(symbol)
        for spec in specs:
            if spec.symbol in held:
                continue
            leverage = self._ledger.leverage(account, spec.symbol)
            isolated = self._ledger.isolated(account, spec.symbol)
            sides = ("LONG", "SHORT") if account.dual_side else ("BOTH",)
            for side in sides:
                rows.append(
                    views.flat_position(
                        spec,
                        side,
                        mark=self._m[spec.symbol].feed.mark,
                        leverage=leverage,
                        isolated=isolated,
                    )
                )
        return rows

    def _liquidation_price(self, account: Account, leg: views.PositionFigures) -> float:
        if leg.isolated:
            return liquidation_price(
                leg.position, leg.spec, wallet=leg.position.isolated_margin / MONEY_SCALE
            )
        others = [
            f for f in self.figures(account) if f.position is not leg.position and not f.isolated
        ]
        # Hedge mode: the symbol's other cross leg moves with the same mark (one shared price).
        twins = [f for f in others if f.spec.symbol == leg.spec.symbol]
        others = [f for f in others if f.spec.symbol != leg.spec.symbol]
        return liquidation_price(
            leg.position,
            leg.spec,
            wallet=account.cross_wallet() / MONEY_SCALE,
            other_upnl=sum(f.unrealized for f in others),
            other_mm=sum(f.maintenance_margin for f in others),
            twin=twins[0].position if twins else None,
            mark=leg.mark,
        )

    def symbol_config(self, account: Account, symbol: str | None) -> list[dict[str, Any]]:
        return [
            views.symbol_config(
                spec,
                leverage=self._ledger.leverage(account, spec.symbol),
                isolated=self._ledger.isolated(account, spec.symbol),
            )
            for spec in self._listed(symbol)
        ]

    def account_config(self, account: Account) -> dict[str, Any]:
        return {
            "feeTier": 0,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "dualSidePosition": account.dual_side,
            "updateTime": account.update_ms,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
        }

    def income(
        self,
        account: Account,
        symbol: str | None,
        income_type: Any,
        start_ms: Any,
        end_ms: Any,
        limit: Any,
    ) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise illegal("limit")
        if start_ms is None and end_ms is None:
            start_ms = self._timeline.ms() - 7 * 86_400_000
            window_from_start = False
        else:
            window_from_start = start_ms is not None
        rows = [
            r
            for r in account.income
            if (symbol is None or r.symbol == symbol)
            and (income_type is None or r.kind == income_type)
            and (start_ms is None or r.time_ms >= start_ms)
            and (end_ms is None or r.time_ms <= end_ms)
        ]
        kept = rows[:limit] if window_from_start else rows[-limit:]
        return [views.income(r, account.asset) for r in kept]

    def adl_quantile(self, account: Account, symbol: str | None) -> list[dict[str, Any]]:
        """Each open leg's place in the auto-deleveraging queue (1-4, 4 first)."""
        scores: dict[tuple[str, bool], list[float]] = {}
        mine: dict[str, dict[str, float]] = {}
        for other in self._ledger.accounts.values():
            for spec, m, p in self._ledger.open_positions(other):
                leverage = self._ledger.leverage(other, spec.symbol)
                score = adl_score(p, spec, m.feed.mark, leverage)
                scores.setdefault((spec.symbol, p.qty > 0), []).append(score)
                if other is account:
                    mine.setdefault(spec.symbol, {})[p.position_side + str(p.qty > 0)] = score
        answer = []
        for name, legs in sorted(mine.items()):
            if symbol is not None and name != symbol:
                continue
            quantiles = {"LONG": 0, "SHORT": 0}
            for key, score in legs.items():
                long = key.endswith("True")
                ranked = scores[(name, long)]
                share = sum(1 for s in ranked if s <= score) / len(ranked)
                quantiles["LONG" if long else "SHORT"] = max(1, math.ceil(share * 4))
            # One-way mode: BOTH is the one leg's place in the queue (Binance's answer,
            # and what ccxt's fetch_position_adl_rank reads first); hedge mode: a sign.
            quantiles["HEDGE" if account.dual_side else "BOTH"] = (
                0 if account.dual_side else max(quantiles["LONG"], quantiles["SHORT"])
            )
            answer.append({"symbol": name, "adlQuantile": quantiles})
        return answer

    def force_orders(
        self,
        api_key: str,
        symbol: str | None,
        auto_close_type: Any,
        start_ms: Any,
        end_ms: Any,
        limit: Any,
    ) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100:
            raise illegal("limit")
        if auto_close_type not in (None, "LIQUIDATION", "ADL"):
            raise illegal("autoCloseType")
        rows = []
        closes = (e for e in self._timeline.events if isinstance(e, Liquidation | AutoDeleveraged))
        for ordinal, e in enumerate(closes, start=1):
            if (
                e.api_key != api_key
                or (symbol is not None and e.symbol != symbol)
                or (start_ms is not None and e.time * 1000 < start_ms)
                or (end_ms is not None and e.time * 1000 > end_ms)
            ):
                continue
            if isinstance(e, Liquidation) and auto_close_type != "ADL":
                rows.append(views.force_order(self._m[e.symbol].spec, e, ordinal))
            elif isinstance(e, AutoDeleveraged) and auto_close_type != "LIQUIDATION":
                rows.append(views.adl_order(self._m[e.symbol].spec, e, ordinal))
        return rows[:limit] if start_ms is not None else rows[-limit:]


__all__ = ["Statements"]
