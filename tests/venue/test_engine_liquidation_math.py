"""The venue's liquidation arithmetic against hand numbers and Binance's published example."""

from __future__ import annotations

from dataclasses import replace

import pytest

from safeguard.risk._tiers import Tier, TierTable
from safeguard.venue import DEFAULT_MARKETS, MONEY_SCALE
from safeguard.venue._accounts import Position, maintenance_margin
from safeguard.venue._liquidation import close_outcome, liquidation_price, settle

BTC = DEFAULT_MARKETS["BTCUSDT"]


def long_btc(qty: float, entry: float) -> Position:
    steps = round(qty / BTC.step_size)
    ticks = round(entry / BTC.tick_size)
    return Position("BTCUSDT", "BOTH", qty=steps, cost=ticks * steps * BTC.notional_unit)


def units(quote: float) -> int:
    return round(quote * MONEY_SCALE)


def test_the_fee_comes_out_of_what_collateral_is_left() -> None:
    position = long_btc(1.0, 90_000.0)
    settled = settle(position, BTC, mark_ticks=894_000, collateral=units(900), fee_rate=0.005)
    assert settled.realized == units(-600)
    assert settled.fee == units(300)  # 0.5 % of 89,400 is 447, but only 300 was left
    assert settled.shortfall == 0
    assert settled.wallet_delta == units(-900)


def test_the_full_fee_when_collateral_covers_it() -> None:
    position = long_btc(1.0, 90_000.0)
    settled = settle(position, BTC, mark_ticks=899_000, collateral=units(900), fee_rate=0.005)
    assert settled.realized == units(-100)
    assert settled.fee == units(449.5)
    assert settled.wallet_delta == units(-549.5)


def test_a_gap_through_bankruptcy_leaves_a_shortfall_for_the_fund() -> None:
    position = long_btc(1.0, 90_000.0)
    settled = settle(position, BTC, mark_ticks=880_000, collateral=units(900), fee_rate=0.005)
    assert settled == (units(-2_000), 0, units(1_100))
    assert settled.wallet_delta == units(-900)  # never more than the collateral


def test_a_short_settles_the_other_way() -> None:
    position = long_btc(1.0, 90_000.0)
    position.qty = -position.qty
    settled = settle(position, BTC, mark_ticks=905_000, collateral=units(1_000), fee_rate=0.0)
    assert settled.realized == units(-500)


def test_the_close_is_valued_against_the_mark() -> None:
    close = close_outcome([899_000, 500, 898_000, 500], mark_ticks=900_000, unit=10_000, long=True)
    assert close.qty == 1000
    assert close.slippage == units(-150)  # sold 0.5 @ 89,900 and 0.5 @ 89,800 vs 90,000
    short = close_outcome([901_000, 1000], mark_ticks=900_000, unit=10_000, long=False)
    assert short.slippage == units(-100)


@pytest.mark.parametrize(
    ("qty", "entry", "margin"),
    [(1.0, 90_000.0, 900.0), (0.5, 60_000.0, 600.0), (10.0, 90_000.0, 20_000.0)],
)
def test_isolated_liquidation_price_is_where_equity_meets_maintenance(
    qty: float, entry: float, margin: float
) -> None:
    position = long_btc(qty, entry)
    price = liquidation_price(position, BTC, wallet=margin)
    equity = margin + qty * (price - entry)
    assert equity == pytest.approx(maintenance_margin(BTC, qty * price), abs=1e-6)
    assert 0 < price < entry


def test_binance_published_cross_example() -> None:
    """Cross, one-way: wallet 1,535,443.01; BTC long 109.488 @ 32,481.98 (MMR 2.5 %, cum 16,300)
    and ETH long 3,683.979 @ 1,456.84 marked at 1,335.18 (MMR 10 %, cum 135,365): BTC's cross
    liquidation price is 26,316.89."""
    flat_tier = TierTable((Tier(1, 0.0, 1e12, 0.025, 20.0, 16_300.0),), check_cum=False)
    btc = replace(BTC, tick_size=0.01, tiers=flat_tier)
    steps = 109_488
    position = Position("BTCUSDT", "BOTH", qty=steps, cost=3_248_198 * steps * btc.notional_unit)
    eth_qty, eth_entry, eth_mark = 3_683.979, 1_456.84, 1_335.18
    other_upnl = eth_qty * (eth_mark - eth_entry)
    other_mm = eth_qty * eth_mark * 0.10 - 135_365.0
    price = liquidation_price(
        position, btc, wallet=1_535_443.01, other_upnl=other_upnl, other_mm=other_mm
    )
    assert price == pytest.approx(26_316.89, abs=0.01)


def test_a_position_that_cannot_be_liquidated_says_zero() -> None:
    assert liquidation_price(long_btc(0.01, 90_000.0), BTC, wallet=1_000_000.0) == 0.0
    assert liquidation_price(Position("BTCUSDT", "BOTH"), BTC, wallet=10.0) == 0.0


def btc_leg(side: str, qty: float, entry: float) -> Position:
    steps = round(qty / BTC.step_size)
    ticks = round(entry / BTC.tick_size)
    signed = steps if side == "LONG" else -steps
    return Position("BTCUSDT", side, qty=signed, cost=ticks * steps * BTC.notional_unit)


def hedged_price(long: tuple[float, float], short: tuple[float, float], wallet: float) -> float:
    """Both legs' price (asserted equal) for (qty, entry) legs, the mark at 51,000."""
    legs = btc_leg("LONG", *long), btc_leg("SHORT", *short)
    one = liquidation_price(legs[0], BTC, wallet=wallet, twin=legs[1], mark=51_000.0)
    two = liquidation_price(legs[1], BTC, wallet=wallet, twin=legs[0], mark=51_000.0)
    assert one == two
    return one


def test_cross_hedge_legs_show_the_accounts_one_price() -> None:
    # Binance's hedge form, tier 1 on both legs (MMR 0.4 %, cum 0), on both legs:
    # LP = [WB + cumL + cumS - QL*EPL + QS*EPS] / [QL*MMRL + QS*MMRS - QL + QS]
    falls = hedged_price((2.0, 50_000.0), (0.5, 52_000.0), 20_000.0)
    expected = (20_000.0 - 2 * 50_000.0 + 0.5 * 52_000.0) / (2 * 0.004 + 0.5 * 0.004 - 2 + 0.5)
    assert falls == pytest.approx(expected, rel=1e-12)
    equity = 20_000.0 + 2 * (falls - 50_000.0) - 0.5 * (falls - 52_000.0)
    required = maintenance_margin(BTC, 2 * falls) + maintenance_margin(BTC, 0.5 * falls)
    assert equity == pytest.approx(required, rel=1e-9)
    # Net short, the account is liquidated by a rise; fully hedged, by the rise that grows
    # its maintenance past its equity.
    rises = hedged_price((0.5, 50_000.0), (2.0, 52_000.0), 20_000.0)
    expected = (20_000.0 - 0.5 * 50_000.0 + 2 * 52_000.0) / (0.5 * 0.004 + 2 * 0.004 - 0.5 + 2)
    assert rises == pytest.approx(expected, rel=1e-12)
    flat = hedged_price((1.0, 50_000.0), (1.0, 52_000.0), 300.0)
    assert flat == pytest.approx((300.0 - 50_000.0 + 52_000.0) / 0.008, rel=1e-12)


def test_position_risk_shows_both_cross_hedge_legs_the_same_price() -> None:
    from safeguard._clock import ManualClock
    from safeguard.venue import Venue, VenueConfig
    from safeguard.venue._dialect import Dialect
    from safeguard.venue._inprocess import inprocess_client

    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=ManualClock(1_700_000_000.0))
    venue.create_account("hedge-key-0123456789", "hedge-secret-0123456789abcdef", wallet=1_000.0)
    raw = inprocess_client(Dialect(venue), "hedge-key-0123456789", "hedge-secret-0123456789abcdef")
    raw.load_markets()
    raw.set_position_mode(True)
    raw.set_leverage(20, "ETH/USDT:USDT")
    raw.create_order("ETH/USDT:USDT", "market", "buy", 2.0, None, {"positionSide": "LONG"})
    raw.create_order("ETH/USDT:USDT", "market", "sell", 0.5, None, {"positionSide": "SHORT"})
    rows = raw.fetch_positions()
    assert len(rows) == 2
    prices = {row["info"]["positionSide"]: row["liquidationPrice"] for row in rows}
    assert prices["LONG"] == prices["SHORT"]
    assert 0 < prices["LONG"] < rows[0]["markPrice"]  # net long: a fall liquidates
