"""The verdict fails closed: missing, stale or nonsensical inputs never let an order through."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from safeguard._config import RiskLimits
from safeguard.risk._book import OrderBook
from safeguard.risk._models import Account, MarketRules, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Decision
from safeguard.risk._sample import SYMBOL
from safeguard.risk._verdict import evaluate

from .verdict_cases import FILLS, LONG, NOW, account, denied, intent, market, rules, run


@pytest.mark.parametrize(
    "field",
    ["mark", "mark_time", "book", "rules", "volatility", "funding_rate", "next_funding_time"],
)
def test_each_missing_market_input_denies(field: str) -> None:
    snap = market(**{field: None}, **({"book_time": None} if field == "book" else {}))
    verdict = run(snapshot=snap)
    assert verdict.decision is Decision.DENY
    assert denied(verdict) == {"MISSING_MARKET_DATA"}
    assert field in verdict.findings[0].message
    assert verdict.costing is None
    assert verdict.max_safe_amount == 0.0


def test_missing_book_time_denies_even_with_a_book() -> None:
    book = market().book
    assert book is not None
    untimed = OrderBook(bids=book.bids, asks=book.asks)  # no timestamp of its own
    verdict = run(snapshot=market(book=untimed, book_time=None))
    assert denied(verdict) == {"MISSING_MARKET_DATA"}
    assert "book_time" in verdict.findings[0].message


def test_last_price_is_required_only_for_a_stop_watching_it() -> None:
    assert run(snapshot=market(last=None)).allowed
    watching = run(intent(stop_trigger="last"), market(last=None))
    assert denied(watching) == {"MISSING_MARKET_DATA"}


def test_funding_is_not_needed_when_the_horizon_is_zero() -> None:
    snap = market(funding_rate=None, next_funding_time=None)
    assert run(snapshot=snap, funding_horizon_s=0.0).allowed


def test_missing_account_denies() -> None:
    verdict = run(acct=None)
    assert denied(verdict) == {"MISSING_ACCOUNT"}


def test_unknown_available_balance_with_positions_denies() -> None:
    verdict = run(acct=Account(wallet_balance=10_000.0, positions=(LONG,)))
    assert denied(verdict) == {"MISSING_ACCOUNT"}
    assert run(acct=Account(wallet_balance=10_000.0, open_orders=1)).decision is Decision.DENY


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"mark_time": NOW - 5.001}, "STALE_MARKET_DATA"),
        ({"book_time": NOW - 5.001}, "STALE_MARKET_DATA"),
        ({"mark_time": NOW + 5.001}, "STALE_MARKET_DATA"),
        ({"rules": "stale"}, "STALE_MARKET_RULES"),
    ],
)
def test_stale_data_denies_new_exposure(changes: dict[str, Any], code: str) -> None:
    if changes.get("rules") == "stale":
        changes = {"rules": rules(updated_at=NOW - 3600.001)}
    verdict = run(snapshot=market(**changes))
    assert verdict.decision is Decision.DENY
    assert code in denied(verdict)
    # Still priced, so the report can show what the order would have cost.
    assert verdict.costing is not None


@pytest.mark.parametrize(
    "changes",
    [
        {"mark_time": NOW - 5.0},
        {"book_time": NOW - 5.0},
        {"rules": "edge"},
    ],
)
def test_data_exactly_at_the_age_limit_passes(changes: dict[str, Any]) -> None:
    if changes.get("rules") == "edge":
        changes = {"rules": rules(updated_at=NOW - 3600.0)}
    assert run(snapshot=market(**changes)).allowed


def test_a_tier_ladder_older_than_its_own_limit_denies_new_exposure() -> None:
    # Filters an hour young are fine; a ladder over a minute old is not (venues change it).
    young = run(snapshot=market(rules=rules(updated_at=NOW - 600, tiers_updated_at=NOW - 60)))
    assert young.allowed
    verdict = run(snapshot=market(rules=rules(updated_at=NOW - 600, tiers_updated_at=NOW - 61)))
    assert verdict.decision is Decision.DENY
    assert denied(verdict) == {"STALE_MARKET_RULES"}
    assert "risk.max_tiers_age_s" in verdict.denials[0].message


def test_stale_data_only_warns_an_order_that_reduces() -> None:
    acct = account(positions=(LONG,), available_balance=4_000.0)
    stale = market(mark_time=NOW - 60.0, book_time=NOW - 60.0)
    reduce = intent(side="sell", amount=0.5, reduce_only=True, stop_price=None)
    verdict = run(reduce, stale, acct)
    assert verdict.decision is Decision.WARN
    assert {str(f.code) for f in verdict.warnings} == {"STALE_MARKET_DATA"}
    # ... but an order that adds to it is denied.
    assert "STALE_MARKET_DATA" in denied(run(intent(), stale, acct))


def test_missing_data_denies_even_an_order_that_reduces() -> None:
    acct = account(positions=(LONG,), available_balance=4_000.0)
    reduce = intent(side="sell", amount=0.5, reduce_only=True, stop_price=None)
    assert denied(run(reduce, market(mark=None), acct)) == {"MISSING_MARKET_DATA"}


@pytest.mark.parametrize(
    ("position", "value"),
    [
        (0, "not an intent"),
        (1, {"mark": 60_000}),
        (2, "account"),
        (3, {"max_leverage": 5}),
        (4, None),
    ],
)
def test_wrong_types_are_an_invalid_input_denial(position: int, value: object) -> None:
    args: list[object] = [intent(), market(), account(), RiskLimits(), FILLS]
    args[position] = value
    verdict = evaluate(*args, now=NOW)  # type: ignore[arg-type]
    assert denied(verdict) == {"INVALID_INPUT"}
    assert verdict.max_safe_amount == 0.0


@pytest.mark.parametrize("now", [math.nan, math.inf, -1.0, "now", True])
def test_a_bad_clock_is_an_invalid_input_denial(now: object) -> None:
    verdict = evaluate(intent(), market(), account(), RiskLimits(), FILLS, now=now)  # type: ignore[arg-type]
    assert denied(verdict) == {"INVALID_INPUT"}


@pytest.mark.parametrize("degraded", [1, 0, "yes", None])
def test_a_degraded_flag_that_is_not_a_bool_is_an_invalid_input_denial(degraded: object) -> None:
    verdict = evaluate(
        intent(), market(), account(), RiskLimits(), FILLS, now=NOW, degraded=degraded
    )  # type: ignore[arg-type]
    assert denied(verdict) == {"INVALID_INPUT"}
    assert "degraded" in verdict.findings[0].message


@pytest.mark.parametrize("depth", [[], {"ETH/USDT:USDT": "deep"}, {1: "deep"}, "ETH/USDT:USDT"])
def test_depth_that_is_not_books_by_symbol_is_an_invalid_input_denial(depth: object) -> None:
    verdict = evaluate(intent(), market(), account(), RiskLimits(), FILLS, now=NOW, depth=depth)  # type: ignore[arg-type]
    assert denied(verdict) == {"INVALID_INPUT"}
    assert "depth" in verdict.findings[0].message


@pytest.mark.parametrize("now", [NOW, float(int(NOW))])
def test_an_int_clock_is_judged_as_its_float(now: float) -> None:
    as_int = evaluate(intent(), market(), account(), RiskLimits(), FILLS, now=int(now))
    as_float = evaluate(intent(), market(), account(), RiskLimits(), FILLS, now=float(int(now)))
    assert as_int.decision == as_float.decision
    assert [f.code for f in as_int.findings] == [f.code for f in as_float.findings]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount", math.nan),
        ("amount", 0.0),
        ("amount", -1.0),
        ("amount", math.inf),
        ("amount", "1"),
        ("amount", True),
        ("side", "BUY"),
        ("type", "stop"),
        ("price", -5.0),
        ("leverage", 0.5),
        ("leverage", math.nan),
        ("margin_mode", "portfolio"),
        ("reduce_only", 1),
        ("stop_price", 0.0),
        ("stop_price", math.inf),
        ("stop_trigger", "index"),
        ("symbol", ""),
    ],
)
def test_nonsense_order_fields_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        intent(**{field: value})


def test_order_shape_contradictions_are_refused() -> None:
    with pytest.raises(ValueError, match="price is required"):
        intent(type="limit")
    with pytest.raises(ValueError, match="price must be None"):
        intent(price=60_000.0)
    with pytest.raises(ValueError, match="post_only"):
        intent(post_only=True)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mark", math.nan),
        ("mark", -1.0),
        ("mark", 0.0),
        ("mark_time", math.inf),
        ("volatility", 0.0),
        ("volatility", -0.01),
        ("funding_rate", 1.5),
        ("funding_rate", math.nan),
        ("funding_interval_s", 0.0),
        ("last", math.nan),
        ("book", {"bids": []}),
        ("rules", "binance"),
    ],
)
def test_nonsense_market_fields_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        market(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tick_size", 0.0),
        ("step_size", math.nan),
        ("min_qty", -1.0),
        ("max_qty", 0.0),
        ("min_notional", math.inf),
        ("liquidation_model", "ftx"),
        ("tiers", ()),
    ],
)
def test_nonsense_rules_are_refused_naming_the_field(field: str, value: object) -> None:
    match = "liquidation model" if field == "liquidation_model" else field
    with pytest.raises(ValueError, match=match):
        rules(**{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("wallet_balance", -1.0),
        ("wallet_balance", math.nan),
        ("open_orders", -1),
        ("open_orders", 1.5),
        ("available_balance", math.inf),
        ("positions", [LONG]),
        ("positions", ("leg",)),
        ("positions", (LONG, LONG)),
    ],
)
def test_nonsense_account_fields_are_refused_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=r"positions|" + field):
        account(**{field: value})


# --- random garbage never yields ALLOW ------------------------------------------------------

GARBAGE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -1.0, -1e-300, True, False]),
    st.text(max_size=3),
    st.none(),
    st.floats(max_value=0.0),
    st.integers(max_value=0),
    st.lists(st.integers(), max_size=2),
)

# Fields where a garbage value must end in a ValueError or a denial. ``None`` is garbage for
# each of these (a missing mark is a denial, a missing amount an error).
INTENT_FIELDS = ["symbol", "side", "amount", "type", "leverage", "margin_mode", "stop_price"]
MARKET_FIELDS = [
    "mark",
    "mark_time",
    "book",
    "rules",
    "volatility",
    "next_funding_time",
    "funding_interval_s",
    "symbol",
]
ACCOUNT_FIELDS = ["wallet_balance", "positions", "open_orders"]


def _build(kind: str, field: str, value: object) -> tuple[Any, Any, Any]:
    order, snap, acct = intent(), market(), account()
    if kind == "intent":
        order = dataclasses.replace(order, **{field: value})
    elif kind == "market":
        snap = dataclasses.replace(snap, **{field: value})
    else:
        acct = dataclasses.replace(acct, **{field: value})
    return order, snap, acct


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.one_of(
        st.tuples(st.just("intent"), st.sampled_from(INTENT_FIELDS)),
        st.tuples(st.just("market"), st.sampled_from(MARKET_FIELDS)),
        st.tuples(st.just("account"), st.sampled_from(ACCOUNT_FIELDS)),
    ),
    value=GARBAGE,
)
def test_garbage_in_any_field_never_yields_allow(target: tuple[str, str], value: object) -> None:
    kind, field = target
    if kind == "account" and field == "wallet_balance" and value in (0, 0.0, False):
        value = -1.0  # a zero wallet is a legal (if useless) account: make it garbage
    if kind == "account" and field == "open_orders" and value == 0 and value is not False:
        value = -1
    try:
        order, snap, acct = _build(kind, field, value)
    except ValueError:
        return  # refused on construction, naming the field: fine
    verdict = evaluate(order, snap, acct, RiskLimits(), FILLS, now=NOW)
    assert verdict.decision is Decision.DENY, (target, value, verdict.findings)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    amount=st.floats(allow_nan=True, allow_infinity=True),
    leverage=st.floats(allow_nan=True, allow_infinity=True),
    stop=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    mark=st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    wallet=st.floats(allow_nan=True, allow_infinity=True),
)
def test_random_numbers_either_error_or_get_a_sound_verdict(
    amount: float, leverage: float, stop: float | None, mark: float | None, wallet: float
) -> None:
    try:
        order = intent(amount=amount, leverage=leverage, stop_price=stop)
        snap = market(mark=mark)
        acct = account(wallet_balance=wallet)
    except ValueError:
        return
    verdict = evaluate(order, snap, acct, RiskLimits(), FILLS, now=NOW)
    if verdict.allowed:
        # Whatever got through was priced and passed every check on real numbers.
        cost = verdict.costing
        assert cost is not None
        assert mark is not None
        assert math.isfinite(cost.expected_entry)
        assert stop is not None
        assert cost.stop_distance_pct is not None
        assert cost.stop_distance_pct >= RiskLimits().min_liquidation_buffer_pct
        assert cost.initial_margin + cost.entry_fee <= wallet
        assert leverage <= 20.0


def test_rules_type_is_checked() -> None:
    with pytest.raises(ValueError, match="tiers"):
        MarketRules(tiers="BTC", tick_size=0.1, step_size=0.001, updated_at=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="symbol"):
        MarketSnapshot(
            symbol="",
            mark=None,
            mark_time=None,
            book=None,
            rules=None,
            volatility=None,
            funding_rate=None,
            next_funding_time=None,
        )
    with pytest.raises(ValueError, match="amount"):
        OrderIntent(symbol=SYMBOL, side="buy", amount=-0.1)


@pytest.mark.parametrize("offset", [-5.001, 8 * 3600.0 + 5.001, -NOW])
def test_a_funding_schedule_that_was_not_refreshed_is_stale(offset: float) -> None:
    verdict = run(snapshot=market(next_funding_time=NOW + offset))
    assert denied(verdict) == {"STALE_MARKET_DATA"}
    assert "next funding time" in verdict.denials[0].message


@pytest.mark.parametrize("offset", [-5.0, 0.0, 8 * 3600.0 + 5.0])
def test_a_funding_time_within_the_schedule_passes(offset: float) -> None:
    assert run(snapshot=market(next_funding_time=NOW + offset)).allowed


def test_a_policy_the_liquidation_model_refuses_is_a_denial_not_a_crash() -> None:
    verdict = run(liquidation_safety_buffer_pct=100.0)
    assert denied(verdict) == {"INVALID_INPUT"}
    assert "safety_buffer_rate" in verdict.findings[0].message


positive_or_none = st.one_of(st.none(), st.floats(min_value=1e-6, max_value=1e12))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    max_leverage=positive_or_none,
    per_order=positive_or_none,
    per_position=positive_or_none,
    concentration=st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0)),
    buffer_pct=st.floats(min_value=0.0, max_value=500.0),
    safety_pct=st.floats(min_value=0.0, max_value=200.0),
    horizon=st.floats(min_value=0.0, max_value=1e7),
    stop_bps=st.floats(min_value=0.0, max_value=1e5),
    band=positive_or_none,
    degraded=st.booleans(),
    amount=st.integers(min_value=1, max_value=20_000),
)
def test_any_valid_policy_yields_a_verdict_never_an_exception(
    max_leverage: float | None,
    per_order: float | None,
    per_position: float | None,
    concentration: float | None,
    buffer_pct: float,
    safety_pct: float,
    horizon: float,
    stop_bps: float,
    band: float | None,
    degraded: bool,
    amount: int,
) -> None:
    limits = RiskLimits(
        max_leverage=max_leverage,
        max_notional_per_order=per_order,
        max_notional_per_position=per_position,
        max_concentration=concentration,
        min_liquidation_buffer_pct=buffer_pct,
        liquidation_safety_buffer_pct=safety_pct,
        funding_horizon_s=horizon,
        stop_slippage_bps=stop_bps,
        price_band_pct=band,
    )
    order = intent(amount=amount / 1000)
    verdict = run(order, limits=limits, degraded=degraded, size_search=True)
    assert verdict.decision in (Decision.ALLOW, Decision.WARN, Decision.DENY)
    if verdict.allowed:
        cost = verdict.costing
        assert cost is not None
        assert cost.stop_distance_pct is not None
        assert cost.stop_distance_pct >= buffer_pct
    assert verdict.max_safe_amount is not None
    assert verdict.max_safe_amount >= (order.amount if verdict.allowed else 0.0)
