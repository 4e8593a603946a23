"""Guarded exchanges in one process share the venue's limits, whatever their tuning.

Binance counts request weight per IP: two bots on one host draw on one window, whether their
policies agree on how close to the limit they may go or not. Each keeps its own thresholds
over the shared counts. Real ccxt against the in-process mock venue, on simulated time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from safeguard._clock import ManualClock
from safeguard._config import Policy
from safeguard.guard import guard
from safeguard.guard._throttle import RateBudget
from safeguard.killswitch._switch import KillSwitch
from safeguard.venue import Venue, VenueConfig
from safeguard.venue._dialect import Dialect
from safeguard.venue._inprocess import inprocess_client

SYMBOL = "ETH/USDT:USDT"
ACCOUNTS = (
    ("shared-key-a-0123456789", "shared-secret-a-0123456789abcdef"),
    ("shared-key-b-0123456789", "shared-secret-b-0123456789abcdef"),
)


def _budget(exchange: Any) -> RateBudget:
    budget: RateBudget = exchange.runtime.core.pacer.budget
    return budget


def test_policies_differing_only_in_soft_threshold_share_one_ips_weight_window(
    tmp_path: Path,
) -> None:
    clock = ManualClock(1_700_000_010.0)
    venue = Venue(VenueConfig(symbols=("ETHUSDT",)), clock=clock)
    dialect = Dialect(venue)
    guarded = []
    for (key, secret), soft in zip(ACCOUNTS, (0.6, 0.7), strict=True):
        venue.create_account(key, secret, wallet=10_000.0)
        policy = Policy.build(
            kill_switch={"state_dir": tmp_path, "watch_state_file": False},
            throttle={"soft_threshold": soft},
        )
        switch = KillSwitch(policy.kill_switch, clock=clock, watch=False)
        ex = guard(inprocess_client(dialect, key, secret), policy, kill_switch=switch, clock=clock)
        guarded.append((ex, switch))
    (first, _), (second, _) = guarded
    try:
        first.load_markets()
        for _ in range(5):
            first.fetch_order_book(SYMBOL, 1000)
        now = clock.time()
        used = _budget(first).usage(now)
        weight = [label for label in used if "WEIGHT" in label.upper()]
        assert weight
        assert used[weight[0]] > 0.0
        # The second bot never sent a request: what it sees used is the first one's.
        assert _budget(second).usage(now)[weight[0]] == used[weight[0]]
        # Each paces on its own policy's threshold over the shared count.
        assert (_budget(first).config.soft_threshold, _budget(second).config.soft_threshold) == (
            0.6,
            0.7,
        )
    finally:
        for ex, switch in guarded:
            ex.runtime.core.journal.close()
            switch.close()
