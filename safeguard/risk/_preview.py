"""``preview``: the pre-trade verdict with the policy's defaults filled in.

:func:`safeguard.risk._verdict.evaluate` takes every part explicitly; :func:`preview` is the
same pure function for callers holding a :class:`~safeguard._config.Policy` (or nothing: the
defaults apply). The fill model built from a configuration is cached, so calling ``preview``
for every order does not rebuild it.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from safeguard._config import FillModelConfig, Policy, RiskLimits
from safeguard.risk._fills import FillModel
from safeguard.risk._models import Account, MarketSnapshot, OrderIntent
from safeguard.risk._outcome import Verdict
from safeguard.risk._stress import DepthProfile
from safeguard.risk._verdict import evaluate


@lru_cache(maxsize=32)
def _fill_model(config: FillModelConfig) -> FillModel:
    return FillModel.from_config(config)


def preview(
    intent: OrderIntent,
    market: MarketSnapshot,
    account: Account | None,
    *,
    now: float,
    policy: Policy | None = None,
    limits: RiskLimits | None = None,
    fills: FillModel | FillModelConfig | None = None,
    degraded: bool = False,
    size_search: bool = True,
    depth: Mapping[str, DepthProfile] | None = None,
    band: bool = False,
) -> Verdict:
    """The verdict on ``intent``: ALLOW, WARN or DENY, with codes and the numbers behind them.

    ``limits`` and ``fills`` override the policy's sections; without a policy the defaults of
    :class:`~safeguard._config.RiskLimits` and :class:`~safeguard._config.FillModelConfig`
    apply. ``degraded=True`` prices the order on the degraded fill model too (what only that
    face denies is DEGRADED_RISK). ``size_search=False`` skips the search for
    ``max_safe_amount`` (a bisection that prices the order a dozen more times). ``depth`` is
    the book each other held symbol's forced close walks in the stress grid (read only with
    ``require_stress_survival``; see :func:`~safeguard.risk._verdict.evaluate`).
    ``band=True`` adds the position's liquidation band (``Verdict.band``).
    Pure: no I/O, and ``now`` (epoch seconds) is the only clock.
    """
    if policy is not None and not isinstance(policy, Policy):
        raise ValueError(f"policy must be a Policy, got {type(policy).__name__}")
    chosen_limits = limits if limits is not None else (policy.risk if policy else RiskLimits())
    if isinstance(fills, FillModel):
        model = fills
    elif isinstance(fills, FillModelConfig):
        model = _fill_model(fills)
    elif fills is None:
        model = _fill_model(policy.fills if policy else FillModelConfig())
    else:
        raise ValueError(f"fills must be a FillModel or FillModelConfig, got {fills!r}")
    return evaluate(
        intent,
        market,
        account,
        chosen_limits,
        model,
        now=now,
        degraded=degraded,
        size_search=size_search,
        depth=depth,
        band=band,
    )


__all__ = ["preview"]
