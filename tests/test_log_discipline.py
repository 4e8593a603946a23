"""Every record safeguard emits goes through the scrubbing logger (``safeguard._log.logger``).

The scrubbing is a patch on that logger object, not a process-wide loguru setting (that would
replace the application's own patcher), so a module that logs through ``loguru.logger`` itself
would emit request data unscrubbed. This walks the package's source and fails on any module
that does; the session-wide capturing sink in ``conftest.py`` is the net behind it.
"""

from __future__ import annotations

import ast
import io
import subprocess
import sys
from pathlib import Path

import ccxt
import pytest
from loguru import logger as loguru_logger

import safeguard
from safeguard._log import logger
from safeguard.guard._redact import REDACTED, forget_secrets, register_secret

PACKAGE = Path(safeguard.__file__).resolve().parent
# The scrubbing logger itself, and the module that adds the opt-in sinks (add/remove/enable).
MAY_IMPORT_LOGURU = {"_log.py", "guard/_request_log.py"}
SINK_CALLS = {"add", "remove", "enable", "disable"}
SECRET = "disc-secret-0123456789abcdef"


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _loguru_imports(tree: ast.AST) -> list[str]:
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "loguru":
            found.extend(f"from {node.module} import {alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.extend(f"import {a.name}" for a in node.names if a.name.split(".")[0] == "loguru")
    return found


def test_the_walk_finds_the_package() -> None:
    names = {str(path.relative_to(PACKAGE)) for path in _modules()}
    assert len(names) > 50
    assert names >= MAY_IMPORT_LOGURU


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_logs_through_loguru_directly(path: Path) -> None:
    relative = str(path.relative_to(PACKAGE))
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imports = _loguru_imports(tree)
    if relative not in MAY_IMPORT_LOGURU:
        assert imports == [], (
            f"{relative} imports loguru directly; log through `from safeguard._log import logger`"
        )


def test_the_sink_module_only_manages_sinks_with_loguru_itself() -> None:
    tree = ast.parse((PACKAGE / "guard" / "_request_log.py").read_text(encoding="utf-8"))
    calls = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "logger"
    }
    assert calls <= SINK_CALLS, calls - SINK_CALLS


def test_the_package_logger_scrubs_for_an_application_sink() -> None:
    """A plain application sink (no configure_logging) gets a scrubbed record, exception and
    all, from any module: the patch travels with the logger object."""
    register_secret(SECRET)
    stream = io.StringIO()
    sink = loguru_logger.add(stream, format="{name} {message} {extra}\n{exception}", diagnose=True)
    try:
        try:
            raise ccxt.RequestTimeout(
                f"binanceusdm GET http://h/fapi/v1/order?signature=ab12cd34ef56ab78&x={SECRET}"
            )
        except ccxt.BaseError as exc:
            logger.bind(secret=SECRET).opt(exception=exc).warning("failed: {}", exc)
    finally:
        loguru_logger.remove(sink)
        forget_secrets()
    text = stream.getvalue()
    assert "failed: " in text
    assert "RequestTimeout" in text
    assert f"signature={REDACTED}" in text
    assert "ab12cd34ef56ab78" not in text
    assert SECRET not in text


def test_the_first_record_does_not_import_the_guard_or_ccxt() -> None:
    """The kill switch logs its engage; that must not wait for ccxt to import."""
    code = (
        "import io, sys\n"
        "from loguru import logger as L\n"
        "stream = io.StringIO(); L.add(stream, format='{message}'); L.enable('safeguard')\n"
        "from safeguard._log import logger\n"
        "logger.critical('engaged ?signature=ab12cd34ef56ab78')\n"
        "loaded = [m for m in ('ccxt', 'safeguard.guard') if m in sys.modules]\n"
        "print(stream.getvalue().strip(), loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"engaged ?signature={REDACTED} []"
