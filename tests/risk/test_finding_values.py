"""Every pre-trade check reports its numbers under stable names, and with real numbers.

A bot, a dashboard or ``safeguard check --json`` reads ``finding.values`` by key: a renamed or
dropped key is a broken interface even when the decision is right. Each check here is made to
fire on the sample market, and its finding's keys are compared with the documented ones.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._outcome import Verdict
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL

from .verdict_cases import account, intent, market, run

KEYS: dict[str, list[set[str]]] = {
    "STEP_SIZE": [{"amount", "step_size"}],
    "MIN_QUANTITY": [{"amount", "min_qty"}],
    "MAX_QUANTITY": [{"amount", "max_qty"}],
    "MIN_NOTIONAL": [{"notional", "min_notional"}],
    "TICK_SIZE": [{"price", "tick_size"}, {"stop_price", "tick_size"}],
    "INVALID_INPUT": [{"margin_mode", "position_margin_mode"}],
    "PRICE_OUTSIDE_BAND": [
        {"price", "mark", "off_pct", "band_pct"},
        {"expected_entry", "off_pct", "band_pct"},
    ],
    "POST_ONLY_WOULD_TAKE": [{"price", "touch"}],
    "REDUCE_ONLY_WOULD_FLIP": [{"position", "amount"}],
    "REDUCE_ONLY_WOULD_INCREASE": [{"position", "amount"}],
    "LEVERAGE_ABOVE_POLICY": [{"leverage", "max_leverage"}],
    "STOP_REQUIRED": [{"effect"}],
    "OPEN_ORDER_COUNT": [{"open_orders", "after", "max_open_orders"}],
    "STOP_WRONG_SIDE": [{"stop_price", "watched_price"}, {"stop_price", "expected_entry"}],
    "INSUFFICIENT_DEPTH": [{"amount", "unfilled"}, {"unfilled"}],
    "NOTIONAL_PER_ORDER": [{"notional", "max"}],
    "NOTIONAL_PER_POSITION": [{"notional", "max"}],
    "NOTIONAL_PER_ACCOUNT": [{"notional", "max"}],
    "CONCENTRATION": [{"share", "equity", "max"}],
    "LEVERAGE_ABOVE_TIER": [{"leverage", "tier_max_leverage", "tier"}, {"notional"}],
    "INSUFFICIENT_MARGIN": [{"needed", "available"}, {"shortfall", "wallet"}],
    "LIQUIDATION_AT_ENTRY": [{"liquidation_price", "mark"}],
    "STOP_BEYOND_LIQUIDATION": [
        {
            "stop_effective_price",
            "liquidation_price",
            "distance_pct",
            "distance_vol",
            "required_pct",
        },
    ],
}

_SHORT = PositionLeg(
    symbol=SYMBOL,
    side=-1,
    quantity=0.5,
    entry_price=61_000.0,
    mark_price=60_000.0,
    tiers=BTCUSDT_TIERS_12,
)
_LONG = PositionLeg(
    symbol=SYMBOL, side=1, quantity=0.1, entry_price=60_000.0, mark_price=60_000.0,
    tiers=BTCUSDT_TIERS_12,
)  # fmt: skip
_NO_STOP = {"require_stop": False, "max_leverage": None}

SCENARIOS: list[tuple[str, dict[str, Any], dict[str, Any], Any, dict[str, Any]]] = [
    # (code expected, intent changes, market changes, account, limits)
    ("STEP_SIZE", {"amount": 0.5005}, {}, "default", {}),
    ("MIN_QUANTITY", {"amount": 0.0001}, {}, "default", {}),
    ("MIN_NOTIONAL", {"amount": 0.001, "stop_price": None}, {}, "default", _NO_STOP),
    ("MAX_QUANTITY", {"amount": 5_000.0, "stop_price": None}, {}, "default", _NO_STOP),
    ("TICK_SIZE", {"type": "limit", "price": 59_990.05}, {}, "default", {}),
    ("TICK_SIZE", {"stop_price": 58_800.05}, {}, "default", {}),
    ("INVALID_INPUT", {"margin_mode": "isolated"}, {},
     account(positions=(_LONG,), available_balance=9_000.0), {}),
    ("PRICE_OUTSIDE_BAND", {"type": "limit", "price": 70_000.0}, {}, "default", {}),
    # A market order whose expected fill (not a limit price) is outside a tight band.
    ("PRICE_OUTSIDE_BAND", {"type": "market", "stop_price": None}, {}, "default",
     {**_NO_STOP, "price_band_pct": 0.0001}),
    ("POST_ONLY_WOULD_TAKE", {"type": "limit", "price": 60_000.1, "post_only": True}, {},
     "default", {}),
    ("REDUCE_ONLY_WOULD_INCREASE", {"reduce_only": True}, {}, "default", {}),
    ("REDUCE_ONLY_WOULD_FLIP",
     {"amount": 0.501, "reduce_only": True, "stop_price": None, "margin_mode": "cross"}, {},
     account(positions=(_SHORT,), available_balance=9_000.0, wallet_balance=10_000.0), {}),
    ("LEVERAGE_ABOVE_POLICY", {"leverage": 30.0}, {}, "default", {}),
    ("STOP_REQUIRED", {"stop_price": None}, {}, "default", {}),
    ("OPEN_ORDER_COUNT", {}, {}, account(open_orders=49, available_balance=10_000.0),
     {"max_open_orders": 49}),
    ("STOP_WRONG_SIDE", {"stop_price": 61_000.0}, {}, "default", {}),
    ("NOTIONAL_PER_ORDER", {}, {}, "default", {"max_notional_per_order": 1_000.0}),
    ("NOTIONAL_PER_POSITION", {}, {}, "default", {"max_notional_per_position": 1_000.0}),
    ("NOTIONAL_PER_ACCOUNT", {}, {}, "default", {"max_notional_per_account": 1_000.0}),
    ("CONCENTRATION", {}, {}, "default", {"max_concentration": 0.01}),
    ("LEVERAGE_ABOVE_TIER", {"amount": 6.0, "leverage": 101.0, "stop_price": None}, {},
     "default", _NO_STOP),
    ("INSUFFICIENT_MARGIN", {"amount": 5.0}, {}, account(wallet_balance=1_000.0), {}),
    ("LIQUIDATION_AT_ENTRY", {"leverage": 150.0, "stop_price": None}, {}, "default",
     {**_NO_STOP, "liquidation_safety_buffer_pct": 0.5}),
    ("STOP_BEYOND_LIQUIDATION", {"leverage": 50.0, "stop_price": 58_000.0}, {}, "default",
     {"max_leverage": None}),
    ("INSUFFICIENT_DEPTH", {"amount": 400.0, "stop_price": None, "leverage": 1.0}, {},
     account(wallet_balance=100_000_000.0), {**_NO_STOP, "max_notional_per_order": None}),
]  # fmt: skip


def _verdict(
    changes: dict[str, Any], snap: dict[str, Any], acct: Any, limits: dict[str, Any]
) -> Verdict:
    return run(intent(**changes), market(**snap), acct, **limits)


@pytest.mark.parametrize(
    ("code", "changes", "snap", "acct", "limits"),
    SCENARIOS,
    ids=[f"{s[0]}-{i}" for i, s in enumerate(SCENARIOS)],
)
def test_a_checks_numbers_keep_their_names(
    code: str, changes: dict[str, Any], snap: dict[str, Any], acct: Any, limits: dict[str, Any]
) -> None:
    verdict = _verdict(changes, snap, acct, limits)
    fired = [f for f in verdict.findings if str(f.code) == code]
    assert fired, f"{code} did not fire: {[str(f.code) for f in verdict.findings]}"
    for finding in verdict.findings:
        name = str(finding.code)
        if name not in KEYS:
            continue
        assert set(finding.values) in KEYS[name], (name, finding.values)
        for key, value in finding.values.items():
            assert value is not None, (name, key)
            if isinstance(value, float):
                assert not math.isnan(value), (name, key)
