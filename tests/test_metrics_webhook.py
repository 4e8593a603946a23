"""docs/webhook.md describes what the kill switch really sends.

A real kill switch posts to a real loopback HTTP receiver; the documented JSON example and the
documented field table are compared with the deliveries, key by key and type by type.
"""

from __future__ import annotations

import json
import queue
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread
from typing import Any

import pytest

from safeguard._codes import Code
from safeguard._config import KillSwitchConfig
from safeguard.killswitch._switch import KillSwitch, TradingState

DOC = Path(__file__).resolve().parents[1] / "docs" / "webhook.md"


def documented_example() -> dict[str, Any]:
    text = DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/webhook.md must hold exactly one JSON example"
    example = json.loads(blocks[0])
    assert isinstance(example, dict)
    return example


def documented_fields() -> dict[str, str]:
    """The field table: name -> documented type."""
    rows = re.findall(r"^\| `(\w+)` \| (\w+) \|", DOC.read_text(encoding="utf-8"), re.MULTILINE)
    return dict(rows)


JSON_TYPES = {"string": str, "number": float, "integer": int, "boolean": bool}


class Receiver:
    """A loopback webhook endpoint that keeps each request's headers and JSON body."""

    def __init__(self) -> None:
        self.received: queue.Queue[tuple[dict[str, str], Any]] = queue.Queue()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.put((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts/s3cr3t"
        self.thread = Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()

    def next(self) -> tuple[dict[str, str], dict[str, Any]]:
        headers, body = self.received.get(timeout=10)
        assert isinstance(body, dict)
        return headers, body

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver()
    yield endpoint
    endpoint.close()


@pytest.fixture
def switch(tmp_path: Path, receiver: Receiver) -> Iterator[KillSwitch]:
    config = KillSwitchConfig(
        state_dir=tmp_path,
        webhook_url=receiver.url,
        webhook_retry_delay_s=0.01,
        cooling_period_s=0.0,
        watch_state_file=False,
    )
    with KillSwitch(config, watch=False) as live:
        yield live


def test_the_documented_example_has_the_keys_and_types_of_a_real_engage(
    switch: KillSwitch, receiver: Receiver
) -> None:
    engaged = switch.engage("daily loss 5.2% > 5%", by="trigger", code=Code.DAILY_LOSS)
    headers, real = receiver.next()
    example = documented_example()
    assert sorted(example) == sorted(real)
    for key, documented in example.items():
        assert type(documented) is type(real[key]), key
    # What the example shows is what an engage carries.
    assert (real["event"], real["state"], real["previous"]) == ("engage", "HALTED", "ACTIVE")
    assert (real["code"], real["by"], real["since"]) == ("DAILY_LOSS", "trigger", engaged.since)
    assert real["persisted"] is True
    assert headers["Content-Type"] == "application/json"


def test_the_field_table_lists_every_field_with_its_json_type(
    switch: KillSwitch, receiver: Receiver
) -> None:
    switch.engage("ops says stop", by="pytest", state=TradingState.REDUCING)
    _, engaged = receiver.next()
    switch.resume(by="pytest")
    _, resumed = receiver.next()
    fields = documented_fields()
    assert sorted(fields) == sorted(engaged) == sorted(resumed)
    for payload in (engaged, resumed):
        for key, json_type in fields.items():
            assert type(payload[key]) is JSON_TYPES[json_type], (key, payload[key])
    # The documented resume: back to ACTIVE, the code emptied, persisted.
    assert (resumed["event"], resumed["state"], resumed["previous"]) == (
        "resume",
        "ACTIVE",
        "REDUCING",
    )
    assert resumed["code"] == ""
    assert resumed["persisted"] is True


def test_the_documented_enumerations_cover_what_is_sent(
    switch: KillSwitch, receiver: Receiver
) -> None:
    switch.engage("soft", by="pytest", state=TradingState.REDUCING)
    switch.engage("hard", by="pytest", state=TradingState.HALTED)  # escalation: sent too
    switch.engage("again", by="pytest")  # already HALTED: nothing changes, nothing is sent
    switch.resume(by="pytest", to=TradingState.REDUCING)
    moves = [receiver.next()[1] for _ in range(3)]
    assert [(m["event"], m["previous"], m["state"]) for m in moves] == [
        ("engage", "ACTIVE", "REDUCING"),
        ("engage", "REDUCING", "HALTED"),
        ("resume", "HALTED", "REDUCING"),
    ]
    assert moves[2]["code"] == moves[1]["code"] == "MANUAL"  # a resume to REDUCING keeps it
    assert receiver.received.empty()
    text = DOC.read_text(encoding="utf-8")
    for move in moves:
        for key in ("event", "state", "previous"):
            assert f'"{move[key]}"' in text


def test_early_warnings_are_posted_to_the_webhook(receiver: Receiver) -> None:
    from safeguard.guard._events import Hooks, WarningEvent
    from safeguard.killswitch._notify import WebhookNotifier, forward_warnings

    hooks = Hooks()
    notifier = WebhookNotifier(receiver.url, retry_delay_s=0.01)
    stop = forward_warnings(hooks, notifier)
    try:
        hooks.emit(
            WarningEvent(
                at=1_763_716_000.0,
                name="FUNDING_NEAR_CAP",
                severity="critical",
                message="funding at its cap",
                value=1.0,
                threshold=0.8,
                symbol="BTC/USDT:USDT",
                escalate="REDUCING",
            )
        )
        headers, body = receiver.next()
        assert headers["Content-Type"] == "application/json"
        assert body["event"] == "warning"
        assert body["name"] == "FUNDING_NEAR_CAP"
        assert body["severity"] == "critical"
        assert body["escalate"] == "REDUCING"
        assert body["symbol"] == "BTC/USDT:USDT"
        assert body["at_iso"].startswith("2025-11-21T09:06:40")
        stop()
        hooks.emit(
            WarningEvent(
                at=1.0, name="CANCEL_BURST", severity="warning", message="m", value=3, threshold=3
            )
        )
        assert notifier.close(5.0)
        assert receiver.received.empty()  # nothing after the forwarding stopped
    finally:
        notifier.close(5.0)
