"""Testing your own strategy with safeguard's pytest fixtures.

Installing safeguard registers its fixtures with pytest (no import, no conftest needed):
``sg_paper`` (a funded account on a seeded mock venue, on simulated time), ``sg_guarded`` (the
guarded exchange over a real in-process ccxt client), ``sg_faults`` (apply a fault plan),
``sg_venue_server`` (the same venue on loopback HTTP) and more; ``pytest --fixtures`` lists
them. Override ``sg_policy``, ``sg_seed``, ``sg_wallet`` or ``sg_venue_config`` to change what
they build, as this file does with the policy.

    pytest examples/test_my_strategy.py

Each test judges by the venue's own books (``sg_paper.orders()``, ``sg_paper.positions()``),
never by what the strategy believes, because the bugs worth finding are where the two differ.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from safeguard import OrderDenied, OutcomeUnknown, Policy, SafeguardError
from safeguard.testing import FaultSwitch, PaperAccount, strip_attached_stops
from safeguard.venue import VenueServer, ccxt_client

SYMBOL = "BTC/USDT:USDT"
VENUE_SYMBOL = "BTCUSDT"
BAR_S = 120.0
BARS = 120  # four simulated hours

# The venue took the order, but the answer is a 503 or never comes.
AMBIGUOUS = {
    "seed": 1,
    "rules": [
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "processed": True,
         "probability": 0.3},
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/*", "probability": 0.2},
    ],
}  # fmt: skip


class DipBuyer:
    """The strategy under test: buy a dip from the recent high, protected by a stop; sell when
    the price is back at the high."""

    def __init__(self, symbol: str, *, dip: float = 0.002, stop_distance: float = 0.03) -> None:
        self.symbol = symbol
        self.dip = dip
        self.stop_distance = stop_distance
        self.high = 0.0
        self.stop_id: str | None = None
        self.leverage_set = False

    def on_bar(self, exchange: Any) -> None:
        if not self.leverage_set:
            # The venue's default is 20x; the policy allows 5x, and the guard knows the
            # difference, so say what the strategy trades at before its first order.
            exchange.set_leverage(5, self.symbol)
            self.leverage_set = True
        price = float(exchange.fetch_ticker(self.symbol)["last"])
        self.high = max(self.high * 0.999, price)  # a slowly forgetting high
        held = sum(float(p["contracts"] or 0) for p in exchange.fetch_positions([self.symbol]))
        if not held and price <= self.high * (1 - self.dip):
            self._buy(exchange, price)
        elif held and price >= self.high:
            self._sell(exchange, held)

    def _buy(self, exchange: Any, price: float) -> None:
        stop = float(exchange.price_to_precision(self.symbol, price * (1 - self.stop_distance)))
        order = exchange.create_order(
            self.symbol, "market", "buy", 0.02, None, {"stopLoss": {"triggerPrice": stop}}
        )
        protect = exchange.create_order(
            self.symbol, "market", "sell", order["filled"], None,
            {"stopLossPrice": stop, "reduceOnly": True},
        )  # fmt: skip
        self.stop_id = str(protect["id"])

    def _sell(self, exchange: Any, held: float) -> None:
        exchange.create_order(self.symbol, "market", "sell", held, None, {"reduceOnly": True})
        self.stop_id = None
        for stop in exchange.fetch_open_orders(self.symbol, None, None, {"trigger": True}):
            exchange.cancel_order(stop["id"], self.symbol, {"trigger": True})


@pytest.fixture
def sg_policy() -> Policy:
    """Test under the limits the bot will run with (the fixtures keep its state in tmp_path)."""
    return Policy.load(Path(__file__).resolve().parent / "policy.toml")


def run(strategy: DipBuyer, exchange: Any, paper: PaperAccount, bars: int = BARS) -> list[str]:
    """Drive the strategy bar by bar on simulated time; returns the guard's refusals."""
    refusals = []
    for _ in range(bars):
        paper.advance(BAR_S)
        try:
            strategy.on_bar(exchange)
        except OutcomeUnknown:
            exchange.reconcile()  # the order may exist: look it up, never resend it
        except SafeguardError as exc:
            refusals.append(exc.code)
    return refusals


def test_every_open_position_has_a_resting_stop(sg_guarded: Any, sg_paper: PaperAccount) -> None:
    strategy = DipBuyer(SYMBOL)
    bars_in_position = 0
    for _ in range(BARS):
        sg_paper.advance(BAR_S)
        strategy.on_bar(sg_guarded)
        held = sg_paper.positions().get(VENUE_SYMBOL, 0.0)
        if held:
            bars_in_position += 1
            stops = [
                o
                for o in sg_paper.venue.open_orders(sg_paper.api_key, symbol=VENUE_SYMBOL)
                if o["type"] == "STOP_MARKET" and o["reduceOnly"]
            ]
            assert sum(float(o["origQty"]) for o in stops) >= abs(held)
    assert bars_in_position > 0, "the strategy never traded: the test proved nothing"


def test_my_policy_never_has_to_deny_the_strategy(sg_guarded: Any, sg_paper: PaperAccount) -> None:
    refusals = run(DipBuyer(SYMBOL), sg_guarded, sg_paper)
    assert refusals == []
    assert sg_paper.orders(), "the strategy never traded"


def test_a_stop_inside_liquidation_is_denied_before_it_is_sent(
    sg_guarded: Any, sg_paper: PaperAccount
) -> None:
    sg_guarded.set_margin_mode("isolated", SYMBOL)
    sg_guarded.set_leverage(5, SYMBOL)
    reckless = DipBuyer(SYMBOL, stop_distance=0.25)  # a stop beyond the 5x liquidation price
    price = float(sg_guarded.fetch_ticker(SYMBOL)["last"])
    with pytest.raises(OrderDenied) as denied:
        reckless._buy(sg_guarded, price)
    assert denied.value.code == "STOP_BEYOND_LIQUIDATION"
    assert sg_paper.orders() == []


def test_no_order_is_doubled_when_the_venue_fails(
    sg_guarded: Any, sg_paper: PaperAccount, sg_faults: FaultSwitch
) -> None:
    sg_faults(AMBIGUOUS)
    run(DipBuyer(SYMBOL), sg_guarded, sg_paper)
    assert sum(sg_faults.fired) > 0, "no fault fired: the test proved nothing"
    client_ids = [o["clientOrderId"] for o in sg_paper.orders()]
    assert len(client_ids) == len(set(client_ids))
    # once the venue answers again, nothing is left unaccounted for
    sg_faults.clear()
    sg_guarded.reconcile()
    assert sg_guarded.runtime.core.journal.unresolved() == []


def test_the_same_strategy_runs_unchanged_over_http(
    sg_venue_server: VenueServer, sg_paper: PaperAccount
) -> None:
    # Plain ccxt on the loopback venue, as against Binance. Binance has no stop attached to an
    # order, so the declared stop (for the guard's verdict) is dropped before the wire.
    client = strip_attached_stops(
        ccxt_client(sg_venue_server.url, sg_paper.api_key, sg_paper.secret)
    )
    strategy = DipBuyer(SYMBOL)
    for _ in range(BARS):
        sg_paper.advance(BAR_S)
        strategy.on_bar(client)
    assert sg_paper.orders(), "the strategy never traded"
