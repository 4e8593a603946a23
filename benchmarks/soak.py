"""Soak: many hours of simulated market and random faults through the guarded exchange.

A random trader (entries with declared stops and the reduce-only stop orders behind them,
resting limit orders, cancels, closes, reads) runs bar by bar on the mock Binance USD-M venue,
in process, on simulated time, while a seeded fault plan throws a new trouble at it every hour:
503 storms, orders carried out whose answer is a 503, lost or never-arriving answers, failing
look-ups, slow answers, HTML gateway pages, throttling, an IP ban, frozen feeds and price
spikes. The kill switch's triggers are on; when one engages, an "operator" resumes after the
cooling period. At the end, with the venue healthy again, the soak checks:

* **no exception escaped**: every failure the guarded exchange raised is a ``SafeguardError``;
* **the journal accounts for every order the venue has**: each of the account's orders on the
  venue carries a client order id the journal wrote (pending, before the send);
* **no duplicate client ids**: none twice on the venue, none sent twice by the journal;
* **every answer is true**: each order the guard returned exists on the venue under the same
  id, each journal entry settled as absent or rejected has no order on the venue, and nothing
  is left unresolved after the final reconcile;
* **equity reconciles to the cent**: the guarded client's balance equals the venue's equity,
  and the venue's wallet equals the deposit plus every fill, fee and funding payment (exact).

It prints a summary and exits 1 if any invariant broke.

    python benchmarks/soak.py --hours 24 --seed 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safeguard._config import Policy
from safeguard._errors import OutcomeUnknown, SafeguardError
from safeguard.guard._events import EventKind, Hooks, RetryEvent
from safeguard.killswitch import ResumeRefused, TradingState
from safeguard.killswitch._triggers import MarkUpdate, RiskMonitor
from safeguard.testing import PaperAccount, paper_account, sandbox_policy
from safeguard.venue import Fill, FundingPayment, Liquidation, VenueConfig
from safeguard.venue._markets import MONEY_SCALE

BAR_S = 60.0
SYMBOLS = ("BTCUSDT", "ETHUSDT")
WALLET = 50_000.0
ORDER = "POST /fapi/v1/order"
CLIENT_IP = "127.0.0.1"  # what the in-process venue sees as the bot's address


# --- the fault plan ------------------------------------------------------------------------------


def _episode(kind: str, start: float, end: float, rng: random.Random) -> list[dict[str, Any]]:
    """The rules of one trouble, open from ``start`` to ``end`` (seconds into the run)."""
    w = {"start_s": start, "end_s": end}
    if kind == "errors":
        return [{"kind": "error", "status": rng.choice([500, 503]), "probability": 0.3, **w}]
    if kind == "ambiguous":
        return [
            {"kind": "error", "endpoint": ORDER, "status": 503, "processed": True,
             "probability": 0.25, **w},
            {"kind": "timeout_after_accept", "endpoint": "POST /fapi/v1/*", "probability": 0.15,
             "hold_s": 1.0, **w},
            {"kind": "drop", "endpoint": "POST /fapi/v1/*", "processed": True,
             "probability": 0.1, **w},
            {"kind": "drop", "endpoint": "POST /fapi/v1/*", "processed": False,
             "probability": 0.1, **w},
        ]  # fmt: skip
    if kind == "lookups":
        return [
            {"kind": "error", "endpoint": "GET /fapi/v1/order", "status": 503, "probability": 0.4,
             **w},
            {"kind": "drop", "endpoint": "GET /fapi/v1/openOrders", "probability": 0.3, **w},
            {"kind": "error", "endpoint": ORDER, "status": 503, "processed": True,
             "probability": 0.2, **w},
        ]  # fmt: skip
    if kind == "latency":
        return [{"kind": "latency", "distribution": "lognormal", "ms": 400, "sigma": 1.0, **w}]
    if kind == "html":
        return [{"kind": "error", "status": 502, "body": "html", "probability": 0.25, **w}]
    if kind == "throttle":
        return [{"kind": "throttle", "orders_per_10s": 3, "weight_per_minute": 400, **w}]
    if kind == "ban":
        return [{"kind": "ban", "count": 1, **w}]
    symbol = rng.choice(SYMBOLS)
    if kind == "freeze":
        mode = rng.choice(["stale_prices", "timestamps"])
        return [
            {"kind": "freeze_feed", "symbol": symbol, "mode": mode, "at_s": start},
            {"kind": "freeze_feed", "symbol": symbol, "mode": "off", "at_s": end},
        ]
    if kind == "spike":
        pct = rng.choice([-1, 1]) * rng.uniform(2.0, 5.0)
        return [{"kind": "spike", "symbol": symbol, "pct": round(pct, 2),
                 "duration_s": end - start, "at_s": start}]  # fmt: skip
    raise ValueError(kind)


KINDS = ("errors", "ambiguous", "lookups", "latency", "html", "throttle", "freeze", "spike")


def fault_plan(hours: float, seed: int) -> dict[str, Any]:
    """Seeded: one to two troubles an hour, an IP ban once a day, and a 1 % background of 503s
    all along."""
    rng = random.Random(seed)
    rules: list[dict[str, Any]] = [{"kind": "error", "status": 503, "probability": 0.01}]
    for hour in range(math.ceil(hours)):
        for _ in range(rng.randint(1, 2)):
            start = hour * 3600.0 + rng.uniform(0, 3000)
            end = start + rng.uniform(300, 1200)
            # Bans double on every repeat (as Binance's do): one a day keeps them survivable.
            kind = "ban" if hour % 24 == 5 and rules[-1].get("kind") != "ban" else None
            rules.extend(_episode(kind or rng.choice(KINDS), start, end, rng))
    return {"seed": seed, "rules": rules}


# --- the journal, as written to disk --------------------------------------------------------------


class JournalTail:
    """Every record the guard's journal file ever held, read as it grows.

    The file is append-only between compactions, and a compaction (inside ``reconcile``) is an
    atomic replace: a new inode, read again from the start.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._inode: int | None = None
        self._offset = 0
        self.statuses: dict[str, list[str]] = {}
        self.pending_records: Counter[str] = Counter()

    def read(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return
        if stat.st_ino != self._inode:
            self._inode, self._offset = stat.st_ino, 0
            rewritten = True
        else:
            rewritten = False
        with self.path.open("rb") as file:
            file.seek(self._offset)
            data = file.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.decode().splitlines():
            record = json.loads(line)
            cid, status = record["id"], record["status"]
            # A resend's stamp (pending, without the order's shape) is not a second pending
            # record of the id: it says when the same order was sent again.
            stamp = status == "pending" and "symbol" not in record
            if status == "pending" and not stamp and not (rewritten and cid in self.statuses):
                self.pending_records[cid] += 1
            self.statuses.setdefault(cid, []).append(status)

    def final(self, cid: str) -> str | None:
        seen = self.statuses.get(cid)
        return seen[-1] if seen else None


# --- the trader -------------------------------------------------------------------------------


@dataclass
class Tally:
    calls: int = 0
    returned: dict[str, str] = field(default_factory=dict)
    """client order id -> order id, for every order the guard returned."""
    outcomes: Counter[str] = field(default_factory=Counter)
    escaped: list[str] = field(default_factory=list)
    engaged: Counter[str] = field(default_factory=Counter)
    resumes: int = 0
    retries: Counter[str] = field(default_factory=Counter)


class Trader:
    """Random but plausible order flow, two symbols, every call through the guard."""

    def __init__(
        self,
        exchange: Any,
        rng: random.Random,
        tally: Tally,
        on_ticker: Callable[[str, Mapping[str, Any]], None],
    ) -> None:
        self.ex = exchange
        self.rng = rng
        self.tally = tally
        self.on_ticker = on_ticker
        self.unknown = False

    def call(self, method: str, *args: Any) -> Any:
        self.tally.calls += 1
        try:
            result = getattr(self.ex, method)(*args)
        except OutcomeUnknown as exc:
            self.unknown = True
            self.tally.outcomes[f"{method}: {exc.code}"] += 1
            return None
        except SafeguardError as exc:
            self.tally.outcomes[f"{method}: {exc.code}"] += 1
            return None
        except Exception as exc:  # the invariant: nothing but SafeguardError may escape
            self.tally.escaped.append(f"{method}: {type(exc).__name__}: {exc}")
            self.tally.outcomes[f"{method}: ESCAPED {type(exc).__name__}"] += 1
            if len(self.tally.escaped) <= 3:
                traceback.print_exc()
            return None
        self.tally.outcomes[f"{method}: ok"] += 1
        if method == "create_order" and isinstance(result, dict):
            self.tally.returned[str(result.get("clientOrderId"))] = str(result.get("id"))
        return result

    def on_bar(self, symbols: tuple[str, ...]) -> None:
        for symbol in symbols:
            self._price(symbol)  # a bot watches its markets every bar, trading or not
            roll = self.rng.random()
            if roll < 0.25:
                self.enter(symbol, limit=False)
            elif roll < 0.40:
                self.enter(symbol, limit=True)
            elif roll < 0.50:
                self.cancel_one(symbol)
            elif roll < 0.58:
                self.close(symbol)
            else:
                self.call("fetch_positions", [symbol])

    def _price(self, symbol: str) -> float | None:
        ticker = self.call("fetch_ticker", symbol)
        if not ticker or not ticker.get("last"):
            return None
        self.on_ticker(symbol, ticker)
        return float(ticker["last"])

    def _held(self, symbol: str) -> float | None:
        positions = self.call("fetch_positions", [symbol])
        if positions is None:
            return None
        return sum(
            float(p["contracts"] or 0) * (-1 if p["side"] == "short" else 1) for p in positions
        )

    def enter(self, symbol: str, *, limit: bool) -> None:
        price = self._price(symbol)
        if price is None:
            return
        side = self.rng.choice(["buy", "sell"])
        sign = 1 if side == "buy" else -1
        notional = self.rng.uniform(150.0, 3000.0)
        amount = float(self.ex.amount_to_precision(symbol, notional / price))
        distance = self.rng.uniform(0.02, 0.06)
        stop = float(self.ex.price_to_precision(symbol, price * (1 - sign * distance)))
        params = {"stopLoss": {"triggerPrice": stop}}
        if limit:
            limit_price = price * (1 - sign * self.rng.uniform(0.0005, 0.01))
            self.call("create_order", symbol, "limit", side, amount,
                      float(self.ex.price_to_precision(symbol, limit_price)), params)  # fmt: skip
            return
        if self.call("create_order", symbol, "market", side, amount, None, params) is None:
            return
        self.protect(symbol, stop)

    def protect(self, symbol: str, stop: float) -> None:
        """One reduce-only stop covering the whole position (the old ones cancelled)."""
        held = self._held(symbol)
        self.cancel_stops(symbol)
        if not held:
            return
        mark = self._price(symbol)
        if mark is None or (held > 0) != (stop < mark):
            return  # the stop would fire at once: the position is on the other side now
        self.call("create_order", symbol, "market", "sell" if held > 0 else "buy", abs(held),
                  None, {"stopLossPrice": stop, "reduceOnly": True})  # fmt: skip

    def cancel_stops(self, symbol: str) -> None:
        stops = self.call("fetch_open_orders", symbol, None, None, {"trigger": True}) or []
        for order in stops:
            self.call("cancel_order", order["id"], symbol, {"trigger": True})

    def cancel_one(self, symbol: str) -> None:
        orders = self.call("fetch_open_orders", symbol) or []
        if orders:
            self.call("cancel_order", self.rng.choice(orders)["id"], symbol)

    def close(self, symbol: str) -> None:
        held = self._held(symbol)
        if held:
            self.call("create_order", symbol, "market", "sell" if held > 0 else "buy", abs(held),
                      None, {"reduceOnly": True})  # fmt: skip
            self.cancel_stops(symbol)


# --- the run -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class Soak:
    hours: float
    seed: int
    durable: bool = False
    state_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sg-soak-")))
    tally: Tally = field(default_factory=Tally)
    wall_s: float = 0.0
    bars: int = 0

    def __post_init__(self) -> None:
        config = VenueConfig(seed=self.seed, symbols=SYMBOLS, order_history=10_000_000)
        self.plan = fault_plan(self.hours, self.seed)
        self.account: PaperAccount = paper_account(config=config, wallet=WALLET, faults=self.plan)
        policy = sandbox_policy(
            self.state_dir,
            Policy.build(
                risk={"max_notional_per_position": 15_000.0, "max_open_orders": 40},
                kill_switch={"triggers": {"max_data_age_s": 180.0}},
            ),
        )
        self.policy = policy
        self.monitor = RiskMonitor.from_policy(policy)
        hooks = Hooks()
        hooks.subscribe(EventKind.RETRY, self._on_retry)
        self.exchange = self.account.guarded(
            policy,
            state_dir=self.state_dir,
            triggers=self.monitor,
            hooks=hooks,
            durable_journal=self.durable,
            seed=self.seed,
        )
        self.journal = JournalTail(self.exchange.runtime.core.journal.path)
        self.trader = Trader(
            self.exchange, random.Random(self.seed + 1), self.tally, self._on_ticker
        )

    def _on_ticker(self, symbol: str, ticker: Mapping[str, Any]) -> None:
        """What the loop sees of the market feeds the frozen-feed trigger, as the guard's own
        verdict reads do: a feed whose timestamps stop is caught between orders too."""
        stamp = ticker.get("timestamp")
        update = MarkUpdate(
            self.account.clock.time(), symbol, None if stamp is None else float(stamp) / 1000.0
        )
        for trip in self.monitor.observe(update):
            self.switch.engage(
                trip.reason, by="trigger", state=TradingState(trip.action), code=str(trip.code)
            )

    def _on_retry(self, event: RetryEvent) -> None:
        self.tally.retries[event.reason] += 1

    @property
    def switch(self) -> Any:
        return self.exchange.runtime.switch

    def run(self) -> None:
        started = time.perf_counter()
        symbols = tuple(f"{s[:-4]}/USDT:USDT" for s in SYMBOLS)
        self.trader.call("load_markets")
        end = self.account.clock.time() + self.hours * 3600.0
        while self.account.clock.time() < end:
            self.account.advance(BAR_S)
            self.bars += 1
            self._operator()
            if self.trader.unknown:
                self.trader.unknown = False
                self.journal.read()
                self.trader.call("reconcile")
            self.trader.on_bar(symbols)
            if self.bars % 30 == 0:
                self.trader.call("fetch_balance")
            self.journal.read()
        self._heal()
        self.wall_s = time.perf_counter() - started

    def _operator(self) -> None:
        """Re-arm an engaged switch once its cooling period allows (and note why it engaged)."""
        state = self.switch.state
        if state.state is TradingState.ACTIVE:
            return
        key = (state.code, state.since)
        if getattr(self, "_last_engage", None) != key:
            self._last_engage = key
            self.tally.engaged[state.code or "?"] += 1
        try:
            self.switch.resume(by="soak-operator", reason="soak: resume after cooling")
        except ResumeRefused:
            return
        self.monitor.resume(self.account.clock.time())
        self.tally.resumes += 1

    def _heal(self) -> None:
        """The venue comes back: no faults, live feeds, the switch re-armed, ambiguity settled."""
        self.fired = self.account.faults_fired()
        self.account.clear_faults()
        for symbol in SYMBOLS:
            self.account.venue.freeze_feed(symbol, None)
        now = self.account.clock.time()
        banned_until = self.account.dialect.limiter.banned_until(CLIENT_IP, now) or now
        wait = max(banned_until - now, 0.0) + self.policy.kill_switch.cooling_period_s + BAR_S
        self.account.advance(wait)
        self._operator()
        self.journal.read()
        self.trader.call("reconcile")
        self.journal.read()

    # --- invariants ------------------------------------------------------------------------------

    def check(self) -> list[Invariant]:
        key = self.account.api_key
        venue = self.account.venue
        orders = self.account.orders()
        by_cid: Counter[str] = Counter(o["clientOrderId"] for o in orders)
        unjournaled = [c for c in by_cid if c not in self.journal.statuses]
        doubled_venue = [c for c, n in by_cid.items() if n > 1]
        doubled_journal = [c for c, n in self.journal.pending_records.items() if n > 1]
        ids = {o["clientOrderId"]: str(o["orderId"]) for o in orders}
        untrue = [c for c, oid in self.tally.returned.items() if ids.get(c) != oid]
        phantom = [
            c for c in self.journal.statuses
            if self.journal.final(c) in ("absent", "rejected") and c in by_cid
        ]  # fmt: skip
        unresolved = [e.client_order_id for e in self.exchange.runtime.core.journal.unresolved()]

        balance = self.trader.call("fetch_balance") or {}
        seen = float((balance.get("USDT") or {}).get("total") or float("nan"))
        truth = venue.equity(key)
        ledger = venue.deposit_units(key) + sum(
            e.wallet_delta_units
            for e in venue.events
            if isinstance(e, Fill | FundingPayment | Liquidation) and e.api_key == key
        )
        return [
            Invariant(
                "no exception escaped",
                not self.tally.escaped,
                f"{len(self.tally.escaped)} escaped {self.tally.escaped[:3]}",
            ),
            Invariant(
                "journal accounts for every venue order",
                bool(orders) and not unjournaled,
                f"{len(orders)} venue orders, {len(unjournaled)} not journaled {unjournaled[:3]}",
            ),
            Invariant(
                "no duplicate client ids",
                not doubled_venue and not doubled_journal,
                f"{len(doubled_venue)} twice on the venue, {len(doubled_journal)} journaled twice",
            ),
            Invariant(
                "every answer is true",
                not untrue and not phantom and not unresolved,
                f"{len(untrue)} returned orders missing, {len(phantom)} 'absent' orders exist, "
                f"{len(unresolved)} unresolved",
            ),
            Invariant(
                "equity reconciles to the cent",
                abs(seen - truth) < 0.005 and ledger == venue.wallet_units(key),
                f"guarded client {seen:,.4f} vs venue {truth:,.4f}; wallet "
                f"{venue.wallet_units(key) / MONEY_SCALE:,.8f} vs ledger "
                f"{ledger / MONEY_SCALE:,.8f}",
            ),
        ]

    def summary(self, invariants: list[Invariant]) -> str:
        orders = self.account.orders()
        kinds = Counter(o["type"] for o in orders)
        statuses = Counter(o["status"] for o in orders)
        errors = Counter({k: v for k, v in self.tally.outcomes.items() if not k.endswith(": ok")})
        lines = [
            f"soak: {self.hours:g} simulated hours ({self.bars} bars of {BAR_S:g} s), seed "
            f"{self.seed}, journal {'fsynced' if self.durable else 'not fsynced'}",
            f"wall time: {self.wall_s:.1f} s ({self.hours * 3600 / max(self.wall_s, 1e-9):,.0f}x "
            f"real time); Python {sys.version.split()[0]}, {os.cpu_count()} cpus, load average "
            f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
            f"guarded calls: {self.tally.calls}; orders on the venue: {len(orders)} "
            f"{dict(sorted(kinds.items()))}; {dict(sorted(statuses.items()))}",
            f"fault rules: {len(self.plan['rules'])}; fired: {sum(self.fired)} times",
            f"retries: {sum(self.tally.retries.values())} "
            f"{dict(sorted(self.tally.retries.items()))}",
            f"kill switch engaged: {sum(self.tally.engaged.values())} "
            f"{dict(sorted(self.tally.engaged.items()))}; resumed {self.tally.resumes}",
            f"liquidations: {len(self.account.venue.liquidations())}; final equity "
            f"{self.account.equity():,.2f} USDT (from {WALLET:,.2f})",
            "refused or failed calls: " + ", ".join(f"{k} {v}" for k, v in errors.most_common(12)),
        ]
        for inv in invariants:
            lines.append(f"[{'PASS' if inv.ok else 'FAIL'}] {inv.name}: {inv.detail}")
        return "\n".join(lines)

    def close(self) -> None:
        self.exchange.runtime.core.journal.close()
        self.account.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--seed", type=int, default=1, help="seed of market, faults and trader")
    parser.add_argument("--durable", action="store_true", help="fsync the journal as live bots do")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.hours) and args.hours > 0):
        parser.error("--hours must be a positive number")
    soak = Soak(args.hours, args.seed, durable=args.durable)
    try:
        soak.run()
        invariants = soak.check()
        print(soak.summary(invariants))
    finally:
        soak.close()
    return 0 if all(inv.ok for inv in invariants) else 1


if __name__ == "__main__":
    sys.exit(main())
