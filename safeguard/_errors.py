"""The one error tree.

Every exception safeguard raises derives from :class:`SafeguardError`. The branches are about
what the caller must do next, because that differs:

    SafeguardError
    ├── ConfigError                 bad configuration or a corrupt state file; fix it and restart
    ├── RequestBlocked              nothing was sent; the venue never saw this request
    │   ├── InvalidInput            an argument the guard cannot judge as given (also a ValueError)
    │   ├── OrderDenied             a pre-trade check said no (``code`` + ``verdict``)
    │   ├── TradingHalted           the kill switch is HALTED or REDUCING
    │   ├── VenueBanned             the venue banned us; every call fails fast until ``until``
    │   └── ThrottleHold            the rate budget is held in reserve for risk-reducing orders
    ├── VenueRejected               the venue answered and said no; nothing was created
    │   ├── InsufficientFunds
    │   ├── InvalidOrder
    │   ├── OrderNotFound
    │   └── AuthenticationFailed
    ├── OutcomeUnknown              an order may or may not exist; reconcile by ``client_order_id``
    ├── RetriesExhausted            a request that changes nothing kept failing; safe to try later
    ├── ResumeRefused               the kill switch stays engaged (cooling period); see ``retry_at``
    └── ProtectiveStopFailed        the entry exists, its protective stop does not; protect or close

The original lower-layer exception (a ccxt error) is always chained as ``__cause__``. Every
exception pickles (it crosses process boundaries in fleets) and keeps its attributes.
"""

from __future__ import annotations

from typing import Any

from safeguard._codes import Code


class SafeguardError(Exception):
    """Root of every error safeguard raises. ``code`` is a stable UPPER_SNAKE string."""

    code: str = "SAFEGUARD_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle as ``cls(*self.args)`` by default, which loses keyword-only state.
        # Every subclass stores what it needs in ``__dict__``; rebuild from that.
        return (_rebuild, (type(self), self.message, dict(self.__dict__)))

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[SafeguardError], message: str, state: dict[str, Any]) -> SafeguardError:
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(SafeguardError, ValueError):
    """Configuration (or a persisted state file) is invalid. ``key`` names the offending entry."""

    code = "CONFIG_ERROR"

    def __init__(self, message: str, *, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class RequestBlocked(SafeguardError):
    """Nothing was sent: safeguard stopped the request before any I/O."""

    code = "REQUEST_BLOCKED"


class InvalidInput(RequestBlocked, ValueError):
    """An order argument the guard cannot judge or send as given: NaN, a negative or
    non-numeric amount, an unknown side or type, or a ``params`` entry that would change what
    the verdict judged (its side, size, price, symbol, type, reduce-only or position side).
    Nothing was sent. ``field`` names the argument (``"amount"``, ``"params.quantity"``).

    Also a :class:`ValueError`, which is what such input raised before it joined the tree."""

    code = Code.INVALID_INPUT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OrderDenied(RequestBlocked):
    """A pre-trade check denied the order. ``verdict`` holds the numbers behind the decision."""

    def __init__(self, code: str, message: str, *, verdict: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.reason = message
        self.verdict = verdict


class TradingHalted(RequestBlocked):
    """The kill switch refuses this order (HALTED: everything but cancels; REDUCING: exposure)."""

    def __init__(self, message: str, *, state: str, reason: str, code: str = Code.TRADING_HALTED):
        super().__init__(message)
        self.code = code
        self.state = state
        self.reason = reason


class VenueBanned(RequestBlocked):
    """The venue banned this IP or account until ``until`` (epoch seconds). Nothing is sent."""

    code = Code.VENUE_BANNED

    def __init__(self, message: str, *, until: float) -> None:
        super().__init__(message)
        self.until = until


class ThrottleHold(RequestBlocked):
    """The remaining rate budget is reserved for cancels and reduce-only orders."""

    code = Code.THROTTLE_RESERVE

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class VenueRejected(SafeguardError):
    """The venue answered and refused. Nothing was created; retrying the same request won't help."""

    code = "VENUE_REJECTED"

    def __init__(self, message: str, *, venue_code: str | None = None) -> None:
        super().__init__(message)
        self.venue_code = venue_code


class InsufficientFunds(VenueRejected):
    code = "VENUE_INSUFFICIENT_FUNDS"


class InvalidOrder(VenueRejected):
    code = "VENUE_INVALID_ORDER"


class OrderNotFound(VenueRejected):
    code = "VENUE_ORDER_NOT_FOUND"


class AuthenticationFailed(VenueRejected):
    code = "VENUE_AUTHENTICATION"


class OutcomeUnknown(SafeguardError):
    """The order may have reached the venue and could not be confirmed either way.

    Do not resend it. Reconcile by ``client_order_id`` (``fetch_order`` with
    ``params={"clientOrderId": ...}``) once the venue answers again.
    """

    code = "OUTCOME_UNKNOWN"

    def __init__(self, message: str, *, client_order_id: str, symbol: str | None = None) -> None:
        super().__init__(message)
        self.client_order_id = client_order_id
        self.symbol = symbol


class RetriesExhausted(SafeguardError):
    """A request that changes nothing on the venue failed on every attempt within its budget."""

    code = "RETRIES_EXHAUSTED"

    def __init__(self, message: str, *, attempts: int, elapsed: float) -> None:
        super().__init__(message)
        self.attempts = attempts
        self.elapsed = elapsed


class ResumeRefused(SafeguardError):
    """``resume`` was refused (cooling period, or it would tighten). ``retry_at`` is epoch s."""

    def __init__(self, message: str, *, code: str, retry_at: float | None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_at = retry_at


class ProtectiveStopFailed(SafeguardError):
    """An entry was accepted by the venue but its protective stop could not be placed.

    The position (or the resting entry) is unprotected: protect it, cancel the entry or close
    the position now. ``order`` is the entry order as the venue accepted it;
    ``stop_client_order_id`` names the stop, which is known absent unless ``__cause__`` is an
    :class:`OutcomeUnknown` (then reconcile it by that id before placing another). It is its own
    branch, not :class:`VenueRejected` ("nothing was created") nor :class:`OutcomeUnknown`:
    something *was* created, and the caller must act on it.
    """

    code = "PROTECTIVE_STOP_FAILED"

    def __init__(
        self,
        message: str,
        *,
        order: Any,
        stop_client_order_id: str,
        symbol: str | None = None,
    ) -> None:
        super().__init__(message)
        self.order = order
        self.stop_client_order_id = stop_client_order_id
        self.symbol = symbol


__all__ = [
    "AuthenticationFailed",
    "ConfigError",
    "InsufficientFunds",
    "InvalidInput",
    "InvalidOrder",
    "OrderDenied",
    "OrderNotFound",
    "OutcomeUnknown",
    "ProtectiveStopFailed",
    "RequestBlocked",
    "ResumeRefused",
    "RetriesExhausted",
    "SafeguardError",
    "ThrottleHold",
    "TradingHalted",
    "VenueBanned",
    "VenueRejected",
]
