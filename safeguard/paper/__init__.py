"""Paper trading: a strategy on the mock venue, guarded and naive side by side.

``safeguard paper`` runs :class:`~safeguard.paper.strategy.TrendFollower` (or your own
strategy, see :mod:`safeguard.paper.strategy`) twice on simulated time, once through the
guarded exchange and once through plain ccxt with naive retries, under the same seed and fault
plan (:mod:`safeguard.paper.scenario`), and writes a report of what the guard changed.
"""
