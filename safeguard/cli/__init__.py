"""The ``safeguard`` command.

Each sub-command lives in its own module in this package and exposes
``register(subparsers)``. A command's handler returns the process exit code.

A named command imports only the module that registers it (:data:`COMMANDS`), and
``safeguard --help`` / ``--version`` import none, because some commands pull in ccxt and
matplotlib and an operator typing ``safeguard kill`` during an incident must not wait for them.
A test keeps the table equal to what the modules register.

Every command exits with a code from :class:`ExitCode` (the README's table) and never shows a
traceback: a bad argument, an unreadable or unwritable path, an unreachable venue or Redis is
one line on stderr naming the problem.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
import urllib.error
from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Protocol

from safeguard._errors import SafeguardError

Handler = Callable[[argparse.Namespace], int]


class ExitCode(IntEnum):
    """What ``safeguard`` exits with (the README's table)."""

    OK = 0
    FOUND = 1
    """The command worked and its answer is "no": an order denied, a stress breach, a ban in
    force, a resume refused."""
    USAGE = 2
    """Bad arguments or configuration: an unknown option, a value out of range, a file that
    cannot be read or written, a policy that does not validate, a name that does not exist."""
    UNREACHABLE = 3
    """Something on the network is unavailable: the venue or the fleet's Redis cannot be
    reached, or the port to serve on cannot be bound."""
    BUG = 70
    """An unexpected error: a bug in safeguard (the message says how to see the traceback)."""
    INTERRUPTED = 130
    BROKEN_PIPE = 141
    """What a shell reports for a writer killed by SIGPIPE (128 + 13), as ``cat`` gives in
    ``cat big | head``: the reader stopped early; nothing went wrong that needs a traceback."""


class Unreachable(Exception):
    """A command could not reach (or bind) what it needs: exits :attr:`ExitCode.UNREACHABLE`
    with this message."""


TRACEBACK_ENV = "SAFEGUARD_TRACEBACK"
"""Set to 1 to let an unexpected error show its traceback (for a bug report)."""


class _CommandModule(Protocol):
    def register(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None: ...


COMMANDS: dict[str, tuple[str, str]] = {
    "bans": ("bans", "show the venue bans remembered in the state directory (or clear one)"),
    "check": (
        "check",
        "pre-trade verdict on one order (liquidation vs stop, limits, market rules)",
    ),
    "journal": ("journal", "explain a paper run's journal: every decision with its numbers"),
    "kill": (
        "kill",
        "engage the kill switch (every bot on the state directory stops sending orders)",
    ),
    "status": ("kill", "show the kill switch state"),
    "resume": ("kill", "re-arm the kill switch (refused during the cooling period)"),
    "paper": ("paper", "paper-trade a strategy on the mock venue, guarded and naive, and report"),
    "policy": (
        "policy",
        "print the effective policy (TOML file + SAFEGUARD_* environment) or its reference",
    ),
    "sim": (
        "sim",
        "deterministic simulation: guarded bots under seeded faults, invariants checked",
    ),
    "stress": ("stress", "run the portfolio stress grid on an account (table, optional heat map)"),
    "venue": ("venue", "run the mock Binance USD-M venue"),
}
"""Each top-level command: the module that registers it and its one-line help. A named
command imports only its module; ``safeguard --help`` and ``--version`` import none (some pull
in ccxt and matplotlib). A test keeps this table equal to what the modules register."""

COMMAND_MODULES: dict[str, str] = {command: module for command, (module, _) in COMMANDS.items()}
"""Which module registers each top-level command (the fast path of :func:`main`)."""


def command_module_names() -> list[str]:
    """Every module of this package that registers commands, by its name without the leading
    underscore (every module here is private: ``_kill`` is the ``kill`` module)."""
    return sorted(
        m.name[1:]
        for m in pkgutil.iter_modules(__path__)
        if m.name.startswith("_")
        and not m.name.startswith("__")
        and m.name[1:] not in _HELPER_MODULES
    )


_HELPER_MODULES = frozenset({"cascade_view"})
"""Modules here that register no command (what a command uses to show its result)."""


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
        module = importlib.import_module(f"{__name__}._{name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(subparsers)
    return parser


EXIT_BROKEN_PIPE = int(ExitCode.BROKEN_PIPE)


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


def _index_parser() -> argparse.ArgumentParser:
    """The top-level parser with every command listed (from :data:`COMMANDS`) and none
    loaded: enough for ``--help``, ``--version`` and a mistyped command."""
    parser = build_parser(only=[])
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, (_, summary) in COMMANDS.items():
        subparsers.add_parser(command, help=summary)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    module = COMMAND_MODULES.get(arguments[0]) if arguments else None
    parser = build_parser(only=[module]) if module else _index_parser()
    args = parser.parse_args(arguments)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)  # a usage error: stdout stays for answers
        return ExitCode.USAGE
    try:
        return handler(args)
    except Unreachable as exc:
        return _fail(exc, ExitCode.UNREACHABLE)
    except SafeguardError as exc:
        return _fail(exc, ExitCode.USAGE)
    except KeyboardInterrupt:
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        raise  # main() exits quietly
    except (ConnectionError, TimeoutError, urllib.error.URLError) as exc:
        return _fail(exc, ExitCode.UNREACHABLE)
    except OSError as exc:  # a path given on the command line: missing, a directory, read-only
        return _fail(_describe_os_error(exc), ExitCode.USAGE)
    except UnicodeDecodeError as exc:  # a file given on the command line that is not text
        return _fail(
            f"a file given is not UTF-8 text ({exc.reason} at byte {exc.start})", ExitCode.USAGE
        )
    except RecursionError:  # an input (JSON, TOML) nested deeper than Python's stack
        return _fail(
            "an input file nests deeper than can be read; nothing was done", ExitCode.USAGE
        )
    except Exception as exc:
        if os.environ.get(TRACEBACK_ENV) == "1":
            raise
        name = type(exc).__name__
        return _fail(
            f"unexpected error ({name}: {exc}); this is a bug in safeguard: please report it "
            f"(run again with {TRACEBACK_ENV}=1 for the traceback)",
            ExitCode.BUG,
        )


def _fail(problem: object, code: ExitCode) -> int:
    print(f"safeguard: {problem}", file=sys.stderr)
    return int(code)


def _describe_os_error(exc: OSError) -> str:
    """``cannot use pdir: Is a directory`` rather than ``[Errno 21] Is a directory: 'pdir'``."""
    if exc.filename is None or not exc.strerror:
        return str(exc)
    return f"cannot use {exc.filename}: {exc.strerror}"


__all__ = [
    "COMMANDS",
    "COMMAND_MODULES",
    "EXIT_BROKEN_PIPE",
    "TRACEBACK_ENV",
    "ExitCode",
    "Handler",
    "Unreachable",
    "build_parser",
    "command_module_names",
    "main",
]
