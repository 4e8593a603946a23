"""A paper account on the mock venue, usable with or without pytest.

Everything here runs on simulated time: the venue sits on a :class:`~safeguard._clock.ManualClock`
and the guarded clients spend their backoffs by advancing it, so a test that meets a 503 storm or
a ten-second settle window still finishes in milliseconds.
"""

from __future__ import annotations

import functools
import inspect
import random
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeguard._clock import ManualClock
from safeguard._config import Policy

if TYPE_CHECKING:
    from safeguard.guard._events import Hooks
    from safeguard.killswitch._switch import KillSwitch
    from safeguard.killswitch._triggers import RiskMonitor
    from safeguard.venue import Venue, VenueConfig
    from safeguard.venue._dialect import Dialect
    from safeguard.venue._faults import FaultPlan
    from safeguard.venue._server import VenueServer

DEFAULT_API_KEY = "sg-paper-key-0123456789"
DEFAULT_SECRET = "sg-paper-secret-0123456789abcdef"
DEFAULT_START = 1_767_225_600.0
"""2026-01-01T00:00:00Z: a UTC midnight, so daily-loss limits start a fresh day with the run."""
DEFAULT_SYMBOLS = ("BTCUSDT", "ETHUSDT")


def sandbox_policy(state_dir: str | Path, base: Policy | None = None) -> Policy:
    """``base`` (default: ``Policy()``, the library defaults) with every piece of persisted
    state (kill-switch latch, equity marks, bans, order journal) in ``state_dir``.

    The state-file watcher thread and the webhook are off, so a test can never engage or read
    a real bot's kill switch, nor page anyone.
    """
    base = base if base is not None else Policy.build()
    switch = base.kill_switch.model_copy(
        update={"state_dir": Path(state_dir), "watch_state_file": False, "webhook_url": None}
    )
    return base.model_copy(update={"kill_switch": switch})


def strip_attached_stops(exchange: Any) -> Any:
    """Make ``exchange.create_order`` and ``exchange.edit_order`` drop the ``stopLoss`` an
    order declares; returns it.

    Binance USD-M has no stop attached to an order: ccxt forwards ``stopLoss`` as a request
    parameter and the venue refuses the order (-1104). Strategy code written for the guard
    declares its stop that way (``params={"stopLoss": {"triggerPrice": ...}}``), on an edit
    too, so the verdict can price it; wrap a plain ccxt client with this to run the same code
    unguarded (the protection is then the strategy's own reduce-only stop order).
    :meth:`PaperAccount.guarded` wraps its raw client too, so the declared stop never reaches
    the wire as a parameter. Wrapping twice is harmless. Works on sync and
    ``ccxt.async_support`` clients.
    """
    # ccxt's signatures: create_order(symbol, type, side, amount, price=None, params={}) and
    # edit_order(id, symbol, type, side, amount=None, price=None, params={}).
    for name, params_at in (("create_order", 5), ("edit_order", 6)):
        send = getattr(exchange, name, None)
        if send is not None and not getattr(send, "_sg_strips_stops", False):
            setattr(exchange, name, _without_stop_loss(send, params_at))
    return exchange


def _without_stop_loss(send: Any, params_at: int) -> Any:
    """``send`` with the ``stopLoss`` taken out of its params (positional ``params_at``, or
    the ``params`` keyword)."""

    def clean(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], Any]:
        if len(args) > params_at:
            params = args[params_at]
            rest = args[:params_at] + args[params_at + 1 :]
        else:
            params = kwargs.pop("params", None)
            rest = args
        cleaned = {k: v for k, v in (params or {}).items() if k != "stopLoss"}
        return rest, cleaned

    wrapper: Any
    if inspect.iscoroutinefunction(send):

        @functools.wraps(send)
        async def send_async(*args: Any, **kwargs: Any) -> Any:
            rest, params = clean(args, kwargs)
            padded = rest[:params_at] + (None,) * (params_at - len(rest[:params_at]))
            return await send(*padded, params, *rest[params_at:], **kwargs)

        wrapper = send_async
    else:

        @functools.wraps(send)
        def send_sync(*args: Any, **kwargs: Any) -> Any:
            rest, params = clean(args, kwargs)
            padded = rest[:params_at] + (None,) * (params_at - len(rest[:params_at]))
            return send(*padded, params, *rest[params_at:], **kwargs)

        wrapper = send_sync
    wrapper.__dict__["_sg_strips_stops"] = True
    return wrapper


def as_fault_plan(plan: Any) -> FaultPlan | None:
    """A :class:`~safeguard.venue._faults.FaultPlan` from a plan, a dict (the TOML/JSON shape),
    or a path to a ``.toml``/``.json`` file; ``None`` stays ``None`` (a healthy venue)."""
    from safeguard.venue._faults import FaultPlan

    if plan is None or isinstance(plan, FaultPlan):
        return plan
    if isinstance(plan, str | Path):
        return FaultPlan.load(plan)
    if isinstance(plan, Mapping):
        return FaultPlan.parse(dict(plan))
    raise ValueError(f"a fault plan must be a FaultPlan, a dict or a file path, got {plan!r}")


@dataclass(eq=False)
class PaperAccount:
    """A seeded venue on a manual clock, one funded account on it, and clients for it.

    Every client made here shares one :class:`~safeguard.venue._dialect.Dialect`, so a fault
    plan set with :meth:`set_faults` (and the venue's rate limits and bans) applies to all of
    them, in process and over :meth:`serve`'s loopback HTTP alike.
    """

    venue: Venue
    clock: ManualClock
    dialect: Dialect
    api_key: str = DEFAULT_API_KEY
    secret: str = DEFAULT_SECRET
    _switches: list[KillSwitch] = field(default_factory=list, repr=False)
    _closers: list[Callable[[], object]] = field(default_factory=list, repr=False)

    # --- time and the venue's own books -------------------------------------------------------

    def advance(self, seconds: float) -> float:
        """Move simulated time forward (prices, fills, stops, funding, liquidations); returns
        the new time."""
        self.venue.advance(seconds)
        return self.clock.time()

    def equity(self) -> float:
        """The venue's own figure: wallet plus unrealised PnL at the mark."""
        return self.venue.equity(self.api_key)

    def wallet(self) -> float:
        return self.venue.wallet(self.api_key)

    def orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Every order the venue holds for the account (Binance's shape), on ``symbol`` (the
        venue's name, ``"BTCUSDT"``) or on all symbols: the ground truth a test judges by."""
        symbols = [symbol] if symbol is not None else list(self.venue.markets)
        out: list[dict[str, Any]] = []
        for name in symbols:
            out.extend(self.venue.all_orders(self.api_key, symbol=name))
        return out

    def positions(self) -> dict[str, float]:
        """Open positions as ``{venue symbol: signed quantity}`` (long > 0), from the venue."""
        held: dict[str, float] = {}
        for row in self.venue.position_risk(self.api_key):
            amount = float(row["positionAmt"])
            if amount:
                held[row["symbol"]] = held.get(row["symbol"], 0.0) + amount
        return held

    # --- faults -------------------------------------------------------------------------------

    def set_faults(self, plan: Any) -> FaultPlan | None:
        """Install a fault plan (a ``FaultPlan``, its dict form, or a file path); its times
        count from now. ``None`` clears it. Returns the plan installed."""
        parsed = as_fault_plan(plan)
        self.dialect.set_fault_plan(parsed)
        return parsed

    def clear_faults(self) -> None:
        self.dialect.set_fault_plan(None)

    def faults_fired(self) -> list[int]:
        """How many times each rule of the running plan has fired, by rule index."""
        return list(self.dialect.fault_state()["fired"])

    # --- clients ------------------------------------------------------------------------------

    def client(self, *, asyncio: bool = False, pro: bool = False, timeout_ms: int = 10_000) -> Any:
        """A real ccxt ``binanceusdm`` (``ccxt.async_support`` with ``asyncio=True``;
        ``ccxt.pro`` with ``pro=True``, its ``watch_*`` streams in memory too) trading on the
        venue in process. Injected latency is spent in simulated time."""
        from safeguard.venue._inprocess import inprocess_client

        exchange = inprocess_client(
            self.dialect,
            self.api_key,
            self.secret,
            asyncio=asyncio,
            pro=pro,
            timeout_ms=timeout_ms,
            on_latency=self.venue.advance,
        )
        if asyncio or pro:
            self._closers.append(exchange.close)
        return exchange

    def guarded(
        self,
        policy: Policy | None = None,
        *,
        state_dir: str | Path | None = None,
        asyncio: bool = False,
        pro: bool = False,
        triggers: RiskMonitor | bool = False,
        hooks: Hooks | None = None,
        timeout_ms: int = 10_000,
        durable_journal: bool = False,
        seed: int = 0,
    ) -> Any:
        """A guarded exchange over a fresh in-process client.

        ``policy`` defaults to the library defaults; either way its persisted state is moved to
        ``state_dir`` (default: a new temporary directory) by :func:`sandbox_policy`. Backoffs
        advance simulated time instead of sleeping. The kill switch is
        ``guarded.runtime.switch``. ``triggers=True`` turns the policy's automatic kill-switch
        triggers on (or pass your own :class:`~safeguard.killswitch._triggers.RiskMonitor`).
        Declared ``stopLoss`` stops reach the verdict, not the wire
        (:func:`strip_attached_stops`). The journal is not fsynced unless ``durable_journal``.
        ``seed`` seeds the backoff jitter, so a run with faults repeats to the last fill.
        ``pro=True`` wraps a ``ccxt.pro`` client: its ``watch_*`` calls feed the guard's view.
        """
        from safeguard.guard import guard
        from safeguard.killswitch._switch import KillSwitch

        if state_dir is None:
            state_dir = tempfile.mkdtemp(prefix="safeguard-paper-")
        policy = sandbox_policy(state_dir, policy)
        switch = KillSwitch(policy.kill_switch, clock=self.clock, watch=False)
        self._switches.append(switch)
        raw = strip_attached_stops(self.client(asyncio=asyncio, pro=pro, timeout_ms=timeout_ms))

        def sleep(seconds: float) -> bool:
            self.venue.advance(seconds)
            return False

        async def sleep_async(seconds: float) -> bool:
            self.venue.advance(seconds)
            return False

        exchange = guard(
            raw,
            policy,
            kill_switch=switch,
            clock=self.clock,
            hooks=hooks,
            durable_journal=durable_journal,
            sleep=sleep,
            sleep_async=sleep_async,
            triggers=triggers,
            rng=random.Random(seed),
        )
        # The journal holds its file's writer lock for its life: release it on close().
        self._closers.append(exchange.runtime.core.journal.close)
        return exchange

    def serve(self) -> VenueServer:
        """Serve the venue on a free loopback port (same dialect: same faults and limits).
        Use as a context manager, or call ``close()``; :meth:`close` closes it too."""
        from safeguard.venue._server import VenueServer

        server = VenueServer(self.venue, dialect=self.dialect)
        self._closers.append(server.close)
        return server

    def http_client(
        self, server: VenueServer, *, pro: bool = False, timeout_ms: int = 10_000
    ) -> Any:
        """An unmodified ccxt ``binanceusdm`` (``ccxt.pro`` with ``pro=True``: close it with
        :meth:`aclose`) for ``server`` with this account's keys."""
        from safeguard.venue._client import ccxt_client

        exchange = ccxt_client(
            server.url, self.api_key, self.secret, pro=pro, timeout_ms=timeout_ms
        )
        if pro:
            self._closers.append(exchange.close)
        return exchange

    def close(self) -> None:
        """Stop servers, close journals and kill switches made here (async clients: use
        :meth:`aclose`). A later :meth:`guarded` on the same state directory then works."""
        for closer in reversed(self._closers):
            if not inspect.iscoroutinefunction(closer):
                closer()
        for switch in self._switches:
            switch.close()
        self._closers.clear()
        self._switches.clear()

    async def aclose(self) -> None:
        """:meth:`close`, also closing the async ccxt clients made here."""
        for closer in reversed(self._closers):
            result = closer()
            if inspect.isawaitable(result):
                await result
        self._closers.clear()
        self.close()


def paper_account(
    *,
    seed: int = 7,
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS,
    wallet: float = 10_000.0,
    start: float = DEFAULT_START,
    config: VenueConfig | None = None,
    faults: Any = None,
    api_key: str = DEFAULT_API_KEY,
    secret: str = DEFAULT_SECRET,
) -> PaperAccount:
    """A funded account on a fresh, seeded venue at simulated time ``start``.

    ``config`` (a :class:`~safeguard.venue.VenueConfig`) wins over ``seed`` and ``symbols``.
    Same arguments, same market: prices, fills and fault draws are all seeded.

        account = paper_account(wallet=5_000)
        exchange = account.guarded(Policy.load("policy.toml"))
        exchange.create_order("BTC/USDT:USDT", "market", "buy", 0.01, None,
                              {"stopLoss": {"triggerPrice": 85_000}})
        account.advance(3600)
    """
    from safeguard.venue import Venue, VenueConfig
    from safeguard.venue._dialect import Dialect

    clock = ManualClock(start)
    venue = Venue(config or VenueConfig(seed=seed, symbols=symbols), clock=clock)
    venue.create_account(api_key, secret, wallet=wallet)
    dialect = Dialect(venue, faults=as_fault_plan(faults))
    return PaperAccount(venue, clock, dialect, api_key, secret)


__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_SECRET",
    "DEFAULT_START",
    "DEFAULT_SYMBOLS",
    "PaperAccount",
    "as_fault_plan",
    "paper_account",
    "sandbox_policy",
    "strip_attached_stops",
]
