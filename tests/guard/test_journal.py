"""The order journal: durable before the send, readable after a crash, compacted atomically."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from safeguard._errors import ConfigError, InvalidInput
from safeguard.guard._journal import COMPACT_AFTER, OrderJournal, Status


def _intent() -> dict[str, object]:
    return {"type": "limit", "side": "buy", "amount": 0.01, "price": 60000.0}


def test_pending_is_on_disk_before_pending_returns(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-1", symbol="BTC/USDT:USDT", intent=_intent(), now=10.0)
    # Another reader (the process after a crash) sees it without any close or flush by us.
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["id"] == "sg-1"
    assert json.loads(lines[-1])["status"] == "pending"
    journal.close()


def test_restart_sees_unresolved_orders_only(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-a", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    journal.pending("sg-b", symbol="ETH/USDT:USDT", intent=_intent(), now=2.0)
    journal.pending("sg-c", symbol="BTC/USDT:USDT", intent=_intent(), now=3.0)
    journal.settle("sg-a", Status.ACKED, now=4.0, order_id="77")
    journal.settle("sg-c", Status.UNKNOWN, now=5.0)
    journal.close()

    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-b", "sg-c"]
    assert reopened.get("sg-c") is not None
    assert reopened.get("sg-c").status is Status.UNKNOWN  # type: ignore[union-attr]
    assert reopened.get("sg-b").intent["price"] == 60000.0  # type: ignore[union-attr]
    # Opening compacts, and keeps the latest resolved orders: their ids stay used.
    acked = reopened.get("sg-a")
    assert acked is not None
    assert (acked.status, acked.order_id) == (Status.ACKED, "77")
    with pytest.raises(InvalidInput, match="sg-a"):
        reopened.pending("sg-a", symbol="BTC/USDT:USDT", intent=_intent(), now=6.0)
    reopened.close()


def test_reusing_a_client_order_id_is_refused(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    journal.pending("sg-x", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    with pytest.raises(InvalidInput, match="sg-x"):
        journal.pending("sg-x", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    journal.close()


def test_an_id_whose_order_never_existed_may_be_used_again(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    for cid, status in (("sg-absent", Status.ABSENT), ("sg-rejected", Status.REJECTED)):
        journal.pending(cid, symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
        journal.settle(cid, status, now=2.0)
        again = journal.pending(cid, symbol="BTC/USDT:USDT", intent=_intent(), now=3.0)
        assert again.status is Status.PENDING
    journal.close()


def test_a_torn_last_line_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-1", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    journal.close()
    with path.open("a") as f:
        f.write('{"id":"sg-2","status":"pen')  # the process died mid-write
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-1"]
    reopened.close()


def test_a_corrupt_middle_line_is_a_config_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    path.write_text('{"id":"a","status":"pending","t":1,"symbol":"X","intent":{}}\nnot json\n')
    with pytest.raises(ConfigError, match="line 2"):
        OrderJournal(path)


def test_settling_an_unknown_id_is_an_error(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    with pytest.raises(KeyError, match="sg-nope"):
        journal.settle("sg-nope", Status.ACKED, now=1.0)
    journal.close()


def test_compaction_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = OrderJournal(path)
    for i in range(50):
        journal.pending(f"sg-{i}", symbol="BTC/USDT:USDT", intent=_intent(), now=float(i))
        if i % 2:
            journal.settle(f"sg-{i}", Status.REJECTED, now=float(i))
    journal.compact()
    journal.pending("sg-after", symbol="BTC/USDT:USDT", intent=_intent(), now=99.0)
    journal.close()
    assert sorted(os.listdir(tmp_path)) == ["j.jsonl", "j.jsonl.lock"]
    reopened = OrderJournal(path)
    ids = [e.client_order_id for e in reopened.unresolved()]
    assert ids == [f"sg-{i}" for i in range(0, 50, 2)] + ["sg-after"]
    reopened.close()


def test_a_journal_has_one_writer_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    first = OrderJournal(path)
    first.pending("sg-1", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    with pytest.raises(ConfigError, match="already open"):
        OrderJournal(path)  # it would compact away sg-1, the order a crash must look up
    first.close()
    second = OrderJournal(path)
    assert [e.client_order_id for e in second.unresolved()] == ["sg-1"]
    second.close()


def test_an_order_in_flight_is_no_orphan_and_survives_compaction(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    previous = OrderJournal(path)
    previous.pending("sg-old", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    previous.close()  # died with sg-old pending: an orphan for the next run
    journal = OrderJournal(path)
    journal.pending("sg-new", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    journal.pending("sg-gave-up", symbol="BTC/USDT:USDT", intent=_intent(), now=3.0)
    journal.settle("sg-gave-up", Status.UNKNOWN, now=4.0)
    # sg-new is on its way: its own call settles it, no reconcile may.
    assert [e.client_order_id for e in journal.orphans()] == ["sg-old", "sg-gave-up"]
    journal.compact()
    assert journal.get("sg-new") is not None
    assert journal.settle("sg-new", Status.ACKED, now=5.0, order_id="9").status is Status.ACKED
    journal.close()


def test_an_orphan_is_claimed_by_one_reconcile_only(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    previous = OrderJournal(path)
    previous.pending("sg-old", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    previous.close()
    journal = OrderJournal(path)
    first, second, third = object(), object(), object()
    assert journal.claim("sg-old", holder=first) is not None
    assert journal.claim("sg-old", holder=second) is None  # left to the first
    assert journal.orphans() == []
    # The first gives up on it (OutcomeUnknown): an orphan again, which a third claims.
    journal.settle("sg-old", Status.UNKNOWN, now=2.0, holder=first)
    assert journal.claim("sg-old", holder=third) is not None
    # The first's late words change nothing: the third has it in hand.
    journal.release("sg-old", holder=first)
    assert journal.settle("sg-old", Status.ABSENT, now=3.0, holder=first) is None
    assert journal.orphans() == []
    settled = journal.settle("sg-old", Status.ACKED, now=4.0, holder=third, order_id="7")
    assert settled is not None
    assert settled.status is Status.ACKED
    # Settled: a late settle changes nothing, before or after compaction (not a KeyError).
    assert journal.settle("sg-old", Status.ABSENT, now=5.0, holder=first) is None
    journal.compact()
    assert journal.settle("sg-old", Status.ABSENT, now=5.0, holder=first) is None
    assert journal.get("sg-old").status is Status.ACKED  # type: ignore[union-attr]
    journal.close()


def test_a_refused_pending_write_leaves_the_order_holding_that_id_in_flight(
    tmp_path: Path,
) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    journal.pending("sg-x", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    again = journal.pending_write("sg-x", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    again()
    assert isinstance(again.error, InvalidInput)
    again.abandon()  # its caller was stopped: nothing of its own to hand over
    assert journal.orphans() == []
    journal.close()


def test_an_abandoned_pending_write_lands_as_an_orphan(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    write = journal.pending_write("sg-y", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    write.abandon()  # the caller was cancelled while the write was still to come
    write()
    assert write.error is None
    assert [e.client_order_id for e in journal.orphans()] == ["sg-y"]
    journal.close()


def test_a_long_run_keeps_a_bounded_journal(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    journal = OrderJournal(path, durable=False)
    journal.pending("sg-open", symbol="BTC/USDT:USDT", intent=_intent(), now=0.0)
    for i in range(COMPACT_AFTER * 2 + 10):
        journal.pending(f"sg-{i}", symbol="BTC/USDT:USDT", intent=_intent(), now=float(i))
        journal.settle(f"sg-{i}", Status.ACKED, now=float(i), order_id=str(i))
        assert len(journal) <= 2 * COMPACT_AFTER + 1
    assert len(path.read_text().splitlines()) <= 2 * (2 * COMPACT_AFTER + 1)
    assert journal.get("sg-open") is not None  # what is unresolved is never compacted away
    journal.close()
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-open"]
    reopened.close()


def test_a_zero_filled_tail_after_a_power_cut_is_a_torn_write(tmp_path: Path) -> None:
    """After a power cut a file system may keep a file's new length but not its last data:
    the unsynced tail reads back as NUL bytes, possibly with later bytes after them. Only
    unsynced records can be lost that way (a settle, or a pending whose send never happened),
    so the journal opens, keeping every whole record."""
    path = tmp_path / "j.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-1", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    journal.pending("sg-2", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    journal.close()
    with path.open("ab") as f:
        f.write(b"\x00" * 4096 + b'0,"status":"acked","t":3.0}\n{"id":"sg-1","status":"acked"')
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-1", "sg-2"]
    reopened.close()
    assert b"\x00" not in path.read_bytes()  # rewritten whole on open


def test_a_journal_that_cannot_be_created_is_a_config_error_naming_it(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(ConfigError, match="order journal") as refused:
        OrderJournal(blocker / "orders.jsonl")
    assert refused.value.key == str(blocker / "orders.jsonl")


def test_a_journal_deleted_while_running_is_written_again_before_the_next_order(
    tmp_path: Path,
) -> None:
    """A clean-up job wipes the state directory while the bot runs: records written to the
    deleted file would be lost with it, and a crash would then leave orders nobody looks up."""
    state = tmp_path / "state"
    path = state / "orders.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-before", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    shutil.rmtree(state)
    journal.pending("sg-after", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    # Another run must not be able to open it as a second writer meanwhile.
    with pytest.raises(ConfigError, match="already open"):
        OrderJournal(path)
    journal.close()  # the process dies here
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-before", "sg-after"]
    reopened.close()


def test_a_journal_file_deleted_under_its_live_lock_is_written_again_under_that_lock(
    tmp_path: Path,
) -> None:
    """Only the journal file goes (a clean-up that spares the ``.lock``): the journal still
    holds that lock, so it writes the file again without taking the lock a second time (which
    its own hold would refuse) and still keeps a second writer out."""
    path = tmp_path / "state" / "orders.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-before", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    path.unlink()
    journal.pending("sg-after", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [
        "sg-before",
        "sg-after",
    ]
    with pytest.raises(ConfigError, match="already open"):
        OrderJournal(path)
    journal.close()
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-before", "sg-after"]
    reopened.close()


def test_a_journal_whose_nested_state_directories_were_wiped_makes_them_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "bot-1" / "orders.jsonl"
    journal = OrderJournal(path)
    journal.pending("sg-before", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    shutil.rmtree(tmp_path / "state")
    journal.pending("sg-after", symbol="BTC/USDT:USDT", intent=_intent(), now=2.0)
    journal.close()
    reopened = OrderJournal(path)
    assert [e.client_order_id for e in reopened.unresolved()] == ["sg-before", "sg-after"]
    reopened.close()


def test_a_settled_order_cannot_be_claimed(tmp_path: Path) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    journal.pending("sg-done", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    journal.settle("sg-done", Status.ACKED, now=2.0, order_id="5")
    assert journal.claim("sg-done", holder=object()) is None
    assert journal.claim("sg-never", holder=object()) is None
    journal.close()


def test_a_claim_without_a_named_holder_still_holds_the_order(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    previous = OrderJournal(path)
    previous.pending("sg-old", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    previous.close()
    journal = OrderJournal(path)
    assert journal.claim("sg-old", holder=None) is not None
    late = object()
    # Another call's settle or release does not take it from the anonymous claim.
    assert journal.settle("sg-old", Status.ABSENT, now=2.0, holder=late) is None
    journal.release("sg-old", holder=None)
    assert journal.orphans() == []
    assert journal.get("sg-old").status is Status.PENDING  # type: ignore[union-attr]
    journal.close()


def test_a_pending_write_abandoned_after_it_landed_hands_the_order_to_the_next_reconcile(
    tmp_path: Path,
) -> None:
    journal = OrderJournal(tmp_path / "j.jsonl")
    write = journal.pending_write("sg-z", symbol="ETH/USDT:USDT", intent=_intent(), now=7.5)
    write()
    entry = journal.get("sg-z")
    assert entry is not None
    assert (entry.symbol, entry.since, entry.status) == ("ETH/USDT:USDT", 7.5, Status.PENDING)
    assert journal.orphans() == []  # its call holds it
    write.abandon()  # the call was cancelled after the record landed
    assert [e.client_order_id for e in journal.orphans()] == ["sg-z"]
    journal.close()


def test_a_resend_is_stamped_so_a_restart_waits_from_the_last_send(tmp_path: Path) -> None:
    # Stamped only with its first send, a process killed while a resend was on the wire
    # restarted with the settle window long over: one look-up found nothing, the id was
    # settled absent (reusable), and the resend then filled.
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path)
    holder = object()
    journal.pending("c1", symbol="BTC/USDT:USDT", intent={}, now=100.0, holder=holder)
    journal.resent("c1", now=130.0, holder=object())  # not its holder: nothing changes
    assert journal.get("c1").updated == 100.0  # type: ignore[union-attr]
    journal.resent("c1", now=150.0, holder=holder)
    journal.close()
    reopened = OrderJournal(path)
    entry = reopened.get("c1")
    assert entry is not None
    assert (entry.status, entry.since, entry.updated) == (Status.PENDING, 100.0, 150.0)
    reopened.compact()  # the stamp survives a rewrite from memory
    reopened.close()
    again = OrderJournal(path)
    assert again.get("c1").updated == 150.0  # type: ignore[union-attr]
    again.close()


def test_the_guard_stamps_each_resend_before_it_leaves(tmp_path: Path) -> None:
    from safeguard import Policy
    from safeguard.testing import paper_account

    paper = paper_account(seed=7, symbols=("BTCUSDT",), wallet=100_000.0)
    try:
        ex = paper.guarded(Policy.build(risk={"require_stop": False}), state_dir=tmp_path)
        paper.set_faults({"rules": [{"kind": "error", "endpoint": "POST /fapi/v1/order",
                                     "status": 503, "count": 1}]})  # fmt: skip
        ex.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, {"clientOrderId": "r-1"})
        records = [json.loads(line) for line in Path(ex.runtime.core.journal.path).read_text()
                   .splitlines() if '"r-1"' in line]  # fmt: skip
        assert [r["status"] for r in records] == ["pending", "pending", "acked"]
        first, stamp = records[0], records[1]
        assert "symbol" in first
        assert "symbol" not in stamp
        assert stamp["t"] > first["t"]  # the settle window and the backoff passed between
    finally:
        paper.close()


def test_a_journal_named_through_a_symlink_is_its_target(tmp_path: Path) -> None:
    # The lock was taken on the path as given: a second writer through a link got in beside
    # the first, and its first rewrite replaced the link with a plain file of its own.
    target = tmp_path / "persist" / "orders.jsonl"
    link = tmp_path / "bot" / "orders.jsonl"
    first = OrderJournal(target)
    link.parent.mkdir()
    link.symlink_to(target)
    with pytest.raises(ConfigError, match="already open"):
        OrderJournal(link)
    assert link.is_symlink()
    first.pending("b-1", symbol="BTC/USDT:USDT", intent=_intent(), now=1.0)
    first.close()
    through_link = OrderJournal(link)
    assert [e.client_order_id for e in through_link.unresolved()] == ["b-1"]
    through_link.close()
    assert link.is_symlink()  # a rewrite through the link keeps it
    shared = OrderJournal.shared(link)
    try:
        assert OrderJournal.shared(target) is shared
        shared.close()
    finally:
        shared.close()


def test_a_record_the_exchange_cannot_look_up_is_a_config_error_not_outcome_unknown(
    tmp_path: Path,
) -> None:
    # A journal of another venue copied in: one unresolved order on a symbol this exchange
    # does not list. Every later order failed with OutcomeUnknown ("may exist") about an
    # order it never sent, and appended another `unknown` record each time.
    from safeguard import Policy
    from safeguard.testing import paper_account

    policy = Policy.build(risk={"require_stop": False})
    first = paper_account(seed=7, symbols=("BTCUSDT",), wallet=100_000.0)
    path = Path(first.guarded(policy, state_dir=tmp_path).runtime.core.journal.path)
    first.close()
    foreign = {"id": "x-1", "status": "pending", "t": 1.0, "symbol": "ETH/BTC", "intent": {}}
    path.write_text(json.dumps(foreign) + "\n")
    paper = paper_account(seed=7, symbols=("BTCUSDT",), wallet=100_000.0)
    try:
        ex = paper.guarded(policy, state_dir=tmp_path)
        for _ in range(2):
            with pytest.raises(ConfigError, match="x-1 on ETH/BTC, a symbol this exchange"):
                ex.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
        assert paper.orders("BTCUSDT") == []  # nothing sent
        assert path.read_text().count('"x-1"') == 1  # and nothing written about it
    finally:
        paper.close()


def test_a_resend_stamp_is_not_written_into_a_journal_file_replaced_underneath(
    tmp_path: Path,
) -> None:
    # A clean-up replaced the journal file while an order was in flight: a pending record is
    # written to the file on disk (the journal reattaches), and a resend's stamp must be too,
    # or a restart measures the settle window from the first send again.
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path)
    holder = object()
    journal.pending("c1", symbol="BTC/USDT:USDT", intent={}, now=100.0, holder=holder)
    copy = tmp_path / "copy.jsonl"
    shutil.copy(path, copy)
    os.replace(copy, path)  # same content, another file
    journal.resent("c1", now=150.0, holder=holder)
    assert '"t":150.0' in path.read_text()
    journal.close()
