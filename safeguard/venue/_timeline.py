"""The venue's time of record, its event log, and the listeners that hear each event.

Inside a simulation step things happen at the step's time (the clock already shows the end of
the whole advance); between steps, at the clock's. Every part of the engine that acts (trading,
the ledger, funding, the liquidator) stamps, records and announces through one
:class:`Timeline`, so none of them needs the :class:`~safeguard.venue._engine.Venue` for it; the
venue alone moves the time as it steps.
"""

from __future__ import annotations

from collections.abc import Callable

from safeguard._clock import Clock
from safeguard._log import logger
from safeguard.venue._events import Notice, VenueEvent

Listener = Callable[[Notice], object]


class Timeline:
    """When things happen on the venue, what happened, and who hears of it."""

    def __init__(self, clock: Clock, start: float) -> None:
        self.clock = clock
        self.now = start
        """The time of the step being simulated (between steps, of the last one)."""
        self.stepping = False
        """Whether a step is being simulated (then things happen at :attr:`now`)."""
        self.events: list[VenueEvent] = []
        """Every event, in the order it happened (``Venue.events`` is this list)."""
        self.listeners: list[Listener] = []
        # The hot paths read ``now``, ``stepping`` and ``listeners`` directly (an attribute is
        # cheaper than a call per fill); everything else goes through time(), ms(), record().

    def time(self) -> float:
        """The time something happening now happens at (epoch seconds)."""
        return self.now if self.stepping else self.clock.time()

    def ms(self) -> int:
        return int((self.now if self.stepping else self.clock.time()) * 1000)

    def notify(self, notice: Notice) -> None:
        """Tell every listener; a listener that fails is logged and the market goes on."""
        for listener in list(self.listeners):
            try:
                listener(notice)
            except Exception:  # a listener's bug must not stop the market
                logger.exception("venue: listener failed on {}", type(notice).__name__)

    def record(self, event: VenueEvent) -> None:
        """Keep ``event`` in the log and tell the listeners."""
        self.events.append(event)
        if self.listeners:
            self.notify(event)


__all__ = ["Listener", "Timeline"]
