"""Build a mypyc-compiled copy of safeguard with the verdict's own modules compiled.

Optional, like the compiled venue (``tools/venue_mypyc.py``, whose build step this reuses): the
pure-Python risk core stays the default and the reference, and the compiled copy must pass the
same tests. The copy goes into ``build/risk-mypyc`` (git-ignored), never into the source tree::

    .venv/bin/python tools/risk_mypyc.py
    cd build/risk-mypyc && PYTHONPATH=$PWD ../../.venv/bin/python -m pytest -q tests/risk
    PYTHONPATH=build/risk-mypyc .venv/bin/python benchmarks/bench_hot_paths.py

Compiled: the verdict, the order's pricing, the checks, the size search, the margin solver and
the input checks. Left pure: the modules whose frozen dataclasses are built through
:func:`safeguard.risk._trusted.trusted` or set their own fields in ``__post_init__`` (models,
liquidation, funding, tiers, book, freshness, outcome, stress, cascade): a compiled class has
neither the slot descriptors the trusted constructor writes through nor a settable frozen
field. :func:`~safeguard.risk._verdict.evaluate`'s parameters are declared ``Any`` in the copy:
a compiled function raises ``TypeError`` for an argument that does not match its annotation,
where the verdict answers junk with an INVALID_INPUT denial (the fail-closed tests hold it).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import venue_mypyc  # the build step, shared

COMPILED = (
    "safeguard/risk/_verdict.py",
    "safeguard/risk/_pricing.py",
    "safeguard/risk/_checks.py",
    "safeguard/risk/_sizing.py",
    "safeguard/risk/_margin.py",
    "safeguard/risk/_inputs.py",
)
"""What one verdict runs through, less the modules that must stay pure (see above)."""

OPEN_API = (("safeguard/risk/_verdict.py", "evaluate"),)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=venue_mypyc.ROOT / "build" / "risk-mypyc")
    args = parser.parse_args()
    venue_mypyc.build(args.out.resolve(), COMPILED, OPEN_API)
    print(f"compiled copy in {args.out}; use it with PYTHONPATH={args.out.resolve()}")


if __name__ == "__main__":
    main()
