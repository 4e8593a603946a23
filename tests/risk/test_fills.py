"""The fill model's two faces: what an order costs on a calm venue and on a sick one."""

from __future__ import annotations

import math

import pytest

from safeguard._config import FillModelConfig
from safeguard.risk._book import OrderBook
from safeguard.risk._fills import FillFace, FillModel, FillTerms

WINDOW = 3600.0


def book() -> OrderBook:
    # bid 100, ask 101, 1 unit per level, 1 apart
    return OrderBook(
        bids=tuple((100.0 - i, 1.0) for i in range(10)),
        asks=tuple((101.0 + i, 1.0) for i in range(10)),
    )


CONFIG = FillModelConfig(
    maker_fee=0.0002,
    taker_fee=0.0005,
    degraded_taker_for_maker=True,
    degraded_slippage_multiplier=3.0,
    degraded_depth_haircut=0.5,
    degraded_latency_s=4.0,
    drift_sigmas=2.0,
)
MODEL = FillModel.from_config(CONFIG)


def test_expected_market_buy_pays_the_walk_and_the_taker_fee() -> None:
    fill = MODEL.expected.entry(
        book(), "buy", 2.0, limit_price=None, volatility=0.01, window_s=WINDOW
    )
    assert fill.price == pytest.approx(101.5)
    assert fill.fee_rate == 0.0005
    assert fill.fee == pytest.approx(2.0 * 101.5 * 0.0005)
    assert fill.effective_price == pytest.approx(101.5 * 1.0005)
    assert fill.drift_bps == 0.0
    assert fill.face is FillFace.EXPECTED


def test_expected_resting_limit_pays_maker_at_its_limit() -> None:
    fill = MODEL.expected.entry(
        book(), "buy", 3.0, limit_price=99.0, volatility=0.01, window_s=WINDOW
    )
    assert fill.price == 99.0
    assert fill.fee_rate == 0.0002
    assert fill.taken == 0.0


def test_marketable_limit_takes_up_to_its_limit_and_rests_the_rest() -> None:
    fill = MODEL.expected.entry(
        book(), "buy", 3.0, limit_price=101.0, volatility=0.01, window_s=WINDOW
    )
    assert fill.taken == pytest.approx(1.0)
    assert fill.price == pytest.approx(101.0)
    assert fill.fee_rate == pytest.approx((101 * 0.0005 + 2 * 101 * 0.0002) / (3 * 101))


def test_degraded_face_is_worse_on_every_count() -> None:
    args = {"limit_price": None, "volatility": 0.01, "window_s": WINDOW}
    calm = MODEL.expected.entry(book(), "sell", 2.0, **args)  # type: ignore[arg-type]
    sick = MODEL.degraded.entry(book(), "sell", 2.0, **args)  # type: ignore[arg-type]
    # haircut 0.5: 0.5 @ 100, 0.5 @ 99, 0.5 @ 98, 0.5 @ 97 -> avg 98.5, 150 bps vs touch, x3
    assert sick.slippage_bps == pytest.approx(3 * 150.0)
    drift = 2.0 * 0.01 * math.sqrt(4.0 / WINDOW)
    assert sick.drift_bps == pytest.approx(drift * 1e4)
    assert sick.price == pytest.approx(100.0 * (1 - 0.045) * (1 - drift))
    assert sick.price < calm.price


def test_degraded_maker_order_pays_taker_but_never_crosses_its_limit() -> None:
    sick = MODEL.degraded.entry(
        book(), "buy", 1.0, limit_price=99.0, volatility=0.05, window_s=WINDOW
    )
    assert sick.fee_rate == 0.0005
    assert sick.price == 99.0
    marketable = MODEL.degraded.entry(
        book(), "buy", 3.0, limit_price=102.0, volatility=0.05, window_s=WINDOW
    )
    assert marketable.price <= 102.0


def test_market_order_beyond_depth_reports_unfilled() -> None:
    fill = MODEL.expected.entry(
        book(), "buy", 12.0, limit_price=None, volatility=0.01, window_s=WINDOW
    )
    assert fill.unfilled == pytest.approx(2.0)


def test_stop_exit_pays_policy_slippage_walk_and_taker() -> None:
    stop = MODEL.expected.stop_exit(
        book(),
        "sell",
        2.0,
        trigger_price=95.0,
        stop_slippage_bps=10.0,
        volatility=0.01,
        window_s=WINDOW,
    )
    walk_bps = 0.5 / 100.0 * 1e4
    assert stop.slippage_bps == pytest.approx(10.0 + walk_bps)
    assert stop.price == pytest.approx(95.0 * (1 - (10.0 + walk_bps) / 1e4))
    assert stop.effective_price == pytest.approx(stop.price * (1 - 0.0005))
    sick = MODEL.degraded.stop_exit(
        book(),
        "sell",
        2.0,
        trigger_price=95.0,
        stop_slippage_bps=10.0,
        volatility=0.01,
        window_s=WINDOW,
    )
    assert sick.effective_price < stop.effective_price


def test_short_stop_exit_buys_above_the_trigger() -> None:
    stop = MODEL.expected.stop_exit(
        book(),
        "buy",
        1.0,
        trigger_price=110.0,
        stop_slippage_bps=10.0,
        volatility=0.01,
        window_s=WINDOW,
    )
    assert stop.price == pytest.approx(110.0 * 1.001)
    assert stop.effective_price > stop.price


def test_config_parameters_flow_into_both_faces() -> None:
    assert MODEL.terms(FillFace.EXPECTED).resting_fee == 0.0002
    assert MODEL.terms(FillFace.DEGRADED).resting_fee == 0.0005
    assert MODEL.degraded.slippage_multiplier == 3.0
    assert MODEL.degraded.depth_haircut == 0.5
    keep_maker = FillModel.from_config(
        CONFIG.model_copy(update={"degraded_taker_for_maker": False})
    )
    assert keep_maker.degraded.resting_fee == 0.0002
    assert FillModel.from_config().expected.taker_fee == FillModelConfig().taker_fee


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("slippage_multiplier", 0.5),
        ("depth_haircut", 1.0),
        ("latency_s", -1.0),
        ("taker_fee", math.nan),
        ("taker_for_maker", 1),
    ],
)
def test_fill_terms_refuse_nonsense(field: str, value: object) -> None:
    base = {
        "face": FillFace.DEGRADED,
        "maker_fee": 0.0,
        "taker_fee": 0.0,
        "taker_for_maker": True,
        "slippage_multiplier": 1.0,
        "depth_haircut": 0.0,
        "latency_s": 0.0,
        "drift_sigmas": 0.0,
    }
    base[field] = value
    with pytest.raises(ValueError, match=field):
        FillTerms(**base)  # type: ignore[arg-type]
