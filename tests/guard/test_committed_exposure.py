"""An order that adds exposure is judged as if every other order that may still fill had.

Found by trying to beat the limits by splitting an order: eight resting 0.5 BTC buys each
passed a 50,000 notional cap that one 1.0 BTC order failed (and filled into 4 BTC), entries
resting under one stop passed the stop-versus-liquidation check one by one, and four market
orders sent at once through the asyncio face each passed alone and filled together. Real
``ccxt.binanceusdm`` on the mock venue (:func:`safeguard.testing.paper_account`), and the pure
fold (:mod:`safeguard.guard._exposure`) on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from safeguard import OrderDenied, Policy
from safeguard.guard._exposure import Committed, committed, fold
from safeguard.guard._orders import parse_call
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._tiers import TierTable
from safeguard.testing import paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
CAPPED = {"max_leverage": 10, "max_notional_per_position": 50_000}


def test_resting_entries_count_against_the_position_cap() -> None:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)
    try:
        ex = paper.guarded(Policy.build(risk=CAPPED))
        ex.set_leverage(5, SYMBOL)
        bid = ex.fetch_order_book(SYMBOL)["bids"][0][0]
        stop = {"stopLossPrice": round(bid * 0.97, 1)}
        ex.create_order(SYMBOL, "limit", "buy", 0.5, bid, stop)  # ~45,000: fits alone
        with pytest.raises(OrderDenied, match="NOTIONAL_PER_POSITION") as denied:
            ex.create_order(SYMBOL, "limit", "buy", 0.5, bid, stop)
        assert "counting 1 other buy order(s) that may still fill" in str(denied.value)
        # The other side would reduce what the resting buy opens: not counted against it.
        ex.create_order(SYMBOL, "limit", "sell", 0.1, round(bid * 1.02, 1), {"reduceOnly": False,
                        "stopLossPrice": round(bid * 1.05, 1)})  # fmt: skip
        resting = [o for o in paper.orders(VENUE_SYMBOL) if o["type"] == "LIMIT"]
        assert sorted((o["side"], o["origQty"]) for o in resting) == [
            ("BUY", "0.500"),
            ("SELL", "0.100"),
        ]
    finally:
        paper.close()


def test_a_batch_that_breaks_a_cap_together_sends_nothing() -> None:
    # Judged each alone before any send, the batch sent its first order and was refused at
    # the second: half a batch on the venue, which its own up-front check promised never.
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)
    try:
        ex = paper.guarded(Policy.build(risk=CAPPED))
        ex.set_leverage(5, SYMBOL)
        bid = ex.fetch_order_book(SYMBOL)["bids"][0][0]
        order = {"symbol": SYMBOL, "type": "limit", "side": "buy", "amount": 0.5, "price": bid,
                 "params": {"stopLossPrice": round(bid * 0.97, 1)}}  # fmt: skip
        with pytest.raises(OrderDenied, match="NOTIONAL_PER_POSITION") as denied:
            ex.create_orders([order, order])
        assert denied.value.placed == []  # type: ignore[attr-defined]
        assert paper.orders(VENUE_SYMBOL) == []
    finally:
        paper.close()


def test_orders_sent_at_once_are_judged_together() -> None:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)

    async def scenario() -> list[Any]:
        ex = paper.guarded(Policy.build(risk=CAPPED), asyncio=True)
        try:
            await ex.set_leverage(5, SYMBOL)
            last = (await ex.fetch_ticker(SYMBOL))["last"]
            stop = {"stopLossPrice": round(last * 0.97, 1)}
            orders = [ex.create_order(SYMBOL, "market", "buy", 0.5, None, stop) for _ in range(4)]
            return await asyncio.gather(*orders, return_exceptions=True)
        finally:
            await ex.close()

    try:
        results = asyncio.run(scenario())
        filled = [r for r in results if not isinstance(r, Exception)]
        denied = [r for r in results if isinstance(r, OrderDenied)]
        assert (len(filled), len(denied)) == (1, 3)
        assert all(d.code == "NOTIONAL_PER_POSITION" for d in denied)
        assert paper.positions() == {VENUE_SYMBOL: 0.5}
    finally:
        paper.close()


def test_edits_in_flight_at_once_are_judged_together() -> None:
    # Edits carry no client id of their own: keyed by it, two edits in flight overwrote each
    # other in the in-flight set and each skipped the other, so both raised their order past
    # the cap together.
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)

    async def scenario() -> list[Any]:
        ex = paper.guarded(Policy.build(risk=CAPPED), asyncio=True)
        try:
            await ex.set_leverage(5, SYMBOL)
            price = (await ex.fetch_order_book(SYMBOL))["bids"][0][0] - 200
            stop = {"stopLossPrice": round(price * 0.97, 1)}
            first = await ex.create_order(SYMBOL, "limit", "buy", 0.01, price, stop)
            second = await ex.create_order(SYMBOL, "limit", "buy", 0.01, price, stop)
            raw, edit = ex.exchange, ex.exchange.edit_order

            async def on_the_wire(*args: Any, **kwargs: Any) -> Any:
                await asyncio.sleep(0.05)  # both edits are in flight at once
                return await edit(*args, **kwargs)

            raw.edit_order = on_the_wire
            edits = [
                ex.edit_order(order["id"], SYMBOL, "limit", "buy", 0.54, price, stop)
                for order in (first, second)
            ]
            return await asyncio.gather(*edits, return_exceptions=True)
        finally:
            await ex.close()

    try:
        results = asyncio.run(scenario())
        assert sorted(type(r).__name__ for r in results) == ["OrderDenied", "dict"]
        resting = [o for o in paper.orders(VENUE_SYMBOL) if o["type"] == "LIMIT"]
        assert sorted(o["origQty"] for o in resting if o["status"] == "NEW") == ["0.010", "0.540"]
    finally:
        paper.close()


# --- the pure fold ---------------------------------------------------------------------------

TIERS = TierTable.from_rows([(0.0, 10_000_000.0, 0.01, 50.0)])


def _intent(side: str = "buy", **params: Any) -> Any:
    return parse_call(SYMBOL, "limit", side, 0.1, 100.0, params, prefix="t-")


def _resting(side: str, amount: float, price: float, **extra: Any) -> dict[str, Any]:
    order = {"side": side, "amount": amount, "filled": 0.0, "remaining": amount, "price": price}
    order["clientOrderId"] = extra.pop("cid", "other")
    order["id"] = extra.pop("id", "1")
    return {**order, **extra}


def test_what_counts_as_committed() -> None:
    intent = _intent()
    counted = committed(
        intent,
        [
            _resting("buy", 1.0, 100.0),
            _resting("buy", 2.0, 130.0, remaining=0.5),  # partly filled: what is left
            _resting("sell", 5.0, 120.0),  # the other side would reduce
            _resting("buy", 5.0, 90.0, reduceOnly=True),
            _resting("buy", 5.0, 90.0, cid=intent.client_order_id),  # the order itself
        ],
        [_intent(), _intent(reduceOnly=True), _intent("sell")],
        mark=110.0,
    )
    assert counted == Committed(quantity=1.6, price=pytest.approx((100 + 65 + 10) / 1.6), orders=3)
    assert committed(_intent(reduceOnly=True), [_resting("buy", 1.0, 100.0)], [], 110.0) is None
    assert committed(intent, [], [], 110.0) is None


def test_an_edit_does_not_count_the_order_it_replaces() -> None:
    edit = parse_call(SYMBOL, "limit", "buy", 0.1, 100.0, {}, prefix="t-", edit_of="7")
    assert committed(edit, [_resting("buy", 1.0, 100.0, id="7")], [], 110.0) is None


def _leg(side: int, quantity: float, entry: float) -> PositionLeg:
    return PositionLeg(symbol=SYMBOL, side=side, quantity=quantity, entry_price=entry,
                       mark_price=110.0, tiers=TIERS)  # fmt: skip


@pytest.mark.parametrize(
    ("held", "side", "pending", "after"),
    [
        (None, "buy", Committed(2.0, 100.0, 2), (1, 2.0, 100.0)),  # opens a leg
        (_leg(1, 1.0, 90.0), "buy", Committed(1.0, 110.0, 1), (1, 2.0, 100.0)),  # averages
        (_leg(-1, 3.0, 90.0), "buy", Committed(1.0, 110.0, 1), (-1, 2.0, 90.0)),  # reduces
        (_leg(-1, 1.0, 90.0), "buy", Committed(3.0, 110.0, 1), (1, 2.0, 110.0)),  # flips
        (_leg(-1, 1.0, 90.0), "buy", Committed(1.0, 110.0, 1), None),  # closes
    ],
)
def test_the_account_as_if_the_committed_orders_had_filled(
    held: PositionLeg | None, side: str, pending: Committed, after: tuple[int, float, float] | None
) -> None:
    account = Account(wallet_balance=1_000.0, positions=() if held is None else (held,))
    folded = fold(account, SYMBOL, side, pending, tiers=TIERS, mark=110.0, hedge=False,
                  leverage=5.0, isolated=False)  # fmt: skip
    legs = [(leg.side, leg.quantity, leg.entry_price) for leg in folded.positions]
    assert legs == ([] if after is None else [after])


def test_a_fold_past_the_last_tier_is_refused() -> None:
    small = TierTable.from_rows([(0.0, 1_000.0, 0.01, 50.0)])
    with pytest.raises(ValueError, match="past the last tier"):
        fold(Account(wallet_balance=1_000.0), SYMBOL, "buy", Committed(100.0, 110.0, 1),
             tiers=small, mark=110.0, hedge=False, leverage=5.0, isolated=False)  # fmt: skip
