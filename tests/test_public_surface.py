"""The public surface, pinned: a change to what users import is a deliberate one.

Each package users import from lists its names in ``__all__``; this test holds those lists.
Adding, removing or renaming a public name fails here until the pin below is changed with it
(and the change is said in the CHANGELOG). Implementation modules are not pinned: import from
the packages listed here. A package offers nothing public beyond its list (its helpers are
bound under private names), and every ``safeguard.*`` name the README and docs mention exists.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import types
from pathlib import Path

import pytest

import safeguard

ROOT = Path(__file__).resolve().parents[1]

PUBLIC: dict[str, str] = {
    "safeguard": """
        Account AsyncGuardedExchange AuthenticationFailed Clock Code ConfigError
        Decision Finding GuardedExchange Hooks InsufficientFunds InvalidInput
        InvalidOrder KillSwitch ManualClock MarketRules MarketSnapshot OrderDenied
        OrderIntent OrderNotFound OutcomeUnknown Policy ProtectiveStopFailed
        RequestBlocked ResumeRefused RetriesExhausted SafeguardError SwitchState
        SystemClock ThrottleHold TradingHalted TradingState VenueBanned VenueRejected
        Verdict __version__ configure_logging guard preview unconfigure_logging
    """,
    "safeguard.guard": """
        AsyncGuardedExchange BandEvent Event EventKind GuardOptions GuardedExchange Hook
        Hooks KillEvent ProtectiveStopEvent RequestEvent RetryEvent StateChangeEvent
        ThrottleEvent VerdictEvent WarningEvent guard
    """,
    "safeguard.killswitch": """
        EquityUpdate FileStateStore KillSwitch LadderReport MarkUpdate MemoryStateStore
        ResumeRefused RiskMonitor StateStore SwitchState TradingState Trip WebhookNotifier
        attach_ladder run_ladder run_ladder_async transition
    """,
    "safeguard.testing": """
        DEFAULT_API_KEY DEFAULT_SECRET DEFAULT_START DEFAULT_SYMBOLS FaultSwitch
        PaperAccount as_fault_plan paper_account sandbox_policy strip_attached_stops
    """,
    "safeguard.venue": """
        AccountChanged AutoDeleveraged BookConfig Crowd DEFAULT_MARKETS Dialect
        FaultPlan FeedFreeze Fill FundingPayment LeverageChanged Liquidation MONEY_SCALE
        MarginCall MarketSpec MarketStepped Notice OrderExpired OrderTriggered
        OrderUpdate Regime ReplaySeries Request Response Spike Venue VenueConfig VenueEvent
        VenueReject VenueServer ccxt_client configure inprocess_client serve
    """,
    "safeguard.fleet": """
        FleetMember RedisEquityStore RedisRateBudget RedisStateStore account_trips
        attach connect disconnected_state join_fleet merge_marks open_fleet_switch
    """,
    "safeguard.paper": """
        Bar PaperConfig PaperResult Strategy StrategyFactory StreamStrategy StreamTrend
        TrendFollower default_plan
        load_factory paper_policy run_paper
    """,
    "safeguard.observability": """
        HEALTH_STATES LATENCY_BUCKETS Metrics MetricsServer SWITCH_STATES
        require_prometheus serve_guard_metrics serve_metrics
    """,
    "safeguard.sim": """
        Fault Outcome World draw_schedule explain replay_command run_seed run_seeds
        shrink
    """,
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_the_public_names_of_each_package_are_the_pinned_ones(package: str) -> None:
    module = importlib.import_module(package)
    pinned = set(PUBLIC[package].split())
    listed = set(module.__all__)
    assert len(module.__all__) == len(listed), f"{package}.__all__ lists a name twice"
    added, removed = sorted(listed - pinned), sorted(pinned - listed)
    assert (added, removed) == ([], []), (
        f"{package}'s public API changed (added {added}, removed {removed}): if that is meant, "
        "change the pin in tests/test_public_surface.py and say so in the CHANGELOG"
    )


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_every_pinned_name_is_there_to_import(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in PUBLIC[package].split() if not hasattr(module, name)]
    assert missing == []


def test_the_top_level_names_are_listed_in_order() -> None:
    import safeguard

    assert safeguard.__all__ == sorted(safeguard.__all__)


# What every ``__init__`` may bind besides its names: ``from __future__ import annotations``
# and ``typing.TYPE_CHECKING`` for the lazy packages' type-checker imports.
PLUMBING = frozenset({"annotations", "TYPE_CHECKING"})


def _is_own_submodule(value: object, package: str, name: str) -> bool:
    return isinstance(value, types.ModuleType) and value.__name__ == f"{package}.{name}"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_a_package_offers_no_public_name_beyond_its_list(package: str) -> None:
    module = importlib.import_module(package)
    stray = sorted(
        name
        for name, value in vars(module).items()
        if name.isidentifier()  # pytest's assertion rewriting binds ``@py_builtins``
        and not name.startswith("_")
        and name not in module.__all__
        and name not in PLUMBING
        and not _is_own_submodule(value, package, name)
    )
    assert stray == [], f"{package} offers {stray} beyond __all__: bind them under private names"


def _all_modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(safeguard.__path__, "safeguard.")
        if not info.name.endswith("__main__")
    ]


def test_every_implementation_module_is_private() -> None:
    # Only packages are imported from (their __all__ is pinned above); a module is where its
    # code lives, named ``_name`` so that nothing invites ``from safeguard.x.module import``.
    public = [
        name
        for name in _all_modules()
        if not name.rpartition(".")[2].startswith("_")
        and not hasattr(importlib.import_module(name), "__path__")  # a package
    ]
    assert public == []


def test_no_name_in_a_package_hides_one_of_its_modules() -> None:
    # ``import safeguard.guard._compose as c`` reads the package's attribute first: a function
    # bound under a module's name hands back the function, not the module.
    # (Compared by name, and an absent attribute passes: a test that re-imports a package,
    # as the metrics tests do without prometheus-client, leaves older module objects behind.)
    hidden = []
    for name in _all_modules():
        importlib.import_module(name)
        package, _, leaf = name.rpartition(".")
        found = getattr(importlib.import_module(package), leaf, None)
        if found is not None and getattr(found, "__name__", None) != name:
            hidden.append(name)
    assert hidden == []


def _documents() -> dict[str, str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {path.name: path.read_text(encoding="utf-8") for path in paths}


# ``safeguard.toml`` is a file name, not a module.
_DOTTED = re.compile(r"\bsafeguard(?:\.[A-Za-z_][A-Za-z0-9_]*)+\b(?!\.toml)")
_FROM_IMPORT = re.compile(r"^\s*from (safeguard[\w.]*) import ([\w, ]+)$", re.M)


def documented_names() -> list[str]:
    """Every ``safeguard.a.b`` the README and docs mention, and every name their snippets
    import from safeguard, as dotted paths."""
    names: set[str] = set()
    for text in _documents().values():
        names.update(n for n in _DOTTED.findall(text) if n != "safeguard.toml")
        for module, imported in _FROM_IMPORT.findall(text):
            names.update(f"{module}.{name.strip()}" for name in imported.split(","))
    return sorted(names)


def resolve(dotted: str) -> object:
    """The object a dotted path names: its longest importable module, then attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(dotted)


def test_the_docs_mention_names_from_several_packages() -> None:
    names = documented_names()
    assert {"safeguard.Policy.load", "safeguard.testing.paper_account"} <= set(names)
    assert len(names) >= 25


@pytest.mark.parametrize("dotted", documented_names())
def test_every_name_the_docs_mention_exists(dotted: str) -> None:
    assert resolve(dotted) is not None
