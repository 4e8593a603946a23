"""The liquidation fairness report: what each liquidation cost, whom, and why, auditable.

One row per liquidation order (each partial step, each take-over, each bankrupt position
settled by auto-deleveraging) and one per opposite position that auto-deleveraging closed:
the mark at the trigger, the bankruptcy price, the average close price, the slippage against
the mark and who bore it, the clearance fee, the insurance fund's change, and whether a
partial close at the mark would have restored the margin (the least quantity that would have).

It reconciles two ways, both exact to the 1e-8 unit: each account's rows against the income
rows (``/fapi/v1/income``) they booked, named by transaction id; and the insurance fund's start
plus every row's change against the fund now. Built from the venue's record alone (pure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from safeguard.venue._accounts import Income
from safeguard.venue._events import AutoDeleveraged, Liquidation
from safeguard.venue._markets import MONEY_SCALE, MarketSpec
from safeguard.venue._views import money

_BORNE_BY = {"PARTIAL": "trader", "TAKEOVER": "insurance fund", "ADL": "insurance fund"}


def fairness_report(
    events: Iterable[Liquidation | AutoDeleveraged],
    *,
    specs: Mapping[str, MarketSpec],
    income: Mapping[str, Iterable[Income]],
    fund_start_units: int,
    fund_now_units: int,
    api_key: str | None = None,
    cascade_gap_s: float = 15.0,
) -> dict[str, Any]:
    """The report over ``events`` (all accounts, or only ``api_key``'s rows and ledger).

    ``income`` maps each account to its income rows; the fund section always covers the whole
    venue (the fund is one), so it reconciles even when the rows are filtered to one account.
    So do the cascades (:func:`cascades`, joined within ``cascade_gap_s``), which name no one.
    """
    every = list(events)
    fund_change = sum(e.insurance_delta_units for e in every if isinstance(e, Liquidation))
    rows: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    ids: dict[str, set[int]] = {}
    for event in every:
        totals[event.api_key] = totals.get(event.api_key, 0) + event.wallet_delta_units
        ids.setdefault(event.api_key, set()).update(event.tran_ids)
        if api_key is None or event.api_key == api_key:
            spec = specs[event.symbol]
            rows.append(
                _liquidation_row(spec, event)
                if isinstance(event, Liquidation)
                else _deleveraged_row(event)
            )
    accounts = []
    for key in sorted(totals):
        if api_key is not None and key != api_key:
            continue
        booked = sum(r.units for r in income.get(key, ()) if r.tran_id in ids[key])
        accounts.append(
            {
                "account": key,
                "walletChange": money(totals[key]),
                "incomeBooked": money(booked),
                "tranIds": sorted(ids[key]),
                "reconciles": booked == totals[key],
            }
        )
    return {
        "events": rows,
        "cascades": cascades((e for e in every if isinstance(e, Liquidation)), gap_s=cascade_gap_s),
        "accounts": accounts,
        "insuranceFund": {
            "start": money(fund_start_units),
            "now": money(fund_now_units),
            "sumOfChanges": money(fund_change),
            "reconciles": fund_start_units + fund_change == fund_now_units,
        },
    }


def cascades(events: Iterable[Liquidation], *, gap_s: float) -> list[dict[str, Any]]:
    """Liquidations grouped into cascades: per symbol, each liquidation order within ``gap_s``
    of the one before joins its cascade. Each cascade tells its waves (the orders of one
    moment), how far the mark went, what was closed and what the insurance fund made of it.
    No account names: a cascade is a public story (the ``forceOrder`` stream's), not a ledger.
    """
    groups: dict[str, list[list[Liquidation]]] = {}
    for event in sorted(events, key=lambda e: (e.symbol, e.time)):
        runs = groups.setdefault(event.symbol, [])
        if runs and event.time - runs[-1][-1].time <= gap_s:
            runs[-1].append(event)
        else:
            runs.append([event])
    out = []
    for symbol in sorted(groups):
        for run in groups[symbol]:
            waves: dict[float, list[Liquidation]] = {}
            for event in run:
                waves.setdefault(event.time, []).append(event)
            marks = [e.mark_price for e in run]
            out.append(
                {
                    "symbol": symbol,
                    "start": int(run[0].time * 1000),
                    "end": int(run[-1].time * 1000),
                    "orders": len(run),
                    "triggers": len({e.trigger_id for e in run}),
                    "accounts": len({e.api_key for e in run}),
                    "kinds": {k: sum(1 for e in run if e.kind == k) for k in _BORNE_BY},
                    "closedQty": round(sum(e.close_qty for e in run), 8),
                    "closedNotional": round(sum(e.close_qty * e.close_avg_price for e in run), 8),
                    "markAtStart": marks[0],
                    "lowestMark": min(marks),
                    "highestMark": max(marks),
                    "fees": money(sum(e.fee_units for e in run)),
                    "insuranceFundChange": money(sum(e.insurance_delta_units for e in run)),
                    "waves": [
                        {
                            "time": int(at * 1000),
                            "orders": len(wave),
                            "mark": wave[0].mark_price,
                            "closedQty": round(sum(e.close_qty for e in wave), 8),
                        }
                        for at, wave in waves.items()
                    ],
                }
            )
    return out


def _liquidation_row(spec: MarketSpec, e: Liquidation) -> dict[str, Any]:
    at_mark = e.mark_price * e.close_qty
    return {
        "trigger": e.trigger_id,
        "time": int(e.time * 1000),
        "account": e.api_key,
        "symbol": e.symbol,
        "positionSide": e.position_side,
        "marginType": e.margin_type,
        "kind": e.kind,
        "qty": e.qty,
        "positionAfter": e.position_after,
        "entryPrice": e.entry_price,
        "markAtTrigger": e.mark_price,
        "bankruptcyPrice": round(e.bankruptcy_price, spec.price_precision + 3),
        "avgClosePrice": e.close_avg_price,
        "closeQty": e.close_qty,
        "equityBefore": round(e.equity_before, 8),
        "maintenanceMargin": round(e.maintenance_margin, 8),
        "slippage": money(e.slippage_units),
        "slippageBps": round(e.slippage_units / MONEY_SCALE / at_mark * 10_000, 3)
        if at_mark
        else 0.0,
        "slippageBorneBy": _BORNE_BY[e.kind],
        "fee": money(e.fee_units),
        "realizedPnl": money(e.realized_pnl_units),
        "shortfall": money(e.shortfall_units),
        "walletChange": money(e.wallet_delta_units),
        "insuranceFundChange": money(e.insurance_delta_units),
        "insuranceFundAfter": money(e.insurance_fund_after_units),
        "adlQty": e.adl_qty,
        "partialWouldSuffice": e.partial_would_suffice,
        "smallestHealthyClose": e.smallest_healthy_close,
        "tranIds": list(e.tran_ids),
    }


def _deleveraged_row(e: AutoDeleveraged) -> dict[str, Any]:
    # Closing a short by buying above the mark, or a long by selling below it, is what
    # auto-deleveraging costs the profitable side against a close at the mark.
    cost = (e.mark_price - e.price) * e.qty
    return {
        "trigger": e.trigger_id,
        "time": int(e.time * 1000),
        "account": e.api_key,
        "symbol": e.symbol,
        "positionSide": e.position_side,
        "kind": "ADL_COUNTERPARTY",
        "qty": e.qty,
        "positionAfter": e.position_after,
        "price": e.price,
        "markAtTrigger": e.mark_price,
        "costAgainstMark": round(cost, 8),
        "rankScore": round(e.rank_score, 6),
        "fee": money(0),
        "realizedPnl": money(e.realized_pnl_units),
        "walletChange": money(e.wallet_delta_units),
        "tranIds": list(e.tran_ids),
    }


__all__ = ["cascades", "fairness_report"]
