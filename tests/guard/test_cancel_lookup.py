"""A cancel whose outcome was ambiguous is settled by looking the order up where it lives.

Real ``ccxt.binanceusdm`` on the mock venue (:func:`safeguard.testing.paper_account`): the
venue accepts the first ``DELETE`` and the answer is lost; the retry answers "unknown order",
and the guard looks the order up to answer with it as it stands. A stop waits in Binance's
algo service (since 2025-12-09), which the plain ``GET /fapi/v1/order`` does not know: the
look-up must go to the algo routes as the cancel did (``{"trigger": True}``), or a cancel that
worked was reported as ``OrderNotFound``.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest

from safeguard import Policy
from safeguard.testing import paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


def _lost_answer(route: str) -> dict[str, Any]:
    return {"seed": 1, "rules": [{"kind": "timeout_after_accept", "endpoint": route, "count": 1}]}


async def _call(ex: Any, method: str, *args: Any) -> Any:
    result = getattr(ex, method)(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.mark.parametrize("aio", [False, True])
def test_a_stop_cancel_whose_answer_was_lost_answers_the_cancelled_stop(aio: bool) -> None:
    paper = paper_account(seed=7, symbols=(VENUE_SYMBOL,), wallet=100_000.0)

    async def scenario() -> dict[str, Any]:
        ex = paper.guarded(Policy.build(risk={"max_leverage": 10}), asyncio=aio)
        try:
            await _call(ex, "set_leverage", 5, SYMBOL)
            last = (await _call(ex, "fetch_ticker", SYMBOL))["last"]
            stop_loss = {"stopLossPrice": round(last * 0.97, 1)}
            await _call(ex, "create_order", SYMBOL, "market", "buy", 0.01, None, stop_loss)
            [stop] = [o for o in paper.orders(VENUE_SYMBOL) if o["type"] == "STOP_MARKET"]
            paper.set_faults(_lost_answer("DELETE /fapi/v1/algoOrder"))
            canceled = await _call(
                ex, "cancel_order", str(stop["orderId"]), SYMBOL, {"trigger": True}
            )
            assert paper.faults_fired() == [1]  # the first DELETE was carried out, unanswered
            assert canceled["id"] == str(stop["orderId"])
            return dict(canceled)
        finally:
            if aio:
                await ex.close()

    try:
        canceled = asyncio.run(scenario())
        assert canceled["status"] == "canceled"
        [after] = [o for o in paper.orders(VENUE_SYMBOL) if o["type"] == "STOP_MARKET"]
        assert after["status"] == "CANCELED"
    finally:
        paper.close()
