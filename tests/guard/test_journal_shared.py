"""Two guarded clients on one API key in one process share the key's order journal.

A bot often holds a sync client for its loop and an async one for its streams, both on the
same key. Each order of either must be journaled once, in the one file, and neither client's
start-up reconcile may settle or compact away the other's orders in flight. Real
``ccxt.binanceusdm`` clients (sync and async) on the in-process mock venue.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard._journal import OrderJournal, Status
from safeguard.testing import paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
AMOUNT = 0.002
SYNC_CALLERS, ASYNC_CALLERS, ORDERS_EACH = 4, 4, 3


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False})


def _journal_ids(path: Path) -> dict[str, list[str]]:
    """Every status each client order id went through, read back from the file."""
    seen: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        seen.setdefault(record["id"], []).append(record["status"])
    return seen


async def test_a_sync_and_an_async_client_on_one_key_share_one_journal(tmp_path: Path) -> None:
    account = paper_account(wallet=1_000_000)
    try:
        sync_ex = account.guarded(_policy(), state_dir=tmp_path)
        async_ex = account.guarded(_policy(), state_dir=tmp_path, asyncio=True)
        journal = sync_ex.runtime.core.journal
        assert async_ex.runtime.core.journal is journal

        sync_orders: list[Any] = []
        start = threading.Barrier(SYNC_CALLERS + 1)

        def sync_caller() -> None:
            start.wait()
            for _ in range(ORDERS_EACH):
                sync_orders.append(sync_ex.create_order(SYMBOL, "market", "buy", AMOUNT))

        async def async_caller() -> list[Any]:
            return [
                await async_ex.create_order(SYMBOL, "market", "buy", AMOUNT)
                for _ in range(ORDERS_EACH)
            ]

        threads = [threading.Thread(target=sync_caller) for _ in range(SYNC_CALLERS)]
        for thread in threads:
            thread.start()
        start.wait()  # both clients send at once from here
        async_orders = [
            order
            for each in await asyncio.gather(*(async_caller() for _ in range(ASYNC_CALLERS)))
            for order in each
        ]
        for thread in threads:
            thread.join()

        given = [o["clientOrderId"] for o in sync_orders + async_orders]
        assert len(given) == (SYNC_CALLERS + ASYNC_CALLERS) * ORDERS_EACH
        on_venue = [o["clientOrderId"] for o in account.orders(VENUE_SYMBOL)]
        assert sorted(on_venue) == sorted(given)  # no order doubled, none missing
        # No lost record: every order went pending -> acked in the one file.
        in_file = _journal_ids(journal.path)
        assert {cid: in_file.get(cid) for cid in given} == {
            cid: [Status.PENDING, Status.ACKED] for cid in given
        }
        assert journal.unresolved() == []
    finally:
        await account.aclose()


async def test_the_shared_journal_closes_when_its_last_client_lets_go(tmp_path: Path) -> None:
    account = paper_account(wallet=1_000_000)
    try:
        sync_ex = account.guarded(_policy(), state_dir=tmp_path)
        async_ex = account.guarded(_policy(), state_dir=tmp_path, asyncio=True)
        journal = sync_ex.runtime.core.journal
        sync_ex.runtime.core.journal.close()  # the sync client is done
        # The async one still trades, journaled.
        order = await async_ex.create_order(SYMBOL, "market", "buy", AMOUNT)
        assert _journal_ids(journal.path)[order["clientOrderId"]] == ["pending", "acked"]
        async_ex.runtime.core.journal.close()
        # Now no one holds it: it opens again, alone.
        again = OrderJournal(journal.path)
        assert again.get(order["clientOrderId"]) is not None
        again.close()
    finally:
        await account.aclose()


def test_a_journal_opened_directly_still_has_one_writer(tmp_path: Path) -> None:
    """Sharing is for guarded clients in one process; a second direct writer, or another
    process, is still refused (it would compact away the first one's pending records)."""
    account = paper_account(wallet=1_000_000)
    try:
        ex = account.guarded(_policy(), state_dir=tmp_path)
        with pytest.raises(errors.ConfigError, match="already open"):
            OrderJournal(ex.runtime.core.journal.path)
    finally:
        account.close()
