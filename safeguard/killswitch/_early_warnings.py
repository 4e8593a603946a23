"""Early warnings: anomalies that come before an incident, reported before they are a halt.

The triggers (:mod:`safeguard.killswitch._triggers`) engage the switch when a limit is broken.
A warning fires earlier, on the signs that usually precede the break:

- ``CANCEL_BURST``: cancels per window at ``cancel_burst`` (a bot flailing, or a strategy
  pulling its quotes before something it saw);
- ``LEVERAGE_CHANGES``: leverage changes per window at ``leverage_changes``;
- ``THIN_BOOK``: the book between the mark and a position's stop (its liquidation price when
  it has no stop) holds less than ``thin_book_cover`` times the position: the exit is thin
  exactly where it will be needed;
- ``MARK_INDEX_GAP``: the mark ``mark_index_gap_pct`` % or more from the index;
- ``FUNDING_NEAR_CAP``: ``|funding rate|`` at ``funding_near_cap`` of the venue's cap or more;
- ``PARAMETER_FLAPPING``: a margin parameter (the tier table, the funding interval) changed
  ``flapping_changes`` times within ``flapping_window_s`` and came back to a value it had.

Each is an :class:`EarlyWarning` with a severity (``warning``; ``critical`` at twice the
threshold, or half the cover for a thin book) and, when the policy escalates it, the switch
state to engage. A warning is not repeated for the same symbol within ``cooling_period_s``.
:class:`WarningMonitor` is pure: every method takes ``now`` and returns what fired; the guard's
:class:`~safeguard.guard._tripwire.TripWire` feeds it and delivers the results.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from safeguard._config import WarningConfig, WarningName

WarningSeverity = Literal["warning", "critical"]


@dataclass(frozen=True, slots=True)
class EarlyWarning:
    name: WarningName
    severity: WarningSeverity
    message: str
    value: float
    threshold: float
    at: float
    symbol: str | None = None
    escalate: Literal["HALTED", "REDUCING"] | None = None


@dataclass(frozen=True, slots=True)
class ClosingPosition:
    """What a thin book endangers: a position's side (+1 long), size, and the price its exit
    is planned at (the stop, else the liquidation price)."""

    side: int
    quantity: float
    exit_price: float


@dataclass
class WarningMonitor:
    config: WarningConfig
    _cancels: deque[float] = field(default_factory=deque)
    _leverage: deque[float] = field(default_factory=deque)
    _last: dict[tuple[str, str | None], float] = field(default_factory=dict)
    _parameters: dict[tuple[str, str], deque[tuple[float, Hashable]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.config, WarningConfig):
            raise ValueError(f"config must be a WarningConfig, got {type(self.config).__name__}")

    # --- observations ---------------------------------------------------------------------

    def cancelled(self, now: float) -> list[EarlyWarning]:
        limit = self.config.cancel_burst
        if limit is None:
            return []
        count = self._count(self._cancels, now)
        return self._fire(
            "CANCEL_BURST",
            None,
            now,
            count >= limit,
            count,
            limit,
            f"{count} cancels in {self.config.window_s:g} s (warning at {limit})",
        )

    def leverage_changed(self, now: float, symbol: str | None = None) -> list[EarlyWarning]:
        limit = self.config.leverage_changes
        if limit is None:
            return []
        count = self._count(self._leverage, now)
        return self._fire(
            "LEVERAGE_CHANGES",
            None,
            now,
            count >= limit,
            count,
            limit,
            f"{count} leverage changes in {self.config.window_s:g} s (warning at {limit})"
            + (f", the last on {symbol}" if symbol else ""),
        )

    def market(
        self,
        now: float,
        symbol: str,
        *,
        mark: float | None,
        index: float | None = None,
        funding_rate: float | None = None,
        funding_cap: float | None = None,
        bids: Sequence[tuple[float, float]] = (),
        asks: Sequence[tuple[float, float]] = (),
        position: ClosingPosition | None = None,
        parameters: Sequence[tuple[str, Hashable]] = (),
    ) -> list[EarlyWarning]:
        """One look at ``symbol``'s market: every market-side warning it raises.

        ``funding_cap`` is the venue's cap (the market's, else the policy's
        ``risk.funding_cap_rate``); without one funding is not judged. ``parameters`` are
        ``(name, value)`` pairs of margin parameters (a hashable value:
        compare tier tables by their rows) whose changes are tracked for flapping."""
        cfg = self.config
        fired: list[EarlyWarning] = []
        if cfg.mark_index_gap_pct is not None and _positive(mark) and _positive(index):
            assert mark is not None
            assert index is not None
            gap = abs(mark - index) / index * 100.0
            fired += self._fire(
                "MARK_INDEX_GAP",
                symbol,
                now,
                gap >= cfg.mark_index_gap_pct,
                gap,
                cfg.mark_index_gap_pct,
                f"{symbol} mark {mark:,.8g} is {gap:.3g} % from its index {index:,.8g} "
                f"(warning at {cfg.mark_index_gap_pct:g} %)",
            )
        cap = funding_cap
        near = cfg.funding_near_cap
        if near is not None and cap is not None and cap > 0 and funding_rate is not None:
            share = abs(funding_rate) / cap
            fired += self._fire(
                "FUNDING_NEAR_CAP",
                symbol,
                now,
                share >= near,
                share,
                near,
                f"{symbol} funding {funding_rate * 100:.4g} % is {share * 100:.3g} % of its "
                f"{cap * 100:.4g} % cap (warning at {near * 100:g} %)",
                critical_at=1.0,
            )
        cover_needed = cfg.thin_book_cover
        if cover_needed is not None and position is not None and _positive(mark):
            assert mark is not None
            fired += self._thin_book(now, symbol, mark, bids, asks, position, cover_needed)
        if cfg.flapping_changes is not None:
            for name, value in parameters:
                fired += self._flapping(now, symbol, name, value, cfg.flapping_changes)
        return fired

    # --- the detectors --------------------------------------------------------------------

    def _thin_book(
        self,
        now: float,
        symbol: str,
        mark: float,
        bids: Sequence[tuple[float, float]],
        asks: Sequence[tuple[float, float]],
        position: ClosingPosition,
        cover_needed: float,
    ) -> list[EarlyWarning]:
        if position.quantity <= 0:
            return []
        # A long's exit sells into the bids down to its exit price; a short's buys the asks.
        if position.side > 0:
            depth = sum(size for price, size in bids if position.exit_price <= price <= mark)
        else:
            depth = sum(size for price, size in asks if mark <= price <= position.exit_price)
        cover = depth / position.quantity
        return self._fire(
            "THIN_BOOK",
            symbol,
            now,
            cover < cover_needed,
            cover,
            cover_needed,
            f"{symbol}: the book between the mark {mark:,.8g} and the exit at "
            f"{position.exit_price:,.8g} holds {depth:,.6g}, {cover:.3g}x the "
            f"{position.quantity:,.6g} position (warning under {cover_needed:g}x)",
            below=True,
        )

    def _flapping(
        self, now: float, symbol: str, name: str, value: Hashable, changes_needed: int
    ) -> list[EarlyWarning]:
        history = self._parameters.setdefault((symbol, name), deque())
        if history and history[-1][1] == value:
            return []
        history.append((now, value))
        horizon = now - self.config.flapping_window_s
        while len(history) > 1 and history[1][0] <= horizon:
            history.popleft()  # keep the value in force at the window's start
        changes = len(history) - 1
        values = [v for _, v in history]
        returned = len(set(values)) < len(values)
        return self._fire(
            "PARAMETER_FLAPPING",
            symbol,
            now,
            changes >= changes_needed and returned,
            changes,
            changes_needed,
            f"{symbol} {name} changed {changes} times in {self.config.flapping_window_s:g} s "
            "and came back to an earlier value: its triggers and cooling periods are moving",
        )

    # --- plumbing ---------------------------------------------------------------------------

    def _count(self, times: deque[float], now: float) -> int:
        times.append(now)
        horizon = now - self.config.window_s
        while times and times[0] <= horizon:
            times.popleft()
        return len(times)

    def _fire(
        self,
        name: WarningName,
        symbol: str | None,
        now: float,
        condition: bool,
        value: float,
        threshold: float,
        message: str,
        *,
        below: bool = False,
        critical_at: float | None = None,
    ) -> list[EarlyWarning]:
        if not condition:
            return []
        key = (name, symbol)
        last = self._last.get(key)
        if last is not None and 0.0 <= now - last < self.config.cooling_period_s:
            return []
        self._last[key] = now
        if below:
            critical = value <= threshold / 2.0
        else:
            critical = value >= (critical_at if critical_at is not None else 2.0 * threshold)
        return [
            EarlyWarning(
                name,
                "critical" if critical else "warning",
                message,
                float(value),
                float(threshold),
                now,
                symbol,
                self.config.escalate.get(name),
            )
        ]


def _positive(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0.0


__all__ = ["ClosingPosition", "EarlyWarning", "WarningMonitor", "WarningSeverity"]
