"""``safeguard stress``: the portfolio stress grid for an account, as a table or a heat map.

::

    safeguard stress --example                 # a built-in cross account
    safeguard stress book.toml --png grid.png  # your positions, plus a heat-map image
    safeguard stress book.json --policy policy.toml --regime together

The positions file (TOML, or JSON by its ``.json`` suffix)::

    wallet = 25000.0                 # cross wallet balance, quote currency
    taker_fee = 0.0005               # optional (default: the policy's fills.taker_fee)
    shocks_pct = [-30, -20, -10, 10] # optional (default: the policy's risk.stress.shocks_pct)

    [[positions]]
    symbol = "BTC/USDT:USDT"
    side = "long"                    # or "short"
    quantity = 1.0
    entry_price = 60000.0
    mark_price = 61000.0
    tiers = "BINANCE_BTCUSDT"        # a built-in ladder, or rows [[min, max, mmr, max_lev], ...]
    # isolated_wallet = 5000.0       # present: an isolated position with this margin

    [depth."BTC/USDT:USDT"]
    levels = [[0.0005, 2.0], [0.001, 5.0], [0.003, 20.0]]  # (offset from mark, base qty)

Exit codes: 0 the account survives every cell; 1 some cell liquidates; 2 bad input (the message
names the field). ``--example`` is a demonstration and exits 0: its account is built to
liquidate somewhere.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError

from safeguard._config import Policy, Section, StressConfig
from safeguard._errors import ConfigError
from safeguard.cli._cascade_view import (
    cascade_json,
    cascade_view,
    render_cascade,
    write_cascade_plot,
)
from safeguard.risk._correlation import CorrelationEstimate, estimate_for_policy
from safeguard.risk._liquidation import PositionLeg
from safeguard.risk._models import Account
from safeguard.risk._stress import (
    REGIMES,
    DepthProfile,
    Regime,
    StressGrid,
    StressReport,
    stress_test,
)
from safeguard.risk._tiers import (
    BINANCE_BTCUSDT_TIERS,
    BINANCE_ETHUSDT_TIERS,
    BINANCE_SOLUSDT_TIERS,
    TierTable,
)

LADDERS: Mapping[str, TierTable] = {
    "BINANCE_BTCUSDT": BINANCE_BTCUSDT_TIERS,
    "BINANCE_ETHUSDT": BINANCE_ETHUSDT_TIERS,
    "BINANCE_SOLUSDT": BINANCE_SOLUSDT_TIERS,
}

EXAMPLE: Mapping[str, Any] = {
    "wallet": 25_000.0,
    "positions": [
        {
            "symbol": "BTC/USDT:USDT",
            "side": "long",
            "quantity": 2.0,
            "entry_price": 60_000.0,
            "mark_price": 61_000.0,
            "tiers": "BINANCE_BTCUSDT",
        },
        {
            "symbol": "ETH/USDT:USDT",
            "side": "long",
            "quantity": 20.0,
            "entry_price": 3_000.0,
            "mark_price": 2_950.0,
            "tiers": "BINANCE_ETHUSDT",
        },
        {
            "symbol": "SOL/USDT:USDT",
            "side": "short",
            "quantity": 300.0,
            "entry_price": 150.0,
            "mark_price": 148.0,
            "tiers": "BINANCE_SOLUSDT",
            "isolated_wallet": 6_000.0,
        },
    ],
    "depth": {
        "BTC/USDT:USDT": {"levels": [[0.0002, 1.0], [0.001, 4.0], [0.003, 15.0]]},
        "ETH/USDT:USDT": {"levels": [[0.0003, 10.0], [0.0015, 40.0], [0.004, 150.0]]},
        "SOL/USDT:USDT": {"levels": [[0.0005, 100.0], [0.002, 400.0], [0.006, 1500.0]]},
    },
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "stress",
        help="run the portfolio stress grid on an account (table, optional heat map)",
        description="Shock every price under several correlation regimes and report equity, "
        "margin ratio and liquidations per cell, and the smallest shock that liquidates.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("positions", nargs="?", type=Path, help="TOML or JSON positions file")
    source.add_argument("--example", action="store_true", help="use a built-in example account")
    parser.add_argument("--policy", type=Path, help="policy TOML (shocks, regimes, betas, fees)")
    parser.add_argument(
        "--regime", action="append", choices=REGIMES, help="only this regime (repeatable)"
    )
    parser.add_argument("--png", type=Path, metavar="PATH", help="also write a heat-map PNG")
    parser.add_argument(
        "--cascade-png",
        type=Path,
        metavar="PATH",
        help="also write the worst cascade's path and the bands as a PNG (with --cascade)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--cascade",
        action="store_true",
        help="also step the liquidation cascade (worst cell's path) and show each liquidation band",
    )
    parser.add_argument(
        "--volatility",
        type=float,
        metavar="SIGMA",
        help="realized volatility per sqrt(hour) (0.01 = 1 %%): the band's times (with --cascade)",
    )
    parser.add_argument(
        "--correlation",
        choices=("configured", "estimated"),
        default="configured",
        help="estimated (with --cascade and --venue): also run the cascade on each pair's "
        "correlation measured from the venue's mark-price klines, stressed toward one as the "
        "policy says (risk.stress.correlation_*); a pair without enough returns falls back to "
        "cascade_correlation and the output says so",
    )
    parser.add_argument(
        "--venue",
        metavar="URL",
        help="Binance USD-M (or the mock venue) base URL the klines are read from "
        "(public data, no keys)",
    )
    parser.add_argument(
        "--warning-ratio",
        type=float,
        default=0.8,
        metavar="RATIO",
        help="margin ratio where the band's maintenance pressure starts (default 0.8)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    policy = Policy.load(args.policy) if args.policy else Policy.build()
    if args.example:
        data: Mapping[str, Any] = EXAMPLE
        origin = "built-in example"
    else:
        data = read_scenario(args.positions)
        origin = str(args.positions)
    account, grid = scenario(data, policy=policy, source=origin)
    if args.regime:
        grid = StressGrid(grid.shocks, grid.depth, tuple(args.regime), grid.betas, grid.taker_fee)
    report = stress_test(account, grid)
    view = None
    estimate = None
    if args.correlation == "estimated":
        if not args.cascade:
            raise ConfigError("--correlation estimated needs --cascade", key="--correlation")
        if not args.venue:
            raise ConfigError(
                "--correlation estimated reads the venue's klines: give --venue URL",
                key="--venue",
            )
        symbols = tuple(dict.fromkeys(leg.symbol for leg in account.positions))
        estimate = estimate_from_klines(args.venue, symbols, policy.risk.stress)
    if args.cascade:
        try:
            view = cascade_view(
                account,
                grid,
                volatility=args.volatility,
                warning_ratio=args.warning_ratio,
                correlation=estimate,
            )
        except ValueError as exc:
            raise ConfigError(f"cascade: {exc}") from exc
    if args.json:
        out = report_json(report)
        if view is not None:
            out["cascade"] = cascade_json(view)
        print(json.dumps(out, indent=2))
    else:
        render_table(report, origin)
        if view is not None:
            from rich.console import Console

            render_cascade(view, Console(file=sys.stdout, width=120))
    if args.cascade_png is not None:
        if view is None:
            raise ConfigError("--cascade-png needs --cascade", key="--cascade-png")
        write_cascade_plot(view, args.cascade_png)
        if not args.json:
            print(f"cascade plot written to {args.cascade_png}")
    if args.png:
        write_heatmap(report, args.png)
        if not args.json:
            print(f"heat map written to {args.png}")
    if args.example:
        return 0  # the demonstration worked: liquidating cells are what it shows
    return 0 if report.survives else 1


def estimate_from_klines(
    url: str, symbols: Sequence[str], config: StressConfig
) -> CorrelationEstimate:
    """Each pair's correlation from the venue's mark-price klines: the last
    ``correlation_window`` completed bars of ``correlation_interval_s`` (which must be a kline
    interval Binance serves). A symbol the venue cannot answer for is an error (exit 2), never
    a silent fallback."""
    import ccxt

    from safeguard.venue._client import configure

    timeframe = _TIMEFRAMES.get(config.correlation_interval_s)
    if timeframe is None:
        raise ConfigError(
            f"risk.stress.correlation_interval_s = {config.correlation_interval_s:g} is no kline "
            f"interval; use one of {', '.join(f'{s:g}' for s in _TIMEFRAMES)} seconds",
            key="risk.stress.correlation_interval_s",
        )
    exchange = configure(ccxt.binanceusdm({"timeout": 10_000}), url)
    interval_ms = int(config.correlation_interval_s * 1000)
    try:
        now_ms = exchange.fetch_time()
    except ccxt.BaseError as exc:
        raise ConfigError(
            f"cannot read the time from {url}: {type(exc).__name__}: {exc}", key="--venue"
        ) from None
    if not _finite_number(now_ms):
        raise ConfigError(f"{url} answered no time ({now_ms!r})", key="--venue")
    closes: dict[str, dict[int, float]] = {}
    for symbol in symbols:
        try:
            # One more than the window: the last bar is still open (see below).
            bars = exchange.fetch_ohlcv(
                symbol, timeframe, limit=config.correlation_window + 1, params={"price": "mark"}
            )
        except ccxt.BaseError as exc:
            raise ConfigError(
                f"cannot read {symbol}'s mark-price klines from {url}: {type(exc).__name__}: {exc}",
                key="--venue",
            ) from None
        # Completed bars only, as the guard counts them: the bar still open closes on the
        # mark now, and a return ending there spans part of an interval. The estimator drops
        # a close that is not a finite price > 0 (a broken bar cuts the returns around it); a
        # bar whose open time is not a number is skipped here.
        closes[symbol] = {
            int(bar[0]) // interval_ms: bar[4]
            for bar in bars
            if isinstance(bar, list | tuple)
            and len(bar) > 4
            and _finite_number(bar[0])
            and bar[0] + interval_ms <= now_ms
        }
    return estimate_for_policy(closes, config, symbols)


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_TIMEFRAMES = {60.0: "1m", 180.0: "3m", 300.0: "5m", 900.0: "15m", 1800.0: "30m", 3600.0: "1h"}


def read_scenario(path: Path) -> dict[str, Any]:
    """Parse a positions file: JSON if it ends in ``.json``, TOML otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read positions file {path}: {exc}", key=str(path)) from exc
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"positions file {path} does not parse: {exc}", key=str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError(f"positions file {path} must hold an object", key=str(path))
    return data


_Number = Annotated[float, Field(strict=True)]
"""A number as written: ``true`` or ``"2"`` is refused, not read as 1 or 2 (a position nobody
wrote would be stressed)."""


class _Position(Section):
    symbol: Annotated[str, Field(min_length=1)]
    side: Literal["long", "short"]
    quantity: _Number
    entry_price: _Number
    mark_price: _Number
    tiers: str | list[tuple[float, float, float, float]]
    """A built-in ladder's name, or ``[min_notional, max_notional, mmr, max_leverage]`` rows."""
    isolated_wallet: _Number | None = None


class _Depth(Section):
    levels: Annotated[list[tuple[float, float]], Field(min_length=1)]
    overflow_offset: float | None = None


class _Scenario(Section):
    """A positions file. Values the risk types check themselves are validated there."""

    wallet: float
    positions: Annotated[list[_Position], Field(min_length=1)]
    depth: dict[str, _Depth]
    taker_fee: float | None = None
    shocks_pct: Any = None
    regimes: Any = None
    betas: Any = None


def scenario(
    data: Mapping[str, Any], *, policy: Policy, source: str = "scenario"
) -> tuple[Account, StressGrid]:
    """The account and grid a parsed positions file describes. Errors name the field."""
    try:
        spec = _Scenario.model_validate(data)
        overrides = {
            key: value
            for key in ("shocks_pct", "regimes", "betas")
            if (value := getattr(spec, key)) is not None
        }
        stress = StressConfig.model_validate({**policy.risk.stress.model_dump(), **overrides})
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in exc.errors()
        ]
        first = exc.errors()[0]["loc"] if exc.errors() else ()
        raise ConfigError(
            f"invalid positions from {source}: " + "; ".join(problems),
            key=".".join(str(part) for part in first) or None,
        ) from None
    try:
        legs = tuple(_leg(f"positions.{i}", position) for i, position in enumerate(spec.positions))
        try:
            account = Account(wallet_balance=spec.wallet, positions=legs)
        except ValueError as exc:
            raise ValueError(f"wallet: {exc}") from exc
        depth = {symbol: _depth(f"depth.{symbol}", raw) for symbol, raw in spec.depth.items()}
        missing = sorted({leg.symbol for leg in legs} - set(depth))
        if missing:
            raise ValueError(f"depth has no levels for {', '.join(missing)}")
        taker_fee = policy.fills.taker_fee if spec.taker_fee is None else spec.taker_fee
        grid = StressGrid.from_config(stress, depth=depth, taker_fee=taker_fee)
    except ValueError as exc:
        raise ConfigError(f"invalid positions from {source}: {exc}") from exc
    return account, grid


def _leg(where: str, position: _Position) -> PositionLeg:
    try:
        return PositionLeg(
            symbol=position.symbol,
            side=1 if position.side == "long" else -1,
            quantity=position.quantity,
            entry_price=position.entry_price,
            mark_price=position.mark_price,
            tiers=_tiers(position.tiers),
            isolated_wallet=position.isolated_wallet,
        )
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _tiers(spec: str | list[tuple[float, float, float, float]]) -> TierTable:
    if not isinstance(spec, str):
        return TierTable.from_rows(spec)
    table = LADDERS.get(spec)
    if table is None:
        raise ValueError(f"tiers: unknown ladder {spec!r}; known: {', '.join(LADDERS)}")
    return table


def _depth(where: str, spec: _Depth) -> DepthProfile:
    try:
        return DepthProfile(tuple(spec.levels), spec.overflow_offset)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


# --- output ---------------------------------------------------------------------------------


def report_json(report: StressReport) -> dict[str, Any]:
    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "account_equity": report.account_equity,
        "survives": report.survives,
        "cells": [
            {
                "regime": c.regime,
                "shock": c.shock,
                "equity": c.equity,
                "margin_ratio": finite(c.margin_ratio),
                "liquidated": list(c.liquidated),
                "close_cost": c.close_cost,
            }
            for c in report.cells
        ],
        "smallest_liquidating_shock": {
            regime: None if bp is None else {"grid": bp.grid_shock, "boundary": bp.boundary}
            for regime, bp in report.breakpoints.items()
        },
    }


def render_table(report: StressReport, origin: str) -> None:
    from rich.console import Console
    from rich.table import Table

    regimes = _regimes(report)
    table = Table(
        title=f"Stress grid: {origin} (equity now {report.account_equity:,.0f})",
        caption="equity left / worst margin ratio; red: something is liquidated",
    )
    table.add_column("shock", justify="right")
    for regime in regimes:
        table.add_column(regime, justify="right")
    for shock in _shocks(report):
        row = [f"{shock * 100:+.1f}%"]
        for regime in regimes:
            cell = report.cell(regime, shock)
            ratio = "∞" if math.isinf(cell.margin_ratio) else f"{cell.margin_ratio:.0%}"
            text = f"{cell.equity:,.0f} / {ratio}"
            if cell.liquidated:
                text = f"[bold red]{text} ✗ {', '.join(s.split('/')[0] for s in cell.liquidated)}"
            row.append(text)
        table.add_row(*row)
    console = Console(file=sys.stdout, width=max(100, 28 * (len(regimes) + 1)))
    console.print(table)
    for regime, bp in report.breakpoints.items():
        if bp is None:
            console.print(f"{regime}: no shock in the grid liquidates anything")
        elif regime == "hedges_fail":
            # Every position moves against itself whatever the sign: only the size matters.
            console.print(
                f"{regime}: smallest liquidating move ±{abs(bp.boundary) * 100:.2f}% "
                f"(grid cell ±{abs(bp.grid_shock) * 100:.1f}%)"
            )
        else:
            console.print(
                f"{regime}: smallest liquidating shock {bp.boundary * 100:+.2f}% "
                f"(grid cell {bp.grid_shock * 100:+.1f}%)"
            )


LIQUIDATED_COLOUR = (0.25, 0.0, 0.35, 1.0)
"""A cell where anything was liquidated: deep purple, outside the red-to-green equity scale, so
a liquidation that still leaves equity (a cross pool after a forced close) never shows green."""


def heatmap_colours(report: StressReport) -> list[list[tuple[float, float, float, float]]]:
    """The heat map's cell colours, one row per shock, one column per regime: equity left on
    a red (0 %) to green (150 % of today's) scale, and :data:`LIQUIDATED_COLOUR` wherever a
    position was liquidated, whatever equity is left."""
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    scale, norm = colormaps["RdYlGn"], Normalize(vmin=0.0, vmax=150.0)
    base = report.account_equity if report.account_equity > 0 else 1.0
    colours = []
    for shock in _shocks(report):
        row = []
        for regime in _regimes(report):
            cell = report.cell(regime, shock)
            if cell.liquidated:
                row.append(LIQUIDATED_COLOUR)
            else:
                red, green, blue, alpha = scale(norm(cell.equity / base * 100.0))
                row.append((float(red), float(green), float(blue), float(alpha)))
        colours.append(row)
    return colours


def write_heatmap(report: StressReport, path: Path) -> None:
    """Equity left as % of today's equity, one row per shock, one column per regime;
    liquidated cells in their own colour."""
    try:
        import matplotlib
    except ImportError:
        raise ConfigError(
            "--png needs matplotlib: pip install 'safeguard[report]' (the table above is "
            "complete without it)"
        ) from None

    matplotlib.use("Agg")  # no display: a CLI on a server must not need one
    from matplotlib import pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Patch

    regimes = _regimes(report)
    shocks = _shocks(report)
    base = report.account_equity if report.account_equity > 0 else 1.0
    figure, axes = plt.subplots(figsize=(2.6 + 1.8 * len(regimes), 1.2 + 0.32 * len(shocks)),
                                layout="constrained")  # fmt: skip
    try:
        axes.imshow(heatmap_colours(report), aspect="auto")
        axes.set_xticks(range(len(regimes)), labels=list(regimes))
        axes.set_yticks(range(len(shocks)), labels=[f"{s * 100:+.1f}%" for s in shocks])
        for row, shock in enumerate(shocks):
            for column, regime in enumerate(regimes):
                cell = report.cell(regime, shock)
                left = f"{cell.equity / base * 100.0:.0f}%"
                label, ink = (f"{left} ✗", "white") if cell.liquidated else (left, "black")
                axes.text(column, row, label, ha="center", va="center", fontsize=7, color=ink)
        axes.set_title("Equity left (% of now); ✗ = liquidation")
        scale = ScalarMappable(norm=Normalize(vmin=0.0, vmax=150.0), cmap="RdYlGn")
        figure.colorbar(scale, ax=axes, label="% of current equity (no liquidation)")
        figure.legend(handles=[Patch(color=LIQUIDATED_COLOUR, label="liquidation (✗)")],
                      loc="outside lower center", fontsize=8, frameon=False)  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, format="png", dpi=110)
    finally:
        plt.close(figure)


def _regimes(report: StressReport) -> Sequence[Regime]:
    return tuple(dict.fromkeys(cell.regime for cell in report.cells))


def _shocks(report: StressReport) -> Sequence[float]:
    return tuple(dict.fromkeys(cell.shock for cell in report.cells))


__all__ = ["EXAMPLE", "LADDERS", "read_scenario", "register", "report_json", "scenario"]
