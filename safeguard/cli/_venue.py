"""``safeguard venue``: serve the mock Binance USD-M venue on loopback HTTP, and steer it.

    safeguard venue serve --port 8900 --seed 7 --symbols BTCUSDT,ETHUSDT \\
        --faults plan.toml --api-key KEY --secret SECRET
    safeguard venue faults http://127.0.0.1:8900 --plan other.toml   # or --clear, or nothing
    safeguard venue liquidations http://127.0.0.1:8900 [--account KEY]  # fairness report

``--metrics-port 9465`` also serves Prometheus metrics of what the venue serves (requests by
route and status, 429/418 answers, orders, fills, liquidations; ``safeguard[metrics]``).
Without ``--api-key``/``--secret`` a key pair is generated and printed. The venue runs on wall
time (bots sign with wall time). Stop it with Ctrl-C.
"""

from __future__ import annotations

import argparse
import ipaddress
import secrets
import signal
import sys
from typing import Any

from safeguard._errors import ConfigError
from safeguard.cli import Unreachable


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    venue = subparsers.add_parser("venue", help="run the mock Binance USD-M venue")
    commands = venue.add_subparsers(dest="venue_command", metavar="ACTION", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve the venue over loopback HTTP",
        description="Serve the simulated perpetual-futures venue in the Binance USD-M dialect.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8900, help="port (0 picks a free one)")
    serve.add_argument("--seed", type=int, default=None, help="simulation seed")
    serve.add_argument(
        "--symbols", default=None, help="comma-separated symbols (default: the engine's)"
    )
    serve.add_argument("--faults", default=None, help="fault plan file (.toml or .json)")
    serve.add_argument("--api-key", default=None, help="account API key")
    serve.add_argument("--secret", default=None, help="account secret")
    serve.add_argument(
        "--wallet", type=float, default=10_000.0, help="starting USDT wallet (default 10000)"
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="also serve Prometheus metrics on this port, on --host (needs safeguard[metrics])",
    )
    serve.set_defaults(handler=run_serve)

    faults = commands.add_parser(
        "faults",
        help="show, replace or clear a running venue's fault plan",
        description="Talk to a running venue's /admin/faults route (loopback only).",
    )
    faults.add_argument("url", help="the venue's base URL, e.g. http://127.0.0.1:8900")
    action = faults.add_mutually_exclusive_group()
    action.add_argument("--plan", default=None, help="fault plan file (.toml or .json) to install")
    action.add_argument("--clear", action="store_true", help="remove every fault")
    faults.set_defaults(handler=run_faults)

    report = commands.add_parser(
        "liquidations",
        help="print a running venue's liquidation fairness report",
        description=(
            "Every liquidation order (partial steps, take-overs, auto-deleveraging) of a running "
            "venue, with the mark, bankruptcy and close prices, slippage, fee and insurance fund "
            "change, reconciled against the accounts' income and the fund (loopback only)."
        ),
    )
    report.add_argument("url", help="the venue's base URL, e.g. http://127.0.0.1:8900")
    report.add_argument("--account", default=None, help="only this API key's rows")
    report.set_defaults(handler=run_liquidations)


def _venue_config(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    from safeguard._config import config_error_from
    from safeguard.venue._config import VenueConfig

    overrides: dict[str, Any] = {}
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.symbols is not None:
        overrides["symbols"] = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    try:
        return VenueConfig(**overrides)
    except ValidationError as exc:
        raise config_error_from(exc, source="command line") from None


def run_serve(args: argparse.Namespace) -> int:
    from safeguard._clock import SystemClock
    from safeguard.venue._engine import Venue
    from safeguard.venue._faults import FaultPlan
    from safeguard.venue._server import VenueServer

    if (args.api_key is None) != (args.secret is None):
        raise ConfigError("--api-key and --secret go together (or leave both out)")
    if args.api_key is not None and not (args.api_key.strip() and args.secret.strip()):
        raise ConfigError("--api-key and --secret must not be empty")
    if not args.wallet > 0 or args.wallet == float("inf"):
        raise ConfigError(f"--wallet must be a positive number, got {args.wallet!r}")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in [0, 65535], got {args.port}")
    if args.metrics_port is not None and not 0 <= args.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be in [0, 65535], got {args.metrics_port}")
    plan = FaultPlan.load(args.faults) if args.faults else None
    generated = args.api_key is None
    api_key = args.api_key or secrets.token_hex(16)
    secret = args.secret or secrets.token_hex(32)

    try:
        venue = Venue(_venue_config(args), clock=SystemClock())
    except ValueError as exc:
        raise ConfigError(f"cannot build the venue: {exc}") from None
    with venue.lock:
        venue.create_account(api_key, secret, wallet=args.wallet)
    metered = _metered_dialect(venue, plan) if args.metrics_port is not None else None
    try:
        if metered is None:
            server = VenueServer(venue, args.host, args.port, faults=plan)
        else:
            server = VenueServer(venue, args.host, args.port, dialect=metered)
    except OSError as exc:
        raise Unreachable(f"cannot listen on {args.host}:{args.port}: {exc}") from None
    scrape = None
    if metered is not None:
        from safeguard.observability import serve_metrics

        try:
            scrape = serve_metrics(args.metrics_port, metered.metrics.registry, host=args.host)
        except ConfigError as exc:
            server.close()
            if isinstance(exc.__cause__, OSError):  # the port is taken: as for the venue's
                raise Unreachable(str(exc)) from None
            raise
    if not ipaddress.ip_address(server.host).is_loopback:
        print(
            f"safeguard: warning: serving on {server.host}, not loopback: anyone who can reach "
            "it can trade with the printed key (the /admin routes still answer loopback only)",
            file=sys.stderr,
        )
    print(f"venue: {server.url}", flush=True)
    print(f"streams: ws{server.url.removeprefix('http')}/ws", flush=True)
    if scrape is not None:
        print(f"metrics: {scrape.url}", flush=True)
    print(f"api key: {api_key}", flush=True)
    if generated:
        print(f"secret: {secret}", flush=True)
    print(f"symbols: {','.join(venue.markets)}", flush=True)

    def stop(signum: int, frame: Any) -> None:
        server.close()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        if scrape is not None:
            scrape.close()
        signal.signal(signal.SIGTERM, previous)
    return 0


def _metered_dialect(venue: Any, plan: Any) -> Any:
    """The venue's dialect counting what it serves (a ConfigError names the missing extra)."""
    from safeguard.observability._venue import MeteredDialect, VenueMetrics

    return MeteredDialect(venue, VenueMetrics(venue), faults=plan)


def run_faults(args: argparse.Namespace) -> int:
    import json

    from safeguard.venue._faults import FaultPlan

    method, data = "GET", None
    if args.plan is not None:
        # Validate here so a typo is reported against the file, before anything is sent.
        plan = FaultPlan.load(args.plan)
        method, data = "POST", json.dumps(plan.model_dump(mode="json")).encode()
    elif args.clear:
        method = "DELETE"
    return _admin(args.url, "/admin/faults", method, data)


def run_liquidations(args: argparse.Namespace) -> int:
    import urllib.parse

    query = "" if args.account is None else "?" + urllib.parse.urlencode({"account": args.account})
    return _admin(args.url, "/admin/liquidations" + query, "GET", None)


def _admin(url: str, route: str, method: str, data: bytes | None) -> int:
    """Call a running venue's admin ``route`` and print its JSON answer."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"{url!r} is not the venue's base URL: give it as `safeguard venue serve` "
            "printed it, e.g. http://127.0.0.1:8900"
        )
    request = urllib.request.Request(
        url.rstrip("/") + route,
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            state = json.loads(answer.read())
    except urllib.error.HTTPError as error:
        print(
            f"safeguard: the venue refused: {error.code} {error.read().decode()}", file=sys.stderr
        )
        return 1
    except (urllib.error.URLError, OSError) as exc:
        raise Unreachable(f"cannot reach the venue at {url}: {exc}") from None
    except ValueError:
        raise Unreachable(
            f"{url} answered, but not as a safeguard venue does (no JSON): is it one?"
        ) from None
    print(json.dumps(state, indent=2, sort_keys=True))
    return 0


__all__ = ["register", "run_faults", "run_liquidations", "run_serve"]
