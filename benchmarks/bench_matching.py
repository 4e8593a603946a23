"""Matching-engine throughput of the simulated venue, in process (no transport, no sockets).

Each round places a resting GTC limit order away from the touch, sends a market order that
fills against the book (alternating sides, so the position stays small), and cancels the
resting order: three order events (place, place-and-fill, cancel). Every 1,000 rounds the
simulated clock moves one step so the books refill, prices move and stops are checked (that
time is included) and the client re-reads the mark to price its resting orders. The venue
keeps its default three symbols and full event recording.

What counts as an order event: one call of the engine's API that a real request makes
(``place_order`` / ``cancel_order``, minus HTTP), processed in full: request and account
checks, matching, settling, the records, and Binance's answer dict. A market order that fills
counts once, not once per fill.

A second scenario has one account quote at the touch and another take the quote (the
account-versus-account matching path). It also times a simulated day, and prints a machine
reference (pure-Python dict look-ups per CPU second) so figures from different machines can
be compared.

Calibration: ``sum(range(200))`` is timed in the same process before each run (CPU time, best
of five batches). The machine is shared, so the figure to compare across runs and machines is
the ratio: CPU microseconds per order event over the calibration loop's microseconds.

The engine runs as it is imported: pure Python by default; the mypyc-compiled copy that
``tools/venue_mypyc.py`` builds when that copy is first on ``PYTHONPATH``. The first line
printed says which.

Run: .venv/bin/python benchmarks/bench_matching.py [--rounds N] [--repeat R]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time

from safeguard._clock import ManualClock
from safeguard.venue import Fill, Venue, VenueConfig
from safeguard.venue import _engine as engine_module


def run(rounds: int) -> tuple[float, float, int, int]:
    venue = Venue(VenueConfig(seed=1), clock=ManualClock())
    venue.create_account("bench", "secret", wallet=10_000_000.0)
    place = venue.place_order
    cancel = venue.cancel_order
    events = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    # The client prices its resting orders once per mark read, not once per round: the timed
    # loop should be the engine's work, not the harness's arithmetic.
    bid_away, ask_away = _away(venue.mark_price("BTCUSDT"))
    for i in range(rounds):
        side, away = ("BUY", bid_away) if i % 2 == 0 else ("SELL", ask_away)
        resting = place(
            "bench",
            symbol="BTCUSDT",
            side=side,
            type="LIMIT",
            quantity=0.01,
            price=away,
            time_in_force="GTC",
        )
        place("bench", symbol="BTCUSDT", side=side, type="MARKET", quantity=0.002)
        cancel("bench", symbol="BTCUSDT", order_id=resting["orderId"])
        events += 3
        if i % 1000 == 999:
            venue.advance(venue.config.step_s)
            bid_away, ask_away = _away(venue.mark_price("BTCUSDT"))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    fills = sum(1 for e in venue.events if isinstance(e, Fill))
    return elapsed, cpu, events, fills


def _away(mark: float) -> tuple[float, float]:
    """Resting buy and sell prices 1 % away from ``mark`` (BTCUSDT's tick is 0.1)."""
    return round(mark * 0.99, 1), round(mark * 1.01, 1)


def run_cross(rounds: int) -> tuple[float, int]:
    """Two accounts: one quotes at the touch, the other takes the quote (account vs account)."""
    venue = Venue(VenueConfig(seed=1), clock=ManualClock())
    for key in ("maker", "taker"):
        venue.create_account(key, "secret", wallet=10_000_000.0)
    place = venue.place_order
    touch = venue.book_ticker("BTCUSDT")[0]
    bid, ask = float(touch["bidPrice"]), float(touch["askPrice"])
    events = 0
    started = time.process_time()
    for i in range(rounds):
        side, taker_side, price = ("SELL", "BUY", ask) if i % 2 == 0 else ("BUY", "SELL", bid)
        place(
            "maker",
            symbol="BTCUSDT",
            side=side,
            type="LIMIT",
            quantity=0.002,
            price=price,
            time_in_force="GTC",
        )
        place("taker", symbol="BTCUSDT", side=taker_side, type="MARKET", quantity=0.002)
        events += 2
    return time.process_time() - started, events


def simulated_day() -> float:
    """Seconds of CPU to simulate 24 h of the default market with one open position."""
    venue = Venue(VenueConfig(seed=2), clock=ManualClock())
    venue.create_account("day", "secret", wallet=100_000.0)
    venue.place_order("day", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=0.1)
    started = time.process_time()
    venue.advance(86_400)
    return time.process_time() - started


def machine_reference() -> float:
    """Millions of pure-Python dict look-ups per CPU second, to scale the figures by."""
    table = {i: i for i in range(1000)}
    keys = list(range(1000)) * 1000
    started = time.process_time()
    total = 0
    for key in keys:
        total += table[key]
    return len(keys) / (time.process_time() - started) / 1e6


def calibration_us() -> float:
    """CPU microseconds of one ``sum(range(200))``, best of five batches of 20,000."""
    best = math.inf
    for _ in range(5):
        started = time.process_time()
        for _ in range(20_000):
            sum(range(200))
        best = min(best, (time.process_time() - started) / 20_000 * 1e6)
    return best


def engine_build() -> str:
    path = engine_module.__file__ or "?"
    return f"mypyc-compiled ({path})" if path.endswith(".so") else f"pure Python ({path})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"engine                     {engine_build()}")
    rates = []
    cpu_rates = []
    fills_rates = []
    ratios = []
    calibrations = []
    for _ in range(args.repeat):
        calibration = calibration_us()
        elapsed, cpu, events, fills = run(args.rounds)
        rates.append(events / elapsed)
        cpu_rates.append(events / cpu)
        fills_rates.append(fills / elapsed)
        calibrations.append(calibration)
        ratios.append(cpu / events * 1e6 / calibration)
    print(f"rounds per run             {args.rounds:,} (x{args.repeat})")
    median, best = statistics.median(rates), max(rates)
    print(f"order events/s (wall)      median {median:,.0f}  best {best:,.0f}")
    cpu_median, cpu_best = statistics.median(cpu_rates), max(cpu_rates)
    print(f"order events/s (CPU time)  median {cpu_median:,.0f}  best {cpu_best:,.0f}")
    print(f"calibration sum(range(200)) median {statistics.median(calibrations):.2f} us CPU")
    print(f"CPU per event / calibration median {statistics.median(ratios):.2f}x")
    print(f"fills/s (wall)             median {statistics.median(fills_rates):,.0f}")
    print(f"mean per order event       {1e6 / statistics.median(rates):.2f} us wall")
    cpu, events = run_cross(args.rounds)
    print(f"account vs account (CPU)   {events / cpu:,.0f} order events/s")
    print(f"simulated day (CPU)        {simulated_day():.2f} s for 24 h, 3 symbols, 5 s steps")
    print(f"machine reference          {machine_reference():.1f} M dict look-ups per CPU second")
    print("load average               {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
