"""What a pre-trade verdict says: a decision, the findings behind it, and the numbers.

A :class:`Verdict` is ALLOW, WARN (allowed, with warnings) or DENY. Every :class:`Finding`
carries a stable code from :class:`safeguard._codes.Code`, a severity, one human sentence with
the numbers in it, and those numbers again as ``values`` for machines. :class:`Costing` holds
what the order would really cost on one face of the fill model.

Checks return verdicts; only the boundary raises (:meth:`Verdict.raise_if_denied`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from safeguard._codes import Code
from safeguard._errors import OrderDenied
from safeguard.risk._fills import FillFace

if TYPE_CHECKING:
    from safeguard.risk._cascade import LiquidationBand


class Decision(StrEnum):
    ALLOW = "ALLOW"
    WARN = "WARN"
    """Allowed; read the warnings."""
    DENY = "DENY"


class Severity(StrEnum):
    DENY = "DENY"
    WARN = "WARN"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: a stable code, a severity, a sentence, and the numbers in it."""

    code: Code
    severity: Severity
    message: str
    values: Mapping[str, float | str | None] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": str(self.code),
            "severity": str(self.severity),
            "message": self.message,
            "values": {key: _json_number(value) for key, value in self.values.items()},
        }


@dataclass(frozen=True, slots=True)
class Costing:
    """The order priced on one face of the fill model, and the position it leaves.

    Money is quote currency. ``liquidation_price`` is ``None`` when the position cannot be
    liquidated (or is closed). ``stop_fill_price`` is where the stop's close is expected to
    trade; ``stop_effective_price`` folds in the taker fee and, for a stop watching the last
    price, the current last-to-mark basis, so it compares like for like with the liquidation
    price (which the venue checks against the mark). ``stop_distance_pct`` is how far, in % of
    the liquidation price, that effective stop price sits inside liquidation (negative: beyond
    it); ``stop_distance_vol`` is the same distance in multiples of the recent volatility.
    ``expected_funding`` is what the position pays over the policy's horizon (negative: receives).
    """

    face: FillFace
    amount: float
    expected_entry: float
    entry_fee_rate: float
    entry_fee: float
    order_notional: float
    slippage_bps: float
    initial_margin: float
    """Margin the order commits (its added notional / leverage)."""
    liquidation_model: str
    liquidation_reason: str
    position_after: float = 0.0
    """Signed base quantity held after the order (negative: short)."""
    position_entry: float | None = None
    position_notional: float = 0.0
    """``|position_after| x mark``."""
    position_initial_margin: float = 0.0
    maintenance_margin: float | None = None
    tier: int | None = None
    tier_max_leverage: float | None = None
    liquidation_price: float | None = None
    stop_fill_price: float | None = None
    stop_effective_price: float | None = None
    stop_fee: float | None = None
    stop_distance_pct: float | None = None
    stop_distance_vol: float | None = None
    expected_funding: float = 0.0

    @property
    def can_liquidate(self) -> bool:
        return self.liquidation_price is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            name: _json_number(getattr(self, name)) if name != "face" else str(self.face)
            for name in self.__slots__
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to "may this order go out?" and the numbers behind it.

    ``costing`` is the face that decided: the degraded one when the verdict ran degraded, the
    expected one otherwise; ``expected`` is always the calm face (the same object when not
    degraded). Both are ``None`` when data needed to price the order was missing.
    ``max_safe_amount`` is the largest amount (a multiple of the step size) that would pass
    every check that depends on size, given everything else; 0 when nothing would pass; ``None``
    when it was not searched.
    """

    decision: Decision
    findings: tuple[Finding, ...]
    symbol: str
    side: str
    amount: float
    face: FillFace
    costing: Costing | None
    expected: Costing | None
    max_safe_amount: float | None
    now: float
    band: LiquidationBand | None = None
    """The position's liquidation band after the order (from the margin-ratio warning level
    through partial to full liquidation, on the mark, with each edge's time in seconds at the
    market's volatility), when the verdict was asked for it (``evaluate(..., band=True)``)."""

    @property
    def allowed(self) -> bool:
        """ALLOW or WARN."""
        return self.decision is not Decision.DENY

    @property
    def codes(self) -> tuple[Code, ...]:
        return tuple(finding.code for finding in self.findings)

    @property
    def denials(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.DENY)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.WARN)

    def raise_if_denied(self) -> None:
        """Raise :class:`safeguard._errors.OrderDenied` with the first denial's code."""
        denials = self.denials
        if denials:
            first = denials[0]
            more = f" (+{len(denials) - 1} more)" if len(denials) > 1 else ""
            raise OrderDenied(first.code, first.message + more, verdict=self)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping (non-finite numbers become ``None``)."""
        return {
            "decision": str(self.decision),
            "symbol": self.symbol,
            "side": self.side,
            "amount": _json_number(self.amount),
            "face": str(self.face),
            "max_safe_amount": _json_number(self.max_safe_amount),
            "now": self.now,
            "findings": [finding.to_dict() for finding in self.findings],
            "costing": None if self.costing is None else self.costing.to_dict(),
            "expected": None if self.expected is None else self.expected.to_dict(),
            "band": None if self.band is None else _band_dict(self.band),
        }


def _band_dict(band: LiquidationBand) -> dict[str, Any]:
    edges = {}
    for name in ("warning", "partial", "liquidation"):
        edge = getattr(band, name)
        edges[name] = (
            None
            if edge is None
            else {
                "price": _json_number(edge.price),
                "distance": _json_number(edge.distance),
                "one_sigma_time_s": _json_number(edge.one_sigma_time),
            }
        )
    return {
        "subject": band.subject,
        "mark": band.mark,
        "direction": band.direction,
        "margin_ratio": _json_number(band.margin_ratio),
        "warning_passed": band.warning_passed,
        **edges,
    }


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def fmt(value: float) -> str:
    """A number for a sentence: thousands separators, sensible decimals, no float noise."""
    magnitude = abs(value)
    if magnitude >= 1e15:
        return f"{value:.6g}"  # past any real money a hundred digits say nothing more
    if magnitude >= 100:
        text = f"{value:,.2f}"
    elif magnitude >= 1:
        text = f"{value:,.4f}"
    else:
        return f"{value:.6g}"
    return text.rstrip("0").rstrip(".")


def pct(value: float) -> str:
    """A percentage (or bps, or sigmas) for a sentence: two decimals at most ("0.3", "1.25")."""
    text = f"{value:,.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


__all__ = ["Costing", "Decision", "Finding", "Severity", "Verdict", "fmt", "pct"]
