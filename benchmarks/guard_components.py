"""Per-call cost of the guard's pure components (what every request pays).

Run: .venv/bin/python benchmarks/guard_components.py
Figures are CPU time (``time.process_time``), so other load on the machine does not inflate
them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import ccxt

from safeguard._config import DegradationConfig, RetryConfig
from safeguard.guard._classify import classify
from safeguard.guard._degradation import HealthMonitor
from safeguard.guard._redact import forget_secrets, register_secret, scrub_text
from safeguard.guard._request_log import request_record
from safeguard.guard._retry import RetryPolicy
from safeguard.guard._throttle import RateBudget, RequestKind

T0 = 1_700_000_040.0
MESSAGE = (
    "binanceusdm GET https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&orderId=1"
    "&timestamp=1700000000000&recvWindow=10000&signature=9f1c2e3d4b5a69788796a5b4c3d2e1f0 "
    '503 Service Unavailable {"code":-1001,"msg":"Internal error"}'
)


def per_call(name: str, fn: Callable[[int], object], n: int) -> None:
    began = time.process_time()
    for i in range(n):
        fn(i)
    took = time.process_time() - began
    print(f"{name:<48} {took / n * 1e6:8.2f} us/call  ({n:,} calls)")


def main() -> None:
    register_secret("vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A")
    exc = ccxt.ExchangeNotAvailable(MESSAGE)
    per_call("classify(ExchangeNotAvailable with URL)", lambda i: classify(exc), 20_000)

    policy = RetryPolicy(RetryConfig())
    ec = classify(exc)
    rng = random.Random(1)
    per_call("RetryPolicy.decide", lambda i: policy.decide(1 + i % 5, 0.5, ec, None, rng), 50_000)

    budget = RateBudget.standalone()
    per_call(
        "RateBudget.decide (weight 1, 3 limits)",
        lambda i: budget.decide(RequestKind.READ, 1, T0 + i * 0.03),
        50_000,
    )
    headers = {"X-MBX-USED-WEIGHT-1M": "120", "X-MBX-ORDER-COUNT-10S": "3"}
    per_call("RateBudget.observe (2 headers)", lambda i: budget.observe(headers, T0 + i), 50_000)

    monitor = HealthMonitor(DegradationConfig())
    per_call(
        "HealthMonitor.record (~1,200 samples in window)",
        lambda i: monitor.record("GET /ticker", 0.05 + (i % 7) * 0.01, "ok", T0 + i * 0.05),
        50_000,
    )
    per_call("scrub_text (signed URL, 1 registered secret)", lambda i: scrub_text(MESSAGE), 20_000)
    params = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.01", "signature": "abc"}
    per_call(
        "request_record (redacted)",
        lambda i: request_record(
            method="create_order",
            endpoint="POST /fapi/v1/order",
            params=params,
            status=200,
            latency_s=0.02,
            headers=headers,
            client_order_id="sg-1",
            policy_version="abc",
        ),
        20_000,
    )
    forget_secrets()


if __name__ == "__main__":
    main()
