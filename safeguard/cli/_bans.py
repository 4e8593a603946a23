"""``safeguard bans``: the venue bans a state directory remembers, and clearing one.

A 418 is written to ``bans.json`` in the state directory so a restarted bot fails fast
instead of extending the ban. This shows them (``--json`` for machines) and, for an operator
who knows the ban is over, forgets one::

    safeguard bans --state-dir ~/.local/state/safeguard
    safeguard bans --clear "binanceusdm@fapi.binance.com"

Exit codes: 0 no ban in force (or cleared); 1 a ban is in force; 2 bad input or a corrupt file.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from safeguard._clock import SystemClock
from safeguard._config import Policy, resolve_state_dir
from safeguard.guard._bans import BanStore


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "bans",
        help="show the venue bans remembered in the state directory (or clear one)",
        description="Show the persisted venue bans (HTTP 418) or forget one.",
    )
    parser.add_argument(
        "--state-dir",
        help="default: $SAFEGUARD_STATE_DIR, else the policy's, else $XDG_STATE_HOME/safeguard",
    )
    parser.add_argument("--policy", type=Path, help="policy TOML (for its state_dir)")
    parser.add_argument("--clear", metavar="IP_KEY", help="forget the ban on this key")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    # Resolved exactly as a bot resolves it, so the bans shown are the ones a bot obeys.
    state_dir = resolve_state_dir(Policy.load(args.policy), args.state_dir)
    store = BanStore(state_dir)
    if args.clear:
        if args.clear not in store.load():
            print(
                f"safeguard bans: no ban recorded for {args.clear!r} in {store.path}; nothing "
                "to clear (`safeguard bans` lists them)",
                file=sys.stderr,
            )
            return 2
        store.clear(args.clear)
        print(f"forgot the ban on {args.clear}")
        return 0
    now = SystemClock().time()
    bans = store.load()
    rows = [
        {
            "ip_key": key,
            "until": until,
            "until_utc": datetime.fromtimestamp(until, UTC).isoformat(timespec="seconds"),
            "in_force": until > now,
            "remaining_s": max(0.0, round(until - now, 1)),
        }
        for key, until in sorted(bans.items())
    ]
    if args.json:
        print(json.dumps(rows, indent=1))
    elif not rows:
        print(f"no bans recorded in {store.path}")
    else:
        for row in rows:
            state = f"in force, {row['remaining_s']:.0f}s left" if row["in_force"] else "expired"
            print(f"{row['ip_key']}: until {row['until_utc']} ({state})")
    return 1 if any(row["in_force"] for row in rows) else 0
