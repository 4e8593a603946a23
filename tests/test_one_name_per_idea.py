"""One name, one idea: no two modules of safeguard define a type under the same name.

Two ``OrderIntent`` classes (one imported as ``RiskIntent``), two ``Effect`` and two ``Sleep``
made a reader ask which one a line meant. Every class and type alias a module defines at its
top level has a name no other module uses. The mock venue (``safeguard.venue``) is a separate
exchange whose names follow Binance's (its ``Fill`` is the venue's event, not the risk core's
estimate), so it is left out. The names still defined twice are listed below with what they
are waiting for; the list only shrinks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "safeguard"

STILL_TWICE: dict[str, str] = {
    # Renamed on the effects branch (Admission, PositionEffect, Observation, Pause).
    "Decision": "guard/throttle.py's rate answer vs risk/outcome.py's ALLOW/DENY",
    "Effect": "guard/core.py's effects vs risk/pricing.py's open/add/reduce",
    "Event": "guard/events.py's hook event vs killswitch/triggers.py's input",
    "Sleep": "guard/core.py's effect vs killswitch/ladder.py's pause",
    # In files other work is changing now (the ladder, the health monitor, the simulator).
    "Outcome": "guard/degradation.py, killswitch/ladder.py and sim/world.py",
    "Side": "killswitch/ladder.py repeats risk/book.py's Literal['buy', 'sell']",
    "Status": "guard/journal.py's record status vs killswitch/ladder.py's step status",
    "Strategy": "paper/strategy.py's protocol vs sim/world.py's bot behaviour",
    "TrendFollower": "paper/strategy.py's vs sim/world.py's bot",
}


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
