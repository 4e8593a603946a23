"""The paper run's report: matplotlib plots (PNG) and one HTML page that shows them.

Everything is drawn from the journal: equity of both runs; each symbol's mark with the
strategy's fills, its stops and both runs' liquidation prices; the guarded run's venue health
and kill-switch state over time; and a timeline of the events that mattered. ``write_report``
writes ``index.html``, ``summary.json`` and the PNGs into the report folder (the journal is
already there).
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

try:  # plotting is the optional ``safeguard[report]`` extra
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, no GUI toolkit

    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
except ImportError:
    plt = None  # type: ignore[assignment]  # the report is written without its plots

from safeguard.paper.explain import explain
from safeguard.paper.summary import RunSummary

PLOTTING = plt is not None
"""Whether matplotlib (the ``safeguard[report]`` extra) is installed: without it the report
is written without its plots and says how to get them."""

PLOTS_MISSING = (
    "plots not drawn: matplotlib is not installed; pip install 'safeguard[report]' "
    "(or -e '.[report]' in a checkout) and run again to get them"
)
"""What the page and ``safeguard paper`` say when plotting is not installed."""

_COLOURS = {"guarded": "#1b7f3b", "naive": "#c0392b"}
_HEALTH = {"NORMAL": 0, "DEGRADED": 1, "SEVERE": 2}
_EXPLAINED_LINES = 400


def write_report(
    out: Path,
    records: Sequence[Mapping[str, Any]],
    summaries: Mapping[str, RunSummary],
    *,
    journal_name: str = "journal.jsonl",
) -> Path:
    """Write the report into ``out``; returns the HTML page's path."""
    out.mkdir(parents=True, exist_ok=True)
    start = min(float(r["t"]) for r in records if r["kind"] == "start")
    pictures: dict[str, Figure] = {}
    if plt is not None:
        pictures = {
            "equity.png": _equity(records, start),
            "price.png": _price(records, start),
            "health.png": _health(records, start),
            "events.png": _events(records, start),
        }
    for name, figure in pictures.items():
        _atomic_png(out / name, figure)
        plt.close(figure)
    first = next(r for r in records if r["kind"] == "start")
    document = {
        "seed": first["seed"],
        "duration_s": first["duration_s"],
        "symbols": first["symbols"],
        "transport": first["transport"],
        "runs": {run: summary.to_dict() for run, summary in summaries.items()},
    }
    _atomic_text(out / "summary.json", json.dumps(document, indent=2, sort_keys=True) + "\n")
    lines = list(explain(records))
    page = _page(first, summaries, lines, list(pictures), journal_name)
    _atomic_text(out / "index.html", page)
    return out / "index.html"


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
    return (t - start) / 3600.0


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
    end_h = float(first["duration_s"]) / 3600.0
    windows: list[tuple[str, float, float]] = []
    frozen: dict[str, float] = {}
    for rule in first["faults"].get("rules", []):
        kind = str(rule["kind"])
        if kind == "freeze_feed":
            at = float(rule["at_s"]) / 3600.0
            if rule.get("mode") == "off":
                windows.append((kind, frozen.pop(rule["symbol"], at), at))
            else:
                frozen[rule["symbol"]] = at
        elif "at_s" in rule:
            windows.append((kind, float(rule["at_s"]) / 3600.0, float(rule["at_s"]) / 3600.0))
        else:
            stop = rule.get("end_s")
            start_h = float(rule.get("start_s") or 0.0) / 3600.0
            windows.append((kind, start_h, end_h if stop is None else float(stop) / 3600.0))
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


def _equity(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    for run, colour in _COLOURS.items():
        bars = _of(records, run, "bar")
        if not bars:
            continue
        axes.plot([_hours(r["t"], start) for r in bars], [r["equity"] for r in bars],
                  color=colour, label=f"{run}", linewidth=1.4)  # fmt: skip
        for r in _of(records, run, "liquidation"):
            axes.axvline(_hours(r["t"], start), color=colour, linestyle=":", linewidth=1)
        for r in _of(records, run, "kill"):
            axes.axvline(_hours(r["t"], start), color="black", linestyle="--", linewidth=0.8)
    _shade_faults(axes, records)
    axes.set_title("Equity (USDT, mark-to-market)  ·  dotted: liquidation  ·  dashed: kill switch")
    axes.set_xlabel("hours of simulated market")
    axes.grid(alpha=0.3)
    axes.legend(loc="best", fontsize=7, ncol=2)
    return figure


def _price(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    symbols: list[str] = next(r["symbols"] for r in records if r["kind"] == "start")
    figure, grid = plt.subplots(len(symbols), 1, figsize=(11, 4 * len(symbols)), squeeze=False,
                                layout="constrained")  # fmt: skip
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
            for key, style, label in (("stop", "-", "stop"), ("liquidation", "--", "liq.")):
                xs, ys = _level(_of(records, run, "bar"), symbol, key, start)
                axes.plot(xs, ys, color=colour, linestyle=style, linewidth=0.8, alpha=0.6,
                          label=f"{run} {label}")  # fmt: skip
            for r in _of(records, run, "liquidation"):
                if r["symbol"] == symbol:
                    axes.scatter([_hours(r["t"], start)], [r["price"]], marker="X", s=120,
                                 color=colour, edgecolor="black", zorder=5)  # fmt: skip
        axes.set_title(f"{symbol}: mark, fills, stops (solid) and liquidation prices (dashed)")
        axes.set_xlabel("hours of simulated market")
        axes.grid(alpha=0.3)
        axes.legend(loc="best", fontsize=7, ncol=3)
    return figure


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


def _health(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = plt.subplots(figsize=(11, 2.6), layout="constrained")
    bars = _of(records, "guarded", "bar")
    xs = [_hours(r["t"], start) for r in bars]
    axes.step(xs, [_HEALTH.get(r["health"], 0) for r in bars], where="post",
              color=_COLOURS["guarded"], label="venue health (guarded run)")  # fmt: skip
    for r in _of(records, "guarded", "kill"):
        axes.axvline(_hours(r["t"], start), color="black", linestyle="--",
                     label=f"kill switch {r['state']}")  # fmt: skip
    for r in _of(records, "guarded", "state"):
        axes.plot([_hours(r["t"], start)], [_HEALTH.get(r["current"], 0)], "o", markersize=3,
                  color=_COLOURS["guarded"])  # fmt: skip
    _shade_faults(axes, records)
    axes.set_yticks(list(_HEALTH.values()), list(_HEALTH))
    axes.set_ylim(-0.3, 2.3)
    axes.set_title("Degradation state of the venue as the guard saw it")
    axes.set_xlabel("hours of simulated market")
    axes.grid(alpha=0.3)
    axes.legend(loc="upper right", fontsize=7, ncol=3)
    return figure


_LANES: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = (
    ("denied", lambda r: r["kind"] == "order" and r["outcome"] == "denied"),
    ("failed", lambda r: r["kind"] == "order" and r["outcome"] == "failed"),
    ("duplicate", lambda r: r["kind"] == "order" and int(r["copies"]) > 1),
    ("retry", lambda r: r["kind"] == "retry"),
    ("throttled", lambda r: r["kind"] == "request" and r.get("outcome") == "throttled"),
    ("ban", lambda r: r["kind"] == "ban"),
    ("health", lambda r: r["kind"] == "state"),
    ("kill switch", lambda r: r["kind"] == "kill"),
    ("stop fired", lambda r: r["kind"] == "stop_triggered"),
    ("liquidation", lambda r: r["kind"] == "liquidation"),
)


def _events(records: Sequence[Mapping[str, Any]], start: float) -> Figure:
    figure, axes = plt.subplots(figsize=(11, 4), layout="constrained")
    for lane, (_, wanted) in enumerate(_LANES):
        for offset, (run, colour) in zip((0.15, -0.15), _COLOURS.items(), strict=True):
            hits = [_hours(r["t"], start) for r in records if r["run"] == run and wanted(r)]
            axes.scatter(hits, [lane + offset] * len(hits), s=10, color=colour, alpha=0.6,
                         label=run if lane == 0 else None)  # fmt: skip
    _shade_faults(axes, records)
    axes.set_yticks(range(len(_LANES)), [name for name, _ in _LANES])
    axes.set_title("What happened, and when")
    axes.set_xlabel("hours of simulated market")
    axes.grid(alpha=0.3, axis="x")
    axes.legend(loc="upper left", fontsize=7, ncol=4)
    return figure


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


def _page(
    first: Mapping[str, Any],
    summaries: Mapping[str, RunSummary],
    lines: list[str],
    pictures: list[str],
    journal_name: str,
) -> str:
    e = html.escape
    head = "".join(f"<th>{e(run)}</th>" for run in summaries)
    body = "".join(
        f"<tr><td>{e(label)}</td>{''.join(f'<td>{e(c)}</td>' for c in cells)}</tr>"
        for label, cells in summary_rows(summaries)
    )
    shown = lines[:_EXPLAINED_LINES]
    more = len(lines) - len(shown)
    explained = e("\n".join(shown)) + (f"\n... {more} more in the journal" if more > 0 else "")
    images = "".join(f'<figure><img src="{e(p)}" alt="{e(p)}"></figure>' for p in pictures)
    if not pictures:
        images = f"<p>{e(PLOTS_MISSING)}</p>"
    faults = "".join(
        f"<tr><td>{e(kind)}</td><td>{start:.2f} h</td><td>"
        f"{'' if end == start else f'{end:.2f} h'}</td></tr>"
        for kind, start, end in sorted(set(_fault_windows([first])), key=lambda w: w[1])
    )
    hours = float(first["duration_s"]) / 3600.0
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>safeguard paper run, seed {e(str(first["seed"]))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
table {{ border-collapse: collapse; }} td, th {{ padding: 3px 12px; border-bottom: 1px solid #ddd;
text-align: right; }} td:first-child {{ text-align: left; }}
img {{ max-width: 100%; }} pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto;
font-size: 12px; }}
</style></head><body>
<h1>safeguard paper run</h1>
<p>{e(", ".join(first["symbols"]))}, {hours:g} h of simulated market, seed {first["seed"]},
venue {e(str(first["transport"]))}. The same strategy traded twice on the same market and fault
plan: through the guarded exchange, and through plain ccxt with naive retries.</p>
<h2>Summary</h2>
<table><tr><th></th>{head}</tr>{body}</table>
<h2>What went wrong at the venue, on purpose</h2>
<table><tr><th>fault</th><th>from</th><th>until</th></tr>{faults}</table>
<h2>Plots</h2>
{images}
<h2>Decisions, explained</h2>
<pre>{explained}</pre>
<p>Audit journal (JSON lines): <a href="{e(journal_name)}">{e(journal_name)}</a> ·
figures: <a href="summary.json">summary.json</a> ·
<code>safeguard journal {e(journal_name)}</code> explains it again.</p>
</body></html>
"""


__all__ = ["summary_rows", "write_report"]
