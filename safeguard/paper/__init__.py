"""Paper trading: a strategy on the mock venue, guarded and naive side by side.

``safeguard paper`` runs :class:`~safeguard.paper._strategy.TrendFollower` (or your own
strategy, see :mod:`safeguard.paper._strategy`; :class:`~safeguard.paper._strategy.StreamTrend`
is one written on ``watch_*``) twice on simulated time, once through the
guarded exchange and once through plain ccxt with naive retries, under the same seed and fault
plan (:mod:`safeguard.paper._scenario`), and writes a report of what the guard changed::

    from pathlib import Path
    from safeguard.paper import PaperConfig, default_plan, paper_policy, run_paper

    config = PaperConfig(policy=paper_policy(None, Path("state")),
                         faults=default_plan(86_400, ["BTCUSDT"]))
    result = run_paper(config, Path("report"))
    print(result.html, result.summaries["naive"].bans)

Every name is imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from safeguard import _lazy

if TYPE_CHECKING:
    from safeguard.paper._runner import PaperConfig, paper_policy
    from safeguard.paper._scenario import default_plan
    from safeguard.paper._session import PaperResult, run_paper
    from safeguard.paper._strategy import (
        Bar,
        Strategy,
        StrategyFactory,
        StreamStrategy,
        StreamTrend,
        TrendFollower,
        load_factory,
    )

# Loaded on first use: the runner brings ccxt and the guard, the session matplotlib, and
# ``safeguard journal`` (which reads only the journal modules) should pay for neither.
_HOMES = {
    "Bar": "_strategy",
    "PaperConfig": "_runner",
    "PaperResult": "_session",
    "Strategy": "_strategy",
    "StrategyFactory": "_strategy",
    "StreamStrategy": "_strategy",
    "StreamTrend": "_strategy",
    "TrendFollower": "_strategy",
    "default_plan": "_scenario",
    "load_factory": "_strategy",
    "paper_policy": "_runner",
    "run_paper": "_session",
}


__getattr__, __dir__ = _lazy.lazy_exports(
    __name__, {name: f".{home}" for name, home in _HOMES.items()}, globals()
)


__all__ = [
    "Bar",
    "PaperConfig",
    "PaperResult",
    "Strategy",
    "StrategyFactory",
    "StreamStrategy",
    "StreamTrend",
    "TrendFollower",
    "default_plan",
    "load_factory",
    "paper_policy",
    "run_paper",
]
