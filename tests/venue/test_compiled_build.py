"""The compiled venue's build step (``tools/venue_mypyc.py``) opens only the public API.

A mypyc-compiled function raises ``TypeError`` for an argument that does not match its
annotation; the venue answers junk with Binance's reject codes instead. The build therefore
declares the public ``Venue`` methods' parameters ``Any`` in the copy it compiles, and nothing
else. (Building and testing the compiled copy itself needs a C compiler and minutes, so
``.ci/run`` does it after this suite: it builds the copy and runs ``tests/venue`` against it.)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("venue_mypyc", ROOT / "tools" / "venue_mypyc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _annotations(source: str, class_name: str) -> dict[str, list[str]]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {
                method.name: [
                    ast.unparse(arg.annotation)
                    for arg in [*method.args.args, *method.args.kwonlyargs]
                    if arg.annotation is not None
                ]
                for method in node.body
                if isinstance(method, ast.FunctionDef)
            }
    raise AssertionError(f"no class {class_name}")


def test_the_compiled_copy_takes_any_argument_only_at_the_public_methods() -> None:
    source = (ROOT / "safeguard" / "venue" / "_engine.py").read_text()
    opened = _tool().open_api(source, "Venue")

    before, after = _annotations(source, "Venue"), _annotations(opened, "Venue")
    assert len(after["place_order"]) == len(before["place_order"]) > 5
    assert set(after["place_order"]) == {"Any"}
    assert set(after["set_leverage"]) == {"Any"}
    for name, notes in after.items():
        if name.startswith("_") and name != "__init__":
            assert notes == before[name], name  # private methods keep their types
        else:
            assert set(notes) <= {"Any"}, name
    # Only parameter annotations changed: with them removed, the two modules are one tree.
    assert len(opened.splitlines()) == len(source.splitlines())
    assert _without_parameter_notes(opened) == _without_parameter_notes(source)


def _without_parameter_notes(source: str) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.annotation = None
    return ast.dump(tree)


def test_a_class_without_public_annotations_is_refused() -> None:
    with pytest.raises(SystemExit, match="nothing to open"):
        _tool().open_api("class Venue:\n    def _x(self, a: int) -> None: ...\n", "Venue")
