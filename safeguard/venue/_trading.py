"""The accounts' orders through their life: placed, matched, settled, rested, triggered, closed.

:class:`Trading` owns the order records (by id, by client id, per account and symbol), each
account's recent fills, and the queue sequence that gives resting orders their time priority.
It checks an order against its account (position mode, reduce-only, open-order cap, price
filters against the mark, margin), walks the book and the other accounts' resting orders with
:func:`~._matching.plan`, settles each fill into the account's position and wallet
(:func:`~._accounts.apply_fill`, exact money) and records it. Each step it fills the resting
orders the market traded through and fires the stops whose price was reached.

It is separate from the engine because an order's life is the venue's busiest path and its own
idea; the markets it trades in, the :class:`~._ledger.Ledger` whose accounts it settles, and the
:class:`~._timeline.Timeline` it stamps with are handed to it. Its shared tables are read
through aliases bound once (the engine's inlined reads, kept: every order passes here).
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

from safeguard.venue._accounts import (
    ISOLATED,
    Account,
    Income,
    Position,
    apply_fill,
    max_notional_at,
)
from safeguard.venue._book import BUY, SELL
from safeguard.venue._errors import VenueReject, illegal
from safeguard.venue._events import AccountChanged, Fill, OrderExpired, OrderTriggered, OrderUpdate
from safeguard.venue._ledger import Ledger
from safeguard.venue._matching import Plan, crosses, plan
from safeguard.venue._orders import (
    CANCELED,
    EXPIRED,
    FILLED,
    OPEN_STATUSES,
    PARTIALLY_FILLED,
    STOP_LIMIT_TYPES,
    Order,
    OrderRequest,
    parse_order,
)
from safeguard.venue._state import MarketState
from safeguard.venue._timeline import Timeline
from safeguard.venue._views import user_trade

_FIRST_ORDER_ID = 1_000_000_001
_PERCENT_UP = 1.05
_PERCENT_DOWN = 0.95
_new_tuple = tuple.__new__  # a named tuple built without its Python-level __new__ frame


class Trading:
    """Every order on the venue, from its checks to its last fill or cancel."""

    def __init__(
        self,
        ledger: Ledger,
        markets: Mapping[str, MarketState],
        timeline: Timeline,
        *,
        max_open_orders: int,
        order_history: int,
    ) -> None:
        self._ledger = ledger
        self._m = markets
        self._timeline = timeline
        # The ledger's own tables, bound once: the order path reads them on every order.
        self._accounts = ledger.accounts
        self._default_leverage = ledger.default_leverage
        self._default_isolated = ledger.default_isolated
        # Read on every order; a pydantic model's attribute costs ~3x a plain one.
        self._max_open_orders = max_open_orders
        self._order_history = order_history
        self._orders: dict[int, Order] = {}
        # Per api key, then client order id: no key tuple per order (each one that outlives a
        # collection counts against the cyclic GC's thresholds, a measurable share of a round).
        self._by_client: dict[str, dict[str, Order]] = {}
        # Per (api key, symbol), so account look-ups never scan the whole venue.
        self._orders_by: dict[tuple[str, str], dict[int, Order]] = {}
        self._fills_by: dict[tuple[str, str], deque[Fill]] = {}
        self._closed: deque[int] = deque()
        self._next_order_id = _FIRST_ORDER_ID
        self._seq = 0

    # --- what a caller asks -------------------------------------------------------------------

    def place(self, account: Account, m: MarketState, request: OrderRequest) -> dict[str, Any]:
        """Check, record and execute a new order; Binance's answer for it."""
        spec = m.spec
        opening = self.check(account, m, request)
        order_id = self._next_order_id
        cid = request.client_order_id or f"sim-{order_id}"
        self._next_order_id = order_id + 1
        # Timeline.ms, inlined (every order is stamped).
        timeline = self._timeline
        now_ms = int((timeline.now if timeline.stepping else timeline.clock.time()) * 1000)
        api_key = account.api_key
        order = Order(order_id, api_key, cid, request, now_ms)
        self._orders[order_id] = order
        by_client = self._by_client.get(api_key)
        if by_client is None:
            by_client = self._by_client[api_key] = {}
        by_client[cid] = order
        by_symbol = self._orders_by.get((api_key, spec.symbol))
        if by_symbol is None:
            by_symbol = self._orders_by[(api_key, spec.symbol)] = {}
        by_symbol[order_id] = order
        if timeline.listeners:
            self._order_update(order, "NEW")
        if request.type in ("MARKET", "LIMIT"):
            self._execute_new(account, m, order, opening)
        else:
            m.stops.append(order)
            self._register_open(account, order)
        return order.to_binance(spec)

    def get(
        self, api_key: str, m: MarketState, order_id: Any, client_order_id: Any
    ) -> dict[str, Any]:
        return self._find(api_key, m.spec.symbol, order_id, client_order_id).to_binance(m.spec)

    def open_order(
        self, api_key: str, m: MarketState, order_id: Any, client_order_id: Any
    ) -> dict[str, Any]:
        order = self._find(api_key, m.spec.symbol, order_id, client_order_id)
        if not order.is_open:
            raise VenueReject(-2013, "Order does not exist.")
        return order.to_binance(m.spec)

    def cancel(
        self, api_key: str, m: MarketState, order_id: Any, client_order_id: Any
    ) -> dict[str, Any]:
        try:
            order = self._find(api_key, m.spec.symbol, order_id, client_order_id)
        except VenueReject as exc:
            if exc.code == -2013:
                raise VenueReject(-2011, "Unknown order sent.") from None
            raise
        if order.status not in OPEN_STATUSES:  # Order.is_open, inlined
            raise VenueReject(-2011, "Unknown order sent.")
        self._unrest(m, order)
        self._close_order(order, CANCELED)
        return order.to_binance(m.spec)

    def cancel_open(self, account: Account, m: MarketState) -> None:
        """Cancel every open order of ``account`` on ``m``'s symbol (a cancel-all, and what
        the liquidator does before it takes a position over, as Binance does)."""
        for order in list(self._iter_open(account, m.spec.symbol)):
            self._unrest(m, order)
            self._close_order(order, CANCELED)

    def modify(
        self,
        account: Account,
        m: MarketState,
        order_id: Any,
        client_order_id: Any,
        side: Any,
        quantity: Any,
        price: Any,
    ) -> dict[str, Any]:
        symbol = m.spec.symbol
        order = self._find(account.api_key, symbol, order_id, client_order_id)
        if not order.is_open:
            raise VenueReject(-2013, "Order does not exist.")
        if order.type != "LIMIT":
            raise VenueReject(-1116, "Invalid orderType.")
        if side != order.side:
            raise VenueReject(-1117, "Invalid side.")
        request = parse_order(
            m.spec,
            reference_ticks=m.last,
            side=order.side,
            type="LIMIT",
            quantity=quantity,
            price=price,
            time_in_force=order.time_in_force,
            reduce_only=order.reduce_only,
            working_type=order.working_type,
            position_side=order.position_side,
        )
        if request.qty == order.qty and request.price == order.price:
            raise VenueReject(-5027, "No need to modify the order.")
        if request.qty <= order.executed:
            self._unrest(m, order)
            self._close_order(order, CANCELED)
            return order.to_binance(m.spec)
        remaining = request._replace(qty=request.qty - order.executed)
        # Judge the edit as if this order were not there: its slot and its margin free.
        account.order_margin -= order.reserved
        account.open_count[symbol] -= 1
        try:
            opening = self.check(account, m, remaining)
        finally:
            account.order_margin += order.reserved
            account.open_count[symbol] += 1
        self._unrest(m, order)
        del account.open_orders[order.client_order_id]
        account.open_count[symbol] -= 1
        account.order_margin = max(account.order_margin - order.reserved, 0.0)
        order.reserved = 0.0
        order.qty, order.price = request.qty, request.price
        order.update_ms = self._timeline.ms()
        if self._timeline.listeners:
            self._order_update(order, "AMENDMENT")
        self._execute_new(account, m, order, opening)
        return order.to_binance(m.spec)

    def open_orders(self, account: Account, symbol: str | None) -> list[dict[str, Any]]:
        return [
            o.to_binance(self._m[o.symbol].spec)
            for o in sorted(self._iter_open(account, symbol), key=lambda o: o.order_id)
        ]

    def all_orders(self, api_key: str, m: MarketState, limit: Any) -> list[dict[str, Any]]:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000
        ):
            raise illegal("limit")
        orders = list(self._orders_by.get((api_key, m.spec.symbol), {}).values())
        if limit is not None:
            orders = orders[-limit:]
        return [o.to_binance(m.spec) for o in orders]

    def user_trades(self, api_key: str, m: MarketState, limit: Any) -> list[dict[str, Any]]:
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise illegal("limit")
        fills = list(self._fills_by.get((api_key, m.spec.symbol), ()))
        return [user_trade(m.spec, f) for f in fills[-limit:]]

    # --- how an order runs --------------------------------------------------------------------

    def _order_update(self, order: Order, execution: str, fill: Fill | None = None) -> None:
        answer = order.to_binance(self._m[order.symbol].spec)
        if fill is not None:
            answer["status"] = PARTIALLY_FILLED if order.remaining else FILLED
        self._timeline.notify(
            OrderUpdate(self._timeline.time(), order.api_key, order.symbol, execution, answer, fill)
        )

    def check(self, account: Account, m: MarketState, request: OrderRequest) -> int:
        """Account-dependent checks. Returns the steps the order would open (margin-bearing)."""
        spec = m.spec
        # One unpack instead of a descriptor look-up per field read (every order passes here).
        (symbol, side, kind, qty, price_ticks, tif, reduce_only, stop, working_type, cid,
         position_side, close_position) = request  # fmt: skip
        if account.dual_side:
            if position_side == "BOTH":
                raise VenueReject(-4061, "Order's position side does not match user's setting.")
            if reduce_only:
                raise VenueReject(-1106, "Parameter 'reduceOnly' sent when not required.")
        elif position_side != "BOTH":
            raise VenueReject(-4061, "Order's position side does not match user's setting.")
        if cid is not None and cid in account.open_orders:
            raise VenueReject(-4116, "ClientOrderId is duplicated.")
        if account.open_count.get(symbol, 0) >= self._max_open_orders:
            raise VenueReject(-2025, "Reach max open order limit.")

        # _closable and _is_closing_leg, inlined: every order passes here, and the margin
        # check below reuses what is held.
        position = account.positions.get((symbol, position_side))
        held = position.qty if position is not None else 0
        if position_side == "BOTH":
            closing_leg = False
            if held > 0 and side == SELL:
                closable = held
            elif held < 0 and side == BUY:
                closable = -held
            else:
                closable = 0
        else:
            closing_leg = (position_side == "LONG") == (side == SELL)
            closable = abs(held) if closing_leg else 0
        reducing = reduce_only or closing_leg
        if close_position:
            reducing = True  # sized when it triggers: what is held then, or nothing
        elif reducing and (closable == 0 or qty > closable):
            raise VenueReject(-2022, "ReduceOnly Order is rejected.")
        opening = 0 if reducing else max(qty - closable, 0)

        if stop:
            trigger = self._trigger_price(m, working_type)
            if _triggered(kind, side, stop * spec.tick_size, trigger):
                raise VenueReject(-2021, "Order would immediately trigger.")
            return opening

        book = m.book
        if kind == "LIMIT":
            # The PERCENT_PRICE filter exchangeInfo publishes: no limit further than 5 % from
            # the mark on the side that would pay through it (Binance's fat-finger guard).
            limit = price_ticks * spec.tick_size
            if side == BUY and limit > m.feed.mark * _PERCENT_UP:
                raise VenueReject(-4016, "Price is higher than mark price multiplier cap.")
            if side == SELL and limit < m.feed.mark * _PERCENT_DOWN:
                raise VenueReject(-4024, "Price is lower than mark price multiplier floor.")
            opposite = m.asks if side == BUY else m.bids
            if tif == "GTX" and crosses(book, opposite, side=side, limit=price_ticks):
                raise VenueReject(
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order "
                    "will be rejected. The order will not be recorded in the order history",
                )
            if tif == "FOK" and self._plan(account, m, side, qty, price_ticks).qty < qty:
                raise VenueReject(
                    -5021,
                    "Due to the order could not be filled immediately, the FOK order has "
                    "been rejected. The order will not be recorded in the order history",
                )
        if opening:
            if kind == "LIMIT":
                price = price_ticks * spec.tick_size
            else:
                price = self._worst_price(account, m, side, qty) * spec.tick_size
            self._check_margin(account, m, request, opening, price, held)
        return opening

    def _plan(
        self, account: Account, m: MarketState, side: str, qty: int, limit: int | None
    ) -> Plan:
        """How a taker would fill now against the book and other accounts' resting orders."""
        return plan(
            m.book,
            m.asks if side == BUY else m.bids,
            side=side,
            qty=qty,
            limit=limit,
            api_key=account.api_key,
            fillable=self._fillable,
        )

    def _worst_price(self, account: Account, m: MarketState, side: str, qty: int) -> int:
        """The furthest price (ticks) a market order of ``qty`` would reach; margin uses it."""
        if m.asks if side == BUY else m.bids:
            legs = self._plan(account, m, side, qty, None).legs
            return legs[-1].price if legs else m.last
        fills = m.book.take(side, qty, None, dry_run=True)
        return fills[-2] if fills else m.last

    def _fillable(self, order: Order) -> int:
        """Steps of a resting order that may trade now (reduce-only: what it can still reduce)."""
        if order.reduce_only or _is_closing_leg(order):
            return min(order.remaining, _closable(self._accounts[order.api_key], order))
        return order.remaining

    def _check_margin(
        self,
        account: Account,
        m: MarketState,
        request: OrderRequest,
        opening: int,
        price: float,
        held: int | None = None,
    ) -> None:
        """Refuse an order that would open more than the leverage allows or the free margin
        covers. ``held``: the leg's size, when the caller has already read it."""
        spec = m.spec
        leverage = account.leverage.get(spec.symbol) or self._default_leverage[spec.symbol]
        if held is None:
            held = _held(account, spec.symbol, request.position_side)
        signed = request.qty if request.side == BUY else -request.qty
        after = abs(held + signed) if request.position_side == "BOTH" else abs(held) + opening
        if after * spec.step_size * price > max_notional_at(spec, leverage):
            raise VenueReject(-2027, "Exceeded the maximum allowable position at current leverage.")
        notional = opening * spec.step_size * price
        needed = notional / leverage + notional * spec.taker_fee
        if needed > self._ledger.available(account):
            raise VenueReject(-2019, "Margin is insufficient.")

    def _iter_open(self, account: Account, symbol: str | None) -> Iterator[Order]:
        for order in account.open_orders.values():
            if symbol is None or order.symbol == symbol:
                yield order

    def _register_open(self, account: Account, order: Order) -> None:
        account.open_orders[order.client_order_id] = order
        account.open_count[order.symbol] = account.open_count.get(order.symbol, 0) + 1

    def _execute_new(self, account: Account, m: MarketState, order: Order, opening: int) -> None:
        """Take what crosses now; rest or expire the remainder per the time in force."""
        limit = order.price if order.type == "LIMIT" else None
        self_trade = self._take(account, m, order, order.qty - order.executed, limit)
        remaining = order.qty - order.executed  # Order.remaining, inlined (hot path)
        if not remaining:
            return
        if self_trade or order.type == "MARKET" or order.time_in_force in ("IOC", "FOK"):
            self._close_order(order, EXPIRED)
            return
        leverage = account.leverage.get(order.symbol) or self._default_leverage[order.symbol]
        share = min(opening, remaining)
        order.reserved = share * m.spec.step_size * order.price * m.spec.tick_size / leverage
        account.order_margin += order.reserved
        self._seq += 1
        if order.side == BUY:
            bisect.insort(m.bids, (-order.price, self._seq, order))
        else:
            bisect.insort(m.asks, (order.price, self._seq, order))
        self._register_open(account, order)

    def _take(
        self, account: Account, m: MarketState, order: Order, qty: int, limit: int | None
    ) -> bool:
        """Fill up to ``qty`` of ``order`` as a taker; True when self-trade prevention stopped it.

        Each resting account order met fills as a maker at its own price; the taker's fills are
        settled together afterwards, and the public tape records each match once.
        """
        if not (m.asks if order.side == BUY else m.bids):
            # Nothing from other accounts on the far side: the book alone (the hot path).
            fills = m.book.take(order.side, qty, limit)
            if fills:
                self._settle(account, m, order, fills, maker=False)
            return False
        planned = self._plan(account, m, order.side, qty, limit)
        # Every match is printed on the tape here, in the order it happens, and both sides of
        # a match between two accounts carry its one trade id (the maker's side used to carry
        # the tape's previous id: one account could hold two fills under one id, and ccxt's
        # trade caches, keyed by id, dropped one of them).
        now = self._timeline.time()
        buyer_maker = order.side != BUY
        taker_fills: list[int] = []
        taker_ids: list[int] = []
        for leg in planned.legs:
            if leg.maker is None:
                book_fills = m.book.take(order.side, leg.qty, leg.price)
                for i in range(0, len(book_fills), 2):
                    taker_ids.append(
                        m.record_trade(
                            now, book_fills[i], book_fills[i + 1], buyer_maker=buyer_maker
                        )
                    )
                taker_fills += book_fills
                continue
            maker = leg.maker
            trade_id = m.record_trade(now, leg.price, leg.qty, buyer_maker=buyer_maker)
            self._settle(
                self._accounts[maker.api_key],
                m,
                maker,
                [leg.price, leg.qty],
                maker=True,
                trade_ids=[trade_id],
            )
            if not maker.is_open:
                self._unrest(m, maker)
            taker_fills += [leg.price, leg.qty]
            taker_ids.append(trade_id)
        if taker_fills:
            self._settle(account, m, order, taker_fills, maker=False, trade_ids=taker_ids)
        return planned.self_trade

    def _settle(
        self,
        account: Account,
        m: MarketState,
        order: Order,
        fills: list[int],
        *,
        maker: bool,
        trade_ids: list[int] | None = None,
    ) -> None:
        """Book ``fills`` (flat [price, qty, ...]) to ``order`` and its account.

        ``trade_ids``: the tape's ids of ``fills``, already printed (a match between two
        accounts is printed once, by :meth:`_take`, for both sides); ``None``: print them here.
        """
        spec = m.spec
        symbol = spec.symbol
        api_key = account.api_key
        position_side = order.position_side
        position = account.positions.get((symbol, position_side))
        if position is None:
            position = _position(account, symbol, position_side)
        chosen = account.margin_type.get(symbol)  # Ledger.isolated and .leverage, inlined
        isolated = self._default_isolated if chosen is None else chosen == ISOLATED
        leverage = account.leverage.get(symbol) or self._default_leverage[symbol]
        fee_rate = spec.maker_fee if maker else spec.taker_fee
        timeline = self._timeline
        now = timeline.now if timeline.stepping else timeline.clock.time()  # time(), inlined
        now_ms = int(now * 1000)
        unit = spec.notional_unit
        # The hits of spec.price_of / spec.qty_of, inlined (one fill per call is the common case).
        price_values, qty_values = spec.price_values, spec.qty_values
        side = order.side
        buy = side == BUY
        buyer_maker = buy == maker
        events = timeline.events
        income = account.income
        listening = bool(timeline.listeners)
        recent = self._fills_by.get((api_key, symbol))
        if recent is None:
            recent = self._fills_by[(api_key, symbol)] = deque(maxlen=1000)
        filled = 0
        for i in range(0, len(fills), 2):
            price = fills[i]
            qty = fills[i + 1]
            realized, fee = apply_fill(
                account,
                position,
                spec,
                qty if buy else -qty,
                price,
                fee_rate,
                leverage,
                isolated,
                now_ms,
            )
            order.executed += qty
            filled += qty
            order.cum_quote += price * qty * unit
            trade_id = (
                m.record_trade(now, price, qty, buyer_maker=buyer_maker)
                if trade_ids is None
                else trade_ids[i >> 1]
            )
            if realized or fee:
                # Ledger.book_income, inlined: most fills book one or two incomes.
                trade = str(trade_id)
                ledger = self._ledger
                if realized:
                    ledger.tran_id += 1
                    income.append(
                        _new_tuple(
                            Income,
                            (ledger.tran_id, now_ms, symbol, "REALIZED_PNL", realized, trade, ""),
                        )
                    )
                if fee:
                    ledger.tran_id += 1
                    income.append(
                        _new_tuple(
                            Income, (ledger.tran_id, now_ms, symbol, "COMMISSION", -fee, trade, "")
                        )
                    )
            event = Fill(
                now,
                api_key,
                symbol,
                order.order_id,
                order.client_order_id,
                trade_id,
                side,
                position_side,
                price_values.get(price) or spec.price_of(price),
                qty_values.get(qty) or spec.qty_of(qty),
                maker,
                realized,
                fee,
            )
            events.append(event)
            recent.append(event)
            if listening:
                self._timeline.notify(event)
                self._order_update(order, "TRADE", event)
        order.update_ms = now_ms
        remaining = order.qty - order.executed
        if order.reserved:
            # Margin held for the resting remainder shrinks with what just filled.
            released = order.reserved * min(filled / (remaining + filled), 1.0)
            order.reserved -= released
            account.order_margin = max(account.order_margin - released, 0.0)
        if remaining:
            order.status = PARTIALLY_FILLED
        else:
            self._close_order(order, FILLED, now_ms)
        if timeline.listeners:
            timeline.notify(AccountChanged(now, api_key, "ORDER", (symbol,)))

    def _close_order(self, order: Order, status: str, now_ms: int | None = None) -> None:
        """Give ``order`` its final ``status`` at ``now_ms`` (default: now) and release it."""
        order.status = status
        order.update_ms = self._timeline.ms() if now_ms is None else now_ms
        if self._timeline.listeners and status != FILLED:  # a fill's own update says FILLED
            self._order_update(order, status)
        account = self._accounts[order.api_key]
        if account.open_orders.get(order.client_order_id) is order:
            del account.open_orders[order.client_order_id]
            account.open_count[order.symbol] -= 1
        if order.reserved:
            account.order_margin = max(account.order_margin - order.reserved, 0.0)
            order.reserved = 0.0
        self._closed.append(order.order_id)
        if len(self._closed) > self._order_history:
            old = self._orders.pop(self._closed.popleft(), None)
            if old is not None:
                self._orders_by[(old.api_key, old.symbol)].pop(old.order_id, None)
                by_client = self._by_client[old.api_key]
                if by_client.get(old.client_order_id) is old:
                    del by_client[old.client_order_id]

    def _unrest(self, m: MarketState, order: Order) -> None:
        if order.type != "LIMIT":
            m.stops.remove(order)
            return
        queue = m.bids if order.side == BUY else m.asks
        key = -order.price if order.side == BUY else order.price
        for i in range(bisect.bisect_left(queue, (key,)), len(queue)):
            if queue[i][2] is order:
                del queue[i]
                return

    def _find(self, api_key: str, symbol: str, order_id: Any, client_order_id: Any) -> Order:
        if order_id is None and client_order_id is None:
            raise VenueReject(
                -1102,
                "Param 'orderId' or 'origClientOrderId' must be sent, but both were empty/null!",
            )
        if order_id is not None and (isinstance(order_id, bool) or not isinstance(order_id, int)):
            raise illegal("orderId")
        if client_order_id is not None and not isinstance(client_order_id, str):
            raise illegal("origClientOrderId")
        order = (
            self._orders.get(order_id)
            if order_id is not None
            else self._by_client.get(api_key, {}).get(client_order_id)  # type: ignore[arg-type]
        )
        if order is None or order.api_key != api_key or order.symbol != symbol:
            raise VenueReject(-2013, "Order does not exist.")
        if client_order_id is not None and order.client_order_id != client_order_id:
            raise VenueReject(-2013, "Order does not exist.")
        return order

    def fill_resting(self, m: MarketState, t: float) -> None:
        """Fill resting orders the market traded through, at their own price (maker).

        Only a trade *through* the price fills: a market that merely touches it fills nothing,
        because an order that joined the back of the queue would not have been reached. This
        errs against the trader, never for it (paper fills that are too easy hide losses).
        """
        book = m.book
        for queue, side in ((m.bids, BUY), (m.asks, SELL)):
            while queue:
                order = queue[0][2]
                best = book.best(side)
                if best is None or (best >= order.price if side == BUY else best <= order.price):
                    break
                account = self._accounts[order.api_key]
                want = order.remaining
                if order.reduce_only:
                    want = min(want, _closable(account, order))
                    if not want:
                        del queue[0]
                        self._expire(order, "reduce-only order would no longer reduce")
                        continue
                # The market makers' orders that crossed trade against ours at our price.
                crossed = book.take(side, want, order.price)
                got = sum(crossed[1::2])
                if not got:
                    break
                self._settle(account, m, order, [order.price, got], maker=True)
                if order.is_open and order.reduce_only and not _closable(account, order):
                    del queue[0]
                    self._expire(order, "reduce-only order would no longer reduce")
                    continue
                if order.is_open:
                    break
                del queue[0]

    def _expire(self, order: Order, reason: str) -> None:
        self._close_order(order, EXPIRED)
        self._timeline.record(
            OrderExpired(self._timeline.time(), order.api_key, order.symbol, order.order_id, reason)
        )

    def _trigger_price(self, m: MarketState, working_type: str) -> float:
        if working_type == "MARK_PRICE":
            return m.feed.mark
        return m.last * m.spec.tick_size

    def trigger_stops(self, m: MarketState, t: float) -> None:
        """Fire ``m``'s stops whose trigger (the mark or the last price, per ``workingType``)
        was reached: each takes the book as a market order, or rests as a limit (stop-limit)."""
        spec = m.spec
        fired = [
            order
            for order in m.stops
            if _triggered(
                order.type,
                order.side,
                order.stop * spec.tick_size,
                self._trigger_price(m, order.working_type),
            )
        ]
        for order in fired:
            m.stops.remove(order)
            self._timeline.record(
                OrderTriggered(
                    t,
                    order.api_key,
                    spec.symbol,
                    order.order_id,
                    order.working_type,
                    self._trigger_price(m, order.working_type),
                    spec.price_of(order.stop),
                )
            )
            account = self._accounts[order.api_key]
            want = order.qty
            if order.close_position:
                # Close-all: whatever its side reduces now (one-way: nothing if that side
                # would add to the position).
                want = order.qty = _closable(account, order)
                if not want:
                    self._expire(order, "closePosition stop had no position to close")
                    continue
            elif order.reduce_only or _is_closing_leg(order):
                want = min(want, _closable(account, order))
                if not want:
                    self._expire(order, "reduce-only stop had no position left to reduce")
                    continue
            else:
                closable = _closable(account, order)
                opening = max(want - closable, 0)
                if opening:
                    worst = self._worst_price(account, m, order.side, want)
                    request = _as_request(order)
                    try:
                        self._check_margin(account, m, request, opening, worst * spec.tick_size)
                    except VenueReject as exc:
                        self._expire(order, f"triggered but rejected: {exc}")
                        continue
            if order.type in STOP_LIMIT_TYPES:
                self._rest_triggered(account, m, order, want)
                continue
            self_trade = self._take(account, m, order, want, None)
            if order.is_open:
                self._expire(
                    order,
                    "self-trade prevention expired the rest"
                    if self_trade
                    else "book too thin to fill the triggered order in full",
                )

    def _rest_triggered(self, account: Account, m: MarketState, order: Order, qty: int) -> None:
        """A triggered stop-limit becomes a LIMIT order at its price: it takes what crosses
        and rests the rest (its open-order slot carries over)."""
        order.type = "LIMIT"
        order.qty = qty
        del account.open_orders[order.client_order_id]
        account.open_count[order.symbol] -= 1
        opening = max(qty - _closable(account, order), 0)
        if self._timeline.listeners:
            self._order_update(order, "NEW")
        self._execute_new(account, m, order, opening)


def _position(account: Account, symbol: str, position_side: str) -> Position:
    key = (symbol, position_side)
    position = account.positions.get(key)
    if position is None:
        position = Position(symbol, position_side)
        account.positions[key] = position
    return position


def _held(account: Account, symbol: str, position_side: str) -> int:
    position = account.positions.get((symbol, position_side))
    return position.qty if position is not None else 0


def _closable(account: Account, order: Order | OrderRequest) -> int:
    """Steps of the order that would reduce its position (the rest opens or flips)."""
    held = _held(account, order.symbol, order.position_side)
    if order.position_side == "BOTH":
        if held > 0 and order.side == SELL:
            return held
        if held < 0 and order.side == BUY:
            return -held
        return 0
    closing = (order.position_side == "LONG") == (order.side == SELL)
    return abs(held) if closing else 0


def _is_closing_leg(order: Order | OrderRequest) -> bool:
    """Hedge mode: SELL on LONG and BUY on SHORT only ever reduce."""
    if order.position_side == "BOTH":
        return False
    return (order.position_side == "LONG") == (order.side == SELL)


def _triggered(kind: str, side: str, stop: float, price: float) -> bool:
    """Whether a stop (``STOP_MARKET``, ``STOP``) or take-profit watching ``price`` fires."""
    rising = (kind in ("STOP_MARKET", "STOP")) == (side == BUY)
    return price >= stop if rising else price <= stop


def _as_request(order: Order) -> OrderRequest:
    return OrderRequest(
        symbol=order.symbol,
        side=order.side,
        type="MARKET",
        qty=order.qty,
        price=0,
        time_in_force="",
        reduce_only=order.reduce_only,
        stop=0,
        working_type=order.working_type,
        client_order_id=order.client_order_id,
        position_side=order.position_side,
    )


__all__ = ["Trading"]
