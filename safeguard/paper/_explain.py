"""A paper journal in sentences: every decision with the numbers behind it.

:func:`explain` turns records into lines such as::

    guarded 07:12:00  order 42 denied STOP_BEYOND_LIQUIDATION: stop fill 57,850 is 0.3 %
                      beyond liquidation 57,680 (...); policy needs 1 %
    naive   03:02:00  order 12 (sell 0.337 BTC/USDT:USDT market) reached the venue 4 times:
                      3 duplicates

Routine records (each request, each bar, each fill) are left out: they are what the plots
show. Times are simulated time since the run started.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

_DECISIONS = (
    "order",
    "retry",
    "ban",
    "state",
    "verdict",
    "kill",
    "liquidation",
    "deleveraged",
    "cascade",
    "warning",
    "stop_triggered",
    "rules_changed",
    "bar_error",
)

_TOLD_BY_ORDER = frozenset({"OrderDenied", "TradingHalted", "ThrottleHold", "VenueBanned"})
"""A bar that stopped on one of these already has its order record's line."""


def explain(records: Iterable[Mapping[str, Any]], *, run: str | None = None) -> Iterator[str]:
    """One line per decision, in journal order (``run`` keeps one run's lines only).

    A run of identical refusals in a row (the same failure bar after bar, a halted bot asking
    again each bar) is told once, with how many more followed and until when.
    """
    starts: dict[str, float] = {}
    held: _Repeat | None = None
    for record in records:
        which = str(record.get("run"))
        if record.get("kind") == "start":
            starts[which] = float(record["t"])
        if run is not None and which != run:
            continue
        if record.get("kind") not in _DECISIONS:
            continue
        sentence = _sentence(record)
        if sentence is None:
            continue
        elapsed = float(record["t"]) - starts.get(which, float(record["t"]))
        key = _repeat_key(record)
        if held is not None and key is not None and held.key == key:
            held.more += 1
            held.until = elapsed
            continue
        if held is not None:
            yield from held.lines()
        held = _Repeat(key, f"{which:<7} {_clock(elapsed)}  {sentence}", which)
    if held is not None:
        yield from held.lines()


class _Repeat:
    """A line and the identical ones that followed it."""

    def __init__(self, key: tuple[Any, ...] | None, line: str, run: str) -> None:
        self.key = key
        self.line = line
        self.run = run
        self.more = 0
        self.until = 0.0

    def lines(self) -> Iterator[str]:
        yield self.line
        if self.more:
            yield f"{self.run:<7} {_clock(self.until)}  ... and {self.more} more like it"


def _repeat_key(r: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What makes two records the same refusal; ``None`` for records always told alone."""
    if r["kind"] == "bar_error":
        return (r["run"], "bar_error", r["error_type"], r["message"])
    if r["kind"] == "order" and r["outcome"] == "failed":
        return (r["run"], "failed", r.get("code"), r.get("reason"))
    return None


def _clock(seconds: float) -> str:
    whole = max(int(seconds), 0)
    hours, rest = divmod(whole, 3600)
    return f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"


def _sentence(r: Mapping[str, Any]) -> str | None:
    kind = r["kind"]
    if kind == "order":
        return _order(r)
    if kind == "retry":
        if r.get("resolve_first"):
            return (
                f"{r['method']} attempt {r['attempt']} lost its answer ({r['error_type']}): "
                "looked the order up by client id before any resend"
            )
        if r["method"].startswith("create_order"):
            return (
                f"{r['method']} attempt {r['attempt']} failed ({r['error_type']}); "
                f"sent again after {float(r['delay_s']):g} s without looking it up"
            )
        return None
    if kind == "ban":
        return f"venue banned the IP for {float(r['seconds']):.0f} s (HTTP 418)"
    if kind == "state":
        if r.get("metric") == "none":
            return f"venue health {r['previous']} -> {r['current']}: every metric back in range"
        return (
            f"venue health {r['previous']} -> {r['current']}: {r['metric']} "
            f"{_num(r.get('value'))} against a threshold of {_num(r.get('threshold'))}"
        )
    if kind == "verdict":
        if r.get("allowed") or r.get("client_order_id"):
            return None  # order verdicts are told by their order record
        return f"open position re-checked, {r['code']}: {r.get('detail')}"
    if kind == "kill":
        return f"kill switch {r['state']} ({r['code']}): {r['reason']}"
    if kind == "liquidation":
        told = (
            f"LIQUIDATED: {r['side']} {_num(r['qty'])} {r['symbol']} at mark {_num(r['price'])}, "
            f"equity before {_num(r['equity_before'])}, lost {_num(r['loss'])}"
        )
        if r.get("step") == "PARTIAL":
            told = told.replace("LIQUIDATED:", "PARTLY LIQUIDATED:", 1)
            told += f", {_num(r.get('left'))} left open"
        if r.get("close_price"):
            bankrupt = _num(r.get("bankruptcy_price"))
            told += f"; closed at {_num(r['close_price'])} (bankruptcy {bankrupt})"
            told += f", fee {_num(r.get('fee'))}"
        if r.get("step") == "ADL":
            told += "; the insurance fund could not cover it: auto-deleveraged"
        return told
    if kind == "warning":
        told = f"EARLY WARNING ({r['severity']}) {r['name']}: {r['message']}"
        if r.get("escalate"):
            told += f"; escalated to {r['escalate']}"
        return told
    if kind == "cascade":
        waves = r.get("waves") or []
        return (
            f"CASCADE on {r['symbol']}: {_num(r['orders'])} liquidation orders of "
            f"{_num(r['accounts'])} accounts in {len(waves)} waves "
            f"({', '.join(str(w) for w in waves)}), over {_num(r['t'] - r['start'])} s; "
            f"mark {_num(r['mark_at_start'])} at the start, {_num(r['lowest_mark'])} at its "
            f"lowest, {_num(r['highest_mark'])} at its highest"
        )
    if kind == "deleveraged":
        return (
            f"AUTO-DELEVERAGED: {r['side']} {_num(r['qty'])} {r['symbol']} closed at "
            f"{_num(r['price'])} (mark {_num(r['mark'])}), realised {_num(r['realized_pnl'])}, "
            f"{_num(r['left'])} left open"
        )
    if kind == "stop_triggered":
        return f"stop on {r['symbol']} triggered at {_num(r['trigger'])}"
    if kind == "rules_changed":
        return f"market rules of {r['symbol']} changed ({r['metric']}): open stops re-priced"
    if kind == "bar_error":
        if r["error_type"] in _TOLD_BY_ORDER:
            return None
        return f"strategy's bar stopped on {r['error_type']}: {r['message']}"
    return None


def _order(r: Mapping[str, Any]) -> str | None:
    what = f"{r['side']} {_num(r['amount'])} {r['symbol']} {r['type']}"
    if r.get("stop") is not None:
        what += f", stop {_num(r['stop'])}"
    head = f"order {r['n']} ({what})"
    if r["outcome"] == "denied":
        reasons = [f"{f['code']}: {f['message']}" for f in r.get("findings") or ()
                   if f.get("severity") == "DENY"]  # fmt: skip
        detail = "; ".join(reasons) or f"{r['code']}: {r.get('reason')}"
        return f"{head} denied {detail}"
    if r["outcome"] == "failed":
        return f"{head} failed {_coded(str(r['code']), r.get('reason'))}"
    copies = int(r["copies"])
    if copies > 1:
        return f"{head} reached the venue {copies} times: {copies - 1} duplicate(s)"
    return None


def _coded(code: str, reason: Any) -> str:
    """``CODE: reason``, with the code once: an error's message often starts with it."""
    text = str(reason)
    return text if text.startswith(f"{code}: ") else f"{code}: {text}"


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.1f}"
    return f"{value:.4g}"


__all__ = ["explain"]
