"""Project-wide test configuration. Fixtures users also get live in safeguard.testing.

The whole suite's traffic is a leak test. Every record safeguard's own code emits during the
session, at every level, goes through an in-memory capturing sink, rendered the way a careless
application would (message, extra fields and a ``diagnose`` traceback); a record carrying a
known test secret (the paper venue's default key and secret, and every ``KEY``/``SECRET``-named
constant in a collected test module) or a hex request signature fails the session at its end,
with the offending records printed. Records a test emits itself are not judged: some forge raw
records on purpose to test the sinks' own scrubbing.

``safeguard`` logging is re-enabled before each test (a test that silences it on its way out
does not blind the net for the rest of the session); a test about the library's default of
emitting nothing is marked ``safeguard_logging_default`` and runs with it disabled.
"""

from __future__ import annotations

import contextlib
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

import safeguard
from safeguard.testing import DEFAULT_API_KEY, DEFAULT_SECRET

_PACKAGE_DIR = str(Path(safeguard.__file__).resolve().parent)
_SIGNATURE = r"signature=[0-9a-fA-F]{16,}"
_SECRET_NAME = re.compile(r"(?:^|_)(?:KEY|SECRET|API_KEY|LISTEN_KEY|PASSWORD|PASSPHRASE)$")
_MIN_SECRET = 6  # as safeguard.guard._redact.MIN_SECRET_LENGTH: shorter is not a credential
_MAX_KEPT = 20


class _LeakNet:
    """What the session's capturing sink has seen: a count, and the records that leaked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pattern = self._compile([DEFAULT_API_KEY, DEFAULT_SECRET])
        self.records = 0
        self.leaks: list[str] = []
        self.leak_count = 0
        self.handler_id: int | None = None

    @staticmethod
    def _compile(secrets: list[str]) -> re.Pattern[str]:
        ordered = sorted(set(secrets), key=len, reverse=True)
        return re.compile("|".join([*(re.escape(s) for s in ordered), _SIGNATURE]))

    def learn(self, secrets: list[str]) -> None:
        self.pattern = self._compile([DEFAULT_API_KEY, DEFAULT_SECRET, *secrets])

    def write(self, message: Any) -> None:
        text = str(message)
        found = self.pattern.search(text)
        with self.lock:
            self.records += 1
            if found is not None:
                self.leak_count += 1
                if len(self.leaks) < _MAX_KEPT:
                    record = message.record
                    where = f"{record['file'].path}:{record['line']}"
                    self.leaks.append(f"{where}: {found.group(0)!r} in {text[:600]!r}")


_net = _LeakNet()


def _from_safeguard(record: Any) -> bool:
    path = record["file"].path
    return isinstance(path, str) and path.startswith(_PACKAGE_DIR)


def _fixture_secrets(items: list[pytest.Item]) -> list[str]:
    """Every credential-named string constant of the collected test modules, less the ones
    a test imported from safeguard itself (``INFO_KEY`` names a field, it is no credential)."""
    modules = {getattr(item, "module", None) for item in items}
    modules.update(m for name, m in sys.modules.items() if name.startswith("tests."))
    product = [m for name, m in sys.modules.items() if name.split(".")[0] == "safeguard"]
    return sorted(_named_secrets(modules) - _named_secrets(product))


def _named_secrets(modules: Iterable[Any]) -> set[str]:
    found: set[str] = set()
    for module in modules:
        for name, value in vars(module).items() if module is not None else ():
            if _SECRET_NAME.search(name) and isinstance(value, str) and len(value) >= _MIN_SECRET:
                found.add(value)
    return found


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "safeguard_logging_default: run with safeguard logging as the library leaves it "
        "(disabled), outside the session's capturing sink",
    )
    _net.handler_id = logger.add(
        _net,
        level="TRACE",
        filter=_from_safeguard,
        format="{level} {name}:{function}:{line} {message} | {extra}\n{exception}",
        colorize=False,
        backtrace=True,
        diagnose=True,  # what an application that did not think about it would print
        catch=False,
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    _net.learn(_fixture_secrets(session.items))


@pytest.fixture(autouse=True)
def _per_user_state_is_per_test(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The default state directory is per user ($XDG_STATE_HOME/safeguard): each test gets its
    own, so no test writes into the home directory or sees another test's kill switch."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))
    monkeypatch.delenv("SAFEGUARD_STATE_DIR", raising=False)


@pytest.fixture(autouse=True)
def _safeguard_records_are_captured(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("safeguard_logging_default") is not None:
        logger.disable("safeguard")
        yield
        return
    logger.enable("safeguard")
    yield


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if _net.handler_id is not None:
        with contextlib.suppress(ValueError):  # a test removed every handler
            logger.remove(_net.handler_id)
        _net.handler_id = None
    logger.disable("safeguard")  # as the library leaves it
    if _net.leak_count and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _net.leak_count == 0:
        terminalreporter.write_line(
            f"safeguard log capture: {_net.records} record(s), none carried a secret"
        )
        return
    terminalreporter.section("safeguard records carried secrets", red=True)
    terminalreporter.write_line(
        f"{_net.leak_count} of {_net.records} record(s) carried a test secret or a signature:"
    )
    for leak in _net.leaks:
        terminalreporter.write_line(leak)


@pytest.fixture
def funded_paper() -> Iterator[Any]:
    """A paper account (mock venue in process, simulated time) with 100 000 USDT, closed after."""
    from safeguard.testing import paper_account

    account = paper_account(wallet=100_000.0)
    try:
        yield account
    finally:
        account.close()
