"""Validation of numbers handed to the risk core.

Every value type in :mod:`safeguard.risk` checks its fields on construction with these, so a
NaN, an infinity, a bool posing as a number or a negative size is a ``ValueError`` that names
the field, never a number that quietly poisons a verdict. They return the value as a float.
"""

from __future__ import annotations

import math
from typing import Any


def number(name: str, value: Any) -> float:
    """A finite real number (``bool`` is refused: ``True`` is not a price)."""
    if value.__class__ is float and value - value == 0.0:
        return value  # the common case, on every hot path: finite (inf - inf and NaN are NaN)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def positive(name: str, value: Any) -> float:
    """A finite number > 0."""
    result = number(name, value)
    if result <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return result


def non_negative(name: str, value: Any) -> float:
    """A finite number >= 0."""
    result = number(name, value)
    if result < 0.0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return result


def fraction_below_one(name: str, value: Any) -> float:
    """A finite number in [0, 1)."""
    result = non_negative(name, value)
    if result >= 1.0:
        raise ValueError(f"{name} must be below 1, got {value!r}")
    return result


def count(name: str, value: Any) -> int:
    """A non-negative ``int`` (not a bool, not a float)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return value


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """One of ``allowed`` (exact, case-sensitive: ``"BUY"`` is a typo, not a side)."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def flag(name: str, value: Any) -> bool:
    """A real ``bool`` (``1`` or ``"yes"`` are refused: a reduce-only flag is never guessed)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value
