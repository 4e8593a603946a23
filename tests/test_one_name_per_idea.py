"""One name, one idea: no two modules of safeguard define a type under the same name, and no
module reaches into another's private names.

Two ``OrderIntent`` classes (one imported as ``RiskIntent``), two ``Effect`` and two ``Sleep``
made a reader ask which one a line meant. Every class and type alias a module defines at its
top level has a name no other module uses. The mock venue (``safeguard.venue``) is a separate
exchange whose names follow Binance's (its ``Fill`` is the venue's event, not the risk core's
estimate), so it is left out. The names still defined twice are listed below with what they
are waiting for; the list only shrinks.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "safeguard"

STILL_TWICE: dict[str, str] = {}


def _defined_types(module: ast.Module) -> list[str]:
    """The classes and type aliases a module defines at its top level (CapWords names;
    ALL_CAPS constants and private names are not types others import)."""
    names: list[str] = []
    for node in module.body:
        if isinstance(node, ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [target.id for target in node.targets if isinstance(target, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
    return [n for n in names if n[0].isupper() and not n.isupper() and not n.startswith("_")]


def types_defined_twice() -> dict[str, list[str]]:
    homes: dict[str, list[str]] = defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] == "venue":
            continue
        for name in _defined_types(ast.parse(path.read_text(encoding="utf-8"))):
            homes[name].append(relative.as_posix())
    return {name: where for name, where in homes.items() if len(where) > 1}


def test_the_types_read_from_every_module() -> None:
    tree = ast.parse("class Verdict: ...\nCode = int\nMAX = 3\n_Window = 1\n")
    assert _defined_types(tree) == ["Verdict", "Code"]


def test_no_new_type_name_is_defined_twice() -> None:
    twice = types_defined_twice()
    new = {name: where for name, where in twice.items() if name not in STILL_TWICE}
    assert new == {}, "one name, one idea: rename one of these (or import the other)"


def test_the_names_still_defined_twice_are_still_there() -> None:
    # A name fixed elsewhere leaves the list, so the list never hides a new repeat.
    gone = sorted(set(STILL_TWICE) - set(types_defined_twice()))
    assert gone == [], f"defined once now: remove {gone} from STILL_TWICE"


# Private names other modules still import, with what they wait for.
STILL_BORROWED: dict[tuple[str, str], str] = {}


def borrowed_private_names() -> set[tuple[str, str]]:
    """``(module, name)`` for each private name a module imports from another module (a
    private module, ``safeguard.risk._inputs``, is the package's own and may be imported)."""
    borrowed = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("safeguard"):
                borrowed.update(
                    (path.relative_to(PACKAGE).as_posix(), f"{node.module}.{alias.name}")
                    for alias in node.names
                    if alias.name.startswith("_")
                    and not alias.name.startswith("__")
                    and not PACKAGE.parent.joinpath(*f"{node.module}.{alias.name}".split("."))
                    .with_suffix(".py")
                    .exists()
                )
    return borrowed


def test_no_module_imports_another_modules_private_names() -> None:
    new = sorted(borrowed_private_names() - set(STILL_BORROWED))
    assert new == [], "a name other modules use is not private: drop its underscore"


def test_the_private_names_still_borrowed_are_still_borrowed() -> None:
    gone = sorted(set(STILL_BORROWED) - borrowed_private_names())
    assert gone == [], f"no longer borrowed: remove {gone} from STILL_BORROWED"


# Modules still named like a standard-library one, with what they wait for.
STILL_SHADOWING: dict[str, str] = {}


def modules_named_like_the_standard_library() -> set[str]:
    return {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.stem in sys.stdlib_module_names
    }


def test_no_new_module_is_named_like_a_standard_library_module() -> None:
    # guard/logging.py was one: a tool or a script run from its folder imports ours for theirs.
    new = sorted(modules_named_like_the_standard_library() - set(STILL_SHADOWING))
    assert new == []


def test_the_modules_still_shadowing_are_still_there() -> None:
    gone = sorted(set(STILL_SHADOWING) - modules_named_like_the_standard_library())
    assert gone == [], f"renamed: remove {gone} from STILL_SHADOWING"
