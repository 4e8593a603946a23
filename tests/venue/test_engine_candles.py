"""Candles are the venue's own minutes: seeded history before the start, trades after it."""

from __future__ import annotations

import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Fill, Venue, VenueConfig
from safeguard.venue._errors import VenueReject


def _venue(seed: int = 3) -> Venue:
    venue = Venue(VenueConfig(seed=seed), clock=ManualClock(1_700_000_030.0))
    venue.create_account("k", "s", wallet=100_000.0)
    return venue


def test_history_is_seeded_and_joins_the_live_market() -> None:
    first, again, other = _venue(), _venue(), _venue(seed=4)
    bars = first.klines("BTCUSDT", interval="1h", limit=1500)
    assert bars == again.klines("BTCUSDT", interval="1h", limit=1500)
    assert bars != other.klines("BTCUSDT", interval="1h", limit=1500)
    assert len(bars) == 1500
    assert [b[0] for b in bars] == list(range(bars[0][0], bars[-1][0] + 1, 3_600_000))
    # The last history bar closes where the live bar opens: no gap at the start.
    assert bars[-2][4] == bars[-1][1]


def test_candles_of_every_interval_hold_the_trades_in_them() -> None:
    venue = _venue()
    for _ in range(40):
        venue.place_order("k", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
        venue.advance(47)
        venue.place_order("k", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.02)
        venue.advance(29)
    fills = [e for e in venue.events if isinstance(e, Fill)]
    for interval, seconds in (("1m", 60), ("5m", 300), ("15m", 900)):
        bars = venue.klines("BTCUSDT", interval=interval, start_ms=1_699_996_400_000)
        total = 0.0
        for open_ms, _o, high, low, _c, volume, close_ms, *_ in bars:
            assert close_ms == open_ms + seconds * 1000 - 1
            inside = [f for f in fills if open_ms <= f.time * 1000 <= close_ms]
            assert all(float(low) <= f.price <= float(high) for f in inside)
            assert float(volume) == pytest.approx(sum(f.qty for f in inside))
            total += float(volume)
        assert total == pytest.approx(sum(f.qty for f in fills))


def test_a_window_is_honoured() -> None:
    venue = _venue()
    venue.advance(3 * 3600)
    every = venue.klines("ETHUSDT", kind="mark", interval="15m", limit=1500)
    start, end = every[100][0], every[109][0]
    assert (
        venue.klines("ETHUSDT", kind="mark", interval="15m", start_ms=start, limit=4)
        == (every[100:104])
    )
    assert (
        venue.klines("ETHUSDT", kind="mark", interval="15m", end_ms=end, limit=4)
        == (every[106:110])
    )
    assert (
        venue.klines("ETHUSDT", kind="mark", interval="15m", start_ms=start, end_ms=end)
        == every[100:110]
    )


def test_bad_interval_and_limit_are_refused() -> None:
    venue = _venue()
    with pytest.raises(VenueReject) as info:
        venue.klines("BTCUSDT", interval="2m")
    assert info.value.code == -1120
    with pytest.raises(VenueReject):
        venue.klines("BTCUSDT", interval="1m", limit=1501)
