"""The pure staleness tests: a price that stood still too long, a mark out of band."""

from __future__ import annotations

import dataclasses
import math

import pytest

from safeguard._config import RiskLimits
from safeguard.risk._freshness import (
    PriceTrack,
    frozen,
    frozen_prices,
    mark_out_of_band,
    published_step,
    untrusted_since,
)
from safeguard.risk._outcome import Decision

from .verdict_cases import LONG, NOW, account, denied, intent, market, run

LIMITS = RiskLimits()  # 20 ticks, never before 10 s, a 5 % band
HOURLY_VOL = 0.01  # 1 % over the default volatility window of an hour


def _btc(still_s: float, *, now: float = NOW) -> PriceTrack:
    return PriceTrack("mark", 90_000.0, NOW - still_s, NOW - still_s).observe(90_000.0, now)


def _frozen(track: PriceTrack, *, tick: float | None = 0.1, now: float = NOW) -> bool:
    found = frozen(track, now=now, volatility=HOURLY_VOL, window_s=3600.0, tick=tick, limits=LIMITS)
    return found is not None


def test_btc_standing_still_for_ten_seconds_is_frozen() -> None:
    # 1 % an hour predicts ~47 USD (470 ticks) in ten seconds: no move at all is not a market.
    assert _frozen(_btc(10.0))
    stale = frozen(_btc(10.0), now=NOW, volatility=HOURLY_VOL, window_s=3600, tick=0.1,
                   limits=LIMITS)  # fmt: skip
    assert stale is not None
    assert stale.since == NOW - 10.0
    assert "has not moved" in stale.reason
    assert "risk.frozen_price_ticks" in stale.reason


def test_no_price_is_frozen_before_the_minimum_span() -> None:
    assert not _frozen(_btc(9.999))


def test_a_coarse_tick_may_stand_still_for_minutes() -> None:
    # 0.05 with a 0.0001 tick (20 bp): ten minutes at 1 %/h predict about two ticks.
    track = PriceTrack("last", 0.05, NOW - 600.0, NOW)
    assert not _frozen(track, tick=0.0001)
    assert _frozen(PriceTrack("last", 0.05, NOW - 40 * 3600.0, NOW), tick=0.0001)


def test_the_threshold_counts_ticks_of_the_expected_move() -> None:
    # Expected move of exactly 20 ticks is frozen; a hair less is not.
    span = (20 * 0.1 / (90_000.0 * HOURLY_VOL)) ** 2 * 3600.0 * 1.0001
    limits = LIMITS.model_copy(update={"frozen_price_min_s": span / 2})
    track = _btc(span)
    assert frozen(track, now=NOW, volatility=HOURLY_VOL, window_s=3600, tick=0.1, limits=limits)
    short = _btc(span * 0.99)
    assert not frozen(short, now=NOW, volatility=HOURLY_VOL, window_s=3600, tick=0.1,
                      limits=limits)  # fmt: skip


def test_frozen_price_ticks_none_turns_the_test_off() -> None:
    off = LIMITS.model_copy(update={"frozen_price_ticks": None})
    assert (
        frozen(_btc(3600.0), now=NOW, volatility=0.5, window_s=3600, tick=0.1, limits=off) is None
    )


def test_a_price_that_moves_starts_its_span_again() -> None:
    track = PriceTrack.start("book", 100.0, NOW - 60.0).observe(100.0, NOW - 30.0)
    moved = track.observe(100.1, NOW)
    assert (moved.price, moved.since, moved.seen) == (100.1, NOW, NOW)
    assert moved.still_for(NOW) == 0.0


def test_a_stamp_in_the_future_does_not_lengthen_the_span() -> None:
    track = PriceTrack.start("mark", 90_000.0, NOW - 5.0).observe(90_000.0, NOW + 3600.0)
    assert track.still_for(NOW) == 5.0
    assert not _frozen(track)


def test_a_stamp_stepping_back_past_the_start_starts_again() -> None:
    track = PriceTrack.start("mark", 90_000.0, NOW).observe(90_000.0, NOW - 3600.0)
    assert (track.since, track.seen) == (NOW - 3600.0, NOW - 3600.0)


def test_without_a_tick_the_published_step_is_the_resolution() -> None:
    assert published_step(90009.1) == pytest.approx(0.1)
    assert published_step(90000.0) == 1.0
    assert published_step(2.5e-05) == pytest.approx(1e-06)
    assert published_step(0.12345678) == pytest.approx(1e-08)
    # 90,000 to a whole unit: 47 units expected in 10 s, still far beyond 20.
    assert _frozen(_btc(10.0), tick=None)
    # 0.05 read as two decimals: 40 h predict a third of a step, where 0.0001 ticks said frozen.
    long_still = PriceTrack("last", 0.05, NOW - 40 * 3600.0, NOW)
    assert not _frozen(long_still, tick=None)
    assert _frozen(long_still, tick=0.0001)


def test_no_volatility_judges_nothing() -> None:
    assert frozen_prices([_btc(600.0)], volatility=None, window_s=3600, tick=0.1,
                         limits=LIMITS, now=NOW) == ()  # fmt: skip


@pytest.mark.parametrize(
    ("mark", "index", "last", "stale"),
    [
        (90_000.0, 85_000.0, 85_100.0, True),  # the mark went its own way
        (90_000.0, 85_000.0, 90_100.0, False),  # near the last: a premium
        (90_000.0, 89_900.0, 85_000.0, False),  # near the index: the last wicked
        (90_000.0, 85_714.3, 85_714.3, False),  # exactly 5 % from both: at the limit
        (90_000.0, None, 85_000.0, False),  # no index: nothing to compare
    ],
)
def test_a_mark_far_from_both_index_and_last_is_out_of_band(
    mark: float, index: float | None, last: float, stale: bool
) -> None:
    found = mark_out_of_band(mark, index, last, since=NOW - 7.0, limits=LIMITS)
    assert (found is not None) is stale
    if found is not None:
        assert found.since == NOW - 7.0
        assert "risk.max_mark_gap_pct" in found.reason


def test_untrusted_since_is_the_earliest() -> None:
    one = frozen(_btc(30.0), now=NOW, volatility=HOURLY_VOL, window_s=3600, tick=0.1,
                 limits=LIMITS)  # fmt: skip
    two = mark_out_of_band(90_000.0, 80_000.0, 80_000.0, since=NOW - 50.0, limits=LIMITS)
    assert one is not None
    assert two is not None
    assert untrusted_since([one, two]) == NOW - 50.0
    assert untrusted_since([]) is None


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"price": 0.0}, "price"),
        ({"price": math.nan}, "price"),
        ({"since": -1.0}, "since"),
        ({"input": "index"}, "input"),
        ({"seen": NOW - 1.0}, "seen"),
    ],
)
def test_a_track_refuses_bad_input(bad: dict[str, object], named: str) -> None:
    fields: dict[str, object] = {"input": "mark", "price": 1.0, "since": NOW, "seen": NOW}
    fields.update(bad)
    with pytest.raises(ValueError, match=named):
        PriceTrack(**fields)  # type: ignore[arg-type]


# --- in the verdict -------------------------------------------------------------------------


def test_the_verdict_denies_new_exposure_on_a_frozen_price() -> None:
    calm = market()
    assert calm.volatility is not None
    still = PriceTrack("mark", 60_000.0, NOW - 120.0, NOW)
    verdict = run(snapshot=dataclasses.replace(calm, price_tracks=(still,)))
    assert verdict.decision is Decision.DENY
    (finding,) = verdict.denials
    assert finding.code == "STALE_MARKET_DATA"
    assert finding.values["input"] == "mark"


def test_the_verdict_denies_a_mark_out_of_band_and_only_warns_a_reduction() -> None:
    apart = market(index=55_000.0, last=55_000.0)
    held = account(positions=(LONG,), available_balance=4_000.0)
    assert "STALE_MARKET_DATA" in denied(run(intent(), apart, held))
    reduce = intent(side="sell", amount=0.5, reduce_only=True, stop_price=None)
    verdict = run(reduce, apart, held)
    assert verdict.decision is Decision.WARN
    assert {str(f.code) for f in verdict.warnings} == {"STALE_MARKET_DATA"}


def test_a_stop_watching_the_last_price_needs_a_fresh_last_price() -> None:
    on_last = intent(stop_trigger="last")
    assert run(on_last, market(last_time=NOW - 5.0)).allowed
    verdict = run(on_last, market(last_time=NOW - 5.001))
    assert denied(verdict) == {"STALE_MARKET_DATA"}
    assert verdict.denials[0].values["input"] == "last"
    # A stop on the mark does not care how old the last price is.
    assert run(intent(), market(last_time=NOW - 600.0)).allowed


def test_a_frozen_price_is_counted_in_the_markets_own_ticks() -> None:
    """The move a price's volatility predicts is counted in the market's tick size (not the
    step the price happens to be written to): where no predicted move reaches one tick, a
    price standing still is no sign of a frozen feed."""
    calm = market()
    assert calm.rules is not None
    still = PriceTrack("mark", 60_000.0, NOW - 120.0, NOW)
    fine = dataclasses.replace(calm, price_tracks=(still,))
    assert denied(run(snapshot=fine)) == {"STALE_MARKET_DATA"}
    coarse = dataclasses.replace(fine, rules=dataclasses.replace(calm.rules, tick_size=1_000.0))
    assert "STALE_MARKET_DATA" not in {str(f.code) for f in run(snapshot=coarse).findings}
