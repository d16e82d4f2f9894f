"""Burrow-like status of a consumer over a sliding window of (time, committed, lag) samples."""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from ._model import Status

__all__ = ["PartitionWindow", "StatusThresholds", "worst"]


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusThresholds:
    """When a partition turns WARN, STALL or STOP. Defaults suit a 10 s poll interval.

    Rules, checked in this order on each poll (the first that matches wins):

    1. REWIND: the committed offset went down within ``window_seconds``.
    2. OK: the latest lag is 0.
    3. STOP: lag > 0 and the committed offset has not changed for longer than
       ``window_seconds`` (a dead or SIGSTOPped consumer, or an empty group left behind).
    4. STALL: lag > 0 and the committed offset has not changed for ``stall_seconds``.
    5. WARN: at least ``min_samples`` samples in the window, the committed offset moves, and
       the lag never went down and ended higher than it started (the consumer is falling behind).
    6. OK otherwise.

    A freshly seen partition counts its unchanged time from the first poll that saw it, so a
    monitor restart delays STALL/STOP by at most ``stall_seconds``/``window_seconds``.
    """

    window_seconds: float = 300.0
    """Length of the sliding window, and the no-commit time after which a partition is STOP."""
    stall_seconds: float = 60.0
    """No-commit time (with lag) after which a partition is STALL."""
    min_samples: int = 5
    """Samples needed in the window before WARN can be raised."""
    orphan_seconds: float = 30.0
    """A partition of a topic the group consumes, owned by no member of the Stable group for
    this long, is ORPHANED (whatever its lag: it overrides the rules above)."""

    def __post_init__(self) -> None:
        if self.orphan_seconds < 0:
            raise ValueError("orphan_seconds must not be negative")
        if not 0 < self.stall_seconds <= self.window_seconds:
            raise ValueError("need 0 < stall_seconds <= window_seconds")
        if self.min_samples < 2:
            raise ValueError("min_samples must be at least 2")


def worst(statuses: list[Status]) -> Status:
    """The most severe status, OK for none."""
    return max(statuses, default=Status.OK)


class PartitionWindow:
    """The sample history of one (group, topic, partition)."""

    __slots__ = ("_samples", "changed_at", "thresholds")

    def __init__(self, thresholds: StatusThresholds) -> None:
        self.thresholds = thresholds
        self._samples: deque[tuple[float, int, int]] = deque()
        self.changed_at = 0.0
        """When the committed offset was last seen to change (or first seen)."""

    def add(self, at: float, committed: int, lag: int) -> Status:
        """Record one poll and return the partition's status."""
        samples = self._samples
        if not samples or samples[-1][1] != committed:
            self.changed_at = at
        samples.append((at, committed, lag))
        horizon = at - self.thresholds.window_seconds
        while len(samples) > 2 and samples[0][0] < horizon:
            samples.popleft()
        return self.evaluate(at)

    def evaluate(self, now: float) -> Status:
        """Apply the rules of :class:`StatusThresholds` to the current window."""
        samples = self._samples
        if not samples:
            return Status.OK
        t = self.thresholds
        offsets = [s[1] for s in samples]
        if any(b < a for a, b in itertools.pairwise(offsets)):
            return Status.REWIND
        lag = samples[-1][2]
        if lag <= 0:
            return Status.OK
        unchanged = now - self.changed_at
        if unchanged > t.window_seconds:
            return Status.STOP
        if unchanged >= t.stall_seconds:
            return Status.STALL
        lags = [s[2] for s in samples]
        growing = all(b >= a for a, b in itertools.pairwise(lags)) and lags[-1] > lags[0]
        if len(samples) >= t.min_samples and offsets[-1] != offsets[0] and growing:
            return Status.WARN
        return Status.OK
