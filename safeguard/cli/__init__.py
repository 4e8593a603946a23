"""The ``safeguard`` command.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``; :func:`main` discovers them, so adding a command never means editing
a shared list. A command's handler returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from safeguard.errors import SafeguardError

Handler = Callable[[argparse.Namespace], int]


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


def build_parser() -> argparse.ArgumentParser:
    from safeguard import __version__

    parser = argparse.ArgumentParser(
        prog="safeguard",
        description="A safety layer for automated trading strategies built on ccxt.",
    )
    parser.add_argument("--version", action="version", version=f"safeguard {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except SafeguardError as exc:
        print(f"safeguard: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


__all__ = ["Handler", "build_parser", "main"]
