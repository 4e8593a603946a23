"""The order journal at its edges: torn and corrupt lines told apart, errors that name the
file, settled ids kept across restarts, compaction exactly when it is due, and a journal
shared by several clients of one process opened, made durable and closed by its holders."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from safeguard._errors import ConfigError, InvalidInput, RequestBlocked
from safeguard.guard._journal import COMPACT_AFTER, OrderJournal, Status

SYMBOL = "BTC/USDT:USDT"
INTENT = {"type": "limit", "side": "buy", "amount": 0.01, "price": 60_000.0}
PENDING = b'{"id":"a","status":"pending","t":1.0,"symbol":"BTC/USDT:USDT","intent":{}}\n'
SETTLED = b'{"id":"a","status":"acked","t":2.0,"order_id":"7"}\n'


def _journal(path: Path, *, durable: bool = False) -> OrderJournal:
    return OrderJournal(path, durable=durable)


# --- torn writes and corrupt records --------------------------------------------------------


def test_a_last_record_cut_mid_write_is_dropped_as_torn(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PENDING + SETTLED[:20])  # the settle's write died half-way: no newline
    journal = _journal(path)
    entry = journal.get("a")
    assert entry is not None
    assert entry.status is Status.PENDING
    journal.close()


def test_a_corrupt_last_record_that_was_written_whole_is_corruption(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PENDING + b'{"id":"a","status":"nonsense","t":2.0}\n')
    with pytest.raises(ConfigError, match="line 2 is corrupt") as raised:
        _journal(path)
    assert raised.value.key == str(path)


def test_a_corrupt_record_before_a_torn_tail_is_still_corruption(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PENDING + b"{not json}\n" + SETTLED[:20])
    with pytest.raises(ConfigError, match="line 2 is corrupt"):
        _journal(path)


def test_a_corrupt_record_before_the_unsynced_nul_bytes_is_still_corruption(
    tmp_path: Path,
) -> None:
    # After a power cut the unsynced tail reads back as NUL bytes; only from there on is an
    # unreadable record a torn write. The line before them was synced and must be whole.
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PENDING + b"{not json}\n" + b"\x00" * 40 + b"\n")
    with pytest.raises(ConfigError, match="line 2 is corrupt"):
        _journal(path)
    path.write_bytes(PENDING + b"\x00" * 40 + b"\n")
    journal = _journal(path)
    assert [e.client_order_id for e in journal.unresolved()] == ["a"]
    journal.close()


def test_a_journal_that_cannot_be_read_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.mkdir()  # a directory where the file should be
    with pytest.raises(ConfigError, match="cannot be") as raised:
        _journal(path)
    assert raised.value.key == str(path)


def test_a_journal_that_cannot_be_rewritten_is_named_in_the_error_and_leaves_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(PENDING)
    (tmp_path / "orders.jsonl.tmp").mkdir()  # the atomic rewrite's temporary cannot be made
    with pytest.raises(ConfigError, match="cannot be written") as raised:
        _journal(path)
    assert raised.value.key == str(path)
    assert path.read_bytes() == PENDING  # the journal is as it was
    (tmp_path / "orders.jsonl.tmp").rmdir()
    journal = _journal(path)  # and its lock was let go
    journal.close()


# --- what a restart keeps --------------------------------------------------------------------


def test_a_settled_orders_venue_id_survives_restart_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _journal(path)
    journal.pending("a", symbol=SYMBOL, intent=INTENT, now=1.0)
    journal.settle("a", Status.ACKED, now=2.0, order_id="7")
    journal.close()
    for _ in range(2):  # each open rewrites the file from what it read
        journal = _journal(path)
        entry = journal.get("a")
        assert entry is not None
        assert (entry.status, entry.order_id, entry.since, entry.updated) == (
            Status.ACKED,
            "7",
            1.0,
            2.0,
        )
        journal.close()


def test_a_new_pending_order_is_last_updated_when_it_was_recorded(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "orders.jsonl")
    entry = journal.pending("a", symbol=SYMBOL, intent=INTENT, now=5.0)
    assert (entry.since, entry.updated) == (5.0, 5.0)
    journal.close()


def test_a_reused_client_id_is_refused_naming_the_param(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "orders.jsonl")
    journal.pending("a", symbol=SYMBOL, intent=INTENT, now=1.0)
    journal.settle("a", Status.ACKED, now=2.0)
    with pytest.raises(InvalidInput) as raised:
        journal.pending("a", symbol=SYMBOL, intent=INTENT, now=3.0)
    assert raised.value.field == "params.clientOrderId"
    journal.close()


# --- holds ---------------------------------------------------------------------------------


def test_an_order_recorded_without_a_holder_is_settled_only_without_one(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "orders.jsonl")
    journal.pending("a", symbol=SYMBOL, intent=INTENT, now=1.0)
    assert journal.settle("a", Status.ACKED, now=2.0, holder=object()) is None  # not its hold
    entry = journal.get("a")
    assert entry is not None
    assert entry.status is Status.PENDING
    settled = journal.settle("a", Status.ACKED, now=2.0)
    assert settled is not None
    assert settled.status is Status.ACKED
    journal.close()


def test_an_order_let_go_of_can_still_be_settled(tmp_path: Path) -> None:
    journal = _journal(tmp_path / "orders.jsonl")
    holder = object()
    journal.pending("a", symbol=SYMBOL, intent=INTENT, now=1.0, holder=holder)
    journal.release("a", holder=holder)
    settled = journal.settle("a", Status.ABSENT, now=2.0)  # a reconcile that never claimed it
    assert settled is not None
    assert settled.status is Status.ABSENT
    journal.close()


# --- compaction ------------------------------------------------------------------------------


def test_the_file_is_compacted_exactly_every_compact_after_resolved_orders(
    tmp_path: Path,
) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _journal(path)
    inode = os.stat(path).st_ino
    # Orders that stay unresolved (UNKNOWN) do not count toward it.
    for n in range(3):
        journal.pending(f"u{n}", symbol=SYMBOL, intent=INTENT, now=float(n))
        journal.settle(f"u{n}", Status.UNKNOWN, now=float(n))
    for n in range(COMPACT_AFTER - 1):
        journal.pending(f"r{n}", symbol=SYMBOL, intent=INTENT, now=float(n))
        journal.settle(f"r{n}", Status.ACKED, now=float(n))
    assert os.stat(path).st_ino == inode  # still appending to the file it opened
    journal.pending("last", symbol=SYMBOL, intent=INTENT, now=1e6)
    journal.settle("last", Status.ACKED, now=1e6)
    assert os.stat(path).st_ino != inode  # rewritten (atomically: a new file put in place)
    journal.close()


# --- one journal shared by the clients of one process ---------------------------------------


def test_a_shared_journal_is_durable_by_default(tmp_path: Path) -> None:
    journal = OrderJournal.shared(tmp_path / "orders.jsonl")
    assert journal.durable is True
    journal.close()
    light = OrderJournal.shared(tmp_path / "other.jsonl", durable=False)
    assert light.durable is False
    light.close()


def test_a_shared_journal_is_durable_if_any_of_its_users_asked(tmp_path: Path) -> None:
    first = OrderJournal.shared(tmp_path / "orders.jsonl", durable=False)
    second = OrderJournal.shared(tmp_path / "orders.jsonl", durable=True)
    assert second is first
    assert first.durable is True
    third = OrderJournal.shared(tmp_path / "orders.jsonl", durable=False)
    assert third.durable is True  # once asked for, kept
    for _ in range(3):
        first.close()


def test_a_shared_journal_stays_open_until_its_last_user_closes_it(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    users = [OrderJournal.shared(path, durable=False) for _ in range(3)]
    assert users[1] is users[0]
    assert users[2] is users[0]
    users[0].close()
    users[1].close()
    users[0].pending("a", symbol=SYMBOL, intent=INTENT, now=1.0)  # one user left: still open
    users[2].close()
    with pytest.raises(RequestBlocked, match="the journal is closed"):
        users[0].pending("b", symbol=SYMBOL, intent=INTENT, now=2.0)
    reopened = OrderJournal.shared(path, durable=False)  # a new one, on the same file
    assert reopened is not users[0]
    assert reopened.get("a") is not None
    reopened.close()


def test_closing_a_journal_twice_is_harmless(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _journal(path)
    journal.close()
    journal.close()
    again = _journal(path)  # the lock was let go once, and nothing else was closed
    again.close()
