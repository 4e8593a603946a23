"""Position accounting in exact units: averages, partial closes, flips, isolated collateral."""

from __future__ import annotations

from safeguard.venue import DEFAULT_MARKETS, MONEY_SCALE
from safeguard.venue._accounts import Account, Position, apply_fill

BTC = DEFAULT_MARKETS["BTCUSDT"]


def account() -> Account:
    return Account("k", "s", "USDT", wallet=10_000 * MONEY_SCALE, deposit=10_000 * MONEY_SCALE)


def fill(acct: Account, pos: Position, qty: float, price: float, *, isolated: bool = False) -> int:
    result = apply_fill(
        acct,
        pos,
        BTC,
        signed_qty=round(qty / BTC.step_size),
        price_ticks=round(price / BTC.tick_size),
        fee_rate=0.0,
        leverage=10,
        isolated=isolated,
        now_ms=1,
    )
    return result.realized_pnl


def units(quote: float) -> int:
    return round(quote * MONEY_SCALE)


def test_adding_averages_the_entry_and_closing_realises_against_it() -> None:
    acct, pos = account(), Position("BTCUSDT", "BOTH")
    fill(acct, pos, 0.010, 90_000.0)
    fill(acct, pos, 0.030, 91_000.0)
    assert pos.entry_price(BTC) == 90_750.0
    assert fill(acct, pos, -0.020, 92_000.0) == units(0.020 * 1_250)
    assert pos.entry_price(BTC) == 90_750.0
    assert fill(acct, pos, -0.020, 90_000.0) == units(-0.020 * 750)
    assert (pos.qty, pos.cost) == (0, 0)
    assert acct.wallet == units(10_000 + 25 - 15)


def test_a_flip_closes_the_old_side_and_opens_the_new_at_the_fill_price() -> None:
    acct, pos = account(), Position("BTCUSDT", "BOTH")
    fill(acct, pos, 0.010, 90_000.0)
    assert fill(acct, pos, -0.030, 89_000.0) == units(-10)
    assert pos.qty == -20
    assert pos.entry_price(BTC) == 89_000.0


def test_an_odd_partial_close_loses_no_unit() -> None:
    acct, pos = account(), Position("BTCUSDT", "BOTH")
    fill(acct, pos, 0.003, 90_000.1)
    fill(acct, pos, 0.004, 90_000.4)
    total = sum(fill(acct, pos, -0.001, 90_001.0) for _ in range(7))
    cost = units(0.003 * 90_000.1) + units(0.004 * 90_000.4)
    assert total == units(0.007 * 90_001.0) - cost
    assert acct.wallet == units(10_000) + total


def test_isolated_collateral_follows_the_leg_and_returns_on_a_flip() -> None:
    acct, pos = account(), Position("BTCUSDT", "BOTH")
    fill(acct, pos, 0.010, 90_000.0, isolated=True)
    assert pos.isolated_margin == units(90)  # 900 notional at 10x
    gain = fill(acct, pos, -0.005, 92_000.0, isolated=True)
    assert gain == units(10)
    assert pos.isolated_margin == units(45 + 10)  # half released, the gain kept as collateral
    loss = fill(acct, pos, -0.010, 80_000.0, isolated=True)  # close 0.005 and open 0.005 short
    assert loss == units(0.005 * -10_000)
    assert pos.qty == -5
    assert pos.isolated_margin == units(40)  # only the new short's margin: nothing carried over
    assert acct.wallet == units(10_000) + gain + loss
