"""Orders placed at once from many threads or tasks on one guarded exchange.

Real ``ccxt.binanceusdm`` (sync in process; async over loopback HTTP, where every request
really yields to the event loop) on the mock venue, on simulated time. Whatever the interleaving,
each caller gets one of the documented outcomes (its order, or a ``SafeguardError``), every
order on the venue was handed to the caller that asked for it, and the journal is left with
nothing pending: one caller's reconcile never settles (or compacts away) another caller's order
that is still on its way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._journal import OrderJournal, Status
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue._client import ccxt_client

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
CALLERS = 16
ROUNDS = 4
AMOUNT = 0.002


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False})


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    acct = paper_account(wallet=1_000_000)
    yield acct
    acct.close()


def _undocumented(outcomes: list[Any]) -> list[Any]:
    return [
        o
        for o in outcomes
        if isinstance(o, BaseException) and not isinstance(o, errors.SafeguardError)
    ]


def _check_round(
    account: PaperAccount, journal: OrderJournal, outcomes: list[Any], *, earlier: set[str]
) -> None:
    """Every outcome documented; the venue holds exactly the orders callers were given (plus
    any a caller was told might exist, and ``earlier`` ones); nothing left pending."""
    assert _undocumented(outcomes) == []
    returned = {o["clientOrderId"] for o in outcomes if isinstance(o, dict)}
    maybe = {o.client_order_id for o in outcomes if isinstance(o, errors.OutcomeUnknown)}
    on_venue = [o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)]
    assert len(on_venue) == len(set(on_venue))  # no order doubled
    assert returned <= set(on_venue)
    assert set(on_venue) - returned - earlier <= maybe
    assert [e.client_order_id for e in journal.unresolved() if e.status is Status.PENDING] == []


def test_threads_racing_their_first_orders_each_get_a_documented_outcome(
    account: PaperAccount, tmp_path: Path
) -> None:
    earlier: set[str] = set()
    for round_ in range(ROUNDS):
        # A fresh guarded exchange each round: its first orders reconcile before they are sent.
        ex = account.guarded(_policy(), state_dir=tmp_path / f"round-{round_}")
        outcomes = _race(lambda ex=ex: ex.create_order(SYMBOL, "market", "buy", AMOUNT))
        assert _undocumented(outcomes) == [], f"round {round_}"
        _check_round(account, ex.runtime.core.journal, outcomes, earlier=earlier)
        earlier = {o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)}
        ex.runtime.core.journal.close()


AMBIGUOUS = {
    "rules": [
        # Orders carried out with their answers lost, and look-ups that fail: some orders end
        # OutcomeUnknown, after which every caller's next order reconciles first, while the
        # other callers' orders are on their way.
        {
            "kind": "timeout_after_accept",
            "endpoint": "POST /fapi/v1/order",
            "probability": 0.3,
            "hold_s": 0.01,
        },
        {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 503, "probability": 0.5},
        {"kind": "error", "endpoint": "GET /fapi/v1/openOrders", "status": 503, "probability": 0.3},
    ]
}


def _ambiguous_policy() -> Policy:
    # Few look-ups, so that some orders do end unknown; never SEVERE-only, so orders go on.
    return Policy.build(
        risk={"require_stop": False},
        retry={"base_delay_s": 0.05, "max_delay_s": 0.5, "resolve_attempts": 2},
        degradation={"severe_reduce_only": False},
    )


def test_threads_sending_through_ambiguous_faults_each_get_a_documented_outcome(
    tmp_path: Path,
) -> None:
    policy = _ambiguous_policy()
    unknown = 0
    for round_ in range(2):
        account = paper_account(wallet=10_000_000, seed=round_)
        try:
            ex = account.guarded(policy, state_dir=tmp_path / f"round-{round_}", seed=round_)
            ex.load_markets()
            account.set_faults({**AMBIGUOUS, "seed": round_})

            def four_orders(ex: Any = ex) -> list[Any]:
                return [_outcome(ex.create_order, SYMBOL, "market", "buy", AMOUNT) for _ in "abcd"]

            outcomes = [outcome for each in _race(four_orders) for outcome in each]
            unknown += sum(isinstance(o, errors.OutcomeUnknown) for o in outcomes)
            _check_round(account, ex.runtime.core.journal, outcomes, earlier=set())
        finally:
            account.close()
    assert unknown > 0  # the faults did bite: some orders were left unknown, then reconciled


async def test_tasks_sending_through_ambiguous_faults_each_get_a_documented_outcome(
    tmp_path: Path,
) -> None:
    unknown = 0
    for round_ in range(2):
        account = paper_account(wallet=10_000_000, seed=round_)
        try:
            ex = account.guarded(
                _ambiguous_policy(),
                state_dir=tmp_path / f"round-{round_}",
                seed=round_,
                asyncio=True,
            )
            await ex.load_markets()
            account.set_faults({**AMBIGUOUS, "seed": round_})

            async def four_orders(ex: Any = ex) -> list[Any]:
                outcomes = []
                for _ in range(4):
                    try:
                        outcomes.append(await ex.create_order(SYMBOL, "market", "buy", AMOUNT))
                    except BaseException as exc:  # what a caller would see, whatever it is
                        outcomes.append(exc)
                return outcomes

            each = await asyncio.gather(*(four_orders() for _ in range(CALLERS)))
            outcomes = [outcome for four in each for outcome in four]
            unknown += sum(isinstance(o, errors.OutcomeUnknown) for o in outcomes)
            _check_round(account, ex.runtime.core.journal, outcomes, earlier=set())
        finally:
            await account.aclose()
    assert unknown > 0  # the faults did bite: some orders were left unknown, then reconciled


def _outcome(call: Callable[..., Any], *args: Any) -> Any:
    try:
        return call(*args)
    except BaseException as exc:  # what a caller would see, whatever it is
        return exc


def _race(call: Callable[[], Any]) -> list[Any]:
    """``call`` from CALLERS threads released at once; what each caller saw, whatever it was."""
    start = threading.Barrier(CALLERS)
    outcomes: list[Any] = [None] * CALLERS

    def caller(i: int) -> None:
        start.wait()
        try:
            outcomes[i] = call()
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(CALLERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(o is not None for o in outcomes)
    return outcomes


async def test_tasks_racing_their_first_orders_after_a_restart_each_get_a_documented_outcome(
    tmp_path: Path,
) -> None:
    """The previous run died between its send and the answer: its order is on the venue and
    pending in the journal. Sixteen tasks then place their first orders at once; each one's
    reconcile looks the orphan up, and none may settle what another already compacted."""
    for round_ in range(ROUNDS // 2):
        account = paper_account(wallet=1_000_000)
        server = account.serve()
        state = tmp_path / f"round-{round_}"
        policy = sandbox_policy(state, _policy())
        raw = ccxt_client(server.url, account.api_key, account.secret, asyncio=True)
        switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
        journal_path = state / "orders.jsonl"
        orphan = f"orphan-{round_}"
        previous = OrderJournal(journal_path, durable=False)
        previous.pending(
            orphan,
            symbol=SYMBOL,
            intent={"type": "market", "side": "buy"},
            now=account.clock.time(),
        )
        await raw.create_order(SYMBOL, "market", "buy", AMOUNT, None, {"clientOrderId": orphan})
        previous.close()  # the process died here: pending on disk, the order on the venue
        account.advance(60.0)

        async def sleep(seconds: float) -> bool:
            account.advance(seconds)  # noqa: B023
            return False

        ex = guard(
            raw,
            policy,
            kill_switch=switch,
            clock=account.clock,
            sleep_async=sleep,
            journal_path=journal_path,
            durable_journal=False,
        )

        async def first_order() -> Any:
            try:
                return await ex.create_order(SYMBOL, "market", "buy", AMOUNT)  # noqa: B023
            except BaseException as exc:  # what a caller would see, whatever it is
                return exc

        try:
            outcomes = list(await asyncio.gather(*(first_order() for _ in range(CALLERS))))
            assert _undocumented(outcomes) == [], f"round {round_}"
            _check_round(account, ex.runtime.core.journal, outcomes, earlier={orphan})
            # Looked up and found, never resent.
            assert [o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)].count(orphan) == 1
            entry = ex.runtime.core.journal.get(orphan)
            assert entry is None or entry.status is Status.ACKED
        finally:
            await raw.close()
            ex.runtime.core.journal.close()
            switch.close()
            account.close()
