"""The order journal's file, read back by a new journal as a restarted bot reads it: every field
survives, every malformed record is refused by line, and only the writer's lock is shared."""

from __future__ import annotations

import json
import os
import stat
from decimal import Decimal
from pathlib import Path

import pytest

from safeguard._errors import ConfigError
from safeguard.guard._journal import OrderJournal, Status

INTENT = {"type": "limit", "side": "buy", "amount": 0.01, "price": 60_000.0}


def _reopen(path: Path) -> OrderJournal:
    return OrderJournal(path, durable=False)


def test_a_restart_reads_back_every_field_of_an_unresolved_order(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path)
    assert journal.durable is True
    journal.pending("a", symbol="BTC/USDT:USDT", intent=INTENT, now=100.0)
    journal.settle("a", Status.UNKNOWN, now=130.0, order_id="555")
    journal.pending("b", symbol="ETH/USDT:USDT", intent={}, now=140.0)
    journal.close()
    again = _reopen(path)
    a, b = again.get("a"), again.get("b")
    assert a is not None
    assert b is not None
    assert (a.status, a.symbol, a.since, a.updated, a.order_id) == (
        Status.UNKNOWN,
        "BTC/USDT:USDT",
        100.0,
        130.0,
        "555",
    )
    assert dict(a.intent) == INTENT
    assert (b.status, b.symbol, b.since, b.updated, b.order_id) == (
        Status.PENDING,
        "ETH/USDT:USDT",
        140.0,
        140.0,
        None,
    )
    assert [e.client_order_id for e in again.unresolved()] == ["a", "b"]
    again.close()


def test_compaction_keeps_an_unresolved_orders_status_time_and_intent(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="BTC/USDT:USDT", intent=INTENT, now=100.0)
    journal.settle("a", Status.UNKNOWN, now=130.0)
    journal.pending("done", symbol="BTC/USDT:USDT", intent=INTENT, now=101.0)
    journal.settle("done", Status.ACKED, now=102.0, order_id="9")
    journal.compact()
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [r for r in records if r["id"] == "a"] == [
        {"id": "a", "status": "pending", "t": 100.0, "symbol": "BTC/USDT:USDT", "intent": INTENT},
        {"id": "a", "status": "unknown", "t": 130.0},
    ]
    journal.close()
    again = _reopen(path)
    entry = again.get("a")
    assert entry is not None
    assert (entry.status, entry.since, entry.updated) == (Status.UNKNOWN, 100.0, 130.0)
    assert [e.client_order_id for e in again.unresolved()] == ["a"]
    again.close()


def test_a_settle_without_an_order_id_keeps_the_one_already_known(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="BTC/USDT:USDT", intent={}, now=1.0)
    journal.settle("a", Status.UNKNOWN, now=2.0, order_id="777")
    journal.close()
    path.write_text(
        path.read_text(encoding="utf-8") + '{"id":"a","status":"unknown","t":3.0}\n',
        encoding="utf-8",
    )
    again = _reopen(path)
    entry = again.get("a")
    assert entry is not None
    assert (entry.order_id, entry.updated) == ("777", 3.0)
    again.close()


def test_a_pending_record_without_an_intent_reads_as_an_empty_one(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text('{"id":"a","status":"pending","t":1,"symbol":"X"}\n', encoding="utf-8")
    journal = _reopen(path)
    entry = journal.get("a")
    assert entry is not None
    assert dict(entry.intent) == {}
    assert entry.since == 1.0
    journal.close()


def test_values_json_cannot_hold_are_written_as_text(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="X", intent={"recv_window": Decimal("5000")}, now=1.0)
    journal.close()
    [record] = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert record["intent"] == {"recv_window": "5000"}


def test_records_are_one_compact_line_each(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="X", intent={"side": "buy"}, now=1.0)
    journal.settle("a", Status.ACKED, now=2.0, order_id="1")
    journal.close()
    assert path.read_text(encoding="utf-8") == (
        '{"id":"a","status":"pending","t":1.0,"symbol":"X","intent":{"side":"buy"}}\n'
        '{"id":"a","status":"acked","t":2.0,"order_id":"1"}\n'
    )


@pytest.mark.parametrize(
    "line",
    [
        '{"id":7,"status":"pending","t":1,"symbol":"X"}',  # id not a string
        '{"id":"a","status":"pending","t":"1","symbol":"X"}',  # time not a number
        '{"id":"a","status":"pending","t":true,"symbol":"X"}',  # a bool is no time
        '{"id":"a","status":"pending","t":1,"symbol":5}',  # symbol not a string
        '{"id":"a","status":"pending","t":1,"symbol":"X","intent":[1]}',  # intent not an object
        '{"id":"a","status":"acked","t":1}',  # settles an order never pending
        '["a","pending",1]',
    ],
)
def test_a_malformed_record_is_refused_by_line(tmp_path: Path, line: str) -> None:
    path = tmp_path / "orders.jsonl"
    good = '{"id":"z","status":"pending","t":1,"symbol":"X"}\n'
    path.write_text(good + line + "\n" + good.replace('"z"', '"y"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="line 2"):
        _reopen(path)


def test_blank_lines_are_skipped_and_what_follows_them_is_read(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_text(
        '{"id":"a","status":"pending","t":1,"symbol":"X"}\n\n   \n'
        '{"id":"b","status":"pending","t":2,"symbol":"X"}\n',
        encoding="utf-8",
    )
    journal = _reopen(path)
    assert [e.client_order_id for e in journal.unresolved()] == ["a", "b"]
    journal.close()


def test_only_a_torn_last_line_is_forgiven(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    # Ends in a newline, so the bad line is no torn tail even though it is the last one.
    path.write_text(
        '{"id":"a","status":"pending","t":1,"symbol":"X"}\n{"id":"b","sta\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError, match="line 2"):
        _reopen(path)


def test_the_journal_makes_its_folders_and_keeps_its_lock_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="X", intent={}, now=1.0)
    mode = stat.S_IMODE(os.stat(path.with_name("orders.jsonl.lock")).st_mode)
    assert mode & 0o077 == 0  # only the owner may touch the writer's lock
    journal.close()
    assert not path.with_name("orders.jsonl.tmp").exists()


def test_non_ascii_text_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    journal = _reopen(path)
    journal.pending("a", symbol="币/USDT:USDT", intent={"note": "é"}, now=1.0)
    journal.compact()
    journal.close()
    again = _reopen(path)
    entry = again.get("a")
    assert entry is not None
    assert entry.symbol == "币/USDT:USDT"
    again.close()


@pytest.mark.parametrize(
    ("client_order_id", "now", "order_id"),
    [
        ("sg-1", 1_700_000_000.125, "555"),
        ('odd "id" \\ é ☃', 1e-7, None),
        ("sg-2", 1e22, 12345),
        ("sg-3", 5, Decimal("7.5")),
    ],
)
def test_a_settle_record_is_the_json_of_its_fields(
    tmp_path: Path, client_order_id: str, now: float, order_id: object
) -> None:
    path = tmp_path / "orders.jsonl"
    journal = OrderJournal(path, durable=False)
    journal.pending(client_order_id, symbol="BTC/USDT:USDT", intent=INTENT, now=1.0)
    journal.settle(client_order_id, Status.ACKED, now=now, order_id=order_id)  # type: ignore[arg-type]
    journal.close()
    settle_line = path.read_bytes().splitlines()[-1]
    expected: dict[str, object] = {"id": client_order_id, "status": "acked", "t": now}
    if order_id is not None:
        expected["order_id"] = order_id
    assert settle_line == json.dumps(expected, separators=(",", ":"), default=str).encode()
    entry = _reopen(path).get(client_order_id)
    assert entry is not None
    assert (entry.status, entry.updated) == (Status.ACKED, float(now))
