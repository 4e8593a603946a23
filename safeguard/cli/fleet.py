"""``safeguard fleet``: what a fleet shares in Redis, at a glance.

    safeguard fleet --redis redis://10.0.0.5:6379/0 [--prefix P] [--json]

prints the kill switch state, the bots checked in (each one an engage waits for), the rate
windows in use with how full they are, and any ban. Read-only: looking changes nothing. Exit
codes: 0 shown; 2 bad input or Redis unreachable (the message says so).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from safeguard.config import Policy


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fleet",
        help="show what a fleet shares in Redis (kill switch, live bots, rate windows, bans)",
        description="Show a fleet's shared state in Redis. Read-only.",
    )
    parser.add_argument("--redis", metavar="URL", help="the fleet's Redis (default: policy)")
    parser.add_argument("--prefix", metavar="P", help="the fleet's key prefix (fleet.key_prefix)")
    parser.add_argument("--policy", metavar="FILE", help="policy TOML (default: environment)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from safeguard.fleet.connection import link_errors

    fleet = Policy.load(args.policy).fleet
    if args.prefix is not None:
        fleet = fleet.model_validate({**fleet.model_dump(), "key_prefix": args.prefix})
    try:
        document = snapshot(fleet, args.redis)
    except ValueError as exc:
        print(f"safeguard fleet: {exc}", file=sys.stderr)
        return 2
    except link_errors() as exc:
        from safeguard.fleet.connection import describe

        print(f"safeguard fleet: Redis unreachable ({describe(exc)})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(document, indent=2, sort_keys=True))
        return 0
    switch = document["kill_switch"]
    line = f"kill switch: {switch['state']}"
    if switch["state"] != "ACTIVE":
        line += f" ({switch['code']}: {switch['reason']}; by {switch['by']})"
    print(line)
    print(f"bots checked in: {len(document['members'])}")
    for member in document["members"]:
        print(f"  {member['name']}  (last seen {member['age_s']:.1f} s ago)")
    for window in document["windows"]:
        print(f"  {window['key']}: {window['used']:g} used in window {window['window']}")
    for ban in document["bans"]:
        print(f"  banned: {ban['scope']} until {ban['until']:.0f}")
    return 0


def snapshot(fleet: Any, url: str | None) -> dict[str, Any]:
    """The fleet's shared state as one JSON-ready document. Raises redis errors if down."""
    from safeguard.fleet.connection import connect, key_tag
    from safeguard.killswitch.store import decode_state

    client = connect(fleet, url)
    try:
        tag = key_tag(fleet)
        raw = client.get(f"{tag}:ks:state")
        switch: dict[str, Any] = {"state": "ACTIVE", "code": "", "reason": "", "by": ""}
        if raw is not None:
            try:
                state = decode_state(_text(raw).encode(), source=f"redis key {tag}:ks:state")
                switch = {
                    "state": state.state.value,
                    "code": state.code,
                    "reason": state.reason,
                    "by": state.by,
                    "since": state.since,
                }
            except ValueError as exc:  # what every bot does with it: fail closed
                switch = {"state": "HALTED", "code": "STATE_STORE_UNAVAILABLE"}
                switch |= {"reason": str(exc), "by": ""}
        # Members check in on Redis' clock; age them on it too.
        seconds, micros = client.time()
        now = float(seconds) + float(micros) / 1e6
        checked_in: Any = client.zrange(f"{tag}:ks:members", 0, -1, withscores=True)
        members = [
            {"name": _text(name), "age_s": max(now - float(score), 0.0)}
            for name, score in checked_in
            if now - float(score) <= fleet.member_ttl_s
        ]
        windows, bans = [], []
        for key in sorted(client.scan_iter(match=f"{tag}:rl:*", count=500)):
            name = _text(key)
            row = {_text(k): _text(v) for k, v in client.hgetall(key).items()}
            if name.endswith(":scope"):
                until = float(row.get("banned_until", 0.0))
                if until > time.time():
                    bans.append({"scope": name[len(tag) + 4 : -6], "until": until})
            elif "used" in row:
                windows.append(
                    {"key": name[len(tag) + 4 :], "used": float(row["used"]), "window": row["w"]}
                )
        return {"kill_switch": switch, "members": members, "windows": windows, "bans": bans}
    finally:
        client.close()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = ["register", "snapshot"]
