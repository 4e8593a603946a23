"""The venues' published worked examples, to the cent, and the model registry."""

from __future__ import annotations

import math

import pytest

from safeguard.risk._liquidation import (
    MODELS,
    LiquidationModel,
    PositionLeg,
    get_model,
)
from safeguard.risk._tiers import BINANCE_BTCUSD_COINM_TIERS, TierTable

INF = math.inf

# The Binance brackets the published cross example was computed on (BTC tier 4: MMR 2.5 %,
# cum 16,300; ETH tier 6: MMR 10 %, cum 135,365). cum comes from the recurrence, so the
# example also checks that the recurrence reproduces Binance's published amounts.
BTCUSDT_2021 = TierTable.from_rows(
    [
        (0.0, 50e3, 0.004, 125.0),
        (50e3, 250e3, 0.005, 100.0),
        (250e3, 1e6, 0.01, 50.0),
        (1e6, 10e6, 0.025, 20.0),
        (10e6, 20e6, 0.05, 10.0),
        (20e6, 50e6, 0.1, 5.0),
        (50e6, 100e6, 0.125, 4.0),
        (100e6, 200e6, 0.15, 3.0),
        (200e6, 300e6, 0.25, 2.0),
        (300e6, INF, 0.5, 1.0),
    ]
)
ETHUSDT_2021 = TierTable.from_rows(
    [
        (0.0, 10e3, 0.005, 100.0),
        (10e3, 100e3, 0.0065, 75.0),
        (100e3, 500e3, 0.01, 50.0),
        (500e3, 1e6, 0.02, 25.0),
        (1e6, 2e6, 0.05, 10.0),
        (2e6, 5e6, 0.1, 5.0),
        (5e6, 10e6, 0.125, 4.0),
        (10e6, 20e6, 0.15, 3.0),
        (20e6, INF, 0.25, 2.0),
    ]
)

WALLET = 1_535_443.01
BTC = PositionLeg("BTC/USDT:USDT", 1, 109.488, 32_481.98, 31_967.27, BTCUSDT_2021)
ETH = PositionLeg("ETH/USDT:USDT", 1, 3_683.979, 1_456.84, 1_335.18, ETHUSDT_2021)


def test_published_cum_amounts_come_out_of_the_recurrence() -> None:
    assert BTCUSDT_2021.tiers[3].cum == 16_300.0
    assert ETHUSDT_2021.tiers[5].cum == 135_365.0


@pytest.mark.parametrize("model", ["binanceusdm", "generic"])
def test_binance_cross_one_way_example(model: str) -> None:
    solver = get_model(model)
    btc = solver.liquidation_price(BTC, wallet_balance=WALLET, others=[ETH])
    eth = solver.liquidation_price(ETH, wallet_balance=WALLET, others=[BTC])
    assert round(btc.price or 0.0, 2) == 26_316.89
    assert round(eth.price or 0.0, 2) == 1_153.26
    # The tier is the one containing the notional at the liquidation price, not at the mark.
    assert btc.tier is not None
    assert btc.tier.maintenance_margin_rate == 0.025
    assert eth.tier is not None
    assert (eth.tier.maintenance_margin_rate, eth.tier.cum) == (
        0.1,
        135_365.0,
    )
    assert btc.model == model
    assert not btc.already_liquidatable


@pytest.mark.parametrize("model", ["binancecoinm", "generic"])
def test_binance_coinm_calculator_example(model: str) -> None:
    # 100,000 BTCUSD contracts of 100 USD at 45,000 on a 101 BTC wallet.
    leg = PositionLeg(
        "BTC/USD:BTC", 1, 100_000 * 100.0, 45_000.0, 45_000.0, BINANCE_BTCUSD_COINM_TIERS,
        inverse=True,
    )  # fmt: skip
    result = get_model(model).liquidation_price(leg, wallet_balance=101.0)
    assert round(result.price or 0.0, 1) == 33_599.4
    assert result.tier is not None
    assert (result.tier.maintenance_margin_rate, result.tier.cum) == (
        0.125,
        pytest.approx(11.605),
    )


def test_bybit_isolated_example() -> None:
    # Long 1 BTC at 20,000 with 50x: IM 400, MM 100 at MMR 0.5 %.
    table = TierTable.from_rows([(0.0, 2e6, 0.005, 100.0)])
    leg = PositionLeg("BTC/USDT:USDT", 1, 1.0, 20_000.0, 20_000.0, table, isolated_wallet=400.0)
    result = get_model("bybit").liquidation_price(leg, wallet_balance=0.0)
    assert round(result.price or 0.0, 2) == 19_700.00
    short = PositionLeg(
        "BTC/USDT:USDT", -1, 1.0, 20_000.0, 20_000.0, table, "SHORT", isolated_wallet=400.0
    )
    assert round(get_model("bybit").liquidation_price(short, wallet_balance=0.0).price or 0, 2) == (
        20_300.00
    )


def test_registry() -> None:
    assert set(MODELS) == {
        "binanceusdm", "binancecoinm", "bybit", "okx", "gate", "bitget", "generic",
    }  # fmt: skip
    for name, model in MODELS.items():
        assert isinstance(model, LiquidationModel)
        assert model.name == name
        assert get_model(name) is model
    with pytest.raises(ValueError, match="unknown liquidation model 'binance'"):
        get_model("binance")
    with pytest.raises(TypeError):
        MODELS["x"] = MODELS["generic"]  # type: ignore[index]


def test_the_module_docstring_example_holds() -> None:
    import doctest

    from safeguard.risk import _liquidation as liquidation

    outcome = doctest.testmod(liquidation)
    assert outcome.attempted > 0
    assert outcome.failed == 0
