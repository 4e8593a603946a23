"""One guarded sync exchange shared by many threads: its market cache gains a key for every
symbol it first reads while other threads walk the same dicts. No caller may ever meet
"dictionary changed size during iteration", an undocumented RuntimeError from the middle of a
read or a verdict.

The mock venue lists three symbols, too few for the race to show in a test's lifetime; a real
account has hundreds. So the cache is driven directly, with the venue's answers as data: many
threads absorbing account-wide open-order answers, each naming symbols not seen before (a
new listing traded from the web UI), while the others' absorbs walk the symbols known so far.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from safeguard._config import RiskLimits
from safeguard.guard._core import Send
from safeguard.guard._market import MarketCache

THREADS = 8
ANSWERS = 100


@pytest.fixture
def eager_thread_switching() -> Iterator[None]:
    # Switch threads as often as the interpreter can: the interleavings a busy bot meets over
    # days, within a second.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("eager_thread_switching")
def test_threads_reading_open_orders_of_new_symbols_never_race_on_the_cache() -> None:
    cache = MarketCache(RiskLimits())
    start = threading.Barrier(THREADS)
    failures: list[BaseException] = []
    every_open_order = Send("fetch_open_orders", ())

    def reader(worker: int) -> None:
        start.wait()
        for answer in range(ANSWERS):
            symbol = f"NEW{worker}X{answer}/USDT:USDT"
            order = {"id": f"{worker}-{answer}", "symbol": symbol, "status": "open"}
            try:
                cache.absorb(every_open_order, [order], float(answer))
            except RuntimeError as exc:
                failures.append(exc)
                return

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(cache.open_orders) == THREADS * ANSWERS  # every symbol any answer named
