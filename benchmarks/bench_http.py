"""Requests per second the mock venue serves over loopback HTTP to unmodified ccxt.

The venue runs in its own process (as ``safeguard venue serve`` would), with rate limits
raised out of the way so every request is answered in full; clients are unmodified ccxt
``binanceusdm`` instances calling ``fetch_ticker`` (one signed-free GET, weight 1), either
sync in threads or async with ``asyncio.gather``, spread over client processes so the
client's own Python cost is not charged to the server.

    .venv/bin/python benchmarks/bench_http.py --seconds 5

Prints one line per client mode plus the machine's load, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import threading
import time
from typing import Any

SYMBOL = "BTC/USDT:USDT"
KEY, SECRET = "bench-key", "bench-secret"


def _server(ready: Any, stop: Any) -> None:
    from safeguard._clock import SystemClock
    from safeguard.venue._dialect import Dialect
    from safeguard.venue._engine import Venue
    from safeguard.venue._ratelimit import RateLimits
    from safeguard.venue._server import VenueServer

    venue = Venue(clock=SystemClock())
    venue.create_account(KEY, SECRET)
    dialect = Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9))
    with VenueServer(venue, dialect=dialect) as server:
        ready.put(server.url)
        stop.wait()


def _sync_client(url: str, threads: int, seconds: float, out: Any) -> None:
    from safeguard.venue._client import ccxt_client

    counts = [0] * threads
    errors = [0] * threads
    start = threading.Barrier(threads + 1)

    def worker(index: int) -> None:
        exchange = ccxt_client(url, KEY, SECRET)
        exchange.load_markets()
        start.wait()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            try:
                exchange.fetch_ticker(SYMBOL)
                counts[index] += 1
            except Exception:
                errors[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    start.wait()
    cpu = time.process_time()
    for thread in pool:
        thread.join()
    out.put((sum(counts), sum(errors), time.process_time() - cpu))


def _async_client(url: str, concurrency: int, seconds: float, out: Any) -> None:
    from safeguard.venue._client import ccxt_client

    async def run() -> tuple[int, int, float]:
        exchange = ccxt_client(url, KEY, SECRET, asyncio=True)
        done = failed = 0
        used = 0.0
        try:
            await exchange.load_markets()
            deadline = time.perf_counter() + seconds
            cpu = time.process_time()

            async def worker() -> None:
                nonlocal done, failed
                while time.perf_counter() < deadline:
                    try:
                        await exchange.fetch_ticker(SYMBOL)
                        done += 1
                    except Exception:
                        failed += 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            used = time.process_time() - cpu
        finally:
            await exchange.close()
        return done, failed, used

    out.put(asyncio.run(run()))


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux ``/proc``)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _measure(
    target: Any, url: str, per_process: int, processes: int, seconds: float
) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    clients = [
        ctx.Process(target=target, args=(url, per_process, seconds, out)) for _ in range(processes)
    ]
    for client in clients:
        client.start()
    results = [out.get(timeout=seconds + 120) for _ in clients]
    for client in clients:
        client.join()
    done = sum(r[0] for r in results)
    failed = sum(r[1] for r in results)
    client_cpu = sum(r[2] for r in results)
    return done / seconds, failed, done, client_cpu


def _inprocess(seconds: float) -> tuple[float, float]:
    """The same call through the in-process transport: ccxt's and the dialect's cost alone."""
    from safeguard._clock import SystemClock
    from safeguard.venue._dialect import Dialect
    from safeguard.venue._engine import Venue
    from safeguard.venue._inprocess import inprocess_client
    from safeguard.venue._ratelimit import RateLimits

    venue = Venue(clock=SystemClock())
    venue.create_account(KEY, SECRET)
    exchange = inprocess_client(Dialect(venue, limits=RateLimits(10**9, 10**9, 10**9)), KEY, SECRET)
    exchange.load_markets()
    done = 0
    cpu = time.process_time()
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        exchange.fetch_ticker(SYMBOL)
        done += 1
    return done / seconds, (time.process_time() - cpu) / max(done, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=2, help="sync threads per process")
    parser.add_argument("--concurrency", type=int, default=32, help="async tasks per process")
    args = parser.parse_args()

    ctx = mp.get_context("spawn")
    ready, stop = ctx.Queue(), ctx.Event()
    server = ctx.Process(target=_server, args=(ready, stop))
    server.start()
    try:
        url = ready.get(timeout=60)
        print(f"venue {url}; {os.cpu_count()} cpus; load average {os.getloadavg()[0]:.2f}")
        for label, target, width in (
            (
                f"sync ccxt, {args.processes} processes x {args.threads} threads",
                _sync_client,
                args.threads,
            ),
            (
                f"async ccxt, {args.processes} processes x {args.concurrency} tasks",
                _async_client,
                args.concurrency,
            ),
        ):
            cpu_before = _cpu_seconds(server.pid or 0)
            rate, failed, done, client_cpu = _measure(
                target, url, width, args.processes, args.seconds
            )
            per_request = (_cpu_seconds(server.pid or 0) - cpu_before) / max(done, 1)
            print(
                f"{label}: {rate:,.0f} requests/s over {args.seconds:g} s ({failed} errors); "
                f"server CPU {per_request * 1e6:,.0f} us/request = "
                f"{1 / per_request if per_request else float('inf'):,.0f} requests per CPU-second; "
                f"ccxt clients {client_cpu / max(done, 1) * 1e6:,.0f} us CPU/request"
            )
    finally:
        stop.set()
        server.join(timeout=10)
    rate, cpu = _inprocess(args.seconds)
    print(
        f"in-process sync ccxt (no sockets, one thread): {rate:,.0f} requests/s, "
        f"{cpu * 1e6:,.0f} us CPU/request for ccxt and venue together"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
