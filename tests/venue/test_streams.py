"""The venue's websocket streams as Binance defines them: protocol, payloads, sequence rules,
the user-data stream's events, and stream faults.

Most tests drive the sans-IO :class:`~safeguard.venue._streams.StreamHub` directly (a session
is its outbox), on simulated time; the last few go over a real loopback websocket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from safeguard._clock import ManualClock
from safeguard.venue._dialect import Dialect, Request
from safeguard.venue._engine import Venue
from safeguard.venue._faults import FaultPlan
from safeguard.venue._ratelimit import RateLimits
from safeguard.venue._server import VenueServer
from safeguard.venue._streams import LISTEN_KEY_TTL_S, StreamRefused, StreamSession, parse_stream

STEP_S = 5.0
START = 1_750_000_000.0
KEY, SECRET = "stream-test-key", "stream-test-secret"


@pytest.fixture
def venue() -> Venue:
    # A fixed start, 100 s into a 5-minute candle: from the wall clock, one run in sixty
    # crossed a candle's end inside a test's 10 s and saw two kline messages.
    venue = Venue(clock=ManualClock(START))
    venue.create_account(KEY, SECRET, wallet=10_000.0)
    return venue


@pytest.fixture
def dialect(venue: Venue) -> Dialect:
    return Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))


def drain(session: StreamSession) -> list[Any]:
    out = [json.loads(text) for text in session.outbox]
    session.outbox.clear()
    return out


def data(messages: list[Any]) -> list[Any]:
    """Payloads with any combined-stream wrapper taken off, acks left out."""
    return [m["data"] if "stream" in m else m for m in messages if "id" not in m]


def subscribe(dialect: Dialect, session: StreamSession, *names: str, request_id: int = 1) -> Any:
    message = {"method": "SUBSCRIBE", "params": list(names), "id": request_id}
    dialect.streams.receive(session, json.dumps(message))
    return drain(session)


def rest(dialect: Dialect, method: str, path: str, query: str = "") -> Any:
    answer = dialect.handle(Request(method, path, query, headers={"X-MBX-APIKEY": KEY}))
    return answer.status, answer.json()


def listen_key(dialect: Dialect) -> str:
    status, body = rest(dialect, "POST", "/fapi/v1/listenKey")
    assert status == 200
    return str(body["listenKey"])


def events(session: StreamSession, kind: str) -> list[Any]:
    return [m for m in data(drain(session)) if m.get("e") == kind]


# --- connecting and subscribing ---------------------------------------------------------------


def test_subscribe_unsubscribe_and_list_are_acknowledged(dialect: Dialect) -> None:
    hub = dialect.streams
    session = hub.connect("/public/ws/0")
    assert subscribe(dialect, session, "btcusdt@depth@100ms", "btcusdt@bookTicker") == [
        {"result": None, "id": 1}
    ]
    hub.receive(session, '{"method":"LIST_SUBSCRIPTIONS","id":2}')
    assert drain(session) == [{"result": ["btcusdt@depth@100ms", "btcusdt@bookTicker"], "id": 2}]
    hub.receive(session, '{"method":"UNSUBSCRIBE","params":["btcusdt@bookTicker"],"id":3}')
    hub.receive(session, '{"method":"LIST_SUBSCRIPTIONS","id":4}')
    assert drain(session) == [
        {"result": None, "id": 3},
        {"result": ["btcusdt@depth@100ms"], "id": 4},
    ]


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", 3),
        ('{"method":"SUBSCRIBE","params":["nosuchcoin@depth"],"id":5}', 2),
        ('{"method":"SUBSCRIBE","params":["btcusdt@depth@7ms"],"id":5}', 2),
        ('{"method":"SUBSCRIBE","params":"btcusdt@depth","id":5}', 2),
        ('{"method":"FLY","id":5}', 1),
    ],
)
def test_bad_frames_get_binance_errors_and_change_nothing(
    dialect: Dialect, frame: str, code: int
) -> None:
    session = dialect.streams.connect("/ws")
    dialect.streams.receive(session, frame)
    [answer] = drain(session)
    assert answer["error"]["code"] == code
    assert session.streams == {}


def test_more_than_ten_frames_a_second_closes_the_connection(
    dialect: Dialect, venue: Venue
) -> None:
    # Counted on the wall clock, as Binance counts: the venue's simulated clock stepping a
    # second between frames does not reset the window (it let any burst through on paper).
    session = dialect.streams.connect("/ws")
    for request_id in range(10):
        dialect.streams.receive(session, f'{{"method":"LIST_SUBSCRIPTIONS","id":{request_id}}}')
    time.sleep(1.05)  # a new second of real time: the window is empty again
    for request_id in range(10):
        dialect.streams.receive(session, f'{{"method":"LIST_SUBSCRIPTIONS","id":{request_id}}}')
        venue.advance(1)  # simulated seconds pass between frames; real ones do not
    assert session.close_code is None
    assert len(drain(session)) == 20
    dialect.streams.receive(session, '{"method":"LIST_SUBSCRIPTIONS","id":99}')
    assert session.close_code == 1008
    assert drain(session) == []  # the eleventh frame is not answered


def test_a_frame_nested_deeper_than_the_stack_is_an_invalid_json_error(dialect: Dialect) -> None:
    session = dialect.streams.connect("/ws")
    dialect.streams.receive(session, "[" * 100_000 + "]" * 100_000)
    [answer] = drain(session)
    assert answer["error"]["code"] == 3
    assert session.close_code is None


def test_stream_names_parse_as_binance_spells_them(venue: Venue) -> None:
    markets = venue.markets
    assert parse_stream("btcusdt@depth20@100ms", markets).param == "20"  # type: ignore[union-attr]
    assert parse_stream("BTCUSDT@bookTicker", markets).kind == "bookTicker"  # type: ignore[union-attr]
    assert parse_stream("!markPrice@arr@1s", markets).param == "1s"  # type: ignore[union-attr]
    assert parse_stream("btcusdt@kline_15m", markets).param == "15m"  # type: ignore[union-attr]
    assert parse_stream("!forceOrder@arr", markets).symbol is None  # type: ignore[union-attr]
    for bad in ("btcusdt@kline_7m", "btcusdt", "@depth", "btcusdt@depth@1s", "!depth@arr"):
        assert parse_stream(bad, markets) is None, bad


def test_a_stream_on_the_wrong_path_is_acknowledged_and_silent(
    dialect: Dialect, venue: Venue
) -> None:
    wrong = dialect.streams.connect("/market/ws")
    right = dialect.streams.connect("/public/ws")
    assert subscribe(dialect, wrong, "btcusdt@depth") == [{"result": None, "id": 1}]
    subscribe(dialect, right, "btcusdt@depth")
    venue.advance(STEP_S)
    dialect.tick()
    assert drain(wrong) == []
    assert [m["e"] for m in drain(right)] == ["depthUpdate"]


def test_combined_streams_wrap_payloads_with_their_name(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/stream", "streams=btcusdt@depth/btcusdt@bookTicker")
    venue.advance(STEP_S)
    dialect.tick()
    names = {m["stream"]: m["data"]["e"] for m in drain(session)}
    assert names == {"btcusdt@depth": "depthUpdate", "btcusdt@bookTicker": "bookTicker"}


def test_unknown_paths_and_listen_keys_are_refused(dialect: Dialect) -> None:
    with pytest.raises(StreamRefused) as refused:
        dialect.streams.connect("/private/ws", "listenKey=nope")
    assert refused.value.status == 400
    assert json.loads(refused.value.body)["code"] == -1125
    with pytest.raises(StreamRefused):
        dialect.streams.connect("/fapi/v1/ws")
    with pytest.raises(StreamRefused, match="Invalid stream name"):
        dialect.streams.connect("/ws/btcusdt@nothing")
    assert dialect.streams.sessions == []


def test_a_stream_nobody_watched_restarts_from_now(dialect: Dialect, venue: Venue) -> None:
    first = dialect.streams.connect("/public/ws")
    subscribe(dialect, first, "btcusdt@trade", "btcusdt@bookTicker")
    venue.advance(STEP_S)
    dialect.tick()
    dialect.streams.disconnect(first)
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.5)
    venue.advance(STEP_S)  # trades printed while nobody watched
    second = dialect.streams.connect("/public/ws")
    subscribe(dialect, second, "btcusdt@trade", "btcusdt@bookTicker")
    dialect.tick()
    shown = data(drain(second))
    assert [m["e"] for m in shown] == ["bookTicker"]  # the current top, and no old trades
    [top] = venue.book_ticker("BTCUSDT")
    assert (shown[0]["b"], shown[0]["a"]) == (top["bidPrice"], top["askPrice"])
    venue.place_order(KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.01)
    dialect.tick()
    assert [m["e"] for m in data(drain(second))][:1] == ["trade"]


# --- depth: the U / u / pu rules keep a snapshot-plus-diff book exact --------------------------


def apply(book: dict[str, dict[float, float]], update: dict[str, Any]) -> None:
    for side, key in (("bids", "b"), ("asks", "a")):
        for price, qty in update[key]:
            if float(qty):
                book[side][float(price)] = float(qty)
            else:
                book[side].pop(float(price), None)


def as_book(raw: dict[str, Any]) -> dict[str, dict[float, float]]:
    return {side: {float(p): float(q) for p, q in raw[side]} for side in ("bids", "asks")}


@pytest.mark.parametrize("seed", range(6))
def test_any_snapshot_plus_the_diffs_after_it_is_the_book(
    dialect: Dialect, venue: Venue, seed: int
) -> None:
    """Snapshots at random moments (between and within steps, with orders resting and
    trading), each brought forward with the diffs Binance's rules let it apply, all end at
    the venue's book; and the diffs chain: each ``pu`` is the previous ``u``."""
    rng = random.Random(seed)
    session = dialect.streams.connect("/public/ws")
    subscribe(dialect, session, "btcusdt@depth@100ms")
    books: list[tuple[int, dict[str, dict[float, float]]]] = []
    updates: list[dict[str, Any]] = []
    resting: list[int] = []
    for _ in range(40):
        action = rng.random()
        if action < 0.3:
            venue.advance(STEP_S)
        elif action < 0.5:
            side = rng.choice(["BUY", "SELL"])
            venue.place_order(KEY, symbol="BTCUSDT", side=side, type="MARKET", quantity=0.05)
        elif action < 0.7:
            top = venue.depth("BTCUSDT", 5)
            price = float(top["bids"][rng.randrange(3)][0]) + 0.1 * rng.randrange(1, 50)
            order = venue.place_order(
                KEY, symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.01,
                price=round(min(price, float(top["asks"][0][0]) - 0.1), 1), time_in_force="GTX",
            )  # fmt: skip
            resting.append(order["orderId"])
        elif action < 0.8 and resting:
            order_id = resting.pop(rng.randrange(len(resting)))
            if venue.get_order(KEY, symbol="BTCUSDT", order_id=order_id)["status"] == "NEW":
                venue.cancel_order(KEY, symbol="BTCUSDT", order_id=order_id)
        else:
            status, snapshot = rest(dialect, "GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=1000")
            assert status == 200
            books.append((snapshot["lastUpdateId"], as_book(snapshot)))
        if rng.random() < 0.5:
            dialect.tick()
            updates += [m for m in drain(session) if m.get("e") == "depthUpdate"]
    dialect.tick()
    updates += [m for m in drain(session) if m.get("e") == "depthUpdate"]
    for before, after in itertools.pairwise(updates):
        assert after["pu"] == before["u"]
        assert after["U"] == before["u"] + 1
    final = as_book(venue.depth("BTCUSDT", 1000))
    assert books, "the walk took no snapshot"
    for snapshot_id, book in books:
        nonce = snapshot_id
        for update in updates:
            if update["u"] < nonce:
                continue  # Binance: drop what the snapshot already holds
            assert update["U"] <= nonce or update["pu"] == nonce
            apply(book, update)
            nonce = update["u"]
        assert book == final


def test_partial_depth_sends_the_top_levels_when_they_change(
    dialect: Dialect, venue: Venue
) -> None:
    session = dialect.streams.connect("/public/ws")
    subscribe(dialect, session, "btcusdt@depth5@100ms")
    venue.advance(STEP_S)
    dialect.tick()
    [update] = data(drain(session))
    top = venue.depth("BTCUSDT", 5)
    assert (update["b"], update["a"]) == (top["bids"], top["asks"])
    dialect.tick()
    assert drain(session) == []  # nothing moved


# --- market payloads --------------------------------------------------------------------------


def test_market_payloads_carry_the_venues_figures(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/market/ws")
    subscribe(
        dialect, session, "btcusdt@markPrice@1s", "btcusdt@aggTrade", "btcusdt@miniTicker",
        "btcusdt@ticker", "btcusdt@kline_5m", "!markPrice@arr",
    )  # fmt: skip
    venue.advance(STEP_S)
    dialect.tick()
    drain(session)  # the first round: the tape starts now
    order = venue.place_order(KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.2)
    venue.advance(STEP_S)
    dialect.tick()
    by_kind: dict[str, list[Any]] = {}
    for message in data(drain(session)):
        kind = message[0]["e"] + "@arr" if isinstance(message, list) else message["e"]
        by_kind.setdefault(kind, []).append(message)
    premium = venue.premium_index("BTCUSDT")
    assert isinstance(premium, dict)
    [mark] = by_kind["markPriceUpdate"]
    assert (mark["p"], mark["i"], mark["r"], mark["T"]) == (
        premium["markPrice"],
        premium["indexPrice"],
        premium["lastFundingRate"],
        premium["nextFundingTime"],
    )
    [every] = by_kind["markPriceUpdate@arr"]
    assert {row["s"] for row in every} == set(venue.markets)
    trades = by_kind["aggTrade"]
    assert sum(float(t["q"]) for t in trades) == pytest.approx(float(order["executedQty"]))
    assert all(t["m"] for t in trades)  # a market sell: the buyer was the maker
    ticker = venue.ticker_24h("BTCUSDT")
    [full] = by_kind["24hrTicker"]
    assert (full["c"], full["h"], full["v"], full["n"]) == (
        ticker["lastPrice"],
        ticker["highPrice"],
        ticker["volume"],
        ticker["count"],
    )
    [mini] = by_kind["24hrMiniTicker"]
    assert mini["c"] == ticker["lastPrice"]
    [kline] = by_kind["kline"]
    assert kline["k"]["i"] == "5m"
    assert kline["k"]["t"] % 300_000 == 0
    assert kline["k"]["T"] == kline["k"]["t"] + 299_999
    assert kline["k"]["c"] == ticker["lastPrice"]


def test_time_moving_within_a_step_publishes_what_fell_due_at_once(
    dialect: Dialect, venue: Venue
) -> None:
    """The mark's 1 s cadence is finer than the engine's step: advancing the venue by 1 s
    (no step falls due) still publishes that second's mark, without waiting for anyone's tick
    (in process, a socket's tick is a 0.1 s wall-clock poll: the event would wait for it)."""
    session = dialect.streams.connect("/market/ws")
    subscribe(dialect, session, "btcusdt@markPrice@1s")
    venue.advance(STEP_S)
    dialect.tick()
    drain(session)
    for _ in range(int(STEP_S) - 1):
        venue.advance(1.0)
        [mark] = data(drain(session))
        assert mark["E"] == int(venue.clock.time() * 1000)


def test_a_kline_is_closed_when_its_interval_ends(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/market/ws")
    subscribe(dialect, session, "btcusdt@kline_1m")
    venue.advance(STEP_S)
    dialect.tick()
    [first] = data(drain(session))
    assert first["k"]["x"] is False
    venue.advance(60)
    dialect.tick()
    closed, current = data(drain(session))
    assert closed["k"]["x"] is True
    assert current["k"]["x"] is False
    assert closed["k"]["t"] == current["k"]["t"] - 60_000
    assert current["k"]["t"] > first["k"]["t"]


# --- the user-data stream ---------------------------------------------------------------------


def test_listen_key_lifecycle(dialect: Dialect, venue: Venue) -> None:
    key = listen_key(dialect)
    assert listen_key(dialect) == key  # a live key is reused (and extended)
    assert rest(dialect, "PUT", "/fapi/v1/listenKey") == (200, {"listenKey": key})
    assert rest(dialect, "PUT", "/fapi/v1/listenKey", f"listenKey={key}")[0] == 200
    assert rest(dialect, "DELETE", "/fapi/v1/listenKey") == (200, {})
    status, body = rest(dialect, "PUT", "/fapi/v1/listenKey")
    assert (status, body["code"]) == (400, -1125)
    answer = dialect.handle(Request("POST", "/fapi/v1/listenKey"))
    assert (answer.status, answer.json()["code"]) == (401, -2014)


def test_a_listen_key_not_kept_alive_expires_after_an_hour(dialect: Dialect, venue: Venue) -> None:
    key = listen_key(dialect)
    session = dialect.streams.connect("/private/ws", f"listenKey={key}")
    venue.advance(LISTEN_KEY_TTL_S - 10)
    rest(dialect, "PUT", "/fapi/v1/listenKey")  # kept alive: a fresh hour from here
    venue.advance(LISTEN_KEY_TTL_S - 10)
    dialect.tick()
    assert drain(session) == []
    venue.advance(20)
    dialect.tick()
    [expired] = drain(session)
    assert expired["e"] == "listenKeyExpired"
    assert expired["listenKey"] == key
    assert expired["E"] == int(venue.clock.time() * 1000)
    assert session.close_code == 1000
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert drain(session) == []


def test_a_market_order_streams_new_then_its_fills_then_the_account(
    dialect: Dialect, venue: Venue
) -> None:
    venue.create_account("whale", "whale-secret", wallet=1_000_000.0)
    key = dialect.listen_keys.create("whale", venue.clock.time())
    session = dialect.streams.connect("/private/ws", f"listenKey={key}")
    venue.advance(STEP_S)
    now_ms = int(venue.clock.time() * 1000)
    venue.place_order("whale", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=8.0)
    messages = drain(session)
    updates = [m for m in messages if m["e"] == "ORDER_TRADE_UPDATE"]
    assert next((u["o"]["x"], u["o"]["X"]) for u in updates) == ("NEW", "NEW")
    trades = updates[1:]
    assert len(trades) >= 2  # 8 BTC sweep more than one level
    assert [u["o"]["x"] for u in trades] == ["TRADE"] * len(trades)
    assert [u["o"]["X"] for u in trades] == ["PARTIALLY_FILLED"] * (len(trades) - 1) + ["FILLED"]
    fills = venue.user_trades("whale", symbol="BTCUSDT")
    assert [(u["o"]["t"], u["o"]["L"], u["o"]["l"]) for u in trades] == [
        (f["id"], f["price"], f["qty"]) for f in fills
    ]
    assert [u["o"]["n"] for u in trades] == [f["commission"] for f in fills]
    cumulative = 0.0
    for update in trades:
        cumulative += float(update["o"]["l"])
        assert float(update["o"]["z"]) == pytest.approx(cumulative)
    assert all(u["E"] == u["T"] == now_ms for u in updates)
    accounts = [m for m in messages if m["e"] == "ACCOUNT_UPDATE"]
    assert accounts, "no ACCOUNT_UPDATE after the fills"
    last = accounts[-1]["a"]
    assert last["m"] == "ORDER"
    assert float(last["B"][0]["wb"]) == pytest.approx(venue.wallet("whale"), abs=1e-8)
    [leg] = last["P"]
    assert (leg["s"], leg["pa"], leg["ps"]) == ("BTCUSDT", "8.000", "BOTH")


def test_a_closing_fill_reports_its_realized_pnl(dialect: Dialect, venue: Venue) -> None:
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    venue.advance(600)
    session = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    venue.place_order(KEY, symbol="BTCUSDT", side="SELL", type="MARKET", quantity=0.1)
    trades = [m["o"] for m in events(session, "ORDER_TRADE_UPDATE") if m["o"]["x"] == "TRADE"]
    fills = venue.user_trades(KEY, symbol="BTCUSDT")[-len(trades) :]
    assert [t["rp"] for t in trades] == [f"{float(f['realizedPnl']):.8f}" for f in fills]
    assert any(float(t["rp"]) != 0 for t in trades)


def test_resting_limit_and_cancel_stream_new_and_canceled(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/ws", "")
    key = listen_key(dialect)
    subscribe(dialect, session, key)  # the official connector's way: SUBSCRIBE the key
    bid = float(venue.depth("BTCUSDT", 5)["bids"][-1][0])
    order = venue.place_order(
        KEY, symbol="BTCUSDT", side="BUY", type="LIMIT", quantity=0.1, price=bid,
        time_in_force="GTC",
    )  # fmt: skip
    venue.cancel_order(KEY, symbol="BTCUSDT", order_id=order["orderId"])
    updates = events(session, "ORDER_TRADE_UPDATE")
    assert [(u["o"]["x"], u["o"]["X"], u["o"]["i"]) for u in updates] == [
        ("NEW", "NEW", order["orderId"]),
        ("CANCELED", "CANCELED", order["orderId"]),
    ]
    assert updates[0]["o"]["p"] == order["price"]


def test_conditional_orders_stream_algo_updates(dialect: Dialect, venue: Venue) -> None:
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    session = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    mark = venue.mark_price("BTCUSDT")
    stop = venue.place_order(
        KEY, symbol="BTCUSDT", side="SELL", type="STOP_MARKET", quantity=0.1,
        stop_price=round(mark * 0.995, 1), reduce_only=True, working_type="MARK_PRICE",
    )  # fmt: skip
    [new] = events(session, "ALGO_UPDATE")
    assert (new["o"]["aid"], new["o"]["X"], new["o"]["tp"]) == (
        stop["orderId"],
        "NEW",
        stop["stopPrice"],
    )
    venue.spike("BTCUSDT", -3.0, duration_s=600)
    for _ in range(50):
        if venue.get_order(KEY, symbol="BTCUSDT", order_id=stop["orderId"])["status"] != "NEW":
            break
        venue.advance(STEP_S)
    messages = data(drain(session))
    algo = [m["o"]["X"] for m in messages if m["e"] == "ALGO_UPDATE"]
    assert algo == ["TRIGGERED", "FINISHED"]
    trades = [m["o"] for m in messages if m["e"] == "ORDER_TRADE_UPDATE"]
    assert trades
    assert trades[-1]["X"] == "FILLED"
    assert {t["i"] for t in trades} == {stop["orderId"]}


def test_leverage_margin_type_and_funding_stream_account_events(
    dialect: Dialect, venue: Venue
) -> None:
    session = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    venue.set_leverage(KEY, symbol="ETHUSDT", leverage=7)
    venue.set_margin_type(KEY, symbol="ETHUSDT", margin_type="ISOLATED")
    config, margin = data(drain(session))
    assert config["e"] == "ACCOUNT_CONFIG_UPDATE"
    assert config["ac"] == {"s": "ETHUSDT", "l": 7}
    assert (margin["e"], margin["a"]["m"]) == ("ACCOUNT_UPDATE", "MARGIN_TYPE_CHANGE")

    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.5)
    drain(session)
    premium = venue.premium_index("BTCUSDT")
    assert isinstance(premium, dict)
    before = venue.wallet_units(KEY)
    venue.advance(premium["nextFundingTime"] / 1000 - venue.clock.time() + STEP_S)
    [funding] = [m for m in events(session, "ACCOUNT_UPDATE") if m["a"]["m"] == "FUNDING_FEE"]
    paid = venue.wallet_units(KEY) - before
    assert float(funding["a"]["B"][0]["bc"]) == pytest.approx(paid / 1e8, abs=1e-8)
    assert float(funding["a"]["B"][0]["wb"]) == pytest.approx(venue.wallet(KEY), abs=1e-8)
    assert funding["T"] == funding["E"] == premium["nextFundingTime"]  # the funding time


def test_a_position_near_liquidation_gets_one_margin_call_then_is_liquidated(
    dialect: Dialect, venue: Venue
) -> None:
    venue.create_account("thin", "thin-secret", wallet=150.0)
    status, body = (
        dialect.handle(
            Request("POST", "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": "thin"})
        ).status,
        None,
    )
    session = dialect.streams.connect(
        "/private/ws", f"listenKey={dialect.listen_keys.create('thin', venue.clock.time())}"
    )
    assert status == 200
    assert body is None
    venue.set_leverage("thin", symbol="BTCUSDT", leverage=100)
    venue.place_order("thin", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.15)
    venue.spike("BTCUSDT", -2.0, duration_s=3600)
    for _ in range(200):
        if venue.liquidations():
            break
        venue.advance(STEP_S)
    messages = data(drain(session))
    kinds = [m["e"] for m in messages]
    assert kinds.count("MARGIN_CALL") == 1
    call = messages[kinds.index("MARGIN_CALL")]
    assert call["p"][0]["s"] == "BTCUSDT"
    assert float(call["p"][0]["mm"]) > 0
    [liquidation] = [
        m["o"] for m in messages if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["o"] == "LIQUIDATION"
    ]
    assert liquidation["x"] == "CALCULATED"
    assert liquidation["c"].startswith("autoclose-")
    assert kinds.index("MARGIN_CALL") < kinds.index(
        "ORDER_TRADE_UPDATE", kinds.index("MARGIN_CALL")
    )
    assert messages[-1]["e"] == "ACCOUNT_UPDATE"
    assert messages[-1]["a"]["P"][0]["pa"] == "0.000"


def test_user_events_go_only_to_their_own_account(dialect: Dialect, venue: Venue) -> None:
    venue.create_account("other", "other-secret")
    mine = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    theirs = dialect.streams.connect(
        "/private/ws", f"listenKey={dialect.listen_keys.create('other', venue.clock.time())}"
    )
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert drain(mine)
    assert drain(theirs) == []


def test_a_connection_is_closed_at_its_maximum_age(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/public/ws")
    dialect.streams.max_connection_s = 3600
    venue.advance(3599)
    dialect.tick()
    assert session.close_code is None
    venue.advance(1)
    dialect.tick()
    assert session.close_code == 1000


# --- stream faults ----------------------------------------------------------------------------


def faulted(dialect: Dialect, *rules: dict[str, Any]) -> None:
    dialect.set_fault_plan(FaultPlan.parse({"rules": list(rules)}))


def test_a_stall_sends_nothing_then_resumes_without_losing_the_book(
    dialect: Dialect, venue: Venue
) -> None:
    session = dialect.streams.connect("/public/ws")
    subscribe(dialect, session, "btcusdt@depth", "ethusdt@depth")
    faulted(dialect, {"kind": "stream_stall", "symbol": "BTCUSDT", "start_s": 0, "end_s": 20})
    venue.advance(STEP_S)
    dialect.tick()
    assert {m["s"] for m in data(drain(session))} == {"ETHUSDT"}
    venue.advance(20)
    dialect.tick()
    [btc] = [m for m in data(drain(session)) if m["s"] == "BTCUSDT"]
    assert btc["U"] <= btc["u"]
    _status, snapshot = rest(dialect, "GET", "/fapi/v1/depth", "symbol=BTCUSDT&limit=1000")
    assert snapshot["lastUpdateId"] == btc["u"]


def test_a_frozen_stream_keeps_its_heartbeat_with_old_prices(
    dialect: Dialect, venue: Venue
) -> None:
    session = dialect.streams.connect("/market/ws")
    subscribe(dialect, session, "btcusdt@markPrice@1s")
    dialect.tick()
    [before] = data(drain(session))
    faulted(dialect, {"kind": "stream_freeze", "start_s": 0})
    for _ in range(3):
        venue.advance(STEP_S)
        dialect.tick()
        [frozen] = data(drain(session))
        assert frozen["p"] == before["p"]
        assert frozen["E"] == int(venue.clock.time() * 1000)  # fresh: only the prices lie
    assert venue.mark_price("BTCUSDT") != float(before["p"])


@pytest.mark.parametrize("mode", ["drop", "reorder"])
def test_a_depth_gap_breaks_the_sequence_a_client_checks(
    dialect: Dialect, venue: Venue, mode: str
) -> None:
    session = dialect.streams.connect("/public/ws")
    subscribe(dialect, session, "btcusdt@depth")
    venue.advance(STEP_S)
    dialect.tick()
    updates = data(drain(session))
    faulted(dialect, {"kind": "depth_gap", "symbol": "BTCUSDT", "mode": mode, "at_s": 0})
    for _ in range(3):
        venue.advance(STEP_S)
        dialect.tick()
        updates += data(drain(session))
    breaks = [b for a, b in itertools.pairwise(updates) if b["pu"] != a["u"]]
    assert breaks, "the sequence shows no gap"
    if mode == "reorder":  # nothing lost: every version is still covered, out of order
        assert sorted(u["u"] for u in updates) == [
            u["u"] for u in sorted(updates, key=lambda u: u["U"])
        ]


def test_delayed_events_arrive_late_and_in_order(dialect: Dialect, venue: Venue) -> None:
    session = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    faulted(dialect, {"kind": "stream_delay", "ms": 4000, "start_s": 0, "end_s": 1})
    dialect.tick()
    venue.place_order(KEY, symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.01)
    assert drain(session) == []
    venue.advance(3)
    dialect.tick()
    assert drain(session) == []
    venue.advance(1)
    dialect.tick()
    late = drain(session)
    assert [m["e"] for m in late][:2] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE"]
    assert late[0]["o"]["x"] == "NEW"


def test_disconnect_and_early_listen_key_expiry_faults(dialect: Dialect, venue: Venue) -> None:
    market = dialect.streams.connect("/market/ws")
    user = dialect.streams.connect("/private/ws", f"listenKey={listen_key(dialect)}")
    faulted(
        dialect,
        {"kind": "listen_key_expire", "at_s": 10, "api_key": KEY},
        {"kind": "stream_disconnect", "at_s": 30},
    )
    venue.advance(10)
    dialect.tick()
    assert [m["e"] for m in drain(user)] == ["listenKeyExpired"]
    assert user.close_code == 1000
    assert market.close_code is None
    assert rest(dialect, "PUT", "/fapi/v1/listenKey")[1]["code"] == -1125
    venue.advance(20)
    dialect.tick()
    assert market.close_code == 1001


# --- over a real websocket --------------------------------------------------------------------


@pytest.fixture
def server(venue: Venue, dialect: Dialect) -> Iterator[VenueServer]:
    with VenueServer(venue, dialect=dialect, ping_interval_s=1.0) as running:
        yield running


async def next_json(socket: aiohttp.ClientWebSocketResponse) -> Any:
    message = await asyncio.wait_for(socket.receive(), 10)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    return json.loads(message.data)


async def test_over_a_websocket_pings_pongs_and_the_max_age_close(
    server: VenueServer, venue: Venue, dialect: Dialect
) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"{server.url}/public/ws/1", autoping=False) as socket,
    ):
        await socket.send_str('{"method":"SUBSCRIBE","params":["btcusdt@bookTicker"],"id":7}')
        assert await next_json(socket) == {"result": None, "id": 7}
        await socket.ping(b"hello")
        kinds = set()
        while not {"pong", "ping"} <= kinds:  # our pong comes back; the venue pings too
            message = await asyncio.wait_for(socket.receive(), 10)
            if message.type == aiohttp.WSMsgType.PONG:
                assert message.data == b"hello"
                kinds.add("pong")
            elif message.type == aiohttp.WSMsgType.PING:
                await socket.pong(message.data)
                kinds.add("ping")
        dialect.streams.max_connection_s = 60
        venue.advance(60)
        while True:
            message = await asyncio.wait_for(socket.receive(), 10)
            if message.type == aiohttp.WSMsgType.PING:
                await socket.pong(message.data)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                break
        assert (message.type, message.data) == (aiohttp.WSMsgType.CLOSE, 1000)


async def test_over_a_websocket_a_bad_listen_key_is_a_json_400(server: VenueServer) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{server.url}/private/ws?listenKey=unknown")
    assert refused.value.status == 400


async def test_closing_the_server_closes_its_websockets(venue: Venue, dialect: Dialect) -> None:
    server = VenueServer(venue, dialect=dialect)
    async with aiohttp.ClientSession() as http:
        socket = await http.ws_connect(f"{server.url}/ws/btcusdt@depth")
        await asyncio.get_running_loop().run_in_executor(None, server.close)
        message = await asyncio.wait_for(socket.receive(), 10)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        await socket.close()
    assert dialect.streams.sessions == []
