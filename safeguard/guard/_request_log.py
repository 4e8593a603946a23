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
import inspect
import json
import os
import sys
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qsl, urlsplit

from loguru import logger  # sinks only: records are emitted through `log`

from safeguard._config import LoggingConfig
from safeguard._log import EXCEPTION_KEY as _EXCEPTION_KEY
from safeguard._log import exception_of as _exception
from safeguard._log import logger as _package_logger
from safeguard._log import scrub_record
from safeguard.guard._redact import redact, scrub_text
from safeguard.guard._throttle import rate_headers

_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")
_RECORD_KEY = "request"


log = _package_logger
"""The package's scrubbing logger (:mod:`safeguard._log`): records are scrubbed before any sink."""


def request_record(
    *,
    method: str,
    endpoint: str | None,
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
    venue path (``POST /fapi/v1/order``), ``params`` what went on the wire; ``headers`` are
    the answer's, of which only the rate-limit ones are kept;
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


# --- the wire: which venue path a ccxt call hit, with what, and the HTTP status -----------------


@dataclass(frozen=True, slots=True)
class WireRequest:
    """The last HTTP request a ccxt call made: verb, venue path, parameters (query and form
    body, not yet redacted) and, once an answer came, its HTTP status."""

    http_method: str
    path: str
    params: dict[str, Any]
    status: int | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.http_method} {self.path}"


class _Noted:
    """A request as ccxt sent it, parsed into a :class:`WireRequest` only when a record
    needs it (most requests are logged by nobody)."""

    __slots__ = ("body", "method", "status", "url")

    def __init__(self, url: str, method: str, body: Any) -> None:
        self.url = url
        self.method = method
        self.body = body
        self.status: int | None = None

    def answered(self, status: int) -> _Noted:
        # A new note, not this one changed: a task started meanwhile holds this one too.
        noted = _Noted(self.url, self.method, self.body)
        noted.status = status
        return noted

    def parsed(self) -> WireRequest:
        return replace(_wire_request(self.url, self.method, self.body), status=self.status)


# Per thread and per asyncio task: concurrent calls on one exchange each see their own request
# (ccxt's own ``last_request_url`` is one attribute shared by all of them).
_wire: ContextVar[_Noted | None] = ContextVar("safeguard_wire_request", default=None)
_TAPPED = "_sg_wire_tapped"


def tap_wire(exchange: Any) -> None:
    """Note, for the request log, every HTTP request ``exchange`` sends and the status of its
    answer. Wraps the instance's ``fetch`` (the request) and ``on_rest_response`` (the status,
    which ccxt keeps nowhere); a no-op for an object without them or already tapped."""
    fetch = getattr(exchange, "fetch", None)
    on_rest_response = getattr(exchange, "on_rest_response", None)
    if getattr(exchange, _TAPPED, False) or not (callable(fetch) and callable(on_rest_response)):
        return
    if inspect.iscoroutinefunction(fetch):

        async def fetch_async(
            url: str, method: str = "GET", headers: Any = None, body: Any = None
        ) -> Any:
            _wire.set(_Noted(url, method, body))
            return await fetch(url, method, headers, body)

        tapped: Any = fetch_async
    else:

        def fetch_sync(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            _wire.set(_Noted(url, method, body))
            return fetch(url, method, headers, body)

        tapped = fetch_sync

    def answered(code: Any, *args: Any) -> Any:
        current = _wire.get()
        if current is not None and isinstance(code, int):
            _wire.set(current.answered(code))
        return on_rest_response(code, *args)

    exchange.fetch = tapped
    exchange.on_rest_response = answered
    setattr(exchange, _TAPPED, True)


def wire_tapped(exchange: Any) -> bool:
    """Whether :func:`tap_wire` notes ``exchange``'s requests (then a call that noted none
    was answered from ccxt's cache)."""
    return bool(getattr(exchange, _TAPPED, False))


def take_wire() -> _Noted | None:
    """The request noted since the last call in this thread or task (``None``: the ccxt call
    was answered from its cache, or the exchange is not tapped), and forget it. Its
    :meth:`~_Noted.parsed` form is the :class:`WireRequest`."""
    noted = _wire.get()
    if noted is not None:
        _wire.set(None)
    return noted


def _wire_request(url: str, method: str, body: Any) -> WireRequest:
    parts = urlsplit(str(url))
    params: dict[str, Any] = dict(parse_qsl(parts.query, keep_blank_values=True))
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str) and body:
        try:
            decoded = json.loads(body)
        except ValueError:
            params.update(parse_qsl(body, keep_blank_values=True))
        else:
            if isinstance(decoded, dict):
                params.update(decoded)
    return WireRequest(str(method).upper(), parts.path or "/", params)


# --- sinks ------------------------------------------------------------------------------------


class _Sink:
    """A loguru stream sink that renders each record itself, scrubbed."""

    def __init__(self, stream: IO[str], render: Any) -> None:
        self._stream = stream
        self._render = render
        self._lock = threading.Lock()

    def write(self, message: Any) -> None:
        line = self._render(message.record)
        with self._lock:
            self._stream.write(line)
            self._stream.flush()


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


def _ours(record: Mapping[str, Any]) -> bool:
    name = record.get("name") or ""
    return bool(name == "safeguard" or name.startswith("safeguard."))


def _ours_scrubbed(record: Any) -> bool:
    """The sinks' filter: safeguard's records only, scrubbed once more on the way in (a record
    that reached loguru without the package logger's patch is scrubbed here; scrubbing twice
    changes nothing). loguru's own ``serialize`` then writes the record as it stands."""
    if not _ours(record):
        return False
    scrub_record(record)
    return True


class _Handlers:
    """The sink ids :func:`configure_logging` added, so calling it again replaces them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.ids: list[int] = []
        self.default_replaced = False


_LOGURU_DEFAULT_HANDLER = 0
"""loguru's own stderr handler, added at import with id 0 (loguru's documentation:
``logger.remove(0)``)."""


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
    everything they write is scrubbed of credentials. Each JSON line is loguru's own
    serialization (``serialize=True``): ``{"text": ..., "record": {...}}``, a request's fields
    under ``record.extra.request``.

    With the human sink on stderr, loguru's default stderr handler (if the application has not
    removed it) would print every safeguard record a second time: it is replaced by the same
    handler minus safeguard's records, so the application's own records print as before.
    """
    if config is not None:
        level, json_path = config.level, config.json_path
    if level not in _LEVELS:
        raise ValueError(f"level must be one of {', '.join(_LEVELS)}; got {level!r}")
    options: dict[str, Any] = {
        "level": level,
        "filter": _ours_scrubbed,
        "format": "{message}",
        "colorize": False,
        "backtrace": False,
        "diagnose": False,  # locals in tracebacks would print keys and secrets
    }
    with _handlers.lock:
        _remove_ours()
        if human:
            stream = sys.stderr if human is True else human
            if human is True:
                _replace_loguru_default()
            _handlers.ids.append(logger.add(_Sink(stream, _human_line), **options))
        if json_path is not None:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            _handlers.ids.append(
                logger.add(str(path), serialize=True, encoding="utf-8", mode="a", **options)
            )
        logger.enable("safeguard")
        return list(_handlers.ids)


def unconfigure_logging() -> None:
    """Remove the sinks :func:`configure_logging` added and silence safeguard again."""
    with _handlers.lock:
        _remove_ours()
        logger.disable("safeguard")


def _not_ours(record: Mapping[str, Any]) -> bool:
    return not _ours(record)


def _replace_loguru_default() -> None:
    """Swap loguru's default stderr handler for one that leaves safeguard's records to our own
    stderr sink (once per process; kept by :func:`unconfigure_logging`, as the default was)."""
    if _handlers.default_replaced:
        return
    try:
        logger.remove(_LOGURU_DEFAULT_HANDLER)
    except ValueError:
        return  # the application removed it (or never had it): nothing prints twice
    _handlers.default_replaced = True
    # At loguru's default level, which its LOGURU_LEVEL environment variable overrides.
    logger.add(sys.stderr, level=os.environ.get("LOGURU_LEVEL", "DEBUG"), filter=_not_ours)


def _remove_ours() -> None:
    for handler_id in _handlers.ids:
        with contextlib.suppress(ValueError):  # the application removed it already
            logger.remove(handler_id)
    _handlers.ids.clear()


__all__ = [
    "WireRequest",
    "configure_logging",
    "log",
    "log_request",
    "redact",
    "request_record",
    "scrub_record",
    "scrub_text",
    "take_wire",
    "tap_wire",
    "unconfigure_logging",
    "wire_tapped",
]
