"""The package's one logger: loguru's, patched so that every record is scrubbed of credentials
before any sink sees it, the application's own sinks included.

Every safeguard module writes ``from safeguard._log import logger`` where it would have written
``from loguru import logger``; a test (``tests/test_log_discipline.py``) fails on any module that
imports loguru's logger to emit records, so the next module cannot forget the scrubbing. The
patch belongs to this logger object, not to loguru's process-wide configuration: a library must
not replace the application's own patcher (``logger.configure(patcher=...)`` would) nor rewrite
the application's records.

A leaf module: it needs only :mod:`safeguard._redact`, so logging from the kill switch or the
CLI never imports the guard (and ccxt) on its first record.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

from loguru import logger as _loguru

from safeguard._redact import REDACTED, is_sensitive_name, redact, scrub_text

EXCEPTION_KEY = "exception"
"""Where :func:`scrub_record` keeps a record's scrubbed exception, in ``extra``."""


def scrub_record(record: Any) -> None:
    """Scrub a record before *any* sink sees it, the application's own sinks included.

    The exception is taken off the record (a sink would print its raw message, which for ccxt
    holds the signed URL): its scrubbed traceback is appended to the message and kept,
    structured, in ``extra["exception"]``.
    """
    record["message"] = scrub_text(str(record["message"]))
    extra = record["extra"]
    for key, value in list(extra.items()):
        extra[key] = REDACTED if is_sensitive_name(str(key)) else redact(value)
    exc = record["exception"]
    if exc is not None and exc.value is not None:
        moved = exception_of(record)
        if moved is not None:
            extra[EXCEPTION_KEY] = moved
            record["message"] = f"{record['message']}\n{moved['traceback']}"
        record["exception"] = None


def exception_of(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """The record's exception, scrubbed: as :func:`scrub_record` kept it, or raw from a record
    of plain loguru (an application's own)."""
    moved = (record.get("extra") or {}).get(EXCEPTION_KEY)
    if isinstance(moved, dict):
        return moved
    exc = record.get("exception")
    if exc is None or exc.value is None:
        return None
    text = scrub_text("".join(traceback.format_exception(exc.type, exc.value, exc.traceback)))
    return {
        "type": exc.type.__name__ if exc.type else None,
        "value": scrub_text(str(exc.value)),
        "traceback": text.rstrip("\n"),
    }


logger = _loguru.patch(scrub_record)
"""loguru's logger, scrubbing every record; records are named after the emitting module."""

__all__ = ["EXCEPTION_KEY", "exception_of", "logger", "scrub_record"]
