"""The order journal on a disk that fills up: nothing sent without its record, no torn file.

The disk fills for real: each scenario runs in a child process whose file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored) is set just above the journal's size, so the
kernel writes part of the next record and then refuses the rest with ``EFBIG``, exactly as a
full disk refuses a write part-way with ``ENOSPC``. Real ``ccxt.binanceusdm`` on the in-process
mock venue, on simulated time; the journal is the only file the child writes meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

resource = pytest.importorskip("resource")

SCENARIO = r"""
import json, resource, signal, sys
from pathlib import Path
from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard._journal import OrderJournal
from safeguard.testing import paper_account

state, room = Path(sys.argv[1]), sys.argv[2]
SYMBOL = "BTC/USDT:USDT"
account = paper_account(wallet=100_000)
ex = account.guarded(Policy.build(risk={"require_stop": False}), state_dir=state)
journal_path = ex.runtime.core.journal.path
ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "first-order-0001"})
lines = journal_path.read_text().splitlines()
pending_record = len(lines[-2]) + 1  # this order's pending record (then its settle record)
size = journal_path.stat().st_size
# The disk fills: room for a few bytes of the next pending record, or for all of it and a
# few bytes of its settle record.
limit = size + (8 if room == "pending" else pending_record + 8)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
out = {}
try:
    order = ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "full-0002"})
    out["outcome"] = "order"
    out["status"] = order["status"]
except BaseException as exc:
    out["outcome"] = type(exc).__name__
    out["safeguard_error"] = isinstance(exc, errors.SafeguardError)
    out["message"] = str(exc)
out["on_venue_after_full"] = sorted(o["clientOrderId"] for o in account.orders("BTCUSDT"))
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
ex.create_order(SYMBOL, "market", "buy", 0.002, None, {"clientOrderId": "disk-freed-0003"})
out["on_venue"] = sorted(o["clientOrderId"] for o in account.orders("BTCUSDT"))
account.close()
try:
    reopened = OrderJournal(journal_path)
except BaseException as exc:
    out["reopen"] = f"{type(exc).__name__}: {exc}"
else:
    out["reopen"] = "ok"
    out["unresolved_after_restart"] = [e.client_order_id for e in reopened.unresolved()]
    reopened.close()
print(json.dumps(out))
"""


def _run(tmp_path: Path, room: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCENARIO, str(tmp_path / "state"), room],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_full_disk_at_the_pending_record_sends_nothing_and_says_why(tmp_path: Path) -> None:
    result = _run(tmp_path, "pending")
    assert result["outcome"] == "RequestBlocked"
    assert result["safeguard_error"] is True
    assert "journal" in str(result["message"])
    assert "not sent" in str(result["message"])
    assert result["on_venue_after_full"] == ["first-order-0001"]
    # Once there is room again, orders go out, and the file a restart reads is whole.
    assert result["on_venue"] == ["disk-freed-0003", "first-order-0001"]
    assert result["reopen"] == "ok"
    assert result["unresolved_after_restart"] == []


def test_a_full_disk_at_the_settle_record_still_returns_the_order(tmp_path: Path) -> None:
    """The order is on the venue: the caller gets it. Losing the settle record only costs a
    look-up after a restart, never a torn journal that refuses to load."""
    result = _run(tmp_path, "settle")
    assert result["outcome"] == "order"
    assert result["status"] == "closed"
    assert result["on_venue"] == ["disk-freed-0003", "first-order-0001", "full-0002"]
    assert result["reopen"] == "ok"
    assert result["unresolved_after_restart"] == []
