"""The guarded exchange: a ccxt exchange wrapped in retries, throttling and pre-trade checks.

    import ccxt, safeguard
    ex = safeguard.guard(ccxt.binanceusdm({...}), safeguard.Policy.load("safeguard.toml"))
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.01, 60000, params={"stopLossPrice": 58000})

:func:`guard` returns a :class:`~safeguard.guard.sync.GuardedExchange` for a ccxt exchange and
an :class:`~safeguard.guard.aio.AsyncGuardedExchange` for a ``ccxt.async_support`` one. Both
drive the one :class:`~safeguard.guard.core.GuardCore`.
"""

from __future__ import annotations

import asyncio
import random
import sys
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import ccxt

from safeguard._log import logger
from safeguard.clock import Clock, SystemClock
from safeguard.codes import Code
from safeguard.config import Credentials, KillSwitchConfig, Policy
from safeguard.errors import ConfigError
from safeguard.guard.aio import AsyncGuardedExchange
from safeguard.guard.announce import kill_reporter, throttle_reporter
from safeguard.guard.core import GuardCore
from safeguard.guard.degradation import HealthMonitor
from safeguard.guard.events import EventKind, Hooks
from safeguard.guard.face import Runtime, SwitchLike
from safeguard.guard.gate import PreTradeGate
from safeguard.guard.journal import OrderJournal
from safeguard.guard.market import MarketCache
from safeguard.guard.observe import Health, RequestObserver
from safeguard.guard.orders import CLOCK_SKEW_MARGIN_S, recv_window_s
from safeguard.guard.pacing import BudgetPacer, ladder_pace
from safeguard.guard.redact import register_secrets, secrets_of
from safeguard.guard.request_log import tap_wire
from safeguard.guard.retry import RetryPolicy
from safeguard.guard.sync import GuardedExchange
from safeguard.guard.throttle import RateBudget, account_fingerprint, registry_for
from safeguard.guard.tripwire import TripWire
from safeguard.killswitch.triggers import RiskMonitor
from safeguard.killswitch.warnings import WarningMonitor
from safeguard.profiles import VenueProfile, profile_for
from safeguard.risk.liquidation import model_for_exchange


def guard(
    exchange: Any,
    policy: Policy | None = None,
    *,
    kill_switch: SwitchLike | None = None,
    clock: Clock | None = None,
    hooks: Hooks | None = None,
    journal_path: str | Path | None = None,
    durable_journal: bool = True,
    budget: RateBudget | None = None,
    health: Health | None = None,
    shrink_when_degraded: bool = False,
    sleep: Callable[[float], bool] | None = None,
    sleep_async: Callable[[float], Awaitable[bool]] | None = None,
    rng: random.Random | None = None,
    triggers: RiskMonitor | bool = False,
    book_depth: int = 100,
    ladder: bool = True,
) -> Any:
    """Wrap ``exchange`` (a ccxt or ccxt.async_support instance) in the guard.

    ``policy`` defaults to :meth:`Policy.load` (environment only). ``kill_switch`` defaults to
    a :class:`~safeguard.killswitch.switch.KillSwitch` on ``policy.kill_switch``. The order
    journal lives in ``journal_path`` or ``kill_switch.state_dir/orders-<exchange>-<key>.jsonl``.
    ``budget`` defaults to the process-wide budget for this venue host and API key. ``health``
    defaults to a :class:`~safeguard.guard.degradation.HealthMonitor` on
    ``policy.degradation``: when it says DEGRADED or SEVERE, orders are priced on the degraded
    fill model. ``sleep`` and ``sleep_async`` replace the backoff sleep (``kill_switch.wait`` /
    ``wait_async``: they return early on an engage), for tests on a
    :class:`~safeguard.clock.ManualClock`.

    ``book_depth`` is how many levels of the order book the verdict walks (Binance weighs
    depth 50 at 2, 100 at 5, 500 at 10).

    ``triggers`` turns the automatic kill-switch triggers on: ``True`` builds a
    :class:`~safeguard.killswitch.triggers.RiskMonitor` from the policy (its equity marks in
    the state directory), or pass one. Every request outcome, order, cancel, rejection,
    leverage change, ban, mark and account re-read is fed to it, and a trip engages the switch.

    ``ladder`` (default on) runs the kill switch's engage ladder
    (:mod:`safeguard.killswitch.ladder`: cancel-all, flatten, as ``policy.kill_switch`` says)
    on the raw exchange whenever the switch engages, here or from another process. Turn it off
    only when something else already runs it for this account.

    ccxt's own retry (``maxRetriesOnFailure``) is forced to 0 and its throttler off: the guard
    owns both, and ccxt's would double the waits and retry orders blindly.
    """
    if not isinstance(exchange, ccxt.Exchange) and not _is_async_exchange(exchange):
        raise ValueError(
            f"exchange must be a ccxt exchange instance, got {type(exchange).__name__}"
        )
    # Before anything is opened: a venue safeguard has no profile for is refused, saying what
    # it would be missing (pacing headers, limits, stop placement, liquidation model).
    profile = profile_for(str(exchange.id))
    if policy is None:
        policy = Policy.load()
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a safeguard.Policy, got {type(policy).__name__}")
    key = account_fingerprint(getattr(exchange, "apiKey", None) or None)
    path = Path(journal_path or policy.kill_switch.state_dir / f"orders-{exchange.id}-{key}.jsonl")
    # Opened first: a guarded exchange in another process on this journal (same exchange and
    # key) is refused before anything is built for it; one in this process shares it. Whatever
    # fails later lets the journal go.
    journal = OrderJournal.shared(path, durable=durable_journal)
    built: list[Callable[[], None]] = []  # closers of the parts _guard builds, in build order
    try:
        return _guard(
            exchange,
            policy,
            journal,
            key,
            built,
            kill_switch=kill_switch,
            clock=clock,
            hooks=hooks,
            budget=budget,
            health=health,
            shrink_when_degraded=shrink_when_degraded,
            sleep=sleep,
            sleep_async=sleep_async,
            rng=rng,
            triggers=triggers,
            book_depth=book_depth,
            ladder=ladder,
            profile=profile,
        )
    except BaseException:
        # Whatever failed, nothing this call built outlives it: no watcher thread, signal
        # handler or fleet connection is left behind for a bot that retries in a loop.
        for close in reversed(built):
            try:
                close()
            except Exception:  # the original failure is the one to raise
                logger.exception("guard() failed, and releasing what it built failed too")
        journal.close()
        raise


def _guard(
    exchange: Any,
    policy: Policy,
    journal: OrderJournal,
    key: str,
    built: list[Callable[[], None]],
    *,
    kill_switch: SwitchLike | None,
    clock: Clock | None,
    hooks: Hooks | None,
    budget: RateBudget | None,
    health: Health | None,
    shrink_when_degraded: bool,
    sleep: Callable[[float], bool] | None,
    sleep_async: Callable[[float], Awaitable[bool]] | None,
    rng: random.Random | None,
    triggers: RiskMonitor | bool,
    book_depth: int,
    ladder: bool,
    profile: VenueProfile,
) -> Any:
    clock = clock if clock is not None else SystemClock()
    hooks = hooks if hooks is not None else Hooks()  # an empty Hooks is falsy (len 0)
    if policy.fleet.redis_url is not None and (kill_switch is None or budget is None):
        # A policy naming a fleet means the fleet's switch and budget: on the local file
        # switch, ``safeguard kill`` on the same policy (which goes to Redis) would report
        # success while this bot kept trading.
        kill_switch, budget = _fleet_parts(exchange, policy, clock, kill_switch, budget, built)
    if kill_switch is None:
        from safeguard.killswitch.switch import KillSwitch

        kill_switch = KillSwitch(policy.kill_switch, clock=clock)
        built.append(kill_switch.close)

    exchange.options["maxRetriesOnFailure"] = 0
    exchange.enableRateLimit = False
    exchange.enableLastResponseHeaders = True
    exchange.enableLastJsonResponse = True  # exchangeInfo's rateLimits: the pacer learns them
    _apply_credentials(exchange, policy.credentials)
    register_secrets(secrets_of(exchange))  # redacted by value everywhere from now on

    if budget is None:
        # One registry per state directory in the process: guarded exchanges on one IP or
        # one API key share their limits whatever their [throttle] tuning (each budget keeps
        # its own thresholds over the shared counts), and bans persist in the state directory
        # so a restarted bot fails fast instead of extending its ban.
        registry = registry_for(policy.kill_switch.state_dir)
        budget = registry.get(f"{exchange.id}@{_api_host(exchange)}", key, config=policy.throttle)
    recheck: list[Callable[[Any], None]] = []

    def health_moved(event: Any) -> None:
        for callback in recheck:
            callback(event)

    monitor: Health = (
        health
        if health is not None
        else HealthMonitor(policy.degradation, hooks=hooks, on_change=health_moved)
    )
    liquidation_model = model_for_exchange(str(exchange.id))  # the verdict's, the triggers'
    tripwire = None
    if triggers is not False:
        # Equity peaks per account: bots of different accounts share one state directory.
        monitor_of_risk = (
            RiskMonitor.from_policy(
                policy, account=f"{exchange.id}-{key}", liquidation_model=liquidation_model
            )
            if triggers is True
            else triggers
        )
        tripwire = TripWire(
            monitor_of_risk,
            kill_switch,  # type: ignore[arg-type]
            warnings=WarningMonitor(policy.kill_switch.warnings),
            hooks=hooks,
        )
    if isinstance(book_depth, bool) or not isinstance(book_depth, int) or book_depth < 5:
        raise ValueError(f"book_depth must be an integer >= 5, got {book_depth!r}")
    cache = MarketCache(
        policy.risk, book_depth=book_depth, own_prefix=policy.client_order_id_prefix
    )
    gate = PreTradeGate(
        policy,
        cache,
        monitor,
        hooks,
        shrink_when_degraded=shrink_when_degraded,
        tripwire=tripwire,
        liquidation_model=liquidation_model,
    )
    tap_wire(exchange)  # the request log names the venue path and HTTP status of each call
    core = GuardCore(
        exchange_id=str(exchange.id),
        policy=policy,
        journal=journal,
        pacer=BudgetPacer(
            budget,
            default_ban_s=policy.throttle.default_ban_s,
            on_wait=throttle_reporter(hooks, clock),
        ),
        backoff=RetryPolicy(policy.retry),
        gate=gate,
        observer=RequestObserver(str(exchange.id), policy.version, hooks, monitor, tripwire),
        settle_window_s=_recv_window_s(exchange),
        rng=rng if rng is not None else random.Random(),
        hooks=hooks,
    )
    # Worse venue health re-prices the stops of open positions under the same assumptions.
    if health is None:
        recheck.append(gate.health_changed)
    else:
        hooks.subscribe(EventKind.STATE_CHANGE, gate.health_changed)
    add_listener = getattr(kill_switch, "add_listener", None)
    if callable(add_listener):
        # Engages and resumes reach the hooks (a switch without listeners just goes unheard).
        add_listener(kill_reporter(hooks))
    if ladder:
        _attach_ladder(kill_switch, exchange, policy, clock, budget)
    runtime = Runtime(
        core, kill_switch, clock, policy.client_order_id_prefix, sleep, sleep_async, view=gate
    )
    face = AsyncGuardedExchange if _is_async_exchange(exchange) else GuardedExchange
    return face(exchange, runtime)


def _apply_credentials(exchange: Any, credentials: Credentials) -> None:
    """Give ``exchange`` the policy's API key and secret where it has none of its own. Keys
    that contradict the exchange's are refused: which account would the guard trade?"""
    for key, attribute in (("api_key", "apiKey"), ("secret", "secret")):
        value = getattr(credentials, key)
        if value is None:
            continue
        wanted = value.get_secret_value()
        held = getattr(exchange, attribute, None) or None
        if held is None:
            setattr(exchange, attribute, wanted)
        elif held != wanted:
            raise ConfigError(
                f"credentials.{key} in the policy differs from the exchange's own {attribute}: "
                "set the credentials in one place",
                key=f"credentials.{key}",
            )


def _fleet_parts(
    exchange: Any,
    policy: Policy,
    clock: Clock,
    switch: SwitchLike | None,
    budget: RateBudget | None,
    built: list[Callable[[], None]],
) -> tuple[SwitchLike, RateBudget]:
    """The fleet's kill switch and rate budget (``policy.fleet``) for the ones not given, as
    :func:`~safeguard.fleet.member.join_fleet` builds them. They live as long as the process;
    use ``join_fleet`` for a member that can be closed. Their closers go on ``built``, which
    guard() runs if it fails later."""
    from safeguard.fleet.budget import RedisRateBudget
    from safeguard.fleet.redis_store import open_fleet_switch

    opened = open_fleet_switch(policy, clock=clock) if switch is None else None
    if opened is not None:
        switch = opened[0]
    if budget is None:
        try:
            shared = RedisRateBudget(
                policy.fleet,
                f"{exchange.id}@{_api_host(exchange)}",
                account_fingerprint(getattr(exchange, "apiKey", None) or None),
                throttle=policy.throttle,
            )
        except BaseException:
            if opened is not None:
                opened[0].close()
                opened[1].close()
            raise
        built.append(shared.close)
        budget = cast(RateBudget, shared)  # the RateBudget interface, on Redis
    if opened is not None:
        built.extend((opened[1].close, opened[0].close))  # run reversed: switch, then store
    assert switch is not None
    return switch, budget


def _attach_ladder(
    switch: Any, exchange: Any, policy: Policy, clock: Clock, budget: RateBudget
) -> None:
    """Run the engage ladder on ``exchange``, the raw one: the guarded exchange's own permit
    would refuse the ladder's reduce-only flatten orders once the switch is HALTED. It is
    paced on ``budget`` all the same (cancels on their reserve; a ban waited out)."""
    config = getattr(switch, "config", None)
    if not isinstance(config, KillSwitchConfig):
        config = policy.kill_switch
    rungs = config.cancel_all_on_engage or config.flatten_on_engage
    if not rungs and config.venue_countdown_s is None:
        return
    if not callable(getattr(switch, "add_listener", None)):
        logger.warning(
            "kill switch {} takes no listeners: the engage ladder (cancel-all, flatten) will "
            "not run; run safeguard.killswitch.run_ladder yourself on engage",
            type(switch).__name__,
        )
        return
    from safeguard.killswitch.ladder import attach_ladder

    loop = None
    if _is_async_exchange(exchange):
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # An async ccxt exchange is bound to the loop it runs on; without one there is no
            # place to run the ladder from a listener.
            logger.warning(
                "guard() of an async exchange outside a running event loop: the engage ladder "
                "is not attached; call safeguard.killswitch.attach_ladder(switch, exchange, "
                "loop=...) from the loop"
            )
            return
    attach_ladder(
        _DecidedEngages(switch), exchange, config, loop=loop, clock=clock, pace=ladder_pace(budget)
    )


@dataclass(frozen=True)
class _DecidedEngages:
    """``switch`` as the ladder's listener sees it: only engages someone decided. A switch
    that fails closed because its store is unreachable (Redis down, an unreadable state file)
    is HALTED without anyone having asked for it; cancelling every order then would also take
    the protective stops of open positions away on a network blip."""

    switch: Any

    def add_listener(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        def decided(state: Any) -> None:
            if getattr(state, "code", None) != Code.STATE_STORE_UNAVAILABLE:
                callback(state)

        remove: Callable[[], None] = self.switch.add_listener(decided)
        return remove


def _is_async_exchange(exchange: Any) -> bool:
    import ccxt.async_support

    return isinstance(exchange, ccxt.async_support.Exchange)


def _api_host(exchange: Any) -> str:
    api = exchange.urls.get("api") if isinstance(exchange.urls, dict) else None
    urls = list(api.values()) if isinstance(api, dict) else [api]
    for url in urls:
        if isinstance(url, str) and urlsplit(url).hostname:
            return str(urlsplit(url).hostname)
    return "default"


def _recv_window_s(exchange: Any) -> float:
    # After recvWindow the venue refuses a request it has not yet processed, so a look-up that
    # finds nothing then is final. The venue measures it on its own clock: add a margin for a
    # venue clock behind ours. (A per-call recvWindow can only lengthen it: the core's.)
    seconds = recv_window_s(exchange.options.get("recvWindow", 10_000))
    return (10.0 if seconds is None else seconds) + CLOCK_SKEW_MARGIN_S


__all__ = ["AsyncGuardedExchange", "GuardedExchange", "guard"]


class _CallableModule(types.ModuleType):
    """This package, callable as :func:`guard`.

    ``safeguard.guard`` is documented as a function, but Python binds the package attribute to
    this subpackage as soon as any ``safeguard.guard.*`` module is imported. Making the
    subpackage callable keeps ``safeguard.guard(exchange, policy)`` working either way.
    """

    def __call__(self, exchange: Any, policy: Policy | None = None, **options: Any) -> Any:
        return guard(exchange, policy, **options)


sys.modules[__name__].__class__ = _CallableModule
