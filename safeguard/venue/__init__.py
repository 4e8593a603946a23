"""A mock Binance USD-M perpetuals venue, for testing bots and safeguard itself.

The **engine** (:class:`Venue`) is a pure simulation: seeded prices (an index with volatility
regimes, jumps and scripted spikes, or a CSV replay), a contract price with its own book, a mark
price that smooths the basis, accounts with cross and isolated margin, orders of every common
type, funding and liquidation against the real tiered maintenance ladder. It speaks Binance's
semantics and error codes directly and never does I/O; time comes from a clock the caller
drives. The transports (HTTP and websocket server, in-process ccxt routing, the stream hub,
faults, rate limits) sit on top; they follow the engine through its listeners
(``Venue.add_listener``: every event, plus order updates, account changes and margin calls as
they happen), which is what the user-data stream is made of.

A day of market in well under a second::

    from safeguard._clock import ManualClock
    from safeguard.venue import Liquidation, Venue, VenueConfig

    venue = Venue(VenueConfig(seed=7), clock=ManualClock())
    venue.create_account("key", "secret", wallet=100.0)
    venue.set_leverage("key", symbol="BTCUSDT", leverage=100)
    venue.place_order("key", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    venue.spike("BTCUSDT", -3.0, duration_s=120)   # a wick on this venue; the index holds
    venue.advance(86_400)                           # prices, funding, stops, liquidations
    [liquidation] = venue.liquidations()            # fee, shortfall, insurance fund after

Money is exact: every cash flow is an integer of 1e-8 USDT recorded in ``venue.events``, and
an account's wallet is its deposit plus the sum of its events' ``wallet_delta_units``.

The engine's modules, one idea each: ``markets`` (listings and filters), ``prices`` (index,
contract and mark), ``book`` (the market makers' book), ``state`` (one symbol's live market),
``matching`` (price-time priority across the book and the accounts), ``orders`` (request checks
and the order record), ``accounts`` (positions and exact money), ``funding`` (the rule, and the
collaborator that settles it), ``liquidation`` (the rules), ``events``, ``views`` (Binance
answer shapes), ``config`` and ``errors``. The collaborators that act on them, each owning its
state: ``timeline`` (the time of record, the event log, the listeners), ``ledger`` (the
accounts), ``trading`` (orders: matching and settlement), ``liquidator`` (liquidation, ADL, the
insurance fund) and ``statements`` (what an account is shown); ``engine`` is the :class:`Venue`
facade that keeps the markets and time and routes every call to them. Over it: ``dialect``
(REST), ``streams`` (websocket streams), ``server`` and ``inprocess`` (the transports),
``faults`` and ``ratelimit``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy
from safeguard.venue._config import BookConfig, Crowd, Regime, Spike, VenueConfig
from safeguard.venue._engine import FeedFreeze, Venue
from safeguard.venue._errors import VenueReject
from safeguard.venue._events import (
    AccountChanged,
    AutoDeleveraged,
    Fill,
    FundingPayment,
    LeverageChanged,
    Liquidation,
    MarginCall,
    MarketStepped,
    Notice,
    OrderExpired,
    OrderTriggered,
    OrderUpdate,
    VenueEvent,
)
from safeguard.venue._markets import DEFAULT_MARKETS, MONEY_SCALE, MarketSpec
from safeguard.venue._prices import ReplaySeries

if TYPE_CHECKING:
    from safeguard.venue._client import ccxt_client, configure
    from safeguard.venue._dialect import Dialect, Request, Response
    from safeguard.venue._faults import FaultPlan
    from safeguard.venue._inprocess import inprocess_client
    from safeguard.venue._server import VenueServer, serve

# The transports import ccxt (about a second); load them on first use so the engine alone
# (and the command line) stays quick to import.
_LAZY: dict[str, str] = {
    "Dialect": "safeguard.venue._dialect",
    "FaultPlan": "safeguard.venue._faults",
    "Request": "safeguard.venue._dialect",
    "Response": "safeguard.venue._dialect",
    "VenueServer": "safeguard.venue._server",
    "ccxt_client": "safeguard.venue._client",
    "configure": "safeguard.venue._client",
    "inprocess_client": "safeguard.venue._inprocess",
    "serve": "safeguard.venue._server",
}


__getattr__, __dir__ = _lazy.lazy_exports(__name__, _LAZY, globals())


__all__ = [
    "DEFAULT_MARKETS",
    "MONEY_SCALE",
    "AccountChanged",
    "AutoDeleveraged",
    "BookConfig",
    "Crowd",
    "Dialect",
    "FaultPlan",
    "FeedFreeze",
    "Fill",
    "FundingPayment",
    "LeverageChanged",
    "Liquidation",
    "MarginCall",
    "MarketSpec",
    "MarketStepped",
    "Notice",
    "OrderExpired",
    "OrderTriggered",
    "OrderUpdate",
    "Regime",
    "ReplaySeries",
    "Request",
    "Response",
    "Spike",
    "Venue",
    "VenueConfig",
    "VenueEvent",
    "VenueReject",
    "VenueServer",
    "ccxt_client",
    "configure",
    "inprocess_client",
    "serve",
]
