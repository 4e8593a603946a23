"""The package's one logger: loguru's, patched so that every record is scrubbed of credentials
before any sink sees it, the application's own sinks included.

Every safeguard module writes ``from safeguard._log import logger`` where it would have written
``from loguru import logger``; a test (``tests/test_log_discipline.py``) fails on any module that
imports loguru's logger to emit records, so the next module cannot forget the scrubbing. The
patch belongs to this logger object, not to loguru's process-wide configuration: a library must
not replace the application's own patcher (``logger.configure(patcher=...)`` would) nor rewrite
the application's records.

The scrubbing itself is :func:`safeguard.guard.logging.scrub_record`, imported when the first
record is emitted rather than now: this leaf module is imported by nearly every other one, and
``safeguard.guard`` imports most of the package.
"""

from __future__ import annotations

from typing import Any

from loguru import logger as _loguru


def _scrub(record: Any) -> None:
    from safeguard.guard.logging import scrub_record

    scrub_record(record)


logger = _loguru.patch(_scrub)
"""loguru's logger, scrubbing every record; records are named after the emitting module."""

__all__ = ["logger"]
