"""``safeguard kill``, ``safeguard status`` and ``safeguard resume``: the switch from a shell.

All three act on the state directory a running bot watches, resolved as the bot resolves it
(:func:`safeguard._config.resolve_state_dir`): ``--state-dir``, else ``SAFEGUARD_STATE_DIR``,
else the policy's ``kill_switch.state_dir`` (relative to the policy file), else the per-user
``$XDG_STATE_HOME/safeguard`` (``~/.local/state/safeguard``). Each prints the directory it acted
on, so::

    safeguard kill --reason "funding spike, flattening by hand"
    safeguard status --history 5
    safeguard resume --by alice

stop, inspect and re-arm every bot on that directory. A bot notices within its
``poll_interval_s``. ``kill`` reads the state back after writing it and fails (exit 2) when it
did not land, and engages a ``--state-dir`` even when the policy does not load (warning);
``status`` and ``resume`` on a directory that does not exist say so (exit 2)
rather than report ACTIVE or create it. ``resume`` is refused (exit 1) during the cooling
period. Exit codes: 0 done; 1 refused; 2 bad input, policy or state (the message names it).

With a ``webhook_url``, ``kill`` and ``resume`` print their result first, then wait at most
``--alert-wait`` seconds for the alert and say whether it was delivered (a failed alert does
not change the exit code: the switch itself did move).

A fleet keeps the state in Redis instead: ``--redis URL`` (or the policy's
``fleet.redis_url``; ``--prefix`` or ``fleet.key_prefix`` names the fleet) acts on every bot
sharing it, on every machine. ``kill`` returns once every live bot has confirmed it stopped.
``status --fleet`` also lists the bots checked in, the shared rate windows and any ban. With
Redis unreachable, ``kill`` and ``resume`` fail (exit 2) and ``status`` says so.
"""

from __future__ import annotations

import argparse
import getpass
import json
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from safeguard._codes import Code
from safeguard._config import KillSwitchConfig, Policy, resolve_state_dir
from safeguard._errors import ConfigError
from safeguard.cli import Unreachable

ALERT_WAIT_S = 2.0
"""How long ``kill`` and ``resume`` wait for the webhook's answer by default."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    kill = subparsers.add_parser(
        "kill",
        help="engage the kill switch (every bot on the state directory stops sending orders)",
        description="Engage the kill switch in the state directory; running bots obey it.",
    )
    kill.add_argument("--reason", required=True, help="why (recorded, logged, notified)")
    kill.add_argument(
        "--state",
        choices=("HALTED", "REDUCING"),
        default="HALTED",
        help="HALTED: nothing but cancels (default); REDUCING: only orders that reduce",
    )
    _common(kill)
    kill.set_defaults(handler=_plain_errors(_kill))

    status = subparsers.add_parser("status", help="show the kill switch state")
    status.add_argument("--history", type=int, default=0, metavar="N", help="last N changes")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.add_argument(
        "--fleet",
        action="store_true",
        help="also show a fleet's live bots, rate windows and bans (needs --redis or the policy)",
    )
    _common(status, by=False)
    status.set_defaults(handler=_plain_errors(_status))

    resume = subparsers.add_parser(
        "resume",
        help="re-arm the kill switch (refused during the cooling period)",
        description="Re-arm the kill switch explicitly; refused during the cooling period.",
    )
    resume.add_argument(
        "--to",
        choices=("ACTIVE", "REDUCING"),
        default="ACTIVE",
        help="ACTIVE (default), or REDUCING to allow only orders that reduce",
    )
    resume.add_argument("--reason", default="resumed by operator")
    _common(resume)
    resume.set_defaults(handler=_plain_errors(_resume))


def _plain_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """A bad path or value is a one-line message and exit 2, not a traceback."""

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except (ValueError, OSError) as exc:
            if isinstance(exc, ConfigError):
                raise  # the CLI's own handler prints it
            print(f"safeguard {args.command}: {exc}", file=sys.stderr)
            return 2

    return run


def _common(parser: argparse.ArgumentParser, *, by: bool = True) -> None:
    parser.add_argument("--policy", metavar="FILE", help="policy TOML (default: environment)")
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="state directory (default: $SAFEGUARD_STATE_DIR, else the policy's, else "
        "$XDG_STATE_HOME/safeguard)",
    )
    parser.add_argument(
        "--redis", metavar="URL", help="a fleet's Redis (overrides policy fleet.redis_url)"
    )
    parser.add_argument("--prefix", metavar="P", help="the fleet's key prefix (fleet.key_prefix)")
    if by:
        parser.add_argument("--by", help="who (default: cli:USER@HOST)")
        parser.add_argument(
            "--alert-wait",
            type=_seconds,
            default=ALERT_WAIT_S,
            metavar="S",
            help=f"wait at most S seconds for the webhook alert (default {ALERT_WAIT_S:g})",
        )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 3600.0:
        raise argparse.ArgumentTypeError(f"expected seconds between 0 and 3600, got {text!r}")
    return value


def _config(args: argparse.Namespace) -> KillSwitchConfig:
    policy = Policy.load(args.policy)
    state_dir = resolve_state_dir(policy, args.state_dir)
    return policy.kill_switch.model_copy(update={"state_dir": state_dir})


def _existing(state_dir: Path) -> Path:
    """``state_dir`` if it is a directory; else an error saying so (looking must not create
    it, and a directory nobody used has no state to report or resume)."""
    if not state_dir.exists():
        raise OSError(
            f"state directory {state_dir} does not exist: nothing was ever engaged there and no "
            "bot keeps its state there (check --state-dir, SAFEGUARD_STATE_DIR and the policy's "
            "kill_switch.state_dir)"
        )
    if not state_dir.is_dir():
        raise OSError(f"state directory {state_dir} is not a directory")
    return state_dir


def _fleet_store(args: argparse.Namespace) -> Any:
    """The fleet's Redis store if ``--redis`` or the policy names one, else ``None``."""
    fleet = Policy.load(args.policy).fleet
    if args.prefix is not None:
        fleet = fleet.model_validate({**fleet.model_dump(), "key_prefix": args.prefix})
    if args.redis is None and fleet.redis_url is None:
        return None
    from safeguard.fleet._redis_store import RedisStateStore

    # One-shot: no reader thread, and not a fleet member an engage would wait for.
    return RedisStateStore(fleet, url=args.redis, listen=False)


def _switch(args: argparse.Namespace, *, must_exist: bool) -> tuple[Any, Any]:
    """A one-shot switch on the resolved store, and its webhook notifier (if any)."""
    from safeguard.killswitch._notify import WebhookNotifier
    from safeguard.killswitch._switch import KillSwitch

    # One-shot: no watcher thread, no signal handler; the alert is waited for by _report_alert.
    config = _config(args).model_copy(update={"install_signal_handler": False})
    notifier = WebhookNotifier.from_config(config) if config.webhook_url is not None else None
    store = _fleet_store(args)
    if store is None:
        if must_exist:
            _existing(config.state_dir)
        return KillSwitch(config, watch=False, notifier=notifier), notifier
    if not store.connected:
        store.close()
        raise Unreachable(f"{store} is unreachable; nothing was changed")
    return KillSwitch(config, watch=False, store=store, notifier=notifier), notifier


def _where(switch: Any) -> str:
    from safeguard.killswitch._store import FileStateStore

    store = switch.store
    if isinstance(store, FileStateStore):
        return f"state directory: {store.directory}"
    return f"state: {store}"


def _close(switch: Any) -> None:
    switch.close(timeout=0)  # the alert had its wait in _report_alert; don't wait again
    close_store = getattr(switch.store, "close", None)  # a fleet store holds a connection
    if callable(close_store):
        close_store()


def _report_alert(notifier: Any, args: argparse.Namespace) -> None:
    """Say whether the webhook alert of this change arrived, waiting at most --alert-wait."""
    if notifier is None:
        return
    delivery = notifier.last_delivery
    if delivery is None:
        print("alert: none sent (nothing changed)")
        return
    wait_s = args.alert_wait
    if not delivery.wait(wait_s):
        tried = f"{delivery.attempts} attempt(s) failed, last: {delivery.problem}; "
        print(
            f"safeguard {args.command}: alert NOT confirmed within {wait_s:g} s "
            f"({tried if delivery.attempts else ''}it is abandoned now): tell people yourself",
            file=sys.stderr,
        )
    elif delivery.delivered:
        print(f"alert: delivered ({delivery.attempts} attempt(s))")
    else:
        print(
            f"safeguard {args.command}: alert NOT delivered after {delivery.attempts} "
            f"attempt(s): {delivery.problem}: tell people yourself",
            file=sys.stderr,
        )


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _kill(args: argparse.Namespace) -> int:
    from safeguard.killswitch._switch import TradingState

    if not args.reason.strip():
        print("safeguard kill: --reason must not be empty", file=sys.stderr)
        return 2
    wanted = TradingState(args.state)
    switch, notifier = _kill_switch(args)
    by = _by(args)
    directory = getattr(switch.store, "directory", None)  # a file store's; a fleet has none
    unused = directory is not None and not directory.is_dir()
    unknown_prefix = directory is None and _nobody_under(switch.store)
    try:
        before = switch.state
        after = switch.engage(args.reason, by=by, state=wanted, code=Code.MANUAL)
        problem = _not_stored(switch, wanted)
        if problem is not None:
            print(
                f"safeguard kill: NOT engaged: {problem}. Running bots do not see this kill; "
                "fix that (or pass another --state-dir) and run it again",
                file=sys.stderr,
            )
            print(_where(switch), file=sys.stderr)
            return 2
        # Another process may have engaged between our look and our write: theirs holds.
        ours = after != before and (after.by, after.reason) == (by, args.reason)
        print(f"{'engaged:' if ours else 'already'} {_line(after)}")
        print(_where(switch), flush=True)  # the operator learns it landed before any alert wait
        if unused:
            print(
                f"safeguard kill: note: {directory} did not exist before this kill, so no bot "
                "has kept its state there yet; bots started later obey it, but bots already "
                "running elsewhere (another user, another --state-dir) do not",
                file=sys.stderr,
            )
        if unknown_prefix:
            print(
                f"safeguard kill: WARNING: no bot is checked in under {switch.store} and nothing "
                "was ever engaged there before this kill: bots started later on this prefix "
                "obey it, but bots already running on another one (check --prefix and "
                "fleet.key_prefix) do not",
                file=sys.stderr,
            )
        _report_alert(notifier, args)
    finally:
        _close(switch)
    return 0


def _nobody_under(store: Any) -> bool:
    """A fleet store's prefix that no bot has checked in under and that holds no state or
    history: most likely a mistyped ``--prefix`` (an engage there stops no running bot)."""
    try:
        return not store.live_members() and store.load() is None and not store.history(1)
    except Exception:
        return False


def _kill_switch(args: argparse.Namespace) -> tuple[Any, Any]:
    """The switch ``kill`` engages. A policy that does not load must not block a kill aimed
    at a directory: running bots loaded it before it broke, and the latch needs nothing from
    it but the directory, which ``--state-dir`` names."""
    if args.state_dir is not None and not args.state_dir.strip():
        raise ConfigError("--state-dir must not be empty", key="--state-dir")
    try:
        return _switch(args, must_exist=False)
    except ConfigError as exc:
        if args.redis is not None:
            raise  # a fleet's latch is in its Redis; no directory stands in for it
        if args.state_dir is None:
            raise ConfigError(
                f"{exc}; nothing was engaged (to engage anyway, pass --state-dir DIR, the "
                "directory your bots use)",
                key=exc.key,
            ) from None
        from safeguard.killswitch._switch import KillSwitch

        config = KillSwitchConfig(state_dir=args.state_dir)
        print(
            f"safeguard kill: the policy does not load ({exc}); engaging {config.state_dir} "
            "with the default kill switch settings (no webhook alert)",
            file=sys.stderr,
        )
        return KillSwitch(config, watch=False), None


def _not_stored(switch: Any, wanted: Any) -> str | None:
    """Why the store does not hold a state at least as tight as ``wanted``, or ``None``.

    Read back from the store itself: what other processes see is what counts, not what this
    process holds in memory (which fails closed to HALTED on a store it cannot read)."""
    from safeguard.killswitch._store import OwesWrites

    unpersisted = switch.unpersisted
    written = f" (writing it failed: {unpersisted[1]})" if unpersisted is not None else ""
    try:
        stored = switch.store.load()
    except (OSError, ValueError) as exc:
        return f"the state in {switch.store} cannot be read back: {exc}{written}"
    if stored is None or stored.state.severity < wanted.severity:
        now = "nothing" if stored is None else str(stored.state)
        return f"{switch.store} holds {now}, not {wanted}{written}"
    store = switch.store
    if isinstance(store, OwesWrites) and (
        store.owes(stored) or not getattr(store, "connected", True)
    ):
        # A store that cannot write answers from its own memory (the engage, or the lost
        # link's HALTED over a looser one): that memory ends with this command.
        return f"{store} could not take it (it is held in memory only){written}"
    return None


def _status(args: argparse.Namespace) -> int:
    from safeguard.killswitch._store import FileStateStore
    from safeguard.killswitch._switch import SwitchState, TradingState

    if args.history < 0:
        print("safeguard status: --history must not be negative", file=sys.stderr)
        return 2
    # Read-only on purpose: looking must never change the state (a bot fails closed itself).
    fleet_store = _fleet_store(args)
    store: Any = fleet_store or FileStateStore(_existing(_config(args).state_dir))
    if fleet_store is not None and not fleet_store.connected:
        fleet_store.close()
        floor = Policy.load(args.policy).fleet.on_disconnect
        raise Unreachable(
            f"{fleet_store} is unreachable, so the fleet's kill-switch state cannot be read. "
            f"A bot that cannot reach it either trades as {floor} (fleet.on_disconnect) until "
            "it is back; a bot that still reaches it obeys whatever it holds"
        )
    if fleet_store is not None and _nobody_under(fleet_store):
        fleet_store.close()
        raise OSError(
            f"nothing under {fleet_store}: no bot is checked in there and nothing was ever "
            "engaged there (check --prefix and the policy's fleet.key_prefix)"
        )
    problem = None
    try:
        state = store.load() or SwitchState(TradingState.ACTIVE, "", "", "", 0.0)
        history = store.history(args.history) if args.history else []
    except ConfigError as exc:
        problem = str(exc)
        state = SwitchState(TradingState.HALTED, problem, Code.STATE_STORE_UNAVAILABLE, "", 0.0)
        history = []
    finally:
        if fleet_store is not None:
            fleet_store.close()
    overview = _fleet_overview(args) if args.fleet and problem is None else None
    # When a resume would be accepted (the cooling period), so an operator need not guess.
    ready_at = None
    if problem is None and state.state is not TradingState.ACTIVE:
        ready_at = state.since + _config(args).cooling_period_s
    if args.json:
        document = {
            "state": state.state.value,
            "reason": state.reason,
            "code": state.code,
            "by": state.by,
            "since": state.since,
            "resume_allowed_at": ready_at,
            "store": str(store),
            "history": history,
        }
        if overview is not None:
            document["fleet"] = {k: overview[k] for k in ("members", "windows", "bans")}
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        print(_line(state) if problem is None else f"HALTED (fail closed): {problem}")
        if ready_at is not None:
            print(f"resume allowed from {_iso(ready_at)}")
        print(f"state directory: {store.directory}" if fleet_store is None else f"state: {store}")
        for event in history:
            print(
                f"  {_iso(event.get('since'))}  {event.get('event', '?'):<7} "
                f"{event.get('state', '?'):<8} by {event.get('by', '?')}: {event.get('reason', '')}"
            )
        if overview is not None:
            _print_overview(overview)
    return 2 if problem is not None else 0


def _fleet_overview(args: argparse.Namespace) -> dict[str, Any]:
    """The fleet's live bots, rate windows and bans (``--fleet``); read-only."""
    fleet = Policy.load(args.policy).fleet
    if args.prefix is not None:
        fleet = fleet.model_validate({**fleet.model_dump(), "key_prefix": args.prefix})
    if args.redis is None and fleet.redis_url is None:
        raise ValueError("--fleet needs --redis URL (or fleet.redis_url in the policy)")
    from safeguard.fleet._connection import describe, link_errors
    from safeguard.fleet._overview import snapshot

    try:
        return snapshot(fleet, args.redis)
    except link_errors() as exc:
        raise Unreachable(f"the fleet's Redis is unreachable ({describe(exc)})") from None


def _print_overview(overview: dict[str, Any]) -> None:
    print(f"bots checked in: {len(overview['members'])}")
    for member in overview["members"]:
        print(f"  {member['name']}  (last seen {member['age_s']:.1f} s ago)")
    for window in overview["windows"]:
        print(f"  {window['key']}: {window['used']:g} used in window {window['window']}")
    for ban in overview["bans"]:
        print(f"  banned: {ban['scope']} until {_iso(ban['until'])}")


def _resume(args: argparse.Namespace) -> int:
    from safeguard.killswitch._switch import ResumeRefused, TradingState

    switch, notifier = _switch(args, must_exist=True)
    try:
        state = switch.resume(by=_by(args), to=TradingState(args.to), reason=args.reason)
        print(f"now {_line(state)}")
        print(_where(switch), flush=True)
        _report_alert(notifier, args)
    except ResumeRefused as exc:
        print(f"safeguard resume: {exc}", file=sys.stderr)
        return 1
    finally:
        _close(switch)
    return 0


def _line(state: Any) -> str:
    if not state.since:
        return f"{state.state} (never engaged)"
    text = f"{state.state} since {_iso(state.since)}"
    if state.by:
        text += f" by {state.by}"
    if state.reason:
        text += f" ({state.code}: {state.reason})" if state.code else f" ({state.reason})"
    return text


def _iso(epoch: object) -> str:
    if isinstance(epoch, bool) or not isinstance(epoch, int | float):
        return "?"
    try:
        return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return "?"


__all__ = ["register"]
