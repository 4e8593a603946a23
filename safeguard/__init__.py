"""safeguard: keeps automated trading strategies from hurting themselves.

The library never adds log sinks of its own; call :func:`safeguard.configure_logging` (or add
your own loguru sinks and ``logger.enable("safeguard")``) to see its records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy
from safeguard._clock import Clock, ManualClock, SystemClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard._errors import (
    AuthenticationFailed,
    ConfigError,
    InsufficientFunds,
    InvalidInput,
    InvalidOrder,
    OrderDenied,
    OrderNotFound,
    OutcomeUnknown,
    ProtectiveStopFailed,
    RequestBlocked,
    ResumeRefused,
    RetriesExhausted,
    SafeguardError,
    ThrottleHold,
    TradingHalted,
    VenueBanned,
    VenueRejected,
)
from safeguard._log import logger as _logger

if TYPE_CHECKING:
    from safeguard.guard import AsyncGuardedExchange, GuardedExchange, guard
    from safeguard.guard._events import Hooks
    from safeguard.guard._request_log import configure_logging, unconfigure_logging
    from safeguard.killswitch import KillSwitch, SwitchState, TradingState
    from safeguard.risk._models import Account, MarketRules, MarketSnapshot, OrderIntent
    from safeguard.risk._outcome import Decision, Finding, Verdict
    from safeguard.risk._preview import preview

__version__ = "0.1.0.dev0"

_logger.disable("safeguard")

# Heavy names load on first use (PEP 562): ``import safeguard`` stays light, so the command
# line (``safeguard kill`` during an incident) does not wait for ccxt to import.
_LAZY: dict[str, str] = {
    "Account": "safeguard.risk._models",
    "AsyncGuardedExchange": "safeguard.guard",
    "Decision": "safeguard.risk._outcome",
    "Finding": "safeguard.risk._outcome",
    "GuardedExchange": "safeguard.guard",
    "Hooks": "safeguard.guard._events",
    "KillSwitch": "safeguard.killswitch",
    "MarketRules": "safeguard.risk._models",
    "MarketSnapshot": "safeguard.risk._models",
    "OrderIntent": "safeguard.risk._models",
    "SwitchState": "safeguard.killswitch",
    "TradingState": "safeguard.killswitch",
    "Verdict": "safeguard.risk._outcome",
    "configure_logging": "safeguard.guard._request_log",
    "guard": "safeguard.guard",
    "preview": "safeguard.risk._preview",
    "unconfigure_logging": "safeguard.guard._request_log",
}


# ``guard`` is not kept: the subpackage binds itself as ``safeguard.guard`` (it is callable).
__getattr__, __dir__ = _lazy.lazy_exports(__name__, _LAZY, globals(), uncached=("guard",))


__all__ = [
    "Account",
    "AsyncGuardedExchange",
    "AuthenticationFailed",
    "Clock",
    "Code",
    "ConfigError",
    "Decision",
    "Finding",
    "GuardedExchange",
    "Hooks",
    "InsufficientFunds",
    "InvalidInput",
    "InvalidOrder",
    "KillSwitch",
    "ManualClock",
    "MarketRules",
    "MarketSnapshot",
    "OrderDenied",
    "OrderIntent",
    "OrderNotFound",
    "OutcomeUnknown",
    "Policy",
    "ProtectiveStopFailed",
    "RequestBlocked",
    "ResumeRefused",
    "RetriesExhausted",
    "SafeguardError",
    "SwitchState",
    "SystemClock",
    "ThrottleHold",
    "TradingHalted",
    "TradingState",
    "VenueBanned",
    "VenueRejected",
    "Verdict",
    "__version__",
    "configure_logging",
    "guard",
    "preview",
    "unconfigure_logging",
]
