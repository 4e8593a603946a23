"""The webhook: a real loopback HTTP server, retries on 500, and an engage that never waits."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from safeguard._config import KillSwitchConfig
from safeguard.killswitch._notify import (
    MAX_RETRY_DELAY_S,
    WebhookNotifier,
    build_payload,
    should_retry,
    validate_url,
)
from safeguard.killswitch._switch import KillSwitch, SwitchState, TradingState


class Hook:
    """A loopback webhook receiver answering a scripted list of statuses (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = list(statuses)
        self.bodies: list[dict[str, Any]] = []
        self.release = threading.Event()
        self.release.set()
        self.arrived = threading.Event()
        self.delivered = threading.Event()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                hook.bodies.append(body)
                hook.arrived.set()
                hook.release.wait(30)  # lets a test hold the receiver up
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                if status < 300:
                    hook.delivered.set()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/secret-token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook([])
    yield server
    server.close()


def switch_for(tmp_path: Path, url: str, **overrides: Any) -> KillSwitch:
    settings: dict[str, Any] = {
        "state_dir": tmp_path,
        "webhook_url": url,
        "webhook_timeout_s": 5.0,
        "webhook_retry_delay_s": 0.01,
        "cooling_period_s": 0.0,
    }
    settings.update(overrides)
    return KillSwitch(KillSwitchConfig(**settings), watch=False)


def test_engage_and_resume_are_posted_with_the_documented_payload(
    tmp_path: Path, hook: Hook
) -> None:
    switch = switch_for(tmp_path, hook.url)
    engaged = switch.engage("daily loss", by="trigger:daily_loss", code="DAILY_LOSS")
    assert hook.delivered.wait(10)
    hook.delivered.clear()
    switch.resume(by="alice")
    assert hook.delivered.wait(10)
    switch.close()
    first, second = hook.bodies
    assert {k: first[k] for k in ("event", "state", "previous", "reason", "code", "by")} == {
        "event": "engage",
        "state": "HALTED",
        "previous": "ACTIVE",
        "reason": "daily loss",
        "code": "DAILY_LOSS",
        "by": "trigger:daily_loss",
    }
    assert first["since"] == engaged.since
    assert first["persisted"] is True
    assert first["store"] == str(tmp_path / "state.json")
    assert isinstance(first["sent_at"], float)
    assert (second["event"], second["state"], second["previous"], second["by"]) == (
        "resume",
        "ACTIVE",
        "HALTED",
        "alice",
    )


def test_500s_are_retried_until_delivered(tmp_path: Path) -> None:
    hook = Hook([500, 503])
    try:
        switch = switch_for(tmp_path, hook.url)
        switch.engage("stop", by="pytest")
        assert hook.delivered.wait(10)
        switch.close()
        assert len(hook.bodies) == 3
        assert {b["event"] for b in hook.bodies} == {"engage"}
    finally:
        hook.close()


def test_a_4xx_is_final_and_the_attempts_are_bounded(tmp_path: Path) -> None:
    hook = Hook([404, 500, 500, 500])
    try:
        notifier = WebhookNotifier(hook.url, max_attempts=3, retry_delay_s=0.01)
        notifier.notify({"event": "engage"})
        notifier.notify({"event": "resume"})
        assert notifier.close(10)
        # The 404 is not retried; the 500s are, three times, and then dropped.
        assert [b["event"] for b in hook.bodies] == ["engage", "resume", "resume", "resume"]
        assert (notifier.delivered, notifier.dropped) == (0, 2)
    finally:
        hook.close()


def test_engage_does_not_wait_for_the_webhook(tmp_path: Path) -> None:
    hook = Hook([])
    hook.release.clear()  # the receiver holds every request until told otherwise
    try:
        switch = switch_for(tmp_path, hook.url)
        state = switch.engage("stop", by="pytest")
        assert state.state is TradingState.HALTED  # returned while nothing was delivered
        assert not hook.delivered.is_set()
        assert hook.arrived.wait(10)  # the post is under way in the background
        hook.release.set()
        assert hook.delivered.wait(10)
        switch.close()
    finally:
        hook.close()


def test_unreachable_webhook_never_fails_the_switch(tmp_path: Path) -> None:
    config = KillSwitchConfig(
        state_dir=tmp_path,
        webhook_url="http://127.0.0.1:9/hook",
        webhook_retry_delay_s=0.01,
        webhook_max_attempts=2,
    )
    notifier = WebhookNotifier.from_config(config)
    switch = KillSwitch(config, notifier=notifier, watch=False)
    assert switch.engage("stop", by="pytest").state is TradingState.HALTED
    switch.close()
    assert notifier.dropped == 1


# --- the pure parts ---------------------------------------------------------------------------


def test_the_pause_between_attempts_doubles_and_is_capped() -> None:
    policy = WebhookNotifier("http://127.0.0.1:9/hook", retry_delay_s=0.5).retry_policy()
    assert [policy.ceiling(n) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert policy.ceiling(40) == MAX_RETRY_DELAY_S
    assert WebhookNotifier("http://127.0.0.1:9/h", retry_delay_s=45.0).retry_policy().ceiling(
        1
    ) == (MAX_RETRY_DELAY_S)
    with pytest.raises(ValueError, match="attempt"):
        policy.ceiling(0)


@pytest.mark.parametrize(
    ("status", "retry"),
    [(None, True), (429, True), (500, True), (503, True), (400, False), (404, False)],
)
def test_what_is_retried(status: int | None, retry: bool) -> None:
    assert should_retry(status) is retry


@pytest.mark.parametrize("url", ["", "ftp://host/x", "hooks.example.com/x", "http://", 42])
def test_webhook_url_must_be_http_with_a_host(url: object) -> None:
    with pytest.raises(ValueError, match="webhook_url"):
        validate_url(url)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"timeout_s": float("nan")}, "webhook_timeout_s"),
        ({"timeout_s": 0}, "webhook_timeout_s"),
        ({"retry_delay_s": -1}, "webhook_retry_delay_s"),
        ({"max_attempts": 0}, "webhook_max_attempts"),
    ],
)
def test_notifier_settings_fail_closed(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        WebhookNotifier("http://127.0.0.1/hook", **kwargs)


def test_payload_refuses_unknown_events() -> None:
    state = SwitchState(TradingState.HALTED, "r", "MANUAL", "b", 1.0)
    with pytest.raises(ValueError, match="event"):
        build_payload("pause", state, state, store="s", persisted=True)


def test_a_failed_delivery_is_logged_without_the_secret_in_the_url() -> None:
    from loguru import logger

    hook = Hook([403])
    records: list[str] = []
    logger.enable("safeguard")
    sink = logger.add(lambda m: records.append(str(m)), level="WARNING", format="{message}")
    try:
        notifier = WebhookNotifier(hook.url, max_attempts=2, retry_delay_s=0.01)
        notifier.notify({"event": "engage"})
        assert notifier.close(10)
    finally:
        logger.remove(sink)
        logger.disable("safeguard")
        hook.close()
    assert any("not delivered" in r and "http://127.0.0.1" in r for r in records)
    assert not any("secret-token" in r for r in records)


def test_a_bad_webhook_url_is_refused_without_echoing_it() -> None:
    for url in ("ftp://hooks.example.com/T0KEN-abc123", "hooks.example.com/T0KEN-abc123"):
        with pytest.raises(ValueError, match="webhook_url") as info:
            validate_url(url)
        assert "T0KEN-abc123" not in str(info.value)


def test_the_configured_webhook_url_is_a_secret_and_still_delivers(
    tmp_path: Path, hook: Hook
) -> None:
    config = KillSwitchConfig(state_dir=tmp_path, webhook_url=hook.url)
    assert isinstance(config.webhook_url, SecretStr)
    assert "secret-token" not in repr(config)
    assert "secret-token" not in config.model_dump_json()
    switch = switch_for(tmp_path, hook.url)
    switch.engage("manual", by="alice")
    assert hook.delivered.wait(10)
    switch.close()
    assert hook.bodies[0]["event"] == "engage"
