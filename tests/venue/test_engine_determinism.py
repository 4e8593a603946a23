"""The engine's results, to the bit, pinned: a seeded run's every answer, reject, event and
ledger row must come out exactly as recorded.

This guards refactors and speed work on the engine, whose contract is "same inputs, same
money": matching, fills, fees, margin, funding and liquidation must not move by one unit.
Three seeded workloads are traced (the matching benchmark's own rounds, a random mix of every
order type, bad arguments, modes and market moves, and the three liquidation paths) and each
trace is compared, chunk by chunk, with the digests in ``engine_trace.sha256``.

When a change is *meant* to alter results, re-record with
``PYTHONPATH=. python -m tests.venue.test_engine_determinism --record`` and say why in the
commit. To see what differs, ``--dump DIR`` writes the traces as text on both commits; diff
them. Float results are compared by ``repr`` (every bit): the digests are tied to the platform
they were recorded on (its libm), named in the file's first line; elsewhere the test skips.
"""

from __future__ import annotations

import hashlib
import json
import platform
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from safeguard._clock import ManualClock
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._config import Spike
from safeguard.venue._errors import VenueReject
from safeguard.venue._markets import MarketSpec
from tests.venue.test_engine_risk import quiet

GOLDEN = Path(__file__).with_name("engine_trace.sha256")
CHUNK = 250
"""Trace lines per digest: a mismatch names the first chunk (of calls) that differs."""
T0 = 1_700_000_000.0
PLATFORM = f"{sys.platform}-{platform.machine()}-py{sys.version_info[0]}.{sys.version_info[1]}"


class Tracer:
    """Calls the venue and writes each answer (or reject) as one canonical line."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.lines: list[str] = []

    def __call__(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            answer = getattr(self.venue, method)(*args, **kwargs)
        except VenueReject as reject:
            self.lines.append(f"{method} reject {reject.code} {reject}")
            return None
        self.lines.append(f"{method} {_canonical(answer)}")
        return answer

    def ledger(self) -> list[str]:
        """Everything the run left behind: events, income rows, wallets, positions, orders."""
        venue = self.venue
        lines = [f"event {event!r}" for event in venue.events]
        lines.append(f"insurance {venue.insurance_fund!r}")
        for key in sorted(venue._accounts):  # the engine's own record of who exists
            lines.append(f"wallet {key} {venue.wallet_units(key)}")
            lines.extend(f"income {key} {row!r}" for row in venue._accounts[key].income)
            lines.append(f"positions {key} {_canonical(venue.position_risk(key))}")
            lines.append(f"open {key} {_canonical(venue.open_orders(key))}")
        lines.append(f"report {_canonical(venue.liquidation_report())}")
        return self.lines + lines


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


# --- the workloads ----------------------------------------------------------------------------


def benchmark_rounds() -> list[str]:
    """The matching benchmark's rounds (resting limit, market order, cancel) and its
    account-versus-account rounds, answers included."""
    venue = Venue(VenueConfig(seed=1), clock=ManualClock(T0))
    call = Tracer(venue)
    venue.create_account("bench", "secret", wallet=10_000_000.0)
    for key in ("maker", "taker"):
        venue.create_account(key, "secret", wallet=10_000_000.0)
    mark = venue.mark_price("BTCUSDT")
    bid, ask = round(mark * 0.99, 1), round(mark * 1.01, 1)
    for i in range(1_200):
        side, away = ("BUY", bid) if i % 2 == 0 else ("SELL", ask)
        resting = call(
            "place_order",
            "bench",
            symbol="BTCUSDT",
            side=side,
            type="LIMIT",
            quantity=0.01,
            price=away,
            time_in_force="GTC",
        )
        call("place_order", "bench", symbol="BTCUSDT", side=side, type="MARKET", quantity=0.002)
        call("cancel_order", "bench", symbol="BTCUSDT", order_id=resting["orderId"])
        if i % 200 == 199:
            venue.advance(venue.config.step_s)
            mark = venue.mark_price("BTCUSDT")
            bid, ask = round(mark * 0.99, 1), round(mark * 1.01, 1)
        if i % 3 == 0:
            touch = venue.book_ticker("BTCUSDT")[0]
            quote = touch["askPrice"] if i % 2 else touch["bidPrice"]
            maker_side, taker_side = ("SELL", "BUY") if i % 2 else ("BUY", "SELL")
            call(
                "place_order",
                "maker",
                symbol="BTCUSDT",
                side=maker_side,
                type="LIMIT",
                quantity=0.002,
                price=quote,
                time_in_force="GTC",
            )
            call("place_order", "taker", symbol="BTCUSDT", side=taker_side, type="MARKET",
                 quantity=0.003)  # fmt: skip
    return call.ledger()


def random_mix(seed: int) -> list[str]:
    """Every order type and time in force, reduce-only and closePosition, hedge mode,
    isolated margin and leverage changes, bad arguments, cancels and modifies, spikes,
    funding and liquidations, chosen by a seeded generator."""
    rng = random.Random(seed)
    spikes = (Spike(symbol="BTCUSDT", at_s=900.0, pct=-8.0, duration_s=120.0),
              Spike(symbol="ETHUSDT", at_s=2_400.0, pct=9.0, duration_s=300.0))  # fmt: skip
    venue = Venue(
        VenueConfig(seed=seed, spikes=spikes, funding_interval_s=600.0),
        clock=ManualClock(T0),
    )
    call = Tracer(venue)
    keys = ("alice", "bob", "carol", "dave")
    for key in keys:
        venue.create_account(key, "s-" + key, wallet=rng.choice((2_000.0, 50_000.0, 400_000.0)))
    call("set_position_mode", "carol", dual_side=True)
    call("set_margin_type", "bob", symbol="BTCUSDT", margin_type="ISOLATED")
    call("set_leverage", "dave", symbol="BTCUSDT", leverage=75)
    call("set_leverage", "alice", symbol="ETHUSDT", leverage=50)
    # Held into the spikes, so each mix liquidates someone along the way.
    call("place_order", "dave", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=1.0)
    call("place_order", "alice", symbol="ETHUSDT", side="SELL", type="MARKET", quantity=10.0)
    placed: list[tuple[str, str, int]] = []
    types = ("MARKET", "LIMIT", "STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")
    for _ in range(1_500):
        key = rng.choice(keys)
        symbol = rng.choice(("BTCUSDT",) * 12 + ("ETHUSDT",) * 6 + ("SOLUSDT",) * 3 + ("NOPE",))
        action = rng.random()
        if action < 0.55:
            spec = venue.markets.get(symbol, venue.markets["BTCUSDT"])
            mark = venue.mark_price(spec.symbol)
            kind = rng.choice(types)
            side = rng.choice(("BUY", "SELL") * 12 + ("HOLD",))
            fields: dict[str, Any] = {
                "symbol": symbol,
                "side": side,
                "type": kind,
                "quantity": round(rng.choice((0.5, 2.0, 20.0, 200.0)) * 1_000 / mark, 3)
                if spec.symbol == "BTCUSDT"
                else round(rng.choice((0.5, 2.0, 20.0, 200.0)) * 1_000 / mark, 2),
            }
            offset = rng.uniform(-0.03, 0.03)
            if kind in ("LIMIT", "STOP", "TAKE_PROFIT"):
                fields["price"] = ticks(spec, mark * (1 + offset))
                fields["time_in_force"] = rng.choice(("GTC", "GTC", "IOC", "FOK", "GTX"))
            if kind not in ("MARKET", "LIMIT"):
                fields["stop_price"] = ticks(spec, mark * (1 - offset))
                fields["working_type"] = rng.choice(("CONTRACT_PRICE", "MARK_PRICE"))
                if kind.endswith("_MARKET") and rng.random() < 0.2:
                    fields["quantity"] = None
                    fields["close_position"] = True
            if rng.random() < 0.15:
                fields["reduce_only"] = True
            if key == "carol":
                fields["position_side"] = rng.choice(("LONG", "SHORT"))
            if rng.random() < 0.05:
                fields["quantity"] = rng.choice(("abc", -1, 1e-9, float("nan")))
            answer = call("place_order", key, **fields)
            if answer is not None:
                placed.append((key, answer["symbol"], answer["orderId"]))
        elif action < 0.7 and placed:
            key, symbol, order_id = placed.pop(rng.randrange(len(placed)))
            call("cancel_order", key, symbol=symbol, order_id=order_id)
        elif action < 0.75 and placed:
            key, symbol, order_id = rng.choice(placed)
            mark = venue.mark_price(symbol)
            spec = venue.markets[symbol]
            call(
                "modify_order",
                key,
                symbol=symbol,
                order_id=order_id,
                side=rng.choice(("BUY", "SELL")),
                quantity=round(20_000 / mark, spec.quantity_precision),
                price=ticks(spec, mark * rng.uniform(0.98, 1.02)),
            )
        elif action < 0.78:
            call("set_leverage", key, symbol="BTCUSDT", leverage=rng.choice((1, 10, 20, 125, 0)))
        elif action < 0.8:
            call("cancel_all", key, symbol=rng.choice(("BTCUSDT", "ETHUSDT")))
        else:
            venue.advance(rng.choice((1.0, 5.0, 30.0, 120.0)))
            call("position_risk", key)
    return call.ledger()


def ticks(spec: MarketSpec, price: float) -> float:
    """``price`` on the symbol's tick grid (mostly; a few off-grid prices are rejects too)."""
    return round(round(price / spec.tick_size) * spec.tick_size, spec.price_precision)


def liquidation_paths() -> list[str]:
    """A large position cut in partial steps, an isolated one whose steps end in a take-over,
    and a bankrupt one that auto-deleverages the top-ranked opposite position."""
    lines: list[str] = []

    venue = Venue(quiet(), clock=ManualClock(T0))
    call = Tracer(venue)
    venue.create_account("big", "s-big", wallet=80_000.0)
    call("set_leverage", "big", symbol="BTCUSDT", leverage=50)
    call("place_order", "big", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    venue.spike("BTCUSDT", -1.6, 600)
    venue.advance(5)
    lines += call.ledger()

    venue = Venue(quiet(), clock=ManualClock(T0))
    call = Tracer(venue)
    venue.create_account("iso", "s-iso", wallet=200_000.0)
    call("set_margin_type", "iso", symbol="BTCUSDT", margin_type="ISOLATED")
    call("set_leverage", "iso", symbol="BTCUSDT", leverage=50)
    call("place_order", "iso", symbol="BTCUSDT", side="BUY", type="MARKET", quantity=40.0)
    venue.spike("BTCUSDT", -1.6, 600)
    venue.advance(5)
    lines += call.ledger()

    venue = Venue(quiet(insurance_fund=0.0), clock=ManualClock(T0))
    call = Tracer(venue)
    for key, wallet, leverage, side, qty in (
        ("bold", 50_000.0, 50, "SELL", 0.4),
        ("calm", 50_000.0, 5, "SELL", 2.0),
        ("victim", 1_000.0, 100, "BUY", 1.0),
    ):
        venue.create_account(key, "s-" + key, wallet=wallet)
        call("set_leverage", key, symbol="BTCUSDT", leverage=leverage)
        call("place_order", key, symbol="BTCUSDT", side=side, type="MARKET", quantity=qty)
    venue.spike("BTCUSDT", -5.0, 600)
    venue.advance(5)
    lines += call.ledger()
    return lines


WORKLOADS: dict[str, Callable[[], list[str]]] = {
    "benchmark": benchmark_rounds,
    "random-1": lambda: random_mix(1),
    "random-2": lambda: random_mix(2),
    "liquidation": liquidation_paths,
}


# --- digests ----------------------------------------------------------------------------------


def digests(name: str, lines: list[str]) -> Iterator[str]:
    for start in range(0, len(lines), CHUNK):
        chunk = "\n".join(lines[start : start + CHUNK]).encode()
        yield f"{name} {start} {hashlib.sha256(chunk).hexdigest()}"
    yield f"{name} lines {len(lines)}"


def recorded() -> tuple[str, list[str]]:
    first, *rows = GOLDEN.read_text().splitlines()
    return first.removeprefix("platform "), rows


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_a_seeded_run_gives_the_recorded_results_to_the_bit(name: str) -> None:
    where, rows = recorded()
    if where != PLATFORM:
        pytest.skip(f"digests recorded on {where}, this is {PLATFORM} (float bits follow libm)")
    lines = WORKLOADS[name]()
    expected = [row for row in rows if row.split(" ", 1)[0] == name]
    assert expected, f"no digests recorded for {name}"
    actual = list(digests(name, lines))
    for want, got in zip(expected, actual, strict=False):
        assert got == want, (
            f"{name}: trace lines from {got.split()[1]} differ from the recorded run "
            "(see the module docstring for --dump)"
        )
    assert actual == expected


def test_the_trace_covers_every_liquidation_kind_and_both_fill_roles() -> None:
    # What the digests pin must include the paths they are meant to pin.
    text = "\n".join(liquidation_paths() + random_mix(1))
    for needle in ("kind='PARTIAL'", "kind='TAKEOVER'", "kind='ADL'", "AutoDeleveraged("):
        assert needle in text
    bench = "\n".join(benchmark_rounds())
    assert "maker=True" in bench
    assert "maker=False" in bench
    assert "place_order reject" in text


def main(argv: list[str]) -> None:
    if argv[:1] == ["--record"]:
        rows = [f"platform {PLATFORM}"]
        for name in sorted(WORKLOADS):
            rows += digests(name, WORKLOADS[name]())
        GOLDEN.write_text("\n".join(rows) + "\n")
        print(f"recorded {len(rows) - 1} digests in {GOLDEN}")
    elif argv[:1] == ["--dump"] and len(argv) == 2:
        out = Path(argv[1])
        out.mkdir(parents=True, exist_ok=True)
        for name, workload in WORKLOADS.items():
            (out / f"{name}.txt").write_text("\n".join(workload()) + "\n")
        print(f"traces written to {out}")
    else:
        raise SystemExit(
            "usage: python -m tests.venue.test_engine_determinism --record | --dump DIR"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
