"""The pre-trade checks at their edges: exactly on a bound, a hair past it, nothing left.

Each case is a verdict a bot would get, built on the sample BTCUSDT market: the decision and
what the finding reports, where a check's comparison or arithmetic decides it.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._outcome import Verdict
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL

from .verdict_cases import LONG, account, intent, market, rules, run

NO_BAND: dict[str, Any] = {"price_band_pct": None}
FILTERED = market(rules=rules(min_price=50_000.0, max_price=70_000.0))
NO_CAPS: dict[str, Any] = {
    "max_leverage": None,
    "max_notional_per_order": None,
    "max_notional_per_position": None,
    "max_notional_per_account": None,
    "require_stop": False,
    **NO_BAND,
}


def found(verdict: Verdict, code: str) -> list[Any]:
    return [f for f in verdict.findings if str(f.code) == code]


# --- the venue's price filter ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "stop"),
    [("sell", 50_000.0, 61_000.0), ("buy", 70_000.0, 58_000.0)],
    ids=["minimum", "maximum"],
)
def test_a_limit_price_exactly_on_the_markets_price_bound_passes(
    side: str, price: float, stop: float
) -> None:
    verdict = run(
        intent(type="limit", side=side, price=price, stop_price=stop), FILTERED, **NO_BAND
    )
    assert found(verdict, "PRICE_FILTER") == []
    assert verdict.allowed, verdict.findings


@pytest.mark.parametrize(
    ("side", "price", "stop", "bound"),
    [("sell", 49_999.9, 61_000.0, 50_000.0), ("buy", 70_000.1, 58_000.0, 70_000.0)],
    ids=["below-minimum", "above-maximum"],
)
def test_a_limit_price_one_tick_past_the_markets_price_bound_is_refused(
    side: str, price: float, stop: float, bound: float
) -> None:
    verdict = run(
        intent(type="limit", side=side, price=price, stop_price=stop), FILTERED, **NO_BAND
    )
    [finding] = found(verdict, "PRICE_FILTER")
    assert (str(finding.severity), finding.values["price"], finding.values["bound"]) == (
        "DENY",
        price,
        bound,
    )
    assert not verdict.allowed


# --- concentration -----------------------------------------------------------------------------


def test_concentration_is_measured_on_the_equity_left_after_the_entry_fee() -> None:
    # 0.1 BTC at a 60,000 mark is 6,000: exactly 60% of a 10,000 wallet, but more than 60% of
    # what is left once the entry fee is paid. A cap of 60% denies it.
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.1)
    verdict = run(order, market(), "default", max_concentration=0.6, **NO_BAND)
    [finding] = found(verdict, "CONCENTRATION")
    fee = 10_000.0 - finding.values["equity"]
    assert 0.0 < fee < 10.0
    assert finding.values["share"] == pytest.approx(6_000.0 / (10_000.0 - fee))
    assert not verdict.allowed


def test_an_account_the_entry_fee_leaves_without_equity_is_wholly_concentrated() -> None:
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.1)
    verdict = run(order, market(), account(wallet_balance=1.0), max_concentration=0.6, **NO_BAND)
    [finding] = found(verdict, "CONCENTRATION")
    assert finding.values["equity"] < 0.0
    assert finding.values["share"] == math.inf
    assert str(finding.severity) == "DENY"


# --- the wallet, the tiers and the stop's close -----------------------------------------------


def test_a_wallet_short_by_less_than_one_usdt_is_still_short() -> None:
    # A 1 USDT wallet cannot pay the 1.18 USDT entry fee: 0.18 short.
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.1)
    verdict = run(order, market(), account(wallet_balance=1.0), **NO_BAND)
    shortfalls = [f for f in found(verdict, "INSUFFICIENT_MARGIN") if "shortfall" in f.values]
    assert [f.values["shortfall"] for f in shortfalls] == [pytest.approx(0.18)]
    assert str(shortfalls[0].severity) == "DENY"


def test_a_position_beyond_the_last_leverage_tier_is_denied_with_its_notional() -> None:
    # 29,900 BTC held and 500 more: 1.824 billion, past the last tier's 1.8 billion.
    held = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=29_900.0,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
    )
    order = intent(type="limit", price=60_000.0, amount=500.0, stop_price=None, leverage=1.0,
                   margin_mode="cross")  # fmt: skip
    rich = account(wallet_balance=1e13, available_balance=1e13, positions=(held,))
    verdict = run(order, market(), rich, **NO_CAPS)
    [finding] = found(verdict, "LEVERAGE_ABOVE_TIER")
    assert str(finding.severity) == "DENY"
    assert finding.values == {"notional": pytest.approx(30_400 * 60_000.0)}
    assert not verdict.allowed


@pytest.mark.parametrize(("opening", "severity"), [(True, "DENY"), (False, "WARN")])
def test_a_stop_whose_close_the_book_cannot_fill_denies_an_opening_order_and_warns_on_a_close(
    opening: bool, severity: str
) -> None:
    # A 400 BTC long: the visible book holds far less than its stop's close. Adding to it is
    # denied; trimming it (the stop still has to close what is left) only warns.
    held = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=400.0,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
    )
    order = intent(side="buy" if opening else "sell", amount=1.0, leverage=1.0,
                   stop_price=58_000.0 if opening else 61_000.0, margin_mode="cross")  # fmt: skip
    rich = account(wallet_balance=1e9, available_balance=1e9, positions=(held,))
    verdict = run(order, market(), rich, **NO_CAPS)
    stop_close = [f for f in found(verdict, "INSUFFICIENT_DEPTH") if set(f.values) == {"unfilled"}]
    assert [str(f.severity) for f in stop_close] == [severity]
    assert stop_close[0].values["unfilled"] > 0.0


# --- the stop's side --------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [59_000.0, 59_000.5], ids=["at-entry", "half-a-dollar-above"])
def test_a_buys_stop_at_or_above_its_expected_entry_is_on_the_wrong_side(stop: float) -> None:
    verdict = run(intent(type="limit", price=59_000.0, stop_price=stop), market(), **NO_BAND)
    [finding] = found(verdict, "STOP_WRONG_SIDE")
    assert finding.values == {"stop_price": stop, "expected_entry": 59_000.0}
    assert not verdict.allowed


def test_a_concentration_warning_level_without_a_cap_still_warns() -> None:
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.1)
    verdict = run(
        order, market(), "default", max_concentration=None, concentration_warning=0.5, **NO_BAND
    )
    [finding] = found(verdict, "CONCENTRATION")
    assert str(finding.severity) == "WARN"
    assert finding.values["warning"] == 0.5


def test_an_order_that_only_reduces_is_not_held_to_the_concentration_cap() -> None:
    # Long 0.2 BTC (12,000 at the mark) on 10,000: 1.2x equity, far past a 0.5x cap. Selling
    # 0.1 of it lowers the concentration: no concentration finding.
    held = PositionLeg(
        symbol=SYMBOL,
        side=1,
        quantity=0.2,
        entry_price=60_000.0,
        mark_price=60_000.0,
        tiers=BTCUSDT_TIERS_12,
    )
    order = intent(
        type="limit", side="sell", price=61_000.0, stop_price=None, amount=0.1, margin_mode="cross"
    )
    verdict = run(
        order,
        market(),
        account(positions=(held,), available_balance=8_800.0),
        max_concentration=0.5,
        concentration_warning=0.4,
        **NO_BAND,
    )
    assert found(verdict, "CONCENTRATION") == []
    assert verdict.allowed, verdict.findings


# --- the venue's percent-price filter (a limit's distance from the mark) ----------------------

BANDED = market(rules=rules(percent_price=(0.95, 1.05)))  # Binance's multiplierDown / Up


@pytest.mark.parametrize(
    ("side", "price", "stop"),
    [("buy", 63_000.0, 58_000.0), ("sell", 57_000.0, 62_000.0)],
    ids=["buy-at-the-cap", "sell-at-the-floor"],
)
def test_a_limit_exactly_on_the_percent_price_bound_passes(
    side: str, price: float, stop: float
) -> None:
    verdict = run(intent(type="limit", side=side, price=price, stop_price=stop), BANDED, **NO_CAPS)
    assert found(verdict, "PRICE_FILTER") == []


@pytest.mark.parametrize(
    ("side", "price", "stop", "bound", "words"),
    [
        ("buy", 63_000.1, 58_000.0, 63_000.0, "above the venue's cap of 105 % of the mark"),
        ("sell", 56_999.9, 62_000.0, 57_000.0, "below the venue's floor of 95 % of the mark"),
    ],
    ids=["buy-above-the-cap", "sell-below-the-floor"],
)
def test_a_limit_past_the_percent_price_bound_is_refused_with_the_bound(
    side: str, price: float, stop: float, bound: float, words: str
) -> None:
    verdict = run(intent(type="limit", side=side, price=price, stop_price=stop), BANDED, **NO_CAPS)
    [finding] = found(verdict, "PRICE_FILTER")
    assert str(finding.severity) == "DENY"
    assert finding.values == {"price": price, "bound": pytest.approx(bound), "mark": 60_000.0}
    assert words in finding.message


@pytest.mark.parametrize(
    ("side", "price", "stop"),
    [("buy", 50_000.0, 49_000.0), ("sell", 70_000.0, 71_000.0)],
    ids=["buy-far-below", "sell-far-above"],
)
def test_the_percent_price_filter_binds_each_side_in_its_own_direction_only(
    side: str, price: float, stop: float
) -> None:
    # A buy far under the mark, or a sell far over it, only rests: the venue takes it.
    verdict = run(intent(type="limit", side=side, price=price, stop_price=stop), BANDED, **NO_CAPS)
    assert found(verdict, "PRICE_FILTER") == []


# --- the stop's own price filter --------------------------------------------------------------


def test_a_stop_under_the_markets_minimum_price_denies_the_order_that_opens_it() -> None:
    low_floor = market(rules=rules(min_price=50_000.0))
    verdict = run(intent(stop_price=49_000.0), low_floor, **NO_CAPS)
    [finding] = found(verdict, "PRICE_FILTER")
    assert str(finding.severity) == "DENY"
    assert finding.values == {"stop_price": 49_000.0, "bound": 50_000.0}
    assert not verdict.allowed


def test_a_stop_the_venue_would_refuse_only_warns_on_an_order_that_reduces() -> None:
    low_floor = market(rules=rules(min_price=50_000.0))
    close = intent(side="sell", amount=0.5, reduce_only=True, stop_price=70_000.0)
    held = account(positions=(LONG,), available_balance=4_000.0)
    ceiling = market(rules=rules(max_price=65_000.0))
    [finding] = found(run(close, ceiling, held, **NO_CAPS), "PRICE_FILTER")
    assert str(finding.severity) == "WARN"
    assert finding.values == {"stop_price": 70_000.0, "bound": 65_000.0}
    assert found(run(close, low_floor, held, **NO_CAPS), "PRICE_FILTER") == []


# --- a stop that would trigger the moment it is placed ----------------------------------------


def test_a_stop_watching_the_last_price_is_judged_against_the_last_price() -> None:
    # The last trade at 59,000 and the mark at 60,000: a long's stop at 59,500 is under the
    # mark but already over the last price its trigger watches.
    lagging = market(last=59_000.0)
    on_last = run(intent(stop_price=59_500.0, stop_trigger="last"), lagging, **NO_CAPS)
    [finding] = [f for f in found(on_last, "STOP_WRONG_SIDE") if "watched_price" in f.values]
    assert finding.values == {"stop_price": 59_500.0, "watched_price": 59_000.0}
    on_mark = run(intent(stop_price=59_500.0, stop_trigger="mark"), lagging, **NO_CAPS)
    assert [f for f in found(on_mark, "STOP_WRONG_SIDE") if "watched_price" in f.values] == []


def test_a_position_of_exactly_one_contract_has_its_stop_checked() -> None:
    verdict = run(intent(amount=1.0, stop_price=60_500.0), market(), **NO_CAPS)
    assert [f for f in found(verdict, "STOP_WRONG_SIDE") if "watched_price" in f.values]


def test_a_shorts_stop_exactly_at_the_mark_would_trigger_at_once() -> None:
    verdict = run(intent(side="sell", stop_price=60_000.0), market(), **NO_CAPS)
    [finding] = [f for f in found(verdict, "STOP_WRONG_SIDE") if "watched_price" in f.values]
    assert finding.values == {"stop_price": 60_000.0, "watched_price": 60_000.0}


def test_a_reducing_orders_stop_through_the_mark_only_warns() -> None:
    close = intent(side="sell", amount=0.5, reduce_only=True, stop_price=60_500.0)
    verdict = run(close, market(), account(positions=(LONG,), available_balance=4_000.0), **NO_CAPS)
    [finding] = [f for f in found(verdict, "STOP_WRONG_SIDE") if "watched_price" in f.values]
    assert str(finding.severity) == "WARN"


# --- caps by margin mode, and switched-off limits ---------------------------------------------


def test_an_isolated_cap_applies_when_the_general_cap_is_switched_off() -> None:
    caps = {**NO_CAPS, "isolated_max_leverage": 5.0}
    assert "LEVERAGE_ABOVE_POLICY" in {str(f.code) for f in run(intent(), **caps).denials}


def test_a_looser_isolated_cap_does_not_loosen_the_general_one() -> None:
    caps = {**NO_CAPS, "max_leverage": 5.0, "isolated_max_leverage": 50.0}
    assert "LEVERAGE_ABOVE_POLICY" in {str(f.code) for f in run(intent(), **caps).denials}


def test_without_an_open_order_limit_a_resting_order_is_not_counted() -> None:
    resting = intent(type="limit", price=59_000.0, stop_price=58_000.0)
    verdict = run(resting, market(), **{**NO_CAPS, "max_open_orders": None})
    assert found(verdict, "OPEN_ORDER_COUNT") == []
    assert verdict.allowed, verdict.findings


def test_a_concentration_warning_reports_the_share_and_the_equity_it_was_measured_on() -> None:
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.1)
    verdict = run(order, market(), "default", concentration_warning=0.5, **NO_BAND)
    [finding] = found(verdict, "CONCENTRATION")
    equity = 10_000.0 - verdict.costing.entry_fee
    assert finding.values == {
        "share": pytest.approx(6_000.0 / equity),
        "equity": pytest.approx(equity),
        "warning": 0.5,
    }


def test_a_tiny_positive_equity_is_divided_not_taken_for_none() -> None:
    order = intent(type="limit", price=59_000.0, stop_price=58_000.0, amount=0.001)
    fee = run(order, market(), **NO_BAND).costing.entry_fee
    verdict = run(
        order, market(), account(wallet_balance=0.5 + fee), max_concentration=0.6, **NO_BAND
    )
    [finding] = found(verdict, "CONCENTRATION")
    assert finding.values["share"] == pytest.approx(60.0 / 0.5)
