"""Every policy key does something: a key nothing reads is a protection a user turns on and
does not get (``require_stress_survival`` was one).

The check is on the source: each leaf key of :class:`~safeguard._config.Policy` must be read as
an attribute (``something.<key>``) by a module of the package other than the one defining it
and the ``safeguard policy`` printer. A name that some other object also has can hide an
unread key here, so the keys wired for this check also have behavioural tests of their own
(``tests/risk/test_verdict_stress.py``, ``tests/guard/test_secrets_guarded.py``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

import safeguard
from safeguard._config import Policy

PACKAGE = Path(safeguard.__file__).parent
NOT_READERS = {PACKAGE / "_config.py", PACKAGE / "cli" / "_policy.py"}


def leaf_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, attribute name) for every setting that is not itself a section."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from leaf_keys(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", name


def attributes_read() -> set[str]:
    names: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if path in NOT_READERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
    return names


def test_every_policy_key_is_read_by_the_package() -> None:
    read = attributes_read()
    keys = list(leaf_keys(Policy))
    assert len(keys) > 80  # the walk reaches the nested sections (risk.stress, triggers)
    unread = [dotted for dotted, name in keys if name not in read]
    assert unread == []
