"""The README's logging recipe, run as an application runs it: a fresh interpreter calls
``safeguard.configure_logging(level="INFO", json_path=...)``, trades through the guard on the
mock venue, and the JSON-lines file and stderr are read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from safeguard.guard._redact import REDACTED
from safeguard.testing import DEFAULT_API_KEY, DEFAULT_SECRET

SCRIPT = textwrap.dedent(
    """
    import sys
    import safeguard
    from safeguard._config import Policy
    from safeguard.testing import paper_account

    safeguard.configure_logging(level="INFO", json_path=sys.argv[1])
    account = paper_account(symbols=("BTCUSDT",))
    exchange = account.guarded(Policy.build())
    exchange.set_leverage(5, "BTC/USDT:USDT")
    exchange.fetch_balance()
    last = exchange.fetch_ticker("BTC/USDT:USDT")["last"]
    stop = {"stopLoss": {"triggerPrice": round(last * 0.95)}}
    exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.002, None, stop)
    """
)


def _run(tmp_path: Path, script: str = SCRIPT) -> tuple[list[dict[str, Any]], str]:
    path = tmp_path / "requests.jsonl"
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines], done.stderr


def _requests(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for document in documents:
        record = document["record"]
        request = record["extra"].get("request")
        if request is not None:
            found.append({**request, "level": record["level"]["name"]})
    return found


def test_the_readme_recipe_writes_one_full_info_record_per_request(tmp_path: Path) -> None:
    documents, _ = _run(tmp_path)
    requests = _requests(documents)
    orders = [r for r in requests if r["endpoint"] == "POST /fapi/v1/order"]
    assert len(orders) == 1, requests
    order = orders[0]
    assert order["level"] == "INFO"
    assert order["method"] == "create_order"
    assert order["status"] == 200
    assert order["verdict"] == "ALLOWED"
    assert order["params"]["symbol"] == "BTCUSDT"
    assert order["params"]["side"] == "BUY"
    assert order["params"]["signature"] == REDACTED
    assert order["latency_ms"] is not None
    assert order["client_order_id"] == order["params"]["newClientOrderId"]
    stops = [r for r in requests if r["endpoint"] == "POST /fapi/v1/algoOrder"]
    assert len(stops) == 1, requests
    assert stops[0]["verdict"] == "ALLOWED"  # judged with its entry
    balance = [r for r in requests if r["method"] == "fetch_balance"]
    assert len(balance) == 1, requests
    assert balance[0]["endpoint"].startswith("GET /fapi/"), balance
    assert balance[0]["verdict"] is None  # a read is not judged
    assert all(r["status"] == 200 and r["endpoint"].split()[1].startswith("/") for r in requests)


def test_the_readme_recipe_writes_each_record_to_stderr_once(tmp_path: Path) -> None:
    _, stderr = _run(tmp_path)
    order_lines = [
        line for line in stderr.splitlines() if "create_order POST /fapi/v1/order" in line
    ]
    assert len(order_lines) == 1, stderr


ASYNC_SCRIPT = textwrap.dedent(
    """
    import asyncio
    import sys
    import safeguard
    from safeguard._config import Policy
    from safeguard.testing import paper_account

    async def main():
        safeguard.configure_logging(level="INFO", json_path=sys.argv[1], human=False)
        account = paper_account(symbols=("BTCUSDT",))
        exchange = account.guarded(Policy.build(), asyncio=True)
        try:
            # Concurrent calls on one client: each record names its own request.
            await asyncio.gather(exchange.fetch_balance(), exchange.fetch_ticker("BTC/USDT:USDT"))
        finally:
            await exchange.close()

    asyncio.run(main())
    """
)


def test_concurrent_async_calls_each_log_their_own_venue_path(tmp_path: Path) -> None:
    documents, _ = _run(tmp_path, ASYNC_SCRIPT)
    by_method = {r["method"]: r for r in _requests(documents)}
    assert by_method["fetch_ticker"]["endpoint"] == "GET /fapi/v1/ticker/24hr"
    assert by_method["fetch_ticker"]["params"] == {"symbol": "BTCUSDT"}
    assert by_method["fetch_balance"]["endpoint"].startswith("GET /fapi/")
    assert by_method["fetch_balance"]["endpoint"] != "GET /fapi/v1/ticker/24hr"
    assert by_method["fetch_balance"]["status"] == 200


def test_the_request_log_never_holds_a_credential(tmp_path: Path) -> None:
    documents, stderr = _run(tmp_path)
    written = (tmp_path / "requests.jsonl").read_text(encoding="utf-8") + stderr
    assert documents
    assert DEFAULT_API_KEY not in written
    assert DEFAULT_SECRET not in written
