"""A real ccxt "connection refused" leaks nothing through its ``raise ... from`` links.

Sync ccxt over ``requests`` builds this chain when the venue's port is closed::

    ccxt.NetworkError  (message: the signed URL)
      __cause__   requests.ConnectionError   (the signed URL again)
        __context__ urllib3.MaxRetryError     (and again)
          __cause__   urllib3.NewConnectionError
            __cause__   ConnectionRefusedError

Three of the four links are ``__cause__``. Each is reproduced here with real ccxt pointed at a
closed loopback port, and every text any link can produce (its message, its repr, its args, the
formatted traceback of the whole chain) is searched for the key, the secret and a signature.
"""

from __future__ import annotations

import re
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._redact import forget_secrets, register_secrets, scrubbed_exception
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import paper_account, sandbox_policy
from safeguard.venue._client import ccxt_client

KEY = "sg-chain-key-0123456789"
SECRET = "sg-chain-secret-0123456789abcdef"
SIGNED = re.compile(r"signature=[0-9a-f]{16,}")


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _links(exc: BaseException) -> list[BaseException]:
    """Every exception reachable by ``__cause__`` and ``__context__``, each once."""
    seen: list[BaseException] = []
    todo = [exc]
    while todo:
        current = todo.pop()
        if any(current is known for known in seen):
            continue
        seen.append(current)
        todo.extend(x for x in (current.__cause__, current.__context__) if x is not None)
    return seen


def _texts(exc: BaseException) -> list[str]:
    texts = ["".join(traceback.format_exception(exc))]
    for link in _links(exc):
        texts += [str(link), repr(link), repr(link.args)]
    return texts


def _assert_clean(exc: BaseException) -> None:
    for text in _texts(exc):
        assert not SIGNED.search(text), text
        assert KEY not in text, text
        assert SECRET not in text, text


def _refused_signed_read() -> BaseException:
    exchange = ccxt_client(f"http://127.0.0.1:{_closed_port()}", KEY, SECRET, timeout_ms=5_000)
    try:
        exchange.fapiPrivateV2GetAccount()
    except ccxt.NetworkError as exc:
        return exc
    raise AssertionError("a closed port answered")


def test_the_real_refused_chain_carries_the_signed_url_in_its_cause_links() -> None:
    raw = _refused_signed_read()
    kinds = [(type(link).__name__, link.__cause__ is not None) for link in _links(raw)]
    assert sum(has_cause for _, has_cause in kinds) >= 3  # three `raise ... from` links
    assert any(name == "ConnectionRefusedError" for name, _ in kinds)
    # What the scrubbing below is up against: the raw chain leaks through its causes.
    leaking = [link for link in _links(raw)[1:] if SIGNED.search(str(link))]
    assert leaking


def test_every_cause_link_of_a_refused_signed_read_is_scrubbed() -> None:
    register_secrets([KEY, SECRET])
    raw = _refused_signed_read()
    scrubbed = scrubbed_exception(raw)
    _assert_clean(scrubbed)
    # Scrubbed, not cut off: the chain still tells what happened, down to the refusal.
    names = [type(link).__name__ for link in _links(scrubbed)]
    assert names[0] == "NetworkError"
    assert "ConnectionRefusedError" in names


def test_a_guarded_signed_read_to_a_closed_port_leaks_nowhere(tmp_path: Path) -> None:
    account = paper_account(api_key=KEY, secret=SECRET)
    server = account.serve()
    policy = sandbox_policy(tmp_path, Policy.build(retry={"max_attempts": 2}))
    switch = KillSwitch(policy.kill_switch, clock=account.clock, watch=False)
    raw = account.http_client(server, timeout_ms=5_000)

    def sleep(seconds: float) -> bool:
        account.advance(seconds)
        return False

    exchange: Any = guard(
        raw,
        policy,
        kill_switch=switch,
        clock=account.clock,
        journal_path=tmp_path / "orders.jsonl",
        durable_journal=False,
        sleep=sleep,
    )
    try:
        exchange.load_markets()
        server.close()  # the venue goes away: its port now refuses connections
        with pytest.raises(errors.SafeguardError) as caught:
            exchange.fetch_balance()
    finally:
        exchange.runtime.core.journal.close()
        switch.close()
        account.close()
    assert isinstance(caught.value.__cause__, ccxt.NetworkError)
    assert len(_links(caught.value)) >= 4  # the venue's chain is kept, scrubbed
    _assert_clean(caught.value)
