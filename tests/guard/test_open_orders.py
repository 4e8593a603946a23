"""The guard's count of open orders follows the venue: cancels, fills and expiries leave it.

Real ``ccxt.binanceusdm`` on the in-process mock venue, on simulated time that does not move
unless a test moves it: between the guard's scheduled re-reads of the open orders, the count is
only as good as what the guard learns from each answer. ``max_open_orders`` is small so that a
count that only grows shows up as a false ``OPEN_ORDER_COUNT`` denial.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
AMOUNT = 0.002


def _policy(max_open_orders: int = 2, **risk: Any) -> Policy:
    return Policy.build(risk={"require_stop": False, "max_open_orders": max_open_orders, **risk})


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    acct = paper_account(wallet=100_000)
    yield acct
    acct.close()


def _resting_price(ex: Any, side: str = "buy") -> float:
    last = float(ex.fetch_ticker(SYMBOL)["last"])
    return round(last * (0.99 if side == "buy" else 1.01), 1)


def _rest(ex: Any, price: float, side: str = "buy") -> dict[str, Any]:
    order: dict[str, Any] = ex.create_order(SYMBOL, "limit", side, AMOUNT, price)
    assert order["status"] == "open"
    return order


def _counted(ex: Any) -> list[str]:
    """The ids the guard counts as open on SYMBOL (what the verdict's count is made of)."""
    seen = ex.runtime.core.gate.cache.open_orders.get(SYMBOL)
    return [] if seen is None else [str(o["id"]) for o in seen.value]


def _venue_open(account: PaperAccount) -> list[str]:
    return [str(o["orderId"]) for o in account.orders(VENUE_SYMBOL) if o["status"] == "NEW"]


def _denied_for_count(ex: Any, price: float) -> bool:
    """Whether one more resting order is denied for the count (if allowed, it is cancelled)."""
    verdict = ex.preview(SYMBOL, "limit", "buy", AMOUNT, price)
    codes = {str(finding.code) for finding in verdict.denials}
    assert codes <= {Code.OPEN_ORDER_COUNT}, codes
    if codes:
        with pytest.raises(errors.OrderDenied, match=Code.OPEN_ORDER_COUNT):
            ex.create_order(SYMBOL, "limit", "buy", AMOUNT, price)
        return True
    ex.cancel_order(_rest(ex, price)["id"], SYMBOL)
    return False


def test_a_cancel_replace_loop_never_hits_the_open_order_limit(account: PaperAccount) -> None:
    ex = account.guarded(_policy(max_open_orders=50))
    price = _resting_price(ex)
    for _ in range(120):  # simulated time stands still: no scheduled re-read helps
        order = _rest(ex, price)
        ex.cancel_order(order["id"], SYMBOL)
        assert len(_counted(ex)) <= 1  # bounded by what is open, not by what was ever sent
    assert _venue_open(account) == []
    assert _counted(ex) == []


def test_cancel_all_orders_takes_every_plain_order_off_the_count(account: PaperAccount) -> None:
    ex = account.guarded(_policy())
    price = _resting_price(ex)
    _rest(ex, price)
    _rest(ex, price)
    assert _denied_for_count(ex, price)  # the count is real: two open, one more is too many
    ex.cancel_all_orders(SYMBOL)
    assert _venue_open(account) == []
    assert _counted(ex) == []
    assert not _denied_for_count(ex, price)


def test_cancel_orders_takes_the_cancelled_ones_off_the_count(account: PaperAccount) -> None:
    ex = account.guarded(_policy())
    price = _resting_price(ex)
    first, second = _rest(ex, price), _rest(ex, price)
    ex.cancel_orders([first["id"]], SYMBOL)
    assert _venue_open(account) == [second["id"]]
    assert _counted(ex) == [second["id"]]
    assert not _denied_for_count(ex, price)


READS: dict[str, Callable[[Any, dict[str, Any]], object]] = {
    "fetch_order": lambda ex, order: ex.fetch_order(order["id"], SYMBOL),
    "fetch_orders": lambda ex, order: ex.fetch_orders(SYMBOL),
    "fetch_open_orders": lambda ex, order: ex.fetch_open_orders(SYMBOL),
}


@pytest.mark.parametrize("read", sorted(READS))
def test_an_order_that_filled_leaves_the_count_when_a_read_shows_it(
    account: PaperAccount, read: str
) -> None:
    # Market data may be 30 s old, so the guard re-reads the open orders only every 15 s:
    # the fill is learned from the caller's own read, not from the schedule.
    ex = account.guarded(_policy(max_open_orders=1, max_market_data_age_s=30.0))
    order = _rest(ex, _resting_price(ex))
    account.venue.spike(VENUE_SYMBOL, -3.0, 60.0)  # the market trades down through the bid
    account.advance(5.0)  # one venue step
    assert _venue_open(account) == []
    READS[read](ex, order)
    assert _counted(ex) == []


def test_an_order_ended_elsewhere_leaves_the_count_when_fetch_order_shows_it(
    account: PaperAccount,
) -> None:
    ex = account.guarded(_policy(max_open_orders=1))
    price = _resting_price(ex)
    order = _rest(ex, price)
    ex.exchange.cancel_order(order["id"], SYMBOL)  # another client (or the web UI) cancels it
    assert _denied_for_count(ex, price)  # the guard cannot know yet: it counts, safely
    assert ex.fetch_order(order["id"], SYMBOL)["status"] == "canceled"
    assert _counted(ex) == []
    assert not _denied_for_count(ex, price)


def test_orders_that_fill_or_expire_at_once_never_count(account: PaperAccount) -> None:
    ex = account.guarded(_policy(max_open_orders=1))
    last = float(ex.fetch_ticker(SYMBOL)["last"])
    below, above = round(last * 0.99, 1), round(last * 1.01, 1)
    assert ex.create_order(SYMBOL, "market", "buy", AMOUNT)["status"] == "closed"
    assert ex.create_order(SYMBOL, "limit", "buy", AMOUNT, above)["status"] == "closed"
    ioc = ex.create_order(SYMBOL, "limit", "buy", AMOUNT, below, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired"  # the IOC leftover died at once
    with pytest.raises(errors.VenueRejected):  # a FOK that cannot fill is not even recorded
        ex.create_order(SYMBOL, "limit", "buy", AMOUNT, below, {"timeInForce": "FOK"})
    assert _counted(ex) == []
    assert not _denied_for_count(ex, below)


def test_an_order_listed_twice_by_the_venue_counts_once(account: PaperAccount) -> None:
    ex = account.guarded(_policy())
    price = _resting_price(ex)
    order = _rest(ex, price)
    raw = ex.exchange
    answer = raw.fetch_open_orders

    def listed_twice(*args: Any, **kwargs: Any) -> Any:
        orders = answer(*args, **kwargs)
        return orders + orders  # a venue page overlap, a retried read merged twice

    raw.fetch_open_orders = listed_twice
    ex.fetch_open_orders(SYMBOL)
    raw.fetch_open_orders = answer
    assert _counted(ex) == [order["id"]]
    assert not _denied_for_count(ex, price)  # one open + one new fits a limit of two
