"""The rate budget: limits, pacing, reserve, 429/418, sharing, persisted bans, and a simulated
run of greedy traffic against a venue that counts exactly as Binance does."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeguard._config import ThrottleConfig
from safeguard._errors import ConfigError
from safeguard.guard._bans import FILENAME, BanStore
from safeguard.guard._core import Answer, Send
from safeguard.guard._pacing import BudgetPacer, refused_limit
from safeguard.guard._throttle import (
    GO,
    Banned,
    BudgetRegistry,
    Go,
    Hold,
    LimitType,
    RateBudget,
    RateLimit,
    RateLimits,
    RequestKind,
    Wait,
    account_fingerprint,
    rate_headers,
    registry_for,
)
from safeguard.testing._ratesim import simulate

EXCHANGE_INFO_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
]
T0 = 1_700_000_040.0  # a minute boundary: 1_700_000_040 = 28_333_334 * 60


def small_budget(**overrides: float) -> RateBudget:
    config = ThrottleConfig(
        soft_threshold=0.7, hard_threshold=0.9, reserve_fraction=0.05, window_skew_s=0.0,
        **overrides,  # type: ignore[arg-type]
    )  # fmt: skip
    limits = RateLimits((RateLimit(LimitType.REQUEST_WEIGHT, 60, 100),))
    return RateBudget.standalone(config, limits)


# --- limits -----------------------------------------------------------------------------------


def test_limits_from_exchange_info_and_overrides() -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    assert {(lim.label, lim.limit) for lim in limits.limits} == {
        ("REQUEST_WEIGHT/1m", 2400),
        ("ORDERS/10s", 300),
        ("ORDERS/1m", 1200),
    }
    overridden = RateLimits.from_exchange_info(
        EXCHANGE_INFO_LIMITS, ThrottleConfig(weight_limit_per_minute=1000, orders_per_10s=50)
    )
    assert {(lim.label, lim.limit) for lim in overridden.limits} == {
        ("REQUEST_WEIGHT/1m", 1000),
        ("ORDERS/10s", 50),
        ("ORDERS/1m", 1200),
    }
    assert RateLimits.from_exchange_info(None).limits == RateLimits().limits  # USD-M defaults


def _row(interval: object, number: object, limit: object) -> dict[str, object]:
    return {"rateLimitType": "ORDERS", "interval": interval, "intervalNum": number, "limit": limit}


@pytest.mark.parametrize(
    ("row", "field"),
    [
        (_row("FORTNIGHT", 1, 5), "interval"),
        (_row("SECOND", 0, 5), "intervalNum"),
        (_row("SECOND", 1, -1), "limit"),
        (_row("SECOND", 1, 1.5), "limit"),
        (_row("SECOND", 1, True), "limit"),
    ],
)
def test_malformed_rate_limits_are_refused_by_name(row: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=rf"rateLimits\[0\]\.{field}"):
        RateLimits.from_exchange_info([row])


# --- pacing, holds and the reserve --------------------------------------------------------------


def test_below_soft_everything_goes_at_once() -> None:
    budget = small_budget()
    assert all(budget.decide(RequestKind.READ, 10, T0 + 1) == GO for _ in range(7))
    assert budget.usage(T0 + 1) == {"REQUEST_WEIGHT/1m": 0.7}


def test_past_soft_reads_are_spaced_over_the_rest_of_the_window() -> None:
    budget = small_budget()
    for _ in range(7):
        budget.decide(RequestKind.READ, 10, T0 + 1)
    assert budget.decide(RequestKind.READ, 10, T0 + 1) == GO  # crosses the soft line: 80
    decision = budget.decide(RequestKind.READ, 5, T0 + 1)
    assert isinstance(decision, Wait)
    # 10 left under the hard line (90), 59 s left: the next read is spaced, not refused.
    assert 0 < decision.seconds < 59


def test_reads_hold_at_the_hard_threshold_while_orders_and_cancels_still_go() -> None:
    budget = small_budget()
    now = T0 + 50
    budget.observe({"X-MBX-USED-WEIGHT-1M": "90"}, now)
    held = budget.decide(RequestKind.READ, 1, now)
    assert isinstance(held, Hold)
    assert held.retry_after == pytest.approx(10.0)  # until the minute rolls
    assert held.limit == "REQUEST_WEIGHT/1m"
    assert budget.decide(RequestKind.ORDER, 5, now) == GO  # 95 = L - reserve
    assert isinstance(budget.decide(RequestKind.ORDER, 1, now), Wait)  # the reserve is not theirs
    assert isinstance(budget.decide(RequestKind.ESSENTIAL_READ, 1, now), Wait)
    assert budget.decide(RequestKind.CANCEL, 3, now) == GO  # the reserve is for this
    assert budget.decide(RequestKind.REDUCE_ONLY, 2, now) == GO  # and this: now exactly 100
    assert isinstance(budget.decide(RequestKind.CANCEL, 1, now), Wait)  # never beyond L
    assert budget.decide(RequestKind.READ, 10, T0 + 60) == GO  # the window rolled


def test_cancels_are_never_paced() -> None:
    budget = small_budget()
    budget.observe({"x-mbx-used-weight-1m": "80"}, T0 + 1)
    assert budget.decide(RequestKind.READ, 1, T0 + 1) == GO
    assert isinstance(budget.decide(RequestKind.READ, 1, T0 + 1), Wait)  # paced
    assert budget.decide(RequestKind.CANCEL, 1, T0 + 1) == GO


def test_orders_count_against_order_limits_and_cancels_do_not() -> None:
    limits = RateLimits((RateLimit(LimitType.ORDERS, 10, 20),))
    budget = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    assert budget.decide(RequestKind.READ, 50, T0) == GO  # reads cost nothing here
    for _ in range(10):
        assert budget.decide(RequestKind.CANCEL, 1, T0) == GO
    assert budget.usage(T0) == {"ORDERS/10s": 0.0}
    assert budget.decide(RequestKind.ORDER, 0, T0, orders=5) == GO
    assert budget.usage(T0) == {"ORDERS/10s": 0.25}


def test_observed_headers_only_raise_the_estimate_and_stale_windows_are_ignored() -> None:
    budget = small_budget()
    for _ in range(3):
        budget.decide(RequestKind.READ, 10, T0 + 1)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "12"}, T0 + 1)  # two requests still in flight
    assert budget.usage(T0 + 1)["REQUEST_WEIGHT/1m"] == 0.3
    budget.observe({"X-MBX-USED-WEIGHT-1M": "55"}, T0 + 1)  # another process on our IP
    assert budget.usage(T0 + 1)["REQUEST_WEIGHT/1m"] == 0.55
    # An answer to a request sent in the previous minute describes that minute.
    budget.observe({"X-MBX-USED-WEIGHT-1M": "99"}, T0 + 60.2, sent_at=T0 + 59.9)
    assert budget.usage(T0 + 60.2)["REQUEST_WEIGHT/1m"] == 0.0
    budget.observe({"X-MBX-USED-WEIGHT-1M": "garbage", "Other": "1"}, T0 + 61)
    assert budget.usage(T0 + 61)["REQUEST_WEIGHT/1m"] == 0.0


def test_raw_request_counts_are_local_only() -> None:
    limits = RateLimits.from_exchange_info(
        [
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 1, "limit": 10},
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 100,
            },
        ]
    )
    budget = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    budget.decide(RequestKind.READ, 5, T0)
    budget.observe({"X-MBX-USED-WEIGHT-1M": "40"}, T0)  # weight, not a request count
    assert budget.usage(T0) == {"RAW_REQUESTS/1m": 0.1, "REQUEST_WEIGHT/1m": 0.4}


def test_refund_gives_back_an_unsent_request() -> None:
    budget = small_budget()
    budget.decide(RequestKind.READ, 30, T0)
    budget.refund(RequestKind.READ, 30, T0)
    assert budget.usage(T0)["REQUEST_WEIGHT/1m"] == 0.0


@pytest.mark.parametrize(
    ("weight", "kind", "field"),
    [
        (float("nan"), RequestKind.READ, "weight"),
        (float("inf"), RequestKind.READ, "weight"),
        (-1, RequestKind.READ, "weight"),
        (1, "SOMETHING", "SOMETHING"),
    ],
)
def test_bad_requests_are_refused_by_name(weight: float, kind: str, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        small_budget().decide(kind, weight, T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="now"):
        small_budget().decide(RequestKind.READ, 1, float("nan"))
    with pytest.raises(ValueError, match="orders"):
        small_budget().decide(RequestKind.ORDER, 1, T0, orders=0)


@settings(max_examples=150, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.floats(min_value=0.0, max_value=3.0),
            st.sampled_from(list(RequestKind)),
            st.integers(min_value=0, max_value=9),
        ),
        max_size=300,
    ),
    header=st.one_of(st.none(), st.integers(min_value=0, max_value=120)),
)
def test_no_sequence_of_requests_ever_overspends(
    steps: list[tuple[float, RequestKind, int]], header: int | None
) -> None:
    """Whatever arrives, in any order and at any pace, each kind stays under its own line."""
    budget = small_budget()
    if header is not None:
        budget.observe({"X-MBX-USED-WEIGHT-1M": str(header)}, T0)
    now = T0
    charged: dict[int, float] = {}
    for dt, kind, weight in steps:
        now += dt
        window = int(now // 60)
        base = charged.get(window, float(header or 0) if window == int(T0 // 60) else 0.0)
        if isinstance(budget.decide(kind, weight, now), Go) and weight:  # weight 0 costs nothing
            charged[window] = base + weight
            line = {RequestKind.READ: 90, RequestKind.CANCEL: 100, RequestKind.REDUCE_ONLY: 100}
            assert charged[window] <= line.get(kind, 95), (kind, charged[window])


# --- 429 and 418 -----------------------------------------------------------------------------


def test_429_with_retry_after_stops_everything_for_that_long() -> None:
    budget = small_budget()
    assert budget.record_throttle(429, 7.0, T0) == 7.0
    for kind in RequestKind:
        decision = budget.decide(kind, 1, T0 + 2)
        assert isinstance(decision, Wait)
        assert decision.seconds == pytest.approx(5.0)
    assert budget.decide(RequestKind.READ, 1, T0 + 7) == GO


def test_an_order_count_429_never_stops_a_cancel() -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    budget = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    budget.observe({"X-MBX-ORDER-COUNT-10S": "300", "X-MBX-USED-WEIGHT-1M": "100"}, T0 + 1)
    budget.record_throttle(429, 5.0, T0 + 1)
    assert budget.decide(RequestKind.CANCEL, 1, T0 + 2) == GO  # cancels count no order
    assert isinstance(budget.decide(RequestKind.READ, 1, T0 + 2), Wait)  # Retry-After holds
    assert isinstance(budget.decide(RequestKind.REDUCE_ONLY, 0, T0 + 2), Wait)  # an order
    # A 429 nothing explains stops cancels too: we do not know which limit it was.
    unexplained = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    unexplained.record_throttle(429, 5.0, T0 + 1)
    assert isinstance(unexplained.decide(RequestKind.CANCEL, 1, T0 + 2), Wait)


def test_429_without_retry_after_marks_the_hot_window_full() -> None:
    budget = small_budget()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "93"}, T0 + 30)
    assert budget.record_throttle(429, None, T0 + 30) == pytest.approx(30.0)
    assert isinstance(budget.decide(RequestKind.CANCEL, 1, T0 + 31), Wait)
    assert budget.decide(RequestKind.CANCEL, 1, T0 + 60) == GO


def test_a_429_asking_for_no_wait_is_held_like_one_that_did_not_say() -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    zero = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    silent = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    assert zero.record_throttle(429, 0.0, T0 + 3) == silent.record_throttle(429, None, T0 + 3)
    assert isinstance(zero.decide(RequestKind.READ, 1, T0 + 4), Wait)


def test_a_429_asking_for_days_is_cut_to_the_longest_window() -> None:
    budget = small_budget()
    assert budget.record_throttle(429, 1e12, T0) == 60.0
    assert budget.decide(RequestKind.READ, 1, T0 + 60) == GO


def test_unexplained_429_without_retry_after_waits_for_the_shortest_window() -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    budget = RateBudget.standalone(ThrottleConfig(window_skew_s=0.0), limits)
    assert budget.record_throttle(429, None, T0 + 3) == pytest.approx(7.0)  # the 10 s window
    with pytest.raises(ValueError, match="status"):
        budget.record_throttle(418, None, T0)


def test_418_bans_everything_and_survives_a_restart(tmp_path: Path) -> None:
    registry = BudgetRegistry(ThrottleConfig(), BanStore(tmp_path))
    budget = registry.get("binanceusdm@127.0.0.1", account_fingerprint("key-a"))
    budget.record_ban(T0 + 300, T0)
    for kind in RequestKind:
        assert budget.decide(kind, 1, T0 + 1) == Banned(T0 + 300)

    on_disk = json.loads((tmp_path / FILENAME).read_text())
    assert on_disk["bans"] == {"binanceusdm@127.0.0.1": T0 + 300}
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []

    # A new process: a new store and registry over the same directory.
    reborn = BudgetRegistry(ThrottleConfig(), BanStore(tmp_path)).get(
        "binanceusdm@127.0.0.1", account_fingerprint("key-b")
    )
    assert reborn.decide(RequestKind.CANCEL, 1, T0 + 299) == Banned(T0 + 300)
    assert reborn.banned_until(T0 + 299) == T0 + 300
    assert reborn.decide(RequestKind.CANCEL, 1, T0 + 300) == GO
    other_ip = BudgetRegistry(ThrottleConfig(), BanStore(tmp_path)).get("other@10.0.0.1", "a")
    assert other_ip.decide(RequestKind.READ, 1, T0 + 1) == GO


def test_a_ban_is_never_shortened(tmp_path: Path) -> None:
    store = BanStore(tmp_path)
    store.record("ip", T0 + 500)
    store.record("ip", T0 + 100)
    assert store.banned_until("ip", T0) == T0 + 500
    store.clear("ip")
    assert store.banned_until("ip", T0) is None


@pytest.mark.parametrize(
    "content", ["{not json", '{"bans": [1, 2]}', '{"bans": {"ip": "soon"}}', "[]"]
)
def test_a_corrupt_ban_file_fails_closed(tmp_path: Path, content: str) -> None:
    (tmp_path / FILENAME).write_text(content)
    with pytest.raises(ConfigError, match="ban file"):
        BudgetRegistry(ThrottleConfig(), BanStore(tmp_path)).get("ip", "acct")


def test_ban_store_refuses_bad_values(tmp_path: Path) -> None:
    store = BanStore(tmp_path)
    with pytest.raises(ValueError, match="until"):
        store.record("ip", float("nan"))
    with pytest.raises(ValueError, match="ip_key"):
        store.record("", T0)


# --- sharing ---------------------------------------------------------------------------------


def test_registry_shares_weight_per_ip_and_orders_per_account() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    a = registry.get("ip-1", "acct-a")
    assert registry.get("ip-1", "acct-a") is a
    b = registry.get("ip-1", "acct-b")
    c = registry.get("ip-2", "acct-a")
    a.decide(RequestKind.ORDER, 10, T0)
    assert b.usage(T0)["REQUEST_WEIGHT/1m"] == a.usage(T0)["REQUEST_WEIGHT/1m"] > 0
    assert b.usage(T0)["ORDERS/10s"] == 0.0  # another account's order count
    assert c.usage(T0)["ORDERS/10s"] == a.usage(T0)["ORDERS/10s"] > 0  # same account, other IP
    assert c.usage(T0)["REQUEST_WEIGHT/1m"] == 0.0
    a.record_ban(T0 + 60, T0)
    assert isinstance(b.decide(RequestKind.READ, 1, T0), Banned)  # a ban is per IP
    assert c.decide(RequestKind.READ, 1, T0) == GO
    with pytest.raises(ValueError, match="ip_key"):
        registry.get("", "acct")
    assert account_fingerprint("secret-key") != "secret-key"


def test_new_limits_update_the_shared_windows_without_losing_the_count() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    early = registry.get("ip", "acct")  # before exchangeInfo: the defaults
    early.decide(RequestKind.READ, 600, T0)
    vip = RateLimits.from_exchange_info(
        [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}]
    )
    later = registry.get("ip", "acct", vip)
    assert later is early
    assert later.usage(T0)["REQUEST_WEIGHT/1m"] == 0.1  # 600 of 6000: the count carried over
    # Another exchange on the IP that knows only the defaults: one shared window, and it
    # keeps the number the venue published (a newcomer must not loosen or tighten it).
    other = registry.get("ip", "acct-2")
    assert other.usage(T0)["REQUEST_WEIGHT/1m"] == 0.1


def test_a_new_client_on_the_ip_does_not_forget_a_tightened_limit() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    first = registry.get("ip", "acct")
    tight = RateLimits((RateLimit(LimitType.REQUEST_WEIGHT, 60, 100),))
    assert first.learn(tight)
    first.decide(RequestKind.READ, 85, T0)
    second = registry.get("ip", "acct-2")  # a second guarded client on the same IP
    assert second.usage(T0)["REQUEST_WEIGHT/1m"] == 0.85
    assert isinstance(second.decide(RequestKind.READ, 10, T0), Hold)  # 95 of 100: held
    assert {lim.label: lim.limit for lim in second.limits}["REQUEST_WEIGHT/1m"] == 100


def test_learned_limits_keep_the_count_and_reach_every_budget_on_the_ip() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    a, b = registry.get("ip", "acct-a"), registry.get("ip", "acct-b")
    a.decide(RequestKind.READ, 90, T0)
    published = RateLimits.from_exchange_info(
        [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": 120,
            },
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 2},
        ]
    )
    assert a.learn(published)
    assert not a.learn(published)  # nothing new the second time
    assert b.usage(T0)["REQUEST_WEIGHT/1m"] == 0.75  # 90 of 120, counted once for both
    # A limit not counted before (orders per second) gets its window; the others stay.
    assert {lim.label for lim in a.limits} == {
        "REQUEST_WEIGHT/1m", "ORDERS/10s", "ORDERS/1m", "ORDERS/1s"
    }  # fmt: skip
    assert a.decide(RequestKind.ORDER, 0, T0) == GO
    assert isinstance(a.decide(RequestKind.ORDER, 0, T0), Wait)  # 2 per second, minus reserve
    # The policy's own number still wins over the venue's.
    capped = registry.get("ip", "acct-c", config=ThrottleConfig(weight_limit_per_minute=1000))
    capped.learn(published)
    assert {lim.label: lim.limit for lim in capped.limits}["REQUEST_WEIGHT/1m"] == 1000


def test_registry_for_a_state_dir_is_process_wide_and_persists_bans(tmp_path: Path) -> None:
    assert registry_for(tmp_path) is registry_for(str(tmp_path / "."))
    strict = ThrottleConfig(hard_threshold=0.5, soft_threshold=0.5, window_skew_s=0.0)
    lenient = ThrottleConfig(window_skew_s=0.0)
    a = registry_for(tmp_path).get("ip-r", "acct-a", config=strict)
    b = registry_for(tmp_path).get("ip-r", "acct-b", config=lenient)
    b.observe({"X-MBX-USED-WEIGHT-1M": "1300"}, T0)  # 54 % of 2400, counted once for both
    assert isinstance(a.decide(RequestKind.READ, 1, T0), Hold)  # its own policy: hold at 50 %
    assert b.decide(RequestKind.READ, 1, T0) == GO
    a.record_ban(T0 + 90, T0)
    assert BanStore(tmp_path).banned_until("ip-r", T0) == T0 + 90


def test_a_request_that_can_never_fit_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"weight 95 .* REQUEST_WEIGHT/1m"):
        small_budget().decide(RequestKind.READ, 95, T0)  # reads stop at 90 of 100
    assert small_budget().decide(RequestKind.CANCEL, 95, T0) == GO


def test_concurrent_exchanges_on_one_ip_never_overspend() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    budgets = [registry.get("ip", f"acct-{i}") for i in range(4)]
    granted = [0] * 4

    def hammer(index: int) -> None:
        for _ in range(400):
            if isinstance(budgets[index].decide(RequestKind.READ, 3, T0 + 1), Go):
                granted[index] += 3

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) <= 0.9 * 2400  # one shared hard line, however the threads interleave
    assert sum(granted) >= 0.7 * 2400


def test_rate_headers_for_logs() -> None:
    headers = {"x-mbx-used-weight-1m": "12", "X-MBX-ORDER-COUNT-10S": "3", "Date": "x"}
    assert rate_headers(headers) == {"X-MBX-USED-WEIGHT-1M": "12", "X-MBX-ORDER-COUNT-10S": "3"}
    assert rate_headers({"Retry-After": "5"}) == {"RETRY-AFTER": "5"}


# --- a simulated run -------------------------------------------------------------------------


@pytest.mark.parametrize(("clock_offset", "seed"), [(0.0, 1), (-0.3, 2), (0.3, 3)])
def test_simulated_greedy_run_paces_before_every_limit_and_uses_the_budget(
    clock_offset: float, seed: int
) -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    budget = BudgetRegistry(ThrottleConfig()).get("ip", "acct", limits)
    report = simulate(
        limits.limits, budget=budget, start=T0, seconds=180.0, clock_offset=clock_offset, seed=seed
    )
    assert report.throttled == 0  # not one request over any limit: no 429, so no 418
    assert report.banned_at is None
    for label in ("REQUEST_WEIGHT/1m", "ORDERS/1m"):
        assert len(report.full_windows[label]) >= 2
        assert report.peak(label) <= 1.0
        assert report.utilisation(label) >= 0.8, (label, report.full_windows)  # tight, not timid
    assert report.peak("ORDERS/10s") <= 1.0
    assert report.cancels["Go"] >= 20
    assert set(report.cancels) == {"Go"}  # the reserve was there every time a cancel came


def test_the_same_traffic_gets_a_plain_client_banned() -> None:
    limits = RateLimits.from_exchange_info(EXCHANGE_INFO_LIMITS)
    report = simulate(limits.limits, budget=None, start=T0, seconds=180.0, seed=1)
    assert report.throttled > 0
    assert report.banned_at is not None


def test_bans_command_shows_and_clears_persisted_bans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from safeguard.cli import main

    assert main(["bans", "--state-dir", str(tmp_path)]) == 0
    assert "no bans recorded" in capsys.readouterr().out
    store = BanStore(tmp_path)
    store.record("binanceusdm@fapi.binance.com", 4_000_000_000.0)  # in 2096: in force
    store.record("old@host", 1_000.0)  # long over
    assert main(["bans", "--state-dir", str(tmp_path), "--json"]) == 1
    rows = {row["ip_key"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["binanceusdm@fapi.binance.com"]["in_force"] is True
    assert rows["old@host"]["in_force"] is False
    assert (
        main(["bans", "--state-dir", str(tmp_path), "--clear", "binanceusdm@fapi.binance.com"]) == 0
    )
    assert main(["bans", "--state-dir", str(tmp_path)]) == 0
    assert "old@host: until 1970-01-01T00:16:40+00:00 (expired)" in capsys.readouterr().out
    (tmp_path / FILENAME).write_text("{broken")
    assert main(["bans", "--state-dir", str(tmp_path)]) == 2  # a corrupt file is named, exit 2
    assert "ban file" in capsys.readouterr().err


# --- learning the venue's limits from its answers --------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (
            '{"code":-1003,"msg":"Too many requests; current limit of IP(10.0.0.1) is 1200 '
            'requests per minute. Please use WebSocket Streams for live updates."}',
            RateLimit(LimitType.REQUEST_WEIGHT, 60, 1200),
        ),
        (
            '{"code":-1015,"msg":"Too many new orders; current limit is 300 orders per '
            'TEN_SECONDS."}',
            RateLimit(LimitType.ORDERS, 10, 300),
        ),
        (
            "Too many new orders; current limit is 1200 orders per MINUTE.",
            RateLimit(LimitType.ORDERS, 60, 1200),
        ),
        (
            "Too many new orders; current limit is 50 orders per 10 SECOND.",  # Binance spot
            RateLimit(LimitType.ORDERS, 10, 50),
        ),
        (
            "Too many new orders; current limit is 100 orders per 10 SECONDS.",
            RateLimit(LimitType.ORDERS, 10, 100),
        ),
        ("current limit is 1 orders per MINUTE.", RateLimit(LimitType.ORDERS, 60, 1)),
        ("429 Too Many Requests", None),
        ("current limit is 5 orders per FORTNIGHT.", None),
        ("current limit is 0 orders per MINUTE.", None),
    ],
)
def test_a_429_names_the_limit_it_enforced(message: str, expected: RateLimit | None) -> None:
    assert refused_limit(message) == expected


def _exchange_info(server_time: int, weight: int) -> dict[str, object]:
    return {
        "serverTime": server_time,
        "rateLimits": [
            {
                "rateLimitType": "REQUEST_WEIGHT",
                "interval": "MINUTE",
                "intervalNum": 1,
                "limit": weight,
            }
        ],
        "symbols": [],
    }


def _answer(body: object, now: float = T0) -> Answer:
    return Answer({}, None, None, now, now, body)


def test_only_a_newer_exchange_info_changes_the_learned_limits() -> None:
    pacer = BudgetPacer(RateBudget.standalone(ThrottleConfig(window_skew_s=0.0)))
    load = Send("load_markets", ())

    def weight_limit() -> int:
        return {lim.label: lim.limit for lim in pacer.budget.limits}["REQUEST_WEIGHT/1m"]

    pacer.after(load, _answer(_exchange_info(2_000, 600)), None)
    assert weight_limit() == 600
    # ccxt answered load_markets from its cache: the document it kept is an older one.
    pacer.after(load, _answer(_exchange_info(1_000, 2_400)), None)
    assert weight_limit() == 600
    pacer.after(load, _answer(_exchange_info(3_000, 1_200)), None)
    assert weight_limit() == 1_200
    # Another call's body, a malformed list, or no body at all teach nothing.
    pacer.after(Send("fetch_ticker", ("X",)), _answer(_exchange_info(4_000, 10)), None)
    pacer.after(load, _answer({"serverTime": 5_000, "rateLimits": [{"limit": "x"}]}), None)
    bad_row = {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "limit": "x"}
    pacer.after(load, _answer({"serverTime": 6_000, "rateLimits": [bad_row]}), None)
    pacer.after(load, _answer(None), None)
    assert weight_limit() == 1_200


def test_a_clock_stepping_back_moves_the_holds_with_it() -> None:
    budget = small_budget()
    budget.observe({"X-MBX-USED-WEIGHT-1M": "50"}, T0 + 10)
    assert budget.record_throttle(429, 5.0, T0 + 10) == 5.0
    # The clock steps back an hour: the pause is still 5 s long, not an hour and 5 s, and the
    # minute in progress keeps its count.
    back = T0 + 10 - 3600
    decision = budget.decide(RequestKind.READ, 1, back)
    assert isinstance(decision, Wait)
    assert decision.seconds == pytest.approx(5.0)
    assert budget.usage(back)["REQUEST_WEIGHT/1m"] == 0.5
    assert budget.decide(RequestKind.READ, 1, back + 5) == GO
    # Threads hand over times read a moment apart: that is no step.
    budget.record_throttle(429, 5.0, back + 10)
    wait = budget.decide(RequestKind.READ, 1, back + 9.5)
    assert isinstance(wait, Wait)
    assert wait.seconds == pytest.approx(5.5)


def test_headers_as_ccxt_keeps_them_teach_the_same_as_a_plain_dict() -> None:
    """Sync ccxt keeps an answer's headers in requests' CaseInsensitiveDict (read through its
    own store, not the Mapping mixins): every name spelling is learned alike."""
    from requests.structures import CaseInsensitiveDict

    answer = {"Content-Type": "application/json", "x-Mbx-Used-Weight-1m": "1190"}
    answer |= {"X-MBX-ORDER-COUNT-10S": "7"}
    plain, kept = RateBudget.standalone(), RateBudget.standalone()
    plain.observe(answer, T0 + 1)
    kept.observe(CaseInsensitiveDict(answer), T0 + 1)
    assert kept.usage(T0 + 1) == plain.usage(T0 + 1)
    assert kept.usage(T0 + 1)["REQUEST_WEIGHT/1m"] > 0.49
    assert kept.usage(T0 + 1)["ORDERS/10s"] > 0.0


def test_a_budget_that_already_decided_paces_on_a_limit_its_neighbour_tightened() -> None:
    registry = BudgetRegistry(ThrottleConfig(window_skew_s=0.0))
    a, b = registry.get("ip", "acct-a"), registry.get("ip", "acct-b")
    assert b.decide(RequestKind.READ, 10, T0) == GO  # b has decided on the default limit
    assert a.learn(RateLimits((RateLimit(LimitType.REQUEST_WEIGHT, 60, 100),)))
    assert isinstance(b.decide(RequestKind.READ, 85, T0), Hold)  # 95 of 100: held


@pytest.mark.parametrize("content", [b"\xff\xfe{}", b"[" * 100_000, b"{not json"])
def test_an_unreadable_ban_file_is_a_config_error_naming_it(tmp_path: Path, content: bytes) -> None:
    # A binary or deeply nested bans file raised a bare UnicodeDecodeError / RecursionError
    # out of the guard; it is the same ConfigError as a corrupt one.
    (tmp_path / FILENAME).write_bytes(content)
    with pytest.raises(ConfigError, match=FILENAME):
        BanStore(tmp_path).load()
