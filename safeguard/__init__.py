"""safeguard: keeps automated trading strategies from hurting themselves.

The library never adds log sinks of its own; call :func:`safeguard.configure_logging` (or add
your own loguru sinks and ``logger.enable("safeguard")``) to see its records.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy
from safeguard._log import logger as _logger
from safeguard.clock import Clock, ManualClock, SystemClock
from safeguard.codes import Code
from safeguard.config import Policy
from safeguard.errors import (
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

if TYPE_CHECKING:
    from safeguard.guard import AsyncGuardedExchange, GuardedExchange, guard
    from safeguard.guard.events import Hooks
    from safeguard.guard.request_log import configure_logging, unconfigure_logging
    from safeguard.killswitch import KillSwitch, SwitchState, TradingState
    from safeguard.risk.models import Account, MarketRules, MarketSnapshot, OrderIntent
    from safeguard.risk.outcome import Decision, Finding, Verdict
    from safeguard.risk.preview import preview

__version__ = "0.1.0.dev0"

_logger.disable("safeguard")

# Heavy names load on first use (PEP 562): ``import safeguard`` stays light, so the command
# line (``safeguard kill`` during an incident) does not wait for ccxt to import.
_LAZY: dict[str, str] = {
    "Account": "safeguard.risk.models",
    "AsyncGuardedExchange": "safeguard.guard",
    "Decision": "safeguard.risk.outcome",
    "Finding": "safeguard.risk.outcome",
    "GuardedExchange": "safeguard.guard",
    "Hooks": "safeguard.guard.events",
    "KillSwitch": "safeguard.killswitch",
    "MarketRules": "safeguard.risk.models",
    "MarketSnapshot": "safeguard.risk.models",
    "OrderIntent": "safeguard.risk.models",
    "SwitchState": "safeguard.killswitch",
    "TradingState": "safeguard.killswitch",
    "Verdict": "safeguard.risk.outcome",
    "configure_logging": "safeguard.guard.request_log",
    "guard": "safeguard.guard",
    "preview": "safeguard.risk.preview",
    "unconfigure_logging": "safeguard.guard.request_log",
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
