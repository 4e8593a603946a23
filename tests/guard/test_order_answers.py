"""The guard learns from its own orders' answers instead of re-reading the account.

A resting order joins the open orders and moves no position; a fill moves the position by the
answer's filled quantity and average price, and the wallet by its commission (at the account's
taker rate, read once with the rules: Binance's order answer carries none) and the realized PnL
of what it reduced. Only what an answer cannot say exactly (a fill whose rate is unknown; a
position that flipped, whose new entry price the aggregate answer does not give) is read again
before the next verdict that adds exposure. The rest is read again on the order path only once
it reaches the age the verdict allows (``risk.max_market_data_age_s``), not before.

Requests are counted on the venue's side: real ccxt ``binanceusdm`` clients on the in-process
mock venue, raw and guarded, each on its own identically seeded venue.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import PaperAccount
from safeguard.testing._paper import DEFAULT_API_KEY, DEFAULT_SECRET, DEFAULT_START
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect, Request, Response

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
POLICY = Policy.build(risk={"require_stop": False}, degradation={"min_samples": 100_000})
ONE_ATTEMPT = Policy.build(
    risk={"require_stop": False}, degradation={"min_samples": 100_000}, retry={"max_attempts": 1}
)
"""A read that fails is not retried: the failure reaches the verdict."""


class CountingDialect(Dialect):
    """The venue's request handling, counting every request it answers by endpoint."""

    def __init__(self, venue: Venue) -> None:
        super().__init__(venue)
        self.requests: Counter[str] = Counter()

    def handle(self, request: Request) -> Response:
        self.requests[f"{request.method} {request.path}"] += 1
        return super().handle(request)

    def since(self, before: Counter[str]) -> Counter[str]:
        return self.requests - before


def _paper() -> tuple[PaperAccount, CountingDialect]:
    clock = ManualClock(DEFAULT_START)
    venue = Venue(VenueConfig(seed=7, symbols=(VENUE_SYMBOL,)), clock=clock)
    venue.create_account(DEFAULT_API_KEY, DEFAULT_SECRET, wallet=10_000.0)
    dialect = CountingDialect(venue)
    return PaperAccount(venue, clock, dialect, DEFAULT_API_KEY, DEFAULT_SECRET), dialect


@pytest.fixture
def venues() -> Iterator[tuple[tuple[PaperAccount, CountingDialect], ...]]:
    pair = (_paper(), _paper())
    yield pair
    for paper, _ in pair:
        paper.close()


@pytest.fixture
def guarded_venue() -> Iterator[tuple[PaperAccount, CountingDialect]]:
    paper, dialect = _paper()
    yield paper, dialect
    paper.close()


def _limits(ex: Any) -> tuple[float, float]:
    mark = float(ex.fetch_ticker(SYMBOL)["last"])
    return round(mark * 0.98, 1), round(mark * 1.02, 1)


def _view(ex: Any) -> Any:
    return ex.runtime.core.gate.cache


def _leg(positions: list[Any]) -> tuple[float, str | None, float] | None:
    for p in positions:
        if p.get("symbol") == SYMBOL and p.get("contracts"):
            return float(p["contracts"]), p.get("side"), float(p["entryPrice"])
    return None


def _with_a_resting_limit(paper: PaperAccount, tmp_path: Path) -> tuple[Any, float]:
    """A guarded client whose first order (a resting buy, returned with its price) made it
    read its view."""
    ex = paper.guarded(POLICY, state_dir=tmp_path)
    ex.load_markets()
    low, _ = _limits(ex)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    return ex, low


def _sent_after_a_first_order(
    venues: tuple[tuple[PaperAccount, CountingDialect], ...],
    tmp_path: Path,
    orders: Callable[[Any, bool, tuple[float, float]], None],
) -> tuple[Counter[str], Counter[str], Any]:
    """What raw ccxt and the guard each send for ``orders(client, raw, (low, high))``, after
    a first resting limit (for the guard: after the reads that build its view)."""
    (raw_paper, raw_venue), (paper, venue) = venues
    raw = raw_paper.client()
    ex = paper.guarded(POLICY, state_dir=tmp_path)
    counted = []
    for client, requests in ((raw, raw_venue), (ex, venue)):
        client.load_markets()
        limits = _limits(client)
        client.create_order(SYMBOL, "limit", "buy", 0.01, limits[0])
        before = Counter(requests.requests)
        orders(client, client is raw, limits)
        counted.append(requests.since(before))
    return counted[0], counted[1], ex


def test_a_resting_limit_then_a_second_order_sends_what_raw_ccxt_sends(
    venues: tuple[tuple[PaperAccount, CountingDialect], ...], tmp_path: Path
) -> None:
    def orders(client: Any, raw: bool, limits: tuple[float, float]) -> None:
        client.create_order(SYMBOL, "limit", "buy", 0.01, limits[0])
        client.create_order(SYMBOL, "limit", "sell", 0.01, limits[1])

    raw_sent, guarded_sent, ex = _sent_after_a_first_order(venues, tmp_path, orders)
    paper = venues[1][0]
    assert raw_sent == Counter({"POST /fapi/v1/order": 2})
    assert guarded_sent == raw_sent
    assert len(_view(ex).open_orders[SYMBOL].value) == 3
    # Their margin is held in the view as the venue holds it.
    free = float(paper.client().fetch_balance()["free"]["USDT"])
    assert float(_view(ex).balance.value["free"]["USDT"]) == pytest.approx(free, abs=1e-6)


def test_a_fill_moves_the_position_in_the_view_as_the_venue_moves_it(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    paper, venue = guarded_venue
    ex, low = _with_a_resting_limit(paper, tmp_path)
    for side, amount in (("buy", 0.05), ("buy", 0.03), ("sell", 0.02)):
        before = Counter(venue.requests)
        ex.create_order(SYMBOL, "market", side, amount)
        sent = venue.since(before)
        # The position came from the answer, and no account read was needed for it.
        assert sent["GET /fapi/v3/positionRisk"] == 0, sent
        view = _leg(_view(ex).positions.value)
        truth = _leg(paper.client().fetch_positions())
        assert view is not None
        assert truth is not None
        assert view[:2] == truth[:2]
        assert view[2] == pytest.approx(truth[2], rel=1e-9)
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    sent = venue.since(before)
    assert sent == Counter({"POST /fapi/v1/order": 1})
    wallet = float(paper.client().fetch_balance()["total"]["USDT"])
    assert float(_view(ex).balance.value["total"]["USDT"]) == pytest.approx(wallet, abs=0.01)


def _wallet(balance: Any) -> tuple[float, float, float]:
    """Wallet balance, available balance and margin balance, as the guard's verdict reads them."""
    (asset,) = [a for a in balance["info"]["assets"] if a["asset"] == "USDT"]
    return (
        float(asset["walletBalance"]),
        float(balance["free"]["USDT"]),
        float(balance["total"]["USDT"]),
    )


def test_fills_move_the_wallet_in_the_view_as_the_venue_moves_it(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    paper, venue = guarded_venue
    ex, _ = _with_a_resting_limit(paper, tmp_path)
    start = _wallet(paper.client().fetch_balance())
    # Open, add, reduce, close: commission on each, realized PnL on the last two.
    for side, amount, params in (
        ("buy", 0.05, {}),
        ("buy", 0.03, {}),
        ("sell", 0.02, {}),
        ("sell", 0.06, {"reduceOnly": True}),
    ):
        before = Counter(venue.requests)
        ex.create_order(SYMBOL, "market", side, amount, None, params)
        assert venue.since(before) == Counter({"POST /fapi/v1/order": 1}), (side, amount)
        truth = _wallet(paper.client().fetch_balance())
        view = _wallet(_view(ex).balance.value)
        assert view == pytest.approx(truth, abs=0.01), (side, amount)
    assert paper.positions() == {}
    assert truth[0] < start[0]  # the wallet did move: four commissions


def test_an_order_on_a_view_within_its_allowed_age_sends_what_raw_ccxt_sends(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    """Past the view's schedule (half of ``risk.max_market_data_age_s``) but within the age
    the verdict allows, the view is still fresh: the order path reads nothing."""
    paper, venue = guarded_venue
    ex, low = _with_a_resting_limit(paper, tmp_path)
    paper.advance(POLICY.risk.max_market_data_age_s * 0.9)
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    assert venue.since(before) == Counter({"POST /fapi/v1/order": 1})


def test_the_account_is_reconciled_once_when_it_reaches_its_allowed_age(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    paper, venue = guarded_venue
    ex, low = _with_a_resting_limit(paper, tmp_path)
    paper.advance(POLICY.risk.max_market_data_age_s)
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    ex.create_order(SYMBOL, "limit", "buy", 0.01, low)
    sent = venue.since(before)
    for read in (
        "GET /fapi/v3/account",
        "GET /fapi/v3/positionRisk",
        "GET /fapi/v1/openOrders",
        "GET /fapi/v1/symbolConfig",
    ):
        assert sent[read] == 1, (read, sent)
    assert sent["POST /fapi/v1/order"] == 2


def test_a_fill_the_guard_cannot_apply_is_read_before_new_exposure(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    paper, venue = guarded_venue
    ex = paper.guarded(ONE_ATTEMPT, state_dir=tmp_path)
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.05)
    # Long 0.05, sell 0.08: the position flips, and its new entry price is the price of the
    # part that opened it, which one aggregate answer does not give.
    ex.create_order(SYMBOL, "market", "sell", 0.08)
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "market", "sell", 0.01)
    assert venue.since(before)["GET /fapi/v3/positionRisk"] == 1
    truth = _leg(paper.client().fetch_positions())
    view = _leg(_view(ex).positions.value)
    assert view is not None
    assert view[:2] == truth[:2]
    # The same flip again with the re-read failing: new exposure is denied.
    ex.create_order(SYMBOL, "market", "buy", 0.12)
    paper.set_faults(
        {"rules": [{"kind": "error", "endpoint": "GET /fapi/v3/positionRisk", "status": 503}]}
    )
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert denied.value.code == Code.MISSING_ACCOUNT
    assert paper.positions() == {VENUE_SYMBOL: pytest.approx(0.08)}


def test_a_fill_whose_commission_rate_is_unknown_is_read_before_new_exposure(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    paper, venue = guarded_venue
    paper.set_faults(
        {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/commissionRate", "status": 503}]}
    )
    ex = paper.guarded(ONE_ATTEMPT, state_dir=tmp_path)
    ex.load_markets()
    assert SYMBOL not in _view(ex).fees
    ex.create_order(SYMBOL, "market", "buy", 0.05)
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert venue.since(before)["GET /fapi/v3/account"] == 1
    # The second fill's commission is unknown too: the wallet waits for its re-read.
    assert not math.isfinite(_view(ex).balance.fetched)
    # With the wallet re-read failing too, new exposure is denied.
    paper.set_faults(
        {
            "rules": [
                {"kind": "error", "endpoint": "GET /fapi/v1/commissionRate", "status": 503},
                {"kind": "error", "endpoint": "GET /fapi/v3/account", "status": 503},
            ]
        }
    )
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert denied.value.code == Code.MISSING_ACCOUNT
    assert paper.positions() == {VENUE_SYMBOL: pytest.approx(0.06)}


def test_a_protective_stop_and_a_fill_add_no_request(
    venues: tuple[tuple[PaperAccount, CountingDialect], ...], tmp_path: Path
) -> None:
    def orders(client: Any, raw: bool, limits: tuple[float, float]) -> None:
        stop = round(limits[0] * 0.95, 1)
        for _ in range(2):
            if raw:
                client.create_order(SYMBOL, "market", "buy", 0.01)
                client.create_order(
                    SYMBOL, "market", "sell", 0.01, None, {"stopPrice": stop, "reduceOnly": True}
                )
            else:
                client.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": stop})

    raw_sent, guarded_sent, _ = _sent_after_a_first_order(venues, tmp_path, orders)
    assert raw_sent == Counter({"POST /fapi/v1/order": 2, "POST /fapi/v1/algoOrder": 2})
    assert guarded_sent == raw_sent


def test_market_orders_send_what_raw_ccxt_sends(
    venues: tuple[tuple[PaperAccount, CountingDialect], ...], tmp_path: Path
) -> None:
    def orders(client: Any, raw: bool, limits: tuple[float, float]) -> None:
        client.create_order(SYMBOL, "market", "buy", 0.02)
        client.create_order(SYMBOL, "market", "sell", 0.01)
        client.create_order(SYMBOL, "market", "buy", 0.01)

    raw_sent, guarded_sent, _ = _sent_after_a_first_order(venues, tmp_path, orders)
    assert raw_sent == Counter({"POST /fapi/v1/order": 3})
    assert guarded_sent == raw_sent


def test_the_first_order_reads_the_tier_ladder_once(
    guarded_venue: tuple[PaperAccount, CountingDialect], tmp_path: Path
) -> None:
    # The verdict reads the ladder (fetch_leverage_tiers), and ccxt's fetch_positions loads
    # the same brackets for itself: ccxt is handed the guard's read instead.
    paper, venue = guarded_venue
    ex = paper.guarded(POLICY, state_dir=tmp_path)
    ex.load_markets()
    before = Counter(venue.requests)
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    sent = venue.since(before)
    assert sent["GET /fapi/v1/leverageBracket"] == 1
    assert sent["GET /fapi/v3/positionRisk"] == 1
    # ccxt's positions still carry what the brackets give it (the maintenance margin).
    [position] = [p for p in ex.fetch_positions() if p["contracts"]]
    [row] = paper.venue.position_risk(paper.api_key, VENUE_SYMBOL)
    assert position["maintenanceMarginPercentage"] == pytest.approx(
        float(ex.fetch_leverage_tiers([SYMBOL])[SYMBOL][0]["maintenanceMarginRate"])
    )
    assert position["entryPrice"] == pytest.approx(float(row["entryPrice"]))
