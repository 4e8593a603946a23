"""``safeguard kill``, ``safeguard status`` and ``safeguard resume``: the switch from a shell.

All three act on the state directory a running bot watches (``--state-dir``, else the
policy's ``kill_switch.state_dir``, else ``.safeguard``), so::

    safeguard kill --reason "funding spike, flattening by hand"
    safeguard status --history 5
    safeguard resume --by alice

stop, inspect and re-arm every bot on that directory. A bot notices within its
``poll_interval_s``. ``resume`` is refused (exit 1) during the cooling period. Exit codes:
0 done; 1 refused; 2 bad input, policy or state (the message names it).

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

from safeguard.codes import Code
from safeguard.config import KillSwitchConfig, Policy
from safeguard.errors import ConfigError


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
    parser.add_argument("--state-dir", metavar="DIR", help="state directory (overrides policy)")
    parser.add_argument(
        "--redis", metavar="URL", help="a fleet's Redis (overrides policy fleet.redis_url)"
    )
    parser.add_argument("--prefix", metavar="P", help="the fleet's key prefix (fleet.key_prefix)")
    if by:
        parser.add_argument("--by", help="who (default: cli:USER@HOST)")


def _config(args: argparse.Namespace) -> KillSwitchConfig:
    config = Policy.load(args.policy).kill_switch
    if args.state_dir is not None:
        if not args.state_dir.strip():
            raise ValueError("--state-dir must not be empty")
        config = config.model_copy(update={"state_dir": Path(args.state_dir)})
    return config


def _fleet_store(args: argparse.Namespace) -> Any:
    """The fleet's Redis store if ``--redis`` or the policy names one, else ``None``."""
    fleet = Policy.load(args.policy).fleet
    if args.prefix is not None:
        fleet = fleet.model_validate({**fleet.model_dump(), "key_prefix": args.prefix})
    if args.redis is None and fleet.redis_url is None:
        return None
    from safeguard.fleet.redis_store import RedisStateStore

    # One-shot: no reader thread, and not a fleet member an engage would wait for.
    return RedisStateStore(fleet, url=args.redis, listen=False)


def _switch(args: argparse.Namespace) -> Any:
    from safeguard.killswitch.switch import KillSwitch

    # One-shot: no watcher thread, no signal handler; the webhook is flushed on close.
    config = _config(args).model_copy(update={"install_signal_handler": False})
    store = _fleet_store(args)
    if store is None:
        return KillSwitch(config, watch=False)
    if not store.connected:
        store.close()
        raise OSError(f"{store} is unreachable; nothing was changed")
    return KillSwitch(config, watch=False, store=store)


def _close(switch: Any) -> None:
    switch.close()
    close_store = getattr(switch.store, "close", None)  # a fleet store holds a connection
    if callable(close_store):
        close_store()


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return str(args.by)
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"cli:{user}@{socket.gethostname()}"


def _kill(args: argparse.Namespace) -> int:
    from safeguard.killswitch.switch import TradingState

    if not args.reason.strip():
        print("safeguard kill: --reason must not be empty", file=sys.stderr)
        return 2
    switch = _switch(args)
    try:
        before = switch.state
        after = switch.engage(
            args.reason, by=_by(args), state=TradingState(args.state), code=Code.MANUAL
        )
    finally:
        _close(switch)
    if after == before:
        print(f"already {_line(after)}")
    else:
        print(f"engaged: {_line(after)}")
    print(f"state: {switch.store}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from safeguard.killswitch.store import FileStateStore
    from safeguard.killswitch.switch import SwitchState, TradingState

    if args.history < 0:
        print("safeguard status: --history must not be negative", file=sys.stderr)
        return 2
    # Read-only on purpose: looking must never change the state (a bot fails closed itself).
    fleet_store = _fleet_store(args)
    store: Any = fleet_store or FileStateStore(_config(args).state_dir)
    problem = None
    try:
        if fleet_store is not None and not fleet_store.connected:
            raise ConfigError(f"{fleet_store} is unreachable; every bot trades as configured")
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
        print(f"state: {store}")
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
    from safeguard.fleet.connection import describe, link_errors
    from safeguard.fleet.overview import snapshot

    try:
        return snapshot(fleet, args.redis)
    except link_errors() as exc:
        raise OSError(f"the fleet's Redis is unreachable ({describe(exc)})") from None


def _print_overview(overview: dict[str, Any]) -> None:
    print(f"bots checked in: {len(overview['members'])}")
    for member in overview["members"]:
        print(f"  {member['name']}  (last seen {member['age_s']:.1f} s ago)")
    for window in overview["windows"]:
        print(f"  {window['key']}: {window['used']:g} used in window {window['window']}")
    for ban in overview["bans"]:
        print(f"  banned: {ban['scope']} until {_iso(ban['until'])}")


def _resume(args: argparse.Namespace) -> int:
    from safeguard.killswitch.switch import ResumeRefused, TradingState

    switch = _switch(args)
    try:
        state = switch.resume(by=_by(args), to=TradingState(args.to), reason=args.reason)
    except ResumeRefused as exc:
        print(f"safeguard resume: {exc}", file=sys.stderr)
        return 1
    finally:
        _close(switch)
    print(f"now {_line(state)}")
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
