"""``kill -9``: a HALTED bot comes back HALTED, and a crash mid-write never corrupts the state.

Real processes, a real state directory, a real SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from safeguard.killswitch._store import FileStateStore
from safeguard.killswitch._switch import TradingState

BOT = textwrap.dedent(
    """
    import sys
    from safeguard._config import KillSwitchConfig
    from safeguard._errors import TradingHalted
    from safeguard.killswitch import KillSwitch

    switch = KillSwitch(KillSwitchConfig(state_dir=sys.argv[1], cooling_period_s=0), watch=False)
    try:
        with switch.permit(reduces_only=False):
            pass
        verdict = "sent"
    except TradingHalted as exc:
        verdict = exc.code
    print(switch.state.state, verdict, flush=True)
    if sys.argv[2] == "engage":
        switch.engage("crash test", by="bot")
        print("engaged", flush=True)
    elif sys.argv[2] == "churn":
        while True:  # rewrite the state as fast as possible until killed
            switch.engage("churn", by="bot")
            switch.resume(by="bot")
    if sys.argv[2] != "check":
        sys.stdin.read()  # block until killed
    """
)


def start(state_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BOT, str(state_dir), mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check(state_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", BOT, str(state_dir), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_sigkill_while_halted_comes_back_halted(tmp_path: Path) -> None:
    bot = start(tmp_path, "engage")
    try:
        assert bot.stdout is not None
        assert bot.stdout.readline().strip() == "ACTIVE sent"
        assert bot.stdout.readline().strip() == "engaged"
        os.kill(bot.pid, signal.SIGKILL)
        assert bot.wait(30) == -signal.SIGKILL
    finally:
        bot.kill()
        bot.communicate()
    assert check(tmp_path) == "HALTED TRADING_HALTED"


def test_sigkill_in_the_middle_of_writes_leaves_a_whole_state(tmp_path: Path) -> None:
    store = FileStateStore(tmp_path)
    bot = start(tmp_path, "churn")
    try:
        deadline = time.monotonic() + 60
        while len(store.history()) < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(store.history()) >= 20
        os.kill(bot.pid, signal.SIGKILL)
        assert bot.wait(30) == -signal.SIGKILL
    finally:
        bot.kill()
        bot.communicate()
    state = store.load()  # never a half-written file: raises ConfigError if it were
    assert state is not None
    assert state.state in (TradingState.ACTIVE, TradingState.HALTED)
