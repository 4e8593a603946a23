"""The ``safeguard`` command.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``. A command's handler returns the process exit code.

``safeguard --help`` discovers every module. A named command imports only the module that
registers it (:data:`COMMAND_MODULES`), because some commands pull in ccxt and an operator
typing ``safeguard kill`` during an incident must not wait for them. A test keeps the table
equal to what the modules register.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Callable, Sequence
from typing import Protocol

from safeguard.errors import SafeguardError

Handler = Callable[[argparse.Namespace], int]


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


COMMAND_MODULES: dict[str, str] = {
    "bans": "bans",
    "check": "check",
    "journal": "journal",
    "kill": "kill",
    "paper": "paper",
    "policy": "policy",
    "resume": "kill",
    "status": "kill",
    "stress": "stress",
    "venue": "venue",
}
"""Which module registers each top-level command (the fast path of :func:`main`)."""


def command_module_names() -> list[str]:
    """Every module of this package that may register commands."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))


def build_parser(only: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with every command, or only those of the modules named in ``only``."""
    from safeguard import __version__

    parser = argparse.ArgumentParser(
        prog="safeguard",
        description="A safety layer for automated trading strategies built on ccxt.",
    )
    parser.add_argument("--version", action="version", version=f"safeguard {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in command_module_names() if only is None else only:
        module = importlib.import_module(f"{__name__}.{name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


EXIT_BROKEN_PIPE = 141
"""What a shell reports for a writer killed by SIGPIPE (128 + 13), as ``cat`` gives in
``cat big | head``: the reader stopped early; nothing went wrong that needs a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            return _main(argv)
        finally:
            # A closed pipe shows here (or on a write above), not at interpreter exit, where
            # Python would print "Exception ignored ... BrokenPipeError" past us.
            sys.stdout.flush()
    except BrokenPipeError:
        # The standard recipe (Python docs, "Note on SIGPIPE"): point stdout at devnull so
        # the interpreter's last flush has nowhere to fail, and exit quietly.
        with contextlib.suppress(OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    module = COMMAND_MODULES.get(arguments[0]) if arguments else None
    parser = build_parser(only=[module] if module else None)
    args = parser.parse_args(arguments)
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


__all__ = [
    "COMMAND_MODULES",
    "EXIT_BROKEN_PIPE",
    "Handler",
    "build_parser",
    "command_module_names",
    "main",
]
