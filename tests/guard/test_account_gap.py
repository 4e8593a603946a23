"""The gate's stale-account check: new exposure is judged only on an account view that is whole
and fresh (balance, positions, this symbol's leverage and margin mode), to the second.

The data are real ccxt structures read from the in-process mock venue and fed to the gate the
way the guard feeds it; time is simulated.
"""

from __future__ import annotations

from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard._core import Send
from safeguard.guard._degradation import HealthMonitor
from safeguard.guard._events import Hooks
from safeguard.guard._gate import PreTradeGate
from safeguard.guard._market import MarketCache
from safeguard.guard._orders import parse_call
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client

SYMBOL = "ETH/USDT:USDT"
KEY, SECRET = "gap-key-0123456789", "gap-secret-0123456789abcdef"
LIMIT = 5.0  # risk.max_market_data_age_s
MARKET = (
    ("load_markets", (True,)),
    ("fetch_leverage_tiers", ()),
    ("fetch_funding_rate", (SYMBOL,)),
    ("fetch_ticker", (SYMBOL,)),
    ("fetch_order_book", (SYMBOL, 100)),
)
ACCOUNT = (
    ("fetch_balance", ()),
    ("fetch_positions", ()),
    ("fetch_open_orders", (SYMBOL,)),
    ("fetch_leverages", ()),
)


class Rig:
    def __init__(self) -> None:
        self.clock = ManualClock(1_700_000_000.0)
        venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=self.clock)
        venue.create_account(KEY, SECRET, wallet=100_000.0)
        self.raw = inprocess_client(Dialect(venue), KEY, SECRET)
        policy = Policy.build(risk={"require_stop": False, "max_market_data_age_s": LIMIT})
        self.gate = PreTradeGate(policy, MarketCache(policy.risk), HealthMonitor(), Hooks())

    def read(self, *reads: tuple[str, tuple[Any, ...]]) -> None:
        for method, args in reads:
            send = Send(method, args)
            self.gate.absorb(send, getattr(self.raw, method)(*args), self.clock.time())

    def gap(self, *, reduce_only: bool = False, after: float = 0.0) -> str | None:
        """The MISSING_ACCOUNT denial's text for a market buy ``after`` seconds from now."""
        params = {"reduceOnly": True} if reduce_only else {}
        intent = parse_call(SYMBOL, "market", "buy", 0.01, None, params, prefix="t-")
        assessment = self.gate.assess(intent, self.clock.time() + after)
        denial = assessment.denial
        if denial is None or denial.code != Code.MISSING_ACCOUNT:
            return None
        return denial.reason


@pytest.fixture
def rig() -> Rig:
    made = Rig()
    made.raw.load_markets()
    made.read(*MARKET)
    return made


def test_a_whole_fresh_account_view_is_no_gap(rig: Rig) -> None:
    rig.read(*ACCOUNT)
    assert rig.gap() is None
    assert rig.gap(after=LIMIT) is None  # exactly as old as the policy allows


def test_leverage_and_margin_mode_never_read_deny_new_exposure(rig: Rig) -> None:
    rig.read(("fetch_balance", ()), ("fetch_positions", ()))
    assert rig.gap() == (
        f"leverage and margin mode of {SYMBOL} not read from the venue (fetch_leverages)"
    )
    assert rig.gap(reduce_only=True) is None  # an order that only reduces adds nothing


def test_open_orders_never_read_deny_new_exposure(rig: Rig) -> None:
    # Unknown is not none: they count against the limits as if filled.
    rig.read(*[read for read in ACCOUNT if read[0] != "fetch_open_orders"])
    assert rig.gap() == f"open orders of {SYMBOL} not read from the venue (fetch_open_orders)"
    assert rig.gap(reduce_only=True) is None


@pytest.mark.parametrize(
    ("stale", "label"),
    [
        ("fetch_balance", "balance"),
        ("fetch_positions", "positions"),
        ("fetch_open_orders", f"open orders of {SYMBOL}"),
        ("fetch_leverages", f"leverage and margin mode of {SYMBOL}"),
    ],
)
def test_each_part_of_the_account_read_too_long_ago_denies_new_exposure(
    rig: Rig, stale: str, label: str
) -> None:
    rig.read(*[read for read in ACCOUNT if read[0] == stale])
    rig.clock.advance(LIMIT + 0.5)
    rig.read(*[read for read in ACCOUNT if read[0] != stale])
    assert rig.gap() == (
        f"{label} last read {LIMIT + 0.5:.1f}s ago (the re-read failed); the policy allows "
        f"{LIMIT:g}s (risk.max_market_data_age_s)"
    )
    assert rig.gap(reduce_only=True) is None


def test_the_account_is_stale_the_moment_an_order_was_placed(rig: Rig) -> None:
    rig.read(*ACCOUNT)
    intent = parse_call(SYMBOL, "market", "buy", 0.01, None, None, prefix="t-")
    rig.gate.placed(intent, {"id": "1", "status": "closed"}, rig.clock.time())
    assert rig.gap() == (
        "balance last read not since our last order (the re-read failed); the policy allows "
        f"{LIMIT:g}s (risk.max_market_data_age_s)"
    )
