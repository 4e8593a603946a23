"""Build a mypyc-compiled copy of safeguard with the venue's matching modules compiled.

The build goes into its own directory (``build/venue-mypyc`` by default), never into the
source tree: an extension module next to its ``.py`` is imported in preference to it, so a
compiled engine left in a working tree would silently shadow every later edit of the engine.
The copy is a snapshot of the whole package (and of ``tests``), compiled and pure modules from
the same sources, so it is consistent with itself whatever happens to the tree afterwards.

The pure-Python venue stays the default and the reference: the compiled copy must pass the
same tests. Use it by putting the build first on the path:

    .venv/bin/python tools/venue_mypyc.py
    cd build/venue-mypyc && PYTHONPATH=$PWD ../../.venv/bin/python -m pytest -q tests/venue
    PYTHONPATH=build/venue-mypyc .venv/bin/python benchmarks/bench_matching.py

Needs a C compiler and the Python headers (mypyc ships with mypy, a dev dependency).
"""

from __future__ import annotations

import argparse
import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COMPILED = (
    "safeguard/venue/_engine.py",
    "safeguard/venue/_timeline.py",
    "safeguard/venue/_ledger.py",
    "safeguard/venue/_trading.py",
    "safeguard/venue/_funding.py",
    "safeguard/venue/_liquidator.py",
    "safeguard/venue/_statements.py",
    "safeguard/venue/_orders.py",
    "safeguard/venue/_book.py",
    "safeguard/venue/_accounts.py",
    "safeguard/venue/_state.py",
    "safeguard/venue/_matching.py",
    "safeguard/venue/_markets.py",
    "safeguard/venue/_events.py",
)
"""The modules an order passes through (request checks, matching, settling, the records) and
each step's (funding, liquidation): the engine and every collaborator it was split into, so
the compiled copy compiles what the one engine module used to hold."""

OPEN_API = ("safeguard/venue/_engine.py", "Venue")
"""The class whose public methods take whatever a caller sends (see :func:`open_api`)."""

# mypyc reads the mypy configuration of its working directory; the project's pyproject.toml is
# left out of the build step because the build backend pinned in the venv rejects its licence
# field, and strictness is the type checker's job, not the compiler's.
_MYPY_INI = "[mypy]\nplugins = pydantic.mypy\n"


def open_api(source: str, class_name: str) -> str:
    """``source`` with every parameter annotation of ``class_name``'s public methods ``Any``
    (``class_name`` may also name a module-level function: then its own parameters).

    A compiled function checks its arguments against their annotations on entry and raises
    ``TypeError``; the pure venue takes what it is sent and answers Binance's reject code for
    junk (``symbol=None`` is -1121, ``leverage=2.5`` is -1100), which the contract tests hold
    it to. The public methods check their inputs themselves, so in the compiled copy their
    parameters are declared ``Any``: the same answers, compiled. Only the copy is rewritten.
    """
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    spans: list[tuple[int, int]] = []
    functions: list[ast.FunctionDef] = [
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == class_name
    ]
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            functions += [method for method in node.body if isinstance(method, ast.FunctionDef)]
    for method in functions:
        if method.name.startswith("_") and method.name != "__init__":
            continue
        arguments = method.args
        for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]:
            note = arg.annotation
            if note is None or note.end_lineno is None or note.end_col_offset is None:
                continue
            start_line = lines[note.lineno - 1]
            start = offsets[note.lineno - 1] + _char_col(start_line, note.col_offset)
            end_line = lines[note.end_lineno - 1]
            end = offsets[note.end_lineno - 1] + _char_col(end_line, note.end_col_offset)
            spans.append((start, end))
    if not spans:
        raise SystemExit(f"{class_name} has no annotated public method: nothing to open")
    for start, end in sorted(spans, reverse=True):
        source = source[:start] + "Any" + source[end:]
    return source


def _char_col(line: str, byte_offset: int) -> int:
    """ast counts UTF-8 bytes; the text is indexed by characters."""
    return len(line.encode()[:byte_offset].decode())


def build(
    out: Path,
    compiled: tuple[str, ...] = COMPILED,
    opened_api: tuple[tuple[str, str], ...] = (OPEN_API,),
) -> None:
    """A copy of the package in ``out`` with ``compiled`` compiled, each ``(module, name)`` of
    ``opened_api`` opened first (:func:`open_api`). ``tools/risk_mypyc.py`` builds the risk
    core's copy with it."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
    shutil.copytree(ROOT / "safeguard", out / "safeguard", ignore=ignore)
    for module, name in opened_api:
        opened = out / module
        opened.write_text(open_api(opened.read_text(), name))
    (out / "mypy.ini").write_text(_MYPY_INI)
    subprocess.run([sys.executable, "-m", "mypyc", *compiled], cwd=out, check=True)
    # Tests and the project's configuration come after the build, so the copy can be tested.
    shutil.copytree(ROOT / "tests", out / "tests", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, out / name)
    (out / "mypy.ini").unlink()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "venue-mypyc")
    args = parser.parse_args()
    build(args.out.resolve())
    print(f"compiled copy in {args.out}; use it with PYTHONPATH={args.out.resolve()}")


if __name__ == "__main__":
    main()
