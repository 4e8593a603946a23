"""What an order will really cost: fill prices and fees, on a calm venue and on a sick one.

A :class:`FillModel` has two faces built from :class:`safeguard._config.FillModelConfig`:

- **expected**: the fee the order type implies (maker for a resting limit, taker for anything
  that takes) and the visible book as it is.
- **degraded**, for a venue that is slow or throttling: a maker order is assumed to end up
  taking (it was repriced or chased), slippage is multiplied, a share of every level is
  assumed gone by the time the order lands, and the price drifts against the order by
  ``drift_sigmas x volatility x sqrt(latency / volatility_window)`` while it travels.

``volatility`` everywhere is the standard deviation of returns over ``window_s`` (a fraction:
0.01 is 1 %), so a drift over a latency of ``L`` seconds scales it by ``sqrt(L / window_s)``.
A limit price is never crossed: slippage and drift can make a limit fill worse, never worse
than its limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from safeguard._config import FillModelConfig
from safeguard.risk import _inputs
from safeguard.risk._book import SIDES, OrderBook, Side


class FillFace(StrEnum):
    """Which face of the fill model prices an order."""

    EXPECTED = "expected"
    DEGRADED = "degraded"


class Quote(NamedTuple):
    """A priced fill without its context: what :class:`FillTerms` computes on the hot path."""

    price: float
    """Average price of the whole amount (taken part and resting part), before fees."""
    fee_rate: float
    """Blended fee rate of the whole amount (taker on what takes, maker on what rests)."""
    taken: float
    """Base amount that takes liquidity; the rest rests at the limit."""
    unfilled: float
    """Part of the taken amount the visible book (after the haircut) could not absorb."""
    slippage_bps: float
    """Versus the reference (touch for entries, trigger for stops), after the multiplier."""
    drift_bps: float


@dataclass(frozen=True, slots=True)
class Fill:
    """A priced fill. ``price`` is before fees; ``effective_price`` folds the fee in."""

    face: FillFace
    side: Side
    amount: float
    price: float
    fee_rate: float
    taken: float
    unfilled: float
    slippage_bps: float
    drift_bps: float

    @property
    def notional(self) -> float:
        return self.amount * self.price

    @property
    def fee(self) -> float:
        """Fee in quote currency (negative for a maker rebate)."""
        return self.notional * self.fee_rate

    @property
    def effective_price(self) -> float:
        """The price after the fee: what a buy really pays or a sell really receives per unit."""
        return effective_price(self.side, self.price, self.fee_rate)


def effective_price(side: Side, price: float, fee_rate: float) -> float:
    """``price`` after a fee: a buy pays more per unit, a sell receives less."""
    return price * (1.0 + fee_rate) if side == "buy" else price * (1.0 - fee_rate)


@dataclass(frozen=True, slots=True)
class FillTerms:
    """One face of the fill model: fees, slippage, depth and drift assumptions."""

    face: FillFace
    maker_fee: float
    taker_fee: float
    taker_for_maker: bool
    slippage_multiplier: float
    depth_haircut: float
    latency_s: float
    drift_sigmas: float

    def __post_init__(self) -> None:
        _inputs.number("maker_fee", self.maker_fee)
        _inputs.non_negative("taker_fee", self.taker_fee)
        _inputs.flag("taker_for_maker", self.taker_for_maker)
        if _inputs.number("slippage_multiplier", self.slippage_multiplier) < 1.0:
            raise ValueError(f"slippage_multiplier must be >= 1, got {self.slippage_multiplier!r}")
        _inputs.fraction_below_one("depth_haircut", self.depth_haircut)
        _inputs.non_negative("latency_s", self.latency_s)
        _inputs.non_negative("drift_sigmas", self.drift_sigmas)

    @property
    def resting_fee(self) -> float:
        """Fee of the part of an order that rests on the book."""
        return self.taker_fee if self.taker_for_maker else self.maker_fee

    def drift_fraction(self, volatility: float, window_s: float) -> float:
        """Adverse move while the order travels, as a fraction of price."""
        if self.latency_s == 0.0 or self.drift_sigmas == 0.0:
            return 0.0
        return self.drift_sigmas * volatility * math.sqrt(self.latency_s / window_s)

    def entry(
        self,
        book: OrderBook,
        side: Side,
        amount: float,
        *,
        limit_price: float | None,
        volatility: float,
        window_s: float,
    ) -> Fill:
        """Price an entry: a market order (``limit_price=None``) or a limit order.

        A limit order takes what the book offers up to its limit and rests the rest at the
        limit. Post-only orders should be priced with a non-marketable limit (the verdict
        denies post-only orders that would take).
        """
        _check_pricing_args(side, amount, volatility, window_s)
        if limit_price is not None:
            _inputs.positive("limit_price", limit_price)
        quote = self.quote_entry(book, side, amount, limit_price, volatility, window_s)
        return Fill(self.face, side, amount, *quote)

    def stop_exit(
        self,
        book: OrderBook,
        side: Side,
        amount: float,
        *,
        trigger_price: float,
        stop_slippage_bps: float,
        volatility: float,
        window_s: float,
    ) -> Fill:
        """Price a stop-market close of ``amount`` on ``side`` once ``trigger_price`` is hit.

        The close pays the policy's assumed stop slippage plus what walking today's book for
        the closing size costs (today's book standing in for the book at trigger time), both
        scaled by the multiplier, then the drift; always at the taker fee.
        """
        _check_pricing_args(side, amount, volatility, window_s)
        _inputs.positive("trigger_price", trigger_price)
        _inputs.non_negative("stop_slippage_bps", stop_slippage_bps)
        quote = self.quote_stop(
            book, side, amount, trigger_price, stop_slippage_bps, volatility, window_s
        )
        return Fill(self.face, side, amount, *quote)

    # The two ``quote_*`` methods are the arithmetic of ``entry`` and ``stop_exit`` without
    # argument checks or result objects: the verdict prices every order on one or two faces
    # from inputs its value types validated already, and it is on a bot's order path.

    def quote_entry(
        self,
        book: OrderBook,
        side: Side,
        amount: float,
        limit_price: float | None,
        volatility: float,
        window_s: float,
    ) -> Quote:
        buying = side == "buy"
        touch = book.asks[0][0] if buying else book.bids[0][0]
        direction = 1.0 if buying else -1.0
        if limit_price is not None and direction * (limit_price - touch) < 0.0:
            return Quote(limit_price, self.resting_fee, 0.0, 0.0, 0.0, 0.0)
        filled, notional, _, _ = book.sweep(side, amount, limit_price, self.depth_haircut)
        drift = self.drift_fraction(volatility, window_s)
        walked = direction * (notional / filled - touch) / touch * 1e4 if filled > 0.0 else 0.0
        slip_bps = walked * self.slippage_multiplier
        taken_price = touch * (1.0 + direction * slip_bps / 1e4) * (1.0 + direction * drift)
        if limit_price is None:
            return Quote(
                taken_price, self.taker_fee, amount, amount - filled, slip_bps, drift * 1e4
            )
        if direction * (taken_price - limit_price) > 0.0:
            taken_price = limit_price  # a limit order never fills beyond its limit
        resting = amount - filled
        total = filled * taken_price + resting * limit_price
        fee = filled * taken_price * self.taker_fee + resting * limit_price * self.resting_fee
        return Quote(total / amount, fee / total, filled, 0.0, slip_bps, drift * 1e4)

    def quote_stop(
        self,
        book: OrderBook,
        side: Side,
        amount: float,
        trigger_price: float,
        stop_slippage_bps: float,
        volatility: float,
        window_s: float,
    ) -> Quote:
        buying = side == "buy"
        touch = book.asks[0][0] if buying else book.bids[0][0]
        direction = 1.0 if buying else -1.0
        filled, notional, _, _ = book.sweep(side, amount, None, self.depth_haircut)
        walked = direction * (notional / filled - touch) / touch * 1e4 if filled > 0.0 else 0.0
        slip_bps = (stop_slippage_bps + walked) * self.slippage_multiplier
        drift = self.drift_fraction(volatility, window_s)
        price = trigger_price * (1.0 + direction * slip_bps / 1e4) * (1.0 + direction * drift)
        return Quote(price, self.taker_fee, amount, amount - filled, slip_bps, drift * 1e4)


def _check_pricing_args(side: str, amount: float, volatility: float, window_s: float) -> None:
    _inputs.choice("side", side, SIDES)
    _inputs.positive("amount", amount)
    _inputs.positive("volatility", volatility)
    _inputs.positive("window_s", window_s)


@dataclass(frozen=True, slots=True)
class FillModel:
    """The two faces of fill pricing. Build it once from configuration and reuse it."""

    expected: FillTerms
    degraded: FillTerms

    @classmethod
    def from_config(cls, config: FillModelConfig | None = None) -> FillModel:
        cfg = config if config is not None else FillModelConfig()
        expected = FillTerms(
            face=FillFace.EXPECTED,
            maker_fee=cfg.maker_fee,
            taker_fee=cfg.taker_fee,
            taker_for_maker=False,
            slippage_multiplier=1.0,
            depth_haircut=0.0,
            latency_s=0.0,
            drift_sigmas=0.0,
        )
        degraded = FillTerms(
            face=FillFace.DEGRADED,
            maker_fee=cfg.maker_fee,
            taker_fee=cfg.taker_fee,
            taker_for_maker=cfg.degraded_taker_for_maker,
            slippage_multiplier=cfg.degraded_slippage_multiplier,
            depth_haircut=cfg.degraded_depth_haircut,
            latency_s=cfg.degraded_latency_s,
            drift_sigmas=cfg.drift_sigmas,
        )
        return cls(expected=expected, degraded=degraded)

    def terms(self, face: FillFace) -> FillTerms:
        return self.degraded if face is FillFace.DEGRADED else self.expected


__all__ = ["Fill", "FillFace", "FillModel", "FillTerms", "Quote", "effective_price"]
