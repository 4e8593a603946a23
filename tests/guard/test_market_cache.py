"""The market cache (what to re-read, rule drift) and the re-check of open positions' stops.

The data are real ccxt structures: read from the in-process mock venue by a plain ccxt client
and fed to the cache the way the guard feeds it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard._codes import Code
from safeguard._config import Policy, RiskLimits, TriggerConfig
from safeguard._errors import ConfigError
from safeguard.guard._core import Send
from safeguard.guard._degradation import HealthMonitor
from safeguard.guard._events import EventKind, Hooks, VerdictEvent
from safeguard.guard._gate import PreTradeGate
from safeguard.guard._market import MarketCache, Seen, stops_read
from safeguard.guard._tripwire import TripWire
from safeguard.killswitch._switch import TradingState
from safeguard.killswitch._triggers import RiskMonitor
from safeguard.risk._liquidation import LiquidationOptions, get_model, model_for_exchange
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client

SYMBOL = "ETH/USDT:USDT"
KEY, SECRET = "mc-key-0123456789", "mc-secret-0123456789abcdef"


def _methods(sends: list[Send]) -> list[str]:
    return [s.method for s in sends]


def test_refresh_names_what_is_missing_then_what_is_due() -> None:
    limits = RiskLimits(max_market_data_age_s=4.0, max_rules_age_s=100.0)
    cache = MarketCache(limits)
    assert _methods(cache.refresh(SYMBOL, 0.0)) == [
        "load_markets",
        "fetch_trading_fee",  # the account's commission rates, on the rules' schedule
        "fetch_leverage_tiers",
        "fetch_funding_rate",
        "fetch_ticker",
        "fetch_order_book",
        "fetch_balance",
        "fetch_positions",
        "fetch_open_orders",
        "fetch_open_orders",  # {"trigger": True}: the stops Binance lists apart
        "fetch_leverages",
    ]
    assert cache.refresh(SYMBOL, 0.0)[-2].kwargs == {"params": {"trigger": True}}
    for send in cache.refresh(SYMBOL, 0.0):
        value: Any = (
            {SYMBOL: {"precision": {"price": 0.01}}} if send.method == "load_markets" else {}
        )
        if send.method == "fetch_leverage_tiers":
            value = {SYMBOL: []}
        if send.method in ("fetch_positions", "fetch_open_orders"):
            value = []
        if send.method == "fetch_leverages":
            value = {SYMBOL: {"marginMode": "cross", "longLeverage": 5, "shortLeverage": 5}}
        cache.absorb(send, value, 0.0)
    data = [
        "fetch_funding_rate",
        "fetch_ticker",
        "fetch_order_book",
        "fetch_balance",
        "fetch_positions",
        "fetch_open_orders",
        "fetch_open_orders",
        "fetch_leverages",
    ]
    # The schedule (the stream's path) has market data due at half its allowed age, rules at
    # half theirs; the order path reads a piece only once it is as old as the verdict allows.
    assert cache.due(SYMBOL, 1.9) == []
    assert _methods(cache.due(SYMBOL, 2.0)) == data
    assert cache.refresh(SYMBOL, 3.9) == []
    assert _methods(cache.refresh(SYMBOL, 4.0)) == data
    rules = ["load_markets", "fetch_trading_fee", "fetch_leverage_tiers"]
    assert _methods(cache.due(SYMBOL, 50.0))[:3] == rules
    assert "load_markets" not in _methods(cache.refresh(SYMBOL, 99.0))
    assert _methods(cache.refresh(SYMBOL, 100.0))[:3] == rules
    # A symbol the venue does not list needs nothing more: the verdict denies it.
    assert cache.refresh("NOPE/USDT:USDT", 1.0) == []


def test_rule_drift_is_reported_field_by_field() -> None:
    cache = MarketCache(RiskLimits())
    before = {SYMBOL: {"precision": {"price": 0.01, "amount": 0.001}, "taker": 0.0005}}
    after = {SYMBOL: {"precision": {"price": 0.05, "amount": 0.001}, "taker": 0.0004}}
    assert cache.absorb(Send("load_markets", (True,)), before, 0.0) == []
    changes = cache.absorb(Send("load_markets", (True,)), after, 10.0)
    assert {(c.field, c.old, c.new) for c in changes} == {
        ("precision.price", 0.01, 0.05),
        ("taker", 0.0005, 0.0004),
    }
    ladder = [{"minNotional": 0, "maxNotional": 50_000, "maintenanceMarginRate": 0.005,
               "maxLeverage": 50}]  # fmt: skip
    cache.absorb(Send("fetch_leverage_tiers", ()), {SYMBOL: ladder}, 0.0)
    moved = [{**ladder[0], "maintenanceMarginRate": 0.01}]
    (change,) = cache.absorb(Send("fetch_leverage_tiers", ()), {SYMBOL: moved}, 5.0)
    assert (change.symbol, change.field) == (SYMBOL, "tiers")


def test_a_placed_order_updates_open_orders_and_makes_the_account_due() -> None:
    cache = MarketCache(RiskLimits())
    cache.balance = Seen({"total": {}}, 0.0, None)
    cache.positions = Seen([], 0.0, None)
    cache.open_orders[SYMBOL] = Seen([{"id": "1", "status": "open"}], 0.0, None)
    cache.placed(SYMBOL, {"id": "2", "status": "open"}, 1.0)
    # Kept for the triggers, but due at once and never fresh enough for a verdict.
    assert {"fetch_balance", "fetch_positions"} <= set(_methods(cache.refresh(SYMBOL, 1.0)))
    assert cache.balance is not None
    assert cache.balance.age(1.0) == math.inf
    assert cache.positions is not None
    assert cache.positions.age(1.0) == math.inf
    assert [o["id"] for o in cache.open_orders[SYMBOL].value] == ["1", "2"]
    cache.placed(SYMBOL, {"id": "3", "status": "closed"}, 2.0)
    assert [o["id"] for o in cache.open_orders[SYMBOL].value] == ["1", "2"]


def test_a_market_order_answered_as_new_never_counts_as_open() -> None:
    """Binance may answer a market order NEW before it fills: it never rests all the same. A
    stop-market (conditional) order answered NEW does rest until it triggers."""
    cache = MarketCache(RiskLimits())
    cache.open_orders[SYMBOL] = Seen([], 0.0, None)
    cache.placed(SYMBOL, {"id": "1", "status": "open", "type": "market"}, 1.0)
    assert cache.open_orders[SYMBOL].value == []
    stop = {"id": "2", "status": "open", "type": "stop_market", "triggerPrice": 1000.0}
    cache.placed(SYMBOL, stop, 2.0)
    assert [o["id"] for o in cache.open_orders[SYMBOL].value] == ["2"]


def test_an_order_read_with_a_status_ccxt_could_not_parse_stays_counted() -> None:
    cache = MarketCache(RiskLimits())
    cache.open_orders[SYMBOL] = Seen([{"id": "1", "status": "open"}], 0.0, None)
    cache.absorb(Send("fetch_order", ("1", SYMBOL)), {"id": "1", "symbol": SYMBOL}, 1.0)
    assert [o["id"] for o in cache.open_orders[SYMBOL].value] == ["1"]
    cache.absorb(
        Send("fetch_order", ("1", SYMBOL)), {"id": "1", "symbol": SYMBOL, "status": "closed"}, 2.0
    )
    assert cache.open_orders[SYMBOL].value == []


def test_venue_timestamps_decide_the_age_not_our_fetch() -> None:
    cache = MarketCache(RiskLimits())
    send = Send("fetch_order_book", (SYMBOL, 100))
    cache.absorb(send, {"bids": [], "asks": [], "timestamp": 1_000_000}, 1_030.0)
    assert cache.books[SYMBOL].age(1_030.0) == pytest.approx(30.0)


# --- re-checking open positions -----------------------------------------------------------------


def _gate_with_a_leveraged_long(
    health: HealthMonitor,
) -> tuple[PreTradeGate, list[VerdictEvent], Any]:
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=400.0)
    raw = inprocess_client(Dialect(venue), KEY, SECRET)
    raw.load_markets()
    raw.set_leverage(20, SYMBOL)
    raw.create_order(SYMBOL, "market", "buy", 2.0)  # ~6,000 notional on a 400 wallet
    policy = Policy.build(risk={"require_stop": False})
    hooks = Hooks()
    events: list[VerdictEvent] = []
    hooks.subscribe(EventKind.VERDICT, events.append)
    gate = PreTradeGate(policy, MarketCache(policy.risk), health, hooks)
    now = clock.time()
    _feed(gate, raw, now)
    return gate, events, now


def _feed(gate: PreTradeGate, raw: Any, now: float) -> None:
    """What the guard reads before a verdict, read by ``raw`` and absorbed by ``gate``."""
    for method, args in (
        ("load_markets", (True,)),
        ("fetch_leverage_tiers", ()),
        ("fetch_funding_rate", (SYMBOL,)),
        ("fetch_ticker", (SYMBOL,)),
        ("fetch_order_book", (SYMBOL, 100)),
        ("fetch_balance", ()),
        ("fetch_positions", ()),
    ):
        gate.absorb(Send(method, args), getattr(raw, method)(*args), now)


def _stop(gate: PreTradeGate, trigger: float) -> None:
    order = {"id": "s1", "side": "sell", "reduceOnly": True, "triggerPrice": trigger,
             "status": "open"}  # fmt: skip
    gate.cache.open_orders[SYMBOL] = Seen([order], 0.0, None)


def test_a_stop_that_no_longer_clears_liquidation_is_reported() -> None:
    gate, events, now = _gate_with_a_leveraged_long(HealthMonitor())
    position = gate.cache.positions.value[0]  # type: ignore[union-attr]
    _stop(gate, round(position["entryPrice"] * 0.99, 2))
    (safe,) = gate.recheck_positions(now)
    assert safe.distance_pct > gate.policy.risk.min_liquidation_buffer_pct
    assert events == []

    _stop(gate, round(safe.liquidation * 1.002, 2))  # a hair inside liquidation
    (unsafe,) = gate.recheck_positions(now)
    assert unsafe.distance_pct < gate.policy.risk.min_liquidation_buffer_pct
    (event,) = events
    assert (event.allowed, event.code, event.symbol) == (
        False,
        Code.STOP_BEYOND_LIQUIDATION,
        SYMBOL,
    )


def test_a_degraded_venue_prices_the_same_stop_worse() -> None:
    health = HealthMonitor()
    gate, _, now = _gate_with_a_leveraged_long(health)
    position = gate.cache.positions.value[0]  # type: ignore[union-attr]
    _stop(gate, round(position["entryPrice"] * 0.97, 2))
    (calm,) = gate.recheck_positions(now)
    for _ in range(20):
        health.record("fetch_ticker", 0.01, "error", now)
    assert str(health.state(now)) != "NORMAL"
    (sick,) = gate.recheck_positions(now)
    assert sick.degraded
    assert sick.stop_fill < calm.stop_fill
    assert sick.distance_pct < calm.distance_pct


def test_the_stop_re_check_prices_liquidation_on_the_exchanges_model() -> None:
    # On another venue's formula the same long liquidates elsewhere: the re-check must use
    # the model the verdict uses (the market rules'), not Binance's whatever the venue.
    gate, _, now = _gate_with_a_leveraged_long(HealthMonitor())
    gate.liquidation_model = "bitget"  # what guard() picks for ccxt.bitget
    account = gate.account(now)
    assert account is not None
    (leg,) = account.positions
    _stop(gate, round(leg.entry_price * 0.99, 2))
    (check,) = gate.recheck_positions(now)
    taker = gate.fills.expected.taker_fee
    options = LiquidationOptions(
        closing_fee_rate=taker,
        safety_buffer_rate=gate.policy.risk.liquidation_safety_buffer_pct / 100.0,
    )
    bitget, binance = (
        get_model(name).liquidation_price(
            leg, wallet_balance=account.wallet_balance, options=options
        )
        for name in ("bitget", "binanceusdm")
    )
    assert bitget.price != binance.price
    assert check.liquidation == bitget.price
    rules = gate.snapshot(SYMBOL, now).rules
    assert rules is not None
    assert rules.liquidation_model == "bitget"  # the verdict's model


def test_each_exchange_gets_its_own_liquidation_model_and_an_unknown_one_none() -> None:
    assert model_for_exchange("binanceusdm") == "binanceusdm"
    assert model_for_exchange("okx") == "okx"
    # Another venue's formula, or the generic one, would put liquidation where that venue
    # does not: an exchange without a model of its own is refused, naming it.
    with pytest.raises(ConfigError, match="kraken"):
        model_for_exchange("kraken")


def _hedged_eth(tripwire: TripWire | None = None) -> tuple[PreTradeGate, Any, float]:
    """A cross account in hedge mode, long 2 ETH and short 0.5 ETH (net long), and a gate
    that has not read it yet, with ``read`` to feed it."""
    clock = ManualClock(1_700_000_000.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    venue.create_account(KEY, SECRET, wallet=1_000.0)
    raw = inprocess_client(Dialect(venue), KEY, SECRET)
    raw.load_markets()
    raw.set_position_mode(True)
    raw.set_leverage(20, SYMBOL)
    raw.create_order(SYMBOL, "market", "buy", 2.0, None, {"positionSide": "LONG"})
    raw.create_order(SYMBOL, "market", "sell", 0.5, None, {"positionSide": "SHORT"})
    policy = Policy.build(risk={"require_stop": False})
    gate = PreTradeGate(
        policy, MarketCache(policy.risk), HealthMonitor(), Hooks(), tripwire=tripwire
    )
    return gate, raw, clock.time()


def _hedge_stops(long_stop: float, short_stop: float) -> Seen:
    return Seen(
        [
            {"id": "l", "side": "sell", "reduceOnly": True, "triggerPrice": long_stop,
             "status": "open"},
            {"id": "s", "side": "buy", "reduceOnly": True, "triggerPrice": short_stop,
             "status": "open"},
        ],
        0.0,
        None,
    )  # fmt: skip


def test_stops_on_both_cross_hedge_legs_are_judged_against_the_accounts_price() -> None:
    # Hedge mode on a cross account: long 2 ETH and short 0.5 ETH share one liquidation price
    # (the account's, below the mark: it is net long). Each leg's stop is judged against it,
    # the short's buy stop above the mark included: it is on the safe side, not "beyond".
    gate, raw, now = _hedged_eth()
    events: list[VerdictEvent] = []
    gate.hooks.subscribe(EventKind.VERDICT, events.append)
    _feed(gate, raw, now)
    mark = float(gate.cache.positions.value[0]["markPrice"])  # type: ignore[union-attr]
    gate.cache.open_orders[SYMBOL] = _hedge_stops(round(mark * 0.9, 2), round(mark * 1.05, 2))
    checks = gate.recheck_positions(now)
    assert len(checks) == 2  # both legs, the short one too
    assert checks[0].liquidation == checks[1].liquidation < mark
    assert all(check.distance_pct > 1.0 for check in checks)
    assert events == []


def test_the_triggers_see_the_hedge_stop_that_must_clear_the_shared_price(
    tmp_path: Path,
) -> None:
    # Two stops, one slot per symbol for the triggers: the long leg's, beyond the account's
    # price, must be the one judged (not the short's, far on the safe side).
    monitor = RiskMonitor(TriggerConfig(), limits=RiskLimits(max_effective_leverage=None))
    wire = TripWire(monitor)
    gate, raw, now = _hedged_eth(wire)
    mark = raw.fetch_ticker(SYMBOL)["last"]
    gate.cache.open_orders[SYMBOL] = _hedge_stops(round(mark * 0.7, 2), round(mark * 1.05, 2))
    with wire.collecting() as trips:  # as a guarded call does around its steps
        _feed(gate, raw, now)
    [trip] = trips.take()  # the core yields it as an Engage; a face performs it
    assert trip.state is TradingState.HALTED
    assert trip.code == Code.LIQUIDATION_DISTANCE
    assert "ETH/USDT:USDT long" in trip.reason


def _hedged_eth_with_venue_stops(
    long_stop_pct: float, short_stop_pct: float, tripwire: TripWire | None = None
) -> tuple[PreTradeGate, float]:
    """``_hedged_eth`` with the stops a hedge-mode bot really places on each leg
    (STOP_MARKET with ``positionSide``: Binance refuses ``reduceOnly`` there), read."""
    gate, raw, now = _hedged_eth(tripwire)
    mark = raw.fetch_ticker(SYMBOL)["last"]
    for side, amount, pct, leg in (
        ("sell", 2.0, long_stop_pct, "LONG"),
        ("buy", 0.5, short_stop_pct, "SHORT"),
    ):
        stop = round(mark * (1 + pct / 100), 2)
        params = {"stopPrice": stop, "positionSide": leg}
        raw.create_order(SYMBOL, "STOP_MARKET", side, amount, None, params)
    gate.absorb(Send("fetch_open_orders", (SYMBOL,)), raw.fetch_open_orders(SYMBOL), now)
    # Binance lists untriggered stops apart (its algo service): the plain read above has none.
    stops = raw.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert len(stops) == 2
    gate.absorb(stops_read(SYMBOL), stops, now)
    _feed(gate, raw, now)
    return gate, now


def test_hedge_mode_stops_are_re_checked_like_reduce_only_ones() -> None:
    gate, now = _hedged_eth_with_venue_stops(-10.0, 5.0)
    checks = gate.recheck_positions(now)
    assert len(checks) == 2  # both legs' stops found, though neither says reduceOnly
    placed = {float(order["triggerPrice"]) for order in gate.cache.open_orders[SYMBOL].value}
    assert {check.stop for check in checks} == placed
    assert all(check.distance_pct > 1.0 for check in checks)


def test_the_triggers_see_a_hedge_mode_stop_beyond_liquidation() -> None:
    monitor = RiskMonitor(TriggerConfig(), limits=RiskLimits(max_effective_leverage=None))
    wire = TripWire(monitor)
    with wire.collecting() as trips:
        _hedged_eth_with_venue_stops(-30.0, 5.0, wire)
    [trip] = trips.take()
    assert trip.state is TradingState.HALTED
    assert trip.code == Code.LIQUIDATION_DISTANCE


# --- the stops Binance lists apart ------------------------------------------------------------


def _cache_with_orders() -> MarketCache:
    cache = MarketCache(RiskLimits())
    plain = [{"id": "1", "symbol": SYMBOL, "status": "open", "type": "limit", "price": 10.0}]
    stops = [
        {"id": "2", "symbol": SYMBOL, "status": "open", "type": "stop_market", "triggerPrice": 9.0}
    ]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,)), plain, 0.0)
    cache.absorb(stops_read(SYMBOL), stops, 0.0)
    return cache


def _ids(cache: MarketCache) -> list[str]:
    return sorted(str(o["id"]) for o in cache.open_orders[SYMBOL].value)


def test_a_triggered_take_profit_resting_as_a_limit_stays_counted_through_both_reads() -> None:
    # A triggered stop-limit rests as a LIMIT that keeps its stop price (ccxt: triggerPrice).
    # It moved from the algo listing to the plain one; judged by its fields it looked like a
    # stop still, and the stops read dropped it: the view counted one order fewer than rest.
    cache = _cache_with_orders()
    triggered = {
        "id": "2", "symbol": SYMBOL, "status": "open", "type": "limit", "triggerPrice": 9.0,
    }  # fmt: skip
    plain = [{"id": "1", "symbol": SYMBOL, "status": "open", "type": "limit"}, triggered]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,)), plain, 1.0)
    cache.absorb(stops_read(SYMBOL), [], 1.0)
    assert _ids(cache) == ["1", "2"]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,)), plain, 2.0)
    assert _ids(cache) == ["1", "2"]


@pytest.mark.parametrize("params", [{"trigger": 1}, {"trigger": "true"}, {"stop": 1}])
def test_a_stops_filter_ccxt_does_not_honour_is_no_stops_read(params: dict[str, Any]) -> None:
    # ccxt sends {"trigger": 1} to the plain route (it takes only a real bool): its answer is
    # the plain orders, and reading it as the stops' truth wiped every stop from the view.
    cache = _cache_with_orders()
    plain = [{"id": "1", "symbol": SYMBOL, "status": "open", "type": "limit"}]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,), {"params": params}), plain, 1.0)
    assert _ids(cache) == ["1", "2"]
    assert cache.stops_read[SYMBOL] == 0.0


def test_a_cancel_all_of_stops_leaves_a_triggered_order_counted() -> None:
    cache = _cache_with_orders()
    triggered = {
        "id": "2", "symbol": SYMBOL, "status": "open", "type": "limit", "triggerPrice": 9.0,
    }  # fmt: skip
    plain = [{"id": "1", "symbol": SYMBOL, "status": "open", "type": "limit"}, triggered]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,)), plain, 1.0)
    cache.absorb(Send("cancel_all_orders", (SYMBOL, {"trigger": True})), [], 2.0)
    assert _ids(cache) == ["1", "2"]  # both rest as ordinary orders now
    cache.absorb(Send("cancel_all_orders", (SYMBOL,)), [], 3.0)
    assert _ids(cache) == []


def test_a_rest_leverage_that_disagrees_with_one_just_heard_keeps_the_higher_and_reads_again() -> (
    None
):
    # A fetch_leverages (or our own set_leverage's answer) under way while the stream says
    # another client set 50: the REST answer, absorbed last, put the view back to 5.
    cache = MarketCache(RiskLimits())
    cache.absorb(
        Send("fetch_leverages", ()), {SYMBOL: {"longLeverage": 5, "shortLeverage": 5}}, 0.0
    )
    assert cache.leverage_heard(SYMBOL, 50)
    cache.absorb(
        Send("fetch_leverages", ()), {SYMBOL: {"longLeverage": 5, "shortLeverage": 5}}, 1.0
    )
    assert cache.settings[SYMBOL].value["leverage"] == 50.0
    assert cache.settings[SYMBOL].fetched == -math.inf  # due again: the next read settles it
    cache.absorb(Send("set_leverage", (5, SYMBOL)), {}, 1.5)
    assert cache.settings[SYMBOL].value["leverage"] == 50.0
    cache.absorb(
        Send("fetch_leverages", ()), {SYMBOL: {"longLeverage": 7, "shortLeverage": 7}}, 2.0
    )
    assert cache.settings[SYMBOL].value["leverage"] == 7.0  # a read after the doubt: the truth
    assert cache.settings[SYMBOL].fetched == 2.0


def test_a_stop_another_client_placed_heard_on_the_stream_survives_the_next_plain_read() -> None:
    cache = _cache_with_orders()
    streamed = {
        "id": "3", "symbol": SYMBOL, "status": "open", "type": "stop_market",
        "triggerPrice": 8.0, "info": {"aid": 3, "X": "NEW"},
    }  # fmt: skip
    cache.streamed("watch_orders", (SYMBOL,), {}, [streamed], 1.0)
    assert _ids(cache) == ["1", "2", "3"]
    plain = [{"id": "1", "symbol": SYMBOL, "status": "open", "type": "limit"}]
    cache.absorb(Send("fetch_open_orders", (SYMBOL,)), plain, 2.0)
    assert _ids(cache) == ["1", "2", "3"]  # the algo service's: the plain read says nothing


def test_a_cancel_all_of_stops_with_other_params_still_leaves_the_ordinary_orders_counted() -> None:
    # ccxt sends any cancel-all whose params carry trigger=True to the algo route, whatever
    # else they carry: taking it for a plain cancel-all dropped the ordinary orders from the
    # count while they still rested at the venue.
    cache = _cache_with_orders()
    params = {"trigger": True, "recvWindow": 5000}
    cache.absorb(Send("cancel_all_orders", (SYMBOL, params)), [], 1.0)
    assert _ids(cache) == ["1"]
