"""Stable reason codes.

Every denial, halt and warning safeguard produces carries one of these codes. They are
UPPER_SNAKE strings that never change meaning once released, because users alert on them
and grep journals for them. Adding a code is a feature; renaming one is a breaking change.
"""

from __future__ import annotations

from enum import StrEnum


class Code(StrEnum):
    """A stable, machine-readable reason."""

    # --- pre-trade verdict: liquidation and stops -------------------------------------------
    STOP_BEYOND_LIQUIDATION = "STOP_BEYOND_LIQUIDATION"
    """The stop's fill price (after slippage and fees) does not clear the liquidation price by
    the policy's buffer: the venue would liquidate the position before the stop could save it."""
    STOP_REQUIRED = "STOP_REQUIRED"
    """The order opens or adds exposure without a stop and the policy requires one."""
    STOP_WRONG_SIDE = "STOP_WRONG_SIDE"
    """The stop sits on the profit side of the entry (a long's stop above entry)."""
    LIQUIDATION_AT_ENTRY = "LIQUIDATION_AT_ENTRY"
    """The position would already be at or under maintenance margin when it opens."""

    # --- pre-trade verdict: size, leverage, exposure ----------------------------------------
    LEVERAGE_ABOVE_POLICY = "LEVERAGE_ABOVE_POLICY"
    LEVERAGE_ABOVE_TIER = "LEVERAGE_ABOVE_TIER"
    NOTIONAL_PER_ORDER = "NOTIONAL_PER_ORDER"
    NOTIONAL_PER_POSITION = "NOTIONAL_PER_POSITION"
    NOTIONAL_PER_ACCOUNT = "NOTIONAL_PER_ACCOUNT"
    OPEN_ORDER_COUNT = "OPEN_ORDER_COUNT"
    CONCENTRATION = "CONCENTRATION"
    INSUFFICIENT_MARGIN = "INSUFFICIENT_MARGIN"
    STRESS_GRID_BREACH = "STRESS_GRID_BREACH"
    """With ``require_stress_survival``: a shock of the policy's stress grid would liquidate the
    account the order leaves (the finding names the nearest such shock and the loss)."""
    MARGIN_PRESSURE = "MARGIN_PRESSURE"
    """A warning: the order leaves its position's margin ratio (maintenance over the pool's
    equity) past ``risk.band_warning_ratio``, inside its liquidation band."""
    CORRELATION_FALLBACK = "CORRELATION_FALLBACK"
    """A warning: with ``risk.stress.correlation_source = "estimated"``, a pair of the symbols
    the cascade moves together had too few returns (or a price that did not move) to measure,
    and the cascade used the configured ``cascade_correlation`` for it."""
    CROWDING = "CROWDING"
    """The symbol is crowded (basis, funding, volatility, open interest): the policy tightens
    its leverage and size limits, and the order is above the tightened ones."""

    # --- pre-trade verdict: order shape and market rules ------------------------------------
    PRICE_OUTSIDE_BAND = "PRICE_OUTSIDE_BAND"
    TICK_SIZE = "TICK_SIZE"
    PRICE_FILTER = "PRICE_FILTER"
    """A limit or stop price the venue's price filters refuse: below one tick or the market's
    minimum price, above its maximum, or (a limit) outside the percent-price band around the
    mark. Denied before anything is sent: an entry whose stop cannot be placed stays out."""
    STEP_SIZE = "STEP_SIZE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    MIN_QUANTITY = "MIN_QUANTITY"
    MAX_QUANTITY = "MAX_QUANTITY"
    REDUCE_ONLY_WOULD_INCREASE = "REDUCE_ONLY_WOULD_INCREASE"
    REDUCE_ONLY_WOULD_FLIP = "REDUCE_ONLY_WOULD_FLIP"
    POST_ONLY_WOULD_TAKE = "POST_ONLY_WOULD_TAKE"
    INSUFFICIENT_DEPTH = "INSUFFICIENT_DEPTH"
    UNKNOWN_SYMBOL = "UNKNOWN_SYMBOL"
    INVALID_INPUT = "INVALID_INPUT"

    # --- data quality: every one of these fails closed ---------------------------------------
    STALE_MARKET_DATA = "STALE_MARKET_DATA"
    MISSING_MARKET_DATA = "MISSING_MARKET_DATA"
    STALE_MARKET_RULES = "STALE_MARKET_RULES"
    MISSING_ACCOUNT = "MISSING_ACCOUNT"

    # --- venue health -----------------------------------------------------------------------
    DEGRADED_RISK = "DEGRADED_RISK"
    """The order passed on a healthy venue but not under the degraded fill model."""
    SEVERE_REDUCE_ONLY = "SEVERE_REDUCE_ONLY"
    """The venue is in SEVERE state and the policy allows only orders that reduce."""
    VENUE_BANNED = "VENUE_BANNED"
    THROTTLE_RESERVE = "THROTTLE_RESERVE"
    """The request budget left is held in reserve for cancels and reduce-only orders."""

    # --- kill switch ------------------------------------------------------------------------
    TRADING_HALTED = "TRADING_HALTED"
    TRADING_REDUCING = "TRADING_REDUCING"
    COOLING_PERIOD = "COOLING_PERIOD"
    """A resume (re-arm) was refused: the kill switch engaged too recently."""

    # --- kill-switch triggers (the reason an automatic engage names) ------------------------
    DAILY_LOSS = "DAILY_LOSS"
    DRAWDOWN = "DRAWDOWN"
    LIQUIDATION_DISTANCE = "LIQUIDATION_DISTANCE"
    ORDER_RATE = "ORDER_RATE"
    CANCEL_RATE = "CANCEL_RATE"
    REJECTION_BURST = "REJECTION_BURST"
    LEVERAGE_CHANGES = "LEVERAGE_CHANGES"
    CONSECUTIVE_ERRORS = "CONSECUTIVE_ERRORS"
    EARLY_WARNING = "EARLY_WARNING"
    """An early warning the policy escalates (``kill_switch.warnings.escalate``): the reason
    names which one (CANCEL_BURST, THIN_BOOK, MARK_INDEX_GAP, ...)."""
    TRIGGER_FAILED = "TRIGGER_FAILED"
    """A trigger could not be evaluated (an input it cannot judge, or a bug): the switch
    engages rather than let the bot trade with a limit nobody is checking."""
    STATE_STORE_UNAVAILABLE = "STATE_STORE_UNAVAILABLE"
    MANUAL = "MANUAL"
