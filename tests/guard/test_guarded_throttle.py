"""Throttling before the venue does: a plain ccxt client gets banned, the guarded one never does,
and the guarded one still uses more than 80 % of the budget.

Both clients run the same naive strategy (poll the deepest order book as fast as it can and
retry at once on any error) against the same venue settings, each on its own venue so one's
ban cannot spill onto the other. Time is simulated: the guard's waits advance the venue clock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ccxt
import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.guard._throttle import RateBudget, RateLimits
from safeguard.killswitch._switch import KillSwitch
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._ratelimit import RateLimits as VenueLimits
from safeguard.venue._server import VenueServer

KEY, SECRET = "thr-key-0123456789", "thr-secret-0123456789abcdef"
SYMBOL = "ETH/USDT:USDT"
LIMIT = 600  # request weight per minute, published by the venue and configured in the policy
DEPTH_WEIGHT = 20  # GET /fapi/v1/depth?limit=1000


def _venue(transport: str, cleanup: list[Callable[[], None]]) -> tuple[Venue, Any]:
    clock = ManualClock(1_700_000_010.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=10_000.0)
    dialect = Dialect(venue, limits=VenueLimits(weight_per_minute=LIMIT))
    if transport == "inprocess":
        return venue, inprocess_client(dialect, KEY, SECRET)
    server = VenueServer(venue, dialect=dialect)
    cleanup.append(server.close)
    return venue, ccxt_client(server.url, KEY, SECRET, timeout_ms=5_000)


@pytest.fixture
def cleanup() -> Any:
    stack: list[Callable[[], None]] = []
    yield stack
    for close in reversed(stack):
        close()


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_plain_ccxt_is_banned_where_the_guard_is_not(
    transport: str, tmp_path: Path, cleanup: list[Callable[[], None]]
) -> None:
    # --- plain ccxt: the same loop, retrying at once -------------------------------------------
    venue, plain = _venue(transport, cleanup)
    plain.load_markets()
    statuses: list[str] = []
    for _ in range(80):
        try:
            plain.fetch_order_book(SYMBOL, 1000)
            statuses.append("ok")
        except ccxt.DDoSProtection as exc:
            statuses.append("418" if " 418 " in f" {exc} " or "banned" in str(exc) else "429")
        venue.advance(0.2)
    assert "418" in statuses, statuses

    # --- the guarded client: same loop for three simulated minutes ----------------------------
    venue, raw = _venue(transport, cleanup)
    clock = venue.clock
    assert isinstance(clock, ManualClock)
    policy = Policy.build(
        throttle={"weight_limit_per_minute": LIMIT},
        kill_switch={"state_dir": str(tmp_path / "state"), "watch_state_file": False},
    )
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    cleanup.append(switch.close)
    hooks = Hooks()
    events: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, events.append)

    paced: list[float] = []

    def sleep(seconds: float) -> bool:
        paced.append(seconds)
        venue.advance(seconds)
        return False

    budget = RateBudget.standalone(policy.throttle, RateLimits.from_config(policy.throttle))
    ex = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp_path / "orders.jsonl",
        budget=budget,
        sleep=sleep,
    )
    start_minute = int(clock.time() // 60) + 1
    end = (start_minute + 3) * 60.0
    holds = 0
    while clock.time() < end:
        try:
            ex.fetch_order_book(SYMBOL, 1000)
        except errors.ThrottleHold as hold:
            holds += 1
            venue.advance(max(hold.retry_after, 0.01))
        venue.advance(0.05)

    assert all(e.status != 418 for e in events)
    assert all(e.outcome != "throttled" for e in events), "the guard let a 429 happen"
    used: dict[int, int] = defaultdict(int)
    for e in events:
        if e.method == "fetch_order_book" and e.outcome == "ok":
            used[int(e.at // 60)] += DEPTH_WEIGHT
    full_minutes = [used[m] for m in range(start_minute, start_minute + 3)]
    assert all(u >= 0.8 * LIMIT for u in full_minutes), full_minutes
    assert all(u <= LIMIT for u in full_minutes), full_minutes
    # The budget, not luck, kept it under the limit: it spaced requests and held reads back.
    assert len(paced) > 10
    assert holds + len(paced) > 10


@pytest.mark.parametrize("transport", ["inprocess", "http"])
def test_order_bursts_are_paced_under_the_order_count_limit(
    transport: str, tmp_path: Path, cleanup: list[Callable[[], None]]
) -> None:
    orders_per_10s = 8

    def venue_with_order_limit() -> tuple[Venue, Any]:
        clock = ManualClock(1_700_000_010.0)
        venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
        venue.create_account(KEY, SECRET, wallet=100_000.0)
        dialect = Dialect(venue, limits=VenueLimits(orders_per_10s=orders_per_10s))
        if transport == "inprocess":
            return venue, inprocess_client(dialect, KEY, SECRET)
        server = VenueServer(venue, dialect=dialect)
        cleanup.append(server.close)
        return venue, ccxt_client(server.url, KEY, SECRET, timeout_ms=5_000)

    # Plain ccxt: a burst of 20 orders in one go meets 429s (-1015) past the limit.
    venue, plain = venue_with_order_limit()
    plain.load_markets()
    refused = 0
    for i in range(20):
        try:
            plain.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01)
        except (ccxt.RateLimitExceeded, ccxt.DDoSProtection):
            refused += 1
    assert refused > 0

    # Guarded: the same burst is paced; every order goes through and none is refused.
    venue, raw = venue_with_order_limit()
    clock = venue.clock
    assert isinstance(clock, ManualClock)
    policy = Policy.build(
        risk={"require_stop": False},
        throttle={"orders_per_10s": orders_per_10s},
        kill_switch={"state_dir": str(tmp_path / "state"), "watch_state_file": False},
    )
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    cleanup.append(switch.close)
    hooks = Hooks()
    events: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, events.append)

    def sleep(seconds: float) -> bool:
        venue.advance(seconds)
        return False

    ex = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp_path / "orders.jsonl",
        budget=RateBudget.standalone(policy.throttle, RateLimits.from_config(policy.throttle)),
        sleep=sleep,
    )
    start = clock.time()
    placed = [
        ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01) for i in range(20)
    ]
    assert len({o["clientOrderId"] for o in placed}) == 20
    assert all(e.outcome != "throttled" for e in events)
    # 20 orders at 8 per 10 s (minus the reserve) cannot fit in less than two windows.
    assert clock.time() - start >= 10.0


def test_an_order_limit_too_small_for_one_order_refuses_it_with_a_safeguard_error(
    tmp_path: Path,
) -> None:
    """A venue throttled to one order per 10 s leaves no room for a new order once the
    reserve for cancels and reduce-only orders is kept: the order is refused by name (a
    SafeguardError), never with a bare ValueError, and nothing reaches the venue."""
    from safeguard.testing import paper_account

    account = paper_account(wallet=10_000)
    try:
        account.set_faults({"rules": [{"kind": "throttle", "orders_per_10s": 1}]})
        exchange = account.guarded(Policy.build(), state_dir=tmp_path)
        exchange.load_markets()
        price = float(exchange.fetch_ticker("BTC/USDT:USDT")["last"])
        with pytest.raises(errors.RequestBlocked, match="ORDERS/10s"):
            exchange.create_order(
                "BTC/USDT:USDT", "limit", "buy", 0.002, round(price * 0.99, 1),
                {"stopLoss": {"triggerPrice": round(price * 0.95, 1)}},
            )  # fmt: skip
        assert account.orders() == []
    finally:
        account.close()
