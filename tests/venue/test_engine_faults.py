"""Market faults the engine stages (frozen feeds, spikes, new tiers) and wall-clock time."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard.risk._tiers import BINANCE_BTCUSDT_TIERS, TierTable
from safeguard.venue import Fill, Regime, Venue, VenueConfig, VenueReject


def config(**overrides: Any) -> VenueConfig:
    fields: dict[str, Any] = {"symbols": ("BTCUSDT",), "seed": 21}
    fields.update(overrides)
    return VenueConfig(**fields)


def view(venue: Venue) -> tuple[str, int, str, int]:
    ticker = venue.book_ticker("BTCUSDT")[0]
    premium = venue.premium_index("BTCUSDT")
    assert isinstance(premium, dict)
    return ticker["bidPrice"], ticker["time"], premium["markPrice"], premium["time"]


def test_frozen_prices_stop_the_market_but_not_the_clock() -> None:
    venue = Venue(config(), clock=ManualClock())
    venue.advance(60)
    venue.freeze_feed("BTCUSDT", "prices")
    bid, when, mark, _ = view(venue)
    venue.advance(600)
    bid2, when2, mark2, _ = view(venue)
    assert (bid2, mark2) == (bid, mark)
    assert when2 == when + 600_000
    venue.freeze_feed("BTCUSDT", None)
    venue.advance(600)
    assert view(venue)[2] != mark


def test_frozen_timestamps_keep_moving_prices_under_an_old_time() -> None:
    venue = Venue(config(), clock=ManualClock())
    venue.freeze_feed("BTCUSDT", "timestamps")
    _, when, mark, premium_time = view(venue)
    venue.advance(600)
    _, when2, mark2, premium_time2 = view(venue)
    assert mark2 != mark
    assert (when2, premium_time2) == (when, premium_time)
    assert venue.depth("BTCUSDT", 5)["E"] == when
    assert venue.ticker_24h("BTCUSDT")["closeTime"] == when


def test_stale_prices_show_an_old_market_with_fresh_times_while_trading_goes_on() -> None:
    venue = Venue(config(), clock=ManualClock())
    venue.create_account("k", "s", wallet=10_000.0)
    venue.freeze_feed("BTCUSDT", "stale_prices")
    bid, when, mark, _ = view(venue)
    depth = venue.depth("BTCUSDT", 20)
    venue.advance(1800)
    bid2, when2, mark2, _ = view(venue)
    assert (bid2, mark2) == (bid, mark)
    assert when2 == when + 1_800_000
    assert venue.depth("BTCUSDT", 20)["bids"] == depth["bids"]
    order = venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    assert order["avgPrice"] != bid  # the fill is at the real, moved market
    assert float(order["avgPrice"]) == pytest.approx(venue.mark_price("BTCUSDT"), rel=0.001)


def test_an_unknown_freeze_mode_is_refused() -> None:
    venue = Venue(config(), clock=ManualClock())
    with pytest.raises(ValueError, match="mode"):
        venue.freeze_feed("BTCUSDT", "everything")
    with pytest.raises(VenueReject) as info:
        venue.freeze_feed("XRPUSDT", "prices")
    assert info.value.code == -1121


@pytest.mark.parametrize(
    ("pct", "duration"), [(float("nan"), 10.0), (5.0, 0.0), (-100.0, 10.0), (5.0, float("inf"))]
)
def test_a_bad_spike_is_refused(pct: float, duration: float) -> None:
    venue = Venue(config(), clock=ManualClock())
    with pytest.raises(ValueError, match=r"pct|duration_s"):
        venue.spike("BTCUSDT", pct, duration)


def test_new_tiers_apply_to_leverage_and_a_bad_ladder_keeps_the_old() -> None:
    venue = Venue(config(), clock=ManualClock())
    venue.create_account("k", "s")
    brackets = [
        {
            "bracket": 1,
            "initialLeverage": 20,
            "notionalFloor": 0,
            "notionalCap": 50_000,
            "maintMarginRatio": 0.01,
            "cum": 0.0,
        },
        {
            "bracket": 2,
            "initialLeverage": 10,
            "notionalFloor": 50_000,
            "notionalCap": 1_000_000,
            "maintMarginRatio": 0.025,
            "cum": 750.0,
        },
    ]
    venue.set_tiers("BTCUSDT", brackets)
    assert venue.markets["BTCUSDT"].tiers.tiers[1].cum == 750.0
    with pytest.raises(VenueReject) as info:
        venue.set_leverage("k", symbol="BTCUSDT", leverage=21)
    assert info.value.code == -4028
    answer = venue.leverage_brackets("k", "BTCUSDT")[0]["brackets"]
    assert [b["initialLeverage"] for b in answer] == [20, 10]
    bad = [dict(brackets[0]), dict(brackets[1], cum=999.0)]
    with pytest.raises(ValueError, match="cum"):
        venue.set_tiers("BTCUSDT", bad)
    assert venue.markets["BTCUSDT"].tiers.tiers[1].cum == 750.0
    venue.set_tiers("BTCUSDT", BINANCE_BTCUSDT_TIERS)
    assert venue.markets["BTCUSDT"].tiers is BINANCE_BTCUSDT_TIERS
    quantity_keyed = TierTable.from_rows([(0.0, 10.0, 0.01, 20.0)], keyed_by="quantity")
    with pytest.raises(ValueError, match="notional"):
        venue.set_tiers("BTCUSDT", quantity_keyed)


class WallClock:
    """A clock that is not a ManualClock: the venue must treat it as wall time."""

    def __init__(self, now: float) -> None:
        self.now = now

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now


def test_wall_clock_mode_catches_up_on_sync_and_refuses_advance() -> None:
    clock = WallClock(1_700_000_000.0)
    venue = Venue(config(step_s=1.0, max_catch_up_s=600.0), clock=clock)
    reference = Venue(config(step_s=1.0), clock=ManualClock(1_700_000_000.0))
    with pytest.raises(TypeError):
        venue.advance(10)
    clock.now += 300
    venue.sync()
    reference.advance(300)
    assert venue.mark_price("BTCUSDT") == reference.mark_price("BTCUSDT")
    assert venue.server_time() == 1_700_000_300_000
    # A long idle gap is skipped beyond max_catch_up_s rather than replayed step by step.
    clock.now += 86_400
    venue.sync()
    reference.advance(600)
    assert venue.mark_price("BTCUSDT") == reference.mark_price("BTCUSDT")


def test_things_that_happen_inside_an_advance_carry_their_own_time() -> None:
    venue = Venue(
        config(
            regimes=(Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
            jumps_per_day=0.0,
            premium_sd=0.0,
            mark_window_s=0.0,
        ),
        clock=ManualClock(),
    )
    venue.create_account("k", "s")
    start = venue.clock.time()
    bid = float(venue.book_ticker("BTCUSDT")[0]["bidPrice"])
    venue.place_order(
        "k",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        quantity=0.01,
        price=round(bid - 200, 1),
        time_in_force="GTC",
    )
    venue.spike("BTCUSDT", -1.0, 3600)
    venue.advance(3600)
    [fill] = [e for e in venue.events if isinstance(e, Fill)]
    assert start < fill.time <= start + venue.config.step_s
    [trade] = venue.user_trades("k", symbol="BTCUSDT")
    assert trade["time"] == int(fill.time * 1000)
