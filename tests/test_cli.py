"""The command line: every command is reachable, and a named command loads only its module."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from safeguard.cli import (
    COMMAND_MODULES,
    COMMANDS,
    EXIT_BROKEN_PIPE,
    build_parser,
    command_module_names,
    main,
)


def _registered_by(module_name: str) -> set[str]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(f"safeguard.cli._{module_name}").register(subparsers)
    return set(subparsers.choices)


def test_route_table_matches_what_modules_register() -> None:
    registered = {
        command: name for name in command_module_names() for command in _registered_by(name)
    }
    assert registered == COMMAND_MODULES


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in COMMAND_MODULES:
        assert command in text


def test_no_command_prints_help_and_exits_2(capsys: object) -> None:
    assert main([]) == 2


def test_a_named_command_does_not_import_ccxt() -> None:
    code = (
        "import sys; from safeguard.cli import main; rc = main(['policy', '--reference']); "
        "print('CCXT' if 'ccxt' in sys.modules else 'NO-CCXT', file=sys.stderr); sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("NO-CCXT")


@pytest.mark.parametrize("command", [["policy"], ["policy", "--reference"]])
def test_a_reader_that_stops_early_gets_a_quiet_sigpipe_exit(command: list[str]) -> None:
    """`safeguard policy | head`: the reader closes the pipe; no traceback, exit 128 + SIGPIPE."""
    process = subprocess.Popen(
        [sys.executable, "-m", "safeguard", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # before the command has written a byte: every write meets EPIPE
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == EXIT_BROKEN_PIPE == 141
    assert stderr == ""


def test_output_to_an_open_pipe_is_complete_and_exits_0() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "safeguard", "policy", "--reference"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("### `[risk]`")
    assert done.stderr == ""


def _help_of(module_name: str) -> dict[str, str | None]:
    parser = argparse.ArgumentParser()
    subparsers = parser.add_subparsers()
    importlib.import_module(f"safeguard.cli._{module_name}").register(subparsers)
    return {action.dest: action.help for action in subparsers._choices_actions}


def test_the_command_index_shows_the_help_each_module_registers() -> None:
    registered: dict[str, str | None] = {}
    for name in command_module_names():
        registered |= _help_of(name)
    assert registered == {command: summary for command, (_, summary) in COMMANDS.items()}


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_command_nor_ccxt_nor_matplotlib(flag: str) -> None:
    code = (
        "import sys\n"
        "from safeguard.cli import main\n"
        "try:\n"
        f"    main([{flag!r}])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ccxt', 'matplotlib')\n"
        "               or m.startswith('safeguard.cli.'))\n"
        "print('LOADED', heavy, file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("LOADED []"), done.stderr
    assert ("usage: safeguard" if flag == "--help" else "safeguard ") in done.stdout
