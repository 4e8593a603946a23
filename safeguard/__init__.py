"""safeguard: keeps automated trading strategies from hurting themselves.

The library never adds log sinks of its own; call :func:`safeguard.configure_logging` (or add
your own loguru sinks and ``logger.enable("safeguard")``) to see its records.
"""

from __future__ import annotations

from loguru import logger

from safeguard.clock import Clock, ManualClock, SystemClock
from safeguard.codes import Code
from safeguard.config import Policy
from safeguard.errors import (
    AuthenticationFailed,
    ConfigError,
    InsufficientFunds,
    InvalidOrder,
    OrderDenied,
    OrderNotFound,
    OutcomeUnknown,
    RequestBlocked,
    RetriesExhausted,
    SafeguardError,
    ThrottleHold,
    TradingHalted,
    VenueBanned,
    VenueRejected,
)

__version__ = "0.1.0.dev0"

logger.disable("safeguard")

__all__ = [
    "AuthenticationFailed",
    "Clock",
    "Code",
    "ConfigError",
    "InsufficientFunds",
    "InvalidOrder",
    "ManualClock",
    "OrderDenied",
    "OrderNotFound",
    "OutcomeUnknown",
    "Policy",
    "RequestBlocked",
    "RetriesExhausted",
    "SafeguardError",
    "SystemClock",
    "ThrottleHold",
    "TradingHalted",
    "VenueBanned",
    "VenueRejected",
    "__version__",
]
