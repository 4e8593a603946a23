"""A guarded exchange keeps its credentials and request signatures out of every text it makes:
its error's message, the whole exception chain under it, and an application's own
``logger.exception`` with loguru's defaults (``diagnose`` prints frame values)."""

from __future__ import annotations

import io
import re
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._redact import REDACTED, forget_secrets, scrub_text
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy

KEY = "sg-e2e-key-0123456789"
SECRET = "sg-e2e-secret-0123456789abcdef"
SIGNED = re.compile(r"signature=[0-9a-f]{16,}")


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_guard_registers_the_exchanges_credentials_for_redaction(tmp_path: Path) -> None:
    assert KEY in scrub_text(f"key {KEY}")  # nothing registered yet
    paper_account(api_key=KEY, secret=SECRET).guarded(state_dir=tmp_path)
    assert scrub_text(f"key {KEY} / {SECRET}") == f"key {REDACTED} / {REDACTED}"


def test_a_failed_signed_read_leaks_nowhere(tmp_path: Path) -> None:
    account = paper_account(api_key=KEY, secret=SECRET)
    exchange = account.guarded(state_dir=tmp_path)
    exchange.load_markets()
    account.set_faults(
        # An HTML 503: ccxt's message then carries the signed URL.
        {
            "rules": [
                {"kind": "error", "endpoint": "GET /fapi/v3/account", "status": 503, "body": "html"}
            ]
        }
    )
    stream = io.StringIO()
    sink = logger.add(stream, format="{message}\n{exception}", diagnose=True, backtrace=True)
    try:
        with pytest.raises(errors.RetriesExhausted) as info:
            exchange.fetch_balance()
        try:
            raise info.value
        except errors.SafeguardError:
            logger.exception("fetch_balance failed")  # what any bot does with an exception
    finally:
        logger.remove(sink)
    chain = "".join(traceback.format_exception(info.value))
    assert "ExchangeNotAvailable: " in chain  # the venue's error is still there, by type
    assert f"signature={REDACTED}" in chain
    logged = stream.getvalue()
    assert "fetch_balance failed" in logged
    for text in (str(info.value), chain, logged):
        assert not SIGNED.search(text)
        assert KEY not in text
        assert SECRET not in text


def _keyless_client(account: PaperAccount) -> Any:
    raw = account.client()
    raw.apiKey = ""
    raw.secret = ""
    return raw


def _guard_with(account: PaperAccount, raw: Any, tmp_path: Path, **credentials: str) -> Any:
    policy = sandbox_policy(tmp_path, Policy.build(credentials=credentials))
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
    return guard(raw, policy, kill_switch=switch, clock=account.clock, ladder=False)


def test_the_policys_credentials_sign_for_an_exchange_built_without_keys(tmp_path: Path) -> None:
    account = paper_account(api_key=KEY, secret=SECRET)
    exchange = _guard_with(account, _keyless_client(account), tmp_path, api_key=KEY, secret=SECRET)
    balance = exchange.fetch_balance()  # a signed read: the venue checks key and signature
    assert balance["USDT"]["total"] == 10_000.0
    assert scrub_text(f"{KEY} {SECRET}") == f"{REDACTED} {REDACTED}"


def test_policy_credentials_that_contradict_the_exchanges_own_are_refused(tmp_path: Path) -> None:
    account = paper_account(api_key=KEY, secret=SECRET)
    with pytest.raises(errors.ConfigError, match=r"credentials\.api_key") as refused:
        _guard_with(account, account.client(), tmp_path, api_key="another-key-0123456789")
    assert refused.value.key == "credentials.api_key"
    # The same keys in both places are not a contradiction.
    same = _guard_with(account, account.client(), tmp_path, api_key=KEY, secret=SECRET)
    assert same.fetch_balance()["USDT"]["total"] == 10_000.0
