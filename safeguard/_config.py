"""Configuration: the policy a guarded exchange enforces.

Every section is a frozen pydantic model that forbids unknown keys, so a typo such as
``max_levrage`` is an error that names the key instead of a limit silently not applied.
A :class:`Policy` loads from a TOML file and from ``SAFEGUARD_*`` environment variables
(nested with ``__``, e.g. ``SAFEGUARD_RISK__MAX_LEVERAGE=5``); the environment wins.

Types are strict, in the file and in the environment alike: ``true`` is no number, ``"5"`` no
integer, ``"yes"`` no boolean (the environment spells booleans ``true``/``false`` and numbers as
TOML does); a TOML integer is a valid number. URLs are checked when the policy loads. Numbers
reject NaN and infinity; limits reject negatives. ``Policy.version`` is a short hash of the
effective policy, written into every log record so a journal can be replayed against the exact
rules it ran under.

The state directory (``kill_switch.state_dir``) is resolved the same way in every process: an
explicit value (``--state-dir``, or one given in code), else ``SAFEGUARD_STATE_DIR``, else the
policy file's ``kill_switch.state_dir`` (a relative one is relative to the file), else the
per-user default :func:`default_state_dir`. It is always absolute once loaded.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tomllib
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from safeguard._backoff import ceiling as backoff_ceiling
from safeguard._errors import ConfigError

Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Positive = Annotated[float, Field(gt=0.0)]
Seconds = Annotated[float, Field(ge=0.0)]
# Strict types would refuse a str for a Path and a TOML array for a tuple; these two stay lax
# on the container only (the items of a tuple are still strict).
PathSetting = Annotated[Path, Field(strict=False)]

STATE_DIR_ENV = "SAFEGUARD_STATE_DIR"
"""Environment variable naming the state directory; it wins over the policy file."""

WEBHOOK_SCHEMES = ("http", "https")
REDIS_SCHEMES = ("redis", "rediss", "unix")


def default_state_dir() -> Path:
    """The per-user state directory: ``$XDG_STATE_HOME/safeguard``, else
    ``~/.local/state/safeguard`` (the XDG base directory specification's default)."""
    xdg = os.environ.get("XDG_STATE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".local" / "state"
    return base / "safeguard"


def state_dir_from_environment() -> Path | None:
    """``SAFEGUARD_STATE_DIR`` as an absolute path, or ``None`` when it is not set."""
    raw = os.environ.get(STATE_DIR_ENV)
    return None if raw is None else _absolute_from_environment(STATE_DIR_ENV, raw)


def _absolute_from_environment(name: str, raw: str) -> Path:
    # Processes run from different directories; a relative path would name a different
    # directory in each, and a kill would stop nothing.
    if not raw.strip() or not Path(raw).expanduser().is_absolute():
        raise ConfigError(
            f"environment variable {name} must be an absolute path, got {raw!r}: a relative "
            "one names a different directory in each process's working directory",
            key=name,
        )
    return _absolute(Path(raw))


def _state_dir_default() -> Path:
    return state_dir_from_environment() or default_state_dir()


def _absolute(path: Path) -> Path:
    # abspath also folds "..", so the directory printed is the one a reader would look for.
    return Path(os.path.abspath(path.expanduser()))


StateDir = Annotated[PathSetting, AfterValidator(_absolute)]


def check_url(url: str, *, name: str, schemes: tuple[str, ...]) -> str:
    """``url`` if its scheme is one of ``schemes`` and it names a host (a path for ``unix``).

    The messages never echo the URL: its credentials or its path are often its secret.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"{name} is not a valid URL") from None
    if parts.scheme not in schemes:
        shown = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise ValueError(f"{name} must be a {' or '.join(schemes)} URL, got {shown}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{name}: a unix URL needs a socket path (unix:///path/to/socket)")
    elif not parts.hostname:
        raise ValueError(f"{name} must name a host ({parts.scheme}://host...)")
    return url


class Section(BaseModel):
    """Base for every configuration section: immutable, strict about keys and numbers."""

    # Attribute docstrings become field descriptions: ``safeguard policy`` prints them, and the
    # README's policy reference is generated from them.
    model_config = ConfigDict(
        frozen=True, extra="forbid", allow_inf_nan=False, use_attribute_docstrings=True
    )


class PolicySection(Section):
    """A section of the :class:`Policy`: strictly typed too (``true`` is no number, ``"5"``
    no integer, ``"yes"`` no boolean), since a coerced value is a limit nobody wrote."""

    model_config = ConfigDict(strict=True)


class StressConfig(PolicySection):
    """The portfolio stress grid a new order may be required to survive."""

    shocks_pct: Annotated[
        tuple[Annotated[float, Field(gt=-100.0, lt=100.0)], ...], Field(strict=False)
    ] = (
        -50.0, -40.0, -30.0, -20.0, -15.0, -10.0, -7.5, -5.0, -3.0, -2.0, -1.0,
        1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
    )  # fmt: skip
    """Market moves in % of the mark; each regime turns one into a move per symbol."""
    regimes: Annotated[
        tuple[Literal["together", "independent", "hedges_fail"], ...], Field(strict=False)
    ] = (
        "together",
        "independent",
        "hedges_fail",
    )
    """together: every symbol moves by the shock; independent: one symbol at a time, scaled by
    its beta; hedges_fail: every position moves against itself (longs and shorts both lose)."""
    betas: dict[str, Positive] = {}
    """Per-symbol scale of the shock in the independent regime (1.0 when absent); the cascade
    reads them as each symbol's volatility relative to the others'."""
    cascade: bool = True
    """Also run every shock, applied to each symbol the account holds, through the cascade
    engine (correlated moves, forced closes walking the books, the crowd below)."""
    cascade_correlation: Annotated[float, Field(ge=-1.0, le=1.0)] = 0.8
    """Correlation of every pair of symbols in the cascade (a crash moves it toward one); with
    ``correlation_source = "estimated"``, the value a pair falls back to and shrinks toward."""
    correlation_source: Literal["configured", "estimated"] = "configured"
    """configured: every pair at ``cascade_correlation``; estimated: each pair measured from the
    returns of the marks the guard has seen (``correlation_*`` below), stressed toward one, and
    ``cascade_correlation`` for a pair with too few returns or a price that did not move."""
    correlation_interval_s: Annotated[float, Field(ge=1.0, le=86_400.0)] = 60.0
    """Length of one return of the estimate, 1 s to a day: the last mark seen in each interval
    is its close (``safeguard stress --correlation estimated`` reads klines of this interval:
    60, 180, 300, 900, 1800 or 3600)."""
    correlation_window: Annotated[int, Field(ge=3, le=100_000)] = 240
    """Intervals of marks the estimate looks back over (older ones are forgotten)."""
    correlation_min_samples: Annotated[int, Field(ge=2)] = 30
    """Fewer common returns than this: the pair falls back to ``cascade_correlation``."""
    correlation_full_samples: Annotated[int, Field(ge=2)] = 120
    """Returns for full weight; below it the estimate is shrunk toward ``cascade_correlation``
    (``n / full`` of it measured)."""
    correlation_toward_one: Fraction = 0.5
    """Share of the way to one each measured correlation is moved (a crash's correlations)."""
    cascade_latency_s: Seconds = 1.0
    """Delay between a liquidation check and its forced close reaching the book."""
    cascade_refill_rate: NonNegative = 0.0
    """Per second: how fast eaten depth comes back between cascade steps (0: never)."""
    crowd_leverage: Annotated[
        tuple[
            Annotated[tuple[Annotated[float, Field(ge=1.0)], Fraction], Field(strict=False)],
            ...,
        ],
        Field(strict=False),
    ] = ()
    """``[[leverage, share], ...]`` (shares summing to 1): how the open interest of the order's
    symbol and of every held one is spread over other traders' leverage. Empty: no crowd in
    the cascade. When set, each of those symbols' open interest is required (fails closed
    without it)."""
    crowd_long_share: Fraction = 0.5
    """Share of the crowd's open interest held long."""
    max_open_interest_age_s: Positive = 300.0
    """Open interest older than this counts as missing (the guard keeps what the bot's own
    ``fetch_open_interest`` reads bring; it does not poll it)."""

    @model_validator(mode="after")
    def _grid_is_usable(self) -> StressConfig:
        if not self.shocks_pct:
            raise ValueError("shocks_pct must list at least one shock")
        if not self.regimes:
            raise ValueError("regimes must list at least one regime")
        widest = max(abs(shock) for shock in self.shocks_pct)
        for symbol, beta in self.betas.items():
            if beta * widest >= 100.0:
                raise ValueError(
                    f"betas[{symbol!r}] = {beta} times the widest shock ({widest}%) would move "
                    "the price to or below zero"
                )
        if self.correlation_full_samples < self.correlation_min_samples:
            raise ValueError(
                f"correlation_full_samples ({self.correlation_full_samples}) must not be below "
                f"correlation_min_samples ({self.correlation_min_samples})"
            )
        if self.correlation_window <= self.correlation_min_samples:
            raise ValueError(
                f"correlation_window ({self.correlation_window}) must exceed "
                f"correlation_min_samples ({self.correlation_min_samples}): a window of n "
                "intervals holds n - 1 returns"
            )
        if self.crowd_leverage:
            total = sum(share for _, share in self.crowd_leverage)
            if abs(total - 1.0) > 1e-9:
                raise ValueError(f"crowd_leverage shares must sum to 1, got {total}")
        return self


class CrowdingConfig(PolicySection):
    """When a symbol counts as crowded (:mod:`safeguard.risk._crowding`) and how much the
    verdict tightens leverage and size for orders that add to the crowded side."""

    basis_full_pct: Positive = 0.5
    """``|mark - index|`` (in % of the index) that counts as fully crowded."""
    funding_full_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.0005
    """``|funding rate|`` per interval that counts as fully crowded (5 bps)."""
    funding_trend_full_rate: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.0003
    """Move of the funding rate over the window, toward the crowded side, that counts fully."""
    volatility_full: Positive = 0.03
    """Realized volatility (per ``risk.volatility_window_s``) that counts fully."""
    open_interest_growth_full: Positive = 0.2
    """Open interest growth over the window that counts fully (0.2 = +20 %)."""
    weights: dict[
        Literal["basis", "funding", "funding_trend", "volatility", "open_interest"],
        NonNegative,
    ] = {}
    """Weight of each part in the score (1 when absent)."""
    window_s: Positive = 8 * 3600.0
    """Window over which the trends (funding, open interest) are measured."""
    tighten_from: Fraction = 0.5
    """Score above which the verdict starts tightening (1: never)."""
    max_tightening: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.0
    """Share cut off the leverage, position-notional and concentration caps at a score of 1
    (linear from ``tighten_from``); 0 (the default) leaves them as they are: opt in with,
    say, 0.5 to halve them at full crowding."""


class RiskLimits(PolicySection):
    """Pre-trade limits. ``None`` switches a limit off."""

    max_leverage: Positive | None = 20.0
    """Highest leverage setting an order may run under (the tier's own cap always applies
    too). The verdict's limit; what open positions carry is ``max_effective_leverage``."""
    max_effective_leverage: Positive | None = 20.0
    """Highest effective leverage an open position may carry: its notional over the equity of
    its margin pool (the whole account for cross, its own margin for isolated). Judged by the
    kill-switch triggers on every account read (LEVERAGE_ABOVE_POLICY, REDUCING)."""
    max_notional_per_order: Positive | None = None
    """Largest notional (quote currency) one order may carry: a fat-finger size guard."""
    max_notional_per_position: Positive | None = None
    """Largest notional one symbol's position may reach after the order fills."""
    max_notional_per_account: Positive | None = None
    """Largest total notional across every position after the order fills."""
    max_open_orders: Annotated[int, Field(ge=1)] | None = 50
    """Most open orders the account may hold: a runaway loop stacking orders is stopped."""
    max_concentration: NonNegative | None = None
    """Largest notional of one symbol's position over the account's equity (above 1 for a
    leveraged trader: 3 lets one symbol carry three times the equity)."""
    concentration_warning: NonNegative | None = None
    """Notional over equity above which an order adding exposure warns (CONCENTRATION, WARN):
    a sizing input before the limit denies."""
    isolated_max_leverage: Positive | None = None
    """Stricter leverage cap for isolated positions (``max_leverage`` still applies): isolated
    margin contains the blast radius but liquidates closer."""
    isolated_max_concentration: NonNegative | None = None
    """Stricter concentration limit (notional over equity) for isolated positions."""
    require_stop: bool = True
    """Orders that open or add exposure must carry a stop (``stopLossPrice``)."""
    min_liquidation_buffer_pct: NonNegative = 1.0
    """How far (in % of the liquidation price) the stop's fill must sit inside liquidation."""
    price_band_pct: Positive | None = 5.0
    """Limit prices further than this from the mark are denied (fat-finger guard)."""
    max_market_data_age_s: Positive = 5.0
    """A mark or book older than this denies new exposure (fails closed)."""
    max_rules_age_s: Positive = 3600.0
    """Tier tables, tick/step sizes and fees older than this deny new exposure."""
    max_tiers_age_s: Positive = 60.0
    """Tier tables (maintenance rates, leverage caps) older than this deny new exposure. They
    are re-read at half this age (before an order, and after any read while a position is
    open), so a venue's silent change is priced within this long."""
    frozen_price_ticks: Positive | None = 20.0
    """A mark, last price or book mid that has not moved for so long that its volatility
    predicts a move of this many ticks is frozen, however fresh its timestamp: new exposure is
    denied (STALE_MARKET_DATA) and the stale-data trigger counts the feed as old from when it
    stopped. None: off."""
    frozen_price_min_s: Positive = 10.0
    """No price counts as frozen before it has stood still this long (venues publish a mark
    every second or few)."""
    max_mark_gap_pct: Positive | None = 5.0
    """A mark further than this from both the index and the last price is stale (a mark feed
    stuck while the others move). None: off."""
    funding_horizon_s: Seconds = 8 * 3600.0
    """Holding horizon over which expected funding payments reduce the wallet."""
    funding_at_cap: bool = False
    """Price funding over the horizon at the venue's cap, paid by the side the order holds
    (the worst the schedule allows), instead of at the current rate. Needs the market's
    funding cap or ``funding_cap_rate``; without either new exposure is denied
    (MISSING_MARKET_DATA)."""
    funding_cap_rate: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    """The venue's funding cap per interval (its floor is the negative), used when the market
    data does not carry it: by ``funding_at_cap`` and the FUNDING_NEAR_CAP warning."""
    liquidation_safety_buffer_pct: NonNegative = 0.0
    """Extra maintenance margin (in % of notional) assumed on top of the venue's tiers."""
    include_closing_fee: bool = True
    """Count the taker fee of the liquidation close in the maintenance requirement."""
    stop_slippage_bps: NonNegative = 10.0
    """Assumed slippage of a stop-market fill beyond its trigger, before any book walk."""
    volatility_window_s: Positive = 3600.0
    """Window for the recent volatility the verdict reports distances in."""
    require_stress_survival: bool = False
    """Deny orders after which the account would not survive the stress grid."""
    stress: StressConfig = StressConfig()
    """The grid ``require_stress_survival`` checks against."""
    crowding: CrowdingConfig = CrowdingConfig()
    """Crowding score and the tightening it brings (needs the market's crowding score)."""
    band_warning_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.8
    """Margin ratio (maintenance over the pool's equity; 1 liquidates) where the liquidation
    band starts: an order leaving its position past it warns (MARGIN_PRESSURE)."""
    band_partial_ratio: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    """Margin ratio at which the venue starts reducing a position before liquidating it (a
    tiered partial liquidation); None for a venue that liquidates in one go."""

    @model_validator(mode="after")
    def _levels_ordered(self) -> RiskLimits:
        warn, limit = self.concentration_warning, self.max_concentration
        if warn is not None and limit is not None and warn > limit:
            raise ValueError(
                f"concentration_warning ({warn}) must not be above max_concentration ({limit})"
            )
        partial = self.band_partial_ratio
        if partial is not None and partial < self.band_warning_ratio:
            raise ValueError(
                f"band_partial_ratio ({partial}) must not be below band_warning_ratio "
                f"({self.band_warning_ratio}): the venue reduces after the warning"
            )
        return self


class FillModelConfig(PolicySection):
    """How fills are priced. The degraded face is used when the venue is slow or throttling."""

    maker_fee: Annotated[float, Field(ge=-0.01, le=0.01)] = 0.0002
    """Maker fee rate assumed when the venue's own rate is not known (negative: a rebate)."""
    taker_fee: Annotated[float, Field(ge=0.0, le=0.01)] = 0.0005
    """Taker fee rate assumed when the venue's own rate is not known; also the closing fee."""
    degraded_taker_for_maker: bool = True
    """Degraded: assume a maker order ends up taking (it was repriced or chased)."""
    degraded_slippage_multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    """Degraded: book-walk slippage is multiplied by this (fills are worse on a sick venue)."""
    degraded_depth_haircut: Annotated[float, Field(ge=0.0, lt=1.0)] = 0.5
    """Degraded: the share of visible depth assumed gone by the time the order arrives."""
    degraded_latency_s: NonNegative = 1.0
    """Degraded: latency used for the price drift of volatility x sqrt(latency)."""
    drift_sigmas: NonNegative = 2.0
    """How many standard deviations of drift over the latency the degraded fill pays."""


class RetryConfig(PolicySection):
    """The one retry loop (ccxt's own is forced off)."""

    max_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    """Most attempts of one call, the first included."""
    base_delay_s: Positive = 0.2
    """First backoff ceiling; each retry doubles it (full jitter draws below the ceiling)."""
    max_delay_s: Positive = 10.0
    """Cap on any one backoff wait (a venue's Retry-After may still ask for longer)."""
    total_budget_s: Positive = 30.0
    """No call retries or waits on the rate budget past this much time since its first attempt."""
    default_retry_after_s: Positive = 5.0
    """Wait after a 429 that came without a ``Retry-After`` header."""
    resolve_attempts: Annotated[int, Field(ge=1, le=100)] = 5
    """Look-ups of an ambiguous order before raising ``OutcomeUnknown``."""

    @model_validator(mode="after")
    def _delays_ordered(self) -> RetryConfig:
        if self.base_delay_s > self.max_delay_s:
            raise ValueError("base_delay_s must not exceed max_delay_s")
        return self

    def ceiling(self, attempt: int) -> float:
        """The longest wait after failed attempt ``attempt`` (1-based): ``base_delay_s``,
        doubling on each retry, capped at ``max_delay_s``. The one backoff schedule
        (:mod:`safeguard._backoff`): the guard's :class:`~safeguard.guard._retry.RetryPolicy`
        draws its jitter below it, the kill ladder and the webhook wait it out."""
        return backoff_ceiling(self, attempt)


class ThrottleConfig(PolicySection):
    """Pacing against the venue's published rate limits."""

    soft_threshold: Fraction = 0.7
    """Above this share of a limit, requests are spaced out."""
    hard_threshold: Fraction = 0.9
    """Above this share, non-essential reads wait for the window to roll."""
    reserve_fraction: Fraction = 0.05
    """Budget kept for cancels and reduce-only orders only."""
    weight_limit_per_minute: Annotated[int, Field(ge=1)] | None = None
    """Override the venue's ``exchangeInfo.rateLimits`` request weight per minute."""
    orders_per_10s: Annotated[int, Field(ge=1)] | None = None
    """Override the venue's published order count per 10 seconds (per account)."""
    orders_per_minute: Annotated[int, Field(ge=1)] | None = None
    """Override the venue's published order count per minute (per account)."""
    default_ban_s: Positive = 120.0
    """Ban length assumed for a 418 that did not say how long."""
    window_skew_s: Annotated[float, Field(ge=0.0, le=10.0)] = 0.5
    """A rate window counts as rolled only this long after our clock says so, in case the
    venue's clock (whose windows count) is behind ours."""

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> ThrottleConfig:
        if not self.soft_threshold <= self.hard_threshold:
            raise ValueError("soft_threshold must not exceed hard_threshold")
        return self


class DegradationConfig(PolicySection):
    """When the venue counts as DEGRADED or SEVERE, and how sticky those states are."""

    window_s: Positive = 60.0
    """Window over which latency, error and throttle rates are measured."""
    degraded_latency_p95_s: Positive = 1.0
    """p95 latency of any endpoint above this makes the venue DEGRADED."""
    severe_latency_p95_s: Positive = 3.0
    """p95 latency above this makes the venue SEVERE."""
    degraded_error_rate: Fraction = 0.1
    """Share of requests failing above this makes the venue DEGRADED."""
    severe_error_rate: Fraction = 0.3
    """Share of requests failing above this makes the venue SEVERE."""
    degraded_throttle_rate: Fraction = 0.05
    """Share of requests throttled (429) above this makes the venue DEGRADED."""
    severe_throttle_rate: Fraction = 0.2
    """Share of requests throttled above this makes the venue SEVERE."""
    degraded_data_age_s: Positive = 2.0
    """Data age reported to a `HealthMonitor` (`record_data_age`) above this makes the venue
    DEGRADED. The guard does not report it itself: it judges each symbol's data age in the
    verdict (`risk.max_market_data_age_s`); for a feed of your own."""
    severe_data_age_s: Positive = 10.0
    """Data age reported to a `HealthMonitor` above this makes the venue SEVERE (see
    `degraded_data_age_s`)."""
    recovery_ratio: Annotated[float, Field(gt=0.0, le=1.0)] = 0.7
    """Hysteresis: a metric must fall below ratio x threshold to count as recovered."""
    cooling_period_s: Seconds = 30.0
    """Minimum time in a worse state before stepping back to a better one."""
    severe_reduce_only: bool = True
    """In SEVERE, allow only orders that reduce a position."""
    min_samples: Annotated[int, Field(ge=1)] = 10
    """Rates and latency percentiles count only over at least this many requests in the
    window, so one slow or failed request on a quiet client does not change the state."""

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> DegradationConfig:
        # A SEVERE threshold under its DEGRADED one skips the degraded face (and its shrunk
        # sizes) on the way to reduce-only: a typo, most likely, so it is refused.
        for metric in ("latency_p95_s", "error_rate", "throttle_rate", "data_age_s"):
            degraded = getattr(self, f"degraded_{metric}")
            severe = getattr(self, f"severe_{metric}")
            if not degraded <= severe:
                raise ValueError(
                    f"degraded_{metric} ({degraded:g}) must not exceed severe_{metric} ({severe:g})"
                )
        return self


class TriggerConfig(PolicySection):
    """Automatic kill-switch triggers. ``None`` switches one off."""

    max_daily_loss: Positive | None = None
    """Loss in quote currency since the UTC day began (mark-to-market, fees and funding)."""
    max_drawdown_pct: Annotated[float, Field(gt=0.0, lt=100.0)] | None = None
    """Drawdown from the persisted equity peak."""
    max_orders_per_window: Annotated[int, Field(ge=1)] | None = 200
    """Orders per ``rate_window_s`` above this trip ORDER_RATE (a runaway loop)."""
    max_cancels_per_window: Annotated[int, Field(ge=1)] | None = 400
    """Cancels per ``rate_window_s`` above this trip CANCEL_RATE."""
    max_rejections_per_window: Annotated[int, Field(ge=1)] | None = 20
    """Venue rejections per window above this trip REJECTION_BURST."""
    max_leverage_changes_per_window: Annotated[int, Field(ge=1)] | None = 10
    """Leverage changes per window above this trip LEVERAGE_CHANGES."""
    rate_window_s: Positive = 60.0
    """Window of the runaway-bot counters."""
    max_consecutive_errors: Annotated[int, Field(ge=1)] | None = 10
    """Consecutive venue errors above this trip CONSECUTIVE_ERRORS."""
    max_data_age_s: Positive | None = 60.0
    """Market data older than this trips STALE_MARKET_DATA (a frozen feed)."""
    on_ban: bool = True
    """A venue ban (418) engages the switch."""
    on_liquidation_distance: bool = True
    """An open position whose stop no longer clears liquidation engages the switch."""
    action: Literal["HALTED", "REDUCING"] = "HALTED"
    """State a trigger moves the switch to."""
    actions: dict[
        Literal[
            "DAILY_LOSS",
            "DRAWDOWN",
            "LIQUIDATION_DISTANCE",
            "ORDER_RATE",
            "CANCEL_RATE",
            "REJECTION_BURST",
            "LEVERAGE_CHANGES",
            "CONSECUTIVE_ERRORS",
            "VENUE_BANNED",
            "STALE_MARKET_DATA",
        ],
        Literal["HALTED", "REDUCING"],
    ] = {}
    """Per-trigger override of ``action`` (e.g. ``LIQUIDATION_DISTANCE = "REDUCING"``)."""
    cooling_period_s: Seconds = 300.0
    """A trigger that tripped stays quiet this long, so a metric hovering at its limit engages
    the switch once, not on every observation. A recovered metric never releases the switch."""


WarningName = Literal[
    "CANCEL_BURST",
    "LEVERAGE_CHANGES",
    "THIN_BOOK",
    "MARK_INDEX_GAP",
    "FUNDING_NEAR_CAP",
    "PARAMETER_FLAPPING",
]


class WarningConfig(PolicySection):
    """Early warnings (:mod:`safeguard.killswitch._early_warnings`): anomalies, not yet a halt.

    Each is an event with a severity (hooks, metrics, webhook); ``escalate`` turns one into a
    kill-switch engage. ``None`` switches one off. Each fires at its threshold, not under it.
    """

    window_s: Positive = 60.0
    """Window of the burst counters (cancels, leverage changes)."""
    cancel_burst: Annotated[int, Field(ge=1)] | None = 100
    """Cancels per window that warn (well under the CANCEL_RATE trigger's limit)."""
    leverage_changes: Annotated[int, Field(ge=1)] | None = 3
    """Leverage changes per window that warn."""
    mark_index_gap_pct: Positive | None = 1.0
    """The mark this far (in % of the index) from the index warns."""
    funding_near_cap: Annotated[float, Field(gt=0.0, le=1.0)] | None = 0.8
    """A funding rate at this share of the venue's cap (or beyond) warns."""
    thin_book_cover: Positive | None = 2.0
    """Warn when the book between the mark and a position's stop (its liquidation price
    without one) holds less than this many times the position's size."""
    flapping_changes: Annotated[int, Field(ge=2)] | None = 2
    """A margin parameter (tier table, funding interval) that changed this many times within
    ``flapping_window_s`` and came back to a value it had: rapid oscillation warns."""
    flapping_window_s: Positive = 3600.0
    """Window of the parameter-flapping count."""
    cooling_period_s: Seconds = 300.0
    """The same warning for the same symbol is not repeated within this long."""
    escalate: dict[WarningName, Literal["HALTED", "REDUCING"]] = {}
    """Warnings that also engage the kill switch, and into which state."""


class KillSwitchConfig(PolicySection):
    """The latch and the ladder of actions it runs on engage."""

    state_dir: StateDir = Field(
        default_factory=_state_dir_default,
        json_schema_extra={"shown_default": "$XDG_STATE_HOME/safeguard"},
    )
    """Directory of persisted state: the kill-switch latch, equity peak, bans, order journal.
    ``SAFEGUARD_STATE_DIR`` wins over it; a relative path is relative to the policy file; the
    default is per user (``~/.local/state/safeguard`` when ``XDG_STATE_HOME`` is unset)."""
    cooling_period_s: Seconds = 300.0
    """``resume`` is refused for this long after an engage."""
    cancel_all_on_engage: bool = True
    """Ladder step: cancel every open order that could add exposure when the switch engages;
    reduce-only and ``closePosition`` orders stay while their position is open."""
    flatten_on_engage: bool = False
    """Ladder step: close every position with reduce-only orders when the switch engages."""
    flatten_max_attempts: Annotated[int, Field(ge=1, le=50)] = 5
    """Attempts per position when flattening before giving up loudly."""
    flatten_slippage_cap_pct: Annotated[float, Field(gt=0.0, lt=100.0)] = 2.0
    """Flattening orders are limit orders at most this far through the mark (under 100 %: a
    cap of 100 % or more prices nothing, and flattening would silently do nothing)."""
    venue_countdown_s: Annotated[float, Field(ge=1.0)] | None = None
    """Arm the venue's cancel-all countdown timer where the venue offers one (at least 1 s:
    Binance reads a countdown of 0 as "switch the timer off")."""
    poll_interval_s: Annotated[float, Field(gt=0.0, le=60.0)] = 0.05
    """How often a running bot looks for an engage made by another process (at most 60 s:
    a kill from another process is obeyed within it)."""
    webhook_url: SecretStr | None = None
    """URL notified (JSON POST) on engage and resume; delivery never delays the engage."""
    webhook_timeout_s: Positive = 5.0
    """Timeout of one webhook delivery attempt."""
    install_signal_handler: bool = False
    """Engage the switch when the process receives ``signal``."""
    signal: Literal["SIGUSR1", "SIGUSR2", "SIGTERM"] = "SIGUSR1"
    """The POSIX signal that engages the switch when the handler is installed."""
    triggers: TriggerConfig = TriggerConfig()
    """Automatic triggers: conditions that engage the switch by themselves."""
    warnings: WarningConfig = WarningConfig()
    """Early warnings: events with a severity, each optionally escalated to an engage."""
    drain_timeout_s: Positive = 2.0
    """``engage`` waits at most this long for sends already past the check to finish."""
    watch_state_file: bool = True
    """Run a background thread that notices an engage made by another process (and runs the
    listeners, e.g. the ladder) even while the bot sends nothing."""
    webhook_max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    """Deliveries of one notification tried before it is dropped (logged)."""
    webhook_retry_delay_s: Positive = 0.5
    """First pause between webhook attempts; it doubles on each retry (capped at 30 s)."""

    @field_validator("state_dir", mode="before")
    @classmethod
    def _state_dir_is_named(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("state_dir must not be empty (it would mean the current directory)")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _webhook_is_http(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            check_url(url.get_secret_value(), name="webhook_url", schemes=WEBHOOK_SCHEMES)
        return url


class FleetConfig(PolicySection):
    """Shared state for a fleet of bots on one account or IP (``safeguard[fleet]``, Redis)."""

    redis_url: SecretStr | None = None
    """``redis://[user:password@]host:port/db`` of the fleet's shared state (never printed);
    unset keeps the kill switch, rate budget and equity marks in ``kill_switch.state_dir``."""
    key_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")] = "safeguard"
    """Prefix of every Redis key and channel; fleets sharing one Redis use different ones."""
    on_disconnect: Literal["HALTED", "REDUCING"] = "HALTED"
    """What a bot allows while it cannot reach Redis (never ACTIVE: an engage made elsewhere
    meanwhile would go unseen). A latch already tighter than this stays as it is."""
    connect_timeout_s: Positive = 1.0
    """Timeout of one connection attempt to Redis."""
    command_timeout_s: Positive = 1.0
    """A Redis command unanswered for this long counts as a lost link."""
    health_check_interval_s: Positive = 0.5
    """How often each bot checks in with Redis and re-reads the shared state, so a lost link or
    a missed message is noticed within about this long even while nothing is published."""
    reconnect_interval_s: Positive = 0.5
    """Pause between attempts to reach Redis again after losing it."""
    ack_timeout_s: Positive = 1.0
    """An engage waits at most this long for every live bot to confirm it stopped sending."""
    member_ttl_s: Positive = 3.0
    """A bot that has not checked in with Redis for this long is no longer waited for."""
    budget_fallback_share: Annotated[float, Field(gt=0.0, le=1.0)] = 0.25
    """Share of each rate limit one bot uses on its own while the shared budget is
    unreachable (1 / the number of bots keeps the fleet under the venue's limit)."""

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_redis(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            check_url(url.get_secret_value(), name="redis_url", schemes=REDIS_SCHEMES)
        return url


class LoggingConfig(PolicySection):
    level: Literal["TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    """Lowest level the sinks record."""
    json_path: PathSetting | None = None
    """JSON-lines file sink for machine-readable records (off: human sink only)."""


class Credentials(PolicySection):
    """API credentials. Never printed: ``repr`` shows ``**********``."""

    api_key: SecretStr | None = None
    """Venue API key."""
    secret: SecretStr | None = None
    """Venue API secret."""


class _PolicyFile(TomlConfigSettingsSource):
    """pydantic-settings' TOML source for one policy file, with the file's own rules: a file
    that is not TOML is a :class:`ConfigError` naming it, and a relative
    ``kill_switch.state_dir`` is relative to the file (:func:`_anchor_state_dir`)."""

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        try:
            data = super()._read_file(file_path)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"policy file {file_path} is not valid TOML: {exc}") from exc
        _anchor_state_dir(data, Path(file_path))
        return data


class _EnvironmentSource(PydanticBaseSettingsSource):
    """``SAFEGUARD_*`` variables, each typed by the key it sets (:func:`environment_values`)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        return environment_values(os.environ)[0]


def _exact_sections(data: Mapping[str, Any], file: Path) -> None:
    """Refuse a top-level section spelled in another case (``[Risk]``): the settings loader
    matches those case-insensitively, so a file holding both ``[Risk]`` and ``[risk]`` had
    one of them dropped without a word (its limits not enforced). Keys inside sections are
    matched exactly already."""
    for name in data:
        if name != name.lower() and name.lower() in Policy.model_fields:
            raise ConfigError(
                f"{file}: section [{name}] must be spelled [{name.lower()}] (sections are "
                "lower-case; a second spelling of one section would be dropped)",
                key=name,
            )


class Policy(BaseSettings):
    """Everything a guarded exchange enforces. Build it in code, or ``Policy.load(path)``."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        use_attribute_docstrings=True,
    )

    risk: RiskLimits = RiskLimits()
    """Pre-trade limits: what an order may do to the account."""
    fills: FillModelConfig = FillModelConfig()
    """How fills are priced, calmly and when the venue is degraded."""
    retry: RetryConfig = RetryConfig()
    """The one retry loop."""
    throttle: ThrottleConfig = ThrottleConfig()
    """Pacing against the venue's rate limits."""
    degradation: DegradationConfig = DegradationConfig()
    """When the venue counts as DEGRADED or SEVERE."""
    # A factory: its state directory depends on the environment when the policy is built.
    kill_switch: KillSwitchConfig = Field(default_factory=KillSwitchConfig)
    """The latch, its ladder of actions and its automatic triggers."""
    logging: LoggingConfig = LoggingConfig()
    """Sinks turned on by ``safeguard.configure_logging``."""
    credentials: Credentials = Credentials()
    """API credentials (never printed)."""
    fleet: FleetConfig = FleetConfig()
    """Shared state for several bots on one account or IP (Redis)."""
    client_order_id_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,16}$")] = "sg-"
    """Prefix of the client order ids safeguard generates (so you can tell its orders apart)."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Policy(): keyword arguments over SAFEGUARD_* variables. Policy.load merges its file
        # under the variables itself; Policy.build reads neither.
        return (init_settings, _EnvironmentSource(settings_cls))

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Policy:
        """Load from a TOML file (optional) and ``SAFEGUARD_*`` environment variables.

        Raises :class:`ConfigError` naming the offending key (and the variable, for one set
        in the environment) for a typo, a wrong type, a negative limit, NaN, a bad URL, or a
        file that is not valid TOML.
        """
        data: dict[str, Any] = {}
        if path is not None:
            file = Path(path)
            if not file.exists():
                raise ConfigError(f"policy file not found: {file}", key=None)
            if file.is_dir():
                raise IsADirectoryError(
                    errno.EISDIR, "is a directory, not a policy file", str(file)
                )
            data = _PolicyFile(cls, toml_file=file)()
            with file.open("rb") as raw:  # valid TOML by now: the loader above said so
                _exact_sections(tomllib.load(raw), file)
        values, origins = environment_values(os.environ)  # refuses a variable that sets nothing
        try:
            # The variables win over the file, key by key (nested sections merge).
            return cls.model_validate(_merged(data, values))
        except ValidationError as exc:
            source = str(path) if path else "environment"
            raise config_error_from(exc, source=source, origins=origins) from None

    @classmethod
    def build(cls, **sections: Any) -> Policy:
        """Build from keyword sections, ignoring ``SAFEGUARD_*`` settings (the state directory
        still defaults to ``SAFEGUARD_STATE_DIR``, then the per-user one). Errors name the key."""
        try:
            return cls.model_validate(sections)
        except ValidationError as exc:
            raise config_error_from(exc, source="arguments") from None

    @property
    def version(self) -> str:
        """A short, stable hash of the effective policy (secrets excluded)."""
        payload = self.model_dump(mode="json", exclude={"credentials"})
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def resolve_state_dir(policy: Policy, explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory to act on: ``explicit`` (a command's ``--state-dir``) when given,
    else the policy's, which already resolved ``SAFEGUARD_STATE_DIR``, the file and the
    per-user default. Always absolute, so it can be printed and means the same everywhere."""
    if explicit is None:
        return policy.kill_switch.state_dir
    if not str(explicit).strip():
        raise ConfigError("--state-dir must not be empty", key="--state-dir")
    return _absolute(Path(explicit))


def _merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys on top, tables merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        both_tables = isinstance(below, Mapping) and isinstance(value, Mapping)
        merged[key] = _merged(below, value) if both_tables else value  # type: ignore[arg-type]
    return merged


def _anchor_state_dir(data: dict[str, Any], file: Path) -> None:
    """A relative ``kill_switch.state_dir`` in a file is relative to that file, so every
    process loading it (a bot, ``safeguard kill`` from any directory) finds the same place."""
    section = data.get("kill_switch")
    if not isinstance(section, dict) or not isinstance(section.get("state_dir"), str):
        return
    raw = section["state_dir"]
    if raw.strip() and not Path(raw).expanduser().is_absolute():
        section["state_dir"] = str(_absolute(file).parent / raw)


_ENV_PREFIX = "SAFEGUARD_"
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_BOOLEANS = {"true": True, "false": False}


def environment_values(
    environ: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """The policy settings in ``environ`` and the variable that set each key path.

    ``SAFEGUARD_<SECTION>__<KEY>`` sets one key and ``SAFEGUARD_<SECTION>`` a whole section as
    JSON (refined by the nested ones); ``SAFEGUARD_STATE_DIR`` sets ``kill_switch.state_dir``.
    A value is converted by the type of the key it sets, and only in the spelling TOML uses:
    ``true``/``false`` for a boolean, digits for an integer, a number for a number. Anything
    else stays text for the strict validation to refuse, naming the key. Raises
    :class:`ConfigError` for a variable that names no setting, malformed JSON, or a relative
    state directory.
    """
    data: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    names = [name for name in environ if name.upper().startswith(_ENV_PREFIX)]
    # Whole sections (JSON) first, so a nested variable refines them rather than being lost.
    for name in sorted(names, key=lambda n: (n.count("__"), n)):
        raw = environ[name]
        if name == STATE_DIR_ENV:  # exactly as state_dir_from_environment reads it
            path: tuple[str, ...] = ("kill_switch", "state_dir")
        else:
            path = tuple(part.lower() for part in name[len(_ENV_PREFIX) :].split("__"))
            if path[0] not in Policy.model_fields:
                known = ", ".join(sorted(Policy.model_fields))
                raise ConfigError(
                    f"environment variable {name} names no policy setting "
                    f"(known sections: {known}; and {STATE_DIR_ENV})",
                    key=name,
                )
        if path == ("kill_switch", "state_dir"):
            value: Any = str(_absolute_from_environment(name, raw))
            if path in origins and _dig(data, path) != value:
                raise ConfigError(
                    f"{origins[path]} and {name} name different state directories",
                    key=name,
                )
        else:
            value = _typed(name, raw, _annotation_at(path))
        _put(data, path, value)
        origins[path] = name
    return data, origins


def _typed(name: str, raw: str, annotation: Any) -> Any:
    base = _base(annotation)
    if base is bool:
        return _BOOLEANS.get(raw.strip().lower(), raw)
    if base is int:
        return int(raw) if _INTEGER.fullmatch(raw) else raw
    if base is float:
        try:
            return float(raw)
        except ValueError:
            return raw
    if (isinstance(base, type) and issubclass(base, BaseModel)) or get_origin(base) in (
        dict,
        tuple,
        list,
    ):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ConfigError(
                f"environment variable {name} is not valid JSON: {exc}", key=name
            ) from None
    return raw


def _base(annotation: Any) -> Any:
    """``annotation`` without ``Annotated`` metadata and without ``| None``."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
            continue
        if origin in (Union, types.UnionType):
            options = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(options) == 1:
                annotation = options[0]
                continue
        return annotation


def _annotation_at(path: tuple[str | int, ...]) -> Any:
    """The type of the policy key at ``path``, or ``None`` when no key is there."""
    annotation: Any = Policy
    for part in path:
        base = _base(annotation)
        if isinstance(base, type) and issubclass(base, BaseModel):
            field = base.model_fields.get(str(part))
            if field is None:
                return None
            annotation = field.annotation
        elif get_origin(base) is dict:
            annotation = get_args(base)[1]
        else:
            return None
    return annotation


def _put(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    for part in path[:-1]:
        child = data.get(part)
        if not isinstance(child, dict):
            child = data[part] = {}
        data = child
    data[path[-1]] = value


def _dig(data: dict[str, Any], path: tuple[str, ...]) -> Any:
    found: Any = data
    for part in path:
        found = found.get(part) if isinstance(found, dict) else None
    return found


def config_error_from(
    exc: ValidationError,
    *,
    source: str,
    origins: Mapping[tuple[str, ...], str] | None = None,
) -> ConfigError:
    """Turn a pydantic error into one sentence per problem, each naming its dotted key (and
    the environment variable that set it, found in ``origins``)."""
    problems = []
    first_key: str | None = None
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = ".".join(str(part) for part in loc) or "<root>"
        first_key = first_key or key
        where = key
        for depth in range(len(loc), 0, -1):
            variable = (origins or {}).get(tuple(str(part) for part in loc[:depth]))
            if variable is not None:
                where = f"{key} (set by {variable})"
                break
        message = error["msg"].removeprefix("Value error, ")  # our own validators' sentences
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: unknown key (typo?)")
        elif _base(_annotation_at(loc)) is SecretStr or key.startswith("credentials"):
            problems.append(f"{where}: {message}")  # never echo what may be a secret
        else:
            problems.append(f"{where}: {message} (got {error.get('input')!r})")
    return ConfigError(f"invalid policy from {source}: " + "; ".join(problems), key=first_key)


__all__ = [
    "REDIS_SCHEMES",
    "STATE_DIR_ENV",
    "WEBHOOK_SCHEMES",
    "Credentials",
    "CrowdingConfig",
    "DegradationConfig",
    "FillModelConfig",
    "FleetConfig",
    "KillSwitchConfig",
    "LoggingConfig",
    "Policy",
    "PolicySection",
    "RetryConfig",
    "RiskLimits",
    "Section",
    "StressConfig",
    "ThrottleConfig",
    "TriggerConfig",
    "WarningConfig",
    "WarningName",
    "check_url",
    "config_error_from",
    "default_state_dir",
    "environment_values",
    "resolve_state_dir",
    "state_dir_from_environment",
]
