"""Paper trading: a strategy on the mock venue, guarded and naive side by side.

``safeguard paper`` runs :class:`~safeguard.paper.strategy.TrendFollower` (or your own
strategy, see :mod:`safeguard.paper.strategy`) twice on simulated time, once through the
guarded exchange and once through plain ccxt with naive retries, under the same seed and fault
plan (:mod:`safeguard.paper.scenario`), and writes a report of what the guard changed::

    from pathlib import Path
    from safeguard.paper import PaperConfig, default_plan, paper_policy, run_paper

    config = PaperConfig(policy=paper_policy(None, Path("state")),
                         faults=default_plan(86_400, ["BTCUSDT"]))
    result = run_paper(config, Path("report"))
    print(result.html, result.summaries["naive"].bans)

``run_paper`` (and the report behind it) is imported on first use: it brings matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from safeguard.paper.runner import PaperConfig, paper_policy
from safeguard.paper.scenario import default_plan
from safeguard.paper.strategy import Bar, Strategy, StrategyFactory, TrendFollower, load_factory

if TYPE_CHECKING:
    from safeguard.paper.session import PaperResult, run_paper


def __getattr__(name: str) -> Any:
    if name in ("PaperResult", "run_paper"):
        from safeguard.paper import session

        return getattr(session, name)
    raise AttributeError(f"module 'safeguard.paper' has no attribute {name!r}")


__all__ = [
    "Bar",
    "PaperConfig",
    "PaperResult",
    "Strategy",
    "StrategyFactory",
    "TrendFollower",
    "default_plan",
    "load_factory",
    "paper_policy",
    "run_paper",
]
