"""Tier tables: loading from ccxt, the cum recurrence, refusal of broken ladders, look-ups."""

from __future__ import annotations

import math
from typing import Any

import ccxt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from safeguard._errors import ConfigError
from safeguard.risk._tiers import (
    BINANCE_BTCUSD_COINM_TIERS,
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
    Tier,
    TierTable,
    TierTableError,
)

from .strategies import tier_tables

# Binance's raw /fapi/v1/leverageBracket answer for the reference BTCUSDT ladder.
RAW_BTCUSDT_BRACKETS: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "brackets": [
        {"bracket": 1, "initialLeverage": 150, "notionalCap": 300000, "notionalFloor": 0,
         "maintMarginRatio": 0.004, "cum": 0.0},
        {"bracket": 2, "initialLeverage": 100, "notionalCap": 800000, "notionalFloor": 300000,
         "maintMarginRatio": 0.005, "cum": 300.0},
        {"bracket": 3, "initialLeverage": 75, "notionalCap": 3000000, "notionalFloor": 800000,
         "maintMarginRatio": 0.0065, "cum": 1500.0},
        {"bracket": 4, "initialLeverage": 50, "notionalCap": 12000000, "notionalFloor": 3000000,
         "maintMarginRatio": 0.01, "cum": 12000.0},
        {"bracket": 5, "initialLeverage": 25, "notionalCap": 70000000, "notionalFloor": 12000000,
         "maintMarginRatio": 0.02, "cum": 132000.0},
    ],
}  # fmt: skip


def ccxt_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = ccxt.binanceusdm().parse_market_leverage_tiers(
        RAW_BTCUSDT_BRACKETS
    )
    return rows


def test_real_ccxt_binance_rows_load_to_the_reference_ladder() -> None:
    table = TierTable.from_ccxt(ccxt_rows())
    assert table.tiers == BINANCE_BTCUSDT_TIERS.tiers
    assert [t.cum for t in table] == [0.0, 300.0, 1500.0, 12000.0, 132000.0]
    assert [t.tier for t in table] == [1, 2, 3, 4, 5]


def test_real_ccxt_okx_rows_without_cum_get_it_from_the_recurrence() -> None:
    raw = [
        {"tier": "1", "minSz": "0", "maxSz": "500", "mmr": "0.01", "maxLever": "50"},
        {"tier": "2", "minSz": "500", "maxSz": "1000", "mmr": "0.015", "maxLever": "25"},
        {"tier": "3", "minSz": "1000", "maxSz": "2000", "mmr": "0.02", "maxLever": "20"},
    ]
    table = TierTable.from_ccxt(ccxt.okx().parse_market_leverage_tiers(raw, None))
    assert [t.cum for t in table] == pytest.approx([0.0, 2.5, 7.5])
    assert table.maintenance_margin(1500.0) == pytest.approx(1500.0 * 0.02 - 7.5)


def test_bybit_mm_deduction_is_read_as_cum() -> None:
    rows = [
        {"tier": 1, "minNotional": 0, "maxNotional": 2_000_000, "maintenanceMarginRate": 0.005,
         "maxLeverage": 100, "info": {"mmDeduction": "0"}},
        {"tier": 2, "minNotional": 2_000_000, "maxNotional": 4_000_000,
         "maintenanceMarginRate": 0.01, "maxLeverage": 50, "info": {"mmDeduction": "10000"}},
    ]  # fmt: skip
    assert [t.cum for t in TierTable.from_ccxt(rows)] == [0.0, 10_000.0]


def test_to_ccxt_round_trips() -> None:
    for table in (BINANCE_BTCUSDT_TIERS, BINANCE_BTCUSD_COINM_TIERS):
        rows = table.to_ccxt(symbol="X")
        assert TierTable.from_ccxt(rows) == table
    assert BINANCE_BTCUSD_COINM_TIERS.to_ccxt()[-1]["maxNotional"] is None


def test_shipped_ladders_satisfy_the_recurrence() -> None:
    # Construction validates; re-loading with the check on proves the published cum values hold.
    for table in (BINANCE_ETHUSDT_TIERS, BINANCE_SOLUSDT_TIERS, BINANCE_BTCUSD_COINM_TIERS):
        TierTable.from_ccxt(table.to_ccxt(), check_cum=True)
    assert BINANCE_BTCUSD_COINM_TIERS.tiers[6].maintenance_margin_rate == 0.125
    assert BINANCE_BTCUSD_COINM_TIERS.tiers[6].cum == pytest.approx(11.605)


@pytest.mark.parametrize(
    ("notional", "tier"),
    [(0.0, 1), (299_999.99, 1), (300_000.0, 2), (799_999.0, 2), (3e6, 4), (70_000_000.0, 5)],
)
def test_tier_for_notional_is_half_open_with_the_higher_tier_at_a_boundary(
    notional: float, tier: int
) -> None:
    assert BINANCE_BTCUSDT_TIERS.tier_for_notional(notional).tier == tier


def test_lookups() -> None:
    table = BINANCE_BTCUSDT_TIERS
    assert table.max_leverage_at(100_000.0) == 150.0
    assert table.max_leverage_at(300_000.0) == 100.0
    assert table.maintenance_margin(1_000_000.0) == pytest.approx(1_000_000 * 0.0065 - 1500)
    # Continuity: both sides of each boundary give the same maintenance margin.
    for lower, upper in zip(table.tiers, table.tiers[1:], strict=False):
        edge = upper.min_notional
        assert lower.maintenance_margin(edge) == pytest.approx(upper.maintenance_margin(edge))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0, 70_000_001.0, "1", True, None])
def test_lookup_refuses_bad_notionals(bad: Any) -> None:
    with pytest.raises(ValueError, match="notional"):
        BINANCE_BTCUSDT_TIERS.tier_for_notional(bad)


def _rows() -> list[dict[str, Any]]:
    return BINANCE_BTCUSDT_TIERS.to_ccxt()


def _broken(mutate: Any) -> list[dict[str, Any]]:
    rows = _rows()
    mutate(rows)
    return rows


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[2].update(tier=1), r"tier 1: tier is out of order \(it follows tier 2\)"),
        (lambda r: r[2].update(minNotional=900_000.0), "tier 3: minNotional .* gap or an overlap"),
        (lambda r: r[2].update(minNotional=700_000.0), "tier 3: minNotional .* gap or an overlap"),
        (lambda r: r[0].update(minNotional=10.0), "tier 1: minNotional of the first tier"),
        (lambda r: r[3].update(maintenanceMarginRate=1.5), r"tier 4: maintenanceMar.*\(0, 1\)"),
        (lambda r: r[3].update(maintenanceMarginRate=0.0), "tier 4: maintenanceMarginRate"),
        (lambda r: r[3].update(maintenanceMarginRate=math.nan), "tier 4: maintenanceMarginRate"),
        (lambda r: r[3].update(maintenanceMarginRate=0.003), "tier 4: .* below the previous"),
        (lambda r: r[1].update(maxLeverage=150.5), "tier 2: maxLeverage .* exceeds"),
        (lambda r: r[0].update(maxLeverage=300.0), "tier 1: .* born liquidated"),
        (lambda r: r[1].update(maxLeverage=0.5), "tier 2: maxLeverage must be >= 1"),
        (lambda r: r[2]["info"].update(cum="1600"), r"tier 3: cum is 1600.0 .* gives 1500 "),
        (lambda r: r[0]["info"].update(cum="5"), "tier 1: cum of the first tier must be 0"),
        (lambda r: r[2]["info"].pop("cum"), "tier 3: cum is published for some tiers"),
        (lambda r: r[1].update(maxNotional=None), "tier 2: maxNotional is missing"),
        (lambda r: r[1].update(maxNotional=math.inf), "tier 2: maxNotional is infinite"),
        (lambda r: r[1].update(maintenanceMarginRate="abc"), "tier 2: .* must be a number"),
        (lambda r: r[1].pop("maxLeverage"), "tier 2: maxLeverage is missing"),
        (lambda r: r[1].update(tier=1.5), r"tiers\[1\]: tier number must be"),
        (lambda r: r.clear(), "at least one tier"),
    ],
)  # fmt: skip
def test_broken_tables_are_refused_naming_the_tier(mutate: Any, message: str) -> None:
    with pytest.raises(TierTableError, match=message) as caught:
        TierTable.from_ccxt(_broken(mutate))
    assert isinstance(caught.value, ConfigError)


def test_broken_cum_is_accepted_only_when_the_check_is_off() -> None:
    rows = _broken(lambda r: r[2]["info"].update(cum="1600"))
    table = TierTable.from_ccxt(rows, check_cum=False)
    assert table.tiers[2].cum == 1600.0


def test_percentages_passed_as_rates_are_refused() -> None:
    # Bybit's older API answered "maintenanceMargin": "0.5" meaning 0.5 %.
    rows = [{"tier": 1, "minNotional": 0, "maxNotional": 150, "maintenanceMarginRate": 0.5,
             "maxLeverage": 100, "info": {}}]  # fmt: skip
    with pytest.raises(TierTableError, match="born liquidated"):
        TierTable.from_ccxt(rows)


@pytest.mark.parametrize("rows", ["abc", {"tier": 1}, [1, 2]])
def test_wrong_shapes_are_refused(rows: Any) -> None:
    with pytest.raises(TierTableError, match=r"tier rows must be a list|tiers\[0\] must be a dict"):
        TierTable.from_ccxt(rows)


def test_from_rows_refuses_wrong_tuples() -> None:
    with pytest.raises(TierTableError, match=r"rows\[0\]"):
        TierTable.from_rows([(0.0, 1.0, 0.01)])  # type: ignore[list-item]


def test_table_is_immutable_and_tiers_validate_themselves() -> None:
    with pytest.raises(AttributeError):
        BINANCE_BTCUSDT_TIERS.tiers = ()  # type: ignore[misc]
    with pytest.raises(TierTableError, match="tier 2: cum must be finite"):
        Tier(2, 0.0, 1.0, 0.01, 10.0, math.nan)


def test_tier_table_error_pickles_with_its_attributes() -> None:
    import pickle

    with pytest.raises(TierTableError) as caught:
        TierTable.from_ccxt(_broken(lambda r: r[2]["info"].update(cum="1600")))
    clone = pickle.loads(pickle.dumps(caught.value))
    assert (clone.tier, clone.key, str(clone)) == (3, "cum", str(caught.value))


@given(tier_tables())
def test_random_valid_tables_give_continuous_monotone_maintenance(table: TierTable) -> None:
    previous = -math.inf
    for lower, upper in zip(table.tiers, table.tiers[1:], strict=False):
        edge = upper.min_notional
        left, right = lower.maintenance_margin(edge), upper.maintenance_margin(edge)
        assert math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-9 * edge)
        assert right >= previous
        previous = right
    assert TierTable.from_ccxt(table.to_ccxt()) == table


def test_a_ladder_remembers_its_market_and_refuses_mixed_markets() -> None:
    rows = BINANCE_BTCUSDT_TIERS.to_ccxt(symbol="BTC/USDT:USDT")
    assert TierTable.from_ccxt(rows).symbol == "BTC/USDT:USDT"
    rows[3]["symbol"] = "ETH/USDT:USDT"
    with pytest.raises(TierTableError, match="tier 4: symbol is 'ETH/USDT:USDT' but earlier"):
        TierTable.from_ccxt(rows)
    # ccxt without loaded markets reports the raw id, which names no unified market.
    assert TierTable.from_ccxt(ccxt_rows()).symbol is None


@given(tier_tables(), st.floats(0.0, 1.0), st.booleans())
def test_locate_agrees_with_the_checked_lookup_and_reads_boundaries_both_ways(
    table: TierTable, fraction: float, on_edge: bool
) -> None:
    tiers = table.tiers
    top = tiers[-1].min_notional * 2.0 + 1.0
    if on_edge:
        size = tiers[int(fraction * (len(tiers) - 1))].min_notional
    else:
        size = fraction * min(top, tiers[-1].max_notional)
    index = table.locate(size)
    assert tiers[index] == table.tier_for_notional(size)
    assert tiers[index].min_notional <= size < tiers[index].max_notional or index == len(tiers) - 1
    lower = table.locate(size, lower_at_boundary=True)
    if size > 0.0:
        assert tiers[lower].min_notional < size <= tiers[lower].max_notional
    else:
        assert lower == 0


def test_scaled_converts_units_and_refuses_nonsense() -> None:
    table = TierTable.from_rows(
        [(0.0, 500.0, 0.004, 100.0), (500.0, 1_000.0, 0.006, 75.0)],
        keyed_by="quantity",
        symbol="BTC/USDT:USDT",
    )
    scaled = table.scaled(0.01)
    assert (scaled.keyed_by, scaled.symbol) == ("quantity", "BTC/USDT:USDT")
    assert [t.cum for t in scaled] == pytest.approx([0.0, 0.01])
    assert scaled.maintenance_margin(6.0) == pytest.approx(table.maintenance_margin(600.0) * 0.01)
    for bad in (0.0, -1.0, math.nan, math.inf, True, "2"):
        with pytest.raises(ValueError, match="factor"):
            table.scaled(bad)  # type: ignore[arg-type]


def test_table_level_fields_are_checked() -> None:
    tiers = BINANCE_BTCUSDT_TIERS.tiers
    with pytest.raises(TierTableError, match="keyed_by"):
        TierTable(tiers, keyed_by="price")  # type: ignore[arg-type]
    with pytest.raises(TierTableError, match="symbol"):
        TierTable(tiers, symbol="")
    with pytest.raises(TierTableError, match="tuple of Tier"):
        TierTable(list(tiers))  # type: ignore[arg-type]
    assert len(BINANCE_BTCUSDT_TIERS) == 5
    assert list(BINANCE_BTCUSDT_TIERS) == list(tiers)


def test_real_ccxt_bybit_rows_with_an_empty_first_deduction() -> None:
    raw = [
        {"id": 1, "symbol": "BTCUSDT", "riskLimitValue": "2000000", "maintenanceMargin": "0.005",
         "initialMargin": "0.01", "isLowestRisk": 1, "maxLeverage": "100.00", "mmDeduction": ""},
        {"id": 2, "symbol": "BTCUSDT", "riskLimitValue": "4000000", "maintenanceMargin": "0.01",
         "initialMargin": "0.02", "isLowestRisk": 0, "maxLeverage": "50.00",
         "mmDeduction": "10000"},
    ]  # fmt: skip
    table = TierTable.from_ccxt(ccxt.bybit().parse_market_leverage_tiers(raw, None))
    assert [(t.min_notional, t.max_notional, t.cum) for t in table] == [
        (0.0, 2e6, 0.0),
        (2e6, 4e6, 10_000.0),
    ]
