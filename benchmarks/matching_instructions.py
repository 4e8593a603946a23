"""Instructions per round of the matching benchmark's timed loop, counted by callgrind.

Load-free (the shared machine's CPU times move ±10 % run to run; this moves 0.02 %), so it is
the figure to compare two engine versions by. Only the loop is counted: after 200 warm-up
rounds, ``gc.collect()``, ``gc.freeze()``, the loop runs inside the comparator of a libc
``qsort`` call, and callgrind collects only while inside ``qsort_r``.

Run (needs valgrind; a few minutes):

    PYTHONHASHSEED=0 valgrind --tool=callgrind --toggle-collect='*qsort_r' \\
        --callgrind-out-file=/dev/null .venv/bin/python benchmarks/matching_instructions.py 500

and divide callgrind's "Collected" count by the rounds (500).
"""

from __future__ import annotations

import ctypes
import gc
import sys

from bench_matching import run


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    run(200)
    gc.collect()
    gc.freeze()
    ran: list[int] = []

    def compare(_a: int | None, _b: int | None) -> int:
        if not ran:  # qsort of two items compares once; run the loop only there anyway
            ran.append(1)
            run(rounds)
        return 0

    comparator = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)(compare)
    items = (ctypes.c_int * 2)(1, 2)
    ctypes.CDLL(None).qsort(items, 2, ctypes.sizeof(ctypes.c_int), comparator)
    print(f"ran {rounds} rounds inside qsort")


if __name__ == "__main__":
    main()
