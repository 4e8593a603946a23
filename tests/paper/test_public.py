"""The public surface of ``safeguard.paper`` is pinned: removing a name is a breaking change."""

from __future__ import annotations

import safeguard.paper


def test_the_public_names() -> None:
    assert safeguard.paper.__all__ == [
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
    for name in safeguard.paper.__all__:
        assert getattr(safeguard.paper, name) is not None
    from safeguard.paper._session import run_paper

    assert safeguard.paper.run_paper is run_paper
