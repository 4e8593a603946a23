"""How risky an open position is now: its liquidation price, its exit, and the gap between.

One answer for everyone who asks: the guard's re-check of open stops
(:meth:`~safeguard.guard._gate.PreTradeGate.recheck_positions`) and the liquidation-distance
trigger (:func:`~safeguard.killswitch._triggers.liquidation_distance_trip`). Pure: numbers in,
numbers out.

- **Liquidation** comes from the venue's model (the exchange names it:
  :func:`~safeguard.risk._liquidation.model_for_exchange`), with the policy's closing fee and
  safety buffer (:func:`liquidation_options`, the one place the policy becomes
  :class:`~safeguard.risk._liquidation.LiquidationOptions`; the verdict takes its rates from
  :func:`liquidation_rates`). Cross legs see the other cross legs; an isolated leg only its own
  wallet.
- **The exit** is where the position would really close: with a stop, the stop-market close
  priced on the fill model by walking the last book read for the closing size
  (:class:`ExitMarket`), or, without a book, the trigger moved ``stop_slippage_bps`` against
  the position; without a stop, the mark.
- **The distance** is from the liquidation price to the exit, in % of the liquidation price,
  positive on the safe side. A position is protected when it is at least the policy's
  ``min_liquidation_buffer_pct``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from safeguard._config import RiskLimits
from safeguard.risk import _inputs
from safeguard.risk._book import OrderBook
from safeguard.risk._fills import FillTerms
from safeguard.risk._funding import FundingEstimate
from safeguard.risk._liquidation import LiquidationModel, LiquidationOptions, PositionLeg
from safeguard.risk._models import Account


def liquidation_rates(limits: RiskLimits, taker_fee: float) -> tuple[float, float]:
    """``(closing_fee_rate, safety_buffer_rate)``: what the policy adds to every liquidation
    price (the taker fee of the close when ``include_closing_fee``, and the safety buffer)."""
    closing = taker_fee if limits.include_closing_fee else 0.0
    return closing, limits.liquidation_safety_buffer_pct / 100.0


def liquidation_options(
    limits: RiskLimits, taker_fee: float, funding: FundingEstimate | None = None
) -> LiquidationOptions:
    """The policy's :class:`LiquidationOptions` for a close paying ``taker_fee``."""
    closing, buffer = liquidation_rates(limits, taker_fee)
    return LiquidationOptions(closing_fee_rate=closing, safety_buffer_rate=buffer, funding=funding)


@dataclass(frozen=True, slots=True)
class ExitMarket:
    """What a stop's close in one symbol is priced on: the last book read, the volatility over
    the policy's window, and the fill model's face for the venue's health."""

    book: OrderBook
    volatility: float
    terms: FillTerms

    def __post_init__(self) -> None:
        if not isinstance(self.book, OrderBook):
            raise ValueError(f"book must be an OrderBook, got {type(self.book).__name__}")
        _inputs.positive("volatility", self.volatility)
        if not isinstance(self.terms, FillTerms):
            raise ValueError(f"terms must be FillTerms, got {type(self.terms).__name__}")


@dataclass(frozen=True, slots=True)
class PositionRisk:
    """One leg's risk now. ``distance_pct`` > 0: ``exit_price`` sits that far (in % of the
    liquidation price) on the safe side of liquidation."""

    leg: PositionLeg
    liquidation: float
    safe_side: int
    """+1 when prices above ``liquidation`` are safe (a long's), -1 otherwise."""
    stop: float | None
    exit_price: float
    """The stop's fill, or the mark without a stop."""
    walked: bool
    """The stop's fill was priced through the book (else the flat slippage, or the mark)."""
    distance_pct: float

    @property
    def exit_kind(self) -> str:
        return "mark" if self.stop is None else "stop fill"

    def clears(self, buffer_pct: float) -> bool:
        """The exit sits at least ``buffer_pct`` % inside liquidation."""
        return self.distance_pct >= buffer_pct


def position_risk(
    account: Account,
    leg: PositionLeg,
    stop: float | None,
    *,
    model: LiquidationModel,
    options: LiquidationOptions,
    stop_slippage_bps: float,
    window_s: float,
    exit_market: ExitMarket | None = None,
    either_leg: bool = False,
) -> PositionRisk | None:
    """``leg``'s risk in ``account``, protected by ``stop`` (a trigger price, or ``None``).
    ``None`` when the leg cannot be liquidated (its collateral covers the largest loss).

    The stop's close fills against the leg (a long's sells, below the trigger); with
    ``either_leg`` (a symbol's stop, two hedge legs held) it could close either, so it slips
    toward liquidation, the worse way.
    """
    others = (
        tuple(p for p in account.positions if p is not leg and p.isolated_wallet is None)
        if leg.isolated_wallet is None
        else ()
    )
    result = model.liquidation_price(
        leg, wallet_balance=account.wallet_balance, others=others, options=options
    )
    if result.price is None:
        return None
    safe = result.safe_side
    walked = False
    if stop is None:
        exit_price = leg.mark_price
    else:
        slips = safe if either_leg else leg.side
        if exit_market is None:
            exit_price = stop * (1.0 - slips * stop_slippage_bps / 1e4)
        else:
            exit_price = exit_market.terms.stop_exit(
                exit_market.book,
                "sell" if slips > 0 else "buy",
                leg.quantity,
                trigger_price=stop,
                stop_slippage_bps=stop_slippage_bps,
                volatility=exit_market.volatility,
                window_s=window_s,
            ).effective_price
            walked = True
    distance = safe * (exit_price - result.price) / result.price * 100.0
    return PositionRisk(leg, result.price, safe, stop, exit_price, walked, distance)


def account_risks(
    account: Account,
    stops: Mapping[str, float],
    *,
    model: LiquidationModel,
    options: LiquidationOptions,
    stop_slippage_bps: float,
    window_s: float,
    exits: Mapping[str, ExitMarket] | None = None,
) -> list[PositionRisk]:
    """Every leg's risk, ``stops`` keyed by symbol (a symbol's stop protects each of its legs).

    Both cross legs of a symbol in hedge mode share the account's one liquidation price, so a
    symbol's stop is judged against it for each (its fill slipping toward that price, the
    worse way); isolated hedge legs each have their own price, so a symbol held in both cannot
    take one (``ValueError``). A stop for a symbol with no position is ignored.
    """
    slip = _inputs.non_negative("stop_slippage_bps", stop_slippage_bps)
    if slip >= 1e4:
        raise ValueError(f"stop_slippage_bps must be below 10,000, got {stop_slippage_bps!r}")
    held: dict[str, int] = {}
    isolated: set[str] = set()
    for leg in account.positions:
        held[leg.symbol] = held.get(leg.symbol, 0) + 1
        if leg.isolated_wallet is not None:
            isolated.add(leg.symbol)
    for symbol, stop in stops.items():
        if symbol not in held:
            continue  # a stop left over from a closed position protects nothing to judge
        if held[symbol] > 1 and symbol in isolated:
            raise ValueError(
                f"stops[{symbol!r}]: {symbol} has a long and a short isolated leg (hedge mode), "
                "each with its own liquidation price; a stop keyed by symbol cannot say which "
                "it protects"
            )
        _inputs.positive(f"stops[{symbol!r}]", stop)
    markets = exits or {}
    risks = []
    for leg in account.positions:
        risk = position_risk(
            account,
            leg,
            stops.get(leg.symbol),
            model=model,
            options=options,
            stop_slippage_bps=stop_slippage_bps,
            window_s=window_s,
            exit_market=markets.get(leg.symbol),
            either_leg=held[leg.symbol] > 1,
        )
        if risk is not None:
            risks.append(risk)
    return risks


__all__ = [
    "ExitMarket",
    "PositionRisk",
    "account_risks",
    "liquidation_options",
    "liquidation_rates",
    "position_risk",
]
