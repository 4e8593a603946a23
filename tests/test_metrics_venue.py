"""The mock venue's metrics: what it served and what its engine did, scraped over loopback.

Real ccxt clients (in process and over loopback HTTP) trade on the real venue through the
metered dialect; ``safeguard venue serve --metrics-port`` is run for real.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import ccxt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from safeguard._clock import ManualClock
from safeguard.cli import main
from safeguard.observability import Metrics, serve_metrics
from safeguard.observability._venue import MeteredDialect, VenueMetrics
from safeguard.venue import Fill, Regime, Venue, VenueConfig
from safeguard.venue._client import ccxt_client
from safeguard.venue._faults import FaultPlan
from safeguard.venue._inprocess import inprocess_client
from safeguard.venue._server import VenueServer

KEY, SECRET = "vm-key-0123456789", "vm-secret-0123456789abcdef"
SYMBOL = "BTC/USDT:USDT"
TICKER = "GET /fapi/v1/ticker/24hr"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        return parse(answer.read().decode())


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def quiet_venue() -> Venue:
    # A flat market: the only price move is the spike a test makes.
    config = VenueConfig(
        symbols=("BTCUSDT",),
        regimes=(Regime(name="flat", annual_vol=0.0, mean_duration_s=1e9),),
        jumps_per_day=0.0,
        premium_mean=0.0,
        premium_sd=0.0,
        mark_window_s=0.0,
    )
    venue = Venue(config, clock=ManualClock(1_700_000_000.0))
    venue.create_account(KEY, SECRET, wallet=2_000.0)
    return venue


def test_requests_orders_and_throttles_served_in_process_are_counted() -> None:
    venue = quiet_venue()
    metrics = VenueMetrics(venue)
    plan = FaultPlan.parse(
        {"rules": [{"kind": "error", "endpoint": TICKER, "status": 429, "skip": 3, "count": 1}]}
    )
    ex = inprocess_client(MeteredDialect(venue, metrics, faults=plan), KEY, SECRET)
    ex.load_markets()
    for _ in range(3):
        ex.fetch_ticker(SYMBOL)
    with pytest.raises(ccxt.DDoSProtection):
        ex.fetch_ticker(SYMBOL)  # the fourth: the plan's 429
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    with pytest.raises(ccxt.InsufficientFunds):
        ex.create_order(SYMBOL, "market", "buy", 5.0)  # far beyond the wallet's margin
    samples = parse(generate(metrics))
    requests = "safeguard_mock_venue_requests_total"
    assert value(samples, requests, route=TICKER, status="200") == 3
    assert value(samples, requests, route=TICKER, status="429") == 1
    assert value(samples, "safeguard_mock_venue_rate_limited_total", status="429") == 1
    assert value(samples, "safeguard_mock_venue_orders_total", outcome="accepted") == 1
    assert value(samples, "safeguard_mock_venue_orders_total", outcome="rejected") == 1
    # Fills are the engine's own record: the accepted market order filled.
    fills = [e for e in venue.events if isinstance(e, Fill)]
    assert value(samples, "safeguard_mock_venue_fills_total", symbol="BTCUSDT") == len(fills) > 0


def generate(metrics: VenueMetrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry).decode()


def test_a_liquidation_is_counted_from_the_engines_own_record() -> None:
    venue = quiet_venue()
    metrics = VenueMetrics(venue)
    ex = inprocess_client(MeteredDialect(venue, metrics), KEY, SECRET)
    ex.load_markets()
    before = parse(generate(metrics))
    # Zero from the start, so an alert on increase() sees the first liquidation.
    assert value(before, "safeguard_mock_venue_liquidations_total", symbol="BTCUSDT") == 0
    ex.set_leverage(100, SYMBOL)
    ex.create_order(SYMBOL, "market", "buy", 1.0)
    venue.spike("BTCUSDT", -3.0, 600)
    venue.advance(10)
    [liquidation] = venue.liquidations()
    samples = parse(generate(metrics))
    assert value(samples, "safeguard_mock_venue_liquidations_total", symbol="BTCUSDT") == 1
    fund = value(samples, "safeguard_mock_venue_insurance_fund")
    assert fund == pytest.approx(liquidation.insurance_fund_after)
    # A second scrape counts nothing new twice.
    again = parse(generate(metrics))
    assert value(again, "safeguard_mock_venue_liquidations_total", symbol="BTCUSDT") == 1


def test_over_loopback_http_with_the_scrape_endpoint() -> None:
    venue = quiet_venue()
    metrics = VenueMetrics(venue)
    with (
        VenueServer(venue, dialect=MeteredDialect(venue, metrics)) as server,
        serve_metrics(0, metrics.registry) as scrape_at,
    ):
        ex = ccxt_client(server.url, KEY, SECRET, timeout_ms=5_000)
        ex.load_markets()
        ex.fetch_ticker(SYMBOL)
        ex.fetch_balance()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(server.url + "/no/such/path", timeout=10)
        assert missing.value.code == 404
        missing.value.close()
        samples = scrape(scrape_at.url)
    requests = "safeguard_mock_venue_requests_total"
    assert value(samples, requests, route=TICKER, status="200") == 1
    assert value(samples, requests, route="GET /fapi/v3/account", status="200") == 1
    # Unknown paths share one label: a scanner cannot create a series per URL.
    assert value(samples, requests, route="other", status="404") == 1


def test_a_failing_count_never_breaks_the_venue() -> None:
    venue = quiet_venue()
    metrics = VenueMetrics(venue)
    metrics.requests = None  # any bug in counting
    ex = inprocess_client(MeteredDialect(venue, metrics), KEY, SECRET)
    assert ex.fetch_ticker(SYMBOL)["symbol"] == SYMBOL


def test_metered_dialect_refuses_metrics_of_another_venue() -> None:
    with pytest.raises(ValueError, match="another venue"):
        MeteredDialect(quiet_venue(), VenueMetrics(quiet_venue()))


# --- safeguard venue serve --metrics-port ------------------------------------------------------


def test_venue_serve_exposes_metrics_on_its_own_port(capsys: pytest.CaptureFixture[str]) -> None:
    # The real command, in this process (its SIGTERM handler needs the main thread): a helper
    # thread trades on it and scrapes, then stops it the way an operator would.
    original = signal.getsignal(signal.SIGTERM)
    seen: dict[str, Any] = {}
    returned = threading.Event()
    deadline = time.monotonic() + 30

    def installed() -> bool:
        return signal.getsignal(signal.SIGTERM) != original

    def client() -> None:
        try:
            info: dict[str, str] = {}
            while "symbols" not in info and time.monotonic() < deadline:
                for line in capsys.readouterr().out.splitlines():
                    name, _, text = line.partition(": ")
                    info[name] = text
                time.sleep(0.01)
            seen["info"] = info
            ex = ccxt_client(info["venue"], info["api key"], info["secret"], timeout_ms=5_000)
            ex.load_markets()
            for _ in range(2):
                ex.fetch_ticker(SYMBOL)
            ex.create_order(SYMBOL, "market", "buy", 0.002)
            seen["samples"] = scrape(info["metrics"])
        except Exception as exc:
            seen["error"] = exc
        finally:
            # Only while the command's handler is in place: the default one would end pytest.
            while not installed() and not returned.is_set() and time.monotonic() < deadline:
                time.sleep(0.01)
            if installed():
                os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=client, daemon=True)
    helper.start()
    args = ["venue", "serve", "--port", "0", "--metrics-port", "0", "--symbols", "BTCUSDT"]
    try:
        assert main(args) == 0
    finally:
        returned.set()
        helper.join(10)
    assert signal.getsignal(signal.SIGTERM) == original
    if "error" in seen:
        raise seen["error"]
    assert seen["info"]["metrics"].startswith("http://127.0.0.1:")
    assert seen["info"]["metrics"].endswith("/metrics")
    samples = seen["samples"]
    assert value(samples, "safeguard_mock_venue_requests_total", route=TICKER, status="200") == 2
    assert value(samples, "safeguard_mock_venue_orders_total", outcome="accepted") == 1
    assert (value(samples, "safeguard_mock_venue_fills_total", symbol="BTCUSDT") or 0) >= 1


def test_a_bot_and_its_mock_venue_can_share_one_registry() -> None:
    # What a runner like ``safeguard paper`` does: one endpoint for both sides.
    venue = quiet_venue()
    bot = Metrics()
    venue_side = VenueMetrics(venue, registry=bot.registry)
    ex = inprocess_client(MeteredDialect(venue, venue_side), KEY, SECRET)
    ex.fetch_ticker(SYMBOL)
    samples = parse(generate(venue_side))
    assert value(samples, "safeguard_mock_venue_requests_total", route=TICKER, status="200") == 1
    assert value(samples, "safeguard_duplicates_prevented_total") == 0


def test_venue_serve_with_metrics_but_without_the_extra_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import raises ImportError
    assert main(["venue", "serve", "--port", "0", "--metrics-port", "0"]) == 2
    captured = capsys.readouterr()
    assert "pip install 'safeguard[metrics]'" in captured.err
    assert "venue:" not in captured.out  # refused before serving anything


def test_venue_serve_refuses_a_metrics_port_out_of_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["venue", "serve", "--port", "0", "--metrics-port", "70000"]) == 2
    assert "--metrics-port must be in [0, 65535]" in capsys.readouterr().err
