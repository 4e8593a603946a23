"""The compiled risk core's build step (``tools/risk_mypyc.py``) opens only ``evaluate``.

A mypyc-compiled function raises ``TypeError`` for an argument that does not match its
annotation; the verdict answers junk with an INVALID_INPUT denial instead. The build therefore
declares ``evaluate``'s parameters ``Any`` in the copy it compiles, and nothing else. (Building
and testing the compiled copy needs a C compiler and minutes: a documented step in
``docs/benchmarks.md``, not part of this suite.)
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("risk_mypyc", ROOT / "tools" / "risk_mypyc.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _parameter_notes(source: str) -> dict[str, list[str]]:
    return {
        node.name: [
            ast.unparse(arg.annotation)
            for arg in [*node.args.args, *node.args.kwonlyargs]
            if arg.annotation is not None
        ]
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef)
    }


def test_the_compiled_copy_takes_any_argument_only_at_evaluate() -> None:
    tool = _tool()
    assert tool.OPEN_API == (("safeguard/risk/_verdict.py", "evaluate"),)
    assert "safeguard/risk/_verdict.py" in tool.COMPILED
    source = (ROOT / "safeguard" / "risk" / "_verdict.py").read_text()
    opened = tool.venue_mypyc.open_api(source, "evaluate")

    before, after = _parameter_notes(source), _parameter_notes(opened)
    assert len(after["evaluate"]) == len(before["evaluate"]) >= 10
    assert set(after["evaluate"]) == {"Any"}
    assert "OrderIntent" in before["evaluate"]
    for name, notes in after.items():
        if name != "evaluate":
            assert notes == before[name], name  # every other function keeps its types
    assert len(opened.splitlines()) == len(source.splitlines())


def test_no_class_a_trusted_constructor_builds_is_compiled() -> None:
    # trusted() writes through a slotted dataclass's member descriptors, which a compiled
    # class does not have: the module defining such a class would fail at import compiled.
    trusted_of: set[str] = set()
    for path in (ROOT / "safeguard").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "trusted"
                and node.args
                and isinstance(node.args[0], ast.Name)
            ):
                trusted_of.add(node.args[0].id)
    assert {"Verdict", "PriceTrack", "FundingEstimate"} <= trusted_of
    for module in _tool().COMPILED:
        tree = ast.parse((ROOT / module).read_text())
        own = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
        assert not (own & trusted_of), (module, own & trusted_of)
