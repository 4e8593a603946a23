"""A venue that changes its rules, answers with values out of range, or degrades mid-order.

Each test is a break an adversarial review found through the public API (each failed before
its fix): a bot's own ``load_markets()`` answered from ccxt's cache kept the guard's rules
"fresh" for ever, and diluted the venue's health with calls that sent nothing; a resend after
a send that tipped the venue into SEVERE went out on the old verdict; a position row without
a mark was valued at its entry price; a premiumIndex stamped at the epoch counted as just
read; an out-of-range premiumIndex field raised a bare ``ValueError`` from every call.
Real ccxt clients on the in-process venue; a hostile venue is the venue's own answers
rewritten on their way out (:func:`_rewrite`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from safeguard import _errors as errors
from safeguard._codes import Code
from safeguard._config import Policy
from safeguard.guard import EventKind, Hooks, RequestEvent, StateChangeEvent, guard
from safeguard.killswitch import KillSwitch
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue._dialect import Request, Response

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"


def _policy(**risk: Any) -> Policy:
    return Policy.build(
        risk={"max_leverage": 125, "require_stop": False, **risk},
        degradation={"min_samples": 100_000},
        retry={"max_attempts": 2},
    )


@pytest.fixture
def paper() -> Iterator[PaperAccount]:
    account = paper_account(wallet=10_000)
    yield account
    account.close()


def _rewrite(paper: PaperAccount, path: str, change: Callable[[Any], Any]) -> None:
    """The venue's JSON answers on ``path`` rewritten by ``change`` (a hostile venue)."""
    dialect = paper.dialect
    handle = dialect.handle

    def rewritten(request: Request) -> Response:
        answer = handle(request)
        if request.path == path and answer.status == 200 and answer.body:
            return replace(answer, body=json.dumps(change(json.loads(answer.body))))
        return answer

    dialect.handle = rewritten  # type: ignore[method-assign]


def _min_notional(info: Any, notional: str) -> Any:
    for market in info["symbols"]:
        if market["symbol"] == VENUE_SYMBOL:
            for rule in market["filters"]:
                if rule["filterType"] == "MIN_NOTIONAL":
                    rule["notional"] = notional
    return info


def test_the_bots_own_cached_load_markets_does_not_keep_the_rules_fresh(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """ccxt answers ``load_markets()`` from its cache: nothing is read, so the rules age on
    and are read again on their schedule, where the venue's new minimum shows."""
    ex = paper.guarded(_policy(max_rules_age_s=600.0), state_dir=tmp_path)
    ex.load_markets()
    _rewrite(paper, "/fapi/v1/exchangeInfo", lambda info: _min_notional(info, "5000"))
    for _ in range(6):  # an hour of a bot that calls load_markets() in its loop
        paper.advance(600)
        ex.load_markets()
        ex.fetch_ticker(SYMBOL)
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert denied.value.code == Code.MIN_NOTIONAL
    assert paper.positions() == {}


def test_calls_answered_from_ccxts_cache_do_not_dilute_the_venues_health(
    tmp_path: Path,
) -> None:
    def health_after(cached_calls: int) -> str:
        account = paper_account(wallet=10_000)
        try:
            policy = Policy.build(risk={"require_stop": False}, retry={"max_attempts": 2})
            ex = account.guarded(policy, state_dir=tmp_path / str(cached_calls))
            ex.load_markets()
            account.set_faults(
                {"seed": 1, "rules": [
                    {"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr", "status": 503,
                     "probability": 0.4},
                ]}
            )  # fmt: skip
            for _ in range(40):
                account.advance(1)
                for _ in range(cached_calls):
                    ex.load_markets()  # answered from ccxt's cache: nothing sent
                with contextlib.suppress(errors.RetriesExhausted):
                    ex.fetch_ticker(SYMBOL)
            return str(ex.runtime.core.gate.health.state(account.clock.time()))
        finally:
            account.close()

    plain = health_after(0)
    assert plain == "SEVERE"  # 40 % of the reads fail
    assert health_after(10) == plain  # the same requests on the wire: the same health


def test_a_resend_after_the_venue_turned_severe_is_judged_again(tmp_path: Path) -> None:
    """The order's own first send is throttled (429), which tips the venue to SEVERE (the
    policy: reduce-only). The resend must not go out on the verdict priced before."""
    hooks = Hooks()
    severe: list[float] = []
    filled: list[float] = []
    hooks.subscribe(
        EventKind.STATE_CHANGE,
        lambda e: severe.append(e.at) if isinstance(e, StateChangeEvent) and e.current == "SEVERE"
        else None,
    )  # fmt: skip
    hooks.subscribe(
        EventKind.REQUEST,
        lambda e: filled.append(e.at)
        if isinstance(e, RequestEvent) and e.method == "create_order" and e.outcome == "ok"
        else None,
    )  # fmt: skip
    account = paper_account(wallet=10_000)
    try:
        policy = Policy.build(
            risk={"max_leverage": 125, "require_stop": False},
            retry={"default_retry_after_s": 0.05},
        )
        ex = account.guarded(policy, state_dir=tmp_path, hooks=hooks)
        ex.load_markets()
        ex.preview(SYMBOL, "market", "buy", 0.01)
        health = ex.runtime.core.gate.health
        while True:  # another part of the bot polls; some polls are throttled
            m = health.metrics(account.clock.time())
            throttled = m.samples * (m.throttle_rate or 0.0)
            if (throttled + 1) / (m.samples + 1) >= 0.2:  # the next 429 tips it to SEVERE
                break
            account.set_faults(
                {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/ticker/24hr",
                            "status": 429, "retry_after_s": 1, "count": 1}]}
            )  # fmt: skip
            ex.fetch_ticker(SYMBOL)
        account.set_faults(
            {"rules": [{"kind": "error", "endpoint": "POST /fapi/v1/order", "status": 429,
                        "retry_after_s": 1, "count": 1}]}
        )  # fmt: skip
        with pytest.raises(errors.OrderDenied) as denied:
            ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert denied.value.code == Code.SEVERE_REDUCE_ONLY
        assert severe
        assert not [at for at in filled if at > severe[0]]
        assert account.positions() == {}
    finally:
        account.close()


@pytest.mark.parametrize("mark", [None, "0"])
def test_a_position_row_without_a_mark_is_not_valued_at_its_entry(
    tmp_path: Path, mark: str | None
) -> None:
    """A long 3,000 under water: valued at its entry, the loss vanished and an order the
    concentration limit denies was allowed."""

    def verdict(rewrite: bool) -> Any:
        account = paper_account(wallet=10_000)
        try:
            policy = _policy(max_concentration=6.0)
            ex = account.guarded(policy, state_dir=tmp_path / f"{rewrite}{mark}")
            ex.load_markets()
            ex.set_leverage(20, SYMBOL)
            ex.create_order(SYMBOL, "market", "buy", 0.5)
            account.venue.spike(VENUE_SYMBOL, -8.0, 3600)
            account.advance(120)
            if rewrite:
                _rewrite(
                    account,
                    "/fapi/v3/positionRisk",
                    lambda rows: [
                        {k: v for k, v in row.items() if k != "markPrice"}
                        if mark is None
                        else dict(row, markPrice=mark)
                        for row in rows
                    ],
                )
            judged = ex.preview(SYMBOL, "market", "buy", 0.1)
            return judged.decision, sorted(str(f.code) for f in judged.denials)
        finally:
            account.close()

    honest = verdict(False)
    assert honest[0] != "ALLOW"
    assert verdict(True) == honest


def test_a_mark_stamped_at_the_epoch_is_stale_not_just_read(
    paper: PaperAccount, tmp_path: Path
) -> None:
    _rewrite(paper, "/fapi/v1/premiumIndex", lambda index: dict(index, time=0))
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert denied.value.code == Code.STALE_MARKET_DATA
    assert paper.positions() == {}


@pytest.mark.parametrize(
    ("field", "value", "closes"),
    [
        ("lastFundingRate", "5", True),  # a funding rate of 500 %: taken as missing
        ("nextFundingTime", -1, True),
        ("time", -1, False),  # the mark's time unusable: denied, as a missing mark time is
    ],
)
def test_an_out_of_range_premium_index_field_is_missing_data_not_an_exception(
    paper: PaperAccount, tmp_path: Path, field: str, value: Any, closes: bool
) -> None:
    ex = paper.guarded(_policy(), state_dir=tmp_path, triggers=True)
    ex.load_markets()
    ex.create_order(SYMBOL, "market", "buy", 0.05)
    _rewrite(paper, "/fapi/v1/premiumIndex", lambda index: {**index, field: value})
    paper.advance(10)  # the funding read is due again
    ex.fetch_funding_rate(SYMBOL)  # read and judged by the triggers: no exception
    with pytest.raises(errors.OrderDenied):
        ex.create_order(SYMBOL, "market", "buy", 0.01)  # new exposure: denied
    if closes:
        ex.create_order(SYMBOL, "market", "sell", 0.05, None, {"reduceOnly": True})
        assert paper.positions() == {}
    else:
        with pytest.raises(errors.OrderDenied):
            ex.create_order(SYMBOL, "market", "sell", 0.05, None, {"reduceOnly": True})
        assert paper.positions() == {VENUE_SYMBOL: pytest.approx(0.05)}


def test_one_frozen_symbol_stops_only_its_own_orders(tmp_path: Path) -> None:
    """A try at feeding the venue's health with each mark's age on arrival made the whole
    venue SEVERE when one symbol's feed froze (the monitor's state is the venue's): every
    other symbol's orders were denied reduce-only. The verdict judges each symbol's data."""
    account = paper_account(wallet=10_000, symbols=(VENUE_SYMBOL, "ETHUSDT"))
    try:
        ex = account.guarded(_policy(), state_dir=tmp_path)
        ex.load_markets()
        account.venue.freeze_feed("ETHUSDT", "timestamps")
        account.advance(20.0)
        with pytest.raises(errors.OrderDenied) as denied:
            ex.create_order("ETH/USDT:USDT", "market", "buy", 0.1)
        assert denied.value.code == Code.STALE_MARKET_DATA
        ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert account.positions() == {VENUE_SYMBOL: pytest.approx(0.01)}
    finally:
        account.close()


def test_a_funding_interval_the_venue_shortens_is_read_on_the_rules_schedule(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """The venue moves to 4 h funding at 05:00: the next funding time (08:00) lies on the 8 h
    grid too, so the interval cannot be told from it. The guard reads every symbol's interval
    itself (``fundingInfo``) on the rules' schedule: a guard running since before the change
    prices the same funding as one started after it."""

    def policy() -> Policy:
        return Policy.build(
            risk={"require_stop": False, "max_leverage": 125, "funding_at_cap": True,
                  "funding_cap_rate": 0.02, "funding_horizon_s": 8 * 3600.0,
                  "max_concentration": None, "max_notional_per_order": None,
                  "max_notional_per_position": None},
            degradation={"min_samples": 100_000},
        )  # fmt: skip

    running = paper.guarded(policy(), state_dir=tmp_path / "running")
    running.load_markets()
    running.preview(SYMBOL, "market", "buy", 1.0)
    paper.advance(5 * 3600)  # 05:00 UTC
    paper.venue.set_funding_interval(VENUE_SYMBOL, 4)
    paper.advance(5)
    started = paper.guarded(policy(), state_dir=tmp_path / "started")
    started.load_markets()
    assert started.fetch_funding_interval(SYMBOL)["interval"] == "4h"  # the venue's word
    funding = [
        ex.preview(SYMBOL, "market", "buy", 1.0).expected.expected_funding
        for ex in (running, started)
    ]
    assert funding[0] == pytest.approx(funding[1])
    assert funding[1] > 0


def test_a_failing_funding_interval_list_costs_one_request_a_period_never_an_order(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """The list is read after a funding read, once per half of the rules' age whatever
    became of it, in one try: made on the order path as a needed read, a venue failing it
    retried it with backoff on every order and its errors made the venue SEVERE."""
    ex = paper.guarded(_policy(), state_dir=tmp_path)
    ex.load_markets()
    paper.set_faults(
        {"rules": [{"kind": "error", "endpoint": "GET /fapi/v1/fundingInfo", "status": 503}]}
    )
    for i in range(20):
        paper.advance(60.0)
        ex.create_order(SYMBOL, "market", "buy" if i % 2 == 0 else "sell", 0.01)
    assert paper.faults_fired()[0] <= 20 * 60 / (_policy().risk.max_rules_age_s / 2) + 1
    assert str(ex.runtime.core.gate.health.state(paper.clock.time())) == "NORMAL"


def test_a_guard_built_on_a_client_that_loaded_its_markets_long_ago_reads_them_again(
    paper: PaperAccount, tmp_path: Path
) -> None:
    raw = paper.client()
    raw.load_markets()
    _rewrite(paper, "/fapi/v1/exchangeInfo", lambda info: _min_notional(info, "5000"))
    paper.advance(3600)  # an hour later the bot builds its guard on the same client
    policy = sandbox_policy(tmp_path, _policy())
    switch = KillSwitch(policy.kill_switch, clock=paper.clock, watch=False)
    ex = guard(raw, policy, clock=paper.clock, kill_switch=switch, durable_journal=False)
    try:
        ex.load_markets()  # ccxt's cache: the rules as of an hour ago
        with pytest.raises(errors.OrderDenied) as denied:
            ex.create_order(SYMBOL, "market", "buy", 0.01)
        assert denied.value.code == Code.MIN_NOTIONAL
    finally:
        switch.close()
        ex.runtime.core.journal.close()


def test_markets_the_raw_client_reloaded_long_ago_are_not_stamped_as_just_read(
    paper: PaperAccount, tmp_path: Path
) -> None:
    """The raw client (the one handed to ``guard()``) reloads its markets in another part of
    the bot; much later the guarded ``load_markets()`` is answered with that old object from
    ccxt's cache, which the guard took as read then: a rule the venue changed meanwhile went
    unseen for another period."""
    raw = paper.client()
    policy = sandbox_policy(tmp_path, _policy())
    ex = guard(
        raw,
        policy,
        clock=paper.clock,
        kill_switch=KillSwitch(policy.kill_switch, clock=paper.clock, watch=False),
        durable_journal=False,
    )
    ex.load_markets()
    paper.advance(60)
    raw.load_markets(True)
    paper.advance(3400)
    _rewrite(paper, "/fapi/v1/exchangeInfo", lambda info: _min_notional(info, "5000"))
    paper.advance(60)
    ex.load_markets()  # ccxt's cache: the raw reload of 57 minutes ago
    paper.advance(200)  # past the rules' allowed age since the raw reload
    with pytest.raises(errors.OrderDenied) as denied:
        ex.create_order(SYMBOL, "market", "buy", 0.01)
    assert denied.value.code == Code.MIN_NOTIONAL

    ex.runtime.switch.close()
    ex.runtime.core.journal.close()
