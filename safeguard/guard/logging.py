"""Request logging with loguru, and the two sinks an application can opt into.

The library never adds a sink: ``safeguard/__init__.py`` calls ``logger.disable("safeguard")``
and records go nowhere until the application calls :func:`configure_logging` (a human-readable
sink and, with ``json_path``, a JSON-lines file) or adds its own sinks and calls
``logger.enable("safeguard")``.

Every venue request is logged as one structured record built by :func:`request_record`:
method, endpoint, parameters, status, latency, attempt, the rate-limit headers, the client
order id, the verdict code when there was one and the policy version hash, so a log can be
replayed against the exact rules it ran under. Credentials never appear: records are built
from redacted values, and the sinks scrub every message, extra field and traceback again
(ccxt exception messages embed the signed URL and the request body). Tracebacks are rendered
without variable values (loguru's ``diagnose`` would print locals, keys included).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from collections.abc import Mapping
from datetime import UTC
from pathlib import Path
from typing import IO, Any

from loguru import logger  # sinks only: records are emitted through `log`

from safeguard._log import EXCEPTION_KEY as _EXCEPTION_KEY
from safeguard._log import exception_of as _exception
from safeguard._log import logger as _package_logger
from safeguard._log import scrub_record
from safeguard.config import LoggingConfig
from safeguard.guard.redact import redact, scrub_text
from safeguard.guard.throttle import rate_headers

_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
_RECORD_KEY = "request"


log = _package_logger
"""The package's scrubbing logger (:mod:`safeguard._log`): records are scrubbed before any sink."""


def request_record(
    *,
    method: str,
    endpoint: str,
    params: Mapping[str, Any] | None = None,
    status: int | None = None,
    latency_s: float | None = None,
    attempt: int = 1,
    headers: Mapping[str, str] | None = None,
    client_order_id: str | None = None,
    verdict: object = None,
    policy_version: str | None = None,
    outcome: str | None = None,
    error: BaseException | None = None,
) -> dict[str, Any]:
    """The structured record of one request attempt, already redacted.

    ``method`` is the unified ccxt call (``create_order``), ``endpoint`` the HTTP verb and
    path; ``headers`` are the answer's, of which only the rate-limit ones are kept;
    ``verdict`` is a pre-trade verdict (its ``code`` is kept) or a code string.
    """
    code = getattr(verdict, "code", verdict)
    record: dict[str, Any] = {
        "method": method,
        "endpoint": endpoint,
        "params": dict(params or {}),
        "status": status,
        "latency_ms": None if latency_s is None else round(latency_s * 1000.0, 3),
        "attempt": attempt,
        "weights": rate_headers(headers),
        "client_order_id": client_order_id,
        "verdict": None if code is None else str(code),
        "policy_version": policy_version,
        "outcome": outcome or ("ok" if error is None else "error"),
        "error": None if error is None else f"{type(error).__name__}: {error}",
    }
    redacted: dict[str, Any] = redact(record)
    return redacted


def log_request(record: Mapping[str, Any], *, level: str | None = None) -> None:
    """Log a :func:`request_record` (INFO, or WARNING when it failed)."""
    chosen = level or ("INFO" if record.get("outcome") == "ok" else "WARNING")
    status = record.get("status")
    message = (
        f"{record.get('method')} {record.get('endpoint')} -> "
        f"{status if status is not None else record.get('outcome')} "
        f"in {record.get('latency_ms')} ms (attempt {record.get('attempt')})"
    )
    # No args or kwargs: loguru then never str.format()s the message, so braces are safe.
    log.bind(**{_RECORD_KEY: dict(record)}).log(chosen, message)


# --- sinks ------------------------------------------------------------------------------------


class _Sink:
    """A loguru stream sink that renders each record itself, scrubbed."""

    def __init__(self, stream: IO[str], render: Any, *, owns_stream: bool) -> None:
        self._stream = stream
        self._render = render
        self._owns = owns_stream
        self._lock = threading.Lock()

    def write(self, message: Any) -> None:
        line = self._render(message.record)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    def stop(self) -> None:
        if self._owns:
            self._stream.close()


def _extra(record: Mapping[str, Any]) -> dict[str, Any]:
    extra = record.get("extra") or {}
    cleaned: dict[str, Any] = redact({k: v for k, v in extra.items() if k != _EXCEPTION_KEY})
    return cleaned


def _human_line(record: Mapping[str, Any]) -> str:
    stamp = record["time"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    head = (
        f"{stamp} | {record['level'].name:<8} | "
        f"{record['name']}:{record['function']}:{record['line']} | "
        f"{scrub_text(str(record['message']))}"
    )
    extra = _extra(record)
    if extra:
        fields = json.dumps(extra, default=str, sort_keys=True, separators=(",", ":"))
        head += f" | {fields}"
    exc = _exception(record)
    if exc is None or (record.get("extra") or {}).get(_EXCEPTION_KEY):
        return f"{head}\n"  # a patched record carries its traceback in the message already
    return f"{head}\n{exc['traceback']}\n"


def _json_line(record: Mapping[str, Any]) -> str:
    document = {
        "time": record["time"].astimezone(UTC).isoformat(),
        "level": record["level"].name,
        "logger": record["name"],
        "function": record["function"],
        "line": record["line"],
        "message": scrub_text(str(record["message"])),
        "extra": _extra(record),
        "exception": _exception(record),
    }
    return json.dumps(document, default=str, sort_keys=True) + "\n"


def _ours(record: Mapping[str, Any]) -> bool:
    name = record.get("name") or ""
    return bool(name == "safeguard" or name.startswith("safeguard."))


class _Handlers:
    """The sink ids :func:`configure_logging` added, so calling it again replaces them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[int] = []


_handlers = _Handlers()


def configure_logging(
    level: str = "INFO",
    json_path: str | Path | None = None,
    *,
    human: bool | IO[str] = True,
    config: LoggingConfig | None = None,
) -> list[int]:
    """Turn safeguard's records on: a human sink (stderr, or the stream given as ``human``)
    and, with ``json_path``, a JSON-lines file. ``config`` (a policy's ``logging`` section)
    supplies ``level`` and ``json_path`` instead of the arguments; ``human=False`` writes the
    JSON-lines file only.

    Calling it again replaces the sinks it added before; :func:`unconfigure_logging` removes
    them. Returns the loguru handler ids. Only records from ``safeguard`` reach these sinks;
    everything they write is scrubbed of credentials.
    """
    if config is not None:
        level, json_path = config.level, config.json_path
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    options: dict[str, Any] = {
        "level": level,
        "filter": _ours,
        "format": "{message}",
        "colorize": False,
        "backtrace": False,
        "diagnose": False,  # locals in tracebacks would print keys and secrets
    }
    with _handlers.lock:
        _remove_ours()
        if human:
            stream = sys.stderr if human is True else human
            _handlers.ids.append(
                logger.add(_Sink(stream, _human_line, owns_stream=False), **options)
            )
        if json_path is not None:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = path.open("a", encoding="utf-8")
            _handlers.ids.append(logger.add(_Sink(handle, _json_line, owns_stream=True), **options))
        logger.enable("safeguard")
        return list(_handlers.ids)


def unconfigure_logging() -> None:
    """Remove the sinks :func:`configure_logging` added and silence safeguard again."""
    with _handlers.lock:
        _remove_ours()
        logger.disable("safeguard")


def _remove_ours() -> None:
    for handler_id in _handlers.ids:
        with contextlib.suppress(ValueError):  # the application removed it already
            logger.remove(handler_id)
    _handlers.ids.clear()


__all__ = [
    "configure_logging",
    "log",
    "log_request",
    "redact",
    "request_record",
    "scrub_record",
    "scrub_text",
    "unconfigure_logging",
]
