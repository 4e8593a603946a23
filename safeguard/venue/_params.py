"""Binance's wire format for request parameters, decoded strictly.

Everything on the wire is a string. :class:`Params` turns the merged query string and form body
into typed values, answering malformed input with the code the venue uses (-1100 illegal
characters, -1101 duplicates, -1102 missing, -1104 parameters nobody read, -1130 invalid
data) before the engine is called, so a refusal never leaves half a change.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from urllib.parse import parse_qsl

from safeguard._log import logger
from safeguard.venue._errors import VenueReject, illegal, missing

# The patterns Binance publishes in its -1100 messages.
_DECIMAL = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_INTEGER = re.compile(r"^-?[0-9]{1,19}$")
_SYMBOL = re.compile(r"^[A-Z0-9-_.]{1,20}$")


def invalid(param: str) -> VenueReject:
    """-1130: the value has the right shape but is not acceptable."""
    return VenueReject(-1130, f"Data sent for parameter '{param}' is not valid.")


def parse_pairs(*sources: str) -> list[tuple[str, str]]:
    """Decode urlencoded ``sources`` (query string, form body) into ordered pairs."""
    pairs: list[tuple[str, str]] = []
    for source in sources:
        if source:
            pairs.extend(
                parse_qsl(source, keep_blank_values=True, errors="strict", max_num_fields=100)
            )
    return pairs


class Params:
    """The parameters of one request, read once each by name.

    Reading marks a parameter as used; :meth:`finish` refuses the request if anything was sent
    that the endpoint does not read (-1104), so an option the venue does not implement can
    never be silently ignored.
    """

    def __init__(self, pairs: Iterable[tuple[str, str]], path: str = "") -> None:
        self.path = path
        self._values: dict[str, str] = {}
        for key, value in pairs:
            if key in self._values:
                raise VenueReject(-1101, f"Duplicate values for a parameter detected: '{key}'.")
            self._values[key] = value
        self._read: set[str] = set()

    def __contains__(self, name: object) -> bool:
        return name in self._values

    def raw(self, name: str) -> str | None:
        """The value as sent, or ``None`` if absent; marks it read."""
        self._read.add(name)
        return self._values.get(name)

    def text(self, name: str, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                raise missing(name)
            return None
        return value

    def decimal(self, name: str, *, required: bool = False) -> float | None:
        """A non-negative decimal in plain notation (no sign, no exponent, no NaN).

        Precision and the tick/step grid are the market's rules, checked by the engine.
        """
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _DECIMAL.match(value):
            raise VenueReject(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            )
        return float(value)

    def integer(
        self, name: str, *, required: bool = False, low: int | None = None, high: int | None = None
    ) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if not _INTEGER.match(value):
            raise illegal(name)
        number = int(value)
        if (low is not None and number < low) or (high is not None and number > high):
            raise invalid(name)
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.text(name)
        if value is None:
            return None
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise invalid(name)
        return lowered == "true"

    def choice(
        self,
        name: str,
        allowed: Collection[str],
        *,
        required: bool = False,
        reject: VenueReject | None = None,
    ) -> str | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        if value not in allowed:
            raise reject if reject is not None else invalid(name)
        return value

    def symbol(self, known: Collection[str], *, required: bool = True) -> str | None:
        value = self.text("symbol", required=required)
        if value is None:
            return None
        if not _SYMBOL.match(value):
            raise illegal("symbol")
        if value not in known:
            raise VenueReject(-1121, "Invalid symbol.")
        return value

    def finish(self) -> None:
        """Refuse (-1104) if a parameter was sent that nothing read."""
        unread = sorted(set(self._values) - self._read)
        if unread:
            logger.warning("venue: {} refused unsupported parameters {}", self.path, unread)
            raise VenueReject(
                -1104,
                f"Not all sent parameters were read; read '{len(self._read & set(self._values))}'"
                f" parameter(s) but was sent '{len(self._values)}'.",
            )


__all__ = ["Params", "invalid", "parse_pairs"]
