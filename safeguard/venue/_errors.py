"""The venue's one refusal: :class:`VenueReject`, carrying Binance USD-M's own error code.

The simulated exchange speaks Binance's dialect, so a refusal is the pair Binance would send,
``{"code": -2019, "msg": "Margin is insufficient."}``, plus the HTTP status the transport
answers with. Every bad argument the engine receives ends here, before any state changes.
"""

from __future__ import annotations

from typing import Any


class VenueReject(Exception):
    """The venue refused a request. ``code`` and ``msg`` are what Binance would answer."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(code, msg, http_status)
        self.code = code
        self.msg = msg
        self.http_status = http_status

    def __str__(self) -> str:
        return f"{self.code}: {self.msg}"

    def body(self) -> dict[str, Any]:
        """The JSON body Binance sends with this refusal."""
        return {"code": self.code, "msg": self.msg}


def missing(param: str) -> VenueReject:
    """-1102: a mandatory parameter was absent or empty."""
    return VenueReject(
        -1102, f"Mandatory parameter '{param}' was not sent, was empty/null, or malformed."
    )


def not_required(param: str) -> VenueReject:
    """-1106: a parameter the order type does not take."""
    return VenueReject(-1106, f"Parameter '{param}' sent when not required.")


def illegal(param: str) -> VenueReject:
    """-1100: a parameter of the wrong type or shape."""
    return VenueReject(-1100, f"Illegal characters found in parameter '{param}'.")


INVALID_SYMBOL = -1121
MARGIN_INSUFFICIENT = -2019
REDUCE_ONLY_REJECTED = -2022
DUPLICATE_CLIENT_ORDER_ID = -4116
POST_ONLY_WOULD_TAKE = -5022
FOK_NOT_FILLED = -5021
UNKNOWN_ORDER_QUERY = -2013
UNKNOWN_ORDER_CANCEL = -2011
BAD_API_KEY = -2015

__all__ = [
    "BAD_API_KEY",
    "DUPLICATE_CLIENT_ORDER_ID",
    "FOK_NOT_FILLED",
    "INVALID_SYMBOL",
    "MARGIN_INSUFFICIENT",
    "POST_ONLY_WOULD_TAKE",
    "REDUCE_ONLY_REJECTED",
    "UNKNOWN_ORDER_CANCEL",
    "UNKNOWN_ORDER_QUERY",
    "VenueReject",
    "illegal",
    "missing",
    "not_required",
]
