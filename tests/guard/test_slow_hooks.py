"""A hook runs after the effect its event's decision chose, never between the two.

A verdict says ALLOW for the price it saw; a hook that takes its time (a slow metrics push, a
chat message) must not make the order leave later than the decision. Each test watches the
venue from inside the hook: the order its verdict allowed is already there. Real ccxt
``binanceusdm`` against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, RequestEvent, VerdictEvent
from safeguard.testing import PaperAccount, paper_account

SYMBOL = "BTC/USDT:USDT"


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _slow_verdict_hook(paper: PaperAccount, seen: list[dict[str, float]]) -> Hooks:
    """A hook on the verdict that notes the venue's positions, then takes 30 s (of the venue's
    simulated time: the market moves on while it runs)."""
    hooks = Hooks()

    def slow(event: VerdictEvent) -> None:
        seen.append(paper.positions())
        paper.advance(30)

    hooks.subscribe(EventKind.VERDICT, slow)
    return hooks


def test_a_slow_verdict_hook_runs_after_the_order_it_allowed_is_sent(
    paper: PaperAccount, tmp_path: Path
) -> None:
    seen: list[dict[str, float]] = []
    policy = Policy.build(risk={"require_stop": False})
    ex = paper.guarded(policy, state_dir=tmp_path, hooks=_slow_verdict_hook(paper, seen))
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert seen == [{"BTCUSDT": pytest.approx(0.01)}]


async def test_a_slow_verdict_hook_runs_after_the_async_order_it_allowed_is_sent(
    paper: PaperAccount, tmp_path: Path
) -> None:
    seen: list[dict[str, float]] = []
    policy = Policy.build(risk={"require_stop": False})
    ex = paper.guarded(
        policy, state_dir=tmp_path, hooks=_slow_verdict_hook(paper, seen), asyncio=True
    )
    try:
        await ex.load_markets()
        await ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert seen == [{"BTCUSDT": pytest.approx(0.01)}]
    finally:
        await paper.aclose()


def test_hooks_still_hear_every_event_of_a_call_in_order(
    paper: PaperAccount, tmp_path: Path
) -> None:
    # Held events are delivered, none lost or reordered: the verdict, then the order's request.
    heard: list[Any] = []
    hooks = Hooks()
    hooks.subscribe(None, heard.append)
    policy = Policy.build(risk={"require_stop": False})
    ex = paper.guarded(policy, state_dir=tmp_path, hooks=hooks)
    ex.load_markets()
    heard.clear()
    ex.create_order(SYMBOL, "market", "buy", 0.01)
    kinds = [type(event) for event in heard]
    assert VerdictEvent in kinds
    order_request = next(
        i for i, e in enumerate(heard) if isinstance(e, RequestEvent) and e.method == "create_order"
    )
    assert kinds.index(VerdictEvent) < order_request
