"""The one backoff schedule: how long at most to wait after a failed attempt.

:meth:`~safeguard._config.RetryConfig.ceiling` answers from here. The
guard's :class:`~safeguard.guard._retry.RetryPolicy` draws its jitter below the ceiling; the
kill ladder and the webhook wait it out. Pure, and light to import: the kill switch and
``safeguard kill`` use it without loading the guard or ccxt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from safeguard._config import RetryConfig


def ceiling(retry: RetryConfig, attempt: int) -> float:
    """The longest wait after failed attempt ``attempt`` (1-based): ``base_delay_s``, doubling
    on each retry, capped at ``max_delay_s``."""
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1, got {attempt!r}")
    # Cap the exponent before it overflows a float; the cap applies long before anyway.
    return min(retry.max_delay_s, retry.base_delay_s * 2.0 ** min(attempt - 1, 64))
