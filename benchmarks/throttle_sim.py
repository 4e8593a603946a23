"""Greedy traffic for three simulated minutes: a plain client against the guarded budget.

Run: .venv/bin/python benchmarks/throttle_sim.py
Prints, per run, the requests sent, 429s, when the IP was banned, the least and most used full
window of each limit, and how cancels fared; then how fast ``RateBudget.decide`` is.
"""

from __future__ import annotations

import time

from safeguard._config import ThrottleConfig
from safeguard.guard._throttle import BudgetRegistry, RateLimits, RequestKind
from safeguard.testing._ratesim import SimReport, simulate

LIMITS = RateLimits.from_exchange_info(
    [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
    ]
)
START = 1_700_000_040.0
LABELS = ("REQUEST_WEIGHT/1m", "ORDERS/10s", "ORDERS/1m")


def show(name: str, report: SimReport, *, budgeted: bool = True) -> None:
    banned = "never" if report.banned_at is None else f"after {report.banned_at - START:.1f} s"
    print(f"{name}: sent {report.sent}, 429s {report.throttled}, banned {banned}")
    for label in LABELS:
        windows = report.full_windows.get(label, [])
        if windows:
            print(
                f"  {label:<18} full windows {len(windows):>2}  "
                f"least used {report.utilisation(label):6.1%}  most used {report.peak(label):6.1%}"
            )
    if budgeted:
        print(f"  cancels asked of the budget: {dict(report.cancels)}")


def main() -> None:
    plain = simulate(LIMITS.limits, budget=None, start=START, seconds=180, seed=1)
    show("plain client", plain, budgeted=False)
    for offset, seed in ((0.0, 1), (-0.3, 2), (0.3, 3)):
        budget = BudgetRegistry(ThrottleConfig()).get("ip", "acct", LIMITS)
        report = simulate(
            LIMITS.limits, budget=budget, start=START, seconds=180, clock_offset=offset, seed=seed
        )
        show(f"guarded budget (venue clock {offset:+.1f} s)", report)

    budget = BudgetRegistry(ThrottleConfig()).get("ip", "acct", LIMITS)
    n = 200_000
    began = time.process_time()
    now = START
    for i in range(n):
        now += 0.0003
        budget.decide(RequestKind.READ if i % 4 else RequestKind.ORDER, 1, now)
    took = time.process_time() - began
    print(f"RateBudget.decide: {n / took:,.0f} decisions/s ({took / n * 1e6:.2f} us CPU each)")


if __name__ == "__main__":
    main()
