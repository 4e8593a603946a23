"""guard() that fails after building its own parts releases them: a bot that retries a bad
configuration in a loop must not pile up kill-switch watcher threads, signal handlers or
listeners on the switch it passed in."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from safeguard._config import Policy
from safeguard._errors import ConfigError
from safeguard.guard import guard
from safeguard.guard._throttle import account_fingerprint
from safeguard.testing import PaperAccount


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def corrupt_equity_marks(state_dir: Path, api_key: str) -> Path:
    """An equity-marks file the triggers cannot read: ``guard(triggers=True)`` fails on it
    after it built the kill switch and the budget (a failure late in the build)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"equity-binanceusdm-{account_fingerprint(api_key)}.json"
    path.write_text("{not json")
    return path


def test_a_failing_guard_stops_the_switch_it_built_and_restores_the_signal_handler(
    funded_paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(
        kill_switch={"state_dir": str(tmp_path / "state"), "install_signal_handler": True}
    )
    marks = corrupt_equity_marks(tmp_path / "state", funded_paper.api_key)
    before_threads = _threads()
    before_handler = signal.getsignal(signal.SIGUSR1)
    for _ in range(3):
        with pytest.raises(ConfigError, match="equity-binanceusdm"):
            guard(funded_paper.client(), policy, clock=funded_paper.clock, triggers=True)
        # An option that cannot work is refused before anything is built at all.
        with pytest.raises(ValueError, match="book_depth"):
            guard(funded_paper.client(), policy, clock=funded_paper.clock, book_depth=3)
    leaked = [t.name for t in _threads() - before_threads if t.is_alive()]
    assert leaked == []
    assert signal.getsignal(signal.SIGUSR1) is before_handler
    # Nothing half-built holds the journal either: the same call, fixed, goes through.
    marks.unlink()
    ex = guard(funded_paper.client(), policy, clock=funded_paper.clock, triggers=True)
    ex.runtime.switch.close()


def test_a_misspelt_option_is_refused_naming_it_before_anything_is_built(
    funded_paper: PaperAccount, tmp_path: Path
) -> None:
    policy = Policy.build(kill_switch={"state_dir": str(tmp_path / "state")})
    before = _threads()
    with pytest.raises(TypeError, match="'book_dept'"):
        guard(funded_paper.client(), policy, clock=funded_paper.clock, book_dept=50)  # type: ignore[call-arg]
    assert [t.name for t in _threads() - before if t.is_alive()] == []
    assert not (tmp_path / "state").exists()  # no journal, no switch state written
