"""Liquidation as a path: partial steps down the tiers, auto-deleveraging, and the fairness
report, as unmodified ccxt (sync and async) sees them and reconciled with the venue's ledger.

Every scenario runs on a flat market (no drift, no premium, the mark is the contract price)
so a scripted spike sets the mark exactly and the numbers can be worked by hand.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import ccxt.pro
import pytest
import pytest_asyncio

from safeguard._clock import ManualClock
from safeguard.cli import main
from safeguard.venue import AutoDeleveraged, Liquidation, Venue
from safeguard.venue._accounts import Position, maintenance_margin
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._liquidation import (
    bankruptcy_price,
    healthy_after_close,
    partial_keep,
    smallest_healthy_close,
)
from safeguard.venue._markets import DEFAULT_MARKETS, MONEY_SCALE
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import serve
from tests.venue.test_engine_risk import quiet

BTC = "BTC/USDT:USDT"
SPEC = DEFAULT_MARKETS["BTCUSDT"]
STEPS_PER_BTC = 1000  # step size 0.001
GUARD_S = 15.0
"""Only a hang reaches this: every wait below ends on an event."""


def new_venue(**overrides: Any) -> Venue:
    # Simulated time that starts at wall time: ccxt signs with wall time.
    return Venue(quiet(**overrides), clock=ManualClock(time.time()))


async def call(result: Any) -> Any:
    """Await an async ccxt call; pass a sync one's result through."""
    return await result if inspect.isawaitable(result) else result


class Clients:
    """Unmodified ccxt ``binanceusdm`` instances, one per account, sync or async."""

    def __init__(self, venue: Venue, asynchronous: bool) -> None:
        self.dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
        self.asynchronous = asynchronous
        self.open: list[Any] = []

    def __call__(self, api_key: str) -> Any:
        exchange = inprocess_client(
            self.dialect, api_key, "s-" + api_key, asyncio=self.asynchronous
        )
        self.open.append(exchange)
        return exchange

    async def close(self) -> None:
        if self.asynchronous:
            for exchange in self.open:
                await exchange.close()


@pytest_asyncio.fixture(params=["sync", "async"])
async def flavour(request: pytest.FixtureRequest) -> AsyncIterator[bool]:
    yield request.param == "async"


def account(venue: Venue, key: str, *, wallet: float, leverage: int) -> None:
    venue.create_account(key, "s-" + key, wallet=wallet)
    venue.set_leverage(key, symbol="BTCUSDT", leverage=leverage)


# --- the math, by hand ------------------------------------------------------------------------


def test_a_partial_step_keeps_what_fits_strictly_inside_the_tier_below() -> None:
    # 40 BTC at a mark of 88,560 is 3,542,400 of notional: tier 4 (3M-12M). The step keeps
    # what stays under tier 3's cap: 3,000,000 / 88,560 = 33.8753 BTC, so 33.875 BTC
    # (2,999,970 of notional). From 33.875 BTC, tier 3, it keeps 800,000 / 88,560 =
    # 9.0334 -> 9.033 BTC (799,962.48). In tier 1 the leg is taken whole unless a fraction
    # is configured: a quarter of 1 BTC leaves 0.75.
    assert partial_keep(40 * STEPS_PER_BTC, SPEC, mark=88_560.0, fraction=0.0) == 33_875
    assert partial_keep(33_875, SPEC, mark=88_560.0, fraction=0.0) == 9_033
    assert partial_keep(-33_875, SPEC, mark=88_560.0, fraction=0.0) == 9_033
    assert partial_keep(1_000, SPEC, mark=88_560.0, fraction=0.0) == 0
    assert partial_keep(1_000, SPEC, mark=88_560.0, fraction=0.25) == 750
    # A leg exactly on a tier's floor belongs to that tier; the step goes strictly below.
    assert partial_keep(37_500, SPEC, mark=80_000.0, fraction=0.0) == 37_499  # 3M: tier 4
    with pytest.raises(ValueError, match="fraction"):
        partial_keep(1_000, SPEC, mark=88_560.0, fraction=1.0)


def test_the_smallest_healthy_close_solves_each_tier_piece_by_hand() -> None:
    # Long 40 BTC, mark 90,000 (notional 3.6M, tier 4: MM = 36,000 - 12,000 = 24,000),
    # equity 20,000, clearance fee 0.5 %. Closing c BTC at the mark costs 450c of fee.
    #   kept in tier 4 (c <= 6.667): h = 20,000 - 450c - (900(40 - c) - 12,000)
    #                                  = -4,000 + 450c > 0 only for c > 8.89: not in this piece;
    #   kept in tier 3 (c > 6.667):  h = 20,000 - 450c - (585(40 - c) - 1,500)
    #                                  = -1,900 + 135c > 0 for c > 14.0741: 14.075 BTC.
    args: dict[str, Any] = {"mark": 90_000.0, "equity": 20_000.0, "other_mm": 0.0}
    smallest = smallest_healthy_close(40_000, SPEC, fee_rate=0.005, **args)
    assert smallest == 14_075
    assert healthy_after_close(40_000, SPEC, close=14_075, fee_rate=0.005, **args)
    assert not healthy_after_close(40_000, SPEC, close=14_074, fee_rate=0.005, **args)
    # Other cross legs' requirement counts too: 1,000 more of it needs 1,000 / 135 = 7.41
    # BTC more: c > 21.4815, 21.482 BTC.
    more = {**args, "other_mm": 1_000.0}
    assert smallest_healthy_close(40_000, SPEC, fee_rate=0.005, **more) == 21_482
    # An account under water at the mark: no partial close helps.
    broke = {**args, "equity": -10.0}
    assert smallest_healthy_close(40_000, SPEC, fee_rate=0.005, **broke) is None


def test_the_bankruptcy_price_is_where_the_loss_equals_the_collateral() -> None:
    # Long 1 BTC bought at 90,000.1 with 954.99995 of collateral: 90,000.1 - 954.99995 =
    # 89,045.10005. Short: 90,000.1 + 954.99995 = 90,955.09995.
    cost = 9_000_010_000_000  # 90,000.1 in units
    long = Position("BTCUSDT", "BOTH", qty=1_000, cost=cost)
    short = Position("BTCUSDT", "BOTH", qty=-1_000, cost=cost)
    collateral = 95_499_995_000
    assert bankruptcy_price(long, SPEC, collateral=collateral) == pytest.approx(89_045.10005)
    assert bankruptcy_price(short, SPEC, collateral=collateral) == pytest.approx(90_955.09995)
    # A long whose collateral covers its whole cost has no bankruptcy price.
    assert bankruptcy_price(long, SPEC, collateral=cost) == 0.0


# --- a large position is reduced in steps ---------------------------------------------------


def large_long(venue: Venue) -> None:
    """'big' goes long 40 BTC (3.6M of notional) at 50x with 80,000, then the price falls."""
    account(venue, "big", wallet=80_000.0, leverage=50)
    venue.place_order("big", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    venue.spike("BTCUSDT", -1.6, 600)
    venue.advance(5)


async def test_a_large_position_is_reduced_a_tier_at_a_time_not_taken_over(
    flavour: bool,
) -> None:
    # By hand. The buy walks the asks to an average of 90,047.6209 and pays the 0.05 % taker
    # fee, 40 x 90,047.6209 x 0.0005 = 1,800.952418: the wallet is 78,199.047582. The
    # spike puts the mark at 90,000 x (1 - 1.6 %) = 88,560. There
    #   equity = 78,199.047582 + 40 x (88,560 - 90,047.6209) = 18,694.211582
    #   MM     = 40 x 88,560 x 1 % - 12,000 (tier 4)          = 23,424        -> liquidate.
    # Step 1 sells 40 - 33.875 = 6.125 BTC into the bids (tier 3 is left: MM = 2,999,970 x
    # 0.65 % - 1,500 = 17,999.805), which still does not cover it; step 2 sells 24.842 BTC
    # down to 9.033 BTC (tier 2: MM = 799,962.48 x 0.5 % - 300 = 3,699.8124) and the account
    # is healthy again. Nothing is taken over; each step paid 0.5 % of what it sold.
    venue = new_venue()
    large_long(venue)
    steps = venue.liquidations()
    assert [e.kind for e in steps] == ["PARTIAL", "PARTIAL"]
    assert [e.qty for e in steps] == [6.125, 24.842]
    assert [e.position_after for e in steps] == [33.875, 9.033]
    assert [e.close_qty for e in steps] == [6.125, 24.842]
    assert steps[0].equity_before == pytest.approx(18_694.211582, abs=1e-6)
    assert steps[0].maintenance_margin == pytest.approx(23_424.0)
    assert steps[1].maintenance_margin == pytest.approx(17_999.805)
    for step in steps:
        assert step.mark_price == pytest.approx(88_560.0)
        assert step.close_avg_price < step.mark_price  # a sell walks down the bids
        assert step.slippage_units < 0  # ... which the trader bears in a partial step
        # The average price is printed to 1e-5, so the fee is checked to 1e-6 quote.
        value = step.close_avg_price * step.close_qty * MONEY_SCALE
        assert step.fee_units == pytest.approx(value * 0.005, abs=100)
    assert steps[0].trigger_id == steps[1].trigger_id
    # What the user sees, through ccxt.
    clients = Clients(venue, flavour)
    try:
        big = clients("big")
        [position] = await call(big.fetch_positions([BTC]))
        assert position["contracts"] == 9.033
        assert position["side"] == "long"
        maintenance = float(position["info"]["maintMargin"])
        assert maintenance == pytest.approx(3_699.8124)
        equity = float(position["info"]["unRealizedProfit"]) + venue.wallet("big")
        assert equity > maintenance  # healthy again
        orders = await call(big.fetch_my_liquidations(BTC))
        assert [o["contracts"] for o in orders] == [6.125, 24.842]
        assert [o["price"] for o in orders] == [pytest.approx(e.close_avg_price) for e in steps]
        assert all(o["side"] == "sell" for o in orders)
    finally:
        await clients.close()
    # The position stays open at the lower tier while the mark holds.
    venue.advance(60)
    assert len(venue.liquidations()) == 2


def test_partial_liquidation_off_takes_the_large_position_over_whole() -> None:
    venue = new_venue(partial_liquidation=False)
    large_long(venue)
    [event] = venue.liquidations()
    assert event.kind == "TAKEOVER"
    assert event.qty == 40.0
    assert venue.position_risk("big") == []
    # The report says a partial close at the mark would have sufficed, and how much:
    #   tier-3 piece: h = 18,694.211582 - 442.8c - (575.64(40 - c) - 1,500)
    #                   = -2,831.388418 + 132.84c > 0 for c > 21.3143: 21.315 BTC.
    assert event.partial_would_suffice
    assert event.smallest_healthy_close == 21.315


def test_a_bankrupt_large_position_is_taken_over_without_partial_steps() -> None:
    venue = new_venue()
    account(venue, "big", wallet=80_000.0, leverage=50)
    venue.place_order("big", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    venue.spike("BTCUSDT", -5.0, 600)  # equity at the mark below zero: nothing to save
    venue.advance(5)
    [event] = venue.liquidations()
    assert event.kind == "TAKEOVER"
    assert event.equity_before < 0
    assert event.shortfall_units > 0
    assert not event.partial_would_suffice


# --- a bankrupt position auto-deleverages the top-ranked opposite position ------------------


def bankrupt_long_against_two_shorts(venue: Venue, *, bold_qty: float = 2.0) -> None:
    """'bold' (50x, ``bold_qty`` BTC) and 'calm' (5x, 2 BTC) are short; 'victim' is long 1
    BTC at 100x with 1,000."""
    account(venue, "bold", wallet=50_000.0, leverage=50)
    venue.place_order("bold", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=bold_qty)
    account(venue, "calm", wallet=50_000.0, leverage=5)
    venue.place_order("calm", symbol="BTCUSDT", side="SELL", type="MARKET", quantity=2.0)
    account(venue, "victim", wallet=1_000.0, leverage=100)
    venue.place_order("victim", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1.0)


async def test_a_bankrupt_position_deleverages_the_top_ranked_opposite_position(
    flavour: bool,
) -> None:
    # By hand. 'victim' buys 1 BTC at the ask touch, 90,000.1, paying 45.00005 of fee: its
    # wallet is 954.99995, its bankruptcy price 90,000.1 - 954.99995 = 89,045.10005. A gap
    # to 85,500 leaves it 3,545.10 under water, which an empty fund cannot absorb.
    # 'bold' sold at 90,000.0 at 50x, 'calm' at 5x for about the same price: both gain ~5 %
    # of cost, times leverage: bold ranks first (ADL quantile 4 of 4; calm 2).
    # Bold buys the victim's 1 BTC at the bankruptcy price rounded up to the tick,
    # 89,045.2 (not at the mark 85,500): it realises 90,000.0 - 89,045.2 = 954.8 on it. The
    # 0.09995 of rounding goes to the fund. Calm is untouched.
    venue = new_venue(insurance_fund=0.0)
    bankrupt_long_against_two_shorts(venue)
    clients = Clients(venue, flavour)
    try:
        bold, calm, victim = clients("bold"), clients("calm"), clients("victim")
        bold_rank = await call(bold.fetch_position_adl_rank(BTC))
        calm_rank = await call(calm.fetch_position_adl_rank(BTC))
        assert (bold_rank["rank"], calm_rank["rank"]) == (4, 2)
        venue.spike("BTCUSDT", -5.0, 600)
        venue.advance(5)
        [event] = venue.liquidations()
        assert event.kind == "ADL"
        assert event.bankruptcy_price == pytest.approx(89_045.10005)
        assert event.adl_qty == 1.0
        assert event.mark_price == pytest.approx(85_500.0)
        [adl] = [e for e in venue.events if isinstance(e, AutoDeleveraged)]
        assert (adl.api_key, adl.qty, adl.price) == ("bold", -1.0, 89_045.2)
        assert adl.realized_pnl_units == 954_80_000_000
        assert venue.insurance_fund == pytest.approx(0.09995)
        # The victim lost exactly its wallet; nobody else paid a fee.
        assert venue.wallet_units("victim") == 0
        [liquidated] = await call(victim.fetch_my_liquidations(BTC))
        assert liquidated["contracts"] == 1.0
        assert liquidated["price"] == pytest.approx(89_045.2)
        # Bold sees half its short closed, as an ADL order, and the PnL in its ledger.
        [position] = await call(bold.fetch_positions([BTC]))
        assert (position["side"], position["contracts"]) == ("short", 1.0)
        [untouched] = await call(calm.fetch_positions([BTC]))
        assert untouched["contracts"] == 2.0
        assert await call(bold.fetch_my_liquidations(BTC)) == []  # not a liquidation of its own
        [order] = await call(bold.fapiPrivateGetForceOrders({"autoCloseType": "ADL"}))
        assert order["clientOrderId"] == "adl_autoclose"
        assert (order["side"], order["executedQty"], order["avgPrice"]) == (
            "BUY",
            "1.000",
            "89045.20000",
        )
        assert await call(calm.fapiPrivateGetForceOrders({"autoCloseType": "ADL"})) == []
        ledger = await call(bold.fetch_ledger("USDT", since=0))
        pnl = [e for e in ledger if e["info"]["incomeType"] == "REALIZED_PNL"]
        assert [(e["amount"], e["direction"]) for e in pnl] == [(954.8, "in")]
    finally:
        await clients.close()


def test_adl_goes_down_the_ranking_when_the_top_position_is_too_small() -> None:
    venue = new_venue(insurance_fund=0.0)
    bankrupt_long_against_two_shorts(venue, bold_qty=0.4)
    venue.spike("BTCUSDT", -5.0, 600)
    venue.advance(5)
    closes = [(e.api_key, e.qty) for e in venue.events if isinstance(e, AutoDeleveraged)]
    assert closes == [("bold", -0.4), ("calm", -0.6)]
    assert venue.position_risk("bold") == []
    assert float(venue.position_risk("calm")[0]["positionAmt"]) == -1.4


def test_a_fund_that_can_absorb_the_loss_takes_it_without_adl() -> None:
    venue = new_venue()  # a 1,000,000 fund
    bankrupt_long_against_two_shorts(venue)
    venue.spike("BTCUSDT", -5.0, 600)
    venue.advance(5)
    [event] = venue.liquidations()
    assert event.kind == "TAKEOVER"
    assert event.shortfall_units > 0
    assert not [e for e in venue.events if isinstance(e, AutoDeleveraged)]


async def test_adl_reaches_the_deleveraged_account_on_its_user_stream() -> None:
    venue = new_venue(insurance_fund=0.0)
    bankrupt_long_against_two_shorts(venue)
    dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
    pro = inprocess_client(dialect, "bold", "s-bold", pro=True)
    assert isinstance(pro, ccxt.pro.binanceusdm)
    try:
        await pro.load_markets()
        task = asyncio.ensure_future(pro.watch_orders(BTC))
        for _ in range(100):  # let it subscribe: a few loop turns
            await asyncio.sleep(0)
        venue.spike("BTCUSDT", -5.0, 600)
        venue.advance(5)
        orders = await asyncio.wait_for(task, GUARD_S)
        [order] = [o for o in orders if o["clientOrderId"] == "adl_autoclose"]
        assert (order["side"], order["filled"], order["status"]) == ("buy", 1.0, "closed")
        assert order["average"] == pytest.approx(89_045.2)
    finally:
        await pro.close()


# --- the fairness report reconciles with the ledger -----------------------------------------


def signed(entry: dict[str, Any]) -> int:
    units = round(entry["amount"] * MONEY_SCALE)
    return units if entry["direction"] == "in" else -units


async def test_the_fairness_report_reconciles_with_the_income_ledger_and_the_fund(
    flavour: bool,
) -> None:
    venue = new_venue()
    large_long(venue)
    report = venue.liquidation_report("big")
    rows = report["events"]
    assert [r["kind"] for r in rows] == ["PARTIAL", "PARTIAL"]
    first = rows[0]
    assert first["markAtTrigger"] == pytest.approx(88_560.0)
    assert first["slippageBorneBy"] == "trader"
    assert first["partialWouldSuffice"] is True
    assert first["smallestHealthyClose"] == 21.315  # the tier step closed 6.125 + 24.842
    assert first["bankruptcyPrice"] < first["avgClosePrice"] < first["markAtTrigger"]
    clients = Clients(venue, flavour)
    try:
        big = clients("big")
        ledger = await call(big.fetch_ledger("USDT", since=0))
        balance = await call(big.fetch_balance())
    finally:
        await clients.close()
    by_id = {int(e["id"]): e for e in ledger}
    for row in rows:
        # Each row's wallet change is exactly the income rows it names.
        assert row["tranIds"]
        booked = sum(signed(by_id[i]) for i in row["tranIds"])
        assert booked == round(float(row["walletChange"]) * MONEY_SCALE)
        kinds = {by_id[i]["info"]["incomeType"]: signed(by_id[i]) for i in row["tranIds"]}
        assert kinds["INSURANCE_CLEAR"] == -round(float(row["fee"]) * MONEY_SCALE)
        assert kinds["REALIZED_PNL"] == round(float(row["realizedPnl"]) * MONEY_SCALE)
    # The whole ledger sums to the wallet ccxt reports; the liquidation rows are all of its
    # realised PnL and insurance clearance (the account only opened before).
    assert sum(signed(e) for e in ledger) == venue.wallet_units("big")
    assert float(balance["info"]["totalWalletBalance"]) == pytest.approx(venue.wallet("big"))
    clearing = [e for e in ledger if e["info"]["incomeType"] in ("REALIZED_PNL", "INSURANCE_CLEAR")]
    assert sum(signed(e) for e in clearing) == sum(
        round(float(r["walletChange"]) * MONEY_SCALE) for r in rows
    )
    [mine] = report["accounts"]
    assert mine["reconciles"] is True
    assert mine["walletChange"] == mine["incomeBooked"]
    # The fund: 1,000,000 plus the two clearance fees (2,711.978775 + 10,993.852215).
    fund = report["insuranceFund"]
    assert fund["reconciles"] is True
    assert fund["start"] == "1000000.00000000"
    assert fund["sumOfChanges"] == "13705.83099000"
    assert float(fund["now"]) == venue.insurance_fund == pytest.approx(1_013_705.83099)
    assert sum(float(r["fee"]) for r in rows) == pytest.approx(13_705.83099)


def test_the_report_covers_adl_rows_and_reconciles_every_account() -> None:
    venue = new_venue(insurance_fund=0.0)
    bankrupt_long_against_two_shorts(venue)
    venue.spike("BTCUSDT", -5.0, 600)
    venue.advance(5)
    report = venue.liquidation_report()
    kinds = [(r["kind"], r["account"]) for r in report["events"]]
    assert kinds == [("ADL", "victim"), ("ADL_COUNTERPARTY", "bold")]
    counterparty = report["events"][1]
    # Bold bought at 89,045.2 with the mark at 85,500: ADL cost it 3,545.2 against a close
    # at the mark.
    assert counterparty["costAgainstMark"] == pytest.approx(3_545.2)
    assert counterparty["trigger"] == report["events"][0]["trigger"]
    assert [a["account"] for a in report["accounts"]] == ["bold", "victim"]
    assert all(a["reconciles"] for a in report["accounts"])
    assert report["insuranceFund"] == {
        "start": "0.00000000",
        "now": "0.09995000",
        "sumOfChanges": "0.09995000",
        "reconciles": True,
    }


def test_the_report_is_served_on_the_admin_route_and_the_cli(
    capsys: pytest.CaptureFixture[str],
) -> None:
    venue = new_venue()
    large_long(venue)
    with serve(venue) as server:
        assert main(["venue", "liquidations", server.url, "--account", "big"]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert printed == venue.liquidation_report("big")
        assert main(["venue", "liquidations", server.url]) == 0
        assert json.loads(capsys.readouterr().out)["insuranceFund"]["reconciles"] is True
        assert main(["venue", "liquidations", server.url, "--account", "nobody"]) == 1
        assert "-2015" in capsys.readouterr().err


def large_isolated_long(venue: Venue, *, extra_margin: float) -> None:
    """'iso' goes long 40 BTC isolated at 50x, adds ``extra_margin``; the price falls 1.6 %."""
    venue.create_account("iso", "s-iso", wallet=200_000.0)
    venue.set_margin_type("iso", symbol="BTCUSDT", margin_type="ISOLATED")
    venue.set_leverage("iso", symbol="BTCUSDT", leverage=50)
    venue.place_order("iso", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    if extra_margin:
        venue.modify_isolated_margin(
            "iso", symbol="BTCUSDT", position_side="BOTH", amount=extra_margin, add=True
        )
    venue.spike("BTCUSDT", -1.6, 600)
    venue.advance(5)


def test_isolated_large_position_steps_against_its_own_margin() -> None:
    # 50x leaves 72,038 of isolated margin: at 88,560 that is 12,533 of equity, which two
    # tier steps' fees (~11,300) and slippage would eat. With 6,200 more it is the cross
    # case's ~18,700, which they rescue.
    venue = new_venue()
    large_isolated_long(venue, extra_margin=6_200.0)
    steps = venue.liquidations()
    assert [e.position_after for e in steps] == [33.875, 9.033]
    assert all(e.kind == "PARTIAL" and e.margin_type == "ISOLATED" for e in steps)
    [position] = venue.position_risk("iso")
    kept = float(position["positionAmt"])
    assert 0 < kept < 40.0
    equity = float(position["isolatedWallet"]) + float(position["unRealizedProfit"])
    assert equity > maintenance_margin(SPEC, kept * venue.mark_price("BTCUSDT"))
    # The rest of the wallet was never at risk: only the isolated margin paid.
    assert venue.wallet("iso") > 200_000.0 - 40 * 90_100 / 50 - 1
    events = [e for e in venue.events if isinstance(e, Liquidation)]
    assert sum(e.insurance_delta_units for e in events) == round(
        (venue.insurance_fund - 1_000_000.0) * MONEY_SCALE
    )


def test_steps_that_cannot_restore_the_margin_end_in_a_take_over_of_the_rest() -> None:
    # Isolated at 50x without extra margin: 72,038 of margin, 12,533 of equity at 88,560.
    # Step 1 (6.125 BTC, fee 2,712) leaves 9,787 against 17,999.805 of requirement; step 2's
    # fee takes what is left (capped at the equity), and the last 9.033 BTC are taken over.
    venue = new_venue()
    large_isolated_long(venue, extra_margin=0.0)
    events = venue.liquidations()
    assert [(e.kind, e.qty) for e in events] == [
        ("PARTIAL", 6.125),
        ("PARTIAL", 24.842),
        ("TAKEOVER", 9.033),
    ]
    assert len({e.trigger_id for e in events}) == 1
    assert venue.position_risk("iso") == []
    report = venue.liquidation_report("iso")
    assert [r["slippageBorneBy"] for r in report["events"]] == [
        "trader",
        "trader",
        "insurance fund",
    ]
    assert report["accounts"][0]["reconciles"] is True
    assert report["insuranceFund"]["reconciles"] is True


async def test_each_partial_step_reaches_the_account_as_its_own_liquidation_order() -> None:
    venue = new_venue()
    account(venue, "big", wallet=80_000.0, leverage=50)
    venue.place_order("big", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
    pro = inprocess_client(dialect, "big", "s-big", pro=True)
    try:
        await pro.load_markets()
        # As a bot would: ccxt's ACCOUNT_UPDATE handler needs the balance it watches (without
        # it, ccxt raises KeyError on the update and drops the rest of the burst).
        balance = asyncio.ensure_future(pro.watch_balance())
        task = asyncio.ensure_future(pro.watch_my_liquidations(BTC))
        for _ in range(100):  # let them subscribe: a few loop turns
            await asyncio.sleep(0)
        venue.spike("BTCUSDT", -1.6, 600)
        venue.advance(5)
        await asyncio.wait_for(task, GUARD_S)
        for _ in range(int(GUARD_S / 0.01)):  # both steps arrive in one burst
            if len(pro.myLiquidations or []) >= 2:
                break
            await asyncio.sleep(0.01)
        seen = [o for o in pro.myLiquidations if o["symbol"] == BTC]
        assert [(o["contracts"], o["side"]) for o in seen] == [(6.125, "sell"), (24.842, "sell")]
        steps = venue.liquidations()
        assert [o["price"] for o in seen] == [pytest.approx(e.close_avg_price) for e in steps]
        await asyncio.wait_for(balance, GUARD_S)
    finally:
        await pro.close()
