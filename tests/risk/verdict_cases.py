"""Builders for verdict tests: a calm sample market and a sample order, each overridable."""

from __future__ import annotations

import dataclasses
from typing import Any

from safeguard._config import FillModelConfig, RiskLimits
from safeguard.risk._fills import FillModel
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account, MarketRules, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Verdict
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL, sample_market
from safeguard.risk._verdict import evaluate

NOW = 1_700_000_000.0
FILLS = FillModel.from_config(FillModelConfig())
LONG = PositionLeg(
    symbol=SYMBOL,
    side=1,
    quantity=1.0,
    entry_price=59_000.0,
    mark_price=60_000.0,
    tiers=BTCUSDT_TIERS_12,
    isolated_wallet=6_000.0,
)
"""An isolated 1 BTC long the sample market holds comfortably: something to reduce."""


def intent(**changes: Any) -> OrderIntent:
    base: dict[str, Any] = {
        "symbol": SYMBOL,
        "side": "buy",
        "amount": 0.5,
        "leverage": 10.0,
        "margin_mode": "isolated",
        "stop_price": 58_800.0,
    }
    base.update(changes)
    return OrderIntent(**base)


def market(**changes: Any) -> MarketSnapshot:
    return dataclasses.replace(sample_market(NOW), **changes)


def rules(**changes: Any) -> MarketRules:
    base = sample_market(NOW).rules
    assert base is not None
    return dataclasses.replace(base, **changes)


def account(**changes: Any) -> Account:
    base: dict[str, Any] = {"wallet_balance": 10_000.0}
    base.update(changes)
    return Account(**base)


def run(
    order: OrderIntent | None = None,
    snapshot: MarketSnapshot | None = None,
    acct: Account | str | None = "default",
    *,
    limits: RiskLimits | None = None,
    fills: FillModel = FILLS,
    now: float = NOW,
    degraded: bool = False,
    size_search: bool = False,
    **limit_changes: Any,
) -> Verdict:
    chosen = limits if limits is not None else RiskLimits(**limit_changes)
    return evaluate(
        order if order is not None else intent(),
        snapshot if snapshot is not None else market(),
        account() if acct == "default" else acct,  # type: ignore[arg-type]
        chosen,
        fills,
        now=now,
        degraded=degraded,
        size_search=size_search,
    )


def codes(verdict: Verdict) -> set[str]:
    return {str(code) for code in verdict.codes}


def denied(verdict: Verdict) -> set[str]:
    return {str(f.code) for f in verdict.denials}
