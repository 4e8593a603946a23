"""Each fault in the plan, as an unmodified ccxt client sees it, on both transports.

What is asserted is what a bot would observe: the ccxt exception class, the answer headers
(``Retry-After``, ``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-*``) and, for ambiguous
outcomes, that the order really exists when looked up by its client order id.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import ccxt
import pytest
import pytest_asyncio

from safeguard._clock import ManualClock
from safeguard.venue._client import ccxt_client
from safeguard.venue._dialect import Dialect, Request
from safeguard.venue._engine import Venue
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

BTC = "BTC/USDT:USDT"
TRANSPORTS = ["http-sync", "http-async", "inprocess-sync", "inprocess-async"]
ORDER = "POST /fapi/v1/order"
UNLIMITED = RateLimits(10**9, 10**9, 10**9)
_keys = itertools.count(1)


@contextlib.contextmanager
def raises_exactly(cls: type[Exception], match: str | None = None) -> Iterator[Any]:
    """``pytest.raises`` that also refuses subclasses: the error table names exact classes."""
    with pytest.raises(cls, match=match) as info:
        yield info
    assert type(info.value) is cls, f"{type(info.value).__name__} is not {cls.__name__}"


@pytest.fixture(scope="module")
def venue() -> Venue:
    return Venue(clock=ManualClock(time.time()))


@pytest.fixture(scope="module")
def markets(venue: Venue) -> list[dict[str, Any]]:
    probe = inprocess_client(Dialect(venue), "probe", "probe")
    return list(probe.load_markets().values())


class Client:
    def __init__(self, venue: Venue, dialect: Dialect, exchange: Any, transport: str) -> None:
        self.venue = venue
        self.dialect = dialect
        self.ex = exchange
        self.transport = transport
        self.api_key = ""

    @property
    def asynchronous(self) -> bool:
        return self.transport.endswith("async")

    @property
    def http(self) -> bool:
        return self.transport.startswith("http")

    async def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.ex, method)(*args, **kwargs)
        return await result if inspect.isawaitable(result) else result

    def header(self, name: str) -> str | None:
        headers = self.ex.last_response_headers or {}
        return next((v for k, v in headers.items() if k.lower() == name.lower()), None)

    def order_by_client_id(self, client_order_id: str) -> dict[str, Any]:
        """Look the order up on the engine directly: the ground truth, no transport."""
        return self.venue.get_order(self.api_key, symbol="BTCUSDT", client_order_id=client_order_id)


Make = Callable[..., Client]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest_asyncio.fixture(loop_scope="module")
async def make(venue: Venue, markets: list[dict[str, Any]], transport: str) -> AsyncIterator[Make]:
    """Build a fresh dialect (own fault plan and rate-limit state) and a client for it."""
    made: list[Client] = []
    servers: list[VenueServer] = []

    def build(
        plan: dict[str, Any] | None = None,
        *,
        limits: RateLimits = UNLIMITED,
        timeout_ms: int = 10_000,
        strikes_before_ban: int = 5,
    ) -> Client:
        from safeguard.venue._ratelimit import RateLimiter

        dialect = Dialect(
            venue,
            limits=limits,
            limiter=RateLimiter(strikes_before_ban=strikes_before_ban),
            faults=FaultPlan.parse(plan) if plan else None,
        )
        key = f"fault-key-{next(_keys)}"
        venue.create_account(key, "s-" + key)
        asynchronous = transport.endswith("async")
        if transport.startswith("http"):
            server = VenueServer(venue, dialect=dialect)
            servers.append(server)
            ex = ccxt_client(
                server.url, key, "s-" + key, asyncio=asynchronous, timeout_ms=timeout_ms
            )
        else:
            ex = inprocess_client(
                dialect, key, "s-" + key, asyncio=asynchronous, timeout_ms=timeout_ms
            )
        ex.set_markets(markets)
        client = Client(venue, dialect, ex, transport)
        client.api_key = key
        made.append(client)
        return client

    yield build
    for client in made:
        if client.asynchronous:
            await client.ex.close()
    for server in servers:
        server.close()


def _error_plan(endpoint: str = "GET /fapi/v1/ticker/24hr", **rule: Any) -> dict[str, Any]:
    return {"rules": [{"kind": "error", "endpoint": endpoint, "count": 1} | rule]}


# --- error answers ------------------------------------------------------------------------


ERROR_TABLE: list[tuple[dict[str, Any], type[Exception]]] = [
    ({"status": 429, "retry_after_s": 7}, ccxt.DDoSProtection),
    ({"status": 429}, ccxt.DDoSProtection),
    ({"status": 400, "code": -1003}, ccxt.RateLimitExceeded),
    ({"status": 400, "code": -1015}, ccxt.RateLimitExceeded),
    ({"status": 502, "body": "html"}, ccxt.ExchangeNotAvailable),
    ({"status": 503, "body": "html"}, ccxt.ExchangeNotAvailable),
    ({"status": 503, "body": "empty"}, ccxt.ExchangeNotAvailable),
    ({"status": 504, "body": "empty"}, ccxt.RequestTimeout),
    ({"status": 503, "code": -1001}, ccxt.OperationFailed),
    ({"status": 500, "code": -1000}, ccxt.OperationFailed),
    ({"status": 503, "code": -1008}, ccxt.OperationFailed),
]


async def test_error_faults_raise_the_reference_exception(make: Make) -> None:
    # One client walks the whole table (a server per row would cost more than the rows).
    client = make()
    for rule, expected in ERROR_TABLE:
        client.dialect.set_fault_plan(FaultPlan.parse(_error_plan(**rule)))
        with raises_exactly(expected) as exc:
            await client("fetch_ticker", BTC)
        assert type(exc.value) is expected, rule
        if rule.get("code") in (-1000, -1001, -1008):  # a JSON 5xx is not a network failure
            assert not isinstance(exc.value, ccxt.NetworkError), rule
        retry_after = str(rule["retry_after_s"]) if "retry_after_s" in rule else None
        assert client.header("Retry-After") == retry_after, rule
        # count = 1: the next call is healthy again
        assert (await client("fetch_ticker", BTC))["symbol"] == BTC, rule


async def test_5xx_after_processing_leaves_an_order_to_find_by_client_id(make: Make) -> None:
    client = make(_error_plan(ORDER, status=503, body="html", processed=True))
    with raises_exactly(ccxt.ExchangeNotAvailable):
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "amb-1"})
    assert client.order_by_client_id("amb-1")["status"] == "FILLED"
    found = await client("fetch_order", None, BTC, {"clientOrderId": "amb-1"})
    assert found["status"] == "closed"
    assert found["filled"] == pytest.approx(0.01)


async def test_5xx_before_processing_creates_nothing(make: Make) -> None:
    client = make(_error_plan(ORDER, status=502, body="html"))
    with raises_exactly(ccxt.ExchangeNotAvailable):
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "amb-2"})
    with raises_exactly(ccxt.OrderNotFound):
        await client("fetch_order", None, BTC, {"clientOrderId": "amb-2"})


# --- answers that never come --------------------------------------------------------------


async def test_timeout_after_accept_the_order_exists(make: Make) -> None:
    client = make(
        {"rules": [{"kind": "timeout_after_accept", "endpoint": ORDER, "count": 1}]},
        timeout_ms=400,
    )
    with raises_exactly(ccxt.RequestTimeout):
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "to-1"})
    client.ex.timeout = 10_000  # the look-up must not race a loaded machine
    found = await client("fetch_order", None, BTC, {"clientOrderId": "to-1"})
    assert found["status"] == "closed"
    assert found["clientOrderId"] == "to-1"
    assert client.dialect.fault_state()["fired"] == [1]


async def test_a_hold_shorter_than_the_client_timeout_ends_as_a_closed_connection(
    make: Make,
) -> None:
    client = make(
        {"rules": [{"kind": "timeout_after_accept", "endpoint": ORDER, "hold_s": 0.2}]},
        timeout_ms=5_000,
    )
    expected = ccxt.ExchangeNotAvailable if client.asynchronous else ccxt.NetworkError
    with raises_exactly(expected):
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "hold-1"})
    assert client.order_by_client_id("hold-1")["status"] == "FILLED"


async def test_dropped_answer_after_processing(make: Make) -> None:
    client = make({"rules": [{"kind": "drop", "endpoint": ORDER, "count": 1}]})
    # requests reports a closed connection as a NetworkError, aiohttp as ExchangeNotAvailable
    expected = ccxt.ExchangeNotAvailable if client.asynchronous else ccxt.NetworkError
    with raises_exactly(expected) as exc:
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "drop-1"})
    assert not isinstance(exc.value, ccxt.RequestTimeout)
    assert client.order_by_client_id("drop-1")["status"] == "FILLED"


async def test_dropped_answer_before_processing_creates_nothing(make: Make) -> None:
    client = make({"rules": [{"kind": "drop", "endpoint": ORDER, "processed": False}]})
    expected = ccxt.ExchangeNotAvailable if client.asynchronous else ccxt.NetworkError
    with raises_exactly(expected):
        await client("create_order", BTC, "market", "buy", 0.01, None, {"clientOrderId": "drop-2"})
    client.dialect.set_fault_plan(None)
    assert await client("fetch_open_orders", BTC) == []
    with raises_exactly(ccxt.OrderNotFound):
        await client("fetch_order", None, BTC, {"clientOrderId": "drop-2"})


async def test_latency_beyond_the_client_timeout_is_a_timeout(make: Make) -> None:
    client = make(
        {"rules": [{"kind": "latency", "endpoint": "GET /fapi/v1/time", "ms": 1_500}]},
        timeout_ms=300,
    )
    with raises_exactly(ccxt.RequestTimeout):
        await client("fetch_time")
    client.ex.timeout = 10_000
    assert (await client("fetch_ticker", BTC))["symbol"] == BTC  # other endpoints unaffected


# --- rate limits, for real ----------------------------------------------------------------


async def test_weight_limit_answers_429_then_bans_with_418(make: Make) -> None:
    client = make(limits=RateLimits(weight_per_minute=3), strikes_before_ban=1)
    for used in (1, 2, 3):
        await client("fetch_ticker", BTC)
        assert client.header("X-MBX-USED-WEIGHT-1M") == str(used)
    with raises_exactly(ccxt.DDoSProtection, match="429") as exc:
        await client("fetch_ticker", BTC)
    assert "-1003" in str(exc.value)
    assert client.header("X-MBX-USED-WEIGHT-1M") == "4"
    assert 1 <= int(client.header("Retry-After") or 0) <= 60
    with raises_exactly(ccxt.DDoSProtection, match="418"):
        await client("fetch_ticker", BTC)
    assert client.header("Retry-After") == "120"


async def test_bans_lengthen_for_repeat_offenders(make: Make, venue: Venue) -> None:
    client = make({"rules": [{"kind": "ban", "endpoint": "GET /fapi/v1/time", "count": 2}]})
    with raises_exactly(ccxt.DDoSProtection, match="418"):
        await client("fetch_time")
    assert client.header("Retry-After") == "120"
    with raises_exactly(ccxt.DDoSProtection, match="418"):  # banned: every endpoint
        await client("fetch_ticker", BTC)
    venue.advance(121)
    with raises_exactly(ccxt.DDoSProtection, match="418"):
        await client("fetch_time")  # offends again
    assert client.header("Retry-After") == "240"
    venue.advance(241)
    assert (await client("fetch_ticker", BTC))["symbol"] == BTC


async def test_order_count_limit_is_429_without_retry_after_and_creates_nothing(
    make: Make,
) -> None:
    client = make(limits=RateLimits(orders_per_10s=2))
    price = float(client.venue.book_ticker("BTCUSDT")[0]["bidPrice"]) * 0.9
    price = float(client.ex.price_to_precision(BTC, price))
    for count in (1, 2):
        await client("create_order", BTC, "limit", "buy", 0.01, price)
        assert client.header("X-MBX-ORDER-COUNT-10S") == str(count)
        assert client.header("X-MBX-ORDER-COUNT-1M") == str(count)
    with raises_exactly(ccxt.DDoSProtection, match="-1015"):
        await client("create_order", BTC, "limit", "buy", 0.01, price)
    assert client.header("Retry-After") is None
    assert len(await client("fetch_open_orders", BTC)) == 2


async def test_throttle_tightens_order_limits_mid_run(make: Make, venue: Venue) -> None:
    client = make({"rules": [{"kind": "throttle", "orders_per_10s": 1, "start_s": 30}]})
    published = await client("fapiPublicGetExchangeInfo")
    assert [r["limit"] for r in published["rateLimits"] if r["interval"] == "SECOND"] == [10**9]
    await client("create_order", BTC, "market", "buy", 0.01)
    await client("create_order", BTC, "market", "sell", 0.01)
    venue.advance(30)
    await client("create_order", BTC, "market", "buy", 0.01)
    with raises_exactly(ccxt.DDoSProtection, match="-1015"):
        await client("create_order", BTC, "market", "sell", 0.01)
    published = await client("fapiPublicGetExchangeInfo")
    assert [r["limit"] for r in published["rateLimits"] if r["interval"] == "SECOND"] == [1]


# --- market events ------------------------------------------------------------------------


async def test_spike_event_moves_the_price(make: Make, venue: Venue) -> None:
    client = make(
        {"rules": [{"kind": "spike", "symbol": "SOLUSDT", "pct": 20, "duration_s": 60, "at_s": 5}]}
    )
    before = (await client("fetch_ticker", "SOL/USDT:USDT"))["last"]
    venue.advance(10)
    await client("fetch_time")  # the event fires on the next request after at_s
    venue.advance(5)
    after = (await client("fetch_ticker", "SOL/USDT:USDT"))["last"]
    assert after > before * 1.1


async def test_frozen_feed_event_keeps_showing_old_prices(make: Make, venue: Venue) -> None:
    client = make({"rules": [{"kind": "freeze_feed", "symbol": "ETHUSDT", "mode": "stale_prices"}]})
    frozen = (await client("fetch_ticker", "ETH/USDT:USDT"))["last"]
    venue.advance(600)
    assert (await client("fetch_ticker", "ETH/USDT:USDT"))["last"] == frozen
    client.dialect.set_fault_plan(
        FaultPlan.parse({"rules": [{"kind": "freeze_feed", "symbol": "ETHUSDT", "mode": "off"}]})
    )
    await client("fetch_time")
    assert (await client("fetch_ticker", "ETH/USDT:USDT"))["last"] == venue.last_price("ETHUSDT")


async def test_tier_table_change_event(make: Make) -> None:
    rows = [[0, 100_000, 0.02, 20], [100_000, 1_000_000, 0.05, 10]]
    client = make({"rules": [{"kind": "set_tiers", "symbol": "BTCUSDT", "tiers": rows}]})
    tiers = (await client("fetch_leverage_tiers", [BTC]))[BTC]
    assert [(t["maxLeverage"], t["maintenanceMarginRate"]) for t in tiers] == [
        (20, 0.02),
        (10, 0.05),
    ]
    with raises_exactly(ccxt.BadRequest):  # -4028: above the new table's cap
        await client("set_leverage", 50, BTC)


# --- countdown cancel-all -----------------------------------------------------------------


async def test_countdown_cancels_open_orders_unless_renewed(make: Make, venue: Venue) -> None:
    client = make()
    price = float(client.ex.price_to_precision(BTC, venue.mark_price("BTCUSDT") * 0.9))
    await client("create_order", BTC, "limit", "buy", 0.01, price)
    armed = await client(
        "fapiPrivatePostCountdownCancelAll", {"symbol": "BTCUSDT", "countdownTime": 2000}
    )
    assert armed == {"symbol": "BTCUSDT", "countdownTime": "2000"}
    venue.advance(1)
    await client("fapiPrivatePostCountdownCancelAll", {"symbol": "BTCUSDT", "countdownTime": 2000})
    venue.advance(1.5)
    assert len(await client("fetch_open_orders", BTC)) == 1  # renewed in time
    venue.advance(1)
    client.dialect.tick()
    assert await client("fetch_open_orders", BTC) == []


# --- changing the plan at run time --------------------------------------------------------


def _admin(url: str, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + "/admin/faults", data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.parametrize("transport", ["http-sync"])
async def test_admin_route_changes_the_plan_over_http(make: Make) -> None:
    client = make()
    url = client.ex.urls["api"]["fapiPublic"].removesuffix("/fapi/v1")
    status, state = _admin(url, "POST", _error_plan(status=503, body="html"))
    assert status == 200
    assert state["fired"] == [0]
    with raises_exactly(ccxt.ExchangeNotAvailable):
        await client("fetch_ticker", BTC)
    assert _admin(url, "GET")[1]["fired"] == [1]
    status, error = _admin(url, "POST", {"rules": [{"kind": "eror"}]})
    assert status == 400
    assert error["code"] == -1130
    assert _admin(url, "GET")[1]["fired"] == [1]  # the bad plan replaced nothing
    assert _admin(url, "DELETE")[1]["plan"]["rules"] == []


async def test_admin_route_refuses_non_loopback_peers(venue: Venue) -> None:
    dialect = Dialect(venue)
    plan = json.dumps(_error_plan(status=503))
    answer = dialect.handle(Request("POST", "/admin/faults", body=plan, client_ip="10.1.2.3"))
    assert answer.status == 403
    assert answer.json()["code"] == -1002
    assert dialect.fault_state()["plan"]["rules"] == []
    local = dialect.handle(Request("POST", "/admin/faults", body=plan, client_ip="::1"))
    assert local.status == 200
    assert len(dialect.fault_state()["plan"]["rules"]) == 1


@pytest.mark.parametrize("transport", ["inprocess-sync", "inprocess-async"])
async def test_in_process_latency_is_spent_through_the_hook(
    venue: Venue, markets: list[dict[str, Any]], transport: str
) -> None:
    # Latency in process is handed to a callback; venue.advance spends it in simulated time.
    plan = {"rules": [{"kind": "latency", "endpoint": "GET /fapi/v1/time", "ms": 250}]}
    dialect = Dialect(venue, limits=UNLIMITED, faults=FaultPlan.parse(plan))
    asynchronous = transport.endswith("async")
    ex = inprocess_client(
        dialect, "probe", "probe", asyncio=asynchronous, timeout_ms=1_000, on_latency=venue.advance
    )
    ex.set_markets(markets)
    client = Client(venue, dialect, ex, transport)
    try:
        before = venue.clock.time()
        assert await client("fetch_time") == int(before * 1000)  # answered before the delay
        assert venue.clock.time() == pytest.approx(before + 0.25)
        dialect.set_fault_plan(
            FaultPlan.parse({"rules": [{"kind": "latency", "endpoint": "*", "ms": 5_000}]})
        )
        with raises_exactly(ccxt.RequestTimeout):
            await client("fetch_time")
        assert venue.clock.time() == pytest.approx(before + 1.25)  # the client gave up at 1 s
    finally:
        if asynchronous:
            await ex.close()
