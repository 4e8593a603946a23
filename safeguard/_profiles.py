"""Venue profiles: everything safeguard must know of one venue to guard orders there.

The guard's core (the verdict, the journal, retries, the kill switch) is venue-neutral; four
things are not, and a profile holds them for one venue:

- **rate-limit headers**: the answer headers that carry the venue's counts (pacing reads them
  after every answer);
- **rate limits**: the published limits, used until the venue or the policy says otherwise;
- **protective stop placement**: how the stop that protects an entry is sent as its own order
  (Binance USD-M futures have no attached stops);
- **liquidation model**: how the venue computes a liquidation price (its margin tiers).

:data:`BINANCE_USDM` is the one shipped. ``guard()`` refuses an exchange without a profile
(``ccxt.bybit()``, ``ccxt.okx()``, spot ``ccxt.binance()``) with a :class:`ConfigError` that
says which of these it would be missing: guarding it with Binance's would pace on headers it
never sends and place stops it would refuse, which is worse than not guarding it at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from safeguard._errors import ConfigError


@dataclass(frozen=True, slots=True)
class VenueProfile:
    """What one venue (one ccxt exchange id) needs that the guard cannot know in general."""

    name: str
    exchange_id: str
    """ccxt's id of the venue's class (sync, async and pro share it)."""
    weight_header: re.Pattern[str]
    """An answer header carrying the request weight used in a window; groups: the window's
    length and unit (``X-MBX-USED-WEIGHT-1M``: 1, m)."""
    order_header: re.Pattern[str]
    """An answer header carrying the orders counted in a window; the same groups."""
    limits: tuple[tuple[str, int, int], ...]
    """(limit type, window in seconds, limit): the published limits, used when neither the
    venue (``exchangeInfo``) nor the policy says."""
    stop_params: Mapping[str, Any]
    """The params, besides ``stopLossPrice`` and ``workingType``, with which the protective
    stop is sent as a ``market`` order of its own."""
    liquidation_model: str
    """The :mod:`safeguard.risk._liquidation` model that prices liquidation there."""


BINANCE_USDM = VenueProfile(
    name="Binance USD-M futures",
    exchange_id="binanceusdm",
    weight_header=re.compile(r"(?i)^x-mbx-used-weight-(\d+)([smhd])$"),
    order_header=re.compile(r"(?i)^x-mbx-order-count-(\d+)([smhd])$"),
    limits=(("REQUEST_WEIGHT", 60, 2400), ("ORDERS", 10, 300), ("ORDERS", 60, 1200)),
    # A close-all STOP_MARKET: it needs no position when placed and closes whatever is held
    # when it triggers (ccxt 4.5.90 sends it as an algo order, with no quantity).
    stop_params=MappingProxyType({"closePosition": True}),
    liquidation_model="binanceusdm",
)

PROFILES: Mapping[str, VenueProfile] = MappingProxyType({BINANCE_USDM.exchange_id: BINANCE_USDM})
"""Every shipped profile, by ccxt exchange id."""

PROFILE_PARTS = ("rate-limit headers", "rate limits", "protective stop placement",
                 "liquidation model")  # fmt: skip
"""What a profile holds, in the words the refusal uses."""


def profile_for(exchange_id: str) -> VenueProfile:
    """The profile of the ccxt exchange ``exchange_id``; a :class:`ConfigError` naming what is
    missing when safeguard has none."""
    profile = PROFILES.get(exchange_id)
    if profile is not None:
        return profile
    shipped = ", ".join(f"{p.exchange_id} ({p.name})" for p in PROFILES.values())
    raise ConfigError(
        f"safeguard has no venue profile for {exchange_id!r}: it does not know that venue's "
        f"{', '.join(PROFILE_PARTS[:-1])} or {PROFILE_PARTS[-1]}, so it cannot pace, protect "
        f"or judge orders there; supported: {shipped}",
        key="exchange",
    )


__all__ = ["BINANCE_USDM", "PROFILES", "PROFILE_PARTS", "VenueProfile", "profile_for"]
