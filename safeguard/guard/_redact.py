"""Redaction: API keys, secrets, signatures and listen keys never leave the process in text.

The implementation is :mod:`safeguard._redact`, a leaf module (it imports nothing of
``safeguard.guard``), so that the package's scrubbing logger (:mod:`safeguard._log`) can use it
from any module without importing the guard, and ccxt with it, on its first record. This is
the public path.
"""

from __future__ import annotations

from safeguard._redact import (
    MIN_SECRET_LENGTH,
    REDACTED,
    ScrubbedError,
    forget_secrets,
    is_sensitive_name,
    redact,
    register_secret,
    register_secrets,
    scrub_text,
    scrubbed_exception,
    secrets_of,
)

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
