"""A fleet of bots, each its own process, for test_fleet_processes.py and bench_fleet.py.

    python bot.py kill   '[{"index": 0, "venue": URL, "redis": URL, "prefix": P, ...}, ...]'
    python bot.py budget '[{...}, ...]'
    python bot.py serve       # then one line per fleet: ["kill", [{...}, ...]]

The launcher imports safeguard and ccxt once (seconds of CPU on a busy machine) and forks one
child process per config; each child builds its own ccxt client, guard, kill switch, budget
and Redis connections after the fork, so the bots share nothing but the venue and Redis. The
launcher prints ``ready`` once every bot has connected, releases them all at once when a line
(a JSON object, handed to each bot) arrives on stdin, and prints a JSON list of their reports.
Real guard, ccxt and Redis.

``kill``: send resting limit orders (each cancelled again) until the kill switch refuses;
bot ``engager`` engages the switch itself after ``engage_after`` orders, once every bot has
sent one (each marks its first send in the state directory). Reports when the
engage started and returned, when this bot adopted it, and any order sent after refusing.

``outage``: trade (opening orders) until ``stop.flag`` appears in the state directory; the
engager engages when ``engage.flag`` appears. Reports every state the switch passed through
and whether the link to Redis was up (also appended, as it happens, to
``states-<index>.jsonl``), so a test can kill and restart Redis in between and move on when
every bot has seen it (the venue's log says what was sent).

``budget``: poll the deepest order book (weight 20) as fast as the shared budget allows, on
the fleet's clock (wall time sped up ``scale`` times, so a venue minute passes in seconds).
Reports the venue time of every answer and every 429/418 the guard saw.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from safeguard._config import Policy
from safeguard._errors import OrderNotFound, ThrottleHold, TradingHalted
from safeguard.guard._events import EventKind, Hooks, RequestEvent
from safeguard.killswitch._switch import SwitchState, TradingState
from safeguard.venue._client import ccxt_client

SYMBOL = "ETH/USDT:USDT"


class ScaledClock:
    """Wall time sped up ``scale`` times from an anchor every process of the fleet shares."""

    def __init__(self, wall0: float, venue0: float, scale: float) -> None:
        self.wall0, self.venue0, self.scale = wall0, venue0, scale

    def time(self) -> float:
        return self.venue0 + (time.time() - self.wall0) * self.scale

    def monotonic(self) -> float:
        return self.time()


def _policy(cfg: dict[str, Any], **extra: Any) -> Policy:
    """The bots' policy: no stop required, fast retries, the fleet's Redis; ``extra`` sections
    add to (or override) these."""
    sections: dict[str, Any] = {
        "risk": {"require_stop": False, "max_open_orders": None, "price_band_pct": 50.0},
        "retry": {"base_delay_s": 0.01, "max_delay_s": 0.05, "total_budget_s": 2.0},
        "kill_switch": {
            "state_dir": cfg["state_dir"],
            "cooling_period_s": 0.0,
            "watch_state_file": False,
        },
        "fleet": {
            "redis_url": cfg["redis"],
            "key_prefix": cfg["prefix"],
            "health_check_interval_s": 0.1,
            "reconnect_interval_s": 0.1,
            "ack_timeout_s": 2.0,
        },
    }
    for name, values in extra.items():
        sections[name] = {**sections.get(name, {}), **values}
    # Each bot's orders are told apart in the venue's log by their client order id.
    return Policy.build(**sections, client_order_id_prefix=f"b{cfg['index']}-")


_GATES: dict[str, int] = {}


def _go(cfg: dict[str, Any]) -> dict[str, Any]:
    """Say ready, wait for the release, return what the release line said (a JSON object)."""
    os.write(_GATES["ready"], b"r")
    os.read(_GATES["go"], 1)
    said: dict[str, Any] = json.loads((Path(cfg["state_dir"]) / "go.json").read_text())
    return said


def _trading_bot(cfg: dict[str, Any], **fleet: Any) -> tuple[Any, Any, float]:
    """A fleet member (guarded exchange on the shared switch and budget), its switch, and a
    price at which a buy rests."""
    from safeguard.fleet._member import join_fleet

    huge = 10**7
    policy = _policy(
        cfg,
        throttle={
            "weight_limit_per_minute": huge,
            "orders_per_10s": huge,
            "orders_per_minute": huge,
        },
        fleet=fleet,
    )
    raw = ccxt_client(cfg["venue"], cfg["key"], cfg["secret"], timeout_ms=5_000)
    member = join_fleet(
        raw,
        policy,
        journal_path=Path(cfg["state_dir"]) / f"orders-{cfg['index']}.jsonl",
        durable_journal=False,
    )
    member.exchange.load_markets()
    price = round(float(member.exchange.fetch_ticker(SYMBOL)["last"]) * 0.9, 2)
    return member, member.switch, price


def _every_bot_has_sent(cfg: dict[str, Any]) -> bool:
    state_dir = Path(cfg["state_dir"])
    return all((state_dir / f"sent-{i}.flag").exists() for i in range(cfg["bots"]))


def run_kill(cfg: dict[str, Any]) -> dict[str, Any]:
    member, switch, price = _trading_bot(cfg)
    ex = member.exchange
    adopted: list[float] = []

    def on_change(state: SwitchState) -> None:
        if state.state is not TradingState.ACTIVE and not adopted:
            adopted.append(time.time())

    switch.add_listener(on_change)
    _go(cfg)
    engager = cfg["index"] == cfg["engager"]
    result: dict[str, Any] = {"index": cfg["index"], "sent": 0, "sent_after_refusal": 0}
    refused_at: float | None = None
    deadline = time.time() + cfg["run_s"]
    while time.time() < deadline:
        if (
            engager
            and result["sent"] >= cfg["engage_after"]
            and "engage_started" not in result
            and _every_bot_has_sent(cfg)
        ):
            result["engage_started"] = time.time()
            switch.engage("fleet test: bot engages", by=f"bot-{cfg['index']}")
            result["engage_returned"] = time.time()
        try:
            order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        except TradingHalted as exc:
            if refused_at is None:
                refused_at = time.time()
                result["refused_code"] = exc.code
                deadline = min(deadline, refused_at + cfg["after_s"])
            continue
        result["sent"] += 1
        if result["sent"] == 1:
            # The engager waits for this mark: on a loaded machine a bot can still be starting
            # when the engager has sent its orders, and the test needs every bot trading first.
            (Path(cfg["state_dir"]) / f"sent-{cfg['index']}.flag").touch()
        if refused_at is not None:
            result["sent_after_refusal"] += 1
        with contextlib.suppress(OrderNotFound):  # the engage's ladder may cancel it first
            ex.cancel_order(order["id"], SYMBOL)
    result["refused_at"] = refused_at
    result["adopted_at"] = adopted[0] if adopted else None
    member.close()
    return result


def run_outage(cfg: dict[str, Any]) -> dict[str, Any]:
    """Trade until ``stop.flag`` appears; engage when ``engage.flag`` appears (the engager,
    which then touches ``engaged.flag``); record every state the switch passes through."""
    member, switch, price = _trading_bot(cfg, on_disconnect=cfg["on_disconnect"])
    ex = member.exchange
    flags = Path(cfg["state_dir"])
    _go(cfg)
    engager = cfg["index"] == cfg["engager"]
    result: dict[str, Any] = {"index": cfg["index"], "states": []}
    deadline = time.time() + cfg["run_s"]
    # Every change is also appended to a file as it happens: the test waits on it to move to
    # its next phase (what the bots saw is the event, not a pause).
    seen_log = (flags / f"states-{cfg['index']}.jsonl").open("a", encoding="utf-8")
    while time.time() < deadline and not (flags / "stop.flag").exists():
        state = switch.state
        seen = [state.state.value, state.code, member.store.connected]
        if not result["states"] or result["states"][-1][1:] != seen:
            result["states"].append([time.time(), *seen])
            seen_log.write(json.dumps(result["states"][-1]) + "\n")
            seen_log.flush()
        if engager and "engage_returned" not in result and (flags / "engage.flag").exists():
            switch.engage("fleet test: engaged between two outages", by="bot-0")
            result["engage_returned"] = time.time()
            (flags / "engaged.flag").touch()
        try:
            order = ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        except TradingHalted:
            time.sleep(0.002)
            continue
        with contextlib.suppress(OrderNotFound):  # the engage's ladder may cancel it first
            ex.cancel_order(order["id"], SYMBOL)
    seen_log.close()
    member.close()
    return result


def run_budget(cfg: dict[str, Any]) -> dict[str, Any]:
    from safeguard.fleet._member import join_fleet

    scale = float(cfg["scale"])
    clock = ScaledClock(cfg["wall0"], cfg["venue0"], scale)
    policy = _policy(cfg, throttle={"weight_limit_per_minute": cfg["limit"]})
    hooks = Hooks()
    events: list[RequestEvent] = []
    hooks.subscribe(EventKind.REQUEST, events.append)

    def sleep(seconds: float) -> bool:
        time.sleep(seconds / scale)  # fleet seconds to wall seconds
        return False

    raw = ccxt_client(cfg["venue"], cfg["key"], cfg["secret"], timeout_ms=5_000)
    member = join_fleet(
        raw,
        policy,
        ip_key="binanceusdm@127.0.0.1",
        clock=clock,
        hooks=hooks,
        journal_path=Path(cfg["state_dir"]) / f"orders-{cfg['index']}.jsonl",
        durable_journal=False,
        sleep=sleep,
    )
    ex = member.exchange
    ex.load_markets()
    end = _go(cfg)["end"]
    answered: list[float] = []
    holds = 0
    while clock.time() < end:
        try:
            ex.fetch_order_book(SYMBOL, 1000)
            answered.append(clock.time())
        except ThrottleHold as hold:
            holds += 1
            time.sleep(max(hold.retry_after, 0.01) / scale)
    member.close()
    return {
        "index": cfg["index"],
        "answered": answered,
        "holds": holds,
        "statuses": sorted({e.status for e in events if e.status is not None}),
        "throttled": sum(1 for e in events if e.outcome == "throttled"),
        "banned": sum(1 for e in events if e.status == 418),
        "shared": member.budget.shared,
    }


def launch(mode: str, configs: list[dict[str, Any]]) -> bool:
    runner = {"kill": run_kill, "outage": run_outage, "budget": run_budget}[mode]
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    children: dict[int, Path] = {}
    for cfg in configs:
        report = Path(cfg["state_dir"]) / f"report-{cfg['index']}.json"
        pid = os.fork()
        if pid == 0:  # the bot
            _GATES.update(ready=ready_w, go=go_r)
            code = 0
            try:
                report.write_text(json.dumps(runner(cfg)))
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children[pid] = report
    for _ in configs:
        if not os.read(ready_r, 1):
            return False
    print("ready", flush=True)
    line = sys.stdin.readline().strip() or "{}"
    (Path(configs[0]["state_dir"]) / "go.json").write_text(json.dumps(json.loads(line)))
    os.write(go_w, b"g" * len(configs))
    failed = 0
    for pid in children:
        _, status = os.waitpid(pid, 0)
        failed += os.waitstatus_to_exitcode(status) != 0
    for fd in (ready_r, ready_w, go_r, go_w):
        os.close(fd)
    if failed:
        print(f"{failed} bot(s) failed", file=sys.stderr)
        print(json.dumps({"failed": failed}), flush=True)
        return False
    print(json.dumps([json.loads(path.read_text()) for path in children.values()]), flush=True)
    return True


def serve() -> None:
    """Run fleets one after another, each asked for by a line ``[mode, [config, ...]]``: the
    imports are paid once for every fleet of a test session."""
    print("up", flush=True)
    while line := sys.stdin.readline():
        mode, configs = json.loads(line)
        launch(mode, configs)


if __name__ == "__main__":
    if sys.argv[1:] == ["serve"]:
        serve()
    else:
        sys.exit(0 if launch(sys.argv[1], json.loads(sys.argv[2])) else 1)
