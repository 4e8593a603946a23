"""What happened on the venue, recorded as values in the order it happened (never changed later).

Money fields ending in ``_units`` are exact integers of 1e-8 quote
(:data:`~safeguard.venue._markets.MONEY_SCALE`); the float properties are for reading. An
account's wallet always equals its starting deposit plus the sum of the ``wallet_delta_units``
of its events, to the unit: tests and paper reports reconcile on that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from safeguard.venue._markets import MONEY_SCALE


@dataclass(slots=True, unsafe_hash=True)
class Fill:
    """One execution of an account's order against the venue's liquidity.

    Read-only by convention rather than ``frozen=True``: a frozen dataclass sets each of its
    13 fields through ``object.__setattr__``, which made recording a fill cost several times
    what building it plainly does, on the matching hot path. Equality, hashing and ``repr`` are
    those of the frozen version.
    """

    time: float
    api_key: str
    symbol: str
    order_id: int
    client_order_id: str
    trade_id: int
    side: str
    position_side: str
    price: float
    qty: float
    maker: bool
    realized_pnl_units: int
    fee_units: int

    @property
    def wallet_delta_units(self) -> int:
        return self.realized_pnl_units - self.fee_units

    @property
    def fee(self) -> float:
        return self.fee_units / MONEY_SCALE

    @property
    def realized_pnl(self) -> float:
        return self.realized_pnl_units / MONEY_SCALE


@dataclass(frozen=True, slots=True)
class FundingPayment:
    """Funding exchanged at ``time``: ``amount_units`` > 0 is received, < 0 is paid."""

    time: float
    api_key: str
    symbol: str
    position_side: str
    rate: float
    mark_price: float
    position_qty: float
    amount_units: int

    @property
    def wallet_delta_units(self) -> int:
        return self.amount_units

    @property
    def amount(self) -> float:
        return self.amount_units / MONEY_SCALE


@dataclass(frozen=True, slots=True)
class Liquidation:
    """One liquidation order of the venue's: a partial step, a take-over, or a take-over
    settled by auto-deleveraging (``kind``: ``PARTIAL``, ``TAKEOVER``, ``ADL``).

    ``PARTIAL``: a large position is cut to a lower tier by a market order into the book. The
    trader realises ``realized_pnl_units`` at the fill prices (so bears the slippage) and pays
    the liquidation clearance fee (``fee_units``) to the insurance fund; the rest stays open.

    ``TAKEOVER``: the trader realises ``realized_pnl_units`` at ``mark_price`` and pays the
    fee, both bounded by the collateral left (``fee_units`` is what was actually charged, at
    most ``fee_rate * notional``). A loss beyond the collateral is ``shortfall_units``, paid by
    the insurance fund. The venue then closes the position into its book at
    ``close_avg_price``; the fund gains the fee and what the close did better than the mark,
    and loses the shortfall and what it did worse: ``insurance_delta_units`` in all.

    ``ADL``: the fund could not absorb the take-over. The trader loses exactly the collateral
    (closed at ``bankruptcy_price``, no fee); the position goes to the top-ranked opposite
    positions at that price (:class:`AutoDeleveraged`), any rest into the book at the fund's
    risk. ``slippage_units`` is the close against the mark (> 0 better) for every kind;
    ``tran_ids`` are the income rows (``/fapi/v1/income``) this event booked.
    """

    time: float
    api_key: str
    symbol: str
    position_side: str
    margin_type: str
    qty: float
    entry_price: float
    mark_price: float
    maintenance_margin: float
    equity_before: float
    realized_pnl_units: int
    fee_units: int
    shortfall_units: int
    close_avg_price: float
    close_qty: float
    insurance_delta_units: int
    insurance_fund_after_units: int
    kind: str = "TAKEOVER"
    trigger_id: int = 0
    """Events of one trigger (its partial steps, then any take-over) share it."""
    bankruptcy_price: float = 0.0
    slippage_units: int = 0
    position_after: float = 0.0
    """The leg's signed size once this order is done (0 after a take-over)."""
    smallest_healthy_close: float | None = None
    """At the trigger, the least quantity whose close at the mark, with the fee, would have
    made the account healthy again; None when only closing all of it would."""
    adl_qty: float = 0.0
    tran_ids: tuple[int, ...] = ()

    @property
    def wallet_delta_units(self) -> int:
        return self.realized_pnl_units - self.fee_units + self.shortfall_units

    @property
    def partial_would_suffice(self) -> bool:
        return self.smallest_healthy_close is not None

    @property
    def fee(self) -> float:
        return self.fee_units / MONEY_SCALE

    @property
    def insurance_fund_after(self) -> float:
        return self.insurance_fund_after_units / MONEY_SCALE


@dataclass(frozen=True, slots=True)
class AutoDeleveraged:
    """An opposite position closed against a bankrupt one at its bankruptcy price, no fee.

    Chosen by Binance's ADL ranking (profit ratio times leverage, highest first);
    ``rank_score`` is the score it was chosen on. ``trigger_id`` names the
    :class:`Liquidation` (kind ``ADL``) it served.
    """

    time: float
    api_key: str
    symbol: str
    position_side: str
    qty: float
    """Signed size closed (> 0: a long was cut, by a sell)."""
    price: float
    mark_price: float
    realized_pnl_units: int
    rank_score: float
    trigger_id: int
    position_after: float
    tran_ids: tuple[int, ...] = ()

    @property
    def wallet_delta_units(self) -> int:
        return self.realized_pnl_units


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A stop-market or take-profit-market order's trigger was reached."""

    time: float
    api_key: str
    symbol: str
    order_id: int
    working_type: str
    trigger_price: float
    stop_price: float


@dataclass(frozen=True, slots=True)
class OrderExpired:
    """An order left the book without filling in full, and why (``reason``)."""

    time: float
    api_key: str
    symbol: str
    order_id: int
    reason: str


VenueEvent = Fill | FundingPayment | Liquidation | AutoDeleveraged | OrderTriggered | OrderExpired


# --- notices: what a venue listener hears besides the events above -------------------------
#
# Not recorded in ``venue.events`` (they move no money and would only grow the record): they
# are handed to listeners (``Venue.add_listener``) as they happen, in order with the events,
# and only built while someone listens. The user-data stream is built from them.


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order changed: ``execution`` is Binance's ``x`` (NEW, TRADE, CANCELED, EXPIRED).

    ``order`` is the order's ``/fapi/v1/order`` answer at that moment (with a fill: the
    cumulative quantity and average price including it); ``fill`` is the fill of a TRADE.
    """

    time: float
    api_key: str
    symbol: str
    execution: str
    order: Mapping[str, Any]
    fill: Fill | None = None


@dataclass(frozen=True, slots=True)
class AccountChanged:
    """Balances or positions of ``symbols`` changed, for ``reason`` (Binance's ``m``:
    ORDER, FUNDING_FEE, MARGIN_TYPE_CHANGE, ...). ``balance_change_units`` is what moved the
    wallet other than PnL and fees (funding), Binance's ``bc``."""

    time: float
    api_key: str
    reason: str
    symbols: tuple[str, ...]
    balance_change_units: int = 0


@dataclass(frozen=True, slots=True)
class LeverageChanged:
    time: float
    api_key: str
    symbol: str
    leverage: int


@dataclass(frozen=True, slots=True)
class MarginCall:
    """The account's maintenance margin reached ``ratio`` of its margin balance (sent once
    per approach; re-armed when the ratio falls back)."""

    time: float
    api_key: str
    margin_balance: float
    maintenance_margin: float
    symbols: tuple[str, ...]

    @property
    def ratio(self) -> float:
        return self.maintenance_margin / self.margin_balance if self.margin_balance > 0 else 1.0


@dataclass(frozen=True, slots=True)
class MarketStepped:
    """The venue's time moved to ``time`` (running any simulation steps that fell due): what
    streams publish from may have changed, prices or the periods on the venue's clock."""

    time: float


Notice = VenueEvent | OrderUpdate | AccountChanged | LeverageChanged | MarginCall | MarketStepped

__all__ = [
    "AccountChanged",
    "AutoDeleveraged",
    "Fill",
    "FundingPayment",
    "LeverageChanged",
    "Liquidation",
    "MarginCall",
    "MarketStepped",
    "Notice",
    "OrderExpired",
    "OrderTriggered",
    "OrderUpdate",
    "VenueEvent",
]
