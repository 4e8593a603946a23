"""A sync bot interrupted (SIGINT, or SIGTERM turned into an exception by the bot) while its
order is on the wire: the order is never lost. Either the caller learns its fate, or the
journal keeps it pending, and the next run's reconcile settles it against the venue."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.killswitch._switch import KillSwitch
from safeguard.testing import PaperAccount, sandbox_policy
from safeguard.venue._client import ccxt_client
from safeguard.venue._events import OrderUpdate
from safeguard.venue._server import VenueServer

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


def _guarded(paper: PaperAccount, url: str, state: Path) -> Any:
    policy = sandbox_policy(state, Policy.build(risk={"require_stop": False}))
    switch = KillSwitch(policy.kill_switch, clock=paper.clock, watch=False)
    raw = ccxt_client(url, paper.api_key, paper.secret, timeout_ms=20_000)
    return guard(
        raw,
        policy,
        kill_switch=switch,
        clock=paper.clock,
        journal_path=state / "orders.jsonl",
        durable_journal=False,
        sleep=lambda s: paper.advance(s) or False,
        ladder=False,
    )


def test_an_interrupt_while_the_order_is_on_the_wire_leaves_it_to_reconcile(
    funded_paper: PaperAccount, tmp_path: Path
) -> None:
    assert threading.current_thread() is threading.main_thread()
    server = VenueServer(funded_paper.venue, dialect=funded_paper.dialect)
    ex = _guarded(funded_paper, server.url, tmp_path)
    try:
        price = round(float(ex.fetch_ticker(SYMBOL)["last"]) * 0.97)
        # Held for longer than the interrupt can take to land (under the client's 20 s timeout;
        # the server hangs up on the held connection when it closes, so a pass costs no more).
        hold = {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/order", "hold_s": 15}
        funded_paper.set_faults({"rules": [hold]})
        main = threading.main_thread().ident
        assert main is not None
        interrupted: list[str] = []

        def interrupt_once_the_order_rests(notice: object) -> None:
            # Ctrl-C as the venue accepts the order, sent to the main thread itself: a watcher
            # thread polling the venue could be starved past the hold on a loaded machine, and
            # a process-wide signal may be taken by any thread, leaving the main one blocked
            # in its read until the answer came (both let the answer through: DID NOT RAISE).
            if isinstance(notice, OrderUpdate) and notice.execution == "NEW" and not interrupted:
                interrupted.append(str(notice.order["clientOrderId"]))
                signal.pthread_kill(main, signal.SIGINT)

        # A process started in the background (`cmd &` without job control, as a CI runner
        # may start the suite) inherits SIGINT ignored, and Python then keeps it ignored: the
        # Ctrl-C would be discarded. Give the process the handler an interactive bot has.
        previous_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        funded_paper.venue.add_listener(interrupt_once_the_order_rests)
        try:
            with pytest.raises(KeyboardInterrupt):
                ex.create_order(SYMBOL, "limit", "buy", 0.002, price)
        finally:
            funded_paper.venue.remove_listener(interrupt_once_the_order_rests)
            signal.signal(signal.SIGINT, previous_handler)
        funded_paper.set_faults({"rules": []})
        journal = ex.runtime.core.journal
        pending = [e.client_order_id for e in journal.unresolved()]
        on_venue = [o["clientOrderId"] for o in funded_paper.orders(VENUE_SYMBOL)]
        assert on_venue == interrupted  # the interrupt came as the venue took this order
        assert pending == on_venue  # the journal still holds the order the venue holds
        journal.close()
        ex.runtime.switch.close()

        # The next run settles it from the venue, and its journal agrees.
        again = _guarded(funded_paper, server.url, tmp_path)
        settled = again.reconcile()
        assert [cid for cid, _ in settled] == on_venue
        assert again.runtime.core.journal.unresolved() == []
        again.runtime.core.journal.close()
        again.runtime.switch.close()
    finally:
        server.close()
