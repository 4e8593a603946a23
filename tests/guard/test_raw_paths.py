"""No way around the guard through ccxt's generic request paths.

``request``, ``fetch2`` and ``fetch`` reach any endpoint with any HTTP method: a raw POST to
``/fapi/v1/order`` is an order the verdict, the kill switch and the journal never see. The
guard routes them per call by their HTTP method (GET a read, DELETE a cancel, anything else
refused), and a walk over every public callable of ``ccxt.binanceusdm`` (sync and async) checks
that nothing able to reach the venue is passed through untouched.
"""

from __future__ import annotations

import inspect
import re
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support
import pytest
from ccxt.base.types import Entry

from safeguard import _errors as errors
from safeguard._config import Policy
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.guard._orders import CallKind, call_kind, raw_kind
from safeguard.testing import PaperAccount, paper_account

SYMBOL, VENUE_SYMBOL = "BTC/USDT:USDT", "BTCUSDT"
ORDER = {"symbol": VENUE_SYMBOL, "side": "BUY", "type": "MARKET", "quantity": "0.01"}
_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
# Where a request leaves ccxt: the generic paths, and every implicit endpoint (an Entry).
_WIRE = frozenset({"request", "fetch2", "fetch"})


def _names_in(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names_in(const)
    return names


def _wire_reach(cls: type) -> Callable[[str], bool]:
    """Whether calling ``cls.<name>`` can end in a request: its code, followed through every
    name it uses that is an attribute of the class, reaches the wire."""
    memo: dict[str, bool] = {}

    def reaches(name: str, seen: frozenset[str]) -> bool:
        if name in _WIRE:
            return True
        if name in memo:
            return memo[name]
        if name in seen:
            return False
        attr = inspect.getattr_static(cls, name, None)
        if isinstance(attr, Entry):
            return True
        if isinstance(attr, staticmethod | classmethod):
            attr = attr.__func__
        code = getattr(attr, "__code__", None)
        found = code is not None and any(
            reaches(used, seen | {name}) for used in _names_in(code) if hasattr(cls, used)
        )
        memo[name] = found
        return found

    return lambda name: reaches(name, frozenset())


def _public_callables(cls: type) -> list[str]:
    return [
        name
        for name in dir(cls)
        if not name.startswith("_")
        and callable(getattr(cls, name, None))
        and not isinstance(getattr(cls, name), type)
    ]


@pytest.mark.parametrize("cls", [ccxt.binanceusdm, ccxt.async_support.binanceusdm])
def test_nothing_that_reaches_the_venue_is_classified_pure(cls: type) -> None:
    reaches = _wire_reach(cls)
    # The walk is not vacuous: it sees the order paths and the raw endpoints as reaching the wire.
    assert reaches("create_order")
    assert reaches("edit_order")
    assert reaches("fapiPrivatePostOrder")
    assert not reaches("amount_to_precision")
    names = _public_callables(cls)
    wired = [name for name in names if reaches(name)]
    assert len(wired) > 100
    pure = [n for n in wired if call_kind(_CAMEL.sub(r"_\1", n).lower()) is CallKind.PURE]
    assert pure == []
    # And every generic path refuses the methods that can place or change an order.
    for name in _WIRE:
        position = 1 if name == "fetch" else 2
        for verb in ("POST", "PUT", "PATCH", "post"):
            args = ("order", ["fapiPrivate"], verb)[: position + 1]
            if name == "fetch":
                args = ("http://127.0.0.1/fapi/v1/order", verb)
            assert raw_kind(name, args, {}) is CallKind.BLOCKED
            assert raw_kind(name, (), {"method": verb}) is CallKind.BLOCKED
        assert raw_kind(name, (), {}) is CallKind.READ  # ccxt's default method is GET
        assert raw_kind(name, (), {"method": "DELETE"}) is CallKind.CANCEL


@pytest.fixture
def account() -> Iterator[PaperAccount]:
    acct = paper_account(wallet=10_000)
    yield acct
    acct.close()


def _policy() -> Policy:
    return Policy.build(risk={"require_stop": False})


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_the_guarded_face_routes_every_wired_callable(
    account: PaperAccount, tmp_path: Path, use_async: bool
) -> None:
    ex = account.guarded(_policy(), state_dir=tmp_path, asyncio=use_async)
    raw = ex.exchange
    reaches = _wire_reach(type(raw))
    for name in _public_callables(type(raw)):
        if reaches(name):
            # What the caller gets is never ccxt's own bound method: the guard stands between.
            assert getattr(ex, name) != getattr(raw, name), name


def _attempt(account: PaperAccount, call: Callable[[], Any]) -> None:
    before = len(account.orders(VENUE_SYMBOL))
    with pytest.raises(errors.RequestBlocked, match="create_order"):
        call()
    assert len(account.orders(VENUE_SYMBOL)) == before
    assert account.positions() == {}


def test_raw_posts_are_refused_and_gets_and_deletes_are_guarded(
    account: PaperAccount, tmp_path: Path
) -> None:
    hooks = Hooks()
    requests: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, requests.append)
    ex = account.guarded(_policy(), state_dir=tmp_path, hooks=hooks)
    mark = float(ex.fetch_ticker(SYMBOL)["last"])
    resting = ex.create_order(SYMBOL, "limit", "buy", 0.01, round(mark * 0.97, 1))
    # A DELETE is a cancel through the guard (the core saw it).
    params = {"symbol": VENUE_SYMBOL, "orderId": resting["id"]}
    cancelled = ex.request("order", ["fapiPrivate"], "DELETE", params)
    assert cancelled["status"] == "CANCELED"
    assert any(r.method == "request" and r.outcome == "ok" for r in requests)
    assert [o["status"] for o in account.orders(VENUE_SYMBOL)] == ["CANCELED"]
    ex.runtime.switch.engage("test")  # HALTED: nothing may add exposure

    _attempt(account, lambda: ex.request("order", ["fapiPrivate"], "POST", dict(ORDER)))
    _attempt(account, lambda: ex.fetch2("order", ["fapiPrivate"], "POST", dict(ORDER)))
    _attempt(account, lambda: ex.request("order", ["fapiPrivate"], method="PUT", params=ORDER))
    url = ex.urls["api"]["fapiPrivate"] + "/order"
    _attempt(account, lambda: ex.fetch(url, "POST", None, "symbol=BTCUSDT&side=BUY"))

    # A GET is a read through the guard, while HALTED too.
    seen = len(requests)
    answer = ex.request("time", ["fapiPublic"], "GET")
    assert int(answer["serverTime"]) > 0
    assert [r.method for r in requests[seen:]] == ["request"]


async def test_async_raw_posts_are_refused_and_gets_are_guarded(tmp_path: Path) -> None:
    account = paper_account(wallet=10_000)
    try:
        ex = account.guarded(_policy(), state_dir=tmp_path, asyncio=True)
        await ex.load_markets()
        ex.runtime.switch.engage("test")
        for name in ("request", "fetch2"):
            with pytest.raises(errors.RequestBlocked, match="create_order"):
                await getattr(ex, name)("order", ["fapiPrivate"], "POST", dict(ORDER))
        assert account.orders(VENUE_SYMBOL) == []
        assert account.positions() == {}
        answer = await ex.fetch2("time", ["fapiPublic"], "GET")
        assert int(answer["serverTime"]) > 0
    finally:
        await account.aclose()
