"""Redaction: API keys, secrets, signatures and listen keys never leave the process in text.

Two nets, because either alone leaks. By *name*: any mapping key that names a credential
(``apiKey``, ``secret``, ``signature``, ``X-MBX-APIKEY``, ``listenKey``, ``password``, ...)
has its value replaced, and the same names are scrubbed inside free text (``signature=...&``
in a URL, ``"apiKey": "..."`` in a JSON body, ``X-MBX-APIKEY: ...`` in a header dump). By
*value*: every secret registered with :func:`register_secret` is replaced wherever it appears,
because ccxt exception messages embed the request URL and body verbatim and a key can show up
under a name nobody thought of.

Everything here is pure apart from the process-wide registry of secret values.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from safeguard._errors import SafeguardError

REDACTED = "[REDACTED]"

# Normalised (lower case, no ``-``/``_``) names whose values are credentials.
_SENSITIVE_NAMES = frozenset(
    {
        "apikey",
        "xmbxapikey",
        "secret",
        "apisecret",
        "secretkey",
        "signature",
        "listenkey",
        "password",
        "passphrase",
        "privatekey",
        "token",
        "accesstoken",
        "authorization",
        "cookie",
    }
)
_SENSITIVE_SUFFIXES = ("secret", "apikey", "password", "signature", "privatekey", "listenkey")

# The same names as they appear spelled inside text. ``[-_]?`` covers api_key / api-key.
_NAME = (
    r"(?:x[-_]?mbx[-_]?apikey|api[-_]?key|api[-_]?secret|secret[-_]?key|secret|signature"
    r"|listen[-_]?key|password|passphrase|private[-_]?key|access[-_]?token|token)"
)
_TEXT_PATTERNS = (
    # query strings and form bodies: signature=abc&...  (stop at &, whitespace, quotes)
    re.compile(rf"(?i)(\b{_NAME}=)[^&\s\"'<>]+"),
    # JSON and Python reprs: "apiKey": "abc"  /  'secret': 'abc'
    re.compile(rf"(?i)([\"']{_NAME}[\"']\s*:\s*)([\"'])(?:\\.|(?!\2).)*\2"),
    # header dumps: X-MBX-APIKEY: abc
    re.compile(rf"(?i)(\b{_NAME}\s*:\s*)(?![\"'{{\[])[^\s,;}}\]]+"),
)

_STEMS = re.compile(r"(?i)key|secret|signature|password|passphrase|token")

# Registered values shorter than this would redact ordinary words; real keys are far longer.
MIN_SECRET_LENGTH = 6


class _Registry:
    """The process-wide set of secret values and the one pattern that matches them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None


_registry = _Registry()


@functools.lru_cache(maxsize=4096)
def is_sensitive_name(name: str) -> bool:
    """True when ``name`` (a dict key or header name) names a credential."""
    normal = name.lower().replace("-", "").replace("_", "")
    return normal in _SENSITIVE_NAMES or normal.endswith(_SENSITIVE_SUFFIXES)


def register_secret(value: str) -> None:
    """Redact ``value`` (and its URL-encoded forms) wherever it appears from now on.

    Raises ValueError for a non-string or a value shorter than :data:`MIN_SECRET_LENGTH`,
    which could only ever be a mistake (it would redact ordinary text, or nothing useful).
    """
    if not isinstance(value, str):
        raise ValueError(f"secret must be a str, got {type(value).__name__}")
    if len(value) < MIN_SECRET_LENGTH:
        raise ValueError(f"secret must be at least {MIN_SECRET_LENGTH} characters long")
    with _registry.lock:
        _registry.values.update({value, quote(value, safe=""), quote_plus(value)})
        _registry.pattern = _compile(_registry.values)


def register_secrets(values: Iterable[object]) -> None:
    """Register every non-empty string in ``values``; ``None`` and empty strings are skipped."""
    for value in values:
        if isinstance(value, str) and value:
            register_secret(value)


def secrets_of(exchange: object) -> list[str]:
    """The credential values a ccxt exchange instance carries (``apiKey``, ``secret``, ...)."""
    found = []
    for attribute in ("apiKey", "secret", "password", "privateKey", "token"):
        value = getattr(exchange, attribute, None)
        if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
            found.append(value)
    return found


def forget_secrets() -> None:
    """Drop every registered value (tests; a process that rotated its keys)."""
    with _registry.lock:
        _registry.values.clear()
        _registry.pattern = None


def _compile(values: set[str]) -> re.Pattern[str]:
    # Longest first, so a secret that contains another is replaced whole.
    ordered = sorted(values, key=len, reverse=True)
    return re.compile("|".join(re.escape(value) for value in ordered))


def scrub_text(text: str) -> str:
    """``text`` with every credential removed: registered values, then named fields."""
    pattern = _registry.pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    # Every credential name contains one of these stems; most text (symbols, prices, ids)
    # contains none, and one search is far cheaper than the three full patterns.
    if _STEMS.search(text) is None:
        return text
    for named in _TEXT_PATTERNS:
        text = named.sub(_replace_named, text)
    return text


def _replace_named(match: re.Match[str]) -> str:
    if match.lastindex is not None and match.lastindex >= 2:
        quote_char = match.group(2)
        return f"{match.group(1)}{quote_char}{REDACTED}{quote_char}"
    return f"{match.group(1)}{REDACTED}"


class ScrubbedError(Exception):
    """Stands in, in an exception chain, for an error whose type cannot be rebuilt from one
    scrubbed message; ``type_name`` is the original's class name (also at the message's head)."""

    def __init__(self, message: str, type_name: str = "") -> None:
        super().__init__(message, type_name)
        self.type_name = type_name

    def __str__(self) -> str:
        return str(self.args[0])


_MAX_CHAIN = 16


def scrubbed_exception(exc: BaseException) -> BaseException:
    """A copy of ``exc`` safe to chain as a ``__cause__``, print and log.

    ccxt messages embed the signed URL and a lower-layer error (requests, aiohttp) the URL and
    the prepared request, so a raw error chained under a scrubbed one leaks through
    ``traceback.format_exception`` and any application's ``logger.exception``. The copy has the
    same type when that type can be built from the scrubbed message alone (every ccxt error can),
    else it is a :class:`ScrubbedError` naming the original type. Its own cause and context are
    copied the same way. It carries no traceback and no attributes: the original's frames hold
    the signed URL and the key headers as locals, which a logger's ``diagnose`` mode prints.
    A :class:`~safeguard._errors.SafeguardError` is returned as it is (built scrubbed).
    """
    return _scrubbed(exc, {}, 0)


def _scrubbed(exc: BaseException, seen: dict[int, BaseException], depth: int) -> BaseException:
    if isinstance(exc, SafeguardError):
        return exc
    done = seen.get(id(exc))
    if done is not None:
        return done
    message = scrub_text(str(exc))
    copy: BaseException
    try:
        copy = type(exc)(message)
        if str(copy) != message:
            raise TypeError("the type renders its message differently")
    except Exception:  # any constructor may refuse a single message
        name = type(exc).__name__
        copy = ScrubbedError(f"{name}: {message}" if message else name, name)
    seen[id(exc)] = copy
    if depth < _MAX_CHAIN:
        if exc.__cause__ is not None:
            copy.__cause__ = _scrubbed(exc.__cause__, seen, depth + 1)
        elif exc.__context__ is not None and not exc.__suppress_context__:
            copy.__context__ = _scrubbed(exc.__context__, seen, depth + 1)
    copy.__suppress_context__ = exc.__suppress_context__
    return copy


_MAX_DEPTH = 32


def redact(obj: Any, *, _depth: int = 0) -> Any:
    """A copy of ``obj`` safe to log: credential-named values replaced, text scrubbed.

    Mappings become dicts, lists and tuples keep their type, strings and bytes are scrubbed,
    exceptions become their scrubbed text, and other values are returned as they are. Nesting
    deeper than a sane request ever is comes back as a placeholder rather than recursing.
    """
    if obj is None or isinstance(obj, int | float):
        return obj
    if _depth > _MAX_DEPTH:
        return "[TOO DEEP]"
    if isinstance(obj, str):
        return scrub_text(obj)
    if isinstance(obj, bytes | bytearray):
        return scrub_text(bytes(obj).decode("utf-8", errors="replace"))
    if isinstance(obj, Mapping):
        out: dict[Any, Any] = {}
        for key, value in obj.items():
            if isinstance(key, str):
                # A key is a name, not a name=value pair: of the text patterns only the
                # registered values can apply (a dict keyed by API key).
                sensitive = is_sensitive_name(key)
                safe_key = pattern.sub(REDACTED, key) if (pattern := _registry.pattern) else key
                out[safe_key] = REDACTED if sensitive else redact(value, _depth=_depth + 1)
            else:
                out[redact(key, _depth=_depth + 1)] = redact(value, _depth=_depth + 1)
        return out
    if isinstance(obj, list):
        return [redact(item, _depth=_depth + 1) for item in obj]
    if isinstance(obj, tuple):
        return tuple(redact(item, _depth=_depth + 1) for item in obj)
    if isinstance(obj, BaseException):
        return scrub_text(f"{type(obj).__name__}: {obj}")
    return obj


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "ScrubbedError",
    "forget_secrets",
    "is_sensitive_name",
    "redact",
    "register_secret",
    "register_secrets",
    "scrub_text",
    "scrubbed_exception",
    "secrets_of",
]
