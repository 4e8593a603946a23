"""What safeguard knows of a venue is one venue profile; a venue without one is refused, and an
unreachable venue is called that.

Real ccxt classes: ``ccxt.bybit()`` and ``ccxt.okx()`` as a user builds them, and a real
``ccxt.binanceusdm`` pointed at a loopback port where nothing listens (a real refused
connection, on simulated time).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support
import pytest

from safeguard import _errors as errors
from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard._profiles import BINANCE_USDM, profile_for
from safeguard.guard import guard
from safeguard.testing import sandbox_policy
from safeguard.venue._client import ccxt_client

SYMBOL = "BTC/USDT:USDT"


@pytest.mark.parametrize("exchange", [ccxt.bybit, ccxt.okx, ccxt.binance, ccxt.async_support.okx])
def test_an_exchange_without_a_venue_profile_is_refused_saying_what_is_missing(
    exchange: Any, tmp_path: Path
) -> None:
    client = exchange()
    try:
        with pytest.raises(errors.ConfigError) as refused:
            guard(client, sandbox_policy(tmp_path))
    finally:
        if isinstance(client, ccxt.async_support.Exchange):
            import asyncio

            asyncio.run(client.close())
    message = str(refused.value)
    assert f"no venue profile for {client.id!r}" in message
    for missing in ("rate-limit headers", "rate limits", "protective stop", "liquidation model"):
        assert missing in message
    assert "binanceusdm" in message  # what is supported
    assert refused.value.key == "exchange"
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened or written


def test_binance_usdm_is_the_shipped_profile() -> None:
    profile = profile_for("binanceusdm")
    assert profile is BINANCE_USDM
    assert profile.weight_header.match("X-MBX-USED-WEIGHT-1M")
    assert profile.order_header.match("x-mbx-order-count-10s")
    assert profile.liquidation_model == "binanceusdm"
    assert profile.stop_params == {"closePosition": True}


@pytest.fixture
def nowhere() -> str:
    """A loopback URL where nothing listens: every connection is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_an_unreachable_venue_is_the_first_error_not_a_health_verdict(
    nowhere: str, tmp_path: Path
) -> None:
    clock = ManualClock(1_767_225_600.0)

    def sleep(seconds: float) -> bool:
        clock.advance(seconds)
        return False

    exchange = guard(
        ccxt_client(nowhere, "k" * 20, "s" * 30),
        sandbox_policy(tmp_path, Policy.build()),
        clock=clock,
        sleep=sleep,
    )
    try:
        for _ in range(2):  # and again: by now the health monitor calls the venue SEVERE
            with pytest.raises(errors.RetriesExhausted, match="venue unreachable") as failed:
                exchange.create_order(SYMBOL, "market", "buy", 0.01, None, {"stopLossPrice": 8e4})
            assert "nothing was sent" in str(failed.value)
        assert exchange.runtime.core.journal.unresolved() == []
        assert len(exchange.runtime.core.journal) == 0  # never journaled: never on its way
    finally:
        exchange.runtime.switch.close()
        exchange.runtime.core.journal.close()
