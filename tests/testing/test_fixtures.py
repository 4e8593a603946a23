"""The public pytest fixtures and plain helpers of ``safeguard.testing``, on the real venue.

The fixtures arrive through the ``pytest11`` entry point (nothing here imports the plugin);
each test judges by the venue's own order book and accounts, not by what a client believed.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import ccxt
import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.testing import paper_account, sandbox_policy, strip_attached_stops
from safeguard.testing._plugin import FaultSwitch
from safeguard.venue import Venue
from safeguard.venue._client import ccxt_client
from safeguard.venue._server import VenueServer

BTC = "BTC/USDT:USDT"

PROCESSED_503 = {
    "seed": 3,
    "rules": [
        {"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 503, "code": -1001,
         "processed": True, "count": 1},
    ],
}  # fmt: skip


def _stop_below(exchange: Any, fraction: float = 0.03) -> float:
    last = float(exchange.fetch_ticker(BTC)["last"])
    return float(exchange.price_to_precision(BTC, last * (1 - fraction)))


def _btc_position(venue: Venue, api_key: str) -> float:
    return sum(float(p["positionAmt"]) for p in venue.position_risk(api_key, "BTCUSDT"))


def _venue_client_ids(venue: Venue, api_key: str) -> list[str]:
    return [o["clientOrderId"] for o in venue.all_orders(api_key, symbol="BTCUSDT")]


def test_guarded_order_reaches_the_venue_and_the_journal_in_tmp_path(
    sg_guarded: Any, sg_venue: Venue, tmp_path: Path
) -> None:
    api_key = sg_guarded.apiKey
    order = sg_guarded.create_order(
        BTC, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": _stop_below(sg_guarded)}}
    )
    assert order["status"] == "closed"
    on_venue = _venue_client_ids(sg_venue, api_key)
    assert on_venue.count(order["clientOrderId"]) == 1
    [journal] = (tmp_path / "safeguard").glob("orders-*.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    statuses = {r["id"]: r["status"] for r in records}  # the last record of each id wins
    # every order on the venue (the entry, and any stop the guard placed for it) was
    # journaled before it was sent, and acknowledged since
    assert set(on_venue) == set(statuses)
    assert set(statuses.values()) == {"acked"}


def test_default_policy_denies_an_entry_without_a_stop_before_sending(
    sg_guarded: Any, sg_venue: Venue
) -> None:
    with pytest.raises(errors.OrderDenied) as denied:
        sg_guarded.create_order(BTC, "market", "buy", 0.01)
    assert denied.value.code == Code.STOP_REQUIRED
    assert _venue_client_ids(sg_venue, sg_guarded.apiKey) == []


def test_faults_reach_the_raw_client_and_the_guard_resolves_them(
    sg_faults: FaultSwitch, sg_guarded: Any, sg_venue_client: Any, sg_venue: Venue
) -> None:
    stop = _stop_below(sg_guarded)
    sg_faults(PROCESSED_503)
    with pytest.raises(ccxt.OperationFailed):
        sg_venue_client.create_order(BTC, "market", "buy", 0.01)
    assert sg_faults.fired == [1]
    # the raw client's order exists although it was told 503
    assert len(_venue_client_ids(sg_venue, sg_guarded.apiKey)) == 1

    sg_faults.apply(PROCESSED_503)
    order = sg_guarded.create_order(
        BTC, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": stop}}
    )
    assert sg_faults.fired == [1]
    ids = _venue_client_ids(sg_venue, sg_guarded.apiKey)
    assert ids.count(order["clientOrderId"]) == 1  # found by look-up, never sent twice
    assert len(ids) == len(set(ids))
    assert _btc_position(sg_venue, sg_guarded.apiKey) == pytest.approx(0.02)


def test_cleared_faults_leave_a_healthy_venue(sg_faults: FaultSwitch, sg_venue_client: Any) -> None:
    sg_faults({"rules": [{"kind": "error", "status": 503}]})
    with pytest.raises(ccxt.OperationFailed):
        sg_venue_client.fetch_ticker(BTC)
    sg_faults.clear()
    assert float(sg_venue_client.fetch_ticker(BTC)["last"]) > 0


def test_unmodified_ccxt_trades_over_loopback_http(
    sg_venue_server: VenueServer, sg_paper: Any, sg_venue: Venue, sg_faults: FaultSwitch
) -> None:
    assert sg_venue_server.url.startswith("http://127.0.0.1:")
    client = ccxt_client(sg_venue_server.url, sg_paper.api_key, sg_paper.secret)
    order = client.create_order(BTC, "market", "sell", 0.02)
    assert order["status"] == "closed"
    assert sg_paper.positions() == {"BTCUSDT": -0.02}
    # one dialect behind both transports: a plan set through the fixture applies over HTTP
    sg_faults({"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr"}]})
    with pytest.raises(ccxt.OperationFailed):
        client.fetch_ticker(BTC)


async def test_async_guarded_orders_on_the_same_venue(sg_async_guarded: Any, sg_paper: Any) -> None:
    ticker = await sg_async_guarded.fetch_ticker(BTC)
    stop = float(sg_async_guarded.price_to_precision(BTC, float(ticker["last"]) * 1.03))
    order = await sg_async_guarded.create_order(
        BTC, "market", "sell", 0.01, None, {"stopLoss": {"triggerPrice": stop}}
    )
    assert order["filled"] == pytest.approx(0.01)
    assert sg_paper.positions() == {"BTCUSDT": -0.01}


async def test_a_pro_client_watches_the_paper_venue_in_process(sg_paper: Any) -> None:
    client = sg_paper.client(pro=True)
    book = await asyncio.wait_for(client.watch_order_book(BTC), 10)
    first = book["nonce"]
    sg_paper.advance(60)  # stepping the venue publishes the book's changes, no socket involved
    raw = sg_paper.venue.depth("BTCUSDT", 1000)
    for _ in range(1000):  # the client applies them on its next loop turns (ccxt updates in place)
        if book["nonce"] == raw["lastUpdateId"]:
            break
        await asyncio.sleep(0)
    assert book["nonce"] == raw["lastUpdateId"] > first
    assert book["bids"][0] == [float(raw["bids"][0][0]), float(raw["bids"][0][1])]
    await sg_paper.aclose()


class TestOverrides:
    """A project overrides the input fixtures in its conftest (here: in the class)."""

    @pytest.fixture
    def sg_wallet(self) -> float:
        return 1_234.5

    @pytest.fixture
    def sg_policy(self) -> Policy:
        return Policy.build(risk={"require_stop": False, "max_notional_per_order": 500.0})

    def test_wallet_and_policy_overrides_reach_the_venue_and_the_guard(
        self, sg_guarded: Any, sg_paper: Any, tmp_path: Path
    ) -> None:
        assert sg_paper.wallet() == pytest.approx(1_234.5)
        policy = sg_guarded.runtime.core.policy
        assert policy.risk.max_notional_per_order == 500.0
        assert policy.kill_switch.state_dir == tmp_path / "safeguard"
        with pytest.raises(errors.OrderDenied) as denied:
            sg_guarded.create_order(BTC, "market", "buy", 0.1)  # ~9,000 USDT notional
        assert denied.value.code == Code.NOTIONAL_PER_ORDER
        sg_guarded.create_order(BTC, "market", "buy", 0.002)  # no stop needed now
        assert sg_paper.positions() == {"BTCUSDT": 0.002}


def test_paper_account_is_deterministic_per_seed() -> None:
    marks = []
    for seed in (5, 5, 6):
        account = paper_account(seed=seed, symbols=("BTCUSDT",))
        account.advance(6 * 3600)
        marks.append(account.venue.mark_price("BTCUSDT"))
    assert marks[0] == marks[1]
    assert marks[0] != marks[2]


def test_plain_helpers_guard_without_pytest(tmp_path: Path) -> None:
    account = paper_account(wallet=2_000.0, faults=PROCESSED_503)
    base = Policy.build(risk={"max_leverage": 3.0})
    exchange = account.guarded(base, state_dir=tmp_path)
    exchange.set_leverage(10, BTC)
    with pytest.raises(errors.OrderDenied) as denied:
        exchange.create_order(
            BTC, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": _stop_below(exchange)}}
        )
    assert denied.value.code == Code.LEVERAGE_ABOVE_POLICY
    assert account.orders() == []
    assert account.faults_fired() == [0]  # denied before any I/O: the fault never saw it
    account.close()


def test_close_releases_the_journal_for_the_next_run_on_the_same_state(tmp_path: Path) -> None:
    first = paper_account()
    exchange = first.guarded(state_dir=tmp_path)
    exchange.create_order(
        BTC, "market", "buy", 0.01, None, {"stopLoss": {"triggerPrice": _stop_below(exchange)}}
    )
    first.close()
    # a restarted bot on the same state directory: the journal's writer lock was released
    second = paper_account()
    restarted = second.guarded(state_dir=tmp_path)
    assert restarted.runtime.core.journal.unresolved() == []
    second.close()


def test_sandbox_policy_moves_state_and_keeps_limits(tmp_path: Path) -> None:
    base = Policy.build(
        risk={"max_leverage": 4.0},
        kill_switch={"state_dir": "/var/lib/real-bot", "webhook_url": "https://example.invalid"},
    )
    policy = sandbox_policy(tmp_path, base)
    assert policy.risk.max_leverage == 4.0
    assert policy.kill_switch.state_dir == tmp_path
    assert policy.kill_switch.webhook_url is None
    assert policy.kill_switch.watch_state_file is False


def test_strip_attached_stops_keeps_every_other_parameter() -> None:
    sent: list[tuple[Any, ...]] = []

    class Raw:
        def create_order(self, *args: Any) -> str:
            sent.append(args)
            return "ok"

    raw = strip_attached_stops(strip_attached_stops(Raw()))  # wrapping twice is harmless
    stop = {"stopLoss": {"triggerPrice": 1.0}, "reduceOnly": False, "clientOrderId": "a"}
    raw.create_order(BTC, "limit", "buy", 1.0, 2.0, stop)
    raw.create_order(BTC, "market", "buy", 1.0, params=stop)
    raw.create_order(BTC, "market", "buy", 1.0)
    assert sent == [
        (BTC, "limit", "buy", 1.0, 2.0, {"reduceOnly": False, "clientOrderId": "a"}),
        # params by keyword: the price it skipped stays None, the params stay params
        (BTC, "market", "buy", 1.0, None, {"reduceOnly": False, "clientOrderId": "a"}),
        (BTC, "market", "buy", 1.0, None, {}),
    ]


def test_a_guarded_paper_exchange_edits_an_order_with_its_declared_stop(tmp_path: Path) -> None:
    account = paper_account()
    try:
        exchange = account.guarded(state_dir=tmp_path)
        price = float(exchange.fetch_ticker(BTC)["last"])
        stop = {"stopLoss": {"triggerPrice": _stop_below(exchange)}}
        bid = float(exchange.price_to_precision(BTC, price * 0.995))
        order = exchange.create_order(BTC, "limit", "buy", 0.01, bid, stop)
        lower = float(exchange.price_to_precision(BTC, price * 0.99))
        # The policy needs the stop declared on the edit too; the venue must never see it.
        edited = exchange.edit_order(order["id"], BTC, "limit", "buy", 0.01, lower, stop)
        assert float(edited["price"]) == lower
        resting = [o for o in account.venue.open_orders(account.api_key) if o["type"] == "LIMIT"]
        assert [float(o["price"]) for o in resting] == [lower]
    finally:
        account.close()


def test_loading_the_plugin_imports_no_venue_ccxt_or_guard() -> None:
    code = (
        "import sys, safeguard.testing._plugin, safeguard.testing; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ccxt' "
        "or m.startswith(('safeguard.venue', 'safeguard.guard', 'safeguard.testing._paper'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "[]"


def test_the_public_surface_is_pinned_and_every_name_resolves() -> None:
    from safeguard import testing

    assert testing.__all__ == sorted(testing.__all__)
    assert set(testing.__all__) == {
        "DEFAULT_API_KEY",
        "DEFAULT_SECRET",
        "DEFAULT_START",
        "DEFAULT_SYMBOLS",
        "FaultSwitch",
        "PaperAccount",
        "as_fault_plan",
        "paper_account",
        "sandbox_policy",
        "strip_attached_stops",
    }
    for name in testing.__all__:
        assert getattr(testing, name) is not None
    assert testing.FaultSwitch is FaultSwitch
    with pytest.raises(AttributeError):
        _ = testing.no_such_name
