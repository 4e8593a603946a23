"""The paper run's report: matplotlib plots (PNG) and one HTML page (a Jinja template) that
shows them next to the tables a trader reads.

Everything is drawn from the journal: equity of both runs, with the drawdown from the peak the
kill-switch trigger measured and the trading state as a band; each symbol's mark with the
strategy's fills, its stops and both runs' liquidation prices; how far each position was from
liquidation; the guard's refusals by code over time; the guarded run's venue health; a timeline
of the events that mattered; the policy in full; every fill, the round-trip trades and the
costs (fees, funding, liquidation losses). ``write_report`` writes ``index.html``,
``summary.json`` and the PNGs into the report folder (the journal is already there).

What the page shows is :class:`ReportData` (built by :func:`report_data`), a plain data model
the template renders: a new table is a field there and a block in ``templates/report.html.j2``;
a new timeline lane is an entry in :data:`_LANES`.

The plots and the page are the optional ``safeguard[report]`` extra (matplotlib, jinja2):
without it ``write_report`` writes ``summary.json`` only and :data:`REPORT_MISSING` says how
to get the rest.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # plotting and the page are the optional ``safeguard[report]`` extra
    import jinja2
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
except ImportError:
    plt = None  # type: ignore[assignment]
    jinja2 = None  # type: ignore[assignment]

from safeguard.paper._explain import explain
from safeguard.paper._summary import RunSummary

REPORTING = plt is not None and jinja2 is not None
"""Whether the ``safeguard[report]`` extra (matplotlib, jinja2) is installed: without it no
page and no plots are written, only ``summary.json`` next to the journal."""

REPORT_MISSING = (
    "report page and plots not written: they need the report extra; "
    "pip install 'safeguard[report]' (or -e '.[report]' in a checkout) and run again"
)
"""What ``safeguard paper`` says when the report extra is not installed."""

_COLOURS = {"guarded": "#1b7f3b", "naive": "#c0392b"}
_STOP_COLOURS = {"guarded": "#0b5394", "naive": "#e69138"}
"""Stops get their own hues (blue, orange), far from the runs' green and red and from each
other, so two stop lines never blur into one."""
_HEALTH = {"NORMAL": 0, "DEGRADED": 1, "SEVERE": 2}
_TRADING_COLOURS = {"REDUCING": "#f1c232", "HALTED": "#cc0000"}
"""The kill switch's band: nothing while ACTIVE."""
_EXPLAINED_LINES = 400
_HOUR_S = 3600.0


def write_report(
    out: Path,
    records: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, RunSummary],
    *,
    journal_name: str = "journal.jsonl",
) -> Path | None:
    """Write the report into ``out``; returns the HTML page's path (``None`` without the
    report extra: then only ``summary.json`` is written)."""
    out.mkdir(parents=True, exist_ok=True)
    data = report_data(records, summaries, journal_name=journal_name)
    _atomic_text(out / "summary.json", json.dumps(data.document, indent=2, sort_keys=True) + "\n")
    if plt is None or jinja2 is None:
        return None
    for name, draw in _PLOTS:
        figure = draw(records, data.start)
        try:
            _atomic_png(out / name, figure)
        finally:
            plt.close(figure)
        data.pictures.append(name)
    _atomic_text(out / "index.html", render_page(data))
    return out / "index.html"


# --- the data the page shows ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillRow:
    run: str
    at_h: float
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    realized_pnl: float


@dataclass(frozen=True, slots=True)
class TradeRow:
    """One round trip: a position opened from flat until it is flat again (or the run ends)."""

    run: str
    symbol: str
    side: str
    opened_h: float
    closed_h: float | None
    """``None``: still open when the run ended."""
    qty: float
    entry: float
    exit: float | None
    pnl: float
    fees: float
    fills: int


@dataclass(frozen=True, slots=True)
class Costs:
    """Where one run's money went besides the market: what a trader reconciles."""

    run: str
    realized_pnl: float
    fees: float
    funding_paid: float
    funding_received: float
    liquidation_loss: float
    fills: int
    funding_payments: int

    @property
    def net(self) -> float:
        return (
            self.realized_pnl
            - self.fees
            - self.funding_paid
            + self.funding_received
            - self.liquidation_loss
        )


@dataclass(frozen=True, slots=True)
class ReportSection:
    """A table the page shows under its own heading: hooks add their own to
    :attr:`ReportData.sections` (header row, body rows, an optional note)."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


@dataclass(frozen=True, slots=True)
class TimelineMark:
    """One dot on the timeline: its lane (:data:`_LANES`), run, hour and what it was."""

    lane: str
    run: str
    at_h: float
    what: str


@dataclass(frozen=True, slots=True)
class CascadeRow:
    """A venue-side liquidation cascade (the journal's ``cascade`` record): every account's
    forced orders close together in time, in waves of orders sharing one instant. Each run
    has its own venue, so each run's journal tells its own."""

    run: str
    symbol: str
    start_h: float
    end_h: float
    waves: tuple[int, ...]
    accounts: int
    orders: int
    mark_at_start: float
    lowest_mark: float
    insurance_change: float


@dataclass(slots=True)
class ReportData:
    """Everything the page shows, from the journal and the summaries."""

    start: float
    first: Mapping[str, Any]
    runs: tuple[str, ...]
    summary: list[tuple[str, list[str]]]
    faults: list[tuple[str, float, float]]
    policy: list[tuple[str, str]]
    """The guarded run's policy in full, as (dotted key, value)."""
    fills: list[FillRow]
    trades: list[TradeRow]
    costs: list[Costs]
    peaks: list[tuple[float, float, str]]
    """(hour, equity peak, what the trigger did) for each kill-switch trip of the guarded run."""
    explained: list[str]
    more_explained: int
    journal_name: str
    document: dict[str, Any]
    """``summary.json``."""
    timeline: list[TimelineMark] = field(default_factory=list)
    """The timeline plot's dots, lane by lane."""
    cascades: list[CascadeRow] = field(default_factory=list)
    """The venue's liquidation cascades (none when the journal has none)."""
    sections: list[ReportSection] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)

    @property
    def hours(self) -> float:
        return float(self.first["duration_s"]) / _HOUR_S


def report_data(
    records: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, RunSummary],
    *,
    journal_name: str = "journal.jsonl",
) -> ReportData:
    """The page's data model from the journal ``records``."""
    first = next(r for r in records if r["kind"] == "start")
    start = min(float(r["t"]) for r in records if r["kind"] == "start")
    guarded_start = next(
        (r for r in records if r["kind"] == "start" and r["run"] == "guarded"), first
    )
    lines = list(explain(records))
    shown = lines[:_EXPLAINED_LINES]
    fills = [
        FillRow(
            run=str(r["run"]),
            at_h=_hours(r["t"], start),
            symbol=str(r["symbol"]),
            side=str(r["side"]),
            qty=float(r["qty"]),
            price=float(r["price"]),
            fee=float(r.get("fee") or 0.0),
            realized_pnl=float(r.get("realized_pnl") or 0.0),
        )
        for r in records
        if r["kind"] == "fill"
    ]
    document = {
        "seed": first["seed"],
        "duration_s": first["duration_s"],
        "symbols": first["symbols"],
        "transport": first["transport"],
        "runs": {run: summary.to_dict() for run, summary in summaries.items()},
    }
    return ReportData(
        start=start,
        first=first,
        runs=tuple(summaries),
        summary=summary_rows(summaries),
        faults=sorted(set(_fault_windows([first])), key=lambda w: w[1]),
        policy=list(_flatten(guarded_start.get("policy") or {})),
        fills=fills,
        trades=[trade for run in summaries for trade in _trades(fills, run)],
        costs=[_costs(records, fills, run) for run in summaries],
        peaks=[
            (_hours(r["t"], start), float(r["peak"]), str(r["trading"]))
            for r, before in _kill_bars(records)
            if r.get("peak") is not None and r.get("trading") != before
        ],
        explained=shown,
        more_explained=len(lines) - len(shown),
        journal_name=journal_name,
        document=document,
        timeline=timeline_marks(records, start),
        cascades=cascade_rows(records, start),
    )


def timeline_marks(records: Sequence[Mapping[str, Any]], start: float) -> list[TimelineMark]:
    """Every record that lands in a timeline lane, lane by lane in journal order."""
    return [
        TimelineMark(lane, str(r["run"]), _hours(r["t"], start), _what(r))
        for lane, wanted in _LANES
        for r in records
        if r["run"] in _COLOURS and wanted(r)
    ]


def _what(record: Mapping[str, Any]) -> str:
    if record["kind"] == "warning":
        return f"{record['name']} ({record['severity']})"
    return str(record.get("code") or record["kind"])


def cascade_rows(records: Sequence[Mapping[str, Any]], start: float) -> list[CascadeRow]:
    """The journal's cascades, in journal order."""
    return [
        CascadeRow(
            run=str(r["run"]),
            symbol=str(r["symbol"]),
            start_h=_hours(r["start"], start),
            end_h=_hours(r["t"], start),
            waves=tuple(int(w) for w in r["waves"]),
            accounts=int(r["accounts"]),
            orders=int(r["orders"]),
            mark_at_start=float(r["mark_at_start"]),
            lowest_mark=float(r["lowest_mark"]),
            insurance_change=float(r["insurance_change"]),
        )
        for r in records
        if r["kind"] == "cascade"
    ]


def _kill_bars(
    records: Sequence[Mapping[str, Any]],
) -> Iterator[tuple[Mapping[str, Any], str | None]]:
    """Each guarded bar with the trading state of the bar before it."""
    before: str | None = "ACTIVE"
    for r in _of(records, "guarded", "bar"):
        yield r, before
        before = r.get("trading", before)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, Mapping) and value:
        for key in value:
            yield from _flatten(value[key], f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, json.dumps(value) if not isinstance(value, str) else value


def _trades(fills: Sequence[FillRow], run: str) -> Iterator[TradeRow]:
    """Round trips from the fills: a trade opens when a symbol's position leaves zero and
    closes when it is back at zero (a fill that flips the position closes one and opens the
    next with the rest)."""
    open_: dict[str, dict[str, Any]] = {}
    for fill in (f for f in fills if f.run == run):
        signed = fill.qty if fill.side == "buy" else -fill.qty
        trade = open_.get(fill.symbol)
        if trade is None:
            open_[fill.symbol] = _opened(fill, signed)
            continue
        held = trade["position"]
        trade["fees"] += fill.fee
        trade["pnl"] += fill.realized_pnl
        trade["fills"] += 1
        if held * signed > 0:  # adds to the position
            trade["cost"] += abs(signed) * fill.price
            trade["qty"] += abs(signed)
            trade["position"] = held + signed
            continue
        closing = min(abs(signed), abs(held))
        trade["exit_value"] += closing * fill.price
        trade["closed"] += closing
        trade["position"] = held + signed
        if abs(trade["position"]) < 1e-12 or held * trade["position"] < 0:
            yield _closed(trade, run, fill.symbol, fill.at_h)
            del open_[fill.symbol]
            rest = abs(signed) - closing
            if rest > 1e-12:
                flipped = FillRow(run, fill.at_h, fill.symbol, fill.side, rest, fill.price,
                                  0.0, 0.0)  # fmt: skip
                open_[fill.symbol] = _opened(flipped, math.copysign(rest, signed))
    for symbol, trade in open_.items():
        yield _closed(trade, run, symbol, None)


def _opened(fill: FillRow, signed: float) -> dict[str, Any]:
    return {
        "side": "long" if signed > 0 else "short",
        "opened": fill.at_h,
        "position": signed,
        "qty": abs(signed),
        "cost": abs(signed) * fill.price,
        "exit_value": 0.0,
        "closed": 0.0,
        "pnl": fill.realized_pnl,
        "fees": fill.fee,
        "fills": 1,
    }


def _closed(trade: Mapping[str, Any], run: str, symbol: str, at_h: float | None) -> TradeRow:
    return TradeRow(
        run=run,
        symbol=symbol,
        side=str(trade["side"]),
        opened_h=float(trade["opened"]),
        closed_h=at_h,
        qty=float(trade["qty"]),
        entry=float(trade["cost"]) / float(trade["qty"]),
        exit=float(trade["exit_value"]) / trade["closed"] if trade["closed"] else None,
        pnl=float(trade["pnl"]),
        fees=float(trade["fees"]),
        fills=int(trade["fills"]),
    )


def _costs(records: Sequence[Mapping[str, Any]], fills: Sequence[FillRow], run: str) -> Costs:
    mine = [f for f in fills if f.run == run]
    funding = [float(r["amount"]) for r in _of(records, run, "funding")]
    return Costs(
        run=run,
        realized_pnl=sum(f.realized_pnl for f in mine),
        fees=sum(f.fee for f in mine),
        funding_paid=-sum(a for a in funding if a < 0),
        funding_received=sum(a for a in funding if a > 0),
        liquidation_loss=sum(float(r["loss"]) for r in _of(records, run, "liquidation")),
        fills=len(mine),
        funding_payments=len(funding),
    )


# --- files ----------------------------------------------------------------------------------


def _atomic_text(path: Path, text: str) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _atomic_png(path: Path, figure: Figure) -> None:
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(handle)
    try:
        figure.savefig(name, dpi=100, format="png")
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


def _hours(t: float, start: float) -> float:
    return (float(t) - start) / _HOUR_S


def _of(records: Sequence[Mapping[str, Any]], run: str, kind: str) -> list[Mapping[str, Any]]:
    return [r for r in records if r["run"] == run and r["kind"] == kind]


# --- the plots ------------------------------------------------------------------------------

_FAULT_COLOURS = {
    "latency": "#f39c12",
    "timeout_after_accept": "#f39c12",
    "error": "#f39c12",
    "drop": "#f39c12",
    "ban": "#8e44ad",
    "throttle": "#8e44ad",
    "freeze_feed": "#2980b9",
    "set_tiers": "#16a085",
    "spike": "#7f8c8d",
}


def _fault_windows(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, float, float]]:
    """(kind, start hour, end hour) of every rule in the run's fault plan; one-off market
    events get a zero-length window. Plan times count from the run's start."""
    first = next(r for r in records if r["kind"] == "start")
    end_h = float(first["duration_s"]) / _HOUR_S
    windows: list[tuple[str, float, float]] = []
    frozen: dict[str, float] = {}
    for rule in first["faults"].get("rules", []):
        kind = str(rule["kind"])
        if kind == "freeze_feed":
            at = float(rule["at_s"]) / _HOUR_S
            if rule.get("mode") == "off":
                windows.append((kind, frozen.pop(rule["symbol"], at), at))
            else:
                frozen[rule["symbol"]] = at
        elif "at_s" in rule:
            windows.append((kind, float(rule["at_s"]) / _HOUR_S, float(rule["at_s"]) / _HOUR_S))
        else:
            stop = rule.get("end_s")
            start_h = float(rule.get("start_s") or 0.0) / _HOUR_S
            windows.append((kind, start_h, end_h if stop is None else float(stop) / _HOUR_S))
    windows += [("freeze_feed", at, end_h) for at in frozen.values()]
    return windows


def _shade_faults(axes: Any, records: Sequence[Mapping[str, Any]]) -> None:
    """The fault plan behind the curves: windows shaded, one-off events as thin lines."""
    labelled: set[str] = set()
    for kind, start_h, end_h in _fault_windows(records):
        colour = _FAULT_COLOURS.get(kind, "#95a5a6")
        label = None if kind in labelled else f"fault: {kind}"
        labelled.add(kind)
        if end_h > start_h:
            axes.axvspan(start_h, end_h, color=colour, alpha=0.12, label=label, linewidth=0)
        else:
            axes.axvline(start_h, color=colour, alpha=0.5, linewidth=1.0, label=label)


def _trading_band(axes: Any, records: Sequence[Mapping[str, Any]], start: float) -> None:
    """The guarded run's kill-switch state behind the curves: one band per engaged stretch."""
    labelled: set[str] = set()
    for state, begin, end in trading_stretches(records, start):
        colour = _TRADING_COLOURS.get(state)
        if colour is None:
            continue
        label = None if state in labelled else f"kill switch {state}"
        labelled.add(state)
        axes.axvspan(begin, end, color=colour, alpha=0.25, linewidth=0, label=label)


def trading_stretches(
    records: Sequence[Mapping[str, Any]], start: float
) -> list[tuple[str, float, float]]:
    """(trading state, from hour, until hour) of the guarded run, one per unbroken stretch of
    bars in one state (bars from before the report showed the state count as ACTIVE)."""
    stretches: list[tuple[str, float, float]] = []
    bars = _of(records, "guarded", "bar")
    for index, r in enumerate(bars):
        state = str(r.get("trading", "ACTIVE"))
        until = _hours(bars[index + 1]["t"] if index + 1 < len(bars) else r["t"], start)
        if stretches and stretches[-1][0] == state:
            stretches[-1] = (state, stretches[-1][1], until)
        else:
            stretches.append((state, _hours(r["t"], start), until))
    return stretches


def _legend_outside(axes: Any, *, columns: int = 1) -> None:
    """The legend beside the plot, never over the data."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        axes.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                    ncol=columns, borderaxespad=0.0, frameon=False)  # fmt: skip


_WIDTH_IN = 11.0
_MARGINS_IN = {"left": 0.9, "right": 2.3, "bottom": 0.55, "top": 0.4, "between": 0.75}
"""Every plot's frame in inches, the same on each: their time axes line up on the page, and
the legends get the same column on the right."""


def _frame(figure: Figure, records: Sequence[Mapping[str, Any]]) -> Figure:
    """Place the plot's axes in the shared frame (see :data:`_MARGINS_IN`), over the whole
    run's hours."""
    first = next(r for r in records if r["kind"] == "start")
    for axes in figure.axes:
        axes.set_xlim(0.0, float(first["duration_s"]) / _HOUR_S)
    width, height = figure.get_size_inches()
    rows = max(1, len(figure.axes))
    m = _MARGINS_IN
    figure.subplots_adjust(
        left=m["left"] / width,
        right=1.0 - m["right"] / width,
        bottom=m["bottom"] / height,
        top=1.0 - m["top"] / height,
        hspace=m["between"] * rows / max(height - m["bottom"] - m["top"], 1.0),
    )
    return figure


def _axes(height: float) -> tuple[Figure, Any]:
    figure, axes = plt.subplots(figsize=(_WIDTH_IN, height))
    axes.set_xlabel("hours of simulated market")
    axes.grid(alpha=0.3)
    return figure, axes


def _equity(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = _axes(4)
    for run, colour in _COLOURS.items():
        bars = _of(records, run, "bar")
        if not bars:
            continue
        axes.plot([_hours(r["t"], start) for r in bars], [r["equity"] for r in bars],
                  color=colour, label=run, linewidth=1.4)  # fmt: skip
        for r in _of(records, run, "liquidation"):
            axes.axvline(_hours(r["t"], start), color=colour, linestyle=":", linewidth=1)
    _trading_band(axes, records, start)
    _shade_faults(axes, records)
    axes.set_title("Equity (USDT, mark-to-market)  ·  dotted: liquidation  ·  band: kill switch")
    _legend_outside(axes)
    return _frame(figure, records)


def _drawdown(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    """Drawdown of each run from its running peak, and for the guarded run the peak its
    drawdown trigger measured (the one that decides when trading stops)."""
    figure, (upper, lower) = plt.subplots(2, 1, figsize=(_WIDTH_IN, 6.4), sharex=True)
    for run, colour in _COLOURS.items():
        bars = _of(records, run, "bar")
        if not bars:
            continue
        xs = [_hours(r["t"], start) for r in bars]
        equity = [float(r["equity"]) for r in bars]
        peaks = _running_peak(bars)
        lower.plot(xs, [100.0 * (p - e) / p if p > 0 else 0.0 for e, p in zip(equity, peaks,
                   strict=True)], color=colour, linewidth=1.2, label=f"{run} drawdown")  # fmt: skip
        upper.plot(xs, equity, color=colour, linewidth=1.0, alpha=0.7, label=f"{run} equity")
        upper.plot(xs, peaks, color=colour, linewidth=1.6, linestyle="--",
                   drawstyle="steps-post", label=f"{run} peak")  # fmt: skip
    first = next((r for r in records if r["kind"] == "start" and r["run"] == "guarded"), None)
    limit = _drawdown_limit(first)
    if limit is not None:
        lower.axhline(limit, color="black", linestyle="--", linewidth=1.0,
                      label=f"trigger: {limit:g}% below the peak")  # fmt: skip
    for r, before in _kill_bars(records):
        if r.get("peak") is not None and r.get("trading") != before:
            x = _hours(r["t"], start)
            upper.annotate(f"peak {float(r['peak']):,.0f} → {r['trading']}",
                           (x, float(r["peak"])), xytext=(10, -14), textcoords="offset points",
                           fontsize=8, arrowprops={"arrowstyle": "-", "lw": 0.6})  # fmt: skip
    for axes in (upper, lower):
        _trading_band(axes, records, start)
        axes.grid(alpha=0.3)
        _legend_outside(axes)
    upper.set_title("Equity and the peak each run's drawdown is measured from (guarded: the "
                    "trigger's own)")  # fmt: skip
    lower.set_title("Drawdown (% below the peak)")
    lower.invert_yaxis()
    lower.set_xlabel("hours of simulated market")
    return _frame(figure, records)


def _running_peak(bars: Sequence[Mapping[str, Any]]) -> list[float]:
    """The peak the trigger reported on each bar where there is one (guarded), else the
    running maximum of the bars' equity."""
    peaks: list[float] = []
    highest = -math.inf
    for r in bars:
        highest = max(highest, float(r["equity"]))
        peak = r.get("peak")
        peaks.append(float(peak) if peak is not None else highest)
    return peaks


def _drawdown_limit(first: Mapping[str, Any] | None) -> float | None:
    policy = (first or {}).get("policy") or {}
    value = policy.get("kill_switch", {}).get("triggers", {}).get("max_drawdown_pct")
    return float(value) if value is not None else None


def _price(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    symbols: list[str] = next(r["symbols"] for r in records if r["kind"] == "start")
    figure, grid = plt.subplots(len(symbols), 1, figsize=(_WIDTH_IN, 4 * len(symbols)),
                                squeeze=False)  # fmt: skip
    for row, symbol in enumerate(symbols):
        axes = grid[row][0]
        bars = _of(records, "guarded", "bar") or _of(records, "naive", "bar")
        axes.plot([_hours(r["t"], start) for r in bars], [r["marks"][symbol] for r in bars],
                  color="#34495e", linewidth=1, label="mark")  # fmt: skip
        for run, colour in _COLOURS.items():
            fills = [r for r in _of(records, run, "fill") if r["symbol"] == symbol]
            for side, marker in (("buy", "^"), ("sell", "v")):
                mine = [r for r in fills if r["side"] == side]
                axes.scatter([_hours(r["t"], start) for r in mine], [r["price"] for r in mine],
                             marker=marker, color=colour, s=18, alpha=0.7,
                             label=f"{run} {side}s")  # fmt: skip
            xs, ys = _level(_of(records, run, "bar"), symbol, "stop", start)
            axes.plot(xs, ys, color=_STOP_COLOURS[run], linewidth=1.6, drawstyle="steps-post",
                      label=f"{run} stop")  # fmt: skip
            xs, ys = _level(_of(records, run, "bar"), symbol, "liquidation", start)
            axes.plot(xs, ys, color=colour, linestyle="--", linewidth=1.0, label=f"{run} liq.")
            for r in _of(records, run, "liquidation"):
                if r["symbol"] == symbol:
                    axes.scatter([_hours(r["t"], start)], [r["price"]], marker="X", s=120,
                                 color=colour, edgecolor="black", zorder=5)  # fmt: skip
        _cascades(axes, records, symbol, start)
        axes.set_title(f"{symbol}: mark, fills, stops (solid) and liquidation prices (dashed)")
        axes.set_xlabel("hours of simulated market")
        axes.grid(alpha=0.3)
        _legend_outside(axes)
    return _frame(figure, records)


def _cascades(axes: Any, records: Sequence[Mapping[str, Any]], symbol: str, start: float) -> None:
    """Each cascade on ``symbol`` as a band over its span, with its lowest mark and its waves
    (the band is the guarded run's venue's when it saw one, else the naive run's)."""
    rows = [c for c in cascade_rows(records, start) if c.symbol == symbol]
    shown = [c for c in rows if c.run == "guarded"] or rows
    for number, c in enumerate(shown):
        axes.axvspan(c.start_h, max(c.end_h, c.start_h + 1 / 60), color="#8e44ad", alpha=0.18,
                     label="liquidation cascade" if number == 0 else None)  # fmt: skip
        axes.scatter([c.end_h], [c.lowest_mark], marker="v", s=90, color="#8e44ad",
                     edgecolor="black", zorder=5)  # fmt: skip
        axes.annotate(f"{len(c.waves)} waves, {c.orders:,} orders", (c.end_h, c.lowest_mark),
                      textcoords="offset points", xytext=(6, -12), fontsize=8,
                      color="#8e44ad")  # fmt: skip


def _level(
    bars: Sequence[Mapping[str, Any]], symbol: str, key: str, start: float
) -> tuple[list[float], list[float]]:
    """A position's stop or liquidation price per bar, NaN (a gap in the line) when flat."""
    xs, ys = [], []
    for r in bars:
        held = r["positions"].get(symbol)
        value = held.get(key) if held else None
        xs.append(_hours(r["t"], start))
        ys.append(float(value) if value else float("nan"))
    return xs, ys


def liquidation_distance(bar: Mapping[str, Any], symbol: str) -> float | None:
    """How far the mark is from the position's liquidation price, in % of the mark (``None``
    when flat or when the position has no liquidation price)."""
    held = bar["positions"].get(symbol)
    liquidation = held.get("liquidation") if held else None
    mark = float(bar["marks"].get(symbol) or 0.0)
    if not liquidation or mark <= 0:
        return None
    return abs(mark - float(liquidation)) / mark * 100.0


def _liquidation_distance(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = _axes(3.2)
    symbols: list[str] = next(r["symbols"] for r in records if r["kind"] == "start")
    for run, colour in _COLOURS.items():
        for symbol, style in zip(symbols, ("-", "--", ":", "-."), strict=False):
            bars = _of(records, run, "bar")
            ys = [liquidation_distance(r, symbol) for r in bars]
            axes.plot([_hours(r["t"], start) for r in bars],
                      [math.nan if y is None else y for y in ys], color=colour, linestyle=style,
                      linewidth=1.2, label=f"{run} {symbol}")  # fmt: skip
    first = next((r for r in records if r["kind"] == "start" and r["run"] == "guarded"), None)
    buffer = ((first or {}).get("policy") or {}).get("risk", {}).get("min_liquidation_buffer_pct")
    if buffer is not None:
        axes.axhline(float(buffer), color="black", linestyle="--", linewidth=0.8,
                     label=f"policy: min buffer {float(buffer):g}%")  # fmt: skip
    _trading_band(axes, records, start)
    axes.set_ylim(bottom=0)
    axes.set_title("Distance from the mark to the liquidation price (%; gaps: flat)")
    _legend_outside(axes)
    return _frame(figure, records)


def _health(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = _axes(2.6)
    bars = _of(records, "guarded", "bar")
    xs = [_hours(r["t"], start) for r in bars]
    axes.step(xs, [_HEALTH.get(r["health"], 0) for r in bars], where="post",
              color=_COLOURS["guarded"], label="venue health (guarded run)")  # fmt: skip
    for r in _of(records, "guarded", "state"):
        axes.plot([_hours(r["t"], start)], [_HEALTH.get(r["current"], 0)], "o", markersize=3,
                  color=_COLOURS["guarded"])  # fmt: skip
    _trading_band(axes, records, start)
    _shade_faults(axes, records)
    axes.set_yticks(list(_HEALTH.values()), list(_HEALTH))
    axes.set_ylim(-0.3, 2.3)
    axes.set_title("Degradation state of the venue as the guard saw it  ·  band: kill switch")
    _legend_outside(axes)
    return _frame(figure, records)


def refusals_by_code(
    records: Sequence[Mapping[str, Any]], start: float, bucket_h: float
) -> dict[str, list[int]]:
    """Orders the guarded run's guard denied (by code) or that failed (``failed: <code>``),
    counted per ``bucket_h`` hours of the run."""
    first = next(r for r in records if r["kind"] == "start")
    buckets = max(1, math.ceil(float(first["duration_s"]) / _HOUR_S / bucket_h))
    counts: dict[str, list[int]] = {}
    for r in _of(records, "guarded", "order"):
        if r["outcome"] not in ("denied", "failed"):
            continue
        code = str(r["code"]) if r["outcome"] == "denied" else f"failed: {r['code']}"
        index = min(buckets - 1, int(_hours(r["t"], start) // bucket_h))
        counts.setdefault(code, [0] * buckets)[index] += 1
    return counts


def _refusals(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = _axes(3.2)
    first = next(r for r in records if r["kind"] == "start")
    bucket_h = max(0.25, float(first["duration_s"]) / _HOUR_S / 48.0)
    counts = refusals_by_code(records, start, bucket_h)
    bottom = [0] * max((len(v) for v in counts.values()), default=0)
    palette = plt.get_cmap("tab10")
    for index, (code, per_bucket) in enumerate(sorted(counts.items())):
        axes.bar([i * bucket_h for i in range(len(per_bucket))], per_bucket, width=bucket_h,
                 bottom=bottom, align="edge", color=palette(index % 10), label=code)  # fmt: skip
        bottom = [b + c for b, c in zip(bottom, per_bucket, strict=True)]
    if not counts:
        axes.text(0.5, 0.5, "the guard refused no order", transform=axes.transAxes,
                  ha="center", va="center", fontsize=10, color="#555")  # fmt: skip
    _trading_band(axes, records, start)
    axes.set_title(f"Guarded run: orders refused, by code, per {bucket_h * 60:g} min")
    axes.set_ylabel("orders")
    axes.yaxis.get_major_locator().set_params(integer=True)  # orders come whole
    _legend_outside(axes)
    return _frame(figure, records)


_LANES: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("denied", lambda r: r["kind"] == "order" and r["outcome"] == "denied"),
    ("failed", lambda r: r["kind"] == "order" and r["outcome"] == "failed"),
    ("duplicate", lambda r: r["kind"] == "order" and int(r["copies"]) > 1),
    ("retry", lambda r: r["kind"] == "retry"),
    ("throttled", lambda r: r["kind"] == "request" and r.get("outcome") == "throttled"),
    ("ban", lambda r: r["kind"] == "ban"),
    ("health", lambda r: r["kind"] == "state"),
    ("early warning", lambda r: r["kind"] == "warning"),
    ("kill switch", lambda r: r["kind"] == "kill"),
    ("stop fired", lambda r: r["kind"] == "stop_triggered"),
    ("liquidation", lambda r: r["kind"] == "liquidation"),
)
"""The timeline's lanes: a name and which journal records land in it."""


def _events(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = _axes(4)
    marks = timeline_marks(records, start)
    for lane, (name, _) in enumerate(_LANES):
        for offset, (run, colour) in zip((0.15, -0.15), _COLOURS.items(), strict=True):
            hits = [m.at_h for m in marks if m.lane == name and m.run == run]
            axes.scatter(hits, [lane + offset] * len(hits), s=10, color=colour, alpha=0.6,
                         label=run if lane == 0 else None)  # fmt: skip
    _shade_faults(axes, records)
    axes.set_yticks(range(len(_LANES)), [name for name, _ in _LANES])
    axes.set_title("What happened, and when")
    axes.grid(alpha=0.3, axis="x")
    _legend_outside(axes)
    return _frame(figure, records)


_PLOTS: tuple[tuple[str, Callable[[Sequence[Mapping[str, Any]], float], Figure]], ...] = (
    ("equity.png", _equity),
    ("drawdown.png", _drawdown),
    ("price.png", _price),
    ("liquidation.png", _liquidation_distance),
    ("refusals.png", _refusals),
    ("health.png", _health),
    ("events.png", _events),
)
"""Every plot of the page, in page order."""


# --- the page -------------------------------------------------------------------------------

_ROWS: tuple[tuple[str, str], ...] = (
    ("PnL (USDT)", "pnl"),
    ("PnL (%)", "pnl_pct"),
    ("max drawdown (%)", "max_drawdown_pct"),
    ("orders asked", "orders"),
    ("orders placed", "orders_placed"),
    ("venue orders created", "venue_orders"),
    ("duplicate orders", "duplicates"),
    ("order answers lost", "lost_order_answers"),
    ("retries", "retries"),
    ("429/418 answers", "throttled_answers"),
    ("bans", "bans"),
    ("waited (s)", "waited_s"),
    ("health state changes", "state_changes"),
    ("time degraded (s)", "degraded_s"),
    ("kill-switch trips", "kill_trips"),
    ("liquidations", "liquidations"),
    ("stops triggered", "stops_triggered"),
    ("bars that raised", "bar_errors"),
)


def summary_rows(summaries: Mapping[str, RunSummary]) -> list[tuple[str, list[str]]]:
    """The summary table as text: (label, one cell per run), shared by the page and the CLI."""
    rows = []
    for label, key in _ROWS:
        rows.append((label, [_cell(getattr(s, key)) for s in summaries.values()]))
    for label, key in (("denied", "denied"), ("failed", "failed")):
        codes = sorted({code for s in summaries.values() for code in getattr(s, key)})
        for code in codes:
            rows.append((f"{label}: {code}", [str(getattr(s, key).get(code, 0))
                                               for s in summaries.values()]))  # fmt: skip
    return rows


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _clock(hours: float | None) -> str:
    """Simulated time since the start as ``h:mm``."""
    if hours is None:
        return "open"
    minutes = round(hours * 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def render_page(data: ReportData) -> str:
    """The HTML page for ``data`` (needs the report extra)."""
    if jinja2 is None:
        raise RuntimeError(REPORT_MISSING)
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("safeguard.paper", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the render, not the reader
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["money"] = lambda v: "" if v is None else f"{float(v):,.2f}"
    environment.filters["clock"] = _clock
    environment.filters["qty"] = lambda v: f"{float(v):g}"
    return environment.get_template("report.html.j2").render(data=data, colours=_COLOURS)


__all__ = [
    "REPORTING",
    "REPORT_MISSING",
    "CascadeRow",
    "Costs",
    "FillRow",
    "ReportData",
    "ReportSection",
    "TimelineMark",
    "TradeRow",
    "cascade_rows",
    "liquidation_distance",
    "refusals_by_code",
    "render_page",
    "report_data",
    "summary_rows",
    "timeline_marks",
    "trading_stretches",
    "write_report",
]
