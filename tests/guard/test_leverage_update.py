"""Reading Binance's ``ACCOUNT_CONFIG_UPDATE`` off the raw user-data stream (ccxt.pro drops it):
which messages are a symbol's leverage, and which are not."""

from __future__ import annotations

from typing import Any

import pytest

from safeguard.guard._streams import leverage_update

EVENT = {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "T": 1, "ac": {"s": "BTCUSDT", "l": 25}}


def test_a_symbols_leverage_is_read_bare_or_in_a_combined_streams_wrapper() -> None:
    assert leverage_update(EVENT) == ("BTCUSDT", 25)
    assert leverage_update({"stream": "listenkey", "data": EVENT}) == ("BTCUSDT", 25)


@pytest.mark.parametrize(
    "message",
    [
        {"e": "ACCOUNT_CONFIG_UPDATE", "E": 1, "T": 1, "ai": {"j": True}},  # multi-assets mode
        {"e": "ACCOUNT_UPDATE", "a": {"s": "BTCUSDT", "l": 25}},
        {"e": "ACCOUNT_CONFIG_UPDATE", "ac": {"l": 25}},
        {"e": "ACCOUNT_CONFIG_UPDATE", "ac": "BTCUSDT"},
        [EVENT],
        "ACCOUNT_CONFIG_UPDATE",
        None,
    ],
    ids=["multi-assets", "other-event", "no-symbol", "not-a-mapping", "a-list", "text", "none"],
)
def test_anything_else_is_not_a_leverage(message: Any) -> None:
    assert leverage_update(message) is None
