"""The ladder: pure planning, one executor driven sync and async, against the mock venue
through a real ccxt ``binanceusdm``, and against a recording fake for the failure paths."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ccxt
import pytest

from safeguard._clock import ManualClock
from safeguard._config import KillSwitchConfig
from safeguard.killswitch._ladder import (
    COUNTDOWN_METHODS,
    CancelOrder,
    CancelSymbol,
    LadderReport,
    OpenOrder,
    Position,
    attach_ladder,
    capped_price,
    open_orders_from_ccxt,
    plan_cancels,
    plan_flatten,
    positions_from_ccxt,
    run_ladder,
    run_ladder_async,
)
from safeguard.killswitch._store import MemoryStateStore
from safeguard.killswitch._switch import KillSwitch, SwitchState, TradingState
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._inprocess import inprocess_client

HALTED, REDUCING = TradingState.HALTED, TradingState.REDUCING
ETH, BTC = "ETH/USDT:USDT", "BTC/USDT:USDT"
FLATTEN = KillSwitchConfig(flatten_on_engage=True, venue_countdown_s=30.0)


# --- pure planning ------------------------------------------------------------------------------


def test_capped_price_moves_against_us_and_rounds_towards_the_reference() -> None:
    assert capped_price("sell", 3000.31, 2.0, 0.01) == 2940.31  # 2940.3038 rounded up
    assert capped_price("buy", 90009.0, 2.0, 0.1) == 91809.1  # 91809.18 rounded down
    assert capped_price("sell", 100.0, 1.0, None) == 99.0
    assert capped_price("buy", 100.0, 1.0, None) == 101.0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("sell", float("nan"), 2.0, 0.01), "reference"),
        (("sell", -1.0, 2.0, 0.01), "reference"),
        (("sell", 100.0, 0.0, 0.01), "cap_pct"),
        (("sell", 100.0, 100.0, 0.01), "cap_pct"),
        (("sell", 100.0, 2.0, 0.0), "tick"),
        (("hold", 100.0, 2.0, 0.01), "side"),
    ],
)
def test_capped_price_fails_closed(args: tuple[Any, ...], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        capped_price(*args)


def test_plan_cancels_by_state() -> None:
    orders = [
        OpenOrder("1", ETH, False),
        OpenOrder("2", ETH, True),
        OpenOrder("3", BTC, False),
    ]
    # ETH's reduce-only order protects a position: HALTED keeps it and cancels around it.
    assert plan_cancels(HALTED, orders) == [CancelSymbol(BTC), CancelOrder(ETH, "1")]
    assert plan_cancels(REDUCING, orders) == [CancelOrder(BTC, "3"), CancelOrder(ETH, "1")]
    assert plan_cancels(TradingState.ACTIVE, orders) == []


def test_plan_flatten_sides_references_and_missing_prices() -> None:
    positions = [
        Position(ETH, "long", 1.5, mark=2990.0),
        Position(BTC, "short", 0.2),
        Position("SOL/USDT:USDT", "long", 3.0),
    ]
    quotes = {ETH: {"bid": 3000.0, "ask": 3001.0}, BTC: {"bid": None, "last": 50000.0}}
    orders, problems = plan_flatten(positions, quotes, cap_pct=1.0, ticks={ETH: 0.5})
    assert [(o.symbol, o.side, o.amount, o.reference, o.limit_price) for o in orders] == [
        (ETH, "sell", 1.5, 3000.0, 2970.0),
        (BTC, "buy", 0.2, 50000.0, 50500.0),
    ]
    assert list(problems) == ["SOL/USDT:USDT"]  # no price at all: never sent uncapped


def test_ccxt_shapes_are_validated() -> None:
    assert positions_from_ccxt(
        [{"symbol": ETH, "side": "short", "contracts": -2.0, "markPrice": 10.0},
         {"symbol": BTC, "side": None, "contracts": 0}]
    ) == [Position(ETH, "short", 2.0, 10.0)]  # fmt: skip
    with pytest.raises(ValueError, match=r"positions\[0\]\.contracts"):
        positions_from_ccxt([{"symbol": ETH, "side": "long", "contracts": float("inf")}])
    with pytest.raises(ValueError, match=r"positions\[0\]\.side"):
        positions_from_ccxt([{"symbol": ETH, "side": "up", "contracts": 1}])
    with pytest.raises(ValueError, match=r"open_orders\[0\]\.id"):
        open_orders_from_ccxt([{"symbol": ETH, "id": None}])
    with pytest.raises(ValueError, match="open_orders"):
        open_orders_from_ccxt("not a list")


# --- against the mock venue, through real ccxt -------------------------------------------------


def seeded_venue() -> Venue:
    venue = Venue(VenueConfig(symbols=("ETHUSDT", "BTCUSDT")), clock=ManualClock(1.7e9))
    venue.create_account("key", "secret", wallet=50_000.0)
    return venue


def open_book(exchange: Any) -> None:
    exchange.load_markets()
    exchange.create_order(ETH, "market", "buy", 1.0)
    exchange.create_order(BTC, "market", "sell", 0.01)
    last = exchange.fetch_ticker(ETH)["last"]
    exchange.create_order(ETH, "limit", "buy", 0.5, round(last * 0.9, 2))
    exchange.create_order(BTC, "limit", "buy", 0.001, 50_000.0, {"reduceOnly": True})


def summary(report: LadderReport) -> list[tuple[str, str | None, str]]:
    return [(o.rung, o.symbol, o.status) for o in report.outcomes]


def test_halted_ladder_on_the_venue_arms_the_timer_cancels_and_flattens() -> None:
    venue = seeded_venue()
    exchange = inprocess_client(venue, "key", "secret")
    open_book(exchange)
    assert len(exchange.fetch_open_orders(ETH)) == 1

    report = run_ladder(exchange, FLATTEN, HALTED, sleep=venue.advance)

    assert report.ok
    assert summary(report) == [
        ("countdown", BTC, "done"),
        ("countdown", ETH, "done"),
        ("cancel", ETH, "done"),  # BTC's reduce-only order is kept until BTC is flat
        ("flatten", None, "done"),
        ("cleanup", BTC, "done"),
    ]
    assert exchange.fetch_open_orders(ETH) == []
    assert exchange.fetch_open_orders(BTC) == []
    assert [p for p in exchange.fetch_positions() if p["contracts"]] == []


def test_reducing_ladder_keeps_reduce_only_orders_and_positions() -> None:
    venue = seeded_venue()
    exchange = inprocess_client(venue, "key", "secret")
    open_book(exchange)

    report = run_ladder(exchange, FLATTEN, REDUCING, sleep=venue.advance)

    assert report.ok
    assert summary(report) == [("cancel", ETH, "done")]  # no timer, no flatten
    assert exchange.fetch_open_orders(ETH) == []
    remaining = exchange.fetch_open_orders(BTC)
    assert [o["reduceOnly"] for o in remaining] == [True]
    assert len([p for p in exchange.fetch_positions() if p["contracts"]]) == 2


async def test_the_same_ladder_drives_an_async_ccxt_exchange() -> None:
    venue = seeded_venue()
    sync_exchange = inprocess_client(venue, "key", "secret")
    open_book(sync_exchange)
    exchange = inprocess_client(venue, "key", "secret", asyncio=True)
    try:
        await exchange.load_markets()
        report = await run_ladder_async(exchange, FLATTEN, HALTED)
        assert report.ok
        assert [o[0] for o in summary(report)] == [
            "countdown", "countdown", "cancel", "flatten", "cleanup"
        ]  # fmt: skip
        assert await exchange.fetch_open_orders(ETH) == []
        assert [p for p in await exchange.fetch_positions() if p["contracts"]] == []
    finally:
        await exchange.close()


def test_attach_ladder_runs_once_per_engagement_including_another_processes(
    tmp_path: Any,
) -> None:
    venue = seeded_venue()
    exchange = inprocess_client(venue, "key", "secret")
    open_book(exchange)
    config = KillSwitchConfig(state_dir=tmp_path, flatten_on_engage=True)
    reports: list[LadderReport] = []
    done = threading.Event()

    def on_report(report: LadderReport) -> None:
        reports.append(report)
        done.set()

    with KillSwitch(config, watch=False) as switch:
        attach_ladder(switch, exchange, on_report=on_report)
        KillSwitch(config, watch=False).engage("operator", by="alice")  # another "process"
        switch.refresh()
        assert done.wait(30)
        switch.refresh()  # seeing the same engagement again does not rerun it
        switch.engage("again", by="bot")
    assert len(reports) == 1
    assert reports[0].ok
    assert [p for p in exchange.fetch_positions() if p["contracts"]] == []


# --- a recording fake for the failure paths ----------------------------------------------------


class Fake:
    """Records every call; ``fail`` maps a method to exceptions raised before it works."""

    id = "fakeexchange"
    precisionMode = 4  # noqa: N815 (ccxt's attribute name)

    def __init__(self, positions: list[dict[str, Any]], **fail: list[Exception]) -> None:
        self.positions = positions
        self.fail = fail
        self.calls: list[tuple[Any, ...]] = []
        self.has: dict[str, Any] = {}
        self.options: dict[str, Any] = {"fetchOpenOrders": {"warnWithoutSymbol": True}}
        self.fill_ratio = 1.0

    def _call(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        if self.fail.get(name):
            raise self.fail[name].pop(0)

    def fetch_open_orders(self, *args: Any) -> list[dict[str, Any]]:
        self._call("fetch_open_orders", *args)
        assert self.options["fetchOpenOrders"]["warnWithoutSymbol"] is False
        conditional = args[3:] == ({"trigger": True},)
        return [] if conditional else [{"id": "1", "symbol": ETH, "reduceOnly": False}]

    def fetch_positions(self) -> list[dict[str, Any]]:
        self._call("fetch_positions")
        return [dict(p) for p in self.positions if p["contracts"]]

    def fetch_ticker(self, symbol: str) -> dict[str, Any]:
        self._call("fetch_ticker", symbol)
        return {"bid": 100.0, "ask": 100.5} if symbol == ETH else {}

    def market(self, symbol: str) -> dict[str, Any]:
        return {"id": symbol.split("/", maxsplit=1)[0] + "USDT", "precision": {"price": 0.5}}

    def cancel_all_orders(self, symbol: str) -> None:
        self._call("cancel_all_orders", symbol)

    def cancel_all_orders_after(self, millis: int) -> None:
        self._call("cancel_all_orders_after", millis)

    def create_order(self, *args: Any) -> dict[str, Any]:
        self._call("create_order", *args)
        symbol, _, _, amount = args[:4]
        for position in self.positions:
            if position["symbol"] == symbol:
                position["contracts"] = round(position["contracts"] - amount * self.fill_ratio, 8)
        return {"id": "x"}


class AsyncFake:
    """The same fake behind coroutines, as ``ccxt.async_support`` presents itself."""

    def __init__(self, fake: Fake) -> None:
        self._fake = fake

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._fake, name)
        if not callable(value) or name == "market":
            return value

        async def call(*args: Any) -> Any:
            await asyncio.sleep(0)
            return value(*args)

        return call


async def no_sleep(seconds: float) -> None:
    await asyncio.sleep(0)


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest) -> Any:
    def sync_drive(fake: Fake, config: KillSwitchConfig, state: Any) -> LadderReport:
        return run_ladder(fake, config, state, sleep=lambda s: None)

    def async_drive(fake: Fake, config: KillSwitchConfig, state: Any) -> LadderReport:
        return asyncio.run(run_ladder_async(AsyncFake(fake), config, state, sleep=no_sleep))

    return sync_drive if request.param == "sync" else async_drive


def long_eth(contracts: float = 2.0) -> list[dict[str, Any]]:
    return [{"symbol": ETH, "side": "long", "contracts": contracts, "markPrice": 100.2}]


def test_flatten_caps_the_price_and_marks_orders_reduce_only(drive: Any) -> None:
    fake = Fake(long_eth())
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True), HALTED)
    assert report.ok
    (order,) = [c for c in fake.calls if c[0] == "create_order"]
    _, symbol, kind, side, amount, price, params = order
    assert (symbol, kind, side, amount, price) == (ETH, "limit", "sell", 2.0, 98.0)
    assert params["reduceOnly"] is True
    assert params["timeInForce"] == "IOC"
    assert params["clientOrderId"].startswith("sg-kill-")
    assert len(params["clientOrderId"]) <= 36


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_flatten_ids_are_stamped_from_the_callers_clock_not_the_system_clock(mode: str) -> None:
    # 1,000 s is 1,000,000 ms, "lfls" in base 36; the wall clock would stamp today's date.
    clock = ManualClock(start=1_000.0)
    fake = Fake(long_eth())
    config = KillSwitchConfig(flatten_on_engage=True)
    if mode == "sync":
        report = run_ladder(fake, config, HALTED, sleep=lambda s: None, clock=clock)
    else:
        report = asyncio.run(
            run_ladder_async(AsyncFake(fake), config, HALTED, sleep=no_sleep, clock=clock)
        )
    assert report.ok
    (order,) = [c for c in fake.calls if c[0] == "create_order"]
    assert order[-1]["clientOrderId"] == "sg-kill-lfls-1-0"


def test_partial_fills_are_retried_up_to_the_bound_then_reported(drive: Any) -> None:
    fake = Fake(long_eth(8.0))
    fake.fill_ratio = 0.5
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True, flatten_max_attempts=3), HALTED)
    sent = [c[4] for c in fake.calls if c[0] == "create_order"]
    assert sent == [8.0, 4.0, 2.0]  # each round sends only what is still open
    assert not report.ok
    assert report.outcomes[-1].status == "failed"
    assert "ETH/USDT:USDT long 1" in report.outcomes[-1].detail


def test_flatten_send_failures_are_retried_by_the_next_round(drive: Any) -> None:
    fake = Fake(long_eth(), create_order=[ccxt.RequestTimeout("timed out")])
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True), HALTED)
    assert report.ok
    assert len([c for c in fake.calls if c[0] == "create_order"]) == 2


def test_unified_cancel_timer_is_used_where_the_exchange_has_it(drive: Any) -> None:
    fake = Fake([])
    fake.has = {"cancelAllOrdersAfter": True}
    report = drive(fake, KillSwitchConfig(venue_countdown_s=12.5), HALTED)
    assert ("cancel_all_orders_after", 12_500) in fake.calls
    assert summary(report)[0] == ("countdown", None, "done")


def test_no_cancel_timer_is_not_offered_not_a_failure(drive: Any) -> None:
    fake = Fake([])
    report = drive(fake, KillSwitchConfig(venue_countdown_s=10.0), HALTED)
    assert report.ok
    assert summary(report)[0] == ("countdown", None, "not offered")


@pytest.mark.parametrize(
    "error",
    [ccxt.NotSupported("no"), ccxt.ExchangeNotAvailable("binanceusdm POST /x 404 Not Found")],
)
def test_a_venue_without_the_endpoint_reports_not_offered(drive: Any, error: Exception) -> None:
    fake = Fake(long_eth())
    fake.id = "binanceusdm"
    method = COUNTDOWN_METHODS["binanceusdm"]
    setattr(fake, method, lambda params: fake._call(method, params))
    fake.fail[method] = [error] * 3
    report = drive(fake, KillSwitchConfig(venue_countdown_s=10.0), HALTED)
    assert summary(report)[0] == ("countdown", ETH, "not offered")
    assert report.ok


def test_reads_are_retried_and_a_dead_venue_is_reported_not_raised(drive: Any) -> None:
    down = [ccxt.ExchangeNotAvailable("down")] * 3
    fake = Fake(long_eth(), fetch_open_orders=list(down), fetch_positions=list(down))
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True), HALTED)
    assert not report.ok
    assert [c[0] for c in fake.calls].count("fetch_open_orders") == 3
    assert ("cancel", None, "failed") in summary(report)
    assert ("flatten", None, "failed") in summary(report)
    assert not any(c[0] == "create_order" for c in fake.calls)


def test_no_price_no_order(drive: Any) -> None:
    fake = Fake([{"symbol": BTC, "side": "short", "contracts": 1.0, "markPrice": None}])
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True), HALTED)
    assert ("flatten", BTC, "failed") in summary(report)
    assert not any(c[0] == "create_order" for c in fake.calls)


def test_active_runs_nothing(drive: Any) -> None:
    fake = Fake(long_eth())
    state = SwitchState(TradingState.ACTIVE, "", "", "", 1.0)
    report = drive(fake, KillSwitchConfig(flatten_on_engage=True), state)
    assert (fake.calls, summary(report)) == ([], [("ladder", None, "skipped")])


def test_listener_in_a_loop_runs_the_async_ladder(tmp_path: Any) -> None:
    fake = Fake(long_eth())
    reports: list[LadderReport] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        switch = KillSwitch(KillSwitchConfig(flatten_on_engage=True), store=MemoryStateStore(),
                            watch=False)  # fmt: skip

        def on_report(report: LadderReport) -> None:
            reports.append(report)
            done.set()

        attach_ladder(switch, AsyncFake(fake), loop=loop, on_report=on_report)
        await asyncio.to_thread(switch.engage, "stop", by="pytest")
        await asyncio.wait_for(done.wait(), 30)

    asyncio.run(main())
    assert [r.ok for r in reports] == [True]
    assert fake.positions[0]["contracts"] == 0
