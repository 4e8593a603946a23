"""The docstrings describe the house as it is: every cross-reference in them names something.

Docstrings point at each other with Sphinx roles (``:class:`~safeguard.guard._core.GuardCore```,
``:func:`preview```, ``:mod:`.matching```). A rename or a move that forgets one leaves a reader
following a name that no longer exists; this test follows every one of them.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import importlib.util
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "safeguard"

ROLE = re.compile(r":(?:mod|class|func|meth|data|attr|exc|obj|const):`([^`]*)`")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def references() -> list[tuple[str, int, str]]:
    """(module, line, target) for every role in the package's source."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__main__.py":
            continue
        text = path.read_text(encoding="utf-8")
        for match in ROLE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found.append((module_name(path), line, match.group(1)))
    return found


def _follow(found: object, attributes: list[str]) -> object:
    for attribute in attributes:
        found = getattr(found, attribute)
    return found


def _absolute(dotted: str) -> object:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            module = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        return _follow(module, parts[cut:])
    raise LookupError(dotted)


@cache
def _instance_attributes(package: str) -> frozenset[str]:
    """Names the classes of ``package``'s modules set on ``self`` (instance attributes, which
    no class object shows)."""
    folder = PACKAGE.parent.joinpath(*package.split("."))
    names = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
                and isinstance(node.ctx, ast.Store)
            ):
                names.add(node.attr)
    return frozenset(names)


def resolves(module: str, target: str) -> bool:
    """Whether ``target``, written in ``module``, names something: an absolute dotted path, a
    path relative to the module's package (``.state.MarketState``), a name the module sees, a
    builtin, or a method or attribute of a class of the module's package (how a method
    mentions its neighbours)."""
    name = target.strip().lstrip("~!").removesuffix("()")
    is_package = PACKAGE.joinpath(*module.split(".")[1:], "__init__.py").exists()
    package = module if is_package else module.rpartition(".")[0]
    if name.startswith("."):
        name = importlib.util.resolve_name(name, package)
    attempts = [
        lambda: _absolute(name),
        lambda: _follow(importlib.import_module(module), name.split(".")),
        lambda: _follow(builtins, name.split(".")),
    ]
    for attempt in attempts:
        try:
            attempt()
        except (AttributeError, LookupError, ImportError):
            continue
        return True
    if "." in name:
        return False
    if name in _instance_attributes(package):
        return True
    for sibling in PACKAGE.parent.joinpath(*package.split(".")).glob("*.py"):
        if sibling.name == "__main__.py":
            continue
        loaded = importlib.import_module(module_name(sibling))
        for value in vars(loaded).values():
            if (
                isinstance(value, type)
                and value.__module__ == loaded.__name__
                and hasattr(value, name)
            ):
                return True
    return False


def test_the_references_are_read() -> None:
    found = references()
    assert len(found) > 400
    assert ("safeguard.guard", 9, "~safeguard.guard._core.GuardCore") in [
        (module, line, target) for module, line, target in found
    ]


def test_a_reference_to_nothing_is_seen() -> None:
    assert resolves("safeguard.guard._gate", "~safeguard.guard._core.GuardCore")
    assert resolves("safeguard.venue._engine", "._matching")
    assert not resolves("safeguard.venue._engine", ".matching")  # renamed: _matching
    assert not resolves("safeguard.guard._gate", "~safeguard.guard.logging.tap_wire")
    assert not resolves("safeguard.risk._verdict", "RiskIntent")


def test_every_docstring_reference_names_something() -> None:
    broken = [
        f"{module} line {line}: {target}"
        for module, line, target in references()
        if not resolves(module, target)
    ]
    assert broken == []
