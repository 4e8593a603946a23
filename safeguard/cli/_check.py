"""``safeguard check``: the pre-trade verdict on one order, as a table or as JSON.

::

    safeguard check                                   # a sample order on the sample market
    safeguard check buy 0.5 --stop 58800 --leverage 10
    safeguard check sell 2 61000 --stop 61500 --margin-mode cross --wallet 25000 --json
    safeguard check buy 1 --stop 59000 --degraded --policy policy.toml

The market is built in: BTC/USDT:USDT on Binance USD-M (its twelve-bracket ladder, tick 0.1,
step 0.001) with a synthetic 50-level book around ``--mark``, observed just now. With no order
on the command line the sample order is a 0.5 BTC market buy at 10x isolated with a stop 2 %
under the mark.

Exit codes: 0 ALLOW or WARN; 1 DENY; 2 bad input (the message names the field).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from safeguard._config import Policy
from safeguard.risk._book import Side
from safeguard.risk._cascade import LiquidationBand
from safeguard.risk._liquidation import MODELS, PositionLeg
from safeguard.risk._models import (
    MARGIN_MODES,
    ORDER_TYPES,
    STOP_TRIGGERS,
    Account,
    OrderIntent,
    OrderType,
)
from safeguard.risk._outcome import Costing, Decision, Severity, Verdict, fmt, pct
from safeguard.risk._preview import preview
from safeguard.risk._sample import BTCUSDT_TIERS_12, SYMBOL, sample_market

_SAMPLE_SIDE: Side = "buy"
_SAMPLE_AMOUNT = 0.5
_SAMPLE_STOP_BELOW_MARK = 0.02


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="pre-trade verdict on one order (liquidation vs stop, limits, market rules)",
        description="The pre-trade verdict on one order, as a table or as JSON.",
        epilog="With no SIDE/AMOUNT, a sample order is checked. Exit: 0 allow/warn, 1 deny, "
        "2 bad input.",
    )
    parser.add_argument("side", nargs="?", choices=("buy", "sell"), help="order side")
    parser.add_argument("amount", nargs="?", type=float, help="amount in base units (BTC)")
    parser.add_argument("price", nargs="?", type=float, help="limit price (omit: market order)")
    order = parser.add_argument_group("order")
    order.add_argument(
        "--symbol",
        default=SYMBOL,
        type=_known_symbol,
        help=f"symbol (the one built-in market: {SYMBOL})",
    )
    order.add_argument("--type", choices=ORDER_TYPES, help="order type (default from PRICE)")
    order.add_argument("--leverage", type=float, default=10.0, help="leverage (default 10)")
    order.add_argument("--stop", type=float, help="stop-loss trigger price protecting the position")
    order.add_argument("--stop-trigger", choices=STOP_TRIGGERS, default="mark")
    order.add_argument("--margin-mode", choices=MARGIN_MODES, default="isolated")
    order.add_argument("--reduce-only", action="store_true")
    order.add_argument("--post-only", action="store_true")
    acct = parser.add_argument_group("account")
    acct.add_argument("--wallet", type=float, default=10_000.0, help="wallet balance (USDT)")
    acct.add_argument("--available", type=float, help="free margin (default: the wallet)")
    acct.add_argument(
        "--position",
        type=float,
        help="signed BTC already held in the symbol (negative: short), entered at the mark",
    )
    acct.add_argument("--open-orders", type=int, default=0)
    market = parser.add_argument_group("market")
    market.add_argument("--mark", type=float, default=60_000.0, help="mark price")
    market.add_argument("--last", type=float, help="last traded price (default: the mark)")
    market.add_argument("--volatility", type=float, default=0.01, help="1 h volatility (0.01=1%%)")
    market.add_argument("--funding-rate", type=float, default=0.0001)
    # The built-in market is linear (USDT-margined): the coin-margined model does not apply.
    linear_models = sorted(name for name in MODELS if name != "binancecoinm")
    market.add_argument("--model", choices=linear_models, default="binanceusdm")
    parser.add_argument("--policy", help="policy TOML file (default: built-in defaults + env)")
    parser.add_argument("--degraded", action="store_true", help="price on the degraded model")
    parser.add_argument("--no-size-search", action="store_true", help="skip max_safe_amount")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON")
    parser.set_defaults(handler=run)


def _known_symbol(text: str) -> str:
    if text != SYMBOL:
        raise argparse.ArgumentTypeError(
            f"{text!r}: check prices orders on one built-in market, {SYMBOL} (Binance's "
            "twelve-bracket ladder); for another market, preview it from a guarded exchange "
            "(exchange.preview) where the venue supplies its rules"
        )
    return text


def run(args: argparse.Namespace) -> int:
    now = time.time()  # the command is the I/O edge: it reads the clock once, here
    try:
        policy = Policy.load(args.policy)
        intent = _intent(args)
        market = sample_market(
            now,
            mark=args.mark,
            last=args.last,
            volatility=args.volatility,
            funding_rate=args.funding_rate,
            model=args.model,
        )
        account = _account(args, intent)
    except ValueError as exc:
        print(f"safeguard check: {exc}", file=sys.stderr)
        return 2
    verdict = preview(
        intent,
        market,
        account,
        now=now,
        policy=policy,
        degraded=args.degraded,
        size_search=not args.no_size_search,
        band=True,
    )
    if args.json:
        print(json.dumps(verdict.to_dict(), indent=2))
    else:
        _print_table(verdict, intent)
    return 1 if verdict.decision is Decision.DENY else 0


def _intent(args: argparse.Namespace) -> OrderIntent:
    side: Side
    if args.side is None:
        side, amount = _SAMPLE_SIDE, _SAMPLE_AMOUNT
        stop = args.stop
        if stop is None:
            stop = round(args.mark * (1 - _SAMPLE_STOP_BELOW_MARK), 1)
    else:
        if args.amount is None:
            raise ValueError("amount is required after the side (e.g. `check buy 0.5`)")
        side, amount, stop = args.side, args.amount, args.stop
    kind: OrderType = args.type or ("limit" if args.price is not None else "market")
    return OrderIntent(
        symbol=args.symbol,
        side=side,
        amount=amount,
        type=kind,
        price=args.price,
        leverage=args.leverage,
        margin_mode=args.margin_mode,
        reduce_only=args.reduce_only,
        post_only=args.post_only,
        stop_price=stop,
        stop_trigger=args.stop_trigger,
    )


def _account(args: argparse.Namespace, intent: OrderIntent) -> Account:
    positions: tuple[PositionLeg, ...] = ()
    if args.position:
        quantity = abs(args.position)
        isolated = intent.margin_mode == "isolated"
        positions = (
            PositionLeg(
                symbol=SYMBOL,
                side=1 if args.position > 0 else -1,
                quantity=quantity,
                entry_price=args.mark,
                mark_price=args.mark,
                tiers=BTCUSDT_TIERS_12,
                isolated_wallet=quantity * args.mark / args.leverage if isolated else None,
            ),
        )
    available = args.available
    if available is None and (positions or args.open_orders):
        available = args.wallet
    return Account(
        wallet_balance=args.wallet,
        positions=positions,
        open_orders=args.open_orders,
        available_balance=available,
    )


# --- the table ------------------------------------------------------------------------------

_STYLE = {Decision.ALLOW: "bold green", Decision.WARN: "bold yellow", Decision.DENY: "bold red"}


def _print_table(verdict: Verdict, intent: OrderIntent) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=110, highlight=False)
    what = f"{intent.type} {intent.side} {fmt(intent.amount)} {intent.symbol}"
    if intent.price is not None:
        what += f" @ {fmt(intent.price)}"
    what += f", {fmt(intent.leverage)}x {intent.margin_mode}"
    if intent.stop_price is not None:
        what += f", stop {fmt(intent.stop_price)} ({intent.stop_trigger})"
    if intent.reduce_only:
        what += ", reduce-only"
    if intent.post_only:
        what += ", post-only"
    console.print(f"[bold]safeguard check[/bold]  {what}")
    console.print(
        f"verdict: [{_STYLE[verdict.decision]}]{verdict.decision}[/]   fill model: {verdict.face}"
    )
    if verdict.findings:
        findings = Table(show_header=True, header_style="bold", expand=True)
        findings.add_column("", width=4)
        findings.add_column("code", no_wrap=True)
        findings.add_column("finding", ratio=1)
        for finding in verdict.findings:
            mark = "[red]DENY[/]" if finding.severity is Severity.DENY else "[yellow]WARN[/]"
            findings.add_row(mark, str(finding.code), finding.message)
        console.print(findings)
    else:
        console.print("no findings: every check passed")
    faces = [verdict.costing]
    if verdict.costing is not None and verdict.expected is not verdict.costing:
        faces = [verdict.expected, verdict.costing]
    numbers = Table(show_header=True, header_style="bold")
    numbers.add_column("the numbers")
    for cost in faces:
        numbers.add_column(str(cost.face) if cost is not None else "", justify="right")
    for label, cells in _rows(faces):
        numbers.add_row(label, *cells)
    max_safe = verdict.max_safe_amount
    numbers.add_row(
        "max safe amount",
        *(["not searched" if max_safe is None else fmt(max_safe)] + [""] * (len(faces) - 1)),
    )
    console.print(numbers)
    if verdict.band is not None:
        console.print(_band_table(verdict.band))


def _band_table(band: LiquidationBand) -> Any:
    """The band on the mark: each edge's price, its distance, and the time after which it is
    one standard deviation away at the market's volatility (a scale, not a forecast)."""
    from rich.table import Table

    table = Table(
        title=f"liquidation band (margin ratio now {pct(band.margin_ratio * 100.0)} %)",
        show_header=True,
        header_style="bold",
    )
    table.add_column("edge")
    table.add_column("mark", justify="right")
    table.add_column("move", justify="right")
    table.add_column("1σ time", justify="right")
    for name in ("warning", "partial", "liquidation"):
        edge = getattr(band, name)
        if edge is None:
            passed = name == "warning" and band.warning_passed
            table.add_row(name, "passed already" if passed else "-", "", "")
            continue
        move = (edge.price / band.mark - 1.0) * 100.0
        table.add_row(name, fmt(edge.price), f"{pct(move)} %", _duration(edge.one_sigma_time))
    return table


def _duration(seconds: float) -> str:
    if seconds < 120.0:
        return f"{seconds:,.0f} s"
    if seconds < 7_200.0:
        return f"{seconds / 60.0:,.0f} min"
    if seconds < 172_800.0:
        return f"{seconds / 3_600.0:,.1f} h"
    return f"{seconds / 86_400.0:,.1f} d"


def _rows(faces: list[Costing | None]) -> list[tuple[str, list[str]]]:
    def cell(cost: Costing | None, name: str, suffix: str = "") -> str:
        if cost is None:
            return "n/a"
        value: Any = getattr(cost, name)
        if value is None:
            return "-"
        return f"{pct(value) if suffix else fmt(value)}{suffix}"

    def liq(cost: Costing | None) -> str:
        if cost is None:
            return "n/a"
        if cost.liquidation_price is None:
            return f"cannot be liquidated ({cost.liquidation_reason})".replace(" ()", "")
        return f"{fmt(cost.liquidation_price)} ({cost.liquidation_model})"

    def tier(cost: Costing | None) -> str:
        if cost is None or cost.tier is None:
            return "-"
        return f"{cost.tier} (max {fmt(cost.tier_max_leverage or 0.0)}x)"

    rows: list[tuple[str, list[str]]] = [
        ("expected entry", [cell(c, "expected_entry") for c in faces]),
        ("slippage vs touch", [cell(c, "slippage_bps", " bps") for c in faces]),
        ("order notional", [cell(c, "order_notional") for c in faces]),
        ("entry fee", [cell(c, "entry_fee") for c in faces]),
        ("initial margin", [cell(c, "initial_margin") for c in faces]),
        ("position after", [cell(c, "position_after") for c in faces]),
        ("position notional", [cell(c, "position_notional") for c in faces]),
        ("maintenance margin", [cell(c, "maintenance_margin") for c in faces]),
        ("tier", [tier(c) for c in faces]),
        ("liquidation price", [liq(c) for c in faces]),
        ("stop fill", [cell(c, "stop_fill_price") for c in faces]),
        ("stop fill after fee, mark terms", [cell(c, "stop_effective_price") for c in faces]),
        ("stop inside liquidation by", [cell(c, "stop_distance_pct", " %") for c in faces]),
        ("... in recent volatilities", [cell(c, "stop_distance_vol", " σ") for c in faces]),
        ("expected funding (paid)", [cell(c, "expected_funding") for c in faces]),
    ]
    return rows


__all__ = ["register", "run"]
