"""The error tree: every exception pickles with its attributes, and the branches hold."""

from __future__ import annotations

import pickle

import pytest

import safeguard
from safeguard import _errors as errors
from safeguard._codes import Code

SAMPLES: list[errors.SafeguardError] = [
    errors.SafeguardError("plain"),
    errors.ConfigError("bad key", key="risk.max_leverage"),
    errors.OrderDenied(Code.STOP_BEYOND_LIQUIDATION, "stop fill beyond liq", verdict={"x": 1.5}),
    errors.TradingHalted("halted", state="HALTED", reason="manual"),
    errors.VenueBanned("banned", until=1_700_000_120.0),
    errors.ThrottleHold("reserve", retry_after=1.5),
    errors.VenueRejected("no", venue_code="-1013"),
    errors.InsufficientFunds("poor", venue_code="-2019"),
    errors.InvalidOrder("bad", venue_code="-4164"),
    errors.OrderNotFound("gone", venue_code="-2013"),
    errors.AuthenticationFailed("sig", venue_code="-1022"),
    errors.OutcomeUnknown("maybe", client_order_id="sg-1", symbol="BTC/USDT:USDT"),
    errors.RetriesExhausted("tired", attempts=6, elapsed=12.5),
    errors.ResumeRefused("cooling", code="COOLING_PERIOD", retry_at=1_700_000_300.0),
]


@pytest.mark.parametrize("error", SAMPLES, ids=lambda e: type(e).__name__)
def test_every_error_pickles_with_its_attributes(error: errors.SafeguardError) -> None:
    clone = pickle.loads(pickle.dumps(error))
    assert type(clone) is type(error)
    assert str(clone) == str(error)
    assert clone.__dict__ == error.__dict__
    assert clone.code == error.code


def test_branches_tell_the_caller_what_to_do() -> None:
    assert issubclass(errors.OrderDenied, errors.RequestBlocked)
    assert issubclass(errors.TradingHalted, errors.RequestBlocked)
    assert issubclass(errors.VenueBanned, errors.RequestBlocked)
    assert not issubclass(errors.OutcomeUnknown, errors.RequestBlocked)
    assert not issubclass(errors.OutcomeUnknown, errors.VenueRejected)
    assert issubclass(errors.ConfigError, ValueError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.SafeguardError)


def test_denial_message_carries_code_and_sentence() -> None:
    denial = errors.OrderDenied("STALE_MARKET_DATA", "mark is 12.0 s old; policy allows 5.0 s")
    assert str(denial) == "STALE_MARKET_DATA: mark is 12.0 s old; policy allows 5.0 s"
    assert denial.reason == "mark is 12.0 s old; policy allows 5.0 s"


def test_public_surface_is_sorted_and_importable() -> None:
    assert safeguard.__all__ == sorted(safeguard.__all__)
    for name in safeguard.__all__:
        assert hasattr(safeguard, name), name


def test_heavy_names_load_lazily_and_guard_stays_callable() -> None:
    import subprocess
    import sys

    code = (
        "import sys, safeguard; assert 'ccxt' not in sys.modules, 'import safeguard loaded ccxt'; "
        "import safeguard.guard._retry; assert callable(safeguard.guard); "
        "from safeguard import guard, GuardedExchange, preview, KillSwitch; print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
