"""Never a second order: 1,500 orders in process (80 over HTTP) with ambiguous faults.

Real ccxt ``binanceusdm`` (in process, and over loopback HTTP), the real venue engine with its
fault plan injecting 5xx after the order was processed, timeouts after accept, dropped answers,
dropped requests, failing look-ups and look-ups refused by a ban or a throttle hold. The
venue's own order list is the judge: every client
order id appears there at most once, every order the guard returned is there, and every call
that ended with anything but ``OutcomeUnknown`` left no order behind unless it returned one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.killswitch._switch import KillSwitch
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

KEY, SECRET = "it-key-0123456789", "it-secret-0123456789abcdef"
SYMBOL, VENUE_SYMBOL = "ETH/USDT:USDT", "ETHUSDT"

AMBIGUOUS_FAULTS = {
    "seed": 11,
    "rules": [
        # the order was carried out, the answer says 503 (JSON -1001 and an HTML gateway page)
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "code": -1001,
         "processed": True, "probability": 0.06},
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 502, "body": "html",
         "processed": True, "probability": 0.04},
        # the order was carried out and the answer never came
        {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order", "probability": 0.06,
         "hold_s": 0.05},
        {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": True,
         "probability": 0.04},
        # the request never reached the engine: the order must be sent again, same id
        {"kind": "drop", "endpoint": "POST /fapi/v1/order", "processed": False,
         "probability": 0.04},
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "code": -1001,
         "probability": 0.03},
        # and the look-ups themselves fail now and then
        {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 503, "code": -1001,
         "probability": 0.1},
        {"kind": "drop", "endpoint": "GET /fapi/v1/openOrders", "processed": True,
         "probability": 0.1},
        # and twice each the look-up is refused outright: a ban (418), and a 429 whose
        # Retry-After the retry budget cannot wait out (a hold). The order may exist all the
        # same: the caller hears OutcomeUnknown, never "nothing was sent".
        {"kind": "ban", "endpoint": "GET /fapi/v1/order", "skip": 5, "count": 2},
        {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 429,
         "retry_after_s": 600, "skip": 15, "count": 2},
    ],
}  # fmt: skip


@dataclass
class Rig:
    exchange: Any
    venue: Venue
    requests: list[RequestEvent]


def _policy(tmp_path: Path) -> Policy:
    return Policy.build(
        risk={"require_stop": False, "max_open_orders": None},
        retry={"base_delay_s": 0.05, "max_delay_s": 1.0, "resolve_attempts": 8},
        # A fifth of the order sends fail on purpose: the health monitor would call that
        # SEVERE and refuse the rest of the run (the account re-reads after every order used
        # to dilute the error rate). What is tested here is the look-up, not the monitor.
        degradation={"min_samples": 100_000},
        kill_switch={"state_dir": str(tmp_path / "state"), "watch_state_file": False},
    )


@pytest.fixture(params=["inprocess", "http"])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=50_000.0)
    dialect = Dialect(venue, faults=FaultPlan.parse(AMBIGUOUS_FAULTS))
    server: VenueServer | None = None
    if request.param == "inprocess":
        raw = inprocess_client(dialect, KEY, SECRET)
    else:
        server = VenueServer(venue, dialect=dialect)
        raw = ccxt_client(server.url, KEY, SECRET, timeout_ms=2_000)
    policy = _policy(tmp_path)
    switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
    hooks = Hooks()
    requests: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, requests.append)

    def sleep(seconds: float) -> bool:
        venue.advance(seconds)  # simulated time: backoffs and settle windows cost nothing
        return False

    ex = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=clock,
        hooks=hooks,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
        sleep=sleep,
    )
    try:
        yield Rig(ex, venue, requests)
    finally:
        if server is not None:
            server.close()
        switch.close()


@pytest.mark.slow  # ~5-15 s depending on the machine's load: deselect with -m "not slow"
def test_no_order_is_ever_doubled_under_ambiguous_faults(rig: Rig) -> None:
    http = "127.0.0.1" in str(rig.exchange.urls["api"]["fapiPrivate"])
    runs = 80 if http else 1_500
    returned: dict[str, str] = {}
    unknown: set[str] = set()
    failed: set[str] = set()
    blocked: set[type[Exception]] = set()
    for i in range(runs):
        cid = f"it-{i}"
        side = "buy" if i % 2 == 0 else "sell"
        try:
            order = rig.exchange.create_order(
                SYMBOL, "market", side, 0.01, None, {"clientOrderId": cid}
            )
        except errors.OutcomeUnknown as exc:
            unknown.add(exc.client_order_id)
            if isinstance(exc.__cause__, errors.VenueBanned | errors.ThrottleHold):
                blocked.add(type(exc.__cause__))
                _wait_out(rig, exc.__cause__)
        except errors.SafeguardError as exc:
            failed.add(cid)
            _wait_out(rig, exc)
        else:
            assert order["clientOrderId"] == cid
            returned[cid] = str(order["id"])

    on_venue = [
        o
        for o in rig.venue.all_orders(KEY, symbol=VENUE_SYMBOL)
        if o["clientOrderId"].startswith("it-")
    ]
    per_id = Counter(o["clientOrderId"] for o in on_venue)
    assert per_id, "no order reached the venue"
    assert max(per_id.values()) == 1, [cid for cid, n in per_id.items() if n > 1]
    venue_ids = {o["clientOrderId"]: str(o["orderId"]) for o in on_venue}
    for cid, order_id in returned.items():
        assert venue_ids.get(cid) == order_id
    # A call that failed with a definite error left nothing behind.
    assert not (failed & set(venue_ids))
    assert unknown <= {f"it-{i}" for i in range(runs)}
    # Nothing exists on the venue that the caller was not told about (returned or unknown).
    assert set(venue_ids) <= set(returned) | unknown

    # The run was adversarial: many first sends failed ambiguously and were resolved.
    order_errors = [r for r in rig.requests if r.method == "create_order" and r.outcome != "ok"]
    lookups = [r for r in rig.requests if r.method == "fetch_order"]
    assert len(order_errors) >= runs // 10
    assert len(lookups) >= len(order_errors)
    assert len(returned) >= runs * 0.9
    # Both refusals met a look-up, and each ended in OutcomeUnknown.
    assert blocked == {errors.VenueBanned, errors.ThrottleHold}


def _wait_out(rig: Rig, exc: BaseException) -> None:
    """Let a ban or a throttle hold run out (simulated time), as a patient bot would."""
    if isinstance(exc, errors.VenueBanned):
        rig.venue.advance(max(0.0, exc.until - rig.venue.clock.time()) + 1.0)
    elif isinstance(exc, errors.ThrottleHold):
        rig.venue.advance(exc.retry_after + 1.0)
