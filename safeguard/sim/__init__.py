"""Deterministic simulation: the whole stack on simulated time under the seed's faults.

One process, one seed: a population of guarded bots (a market maker, a trend follower on the
async face, a cancel/replace loop, a bot that restarts from its files, a trader on ccxt.pro
streams) trades on the mock venue while the seed's schedule throws venue and stream faults,
process kills at chosen points, torn journal writes, a full disk, a read-only state directory,
clock steps and operator engages at them, and the invariants are checked after every bar. With
a ``redis-server`` on PATH, two of the bots share one kill switch through a Redis the world
runs (fleet mode), and the seed kills, freezes or empties it (:mod:`safeguard.sim._fleet`).
``safeguard sim --seeds 1000`` runs many seeds; a failing seed prints the command that
replays it and the shrinker reduces its schedule to the fewest faults that fail.
"""

from safeguard.sim._runner import explain, replay_command, run_seed, run_seeds, shrink
from safeguard.sim._schedule import Fault, draw_schedule
from safeguard.sim._world import Outcome, World

__all__ = [
    "Fault",
    "Outcome",
    "World",
    "draw_schedule",
    "explain",
    "replay_command",
    "run_seed",
    "run_seeds",
    "shrink",
]
