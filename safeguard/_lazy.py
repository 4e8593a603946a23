"""Lazy exports for a package's ``__init__`` (PEP 562), written once for every package.

A package lists where each public name lives; the name's module is imported the first time
the name is read, so importing the package stays quick (ccxt, redis and the plotting stack
load only when something that needs them is used).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Collection, Mapping
from typing import Any


def lazy_exports(
    package: str,
    homes: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    uncached: Collection[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, whose ``namespace`` is ``globals()``.

    ``homes`` maps each lazy name to its module, absolute or relative to ``package``
    (``".budget"``). A loaded name is kept in ``namespace``, so the module is asked once,
    except the names in ``uncached`` (one that would shadow a subpackage of the same name).
    """

    def load(name: str) -> Any:
        module = homes.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        if name not in uncached:
            namespace[name] = value
        return value

    def names() -> list[str]:
        return sorted(set(namespace) | set(homes))

    return load, names


__all__ = ["lazy_exports"]
