"""Mutants that once survived the whole suite stay killed.

Each entry is a small plausible bug in the safety core that every test once let through
(docs/mutation.md tells each one's story), and the test that now catches it. Here each bug is
planted in a copy of the package in a temporary directory, and the catching test is run
against that copy in a fresh interpreter: it must fail. A test that stops catching its mutant
(weakened, skipped, or no longer reaching the code) fails this one. About a minute in all.

The full mutation run (every mutant of every safety-core module) is ``tools/mutation.py``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Mutant:
    name: str
    module: str
    original: str
    mutated: str
    test: str


MUTANTS = [
    Mutant(
        "the sync face sends outside the kill switch's permit",
        "safeguard/guard/_sync.py",
        "                with permit(self._rt.switch, effect.permit):\n"
        "                    value = getattr(",
        "                with permit(self._rt.switch, effect.permit):\n"
        "                    pass\n"
        "                value = getattr(",
        "tests/guard/test_engage_drains_guarded_sends.py::"
        "test_engage_returns_only_after_a_guarded_sync_order_on_the_wire_finished",
    ),
    Mutant(
        "the async face sends outside the kill switch's permit",
        "safeguard/guard/_aio.py",
        "            with permit(self._rt.switch, effect.permit):\n"
        "                value = await getattr(",
        "            with permit(self._rt.switch, effect.permit):\n"
        "                pass\n"
        "            value = await getattr(",
        "tests/guard/test_engage_drains_guarded_sends.py::"
        "test_engage_returns_only_after_a_guarded_async_order_on_the_wire_finished",
    ),
    Mutant(
        "a bare permit() does not look at the persisted state",
        "safeguard/killswitch/_switch.py",
        "    def _enter(self, kind: int) -> tuple[Token[PermitCounts], int | None]:\n"
        "        self._refresh()\n",
        "    def _enter(self, kind: int) -> tuple[Token[PermitCounts], int | None]:\n",
        "tests/guard/test_engage_drains_guarded_sends.py::"
        "test_a_bare_permit_obeys_an_engage_made_by_another_process",
    ),
    Mutant(
        "a `raise ... from` link of an exception chain is kept unscrubbed",
        "safeguard/_redact.py",
        "copy.__cause__ = _scrubbed(exc.__cause__, seen, depth + 1)",
        "copy.__cause__ = exc.__cause__",
        "tests/guard/test_secrets_cause_chain.py::"
        "test_every_cause_link_of_a_refused_signed_read_is_scrubbed",
    ),
    Mutant(
        "a guarded cancel is paced as an ordinary read (held at 90%)",
        "safeguard/guard/_pacing.py",
        "    if kind is CallKind.CANCEL:\n        return RequestKind.CANCEL",
        "    if kind is CallKind.CANCEL:\n        return RequestKind.READ",
        "tests/guard/test_reserve_through_guard.py::"
        "test_a_guarded_cancel_spends_the_reserve_at_96_percent",
    ),
    Mutant(
        "a reduce-only order is paced as an opening one",
        "safeguard/guard/_pacing.py",
        "        reduces = send.permit is not None and send.permit.reduces_only",
        "        reduces = False",
        "tests/guard/test_reserve_through_guard.py::"
        "test_a_guarded_reduce_only_order_spends_the_reserve_at_95_percent",
    ),
    Mutant(
        "the pending journal record is flushed but not fsynced before the send",
        "safeguard/guard/_journal.py",
        "                sync=self.durable,",
        "                sync=False,",
        "tests/guard/test_crash_order_path.py::"
        "test_the_pending_record_is_fsynced_before_the_order_leaves[before-send]",
    ),
    Mutant(
        "a per-call recvWindow is waited out without the clock-skew margin",
        "safeguard/guard/_core.py",
        "max(self.settle_window_s, per_call + CLOCK_SKEW_MARGIN_S)",
        "max(self.settle_window_s, per_call)",
        "tests/guard/test_settle_window.py::"
        "test_a_per_call_recv_window_stretches_the_wait_with_the_same_margin",
    ),
    Mutant(
        "a restart counts the settle window from the first send",
        "safeguard/guard/_core.py",
        "max(0.0, entry.updated + window - self._last_now)",
        "max(0.0, entry.since + window - self._last_now)",
        "tests/guard/test_settle_window.py::"
        "test_a_restart_counts_the_settle_window_from_the_last_send_not_the_first",
    ),
    Mutant(
        "a forward clock step during a wait counts as settle time",
        "safeguard/guard/_core.py",
        "return asked if passed >= asked - _CLOCK_ROUNDING_S else max(0.0, passed)",
        "return max(0.0, passed)",
        "tests/guard/test_settle_window.py::"
        "test_a_forward_clock_jump_after_an_ambiguous_send_is_no_proof_the_order_is_absent",
    ),
    Mutant(
        "'not found' by the order look-up is taken as absent without the open orders",
        "safeguard/guard/_core.py",
        '        # fetch_order said "no such order": confirm against the open orders',
        '        return None, True, None\n        # fetch_order said "no such order": confirm',
        "tests/guard/test_settle_window.py::"
        "test_a_live_order_the_look_up_misses_is_found_in_the_open_orders_and_not_sent_again",
    ),
    # Found by tools/mutation.py (mutmut) and killed by a test written for it.
    Mutant(
        "a 500-level book is weighed as a 1000-level one (pacing)",
        "safeguard/guard/_pacing.py",
        "return next((w for cap, w in _DEPTH if depth <= cap), _DEPTH[-1][1])",
        "return next((w for cap, w in _DEPTH if depth < cap), _DEPTH[-1][1])",
        "tests/guard/test_pacing.py::test_a_calls_weight_follows_the_venues_table",
    ),
    Mutant(
        "a settle record without an order id forgets the known one (journal)",
        "safeguard/guard/_journal.py",
        'order_id = record.get("order_id", current.order_id)',
        'order_id = record.get("order_id")',
        "tests/guard/test_journal_file.py::"
        "test_a_settle_without_an_order_id_keeps_the_one_already_known",
    ),
    Mutant(
        "an exception chain that loops is copied link by link (redaction)",
        "safeguard/_redact.py",
        "done = seen.get(id(exc))",
        "done = None",
        "tests/guard/test_redaction_edges.py::"
        "test_a_chain_that_loops_is_copied_once_and_loops_the_same_way",
    ),
    Mutant(
        "an account view exactly as old as allowed counts as stale (stale-data gate)",
        "safeguard/guard/_gate.py",
        "if seen is not None and cache.account_age(seen, now) > limit:",
        "if seen is not None and cache.account_age(seen, now) >= limit:",
        "tests/guard/test_account_gap.py::test_a_whole_fresh_account_view_is_no_gap",
    ),
    Mutant(
        "funding data is required only for horizons above one second (stale-data gate)",
        "safeguard/risk/_verdict.py",
        "if limits.funding_horizon_s > 0 and exposure.increases:",
        "if limits.funding_horizon_s > 1 and exposure.increases:",
        "tests/risk/test_stale_gates.py",
    ),
    Mutant(
        "a permit released in another context stays counted there (kill switch)",
        "safeguard/killswitch/_inflight.py",
        "                    self._held.set(plus(held, kind, -1))",
        "                    self._held.set(plus(held, kind, +1))",
        "tests/killswitch/test_switch.py::"
        "test_a_permit_released_in_another_context_than_it_was_taken_in_is_released_there",
    ),
    Mutant(
        "a loop's second send in flight is not counted for a blocking engage (kill switch)",
        "safeguard/killswitch/_inflight.py",
        "self._per_loop.setdefault(loop_thread, [0, 0, 0])[kind] += 1",
        "self._per_loop.setdefault(loop_thread, [0, 0, 0])[kind] = 1",
        "tests/killswitch/test_switch.py::"
        "test_a_blocking_engage_on_an_event_loop_thread_names_each_send_it_could_not_wait_for"
        "[2-halted]",
    ),
    Mutant(
        "concentration measured before the entry fee is paid (pre-trade checks)",
        "safeguard/risk/_checks.py",
        "    equity = order.equity - costing.entry_fee\n"
        "    share = costing.position_notional / equity",
        "    equity = order.equity + costing.entry_fee\n"
        "    share = costing.position_notional / equity",
        "tests/risk/test_check_boundaries.py::"
        "test_concentration_is_measured_on_the_equity_left_after_the_entry_fee",
    ),
    Mutant(
        "a journal whose file was deleted under its live lock takes that lock again (journal)",
        "safeguard/guard/_journal.py",
        "    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)",
        "    return (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino)",
        "tests/guard/test_journal.py::"
        "test_a_journal_file_deleted_under_its_live_lock_is_written_again_under_that_lock",
    ),
    Mutant(
        "a pending write abandoned after it landed keeps the order in flight (journal)",
        "safeguard/guard/_journal.py",
        "            self._written = True",
        "            self._written = False",
        "tests/guard/test_journal.py::"
        "test_a_pending_write_abandoned_after_it_landed_hands_the_order_to_the_next_reconcile",
    ),
    Mutant(
        "a reduceOnly word is sent as written, not as the bool judged (order identity)",
        "safeguard/guard/_orders.py",
        '    if "reduceOnly" in params:',
        '    if "reduceonly" in params:',
        "tests/guard/test_idempotency_ids.py::test_reduce_only_is_sent_as_the_bool_the_verdict_read",
    ),
    Mutant(
        "the cascade counts the account's own closes as the crowd's (pre-trade checks)",
        "safeguard/risk/_checks.py",
        'crowd = sum(1 for close in path.closes if close.owner == "crowd")',
        'crowd = sum(1 for close in path.closes if close.owner != "crowd")',
        "tests/risk/test_verdict_cascade.py::"
        "test_each_crowd_group_the_cascade_liquidates_is_counted",
    ),
    Mutant(
        "a cancel refused on a full weight window is not told the venue counts it (pacing)",
        "safeguard/guard/_pacing.py",
        "        if kind is RequestKind.CANCEL:",
        "        if kind is not RequestKind.CANCEL:",
        "tests/guard/test_pacing.py::"
        "test_a_cancel_past_its_budget_on_a_full_weight_window_is_told_the_venue_counts_it_too",
    ),
    Mutant(
        "a check reports its numbers under another name (pre-trade checks)",
        "safeguard/risk/_checks.py",
        '{"amount": amount, "min_qty": least}',
        '{"XXamountXX": amount, "min_qty": least}',
        "tests/risk/test_finding_values.py",
    ),
    Mutant(
        "the kill ladder's cancels wait like reads instead of spending the reserve (pacing)",
        "safeguard/guard/_pacing.py",
        'RequestKind.CANCEL if method.startswith("cancel") else',
        'RequestKind.CANCEL if method.startswith("CANCEL") else',
        "tests/guard/test_pacing.py::"
        "test_the_kill_ladders_cancels_and_closes_spend_the_reserve_and_its_reads_wait",
    ),
    Mutant(
        "a stale funding schedule denies with no funding horizon (stale-data gate)",
        "safeguard/risk/_verdict.py",
        "if next_funding is not None and limits.funding_horizon_s > 0:",
        "if next_funding is not None and limits.funding_horizon_s >= 0:",
        "tests/risk/test_stale_gates.py::"
        "test_the_funding_schedule_is_aged_for_any_horizon_above_zero",
    ),
    Mutant(
        "a crowded symbol's tightened concentration cap loosened instead (cap / factor)",
        "safeguard/risk/_checks.py",
        "        if share > share_cap * factor:",
        "        if share > share_cap / factor:",
        "tests/risk/test_crowding.py::"
        "test_a_tightened_concentration_cap_is_measured_on_the_equity_after_the_entry_fee",
    ),
    Mutant(
        "the percent-price filter binds a sell above the mark too (or for and)",
        "safeguard/risk/_checks.py",
        '        elif intent.side == "sell" and price < order.mark * down:',
        '        elif intent.side == "sell" or price < order.mark * down:',
        "tests/risk/test_check_boundaries.py::"
        "test_the_percent_price_filter_binds_each_side_in_its_own_direction_only",
    ),
    Mutant(
        "the journal line before the NUL bytes of a power cut is taken for unsynced",
        "safeguard/guard/_journal.py",
        'unsynced = next((i for i, line in enumerate(lines, start=1) if b"\\x00" in line)',
        'unsynced = next((i for i, line in enumerate(lines) if b"\\x00" in line)',
        "tests/guard/test_journal_edges.py::"
        "test_a_corrupt_record_before_the_unsynced_nul_bytes_is_still_corruption",
    ),
]


_COPIED = ("safeguard", "tests")


def _copy(source: Path, target: Path) -> None:
    for name in _COPIED:
        shutil.copytree(source / name, target / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(source / "pyproject.toml", target / "pyproject.toml")


def _env(copy: Path) -> dict[str, str]:
    # Run from the copy (``python -m`` and the tests' own child processes put the working
    # directory first on the path) with the copy first on PYTHONPATH too.
    return {**os.environ, "PYTHONPATH": str(copy)}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and its tests, and proof that a fresh interpreter started there
    imports the copy, not the work tree or an installed safeguard."""
    base = tmp_path_factory.mktemp("mutants")
    _copy(ROOT, base)
    seen = subprocess.run(
        [sys.executable, "-c", "import safeguard; print(safeguard.__file__)"],
        cwd=base,
        env=_env(base),
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert Path(seen).resolve().is_relative_to(base.resolve()), seen
    return base


def _run_with(mutant: Mutant, pristine: Path, copy: Path) -> tuple[int, str]:
    """Plant ``mutant`` in a fresh copy and run its test there: (exit code, output tail)."""
    _copy(pristine, copy)
    target = copy / mutant.module
    source = target.read_text(encoding="utf-8")
    # The mutant must still apply: a refactor that moved the code must move the mutant too.
    if source.count(mutant.original) != 1:
        return -1, f"{mutant.module} changed: the mutant no longer applies; update it"
    target.write_text(source.replace(mutant.original, mutant.mutated), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", mutant.test],
        cwd=copy,
        env=_env(copy),
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    return done.returncode, done.stdout[-2000:] + done.stderr[-1000:]


@pytest.fixture(scope="module")
def outcomes(
    pristine: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[int, str]]:
    # Two at a time: each run is mostly one interpreter importing ccxt and the guard.
    base = tmp_path_factory.mktemp("planted")
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {
            m.name: pool.submit(_run_with, m, pristine, base / f"m{i}")
            for i, m in enumerate(MUTANTS)
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_a_once_surviving_mutant_is_killed(
    mutant: Mutant, outcomes: dict[str, tuple[int, str]]
) -> None:
    code, output = outcomes[mutant.name]
    # 1: the test ran and failed. Anything else (it passed, or the mutant broke the import
    # or the collection) means the mutant was not caught by its test.
    assert code == 1, f"mutant survived ({mutant.name}): {mutant.test} exited {code}\n{output}"
