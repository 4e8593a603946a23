"""The mock venue's one voice: Binance USD-M REST, request in, answer out.

:meth:`Dialect.handle` takes a transport-neutral :class:`Request` (method, path, raw query and
body, headers, peer address) and returns a :class:`Response` (status, headers, JSON text, and
how to deliver it). Both transports, loopback HTTP and in-process ccxt, call only this, so they
cannot disagree about an answer.

For every request, in the venue's order: the IP's ban and request weight, the account's order
counts (429 / 418 with ``Retry-After``), the fault plan, the API key, ``timestamp`` within
``recvWindow`` and the HMAC signature, then strict parameter decoding and finally one call
into the engine. A refusal at any step leaves the venue untouched. An unknown path is a 404
with a JSON body and a loud log line, never something that looks like a network fault.
``handle`` never raises: a bug becomes a logged HTTP 500 ``{-1000}``, which the fuzz tests
prove never happens.
"""

from __future__ import annotations

import ipaddress
import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from safeguard._clock import Clock, SystemClock
from safeguard._errors import ConfigError
from safeguard._log import logger
from safeguard.venue import _candles as candles
from safeguard.venue._candles import Kind
from safeguard.venue._errors import VenueReject
from safeguard.venue._faults import (
    AnswerRule,
    BanRule,
    CrowdRule,
    DropRule,
    ErrorRule,
    FaultInjector,
    FaultPlan,
    FreezeFeedRule,
    HideOrderRule,
    Injection,
    SetFundingIntervalRule,
    SpikeRule,
    TimeoutRule,
)
from safeguard.venue._params import Params, invalid, parse_pairs
from safeguard.venue._ratelimit import RateLimiter, RateLimits, Refusal, Usage, ban_refusal
from safeguard.venue._signing import check_freshness, check_signature, split_signature
from safeguard.venue._streams import ListenKeys, StreamHub

if TYPE_CHECKING:
    from safeguard.venue._engine import Venue

JSON_TYPE = "application/json;charset=UTF-8"


class Delivery(StrEnum):
    """How the transport hands the answer over."""

    ANSWER = "answer"
    DROP = "drop"
    """Close the connection without answering."""
    HANG = "hang"
    """Never answer: hold the connection until the client gives up (``Response.hold_s``)."""


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request as the venue sees it. ``headers`` keys are matched case-insensitively."""

    method: str
    path: str
    query: str = ""
    body: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    client_ip: str = "127.0.0.1"

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Response:
    """The venue's answer and how to deliver it (after ``latency_s`` of extra delay)."""

    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)
    delivery: Delivery = Delivery.ANSWER
    latency_s: float = 0.0
    hold_s: float = 0.0

    @property
    def reason(self) -> str:
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return "Unknown"

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass(frozen=True, slots=True)
class Call:
    """What a route handler gets: the venue, the decoded parameters and the caller."""

    venue: Venue
    params: Params
    api_key: str
    now: float
    dialect: Dialect


Handler = Callable[[Call], Any]
Weight = int | Callable[[Params], int]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    weight: Weight = 1
    signed: bool = False
    orders: Weight = 0
    """How many units of the account's order-count limits one call uses."""
    keyed: bool = False
    """Needs a known API key but no signature (the listen-key routes)."""

    def weight_of(self, params: Params) -> int:
        return self.weight if isinstance(self.weight, int) else self.weight(params)

    def orders_of(self, params: Params) -> int:
        return self.orders if isinstance(self.orders, int) else self.orders(params)


_DEFAULT_MESSAGES = {
    -1000: "An unknown error occured while processing the request.",
    -1001: "Internal error; unable to process your request. Please try again.",
    -1003: "Too many requests queued.",
    -1008: "Server is currently overloaded with other requests. Please try again in a few minutes.",
    -1015: "Too many new orders.",
}


class Dialect:
    """Binance USD-M request handling over a :class:`~safeguard.venue._engine.Venue`.

    ``auth_clock`` judges ``timestamp``/``recvWindow`` (wall time by default: ccxt signs with
    wall time even when the venue runs on simulated time). Rate limits, the fault plan and
    countdowns run on the venue's own clock, so under a ``ManualClock`` the one-minute weight
    window rolls only when the test advances time. ``limits`` defaults to what the venue
    publishes in ``exchangeInfo.rateLimits``.
    """

    def __init__(
        self,
        venue: Venue,
        *,
        auth_clock: Clock | None = None,
        limits: RateLimits | None = None,
        limiter: RateLimiter | None = None,
        faults: FaultPlan | None = None,
    ) -> None:
        self.venue = venue
        self.auth_clock: Clock = auth_clock if auth_clock is not None else SystemClock()
        with venue.lock:
            published = venue.exchange_info().get("rateLimits", [])
            self.limits = limits if limits is not None else RateLimits.from_exchange_info(published)
            now = venue.clock.time()
        self.limiter = limiter if limiter is not None else RateLimiter()
        self._faults = FaultInjector(faults or FaultPlan(), installed_at=now)
        self._countdowns: dict[tuple[str, str], float] = {}
        self.listen_keys = ListenKeys()
        self._streams: StreamHub | None = None

    @property
    def streams(self) -> StreamHub:
        """The websocket streams behind this dialect (made on first use: a REST-only venue
        never registers the engine listener that feeds them)."""
        with self.venue.lock:
            if self._streams is None:
                self._streams = StreamHub(self.venue, self.listen_keys, lambda: self._faults)
            return self._streams

    def pump(self) -> None:
        """Publish stream updates (if anyone ever connected); transports call it after each
        request and on their tick."""
        hub = self._streams
        if hub is not None:
            try:
                hub.pump()
            except Exception:
                logger.exception("venue: publishing the streams failed")

    # --- the fault plan, changeable at run time -----------------------------------------------

    def set_fault_plan(self, plan: FaultPlan | None) -> None:
        """Replace the fault plan (``None``: no faults); its times count from now."""
        with self.venue.lock:
            self._faults = FaultInjector(plan or FaultPlan(), installed_at=self.venue.clock.time())

    def fault_state(self) -> dict[str, Any]:
        """The running plan and how often each of its rules has fired."""
        with self.venue.lock:
            return self._faults.describe()

    def limits_at(self, now: float) -> RateLimits:
        """The limits in force at ``now``: the published ones, tightened by throttle faults."""
        with self.venue.lock:
            return self._faults.limits(self.limits, now)

    # --- requests -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Fire what is due without a request: countdown cancels and scheduled market events.

        Transports on wall time call this periodically; every request calls it too.
        """
        with self.venue.lock:
            self.venue.sync()
            self._fire_due(self.venue.clock.time())
            self.pump()

    def handle(self, request: Request) -> Response:
        """Answer one request. Never raises."""
        try:
            with self.venue.lock:
                answer = self._handle(request)
                self.pump()
                return answer
        except Exception:
            logger.exception("venue: unhandled error answering {} {}", request.method, request.path)
            return _json_response(500, {"code": -1000, "msg": _DEFAULT_MESSAGES[-1000]})

    def _handle(self, request: Request) -> Response:
        venue = self.venue
        venue.sync()
        now = venue.clock.time()
        self._fire_due(now)
        method = request.method.upper()
        if request.path.startswith("/admin/"):
            return self._admin(method, request)

        route = ROUTES.get((method, request.path))
        api_key = request.header("X-MBX-APIKEY")
        account = api_key if api_key and venue.secret_for(api_key) is not None else None
        early: VenueReject | None = None
        try:
            params = Params(parse_pairs(request.query, request.body), request.path)
        except VenueReject as reject:
            params, early = Params((), request.path), reject
        except ValueError:
            params = Params((), request.path)
            early = VenueReject(-1100, "Illegal characters found in a parameter.")

        limits = self.limits_at(now)
        weight = 1 if route is None else _safe_weight(route, params)
        # The IP's weight is charged now; the account's order counts only once the request
        # proved it holds the key's secret (below), so a key alone cannot lock its owner out.
        admission = self.limiter.admit(
            ip=request.client_ip, account=None, weight=weight, orders=0, limits=limits, now=now
        )
        usage = admission.usage
        if admission.refusal is not None:
            return _refused(admission.refusal, usage)
        if route is None:
            logger.warning("venue: no route for {} {}", method, request.path)
            return _json_response(
                404,
                {"code": -5000, "msg": f"Path {request.path}, Method {method} is invalid"},
                usage,
            )

        injection = self._faults.on_request(f"{method} {request.path}", now, api_key)
        fault = injection.answer
        if isinstance(fault, BanRule):
            until = self.limiter.ban(request.client_ip, now)
            return _refused(ban_refusal(until, now), usage, injection)
        if isinstance(fault, ErrorRule) and not fault.processed:
            return _fault_error(fault, usage, injection)
        if isinstance(fault, DropRule) and not fault.processed:
            return Response(0, "", delivery=Delivery.DROP, latency_s=injection.latency_s)

        try:
            if early is not None:
                raise early
            if route.signed:
                caller = self._authenticate(request, params, api_key)
            else:
                caller = self._known_key(api_key) if route.keyed else ""
            orders = _safe_orders(route, params)
            if orders and account is not None:
                charged = self.limiter.admit(
                    ip=request.client_ip,
                    account=account,
                    weight=0,
                    orders=orders,
                    limits=limits,
                    now=now,
                )
                usage = charged.usage
                if charged.refusal is not None:
                    return _refused(charged.refusal, usage, injection)
            result = route.handler(Call(venue, params, caller, now, self))
            params.finish()
        except VenueReject as reject:
            answer = _json_response(reject.http_status, reject.body(), usage)
        else:
            answer = _json_response(200, result, usage)
        return _deliver(answer, fault, usage, injection)

    def _known_key(self, api_key: str | None) -> str:
        if not api_key:
            raise VenueReject(-2014, "API-key format invalid.", http_status=401)
        if self.venue.secret_for(api_key) is None:
            raise VenueReject(
                -2015, "Invalid API-key, IP, or permissions for action.", http_status=401
            )
        return api_key

    def _authenticate(self, request: Request, params: Params, api_key: str | None) -> str:
        caller = self._known_key(api_key)
        secret = self.venue.secret_for(caller)
        assert secret is not None
        check_freshness(
            params.raw("timestamp"),
            params.raw("recvWindow"),
            now_ms=int(self.auth_clock.time() * 1000),
        )
        params.raw("signature")
        check_signature(split_signature(request.query, request.body), secret)
        return caller

    def _fire_due(self, now: float) -> None:
        for rule in self._faults.due_events(now):
            logger.info("venue: fault event {} on {}", rule.kind, rule.symbol)
            try:
                if isinstance(rule, FreezeFeedRule):
                    self.venue.freeze_feed(rule.symbol, None if rule.mode == "off" else rule.mode)
                elif isinstance(rule, SpikeRule):
                    self.venue.spike(rule.symbol, rule.pct, rule.duration_s)
                elif isinstance(rule, CrowdRule):
                    self.venue.add_crowd(rule.crowd)
                elif isinstance(rule, SetFundingIntervalRule):
                    self.venue.set_funding_interval(rule.symbol, rule.hours)
                else:
                    self.venue.set_tiers(rule.symbol, rule.table())
            except (VenueReject, ValueError) as exc:
                logger.warning("venue: fault event {} refused by the engine: {}", rule.kind, exc)
        due = [key for key, deadline in self._countdowns.items() if deadline <= now]
        for api_key, symbol in due:
            del self._countdowns[(api_key, symbol)]
            logger.info("venue: countdown expired, cancelling {} orders of {}", symbol, api_key)
            try:
                self.venue.cancel_all(api_key, symbol=symbol)
            except VenueReject as exc:  # the account or market went away since it was armed
                logger.warning("venue: countdown cancel for {} refused: {}", symbol, exc)

    def arm_countdown(self, api_key: str, symbol: str, countdown_ms: int, now: float) -> None:
        """Cancel ``symbol``'s open orders at ``now + countdown_ms`` unless re-armed (0: off)."""
        with self.venue.lock:
            if countdown_ms == 0:
                self._countdowns.pop((api_key, symbol), None)
            else:
                self._countdowns[(api_key, symbol)] = now + countdown_ms / 1000.0

    # --- admin (unsigned, loopback only) ------------------------------------------------------

    def _admin(self, method: str, request: Request) -> Response:
        if not _is_loopback(request.client_ip):
            logger.warning("venue: admin request from non-loopback {}", request.client_ip)
            return _json_response(
                403, {"code": -1002, "msg": "You are not authorized to execute this request."}
            )
        if request.path == "/admin/liquidations" and method == "GET":
            return self._liquidation_report(request)
        if request.path != "/admin/faults" or method not in ("GET", "POST", "DELETE"):
            logger.warning("venue: no admin route for {} {}", method, request.path)
            return _json_response(
                404, {"code": -5000, "msg": f"Path {request.path}, Method {method} is invalid"}
            )
        if method == "POST":
            try:
                plan = FaultPlan.parse(
                    json.loads(request.body or "{}"), source="POST /admin/faults"
                )
            except (ValueError, ConfigError) as exc:
                return _json_response(400, {"code": -1130, "msg": str(exc)})
            except RecursionError:  # JSON nested deeper than Python's stack: junk, not a 500
                return _json_response(400, {"code": -1130, "msg": "the plan is nested too deep"})
            self.set_fault_plan(plan)
        elif method == "DELETE":
            self.set_fault_plan(None)
        return _json_response(200, self._faults.describe())

    def _liquidation_report(self, request: Request) -> Response:
        """``GET /admin/liquidations[?account=KEY]``: the venue's liquidation fairness report."""
        query = urllib.parse.parse_qs(request.query, keep_blank_values=True)
        unknown = sorted(set(query) - {"account"})
        accounts = query.get("account", [])
        if unknown or len(accounts) > 1:
            problem = f"unknown parameter {unknown[0]!r}" if unknown else "account given twice"
            return _json_response(400, {"code": -1104, "msg": problem})
        try:
            report = self.venue.liquidation_report(accounts[0] if accounts else None)
        except VenueReject as reject:
            return _json_response(400, {"code": reject.code, "msg": reject.msg})
        return _json_response(200, report)


# --- answers ----------------------------------------------------------------------------------


def _json_response(status: int, payload: Any, usage: Usage | None = None) -> Response:
    headers = {"Content-Type": JSON_TYPE}
    if usage is not None:
        headers.update(usage.headers())
    return Response(status, json.dumps(payload, separators=(",", ":")), headers)


def _refused(refusal: Refusal, usage: Usage, injection: Injection | None = None) -> Response:
    answer = _json_response(refusal.status, {"code": refusal.code, "msg": refusal.msg}, usage)
    if refusal.retry_after_s is not None:
        answer.headers["Retry-After"] = str(refusal.retry_after_s)
    if injection is not None and injection.latency_s:
        return _with_latency(answer, injection.latency_s)
    return answer


_HTML_PAGE = (
    "<html><head><title>{0} {1}</title></head><body><center><h1>{0} {1}</h1></center></body></html>"
)


def _fault_error(rule: ErrorRule, usage: Usage, injection: Injection) -> Response:
    headers = dict(usage.headers())
    if rule.retry_after_s is not None:
        headers["Retry-After"] = str(rule.retry_after_s)
    if rule.body == "json":
        code = (
            rule.code if rule.code is not None else (-1003 if rule.status in (418, 429) else -1001)
        )
        msg = rule.msg if rule.msg is not None else _DEFAULT_MESSAGES.get(code, "Fault injected.")
        headers["Content-Type"] = JSON_TYPE
        body = json.dumps({"code": code, "msg": msg}, separators=(",", ":"))
    elif rule.body == "html":
        headers["Content-Type"] = "text/html"
        phrase = Response(rule.status, "").reason
        body = _HTML_PAGE.format(rule.status, phrase)
    else:
        body = ""
    return Response(rule.status, body, headers, latency_s=injection.latency_s)


def _deliver(
    answer: Response, fault: AnswerRule | None, usage: Usage, injection: Injection
) -> Response:
    """Apply a fault that acts after the request was carried out."""
    if isinstance(fault, ErrorRule):
        return _fault_error(fault, usage, injection)
    if isinstance(fault, DropRule):
        return Response(0, "", delivery=Delivery.DROP, latency_s=injection.latency_s)
    if isinstance(fault, TimeoutRule):
        return Response(0, "", delivery=Delivery.HANG, hold_s=fault.hold_s)
    if isinstance(fault, HideOrderRule) and _is_live_order(answer):
        answer = _json_response(400, {"code": -2013, "msg": "Order does not exist."}, usage)
    return _with_latency(answer, injection.latency_s) if injection.latency_s else answer


_LIVE_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


def _is_live_order(answer: Response) -> bool:
    """A look-up that found an order still working on the book."""
    if answer.status != 200:
        return False
    try:
        order = json.loads(answer.body)
    except ValueError:
        return False
    return isinstance(order, dict) and order.get("status") in _LIVE_STATUSES


def _with_latency(answer: Response, latency_s: float) -> Response:
    return Response(answer.status, answer.body, answer.headers, answer.delivery, latency_s)


def _safe_weight(route: Route, params: Params) -> int:
    # Weight depends on parameters ("limit", "symbol"); a malformed one still costs the base
    # weight, and the decoding error is reported when the handler reads it.
    try:
        return route.weight_of(params)
    except VenueReject:
        return 1


def _safe_orders(route: Route, params: Params) -> int:
    try:
        return route.orders_of(params)
    except VenueReject:
        return 1


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# --- routes -----------------------------------------------------------------------------------


def _symbol(call: Call, *, required: bool = True) -> str | None:
    return call.params.symbol(call.venue.markets, required=required)


def _required_symbol(call: Call) -> str:
    symbol = _symbol(call)
    assert symbol is not None  # required=True raised otherwise
    return symbol


def _ping(call: Call) -> Any:
    return {}


def _time(call: Call) -> Any:
    return {"serverTime": call.venue.server_time()}


def _exchange_info(call: Call) -> Any:
    info = dict(call.venue.exchange_info())
    # A throttle fault tightens the limits; the venue publishes what it enforces.
    info["rateLimits"] = call.dialect.limits_at(call.now).as_exchange_info()
    return info


def _ticker_24h(call: Call) -> Any:
    symbol = _symbol(call, required=False)
    if symbol is not None:
        return call.venue.ticker_24h(symbol)
    return [call.venue.ticker_24h(s) for s in call.venue.markets]


def _book_ticker(call: Call) -> Any:
    symbol = _symbol(call, required=False)
    tickers = call.venue.book_ticker(symbol)
    return tickers[0] if symbol is not None and tickers else tickers


_DEPTH_LIMITS = {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}


def _depth_limit(params: Params) -> int:
    limit = params.integer("limit")
    if limit is None:
        return 500
    if limit not in _DEPTH_LIMITS:
        raise invalid("limit")
    return limit


def _depth(call: Call) -> Any:
    symbol = _required_symbol(call)
    return call.venue.depth(symbol, _depth_limit(call.params))


def _agg_trades(call: Call) -> Any:
    params = call.params
    symbol = _required_symbol(call)
    limit = params.integer("limit", low=1, high=1000) or 500
    from_id = params.integer("fromId", low=0)
    start = params.integer("startTime", low=0)
    end = params.integer("endTime", low=0)
    filtered = from_id is not None or start is not None or end is not None
    trades = call.venue.agg_trades(symbol, 1000 if filtered else limit)
    kept = [
        t
        for t in trades
        if (from_id is None or t["a"] >= from_id)
        and (start is None or t["T"] >= start)
        and (end is None or t["T"] <= end)
    ]
    return kept[:limit] if from_id is not None or start is not None else kept[-limit:]


def _kline_limit(params: Params) -> int:
    return params.integer("limit", low=1, high=1500) or 500


def _klines_of(kind: Kind, by: str, *, continuous: bool = False) -> Handler:
    """A kline route: ``by`` names the market parameter (``symbol``, or ``pair`` for the index
    and continuous klines, whose ``pair`` is the perpetual's symbol on a USD-M venue)."""

    def handler(call: Call) -> Any:
        p = call.params
        if by == "symbol":
            symbol = _required_symbol(call)
        else:
            symbol = p.text("pair", required=True) or ""
            if symbol not in call.venue.markets:
                raise VenueReject(-1121, "Invalid symbol.")
        if continuous:
            p.choice("contractType", ("PERPETUAL",), required=True)
        interval = p.text("interval", required=True) or ""
        start = p.integer("startTime", low=0)
        end = p.integer("endTime", low=0)
        return call.venue.klines(
            symbol,
            kind=kind,
            interval=interval,
            start_ms=start,
            end_ms=end,
            limit=_kline_limit(p),
        )

    return handler


def _kline_weight(params: Params) -> int:
    return candles.weight(_kline_limit(params))


def _trades(call: Call) -> Any:
    symbol = _required_symbol(call)
    return call.venue.trades(symbol, call.params.integer("limit", low=1, high=1000) or 500)


def _historical_trades(call: Call) -> Any:
    symbol = _required_symbol(call)
    limit = call.params.integer("limit", low=1, high=500) or 100
    from_id = call.params.integer("fromId", low=0)
    return call.venue.trades(symbol, limit, from_id)


def _ticker_price(call: Call) -> Any:
    symbol = _symbol(call, required=False)
    prices = call.venue.ticker_price(symbol)
    return prices[0] if symbol is not None else prices


def _open_interest(call: Call) -> Any:
    return call.venue.open_interest(_required_symbol(call))


def _funding_rate_history(call: Call) -> Any:
    p = call.params
    return call.venue.funding_history(
        _symbol(call, required=False),
        start_ms=p.integer("startTime", low=0),
        end_ms=p.integer("endTime", low=0),
        limit=p.integer("limit", low=1, high=1000) or 100,
    )


def _funding_info(call: Call) -> Any:
    return call.venue.funding_info()


def _premium_index(call: Call) -> Any:
    return call.venue.premium_index(_symbol(call, required=False))


def _account(call: Call) -> Any:
    return call.venue.account_v3(call.api_key)


def _position_risk(call: Call) -> Any:
    return call.venue.position_risk(call.api_key, _symbol(call, required=False))


def _symbol_config(call: Call) -> Any:
    return call.venue.symbol_config(call.api_key, _symbol(call, required=False))


def _leverage_bracket(call: Call) -> Any:
    symbol = _symbol(call, required=False)
    brackets = call.venue.leverage_brackets(call.api_key, symbol)
    return brackets[0] if symbol is not None else brackets  # one symbol: one object


def _set_leverage(call: Call) -> Any:
    symbol = _required_symbol(call)
    leverage = call.params.integer("leverage", required=True)
    assert leverage is not None
    call.params.finish()
    return call.venue.set_leverage(call.api_key, symbol=symbol, leverage=leverage)


def _set_margin_type(call: Call) -> Any:
    symbol = _required_symbol(call)
    margin_type = call.params.choice("marginType", ("ISOLATED", "CROSSED"), required=True)
    call.params.finish()
    call.venue.set_margin_type(call.api_key, symbol=symbol, margin_type=margin_type)
    return {"code": 200, "msg": "success"}


# Since 2025-12-09 Binance takes conditional orders only on the algo-order endpoints.
_ALGO_ONLY_TYPES = frozenset(
    ("STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
)
_SWITCH_TO_ALGO = VenueReject(
    -4120,
    "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead.",
)
_RESPONSE_TYPES = ("ACK", "RESULT")


def _new_order(call: Call) -> Any:
    if call.params.raw("type") in _ALGO_ONLY_TYPES:
        raise _SWITCH_TO_ALGO
    respond = call.params.choice("newOrderRespType", _RESPONSE_TYPES) or "ACK"
    return _answer(_place(call, stop_param="stopPrice", client_param="newClientOrderId"), respond)


def _answer(order: dict[str, Any], respond: str) -> dict[str, Any]:
    """RESULT: the order as it stands after matching; ACK (Binance's default): as accepted,
    before any fill."""
    if respond == "RESULT":
        return order
    return {
        **order,
        "status": "NEW",
        "executedQty": "0",
        "cumQty": "0",
        "cumQuote": "0",
        "avgPrice": "0.00",
        "updateTime": order["time"],
    }


def _test_order(call: Call) -> Any:
    if call.params.raw("type") in _ALGO_ONLY_TYPES:
        raise _SWITCH_TO_ALGO
    call.params.choice("newOrderRespType", _RESPONSE_TYPES)
    fields = _order_fields(call, stop_param="stopPrice", client_param="newClientOrderId")
    call.venue.check_order(call.api_key, **fields)
    return {}


def _place(call: Call, *, stop_param: str, client_param: str) -> dict[str, Any]:
    fields = _order_fields(call, stop_param=stop_param, client_param=client_param)
    return call.venue.place_order(call.api_key, **fields)


def _order_fields(call: Call, *, stop_param: str, client_param: str) -> dict[str, Any]:
    # Only the wire format is decoded here (decimals, booleans, presence, unread parameters).
    # Which sides, types and combinations are allowed is the engine's rule (parse_order), so
    # enumerations pass through as sent and the engine answers with the venue's code.
    p = call.params
    symbol = _required_symbol(call)
    fields: dict[str, Any] = {
        "symbol": symbol,
        "side": p.text("side", required=True),
        "type": p.text("type", required=True),
        "quantity": p.decimal("quantity"),
        "price": p.decimal("price"),
        "stop_price": p.decimal(stop_param),
        "reduce_only": bool(p.boolean("reduceOnly")),
        "close_position": bool(p.boolean("closePosition")),
        "time_in_force": p.text("timeInForce"),
        "working_type": p.text("workingType") or "CONTRACT_PRICE",
        "position_side": p.text("positionSide") or "BOTH",
        "client_order_id": p.text(client_param),
    }
    p.finish()  # nothing unread may reach the engine
    return fields


def _modify_order(call: Call) -> Any:
    p = call.params
    symbol = _required_symbol(call)
    order_id = p.integer("orderId", low=0)
    client_id = p.text("origClientOrderId")
    if order_id is None and client_id is None:
        raise VenueReject(
            -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
        )
    side = p.text("side", required=True)
    quantity = p.decimal("quantity", required=True)
    price = p.decimal("price", required=True)
    p.finish()
    return call.venue.modify_order(
        call.api_key,
        symbol=symbol,
        order_id=order_id,
        client_order_id=client_id,
        side=side,
        quantity=quantity,
        price=price,
    )


_BATCH_MAX = 5


def _batch_items(params: Params) -> list[dict[str, Any]]:
    raw = params.text("batchOrders", required=True) or ""
    try:
        items = json.loads(raw)
    except (ValueError, RecursionError):  # nested deeper than Python's stack: junk too
        items = None
    if (
        not isinstance(items, list)
        or not 1 <= len(items) <= _BATCH_MAX
        or not all(isinstance(i, dict) for i in items)
    ):
        raise VenueReject(-1130, "Data sent for parameter 'batchOrders' is not valid.")
    return items


def _batch_orders_count(params: Params) -> int:
    try:
        return len(_batch_items(params))
    except VenueReject:
        return 1


def _batch_orders(call: Call) -> Any:
    """Up to five LIMIT or MARKET orders, each placed on its own: the answer lists, in request
    order, each order (in the RESULT shape) or its own ``{code, msg}``."""
    items = _batch_items(call.params)
    answers: list[dict[str, Any]] = []
    for item in items:
        pairs = [(str(k), _wire(v)) for k, v in item.items()]
        try:
            sub = Call(
                call.venue, Params(pairs, call.params.path), call.api_key, call.now, call.dialect
            )
            if sub.params.raw("type") in _ALGO_ONLY_TYPES:
                raise _SWITCH_TO_ALGO
            respond = sub.params.choice("newOrderRespType", _RESPONSE_TYPES) or "RESULT"
            order = _place(sub, stop_param="stopPrice", client_param="newClientOrderId")
            answers.append(_answer(order, respond))
        except VenueReject as reject:
            answers.append({"code": reject.code, "msg": reject.msg})
    return answers


def _wire(value: Any) -> str:
    """A JSON value as the string it would have been on the wire."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _open_order(call: Call) -> Any:
    symbol, order_id, client_id = _order_ref(call)
    order = call.venue.open_order(
        call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
    )
    if order["type"] in _CONDITIONAL_TYPES:  # waiting in the algo service: GET algoOrder
        raise VenueReject(-2013, "Order does not exist.")
    return order


def _order_ref(
    call: Call, id_param: str = "orderId", client_param: str = "origClientOrderId"
) -> tuple[str, int | None, str | None]:
    symbol = _required_symbol(call)
    order_id = call.params.integer(id_param, low=0)
    client_id = call.params.text(client_param)
    if order_id is None and client_id is None:
        raise VenueReject(
            -1102, f"Param '{client_param}' or '{id_param}' must be sent, but both were empty/null!"
        )
    call.params.finish()
    return symbol, order_id, client_id


def _get_order(call: Call) -> Any:
    symbol, order_id, client_id = _order_ref(call)
    order = call.venue.get_order(
        call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
    )
    if _in_algo_service(order):  # only GET algoOrder knows it
        raise VenueReject(-2013, "Order does not exist.")
    return order


def _cancel_order(call: Call) -> Any:
    symbol, order_id, client_id = _order_ref(call)
    _refuse_algo_cancel(call, symbol, order_id, client_id)
    return call.venue.cancel_order(
        call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
    )


def _refuse_algo_cancel(
    call: Call, symbol: str, order_id: int | None, client_id: str | None
) -> None:
    """-2011 for a conditional order named on the plain order routes.

    Since 2025-12-09 an untriggered stop lives in Binance's algo service under its ``algoId``:
    ``DELETE /fapi/v1/order`` (and ``batchOrders``) does not know it, and only
    ``DELETE /fapi/v1/algoOrder`` cancels it. Answering for it here would let a bot that
    cancels its stops the old way pass on paper and leave them working live. A stop-limit
    that has triggered rests as an ordinary LIMIT order, and is cancelled here as one."""
    try:
        found = call.venue.get_order(
            call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
        )
    except VenueReject:
        return  # the engine's own answer (-2011 for an unknown order) follows
    if _in_algo_service(found):
        raise VenueReject(-2011, "Unknown order sent.")


# Conditional orders: ccxt 4.5 sends stop and take-profit orders to Binance's algo-order API
# (``/fapi/v1/algoOrder``: ``triggerPrice``, ``clientAlgoId``, answers keyed ``algoId``). They
# are the engine's stop orders seen through that API's field names; ids are shared.
_CONDITIONAL_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
_ALGO_STATUS = {"FILLED": "FINISHED", "PARTIALLY_FILLED": "TRIGGERED"}


def _in_algo_service(order: Mapping[str, Any]) -> bool:
    """A conditional order that never reached matching: untriggered (waiting, cancelled or
    expired) or triggered with nothing filled. Only the algo routes know it; the plain order
    routes (``order``, ``batchOrders``, ``allOrders``) see a stop once its trigger has traded
    (on Binance, the regular order the trigger created), and a triggered stop-limit, which
    rests as a LIMIT order."""
    return order["type"] in _CONDITIONAL_TYPES and order["executedQty"] == "0"


def _algo_status(order: Mapping[str, Any]) -> str:
    if order["type"] != order["origType"]:  # a stop-limit that triggered into its limit order
        return "TRIGGERED" if order["status"] in ("NEW", "PARTIALLY_FILLED") else "FINISHED"
    return str(_ALGO_STATUS.get(order["status"], order["status"]))


def _as_algo(order: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "algoId": order["orderId"],
        "clientAlgoId": order["clientOrderId"],
        "algoType": "CONDITIONAL",
        "orderType": order["origType"],
        "symbol": order["symbol"],
        "side": order["side"],
        "positionSide": order["positionSide"],
        "timeInForce": order["timeInForce"],
        "quantity": order["origQty"],
        "algoStatus": _algo_status(order),
        "triggerPrice": order["stopPrice"],
        "price": order["price"],
        "workingType": order["workingType"],
        "priceMatch": "NONE",
        "closePosition": order["closePosition"],
        "priceProtect": False,
        "reduceOnly": order["reduceOnly"],
        "createTime": order.get("time", order["updateTime"]),
        "updateTime": order["updateTime"],
        "triggerTime": 0,
        "goodTillDate": 0,
    }


def _new_algo_order(call: Call) -> Any:
    call.params.choice("algoType", ("CONDITIONAL",), required=True)
    kind = call.params.raw("type")
    if kind not in _CONDITIONAL_TYPES:
        raise VenueReject(-1116, "Invalid orderType.")
    call.params.choice(
        "newOrderRespType", _RESPONSE_TYPES
    )  # ccxt sends it; algo answers are one shape
    return _as_algo(_place(call, stop_param="triggerPrice", client_param="clientAlgoId"))


def _get_algo_order(call: Call) -> Any:
    symbol, order_id, client_id = _order_ref(call, "algoId", "clientAlgoId")
    order = call.venue.get_order(
        call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
    )
    if order["origType"] not in _CONDITIONAL_TYPES:
        raise VenueReject(-2013, "Order does not exist.")
    return _as_algo(order)


def _cancel_algo_order(call: Call) -> Any:
    symbol, order_id, client_id = _order_ref(call, "algoId", "clientAlgoId")
    try:
        found = call.venue.get_order(
            call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
        )
    except VenueReject:
        raise VenueReject(-2011, "Unknown order sent.") from None
    if found["type"] not in _CONDITIONAL_TYPES:
        raise VenueReject(-2011, "Unknown order sent.")
    order = call.venue.cancel_order(
        call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
    )
    return {
        "algoId": order["orderId"],
        "clientAlgoId": order["clientOrderId"],
        "code": "200",
        "msg": "success",
    }


def _cancel_algo_open_orders(call: Call) -> Any:
    return _cancel_open(call, conditional=True)


def _open_algo_orders(call: Call) -> Any:
    orders = call.venue.open_orders(call.api_key, symbol=_symbol(call, required=False))
    return [_as_algo(o) for o in orders if o["type"] in _CONDITIONAL_TYPES]


def _open_orders(call: Call) -> Any:
    # An untriggered conditional order waits in the algo service (openAlgoOrders) since
    # 2025-12-09; once triggered it is an ordinary order (a stop-limit rests as a LIMIT).
    orders = call.venue.open_orders(call.api_key, symbol=_symbol(call, required=False))
    return [o for o in orders if o["type"] not in _CONDITIONAL_TYPES]


def _open_orders_weight(params: Params) -> int:
    return 1 if "symbol" in params else 40


def _cancel_batch(call: Call) -> Any:
    """``DELETE /fapi/v1/batchOrders``: up to 10 orders of one symbol, named by a JSON array of
    order ids or of client order ids (ccxt sends the lower-case names). Each is answered on its
    own: the cancelled order, or ``{code, msg}`` for one that could not be cancelled."""
    symbol = _required_symbol(call)
    ids = _id_list(call, "orderIdList", int)
    client_ids = _id_list(call, "origClientOrderIdList", str)
    call.params.finish()
    if (ids is None) == (client_ids is None):
        raise VenueReject(
            -1102, "Param 'origClientOrderIdList' or 'orderIdList' must be sent, but not both."
        )
    answers: list[Any] = []
    for order_id, client_id in [(i, None) for i in ids or ()] + [
        (None, c) for c in client_ids or ()
    ]:
        try:
            _refuse_algo_cancel(call, symbol, order_id, client_id)
            answers.append(
                call.venue.cancel_order(
                    call.api_key, symbol=symbol, order_id=order_id, client_order_id=client_id
                )
            )
        except VenueReject as reject:
            answers.append(reject.body())
    return answers


def _id_list(call: Call, name: str, kind: type[int] | type[str]) -> list[Any] | None:
    """A JSON array of 1 to 10 ids, under ``name`` or its lower-case spelling."""
    sent = [call.params.raw(spelling) for spelling in (name, name.lower())]
    value = next((v for v in sent if v is not None), None)
    if value is None:
        return None
    try:
        names = json.loads(value)
    except (ValueError, RecursionError):  # nested deeper than Python's stack: junk too
        raise invalid(name) from None
    if (
        not isinstance(names, list)
        or not 1 <= len(names) <= 10
        or not all(type(n) is kind and n != "" for n in names)
    ):
        raise invalid(name)
    return names


def _cancel_all(call: Call) -> Any:
    """``DELETE allOpenOrders``: the symbol's ordinary orders. Conditional orders waiting in
    the algo service stay (``DELETE algoOpenOrders`` cancels those), as on Binance."""
    return _cancel_open(call, conditional=False)


def _cancel_open(call: Call, *, conditional: bool) -> Any:
    symbol = _required_symbol(call)
    call.params.finish()
    with call.venue.lock:  # one sweep: no order of the kind placed meanwhile survives it
        for order in call.venue.open_orders(call.api_key, symbol=symbol):
            if (order["type"] in _CONDITIONAL_TYPES) is conditional:
                call.venue.cancel_order(call.api_key, symbol=symbol, order_id=order["orderId"])
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def _all_orders(call: Call) -> Any:
    symbol = _required_symbol(call)
    limit = call.params.integer("limit", low=1, high=1000) or 500
    orders = call.venue.all_orders(call.api_key, symbol=symbol)
    return [o for o in orders if not _in_algo_service(o)][-limit:]


def _all_algo_orders(call: Call) -> Any:
    """``GET /fapi/v1/allAlgoOrders``: the account's conditional orders on a symbol, in any
    state, as the algo service shows them (ccxt's ``fetch_orders(..., {"trigger": True})``)."""
    symbol = _required_symbol(call)
    limit = call.params.integer("limit", low=1, high=1000) or 500
    orders = call.venue.all_orders(call.api_key, symbol=symbol)
    return [_as_algo(o) for o in orders if o["origType"] in _CONDITIONAL_TYPES][-limit:]


def _user_trades(call: Call) -> Any:
    symbol = _required_symbol(call)
    limit = call.params.integer("limit", low=1, high=1000) or 500
    return call.venue.user_trades(call.api_key, symbol=symbol, limit=limit)


_INCOME_TYPES = (
    "TRANSFER",
    "WELCOME_BONUS",
    "REALIZED_PNL",
    "FUNDING_FEE",
    "COMMISSION",
    "INSURANCE_CLEAR",
    "REFERRAL_KICKBACK",
    "COMMISSION_REBATE",
    "API_REBATE",
    "CONTEST_REWARD",
    "CROSS_COLLATERAL_TRANSFER",
    "OPTIONS_PREMIUM_FEE",
    "OPTIONS_SETTLE_PROFIT",
    "INTERNAL_TRANSFER",
    "AUTO_EXCHANGE",
    "DELIVERED_SETTELMENT",
    "COIN_SWAP_DEPOSIT",
    "COIN_SWAP_WITHDRAW",
    "POSITION_LIMIT_INCREASE_FEE",
    "STRATEGY_UMFUTURES_TRANSFER",
    "FEE_RETURN",
    "BFUSD_REWARD",
)


def _income(call: Call) -> Any:
    p = call.params
    symbol = _symbol(call, required=False)
    income_type = p.choice("incomeType", _INCOME_TYPES)
    start = p.integer("startTime", low=0)
    end = p.integer("endTime", low=0)
    p.integer("page", low=1)
    return call.venue.income(
        call.api_key,
        symbol=symbol,
        income_type=income_type,
        start_ms=start,
        end_ms=end,
        limit=p.integer("limit", low=1, high=1000) or 100,
    )


def _commission_rate(call: Call) -> Any:
    return call.venue.commission_rate(call.api_key, _required_symbol(call))


def _balance_v2(call: Call) -> Any:
    return call.venue.balance_v2(call.api_key)


def _account_v2(call: Call) -> Any:
    return call.venue.account_v2(call.api_key)


def _position_risk_v2(call: Call) -> Any:
    return call.venue.position_risk_v2(call.api_key, _symbol(call, required=False))


def _account_config(call: Call) -> Any:
    return call.venue.account_config(call.api_key)


def _multi_assets_margin(call: Call) -> Any:
    # USDT is the venue's only margin asset: multi-asset mode is always off.
    return {"multiAssetsMargin": False}


def _api_trading_status(call: Call) -> Any:
    # The venue never restricts an account's trading by its order quality indicators.
    return {"indicators": {}, "updateTime": call.venue.server_time()}


def _adl_quantile(call: Call) -> Any:
    return call.venue.adl_quantile(call.api_key, _symbol(call, required=False))


def _force_orders(call: Call) -> Any:
    p = call.params
    symbol = _symbol(call, required=False)
    kind = p.choice("autoCloseType", ("LIQUIDATION", "ADL"))
    return call.venue.force_orders(
        call.api_key,
        symbol=symbol,
        auto_close_type=kind,
        start_ms=p.integer("startTime", low=0),
        end_ms=p.integer("endTime", low=0),
        limit=p.integer("limit", low=1, high=100) or 50,
    )


def _order_rate_limits(call: Call) -> Any:
    limits = call.dialect.limits_at(call.now).as_exchange_info()
    return [row for row in limits if row["rateLimitType"] == "ORDERS"]


def _position_margin(call: Call) -> Any:
    p = call.params
    symbol = _required_symbol(call)
    side = p.text("positionSide") or "BOTH"
    amount = p.decimal("amount", required=True)
    kind = p.choice("type", ("1", "2"), required=True)
    assert amount is not None
    p.finish()
    return call.venue.modify_isolated_margin(
        call.api_key, symbol=symbol, position_side=side, amount=amount, add=kind == "1"
    )


def _set_position_mode(call: Call) -> Any:
    dual = call.params.boolean("dualSidePosition")
    if dual is None:
        raise VenueReject(
            -1102,
            "Mandatory parameter 'dualSidePosition' was not sent, was empty/null, or malformed.",
        )
    call.params.finish()
    call.venue.set_position_mode(call.api_key, dual_side=dual)
    return {"code": 200, "msg": "success"}


def _position_mode(call: Call) -> Any:
    return call.venue.position_mode(call.api_key)


def _listen_key_param(call: Call) -> str | None:
    key = call.params.text("listenKey")
    call.params.finish()
    return key


def _new_listen_key(call: Call) -> Any:
    call.params.finish()
    return {"listenKey": call.dialect.listen_keys.create(call.api_key, call.now)}


def _keep_listen_key(call: Call) -> Any:
    key = _listen_key_param(call)
    return {"listenKey": call.dialect.listen_keys.extend(call.api_key, key, call.now)}


def _close_listen_key(call: Call) -> Any:
    call.dialect.listen_keys.delete(call.api_key, _listen_key_param(call), call.now)
    return {}


def _countdown(call: Call) -> Any:
    symbol = _required_symbol(call)
    countdown = call.params.integer("countdownTime", required=True, low=0)
    assert countdown is not None
    call.params.finish()
    call.dialect.arm_countdown(call.api_key, symbol, countdown, call.now)
    return {"symbol": symbol, "countdownTime": str(countdown)}


ROUTES: Mapping[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(_ping),
    ("GET", "/fapi/v1/time"): Route(_time),
    ("GET", "/fapi/v1/exchangeInfo"): Route(_exchange_info),
    ("GET", "/fapi/v1/ticker/24hr"): Route(_ticker_24h, lambda p: 1 if "symbol" in p else 40),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(_book_ticker, lambda p: 2 if "symbol" in p else 5),
    ("GET", "/fapi/v1/depth"): Route(_depth, lambda p: _DEPTH_LIMITS[_depth_limit(p)]),
    ("GET", "/fapi/v1/aggTrades"): Route(_agg_trades, 20),
    ("GET", "/fapi/v1/klines"): Route(_klines_of("contract", "symbol"), _kline_weight),
    ("GET", "/fapi/v1/continuousKlines"): Route(
        _klines_of("contract", "pair", continuous=True), _kline_weight
    ),
    ("GET", "/fapi/v1/markPriceKlines"): Route(_klines_of("mark", "symbol"), _kline_weight),
    ("GET", "/fapi/v1/indexPriceKlines"): Route(_klines_of("index", "pair"), _kline_weight),
    ("GET", "/fapi/v1/premiumIndexKlines"): Route(_klines_of("premium", "symbol"), _kline_weight),
    ("GET", "/fapi/v1/trades"): Route(_trades, 5),
    ("GET", "/fapi/v1/historicalTrades"): Route(_historical_trades, 20),
    ("GET", "/fapi/v1/ticker/price"): Route(_ticker_price, lambda p: 1 if "symbol" in p else 2),
    ("GET", "/fapi/v2/ticker/price"): Route(_ticker_price, lambda p: 1 if "symbol" in p else 2),
    ("GET", "/fapi/v1/openInterest"): Route(_open_interest, 1),
    ("GET", "/fapi/v1/fundingRate"): Route(_funding_rate_history, 1),
    ("GET", "/fapi/v1/fundingInfo"): Route(_funding_info, 1),
    ("GET", "/fapi/v1/premiumIndex"): Route(_premium_index, lambda p: 1 if "symbol" in p else 10),
    ("GET", "/fapi/v3/account"): Route(_account, 5, signed=True),
    ("GET", "/fapi/v3/positionRisk"): Route(_position_risk, 5, signed=True),
    ("GET", "/fapi/v1/leverageBracket"): Route(_leverage_bracket, 1, signed=True),
    ("GET", "/fapi/v1/symbolConfig"): Route(_symbol_config, 5, signed=True),
    ("POST", "/fapi/v1/leverage"): Route(_set_leverage, 1, signed=True),
    ("POST", "/fapi/v1/marginType"): Route(_set_margin_type, 1, signed=True),
    ("POST", "/fapi/v1/order"): Route(_new_order, 0, signed=True, orders=1),
    ("GET", "/fapi/v1/order"): Route(_get_order, 1, signed=True),
    ("PUT", "/fapi/v1/order"): Route(_modify_order, 0, signed=True, orders=1),
    ("POST", "/fapi/v1/order/test"): Route(_test_order, 0, signed=True),
    ("POST", "/fapi/v1/batchOrders"): Route(
        _batch_orders, 5, signed=True, orders=_batch_orders_count
    ),
    ("GET", "/fapi/v1/openOrder"): Route(_open_order, 1, signed=True),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Route(_cancel_algo_open_orders, 1, signed=True),
    ("DELETE", "/fapi/v1/order"): Route(_cancel_order, 1, signed=True),
    ("GET", "/fapi/v1/openOrders"): Route(_open_orders, _open_orders_weight, signed=True),
    ("POST", "/fapi/v1/algoOrder"): Route(_new_algo_order, 0, signed=True, orders=1),
    ("GET", "/fapi/v1/algoOrder"): Route(_get_algo_order, 1, signed=True),
    ("DELETE", "/fapi/v1/algoOrder"): Route(_cancel_algo_order, 1, signed=True),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(_open_algo_orders, _open_orders_weight, signed=True),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(_cancel_all, 1, signed=True),
    ("DELETE", "/fapi/v1/batchOrders"): Route(_cancel_batch, 1, signed=True),
    ("GET", "/fapi/v1/allOrders"): Route(_all_orders, 5, signed=True),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(_all_algo_orders, 5, signed=True),
    ("GET", "/fapi/v1/userTrades"): Route(_user_trades, 5, signed=True),
    ("POST", "/fapi/v1/countdownCancelAll"): Route(_countdown, 10, signed=True),
    ("GET", "/fapi/v1/income"): Route(_income, 30, signed=True),
    ("GET", "/fapi/v1/commissionRate"): Route(_commission_rate, 20, signed=True),
    ("GET", "/fapi/v2/balance"): Route(_balance_v2, 5, signed=True),
    ("GET", "/fapi/v3/balance"): Route(_balance_v2, 5, signed=True),  # v3: v2's shape
    ("GET", "/fapi/v2/account"): Route(_account_v2, 5, signed=True),
    ("GET", "/fapi/v2/positionRisk"): Route(_position_risk_v2, 5, signed=True),
    ("GET", "/fapi/v1/accountConfig"): Route(_account_config, 5, signed=True),
    ("GET", "/fapi/v1/multiAssetsMargin"): Route(_multi_assets_margin, 30, signed=True),
    ("GET", "/fapi/v1/apiTradingStatus"): Route(_api_trading_status, 1, signed=True),
    ("GET", "/fapi/v1/adlQuantile"): Route(_adl_quantile, 5, signed=True),
    ("GET", "/fapi/v1/forceOrders"): Route(
        _force_orders, lambda p: 20 if "symbol" in p else 50, signed=True
    ),
    ("GET", "/fapi/v1/rateLimit/order"): Route(_order_rate_limits, 1, signed=True),
    ("POST", "/fapi/v1/positionMargin"): Route(_position_margin, 1, signed=True),
    ("POST", "/fapi/v1/positionSide/dual"): Route(_set_position_mode, 1, signed=True),
    ("GET", "/fapi/v1/positionSide/dual"): Route(_position_mode, 30, signed=True),
    ("POST", "/fapi/v1/listenKey"): Route(_new_listen_key, 1, keyed=True),
    ("PUT", "/fapi/v1/listenKey"): Route(_keep_listen_key, 1, keyed=True),
    ("DELETE", "/fapi/v1/listenKey"): Route(_close_listen_key, 1, keyed=True),
}
"""Every endpoint the venue implements, keyed by (method, path)."""


__all__ = ["JSON_TYPE", "ROUTES", "Call", "Delivery", "Dialect", "Request", "Response", "Route"]
