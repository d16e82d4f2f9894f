"""Flow control of the poll loop: the in-flight limit, waiting for room, pause and resume.

The poll loop never waits on handlers. When ``max_in_flight`` records are in flight it stops
consuming and waits for room, so prefetched records stay queued in librdkafka; only a stall
longer than ``pause_after_s`` pauses the assigned partitions (pausing drops what was
prefetched), and they resume once half the limit is free. The loop keeps polling while
paused, so the group never waits on a slow handler. Every pause goes through one
:class:`PauseSet`, so reasons other than the in-flight limit compose with this one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any

from ._metrics import WorkerMetrics
from ._options import WorkerOptions
from ._pauses import TP, PauseSet

__all__ = ["IN_FLIGHT", "FlowControl"]

IN_FLIGHT = "in-flight"
"""The pause reason of the in-flight limit."""

_LOG = logging.getLogger("consumers")


class FlowControl:
    """The in-flight count and the pause state of one poll loop (poll thread only).

    ``room`` is set by any thread that finishes a record; the poll thread waits on it when
    it has no room (or is switching execution modes) and clears it before draining.
    """

    def __init__(self, options: WorkerOptions, metrics: WorkerMetrics) -> None:
        self.limit = options.max_in_flight
        self._pause_after_s = options.pause_after_s
        self._metrics = metrics
        self.room = threading.Event()
        self.in_flight = 0
        self.paused = False  # paused by the in-flight limit
        self.pauses = PauseSet()
        self._full_since = 0.0

    def wait(self, timeout: float) -> None:
        """Wait up to ``timeout`` for a finished record, without consuming."""
        self.room.wait(timeout)
        self.room.clear()

    def full(self, now: float) -> bool:
        """Whether there is no room to fetch more (and not paused yet): wait instead."""
        if self.in_flight < self.limit or self.paused:
            return False
        self._full_since = self._full_since or now
        return True

    def fetch_size(self, batch_size: int) -> int:
        """How many records the next ``consume`` may take."""
        room = self.limit - self.in_flight
        if room > 0:
            self._full_since = 0.0
        return max(1, min(batch_size, room))

    def backpressure(self, now: float, consumer: Any, assignment: Iterable[TP]) -> None:
        """Pause after a long stall at the limit, resume at half of it; apply every pause reason.

        Called once a tick. The in-flight limit is one reason among others (see ``pauses``):
        resuming here never resumes a partition another reason holds.
        """
        limit = self.limit
        stalled = self._full_since and now - self._full_since >= self._pause_after_s
        if not self.paused and self.in_flight >= limit and stalled:
            self.paused = True
            self.pauses.hold_all(IN_FLIGHT)
            _LOG.debug("paused: %d records in flight", self.in_flight)
        elif self.paused and self.in_flight <= limit // 2:
            self.paused = False
            self.pauses.release(IN_FLIGHT)
        self._metrics.paused.set(self.pauses.apply(consumer, assignment))
