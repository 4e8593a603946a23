"""guard() that fails after building its own parts releases them: a bot that retries a bad
configuration in a loop must not pile up kill-switch watcher threads, signal handlers or
listeners on the switch it passed in."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from safeguard.config import Policy
from safeguard.guard import guard
from safeguard.testing import PaperAccount


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def test_a_failing_guard_stops_the_switch_it_built_and_restores_the_signal_handler(
    funded_paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(
        kill_switch={"state_dir": str(tmp_path / "state"), "install_signal_handler": True}
    )
    before_threads = _threads()
    before_handler = signal.getsignal(signal.SIGUSR1)
    for _ in range(3):
        with pytest.raises(ValueError, match="book_depth"):
            guard(funded_paper.client(), policy, clock=funded_paper.clock, book_depth=3)
    leaked = [t.name for t in _threads() - before_threads if t.is_alive()]
    assert leaked == []
    assert signal.getsignal(signal.SIGUSR1) is before_handler
    # Nothing half-built holds the journal either: the same call, fixed, goes through.
    ex = guard(funded_paper.client(), policy, clock=funded_paper.clock)
    ex.runtime.switch.close()
