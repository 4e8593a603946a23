"""The hot path's fast constructors build the same objects the classes do."""

from __future__ import annotations

import dataclasses

import pytest

from safeguard.risk import _pricing as pricing
from safeguard.risk._fills import FillFace
from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import LiquidationOptions
from safeguard.risk._outcome import Costing, Finding
from safeguard.risk._trusted import trusted


def test_trusted_costing_equals_the_class_with_its_defaults() -> None:
    fields = {
        "face": FillFace.EXPECTED,
        "amount": 0.5,
        "expected_entry": 60_000.0,
        "entry_fee_rate": 0.0005,
        "entry_fee": 15.0,
        "order_notional": 30_000.0,
        "slippage_bps": 1.0,
        "initial_margin": 3_000.0,
        "liquidation_model": "binance_usdm",
        "liquidation_reason": "",
        "liquidation_price": 54_000.0,
    }
    fast, slow = trusted(Costing)(**fields), Costing(**fields)
    assert fast == slow
    assert hash(fast) == hash(slow)
    assert dataclasses.asdict(fast) == dataclasses.asdict(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.amount = 1.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        trusted(Costing)(amount=1.0)  # required fields stay required


def test_trusted_refuses_what_it_cannot_build() -> None:
    with pytest.raises(TypeError):
        trusted(Finding)  # a default_factory field
    with pytest.raises(TypeError):
        trusted(dict)  # type: ignore[arg-type]


def test_funding_and_options_validate_the_first_time_and_build_equal_objects() -> None:
    args = (0.0001, 28_800.0, 3_600.0, 1_700_000_100.0)
    first = pricing._funding_estimate(*args, 1_700_000_000.0)
    again = pricing._funding_estimate(*args, 1_700_000_050.0)
    assert again == FundingEstimate(*args, now=1_700_000_050.0)
    assert first.payments == again.payments == 1
    with pytest.raises(ValueError, match=r"funding\.rate"):
        pricing._funding_estimate(1.5, *args[1:], 1_700_000_000.0)
    with pytest.raises(ValueError, match=r"funding\.now"):
        pricing._funding_estimate(*args, -1.0)  # a known schedule still checks now
    options = pricing._liquidation_options(0.0005, 0.001, again)
    assert pricing._liquidation_options(0.0005, 0.001, again) == options
    assert options == LiquidationOptions(0.0005, 0.001, again)
    with pytest.raises(ValueError, match="closing_fee_rate"):
        pricing._liquidation_options(1.0, 0.001, None)
