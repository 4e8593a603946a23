"""Fast constructors for frozen, slotted dataclasses built on the verdict's hot path.

A frozen dataclass's generated ``__init__`` sets each field through ``object.__setattr__``
(the class's own ``__setattr__`` refuses), about 0.2 µs a field: the 24-field
:class:`~safeguard.risk._outcome.Costing` cost 5 µs of a 65 µs verdict. :func:`trusted` builds
a constructor that writes the slots directly through their descriptors instead, and runs no
``__post_init__``: use it for classes without one, or for values the caller has already
validated (the object is then equal, field for field, to what the class itself would build).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def trusted(cls: type[T]) -> Callable[..., T]:
    """A keyword-only constructor for the frozen, slotted dataclass ``cls``, with the class's
    defaults, that skips ``__post_init__``. Fields with a ``default_factory`` are refused."""
    if not dataclasses.is_dataclass(cls) or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a slotted dataclass")
    fields = dataclasses.fields(cls)
    scope: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    params, body = [], []
    for f in fields:
        if f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name} has a default_factory")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            scope[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        scope[f"_set_{f.name}"] = cls.__dict__[f.name].__set__  # the slot's member descriptor
        body.append(f"    _set_{f.name}(self, {f.name})")
    source = (
        f"def make(*, {', '.join(params)}):\n    self = _new(_cls)\n"
        + "\n".join(body)
        + "\n    return self\n"
    )
    exec(source, scope)  # as dataclasses does: one plain function, no per-field loop
    make: Callable[..., T] = scope["make"]
    make.__qualname__ = f"trusted({cls.__qualname__})"
    return make


__all__ = ["trusted"]
