"""What a paper run records: the venue's account of the run, the guard's events, each order.

:class:`Recorder` reads the venue engine directly (fills, stops fired, liquidations, bans,
equity): the ground truth, not what a client believed. It also turns the guard's hook events
into journal records. :class:`OrderLog` stands between the strategy and its exchange and
journals each ``create_order`` call once, with how many orders the venue created for it, which
is how a duplicate shows.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import ccxt

from safeguard._clock import Clock
from safeguard._errors import OrderDenied, SafeguardError
from safeguard.guard._events import (
    Event,
    KillEvent,
    RequestEvent,
    RetryEvent,
    StateChangeEvent,
    ThrottleEvent,
    VerdictEvent,
    WarningEvent,
)
from safeguard.paper._journal import RunJournal
from safeguard.venue import (
    AutoDeleveraged,
    Fill,
    FundingPayment,
    Liquidation,
    OrderTriggered,
    Venue,
)
from safeguard.venue._dialect import Dialect
from safeguard.venue._markets import DEFAULT_MARKETS


def venue_symbol(symbol: str) -> str:
    """``BTC/USDT:USDT`` (or ``BTCUSDT``) to the venue's ``BTCUSDT``; unknown markets refused."""
    if not isinstance(symbol, str) or not symbol:
        raise ValueError(f"symbols: expected a market name, got {symbol!r}")
    name = symbol.split(":", maxsplit=1)[0].replace("/", "").upper()
    if name not in DEFAULT_MARKETS:
        known = ", ".join(unified_symbol(s) for s in DEFAULT_MARKETS)
        raise ValueError(f"symbols: {symbol!r} is not a market of the paper venue ({known})")
    return name


def unified_symbol(venue_name: str) -> str:
    spec = DEFAULT_MARKETS[venue_name]
    return f"{spec.base}/{spec.quote}:{spec.quote}"


class Recorder:
    """Writes the guard's events and the venue's account events into the journal."""

    def __init__(
        self, journal: RunJournal, venue: Venue, dialect: Dialect, *, api_key: str, client_ip: str
    ) -> None:
        self.journal = journal
        self.venue = venue
        self.dialect = dialect
        self.api_key = api_key
        self.client_ip = client_ip
        self.health = "NORMAL"
        self._seen = 0
        self._bans: set[float] = set()
        self._last_kill: tuple[str, str | None, str] | None = None

    def ban_check(self) -> None:
        """A venue ban on the runner's IP, journaled once per ban (the venue's own state)."""
        now = self.venue.clock.time()
        until = self.dialect.limiter.banned_until(self.client_ip, now)
        if until is not None and until not in self._bans:
            self._bans.add(until)
            self.journal.write(now, "ban", until=until, seconds=until - now)

    def on_event(self, event: Event) -> None:
        j = self.journal
        if isinstance(event, RequestEvent):
            j.write(event.at, "request", method=event.method, attempt=event.attempt,
                    outcome=event.outcome, error_type=event.error_type)  # fmt: skip
        elif isinstance(event, RetryEvent):
            j.write(event.at, "retry", method=event.method, attempt=event.attempt,
                    delay_s=event.delay_s, reason=event.reason, error_type=event.error_type,
                    resolve_first=event.resolve_first)  # fmt: skip
        elif isinstance(event, ThrottleEvent):
            j.write(event.at, "throttle", action=event.action, seconds=event.seconds,
                    limit=event.limit)  # fmt: skip
        elif isinstance(event, StateChangeEvent) and event.metric.startswith("rules:"):
            # Rule drift rides on the state-change event; it is not a health state.
            j.write(event.at, "rules_changed", symbol=event.endpoint, metric=event.metric)
        elif isinstance(event, StateChangeEvent):
            self.health = event.current
            j.write(event.at, "state", previous=event.previous, current=event.current,
                    metric=event.metric, value=event.value, threshold=event.threshold)  # fmt: skip
        elif isinstance(event, VerdictEvent):
            j.write(event.at, "verdict", allowed=event.allowed, code=event.code,
                    symbol=event.symbol, client_order_id=event.client_order_id,
                    detail=event.detail)  # fmt: skip
        elif isinstance(event, KillEvent):
            self.kill(event.at, event.state, event.code, event.reason)
        elif isinstance(event, WarningEvent):
            j.write(event.at, "warning", name=event.name, severity=event.severity,
                    symbol=event.symbol, message=event.message, value=event.value,
                    threshold=event.threshold, escalate=event.escalate)  # fmt: skip

    def kill(self, now: float, state: str, code: str | None, reason: str) -> None:
        """One ``kill`` record per engage, whether the guard reported it or the runner did."""
        key = (state, code, reason)
        if key != self._last_kill:
            self._last_kill = key
            self.journal.write(now, "kill", state=state, code=code, reason=reason)

    def venue_events(self) -> None:
        """The venue's fills, stops and liquidations of this account since the last call."""
        events = self.venue.events
        fresh, self._seen = events[self._seen :], len(events)
        for e in fresh:
            if getattr(e, "api_key", None) != self.api_key:
                continue
            symbol = unified_symbol(e.symbol)
            if isinstance(e, Fill):
                self.journal.write(e.time, "fill", symbol=symbol, side=e.side.lower(),
                                   price=e.price, qty=e.qty, order_id=e.order_id,
                                   realized_pnl=e.realized_pnl, fee=e.fee)  # fmt: skip
            elif isinstance(e, Liquidation):
                # The fairness figures ride along: how it closed, what it cost, who bore it.
                self.journal.write(e.time, "liquidation", symbol=symbol,
                                   side="long" if e.qty > 0 else "short", qty=abs(e.qty),
                                   price=e.mark_price, equity_before=e.equity_before,
                                   loss=-e.wallet_delta_units / 1e8, step=e.kind,
                                   close_price=e.close_avg_price,
                                   bankruptcy_price=e.bankruptcy_price, fee=e.fee,
                                   slippage=e.slippage_units / 1e8,
                                   insurance_change=e.insurance_delta_units / 1e8,
                                   left=abs(e.position_after),
                                   partial_would_suffice=e.partial_would_suffice,
                                   smallest_healthy_close=e.smallest_healthy_close)  # fmt: skip
            elif isinstance(e, FundingPayment):
                self.journal.write(e.time, "funding", symbol=symbol, rate=e.rate,
                                   amount=e.amount_units / 1e8, qty=e.position_qty,
                                   mark=e.mark_price)  # fmt: skip
            elif isinstance(e, AutoDeleveraged):
                self.journal.write(e.time, "deleveraged", symbol=symbol,
                                   side="long" if e.qty > 0 else "short", qty=abs(e.qty),
                                   price=e.price, mark=e.mark_price,
                                   realized_pnl=e.realized_pnl_units / 1e8,
                                   left=abs(e.position_after))  # fmt: skip
            elif isinstance(e, OrderTriggered):
                self.journal.write(e.time, "stop_triggered", symbol=symbol,
                                   order_id=e.order_id, trigger=e.trigger_price)  # fmt: skip

    def cascades(self) -> None:
        """The run's venue-side liquidation cascades (every account's, named by none), one
        ``cascade`` record each, stamped at its end."""
        for c in self.venue.cascades():
            self.journal.write(c["end"] / 1000, "cascade", symbol=unified_symbol(c["symbol"]),
                               start=c["start"] / 1000, orders=c["orders"],
                               accounts=c["accounts"], waves=[w["orders"] for w in c["waves"]],
                               mark_at_start=c["markAtStart"], lowest_mark=c["lowestMark"],
                               highest_mark=c["highestMark"], closed_qty=c["closedQty"],
                               insurance_change=float(c["insuranceFundChange"]))  # fmt: skip

    def bar(
        self,
        index: int,
        now: float,
        watch: Callable[[float], Mapping[str, Any]] | None = None,
    ) -> float:
        """Journal one ``bar``; ``watch`` sees its equity first and returns more fields for it
        (the guarded run's kill-switch peak and trading state)."""
        venue = self.venue
        equity = venue.equity(self.api_key)
        positions: dict[str, dict[str, float | None]] = {}
        for row in venue.position_risk(self.api_key):
            amount = float(row["positionAmt"])
            if amount:
                positions[unified_symbol(row["symbol"])] = {
                    "amount": amount,
                    "entry": float(row["entryPrice"]),
                    "liquidation": float(row["liquidationPrice"]) or None,
                    "stop": None,
                }
        for order in venue.open_orders(self.api_key):
            stop = float(order.get("stopPrice") or 0.0)
            held = positions.get(unified_symbol(order["symbol"]))
            if stop and held is not None:
                held["stop"] = stop
        marks = {unified_symbol(s): venue.mark_price(s) for s in venue.markets}
        watched = dict(watch(equity)) if watch is not None else {}
        self.journal.write(now, "bar", i=index, equity=equity, wallet=venue.wallet(self.api_key),
                           marks=marks, positions=positions, health=self.health,
                           **watched)  # fmt: skip
        return equity


class OrderLog:
    """The strategy's exchange, with each ``create_order`` call journaled as one ``order``."""

    def __init__(
        self, exchange: Any, journal: RunJournal, venue: Venue, clock: Clock, *, api_key: str
    ) -> None:
        self._api_key = api_key
        self._exchange = exchange
        self._journal = journal
        self._venue = venue
        self._clock = clock
        self._n = 0

    def __getattr__(self, name: str) -> Any:
        if name in ("create_order", "createOrder"):
            return self.create_order
        return getattr(self._exchange, name)

    def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        self._n += 1
        params = dict(params or {})
        declared = params.get("stopLoss")
        stop = params.get("stopLossPrice") or (
            declared.get("triggerPrice") if isinstance(declared, Mapping) else None
        )
        record: dict[str, Any] = {
            "n": self._n,
            "symbol": symbol,
            "side": side,
            "type": "stop" if params.get("stopLossPrice") else type,
            "amount": amount,
            "stop": stop,
            "reduce_only": bool(params.get("reduceOnly")),
        }
        before = self._known_orders(symbol)
        try:
            order = self._exchange.create_order(symbol, type, side, amount, price, params)
        except (SafeguardError, ccxt.BaseError) as exc:
            self._failed(record, exc, before)
            raise
        if inspect.isawaitable(order):  # an async exchange (a strategy on watch_*)
            return self._placed_async(order, record, before)
        self._write(record, "placed", None, None, [], before)
        return order

    async def _placed_async(
        self, pending: Awaitable[Any], record: dict[str, Any], before: set[int]
    ) -> Any:
        try:
            order = await pending
        except (SafeguardError, ccxt.BaseError) as exc:
            self._failed(record, exc, before)
            raise
        self._write(record, "placed", None, None, [], before)
        return order

    def _failed(self, record: dict[str, Any], exc: Exception, before: set[int]) -> None:
        if isinstance(exc, OrderDenied):
            findings = [f.to_dict() for f in getattr(exc.verdict, "findings", ())]
            self._write(record, "denied", exc.code, exc.reason, findings, before)
            return
        code = getattr(exc, "code", None)
        self._write(record, "failed", str(code or exc.__class__.__name__), str(exc), [], before)

    def _known_orders(self, symbol: str) -> set[int]:
        orders = self._venue.all_orders(self._api_key, symbol=venue_symbol(symbol), limit=100)
        return {int(o["orderId"]) for o in orders}

    def _write(
        self,
        record: dict[str, Any],
        outcome: str,
        code: str | None,
        reason: str | None,
        findings: list[dict[str, Any]],
        before: set[int],
    ) -> None:
        # Orders the venue created during this one call, matching it: more than one is a
        # duplicate the strategy never asked for.
        created = [
            o
            for o in self._venue.all_orders(
                self._api_key, symbol=venue_symbol(record["symbol"]), limit=100
            )
            if int(o["orderId"]) not in before
            and o["side"].lower() == record["side"]
            and float(o["origQty"]) == float(record["amount"])
            and (o.get("origType") in ("STOP_MARKET", "STOP")) == (record["type"] == "stop")
        ]
        self._journal.write(self._clock.time(), "order", **record, outcome=outcome, code=code,
                            reason=reason, findings=findings, copies=len(created))  # fmt: skip


__all__ = ["OrderLog", "Recorder", "unified_symbol", "venue_symbol"]
