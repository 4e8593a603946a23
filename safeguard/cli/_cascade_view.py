"""The cascade table of ``safeguard stress --cascade``: the worst cell's path and the bands.

The stress grid's account, books and betas are reused. The shock starts at the first
position's symbol (the file's order) and moves the others through a correlation of 0, 0.5, 0.9
and 1, with each symbol's policy beta as its volatility (the same "how much does it move with
the market" figure), over the grid's shocks and the books at a quarter, one and four times
their depth. Books do not refill between steps (the monotone reading; see
:mod:`safeguard.risk._cascade`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safeguard._errors import ConfigError
from safeguard.risk._cascade import (
    CascadeGrid,
    CascadeMarket,
    CascadeSymbol,
    LiquidationBand,
    cascade_grid,
    liquidation_band,
    run_cascade,
)
from safeguard.risk._correlation import CorrelationEstimate
from safeguard.risk._models import Account
from safeguard.risk._stress import StressGrid

CORRELATIONS = (0.0, 0.5, 0.9, 1.0)
DEPTH_MULTIPLIERS = (0.25, 1.0, 4.0)
LATENCY_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class CascadeView:
    grid: CascadeGrid
    bands: tuple[LiquidationBand, ...]
    account_band: LiquidationBand
    volatility: float | None
    """Realized volatility the band's times are in (per square root of an hour), if given."""
    estimate: CorrelationEstimate | None = None
    """Each pair's correlation measured from the venue's klines (``--correlation estimated``)."""
    estimated: tuple[tuple[float, float | None], ...] = ()
    """Per depth multiplier, the smallest shock that liquidates under the estimate."""


def cascade_view(
    account: Account,
    stress: StressGrid,
    *,
    volatility: float | None,
    warning_ratio: float,
    correlation: CorrelationEstimate | None = None,
) -> CascadeView:
    symbols = tuple(dict.fromkeys(leg.symbol for leg in account.positions))
    marks = {leg.symbol: leg.mark_price for leg in account.positions}
    source = symbols[0]
    market = CascadeMarket(
        {s: CascadeSymbol(marks[s], stress.beta(s), stress.depth[s]) for s in symbols},
        latency=LATENCY_SECONDS,
        refill_rate=0.0,
        taker_fee=stress.taker_fee,
    )
    # A shock the most volatile symbol would turn into a move to zero is left out.
    reach = max(stress.beta(s) for s in symbols) / stress.beta(source)
    shocks = [s for s in stress.shocks if abs(s) * reach < 1.0]
    grid = cascade_grid(
        account,
        market,
        shock_symbol=source,
        shocks=shocks,
        correlations=CORRELATIONS,
        depth_multipliers=DEPTH_MULTIPLIERS,
    )
    bands, account_band = liquidation_band(
        account, volatility=volatility or 1.0, warning_ratio=warning_ratio
    )
    estimated: list[tuple[float, float | None]] = []
    if correlation is not None:
        ordered = sorted(grid.shocks, key=lambda s: (abs(s), s))
        for depth in DEPTH_MULTIPLIERS:
            found = next(
                (
                    shock
                    for shock in ordered
                    if not run_cascade(
                        account,
                        market,
                        shock_symbol=source,
                        shock=shock,
                        correlation=correlation.correlation,
                        depth_multiplier=depth,
                    ).survives
                ),
                None,
            )
            estimated.append((depth, found))
    return CascadeView(grid, bands, account_band, volatility, correlation, tuple(estimated))


def cascade_json(view: CascadeView) -> dict[str, Any]:
    grid = view.grid
    worst = grid.worst_path
    return {
        "shock_symbol": grid.shock_symbol,
        "smallest_liquidating_shock": [
            {
                "correlation": rho,
                "depth_multiplier": depth,
                "shock": grid.smallest_liquidating_shock(rho, depth),
            }
            for rho in grid.correlations
            for depth in grid.depth_multipliers
        ],
        "worst_path": {
            "shock": worst.shock,
            "correlation": worst.correlation.default,
            "depth_multiplier": worst.depth_multiplier,
            "closes": [close._asdict() for close in worst.closes],
            "equity": [point.equity for point in worst.equity],
        },
        "bands": [_band_json(band, view.volatility) for band in (*view.bands, view.account_band)],
        "estimated_correlation": None
        if view.estimate is None
        else {
            "pairs": [
                {
                    "pair": [pair.a, pair.b],
                    "correlation": pair.rho,
                    "measured": pair.measured,
                    "returns": pair.samples,
                    "weight": pair.weight,
                    "fallback_reason": pair.fallback_reason,
                }
                for pair in view.estimate.pairs
            ],
            "smallest_liquidating_shock": [
                {"depth_multiplier": depth, "shock": shock} for depth, shock in view.estimated
            ],
        },
    }


def _band_json(band: LiquidationBand, volatility: float | None) -> dict[str, Any]:
    def edge(which: str) -> dict[str, float | None] | None:
        found = getattr(band, which)
        if found is None:
            return None
        return {
            "price": found.price,
            "distance": found.distance,
            "one_sigma_hours": found.one_sigma_time if volatility else None,
        }

    return {
        "subject": band.subject,
        "mark": band.mark,
        "direction": band.direction,
        "margin_ratio": band.margin_ratio if math.isfinite(band.margin_ratio) else None,
        "warning": edge("warning"),
        "partial": edge("partial"),
        "liquidation": edge("liquidation"),
    }


def render_cascade(view: CascadeView, console: Any) -> None:
    from rich.table import Table

    grid = view.grid
    worst = grid.worst_path
    path = Table(
        title=(
            f"Cascade, worst cell: {grid.shock_symbol} {worst.shock * 100:+.1f}%, correlation "
            f"{worst.correlation.default:g}, depth x{worst.depth_multiplier:g}"
        ),
        caption="each forced close walks its book and moves the mark; equity after the step",
    )
    for column in ("step", "t (s)", "position", "trigger mark", "fill", "mark after", "cost"):
        path.add_column(column, justify="right")
    path.add_column("equity", justify="right")
    equity = {point.step: point.equity for point in worst.equity}
    path.add_row("0", "0", "shock", "", "", "", "", f"{equity[0]:,.0f}")
    for close in worst.closes:
        path.add_row(
            str(close.step),
            f"{close.time:g}",
            close.node.removeprefix("account:"),
            f"{close.trigger_mark:,.2f}",
            f"{close.fill_price:,.2f}",
            f"{close.mark_after:,.2f}",
            f"{close.cost:,.0f}",
            f"{equity[close.step]:,.0f}",
        )
    console.print(path)
    for rho in grid.correlations:
        parts = []
        for depth in grid.depth_multipliers:
            shock = grid.smallest_liquidating_shock(rho, depth)
            shown = "none" if shock is None else f"{shock * 100:+.1f}%"
            parts.append(f"depth x{depth:g}: {shown}")
        console.print(f"correlation {rho:g}: smallest liquidating shock, " + ", ".join(parts))
    if view.estimate is not None:
        parts = [
            f"depth x{depth:g}: {'none' if shock is None else f'{shock * 100:+.1f}%'}"
            for depth, shock in view.estimated
        ]
        console.print(
            f"estimated correlation ({view.estimate.describe()}): smallest liquidating shock, "
            + ", ".join(parts)
        )

    unit = "h at the given volatility" if view.volatility else "(pass --volatility for times)"
    bands = Table(
        title="Liquidation band: margin ratio from the warning level to liquidation",
        caption=f"account row: every mark moved together, as a fraction of now; times in {unit}",
    )
    for column in ("position", "mark", "ratio now", "warning", "liquidation", "time to liq."):
        bands.add_column(column, justify="right")
    for band in (*view.bands, view.account_band):
        ratio = "∞" if math.isinf(band.margin_ratio) else f"{band.margin_ratio:.0%}"
        warning = (
            "passed"
            if band.warning_passed
            else _price(band.warning.price if band.warning else None)
        )
        liquidation = band.liquidation
        time = f"{liquidation.one_sigma_time:,.1f}" if liquidation and view.volatility else "-"
        bands.add_row(
            band.subject,
            f"{band.mark:,.2f}",
            ratio,
            warning,
            _price(liquidation.price if liquidation else None),
            time,
        )
    console.print(bands)


def write_cascade_plot(view: CascadeView, path: Path) -> None:
    """The worst cell's path as a picture: each symbol's mark step by step with its forced
    closes, each position's band (warning, partial, liquidation) as lines across it, and the
    account's equity below. Needs matplotlib (``safeguard[report]``)."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "--cascade-png needs matplotlib: pip install 'safeguard[report]' (the table above "
            "is complete without it)"
        ) from None

    matplotlib.use("Agg")  # no display: a CLI on a server must not need one
    from matplotlib import pyplot as plt

    path_ = view.grid.worst_path
    times = [point.time for point in path_.equity]
    symbols = list(path_.equity[0].marks)
    # Today's marks (before the shock): the bands are drawn on them, the path is relative to them.
    today = {_symbol_of(band.subject): band.mark for band in view.bands}
    figure, (prices, equity) = plt.subplots(
        2, 1, figsize=(8.0, 6.0), sharex=True, height_ratios=(2, 1)
    )
    try:
        styles = {"warning": ":", "partial": "-.", "liquidation": "--"}
        for symbol in symbols:
            base = today.get(symbol, path_.equity[0].marks[symbol])
            relative = [point.marks[symbol] / base * 100.0 for point in path_.equity]
            (line,) = prices.step(times, relative, where="post", label=symbol)
            for close in path_.closes:
                if close.symbol == symbol:
                    marker = "x" if close.owner == "account" else "."
                    prices.plot(
                        close.time, close.mark_after / base * 100.0, marker, color=line.get_color()
                    )
            for band in view.bands:
                if _symbol_of(band.subject) != symbol:
                    continue
                for edge_name, style in styles.items():
                    edge = getattr(band, edge_name)
                    if edge is not None:
                        prices.axhline(
                            edge.price / base * 100.0,
                            linestyle=style,
                            color=line.get_color(),
                            linewidth=0.8,
                            label=f"{band.subject} {edge_name}",
                        )
        prices.set_ylabel("mark, % of today's")
        prices.set_title(
            f"worst cascade: {path_.shock * 100:+.1f}% to {path_.shock_symbol}, correlation "
            f"{path_.correlation.default:g}, depth x{path_.depth_multiplier:g}\n"
            "x: the account's forced closes, dots: the crowd's; lines: each position's band",
            fontsize=9,
        )
        prices.legend(fontsize=7, loc="best")
        equity.step(times, [point.equity for point in path_.equity], where="post")
        equity.set_ylabel("account equity")
        equity.set_xlabel("seconds after the shock")
        figure.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=110)
    finally:
        plt.close(figure)


def _symbol_of(subject: str) -> str:
    """A band's subject is its position's node name: the symbol, ``:LONG``/``:SHORT`` for a
    hedge leg."""
    for suffix in (":LONG", ":SHORT"):
        if subject.endswith(suffix):
            return subject.removesuffix(suffix)
    return subject


def _price(price: float | None) -> str:
    return "-" if price is None else f"{price:,.4g}" if price < 10 else f"{price:,.2f}"


__all__ = ["CascadeView", "cascade_json", "cascade_view", "render_cascade"]
