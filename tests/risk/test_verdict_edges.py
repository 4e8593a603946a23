"""The verdict on inputs that are valid one by one and absurd together."""

from __future__ import annotations

from safeguard._config import RiskLimits
from safeguard.risk._outcome import Decision, fmt

from .verdict_cases import intent, run


def test_absurd_numbers_are_written_short() -> None:
    assert fmt(1e300) == "1e+300"
    assert fmt(-2.5e18) == "-2.5e+18"
    assert fmt(123_456_789_012.5) == "123,456,789,012.5"
    verdict = run(intent(amount=1e300), limits=RiskLimits(max_leverage=None))
    assert verdict.decision is Decision.DENY
    for finding in verdict.findings:
        assert len(finding.message) < 250, finding.message
