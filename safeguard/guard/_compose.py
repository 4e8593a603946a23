"""The composition root: :func:`safeguard.guard` builds one guarded exchange here.

Everything a guarded exchange is made of is built in one place, in order, and nowhere else:
the journal (first: a second process on the same journal is refused before anything else is
opened), the kill switch and rate budget (the fleet's when the policy names one), the health
monitor, the kill-switch triggers, the market cache and pre-trade gate, the sans-IO core, the
engage ladder, and the sync or async face. Every option is checked before anything is opened;
whatever fails later releases what was built before it (no watcher thread, signal handler or
fleet connection outlives a failed call). Budgets come from the one process-wide registry per
state directory (:func:`~safeguard.guard._throttle.registry_for`).
"""

from __future__ import annotations

import asyncio
import random
import types
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit

import ccxt

from safeguard._clock import Clock, SystemClock
from safeguard._codes import Code
from safeguard._config import Credentials, KillSwitchConfig, Policy
from safeguard._errors import ConfigError
from safeguard._log import logger
from safeguard._profiles import profile_for
from safeguard.guard._aio import AsyncGuardedExchange
from safeguard.guard._announce import kill_reporter, throttle_reporter
from safeguard.guard._core import GuardCore
from safeguard.guard._degradation import HealthMonitor
from safeguard.guard._events import EventKind, Hooks
from safeguard.guard._face import Runtime, SwitchLike
from safeguard.guard._gate import PreTradeGate
from safeguard.guard._journal import OrderJournal
from safeguard.guard._market import MarketCache
from safeguard.guard._observe import Health, RequestObserver
from safeguard.guard._orders import CLOCK_SKEW_MARGIN_S, recv_window_s
from safeguard.guard._pacing import BudgetPacer, ladder_pace
from safeguard.guard._redact import register_secrets, secrets_of
from safeguard.guard._request_log import tap_wire, wire_tapped
from safeguard.guard._retry import RetryPolicy
from safeguard.guard._sync import GuardedExchange
from safeguard.guard._throttle import Budget, account_fingerprint, registry_for
from safeguard.guard._tripwire import TripWire
from safeguard.killswitch._early_warnings import WarningMonitor
from safeguard.killswitch._triggers import RiskMonitor
from safeguard.risk._liquidation import model_for_exchange


class GuardOptions(TypedDict, total=False):
    """The keyword arguments of :func:`safeguard.guard` (each documented there)."""

    kill_switch: SwitchLike | None
    clock: Clock | None
    hooks: Hooks | None
    journal_path: str | Path | None
    durable_journal: bool
    budget: Budget | None
    health: Health | None
    shrink_when_degraded: bool
    sleep: Callable[[float], bool] | None
    sleep_async: Callable[[float], Awaitable[bool]] | None
    rng: random.Random | None
    triggers: RiskMonitor | bool
    book_depth: int
    ladder: bool


_OPTION_NAMES = frozenset(GuardOptions.__annotations__)


def check_options(options: GuardOptions) -> None:
    """Refuse what cannot work before anything is opened: an unknown option (a typo is not
    ignored) or a book depth the verdict cannot walk."""
    for name in options:
        if name not in _OPTION_NAMES:
            raise TypeError(f"guard() got an unexpected keyword argument {name!r}")
    depth = options.get("book_depth", 100)
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 5:
        raise ValueError(f"book_depth must be an integer >= 5, got {depth!r}")


def guard(exchange: Any, policy: Policy | None = None, **options: Unpack[GuardOptions]) -> Any:
    """Wrap ``exchange`` (a ccxt or ccxt.async_support instance) in the guard.

    Options (keyword only, :class:`GuardOptions`; an unknown one is a ``TypeError``):
    ``kill_switch``, ``clock``, ``hooks``, ``journal_path``, ``durable_journal`` (default on),
    ``budget``, ``health``, ``shrink_when_degraded``, ``sleep``, ``sleep_async``, ``rng``,
    ``triggers``, ``book_depth`` (default 100), ``ladder`` (default on).

    ``policy`` defaults to :meth:`Policy.load` (environment only). ``kill_switch`` defaults to
    a :class:`~safeguard.killswitch._switch.KillSwitch` on ``policy.kill_switch``. The order
    journal lives in ``journal_path`` or ``kill_switch.state_dir/orders-<exchange>-<key>.jsonl``.
    ``budget`` defaults to the process-wide budget for this venue host and API key. ``health``
    defaults to a :class:`~safeguard.guard._degradation.HealthMonitor` on
    ``policy.degradation``: when it says DEGRADED or SEVERE, orders are priced on the degraded
    fill model. ``sleep`` and ``sleep_async`` replace the backoff sleep (``kill_switch.wait`` /
    ``wait_async``: they return early on an engage), for tests on a
    :class:`~safeguard._clock.ManualClock`.

    ``book_depth`` is how many levels of the order book the verdict walks (Binance weighs
    depth 50 at 2, 100 at 5, 500 at 10).

    ``triggers`` turns the automatic kill-switch triggers on: ``True`` builds a
    :class:`~safeguard.killswitch._triggers.RiskMonitor` from the policy (its equity marks in
    the state directory), or pass one. Every request outcome, order, cancel, rejection,
    leverage change, ban, mark and account re-read is fed to it, and a trip engages the switch.

    ``ladder`` (default on) runs the kill switch's engage ladder
    (:mod:`safeguard.killswitch._ladder`: cancel-all, flatten, as ``policy.kill_switch`` says)
    on the raw exchange whenever the switch engages, here or from another process. Turn it off
    only when something else already runs it for this account.

    ccxt's own retry (``maxRetriesOnFailure``) is forced to 0 and its throttler off: the guard
    owns both, and ccxt's would double the waits and retry orders blindly.
    """
    return compose(exchange, policy, options)


class CallablePackage(types.ModuleType):
    """The ``safeguard.guard`` package, callable as :func:`guard` (the package and the function
    share the name users know)."""

    def __call__(
        self, exchange: Any, policy: Policy | None = None, **options: Unpack[GuardOptions]
    ) -> Any:
        return guard(exchange, policy, **options)


def compose(exchange: Any, policy: Policy | None, options: GuardOptions) -> Any:
    """The guarded exchange for ``exchange``: see :func:`safeguard.guard`."""
    if not isinstance(exchange, ccxt.Exchange) and not is_async_exchange(exchange):
        raise ValueError(
            f"exchange must be a ccxt exchange instance, got {type(exchange).__name__}"
        )
    check_options(options)
    # Before anything is opened: a venue safeguard has no profile for is refused, saying what
    # it would be missing (pacing headers, limits, stop placement, liquidation model).
    profile_for(str(exchange.id))
    if policy is None:
        policy = Policy.load()
    if not isinstance(policy, Policy):
        raise ValueError(f"policy must be a safeguard.Policy, got {type(policy).__name__}")
    build = _Build(exchange, policy, options)
    try:
        return build.guarded()
    except BaseException:
        # Whatever failed, nothing this call built outlives it: no watcher thread, signal
        # handler or fleet connection is left behind for a bot that retries in a loop.
        build.release()
        raise


@dataclass
class _Build:
    """One guarded exchange's parts, built in order; ``closers`` release them, newest first."""

    exchange: Any
    policy: Policy
    options: GuardOptions
    closers: list[Callable[[], None]] = field(default_factory=list)

    def guarded(self) -> Any:
        exchange, policy, options = self.exchange, self.policy, self.options
        key = account_fingerprint(getattr(exchange, "apiKey", None) or None)
        state_dir = policy.kill_switch.state_dir
        path = Path(options.get("journal_path") or state_dir / f"orders-{exchange.id}-{key}.jsonl")
        # Opened first: a guarded exchange in another process on this journal (same exchange
        # and key) is refused before anything is built for it; one in this process shares it.
        journal = OrderJournal.shared(path, durable=options.get("durable_journal", True))
        self.closers.append(journal.close)
        given_clock = options.get("clock")
        clock = given_clock if given_clock is not None else SystemClock()
        hooks = options.get("hooks")
        hooks = hooks if hooks is not None else Hooks()  # an empty Hooks is falsy (len 0)
        switch, budget = self._switch_and_budget(key, clock)

        exchange.options["maxRetriesOnFailure"] = 0
        exchange.enableRateLimit = False
        exchange.enableLastResponseHeaders = True
        exchange.enableLastJsonResponse = True  # exchangeInfo's rateLimits: the pacer learns
        _apply_credentials(exchange, policy.credentials)
        register_secrets(secrets_of(exchange))  # redacted by value everywhere from now on

        given_health = options.get("health")
        health = (
            given_health
            if given_health is not None
            else HealthMonitor(policy.degradation, hooks=hooks)
        )
        model = model_for_exchange(str(exchange.id))  # the verdict's, re-check's and triggers'
        tripwire = self._tripwire(key, switch, hooks, model)
        gate = PreTradeGate(
            policy,
            MarketCache(
                policy.risk,
                book_depth=options.get("book_depth", 100),
                own_prefix=policy.client_order_id_prefix,
            ),
            health,
            hooks,
            shrink_when_degraded=options.get("shrink_when_degraded", False),
            tripwire=tripwire,
            liquidation_model=model,
        )
        # Worse venue health re-prices the stops of open positions under the same assumptions.
        if isinstance(health, HealthMonitor):
            health.listen(gate.health_changed)
        else:
            hooks.subscribe(EventKind.STATE_CHANGE, gate.health_changed, immediate=True)
        tap_wire(exchange)  # the request log names the venue path and HTTP status of each call
        rng = options.get("rng")
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
            observer=RequestObserver(
                str(exchange.id), policy.version, hooks, health, tripwire, wire_tapped(exchange)
            ),
            settle_window_s=_settle_window_s(exchange),
            rng=rng if rng is not None else random.Random(),
            hooks=hooks,
            trips=tripwire,
        )
        add_listener = getattr(switch, "add_listener", None)
        if callable(add_listener):
            # Engages and resumes reach the hooks (a switch without listeners goes unheard).
            add_listener(kill_reporter(hooks))
        if options.get("ladder", True):
            _attach_ladder(switch, exchange, policy, clock, budget)
        runtime = Runtime(
            core,
            switch,
            clock,
            policy.client_order_id_prefix,
            options.get("sleep"),
            options.get("sleep_async"),
            view=gate,
        )
        face = AsyncGuardedExchange if is_async_exchange(exchange) else GuardedExchange
        return face(exchange, runtime)

    def release(self) -> None:
        for close in reversed(self.closers):
            try:
                close()
            except Exception:  # the original failure is the one to raise
                logger.exception("guard() failed, and releasing what it built failed too")

    def _switch_and_budget(self, key: str, clock: Clock) -> tuple[SwitchLike, Budget]:
        """The kill switch and rate budget given, else the fleet's (a policy naming a fleet),
        else this process's: a local file switch and the registry's budget."""
        exchange, policy = self.exchange, self.policy
        switch = self.options.get("kill_switch")
        budget = self.options.get("budget")
        ip_key = f"{exchange.id}@{api_host(exchange)}"
        if policy.fleet.redis_url is not None and (switch is None or budget is None):
            # A policy naming a fleet means the fleet's switch and budget: on the local file
            # switch, ``safeguard kill`` on the same policy (which goes to Redis) would report
            # success while this bot kept trading.
            switch, budget = self._fleet_parts(switch, budget, ip_key, key, clock)
        if switch is None:
            from safeguard.killswitch._switch import KillSwitch

            local = KillSwitch(policy.kill_switch, clock=clock).start()
            self.closers.append(local.close)
            switch = local
        if budget is None:
            # Guarded exchanges on one IP or one API key share their limits whatever their
            # [throttle] tuning (each budget keeps its own thresholds over the shared counts),
            # and bans persist in the state directory so a restarted bot fails fast.
            registry = registry_for(policy.kill_switch.state_dir)
            budget = registry.get(ip_key, key, config=policy.throttle)
        return switch, budget

    def _fleet_parts(
        self,
        switch: SwitchLike | None,
        budget: Budget | None,
        ip_key: str,
        key: str,
        clock: Clock,
    ) -> tuple[SwitchLike | None, Budget | None]:
        """The fleet's kill switch and rate budget (``policy.fleet``) for the ones not given,
        as :func:`~safeguard.fleet._member.join_fleet` builds them. They live as long as the
        process; use ``join_fleet`` for a member that can be closed."""
        from safeguard.fleet._budget import RedisRateBudget
        from safeguard.fleet._redis_store import open_fleet_switch

        if switch is None:
            opened, store = open_fleet_switch(self.policy, clock=clock)
            self.closers.extend((store.close, opened.close))  # released reversed: switch first
            switch = opened
        if budget is None:
            shared = RedisRateBudget(self.policy.fleet, ip_key, key, throttle=self.policy.throttle)
            self.closers.append(shared.close)
            budget = shared
        return switch, budget

    def _tripwire(self, key: str, switch: SwitchLike, hooks: Hooks, model: str) -> TripWire | None:
        """The kill-switch triggers, when asked for: ``True`` builds them from the policy."""
        triggers = self.options.get("triggers", False)
        if triggers is False:
            return None
        monitor = (
            # Equity peaks per account: bots of different accounts share one state directory.
            RiskMonitor.from_policy(
                self.policy, account=f"{self.exchange.id}-{key}", liquidation_model=model
            )
            if triggers is True
            else triggers
        )
        return TripWire(
            monitor,
            warnings=WarningMonitor(self.policy.kill_switch.warnings),
            hooks=hooks,
        )


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


def _attach_ladder(
    switch: Any, exchange: Any, policy: Policy, clock: Clock, budget: Budget
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
    from safeguard.killswitch._ladder import attach_ladder

    loop = None
    if is_async_exchange(exchange):
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

    @property
    def state(self) -> Any:
        """The engagement the switch holds now, if someone decided it (else ``None``)."""
        state = getattr(self.switch, "state", None)
        return state if _decided(state) else None

    def add_listener(self, callback: Callable[[Any], None]) -> Callable[[], None]:
        def decided(state: Any) -> None:
            if _decided(state):
                callback(state)

        remove: Callable[[], None] = self.switch.add_listener(decided)
        return remove


def _decided(state: Any) -> bool:
    return getattr(state, "code", None) != Code.STATE_STORE_UNAVAILABLE


def is_async_exchange(exchange: Any) -> bool:
    import ccxt.async_support

    return isinstance(exchange, ccxt.async_support.Exchange)


def api_host(exchange: Any) -> str:
    """The host the venue's API answers on: budgets are shared per exchange and host (the
    venue counts weight per IP)."""
    api = exchange.urls.get("api") if isinstance(exchange.urls, dict) else None
    urls = list(api.values()) if isinstance(api, dict) else [api]
    for url in urls:
        if isinstance(url, str) and urlsplit(url).hostname:
            return str(urlsplit(url).hostname)
    return "default"


def _settle_window_s(exchange: Any) -> float:
    # After recvWindow the venue refuses a request it has not yet processed, so a look-up that
    # finds nothing then is final. The venue measures it on its own clock: add a margin for a
    # venue clock behind ours. (A per-call recvWindow can only lengthen it: the core's.)
    seconds = recv_window_s(exchange.options.get("recvWindow", 10_000))
    return (10.0 if seconds is None else seconds) + CLOCK_SKEW_MARGIN_S


__all__ = ["GuardOptions", "api_host", "check_options", "compose", "is_async_exchange"]
