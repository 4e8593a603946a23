"""Paper trading with an unmodified ccxt client on ``safeguard venue serve`` over HTTP.

The example starts the mock Binance USD-M venue as a separate process on a free loopback port
(exactly what you would run in a terminal), reads the address and the generated key pair it
prints, and trades with plain ``ccxt.binanceusdm``: the only configuration is
``safeguard.venue._client.configure``, which points ccxt's URLs at the venue and turns ccxt's
own retries and throttler off. Nothing in ccxt is patched, so the same strategy code runs on
Binance unchanged.

    python examples/http_paper.py                # starts and stops the venue itself
    safeguard venue serve --port 8900 &          # or run it yourself and pass --url/--key/--secret
    python examples/http_paper.py --url http://127.0.0.1:8900 --key KEY --secret SECRET

With ``--thread`` the venue runs inside this process instead (``safeguard.venue._server.serve``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from contextlib import ExitStack
from typing import Any

import ccxt

from safeguard.venue import configure

STARTUP_TIMEOUT_S = 30.0


def start_venue_process(stack: ExitStack) -> tuple[str, str, str]:
    """``safeguard venue serve --port 0`` as a child process; returns (url, key, secret)."""
    command = [sys.executable, "-m", "safeguard", "venue", "serve", "--port", "0", "--seed", "7"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)

    def stop() -> None:
        process.terminate()  # SIGTERM: the venue closes its connections and exits 0
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()

    stack.callback(stop)
    printed: dict[str, str] = {}
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    assert process.stdout is not None
    while not {"venue", "api key", "secret"} <= printed.keys():
        line = process.stdout.readline()
        if not line or time.monotonic() > deadline:
            raise RuntimeError(f"the venue did not start (exit code {process.poll()})")
        name, _, value = line.partition(": ")
        printed[name.strip()] = value.strip()
    return printed["venue"], printed["api key"], printed["secret"]


def start_venue_thread(stack: ExitStack) -> tuple[str, str, str]:
    """The same venue served from a thread of this process."""
    from safeguard import SystemClock
    from safeguard.venue import Venue, VenueConfig, serve

    key, secret = "example-key-0123456789", "example-secret-0123456789abcdef"
    venue = Venue(VenueConfig(seed=7), clock=SystemClock())
    with venue.lock:
        venue.create_account(key, secret, wallet=10_000.0)
    server = stack.enter_context(serve(venue))
    return server.url, key, secret


def trade(exchange: Any) -> None:
    symbol = "BTC/USDT:USDT"
    exchange.load_markets()
    exchange.set_leverage(3, symbol)
    last = float(exchange.fetch_ticker(symbol)["last"])
    print(f"{symbol} last {last}")

    entry = exchange.create_order(symbol, "market", "buy", 0.02)
    print(f"filled order {entry['id']}: buy {entry['filled']} at {entry['average']}")

    stop_price = float(exchange.price_to_precision(symbol, last * 0.95))
    stop = exchange.create_order(
        symbol, "market", "sell", 0.02, None, {"stopLossPrice": stop_price, "reduceOnly": True}
    )
    print(f"stop order {stop['id']} resting at {stop_price} (status {stop['status']})")

    bid = float(exchange.price_to_precision(symbol, last * 0.98))
    resting = exchange.create_order(symbol, "limit", "buy", 0.01, bid)
    print(f"limit order {resting['id']} resting at {bid} (status {resting['status']})")
    exchange.cancel_order(resting["id"], symbol)
    print(f"cancelled order {resting['id']}")

    for position in exchange.fetch_positions([symbol]):
        print(
            f"position {position['symbol']} {position['side']} {position['contracts']} "
            f"entry {position['entryPrice']} notional {position['notional']} "
            f"unrealised {position['unrealizedPnl']}"
        )

    close = exchange.create_order(symbol, "market", "sell", 0.02, None, {"reduceOnly": True})
    print(f"filled order {close['id']}: sell {close['filled']} at {close['average']}")
    exchange.cancel_order(stop["id"], symbol, {"trigger": True})
    open_positions = [p for p in exchange.fetch_positions([symbol]) if p["contracts"]]
    print(f"positions after closing: {len(open_positions)}")
    balance = exchange.fetch_balance()
    print(f"USDT total {balance['USDT']['total']:.4f} (fees paid, price moved)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running venue's URL (default: start one)")
    parser.add_argument("--key", help="its API key")
    parser.add_argument("--secret", help="its secret")
    parser.add_argument("--thread", action="store_true", help="serve from a thread, not a process")
    args = parser.parse_args()

    with ExitStack() as stack:
        if args.url:
            if not (args.key and args.secret):
                parser.error("--url needs --key and --secret")
            url, key, secret = args.url, args.key, args.secret
        elif args.thread:
            url, key, secret = start_venue_thread(stack)
        else:
            url, key, secret = start_venue_process(stack)
        print(f"venue at {url}")
        # Plain ccxt, pointed at the venue: nothing else about it changes.
        exchange = configure(ccxt.binanceusdm({"apiKey": key, "secret": secret}), url)
        trade(exchange)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
