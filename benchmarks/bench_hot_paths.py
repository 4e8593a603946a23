"""The guard's hot paths, side by side with raw ccxt and a calibration loop, in one process.

Both clients are real ``ccxt.binanceusdm`` instances on one in-process mock venue (no
sockets), on a frozen simulated clock (the rig of ``bench_requests_per_order.py``: lifted
venue limits, ``durable_journal=False`` unless said). Everything is CPU time of this thread
(``time.thread_time_ns``), in batches; each batch of the guarded call is taken right after
the same batch of the raw call, so both see the same machine. Reported: the median over the
batches, and in brackets the mean of the quietest tenth (the machine is shared)::

    .venv/bin/python benchmarks/bench_hot_paths.py                # 60 batches of 100 reads
    .venv/bin/python benchmarks/bench_hot_paths.py --batches 30

- ``read``: ``fetch_ticker``, raw and guarded; the guard's overhead as a multiple of raw's
  own CPU (the issue's target: at most 0.2x).
- ``verdict``: :func:`safeguard.risk._verdict.evaluate` timed where the guard calls it, during
  guarded market orders ("in context"), and the same call repeated in a tight loop ("hot"), as
  multiples of the calibration loop ``sum(range(200))`` (target: at most 8x, in context).
- ``journal``: the guard's journal writes per order (a pending and a settle record), in
  context, with and without fsync.
- ``order``: ``create_order`` market 0.01, buy and sell alternately, raw and guarded; the
  overhead as a multiple of raw's (target: at most 0.5x).

The kill switch's engage latency is ``bench_killswitch.py`` (threads, real time).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_requests_per_order as rig_module

import safeguard.risk._verdict as risk_verdict

SYMBOL = rig_module.SYMBOL
CALLS: dict[str, tuple[float, float]] = {}
"""Function calls per read and per order, raw and guarded."""


def _calls(call: Callable[[], object], size: int = 50) -> float:
    """Function calls (Python and built-in) per call, as cProfile counts them: a figure the
    machine's load does not move."""
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(size):
        call()
    profile.disable()
    return float(pstats.Stats(profile).total_calls) / size  # type: ignore[attr-defined]


def _batch(call: Callable[[], object], size: int) -> float:
    """CPU microseconds per call over one batch."""
    began = time.thread_time_ns()
    for _ in range(size):
        call()
    return (time.thread_time_ns() - began) / size / 1000.0


def _quiet(samples: list[float]) -> float:
    ordered = sorted(samples)
    tenth = ordered[: max(1, len(ordered) // 10)]
    return sum(tenth) / len(tenth)


def _figure(samples: list[float]) -> str:
    return f"{statistics.median(samples):8.1f} ({_quiet(samples):.1f})"


def _times(samples: list[float], cal: float, cal_quiet: float) -> str:
    return f"{statistics.median(samples) / cal:.1f}x ({_quiet(samples) / cal_quiet:.1f}x)"


def _calibration(batches: int) -> list[float]:
    return [_batch(lambda: sum(range(200)), 2_000) for _ in range(batches)]


class _Timed:
    """Wraps a callable and keeps the CPU time of each call."""

    def __init__(self, inner: Callable[..., Any]) -> None:
        self.inner = inner
        self.samples: list[float] = []
        self.last: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        began = time.thread_time_ns()
        try:
            return self.inner(*args, **kwargs)
        finally:
            self.samples.append((time.thread_time_ns() - began) / 1000.0)
            self.last = (args, kwargs)


def reads(rig: Any, batches: int, size: int) -> tuple[list[float], list[float]]:
    raw = lambda: rig.raw.fetch_ticker(SYMBOL)  # noqa: E731
    guarded = lambda: rig.guarded.fetch_ticker(SYMBOL)  # noqa: E731
    _batch(raw, size), _batch(guarded, size)  # warm both
    raw_us, guarded_us = [], []
    for _ in range(batches):
        raw_us.append(_batch(raw, size))
        guarded_us.append(_batch(guarded, size))
    CALLS["read"] = (_calls(raw), _calls(guarded))
    return raw_us, guarded_us


def orders(
    rig: Any, batches: int, size: int
) -> tuple[list[float], list[float], _Timed, _Timed, _Timed]:
    """Raw and guarded orders, with the verdict and the journal timed in place."""
    sequence = {"raw": 0, "guarded": 0}

    def order(label: str, ex: Any) -> None:
        i = sequence[label]
        sequence[label] = i + 1
        ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01)

    verdict = _Timed(risk_verdict.evaluate)
    journal = rig.guarded.runtime.core.journal
    pending, settle = _Timed(journal.pending), _Timed(journal.settle)
    risk_verdict.evaluate = verdict  # type: ignore[assignment]  # the gate looks it up per call
    journal.pending, journal.settle = pending, settle
    try:
        for _ in range(4):  # warm: the guard's first orders read what the verdict needs
            order("raw", rig.raw)
            order("guarded", rig.guarded)
        for timed in (verdict, pending, settle):
            timed.samples.clear()
        raw_us, guarded_us = [], []
        for _ in range(batches):
            raw_us.append(_batch(lambda: order("raw", rig.raw), size))
            guarded_us.append(_batch(lambda: order("guarded", rig.guarded), size))
    finally:
        risk_verdict.evaluate = verdict.inner  # type: ignore[assignment]
        del journal.pending, journal.settle
    CALLS["order"] = (
        _calls(lambda: order("raw", rig.raw), 20),
        _calls(lambda: order("guarded", rig.guarded), 20),
    )
    return raw_us, guarded_us, verdict, pending, settle


def hot_verdict(verdict: _Timed, batches: int) -> list[float]:
    """The last in-context verdict's call, repeated in a tight loop."""
    assert verdict.last is not None
    args, kwargs = verdict.last
    evaluate = verdict.inner
    return [_batch(lambda: evaluate(*args, **kwargs), 200) for _ in range(batches)]


def journal_fsync(tmp: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Pending (fsynced) and settle records on a journal of its own, as the guard writes
    them: CPU per record (the fsync's wait for the disk is not CPU)."""
    from safeguard.guard._journal import OrderJournal, Status

    journal = OrderJournal(tmp / "fsync.jsonl", durable=True)
    intent = {"symbol": SYMBOL, "type": "market", "side": "buy", "amount": 0.01, "price": None}
    pending_us, settle_us = [], []
    try:
        for i in range(rounds):
            cid = f"sg-bench-{i}"
            began = time.thread_time_ns()
            journal.pending(cid, symbol=SYMBOL, intent=intent, now=1.0 + i)
            pending_us.append((time.thread_time_ns() - began) / 1000.0)
            began = time.thread_time_ns()
            journal.settle(cid, Status.ACKED, now=1.5 + i, order_id=str(i))
            settle_us.append((time.thread_time_ns() - began) / 1000.0)
    finally:
        journal.close()
    return pending_us, settle_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--reads", type=int, default=100, help="reads per batch")
    parser.add_argument("--orders", type=int, default=10, help="orders per batch")
    args = parser.parse_args(argv)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cpu(s), "
        f"load average {load}"
    )
    print("CPU time per call (thread_time); median over batches (mean of the quietest tenth)")
    gc.collect()
    with tempfile.TemporaryDirectory() as tmp:
        rig = rig_module.Rig(Path(tmp), "hot")
        try:
            calibration = _calibration(args.batches)
            raw_reads, guarded_reads = reads(rig, args.batches, args.reads)
            raw_orders, guarded_orders, verdict, pending, settle = orders(
                rig, args.batches, args.orders
            )
            hot = hot_verdict(verdict, args.batches)
            calibration += _calibration(args.batches)  # before and after: the same machine
        finally:
            rig.close()
        fsync_pending, fsync_settle = journal_fsync(Path(tmp), 200)

    cal = statistics.median(calibration)
    cal_quiet = _quiet(calibration)
    print(f"\n{'calibration sum(range(200))':<36} {_figure(calibration)} us")

    def ratio(raw: list[float], guarded: list[float]) -> str:
        median = (statistics.median(guarded) - statistics.median(raw)) / statistics.median(raw)
        quiet = (_quiet(guarded) - _quiet(raw)) / _quiet(raw)
        return f"{median:.2f}x ({quiet:.2f}x)"

    rows = [
        ("read  fetch_ticker, raw", _figure(raw_reads) + " us"),
        ("read  fetch_ticker, guarded", _figure(guarded_reads) + " us"),
        ("  guard's overhead / raw's own", ratio(raw_reads, guarded_reads) + "  (target <= 0.2x)"),
        ("order create_order, raw", _figure(raw_orders) + " us"),
        ("order create_order, guarded", _figure(guarded_orders) + " us"),
        (
            "  guard's overhead / raw's own",
            ratio(raw_orders, guarded_orders) + "  (target <= 0.5x)",
        ),
        ("verdict in context (in the order)", _figure(verdict.samples) + " us"),
        ("  / calibration", _times(verdict.samples, cal, cal_quiet) + "  (target <= 8x)"),
        ("verdict hot loop (same call)", _figure(hot) + " us"),
        ("  / calibration", _times(hot, cal, cal_quiet)),
        ("journal pending record, no fsync", _figure(pending.samples) + " us (in context)"),
        ("journal settle record", _figure(settle.samples) + " us (in context)"),
        ("journal pending record, fsync", _figure(fsync_pending) + " us CPU (own file)"),
        ("journal settle record", _figure(fsync_settle) + " us CPU (own file)"),
    ]
    for label, figure in rows:
        print(f"{label:<36} {figure}")
    for what, (raw_calls, guarded_calls) in CALLS.items():
        print(
            f"function calls per {what}: raw {raw_calls:.0f}, guarded {guarded_calls:.0f} "
            f"(+{guarded_calls - raw_calls:.0f})"
        )
    per_order = (len(guarded_orders) * args.orders) or 1
    print(
        f"journal records per guarded market order: {len(pending.samples) / per_order:g} "
        f"pending + {len(settle.samples) / per_order:g} settle"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
