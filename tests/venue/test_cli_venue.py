"""``safeguard venue serve``: a real process serving a venue an unmodified ccxt trades on."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ccxt
import pytest

from safeguard.cli import main
from safeguard.venue._client import ccxt_client


class Served:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.info: dict[str, str] = {}
        assert process.stdout is not None
        for line in process.stdout:
            name, _, value = line.strip().partition(": ")
            self.info[name] = value
            if name == "symbols":
                break
        else:
            raise AssertionError(f"server exited early: {process.wait()}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=20)


def _serve(*args: str) -> Iterator[Served]:
    process = subprocess.Popen(
        [sys.executable, "-m", "safeguard", "venue", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)
    try:
        yield served
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()
        if process.stderr:
            process.stderr.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    plan = tmp_path_factory.mktemp("plan") / "plan.toml"
    plan.write_text('[[rules]]\nkind = "error"\nendpoint = "GET /fapi/v1/ping"\nstatus = 503\n')
    yield from _serve(
        "--seed", "3", "--symbols", "BTCUSDT,ETHUSDT", "--faults", str(plan), "--wallet", "2500"
    )


def test_prints_a_generated_key_pair_that_trades(served: Served) -> None:
    info = served.info
    assert info["venue"].startswith("http://127.0.0.1:")
    assert len(info["api key"]) == 32
    assert len(info["secret"]) == 64
    assert info["symbols"] == "BTCUSDT,ETHUSDT"
    exchange = ccxt_client(info["venue"], info["api key"], info["secret"])
    assert set(exchange.load_markets()) == {"BTC/USDT:USDT", "ETH/USDT:USDT"}
    assert exchange.fetch_balance()["USDT"]["total"] == pytest.approx(2500.0)
    order = exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.002)
    assert order["status"] == "closed"
    with pytest.raises(ccxt.AuthenticationError):
        ccxt_client(info["venue"], info["api key"], "wrong").fetch_balance()


async def test_a_ccxt_pro_client_watches_the_served_venues_streams(served: Served) -> None:
    # Wall time: the server's own tick publishes the market, nobody steps it.
    info = served.info
    assert info["streams"] == info["venue"].replace("http", "ws", 1) + "/ws"
    exchange = ccxt_client(info["venue"], info["api key"], info["secret"], pro=True)
    try:
        book = await asyncio.wait_for(exchange.watch_order_book("ETH/USDT:USDT"), 20)
        assert book["bids"][0][0] < book["asks"][0][0]
        watching = asyncio.ensure_future(exchange.watch_orders("ETH/USDT:USDT"))
        while not any("/private/" in url for url in exchange.clients or {}):
            await asyncio.sleep(0.01)  # the listen key is being fetched
        [private] = [c for url, c in exchange.clients.items() if "/private/" in url]
        await asyncio.wait_for(private.connected, 20)  # the user-data socket is open
        placed = await exchange.create_order("ETH/USDT:USDT", "market", "buy", 0.01)
        seen = await asyncio.wait_for(watching, 20)
        assert placed["id"] in {order["id"] for order in seen}
    finally:
        await exchange.close()


def test_fault_plan_file_is_applied(served: Served) -> None:
    exchange = ccxt_client(served.info["venue"], served.info["api key"], served.info["secret"])
    with pytest.raises(ccxt.OperationFailed):  # a JSON 503 {-1001}
        exchange.fapiPublicGetPing()
    assert exchange.fetch_time() > 0


def test_given_key_pair_is_used_and_not_echoed(tmp_path: Path) -> None:
    server = _serve("--api-key", "my-key", "--secret", "my-secret", "--symbols", "SOLUSDT")
    served = next(server)
    try:
        assert served.info["api key"] == "my-key"
        assert "secret" not in served.info
        exchange = ccxt_client(served.info["venue"], "my-key", "my-secret")
        assert exchange.fetch_balance()["USDT"]["total"] == pytest.approx(10_000.0)
        assert served.stop() == 0
    finally:
        server.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", "k"], "--api-key and --secret go together"),
        (["--wallet", "nan"], "--wallet"),
        (["--symbols", "DOGEUSDT"], "DOGEUSDT"),
        (["--faults", "/nonexistent/plan.toml"], "not found"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["venue", "serve", "--port", "0", *args]) == 2
    assert message in capsys.readouterr().err


def test_bad_fault_plan_names_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text('{"rules": [{"kind": "error", "stauts": 503}]}')
    assert main(["venue", "serve", "--port", "0", "--faults", str(plan)]) == 2
    assert "stauts" in capsys.readouterr().err


def test_faults_command_shows_replaces_and_clears_a_running_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json
    import time

    from safeguard._clock import ManualClock
    from safeguard.venue._engine import Venue
    from safeguard.venue._server import serve

    venue = Venue(clock=ManualClock(time.time()))
    plan = tmp_path / "plan.toml"
    plan.write_text('[[rules]]\nkind = "drop"\nendpoint = "POST /fapi/v1/order"\ncount = 2\n')
    with serve(venue) as server:
        assert main(["venue", "faults", server.url, "--plan", str(plan)]) == 0
        installed = json.loads(capsys.readouterr().out)
        assert installed["plan"]["rules"][0]["kind"] == "drop"
        assert server.dialect.fault_state()["plan"]["rules"][0]["count"] == 2
        assert main(["venue", "faults", server.url]) == 0
        assert json.loads(capsys.readouterr().out)["fired"] == [0]
        assert main(["venue", "faults", server.url, "--clear"]) == 0
        assert server.dialect.fault_state()["plan"]["rules"] == []
        capsys.readouterr()
        typo = tmp_path / "typo.toml"
        typo.write_text('[[rules]]\nkind = "drop"\nendpont = "x"\n')
        assert main(["venue", "faults", server.url, "--plan", str(typo)]) == 2
        assert "endpont" in capsys.readouterr().err
        assert server.dialect.fault_state()["plan"]["rules"] == []  # nothing was sent
        port = server.port
    assert main(["venue", "faults", f"http://127.0.0.1:{port}"]) == 3  # unreachable
    assert "cannot reach" in capsys.readouterr().err
