"""Binance USD-M answer shapes for what the engine knows.

The engine computes; these functions only format. Each returns exactly the JSON a transport
sends for one endpoint (prices and quantities as strings formatted to the symbol's precision,
ids and times as ints), in the shapes ccxt 4.5's ``binanceusdm`` parses.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from safeguard.venue._accounts import Account, Income, Position, max_notional_at
from safeguard.venue._events import AutoDeleveraged, Fill, Liquidation
from safeguard.venue._funding import INTEREST_PER_INTERVAL
from safeguard.venue._markets import MONEY_SCALE, MarketSpec

Levels = list[tuple[int, int]]
Trade = tuple[int, int, int, int, bool]
"""(trade id, price ticks, qty steps, time ms, buyer is maker)."""

RATE_LIMITS: tuple[dict[str, Any], ...] = (
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
)


def money(units: int) -> str:
    """Exact money units as a decimal string with 8 places."""
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), MONEY_SCALE)
    return f"{sign}{whole}.{fraction:08d}"


def ticker_24h(
    spec: MarketSpec,
    *,
    last: int,
    last_qty: int,
    candles: Sequence[Sequence[float]],
    trades: Sequence[Trade],
    now_ms: int,
) -> dict[str, Any]:
    """``/fapi/v1/ticker/24hr`` from minute candles ``[minute, o, h, l, c, volume, quote]``."""
    if candles:
        open_ticks = int(candles[0][1])
        high = int(max(c[2] for c in candles))
        low = int(min(c[3] for c in candles))
        volume = sum(c[5] for c in candles)
        quote = sum(c[6] for c in candles)
        open_ms = int(candles[0][0] * 60_000)
    else:
        open_ticks = high = low = last
        volume = quote = 0.0
        open_ms = now_ms
    average = quote / volume if volume else last * spec.tick_size
    first_id = trades[0][0] if trades else -1
    last_id = trades[-1][0] if trades else -1
    return {
        "symbol": spec.symbol,
        "priceChange": format((last - open_ticks) * spec.tick_size, spec.price_format),
        "priceChangePercent": f"{(last / open_ticks - 1) * 100:.3f}",
        "weightedAvgPrice": format(average, spec.price_format),
        "lastPrice": spec.fmt_price(last),
        "lastQty": spec.fmt_qty(last_qty),
        "openPrice": spec.fmt_price(open_ticks),
        "highPrice": spec.fmt_price(high),
        "lowPrice": spec.fmt_price(low),
        "volume": format(volume, spec.qty_format),
        "quoteVolume": f"{quote:.2f}",
        "openTime": open_ms,
        "closeTime": now_ms,
        "firstId": first_id,
        "lastId": last_id,
        "count": last_id - first_id + 1 if trades else 0,
    }


def book_ticker(
    spec: MarketSpec, bids: Levels, asks: Levels, *, now_ms: int, update_id: int
) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "bidPrice": spec.fmt_price(bids[0][0]) if bids else "0",
        "bidQty": spec.fmt_qty(bids[0][1]) if bids else "0",
        "askPrice": spec.fmt_price(asks[0][0]) if asks else "0",
        "askQty": spec.fmt_qty(asks[0][1]) if asks else "0",
        "time": now_ms,
        "lastUpdateId": update_id,
    }


def depth(
    spec: MarketSpec, bids: Levels, asks: Levels, *, now_ms: int, update_id: int
) -> dict[str, Any]:
    return {
        "lastUpdateId": update_id,
        "E": now_ms,
        "T": now_ms,
        "bids": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in bids],
        "asks": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in asks],
    }


def trades(spec: MarketSpec, tape: Iterable[Trade]) -> list[dict[str, Any]]:
    """``/fapi/v1/trades`` and ``historicalTrades`` rows."""
    return [
        {
            "id": trade_id,
            "price": spec.fmt_price(price),
            "qty": spec.fmt_qty(qty),
            "quoteQty": format(price * qty * spec.tick_size * spec.step_size, ".8f"),
            "time": when,
            "isBuyerMaker": buyer_maker,
        }
        for trade_id, price, qty, when, buyer_maker in tape
    ]


def agg_trades(spec: MarketSpec, trades: Iterable[Trade]) -> list[dict[str, Any]]:
    return [
        {
            "a": trade_id,
            "p": spec.fmt_price(price),
            "q": spec.fmt_qty(qty),
            "f": trade_id,
            "l": trade_id,
            "T": when,
            "m": buyer_maker,
        }
        for trade_id, price, qty, when, buyer_maker in trades
    ]


def premium_index(
    spec: MarketSpec,
    *,
    mark: float,
    index: float,
    funding_estimate: float,
    next_funding_ms: int,
    now_ms: int,
) -> dict[str, Any]:
    digits = spec.price_precision + 6
    return {
        "symbol": spec.symbol,
        "markPrice": f"{mark:.{digits}f}",
        "indexPrice": f"{index:.{digits}f}",
        "estimatedSettlePrice": f"{index:.{digits}f}",
        "lastFundingRate": f"{funding_estimate:.8f}",
        "interestRate": f"{INTEREST_PER_INTERVAL:.8f}",
        "nextFundingTime": next_funding_ms,
        "time": now_ms,
    }


def exchange_info(
    specs: Iterable[MarketSpec], *, liquidation_fee_rate: float, now_ms: int
) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": now_ms,
        "futuresType": "U_MARGINED",
        "rateLimits": [dict(limit) for limit in RATE_LIMITS],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [_symbol_info(spec, liquidation_fee_rate) for spec in specs],
    }


def _symbol_info(spec: MarketSpec, liquidation_fee_rate: float) -> dict[str, Any]:
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": spec.price_precision,
        "quantityPrecision": spec.quantity_precision,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": [],
        "triggerProtect": "0.0500",
        "liquidationFee": f"{liquidation_fee_rate:.6f}",
        "marketTakeBound": "0.05",
        "maxMoveOrderLimit": 10000,
        "filters": spec.filters(),
        "orderTypes": [
            "LIMIT",
            "MARKET",
            "STOP",
            "STOP_MARKET",
            "TAKE_PROFIT",
            "TAKE_PROFIT_MARKET",
        ],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
    }


def leverage_brackets(specs: Iterable[MarketSpec]) -> list[dict[str, Any]]:
    return [
        {
            "symbol": spec.symbol,
            "notionalCoef": 1.0,
            "brackets": [
                {
                    "bracket": t.tier,
                    "initialLeverage": int(t.max_leverage),
                    "notionalCap": t.max_notional if math.isfinite(t.max_notional) else 9e18,
                    "notionalFloor": t.min_notional,
                    "maintMarginRatio": t.maintenance_margin_rate,
                    "cum": t.cum,
                }
                for t in spec.tiers
            ],
        }
        for spec in specs
    ]


class PositionFigures(NamedTuple):
    """One open leg valued at the mark (what the account endpoints report)."""

    spec: MarketSpec
    position: Position
    mark: float
    notional: float
    unrealized: float
    initial_margin: float
    maintenance_margin: float
    leverage: int
    isolated: bool


def _isolated_margin(f: PositionFigures) -> str:
    if not f.isolated:
        return "0"
    return f"{f.position.isolated_margin / MONEY_SCALE + f.unrealized:.8f}"


def _signed_notional(f: PositionFigures) -> str:
    return f"{f.notional if f.position.qty > 0 else -f.notional:.8f}"


def break_even_price(f: PositionFigures) -> float:
    """Where closing with a taker fee gets back the entry and the taker fee paid to open."""
    entry = f.position.entry_price(f.spec)
    fee = f.spec.taker_fee
    return entry * (1 + fee) / (1 - fee) if f.position.qty > 0 else entry * (1 - fee) / (1 + fee)


def position_risk(f: PositionFigures, *, liquidation_price: float) -> dict[str, Any]:
    """One ``/fapi/v3/positionRisk`` row (plus v2's ``leverage`` and ``marginType``)."""
    p = f.position
    entry = p.entry_price(f.spec)
    return {
        "symbol": f.spec.symbol,
        "positionSide": p.position_side,
        "positionAmt": f.spec.fmt_qty(p.qty),
        "entryPrice": f"{entry:.8f}",
        "breakEvenPrice": f"{break_even_price(f):.8f}",
        "markPrice": f"{f.mark:.8f}",
        "unRealizedProfit": f"{f.unrealized:.8f}",
        "liquidationPrice": f"{liquidation_price:.8f}",
        "isolatedMargin": _isolated_margin(f),
        "notional": _signed_notional(f),
        "marginAsset": f.spec.quote,
        "isolatedWallet": money(p.isolated_margin),
        "initialMargin": f"{f.initial_margin:.8f}",
        "maintMargin": f"{f.maintenance_margin:.8f}",
        "positionInitialMargin": f"{f.initial_margin:.8f}",
        "openOrderInitialMargin": "0",
        "adl": 0,
        "bidNotional": "0",
        "askNotional": "0",
        "leverage": str(f.leverage),
        "marginType": "isolated" if f.isolated else "cross",
        "isolated": f.isolated,
        "maxNotionalValue": f"{max_notional_at(f.spec, f.leverage):.0f}",
        "updateTime": p.update_ms,
    }


def symbol_config(spec: MarketSpec, *, leverage: int, isolated: bool) -> dict[str, Any]:
    """One ``/fapi/v1/symbolConfig`` row."""
    return {
        "symbol": spec.symbol,
        "marginType": "ISOLATED" if isolated else "CROSSED",
        "isAutoAddMargin": "false",
        "leverage": leverage,
        "maxNotionalValue": f"{max_notional_at(spec, leverage):.0f}",
    }


def account_v3(
    account: Account, figures: Sequence[PositionFigures], *, available: float
) -> dict[str, Any]:
    """``/fapi/v3/account``: totals, the one margin asset, and the open legs."""
    wallet = account.wallet / MONEY_SCALE
    upnl = sum(f.unrealized for f in figures)
    cross_upnl = sum(f.unrealized for f in figures if not f.isolated)
    im = sum(f.initial_margin for f in figures)
    mm = sum(f.maintenance_margin for f in figures)
    order_im = account.order_margin
    available = max(available, 0.0)
    asset = {
        "asset": account.asset,
        "walletBalance": f"{wallet:.8f}",
        "unrealizedProfit": f"{upnl:.8f}",
        "marginBalance": f"{wallet + upnl:.8f}",
        "maintMargin": f"{mm:.8f}",
        "initialMargin": f"{im + order_im:.8f}",
        "positionInitialMargin": f"{im:.8f}",
        "openOrderInitialMargin": f"{order_im:.8f}",
        "crossWalletBalance": f"{account.cross_wallet() / MONEY_SCALE:.8f}",
        "crossUnPnl": f"{cross_upnl:.8f}",
        "availableBalance": f"{available:.8f}",
        "maxWithdrawAmount": f"{min(available, wallet):.8f}",
        # ccxt skips assets whose updateTime is 0.
        "updateTime": max(account.update_ms, 1),
    }
    positions = [
        {
            "symbol": f.spec.symbol,
            "positionSide": f.position.position_side,
            "positionAmt": f.spec.fmt_qty(f.position.qty),
            "unrealizedProfit": f"{f.unrealized:.8f}",
            "isolatedMargin": _isolated_margin(f),
            "notional": _signed_notional(f),
            "isolatedWallet": money(f.position.isolated_margin),
            "initialMargin": f"{f.initial_margin:.8f}",
            "maintMargin": f"{f.maintenance_margin:.8f}",
            "updateTime": f.position.update_ms,
        }
        for f in figures
    ]
    return {
        "totalInitialMargin": asset["initialMargin"],
        "totalMaintMargin": asset["maintMargin"],
        "totalWalletBalance": asset["walletBalance"],
        "totalUnrealizedProfit": asset["unrealizedProfit"],
        "totalMarginBalance": asset["marginBalance"],
        "totalPositionInitialMargin": asset["positionInitialMargin"],
        "totalOpenOrderInitialMargin": asset["openOrderInitialMargin"],
        "totalCrossWalletBalance": asset["crossWalletBalance"],
        "totalCrossUnPnl": asset["crossUnPnl"],
        "availableBalance": asset["availableBalance"],
        "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "assets": [asset],
        "positions": positions,
    }


def income(row: Income, asset: str) -> dict[str, Any]:
    """One ``/fapi/v1/income`` row."""
    return {
        "symbol": row.symbol,
        "incomeType": row.kind,
        "income": money(row.units),
        "asset": asset,
        "info": row.info,
        "time": row.time_ms,
        "tranId": row.tran_id,
        "tradeId": row.trade_id,
    }


def balance_v2(asset: dict[str, Any]) -> dict[str, Any]:
    """One ``/fapi/v2/balance`` row from the account's asset row."""
    return {
        "accountAlias": "SgSimAcct",
        "asset": asset["asset"],
        "balance": asset["walletBalance"],
        "crossWalletBalance": asset["crossWalletBalance"],
        "crossUnPnl": asset["crossUnPnl"],
        "availableBalance": asset["availableBalance"],
        "maxWithdrawAmount": asset["maxWithdrawAmount"],
        "marginAvailable": True,
        "updateTime": asset["updateTime"],
    }


def account_v2(v3: dict[str, Any], figures: Sequence[PositionFigures]) -> dict[str, Any]:
    """``/fapi/v2/account``: the v3 answer plus v2's flags and per-leg settings."""
    answer = {
        "feeTier": 0,
        "canTrade": True,
        "canDeposit": True,
        "canWithdraw": True,
        "updateTime": 0,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
        **v3,
    }
    answer["assets"] = [{**a, "marginAvailable": True} for a in v3["assets"]]
    answer["positions"] = [
        {
            **row,
            "leverage": str(f.leverage),
            "isolated": f.isolated,
            "entryPrice": f"{f.position.entry_price(f.spec):.8f}",
            "breakEvenPrice": f"{break_even_price(f):.8f}",
            "maxNotional": f"{max_notional_at(f.spec, f.leverage):.0f}",
            "positionInitialMargin": row["initialMargin"],
            "openOrderInitialMargin": "0",
            "bidNotional": "0",
            "askNotional": "0",
        }
        for row, f in zip(v3["positions"], figures, strict=True)
    ]
    return answer


def flat_position(
    spec: MarketSpec, side: str, *, mark: float, leverage: int, isolated: bool
) -> dict[str, Any]:
    """A ``/fapi/v2/positionRisk`` row for a symbol the account holds nothing of."""
    return {
        "symbol": spec.symbol,
        "positionSide": side,
        "positionAmt": spec.fmt_qty(0),
        "entryPrice": "0.0",
        "breakEvenPrice": "0.0",
        "markPrice": f"{mark:.8f}",
        "unRealizedProfit": "0.00000000",
        "liquidationPrice": "0",
        "isolatedMargin": "0.00000000",
        "notional": "0",
        "marginAsset": spec.quote,
        "isolatedWallet": "0",
        "leverage": str(leverage),
        "marginType": "isolated" if isolated else "cross",
        "isAutoAddMargin": "false",
        "maxNotionalValue": f"{max_notional_at(spec, leverage):.0f}",
        "updateTime": 0,
    }


def force_order(spec: MarketSpec, event: Liquidation, ordinal: int) -> dict[str, Any]:
    """One ``/fapi/v1/forceOrders`` row: the venue's close of a liquidated position."""
    when = int(event.time * 1000)
    qty = format(abs(event.qty), spec.qty_format)
    filled = format(event.close_qty, spec.qty_format)
    average = format(event.close_avg_price, spec.avg_price_format)
    return {
        "orderId": ordinal,
        "symbol": spec.symbol,
        "status": "FILLED" if event.close_qty >= abs(event.qty) else "PARTIALLY_FILLED",
        "clientOrderId": f"autoclose-{when}",
        "price": format(event.mark_price, spec.price_format),
        "avgPrice": average,
        "origQty": qty,
        "executedQty": filled,
        "cumQuote": f"{event.close_avg_price * event.close_qty:.8f}",
        "timeInForce": "IOC",
        "type": "LIMIT",
        "reduceOnly": True,
        "closePosition": False,
        "side": "SELL" if event.qty > 0 else "BUY",
        "positionSide": event.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "origType": "LIMIT",
        "time": when,
        "updateTime": when,
    }


def adl_order(spec: MarketSpec, event: AutoDeleveraged, ordinal: int) -> dict[str, Any]:
    """One ``/fapi/v1/forceOrders?autoCloseType=ADL`` row: a leg closed by auto-deleveraging
    at the bankrupt position's price (``adl_autoclose``, as Binance names them)."""
    when = int(event.time * 1000)
    qty = format(abs(event.qty), spec.qty_format)
    price = format(event.price, spec.price_format)
    return {
        "orderId": ordinal,
        "symbol": spec.symbol,
        "status": "FILLED",
        "clientOrderId": "adl_autoclose",
        "price": price,
        "avgPrice": format(event.price, spec.avg_price_format),
        "origQty": qty,
        "executedQty": qty,
        "cumQuote": f"{event.price * abs(event.qty):.8f}",
        "timeInForce": "IOC",
        "type": "LIMIT",
        "reduceOnly": True,
        "closePosition": False,
        "side": "SELL" if event.qty > 0 else "BUY",
        "positionSide": event.position_side,
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "origType": "LIMIT",
        "time": when,
        "updateTime": when,
    }


def user_trade(spec: MarketSpec, fill: Fill) -> dict[str, Any]:
    """One ``/fapi/v1/userTrades`` row."""
    return {
        "buyer": fill.side == "BUY",
        "commission": money(fill.fee_units),
        "commissionAsset": spec.quote,
        "id": fill.trade_id,
        "maker": fill.maker,
        "orderId": fill.order_id,
        "price": format(fill.price, spec.price_format),
        "qty": format(fill.qty, spec.qty_format),
        "quoteQty": f"{fill.price * fill.qty:.8f}",
        "realizedPnl": money(fill.realized_pnl_units),
        "side": fill.side,
        "positionSide": fill.position_side,
        "symbol": spec.symbol,
        "time": int(fill.time * 1000),
    }


__all__ = [
    "RATE_LIMITS",
    "PositionFigures",
    "account_v3",
    "agg_trades",
    "book_ticker",
    "depth",
    "exchange_info",
    "leverage_brackets",
    "money",
    "position_risk",
    "premium_index",
    "ticker_24h",
    "user_trade",
]


# --- stream payloads (websocket market and user-data streams) ---------------------------------
#
# Binance's streams carry the REST figures under one-letter names; ``E`` is the event time and
# ``T`` the transaction time, both in ms.


def depth_update(
    spec: MarketSpec,
    bids: Levels,
    asks: Levels,
    *,
    first: int,
    last: int,
    previous: int,
    now_ms: int,
) -> dict[str, Any]:
    """``<symbol>@depth``: absolute quantities of the levels that changed (``"0"``: gone)."""
    return {
        "e": "depthUpdate",
        "E": now_ms,
        "T": now_ms,
        "s": spec.symbol,
        "U": first,
        "u": last,
        "pu": previous,
        "b": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in bids],
        "a": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in asks],
    }


def ws_position(
    spec: MarketSpec, position: Position, *, mark: float, isolated: bool
) -> dict[str, Any]:
    """One ``P`` row of an ``ACCOUNT_UPDATE``."""
    entry = position.entry_price(spec)
    return {
        "s": spec.symbol,
        "pa": spec.fmt_qty(position.qty),
        "ep": f"{entry:.8f}",
        "bep": f"{entry:.8f}",
        "cr": "0",
        "up": f"{position.unrealized(spec, mark):.8f}",
        "mt": "isolated" if isolated else "cross",
        "iw": money(position.isolated_margin) if isolated else "0",
        "ps": position.position_side,
    }


def ws_account(
    account: Account, reason: str, positions: list[dict[str, Any]], balance_change_units: int
) -> dict[str, Any]:
    """The ``a`` of an ``ACCOUNT_UPDATE``: the margin asset and the legs that changed."""
    return {
        "m": reason,
        "B": [
            {
                "a": account.asset,
                "wb": money(account.wallet),
                "cw": money(account.cross_wallet()),
                "bc": money(balance_change_units),
            }
        ],
        "P": positions,
    }
