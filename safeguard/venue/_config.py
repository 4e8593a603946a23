"""The simulated venue's settings: one frozen model, unknown keys refused.

Defaults describe a liquid, moderately volatile market; tests narrow them (a thin book, a long
mark window, a scripted spike) to stage the situation they need.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Regime(_Frozen):
    """A volatility regime of the index process."""

    name: str
    annual_vol: Annotated[float, Field(ge=0.0, le=20.0)]
    """Annualised volatility (0.5 = 50 %)."""
    mean_duration_s: Positive
    """Average time spent in this regime before switching to another."""


class Spike(_Frozen):
    """A scripted move of one symbol's contract price (the index does not move)."""

    symbol: str
    at_s: NonNegative
    """Seconds after the venue starts."""
    pct: Annotated[float, Field(gt=-99.0, le=1000.0)]
    duration_s: Positive


class BookConfig(_Frozen):
    """The simulated market-maker book around the contract price."""

    levels: Annotated[int, Field(ge=1, le=1000)] = 50
    gap_bps: Positive = 1.0
    """Distance between levels beyond the touch, in basis points of the price (>= 1 tick)."""
    spread_ticks: Annotated[int, Field(ge=1)] = 1
    touch_notional: Positive = 250_000.0
    """Quote notional at the first level; deeper levels grow by ``growth`` per level."""
    growth: NonNegative = 0.1
    thinness: Annotated[float, Field(gt=0.0, le=100.0)] = 1.0
    """Scales every level's quantity: 0.01 is a book a hundred times thinner."""
    half_life_s: NonNegative = 5.0
    """Consumed liquidity halves back every half-life (0: refills at once)."""
    forced_flow_impact: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Share of a liquidation close's walk through the book that displaces the contract price
    (and, through the basis, the mark): 0 leaves prices to the index; 1 moves the price to the
    worst level the close reached. The displacement fades with ``impact_half_life_s``."""
    impact_half_life_s: Positive = 60.0


class Crowd(_Frozen):
    """Other traders on one side of a symbol: ``accounts`` positions of ``notional`` quote each,
    opened around the start price (spread over ``entry_spread_pct``), each with its own
    isolated margin at a leverage drawn from ``leverage`` (leverage: weight). A move against
    them liquidates the most leveraged first; with ``book.forced_flow_impact`` their forced
    closes move the price on to the next ones: a venue-side cascade. Each crowd account is
    checked every step like any other: 200 of them make a simulated day about 15x slower."""

    symbol: str
    accounts: Annotated[int, Field(ge=1, le=2_000)]
    side: Literal["long", "short"] = "long"
    notional: Positive = 50_000.0
    leverage: dict[int, Positive] = Field(
        default_factory=lambda: {5: 0.3, 10: 0.3, 20: 0.2, 50: 0.15, 100: 0.05}
    )
    entry_spread_pct: Annotated[float, Field(ge=0.0, le=20.0)] = 0.5
    """Entries spread evenly over this width (in % of the start price) around it."""

    @model_validator(mode="after")
    def _valid_leverage(self) -> Crowd:
        if not self.leverage:
            raise ValueError("leverage must give at least one leverage: weight")
        bad = [lev for lev in self.leverage if not 1 <= lev <= 125]
        if bad:
            raise ValueError(f"leverage: {bad[0]} is outside 1..125")
        return self


class VenueConfig(_Frozen):
    """Everything the engine needs besides the clock. Same config and seed, same market."""

    seed: int = 7
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    step_s: Annotated[float, Field(gt=0.0, le=60.0)] = 5.0
    """Simulation time step: prices move, books refill, stops and liquidations are checked.
    Five seconds runs a simulated day in well under a second; one second is finer and 5x
    slower."""
    mark_window_s: NonNegative = 60.0
    """Smoothing window of the mark's basis. Long windows make the mark lag a contract spike."""
    regimes: tuple[Regime, ...] = (
        Regime(name="calm", annual_vol=0.4, mean_duration_s=6 * 3600.0),
        Regime(name="volatile", annual_vol=1.2, mean_duration_s=3600.0),
    )
    index_correlation: Annotated[float, Field(ge=0.0, le=1.0)] = 0.0
    """Correlation of the symbols' index returns (jumps aside): each step's shock is this
    share of variance from one market-wide draw and the rest from the symbol's own. 0 (the
    default) keeps every symbol independent and the draws exactly as before."""
    jumps_per_day: NonNegative = 2.0
    jump_sigma: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    """Standard deviation of a jump's log return."""
    premium_mean: Annotated[float, Field(ge=-0.01, le=0.01)] = 0.0001
    premium_sd: Annotated[float, Field(ge=0.0, le=0.05)] = 0.0003
    premium_reversion_s: Positive = 1800.0
    spikes: tuple[Spike, ...] = ()
    crowd: tuple[Crowd, ...] = ()
    """Other traders' positions, opened at the start (see :class:`Crowd`)."""
    replay: dict[str, Path] = Field(default_factory=dict)
    """Symbol to CSV of index prices; replaces that symbol's random index process."""
    book: BookConfig = BookConfig()
    funding_interval_s: Annotated[float, Field(ge=60.0, le=86_400.0)] | None = None
    """Overrides every market's funding interval (8 h by default)."""
    funding_cap: Annotated[float, Field(gt=0.0, lt=0.1)] | None = None
    """Overrides every market's cap on the absolute funding rate."""
    liquidation_fee_rate: Annotated[float, Field(ge=0.0, lt=0.1)] = 0.005
    """Liquidation clearance fee on the notional each liquidation order closes (to the fund)."""
    partial_liquidation: bool = True
    """Cut a position above the first tier down a tier at a time (each step a market order
    into the book) while that restores the margin, before taking the rest over, as Binance
    does for large positions."""
    partial_liquidation_fraction: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """A first-tier position is cut by this share per step (0: taken over whole)."""
    max_partial_steps: Annotated[int, Field(ge=1, le=100)] = 10
    """Partial steps per account per simulation step before the rest is taken over."""
    insurance_fund: NonNegative = 1_000_000.0
    default_leverage: Annotated[int, Field(ge=1, le=125)] = 20
    default_margin_type: Literal["CROSSED", "ISOLATED"] = "CROSSED"
    max_open_orders: Annotated[int, Field(ge=1)] = 200
    """Open orders per account and symbol (Binance: -2025 beyond it)."""
    order_history: Annotated[int, Field(ge=100)] = 100_000
    """Closed orders kept for look-up; the oldest are forgotten first."""
    trade_history: Annotated[int, Field(ge=10)] = 1_000
    """Recent public trades kept per symbol."""
    kline_minutes: Annotated[int, Field(ge=24 * 60 + 1)] = 7 * 24 * 60
    """Minutes of live candles kept per symbol (klines of any interval aggregate them)."""
    kline_history: Annotated[int, Field(ge=0, le=100_000)] = 1_500
    """Seeded candles per interval before the run starts (Binance serves at most 1500 a call)."""
    max_catch_up_s: Positive = 86_400.0
    """Wall-clock mode: a gap longer than this is skipped rather than simulated step by step."""

    @model_validator(mode="after")
    def _consistent(self) -> VenueConfig:
        if not self.symbols:
            raise ValueError("symbols must name at least one market")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("symbols must not repeat")
        if not self.regimes:
            raise ValueError("regimes must hold at least one regime")
        for spike in self.spikes:
            if spike.symbol not in self.symbols:
                raise ValueError(f"spikes: {spike.symbol!r} is not one of symbols")
        for crowd in self.crowd:
            if crowd.symbol not in self.symbols:
                raise ValueError(f"crowd: {crowd.symbol!r} is not one of symbols")
        for symbol in self.replay:
            if symbol not in self.symbols:
                raise ValueError(f"replay: {symbol!r} is not one of symbols")
        return self


__all__ = ["BookConfig", "Crowd", "Regime", "Spike", "VenueConfig"]
