"""A read-only snapshot of what a fleet shares in Redis: the kill switch state, the bots checked
in (each one an engage waits for), the rate windows in use and the bans in force.

``safeguard status --redis URL --fleet`` prints it; :func:`snapshot` returns it as a JSON-ready
document for dashboards. Looking changes nothing.
"""

from __future__ import annotations

import time
from typing import Any

from safeguard._config import FleetConfig
from safeguard.fleet._connection import connect, key_tag
from safeguard.killswitch._store import decode_state


def snapshot(fleet: FleetConfig, url: str | None = None) -> dict[str, Any]:
    """The fleet's shared state as one JSON-ready document. Raises redis errors if down."""
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


__all__ = ["snapshot"]
