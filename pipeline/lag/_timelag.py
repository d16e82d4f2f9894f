"""Time lag from sampled (end offset, wall time) points: interpolate, never extrapolate."""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

__all__ = ["OffsetTimeTable", "TimeLag"]


@dataclass(frozen=True, slots=True)
class TimeLag:
    """Seconds since the record at a committed offset was produced."""

    seconds: float
    lower_bound: bool
    """True when the record is older than the oldest sample: the real lag is at least this."""


class OffsetTimeTable:
    """A bounded ring of ``(end offset, time)`` samples of one partition.

    A sample ``(o, t)`` says: every record below ``o`` existed at time ``t``. Runs of equal
    offsets (an idle partition) keep only their first and last sample, so idle time costs no
    room and the ring of ``capacity`` samples spans as much history as traffic allows.
    """

    __slots__ = ("_offsets", "_times")

    def __init__(self, capacity: int = 1024) -> None:
        if capacity < 2:
            raise ValueError("capacity must be at least 2")
        self._offsets: deque[int] = deque(maxlen=capacity)
        self._times: deque[float] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._offsets)

    @property
    def oldest(self) -> tuple[int, float] | None:
        """The oldest sample, or None when empty."""
        return (self._offsets[0], self._times[0]) if self._offsets else None

    def add(self, end_offset: int, at: float) -> None:
        """Record that the log ended at ``end_offset`` at time ``at``.

        Samples that go back in time or offset (a truncated or recreated log) reset the table,
        because the old points no longer describe this log.
        """
        if self._offsets and (end_offset < self._offsets[-1] or at < self._times[-1]):
            self._offsets.clear()
            self._times.clear()
        offsets, times = self._offsets, self._times
        if len(offsets) >= 2 and offsets[-1] == end_offset and offsets[-2] == end_offset:
            times[-1] = at
            return
        offsets.append(end_offset)
        times.append(at)

    def produced_at(self, offset: int) -> tuple[float, bool] | None:
        """When the record at ``offset`` was appended: ``(time, is_upper_bound_of_age)``.

        Returns None when the record is not in the table yet (at or past the newest end);
        ``(oldest time, True)`` when it is older than the oldest sample.
        """
        offsets = self._offsets
        if not offsets or offset >= offsets[-1]:
            return None
        # First sample whose end is past the offset: the record existed by then.
        j = bisect.bisect_right(offsets, offset)
        if j == 0:
            return self._times[0], True
        o_i, o_j = offsets[j - 1], offsets[j]
        t_i, t_j = self._times[j - 1], self._times[j]
        # Records o_i .. o_j-1 arrived in (t_i, t_j]; record `offset` is the (offset-o_i+1)-th.
        fraction = min(1.0, (offset - o_i + 1) / (o_j - o_i))
        return t_i + fraction * (t_j - t_i), False

    def lag(self, committed: int, offset_lag: int, now: float) -> TimeLag:
        """Time lag of a committed offset; 0 when there is no offset lag.

        Args:
            committed: the committed offset (already floored at the log start).
            offset_lag: the offset lag; 0 means caught up and gives 0 seconds.
            now: the current wall time.
        """
        if offset_lag <= 0:
            return TimeLag(0.0, False)
        found = self.produced_at(committed)
        if found is None:
            return TimeLag(0.0, False)
        produced, bound = found
        return TimeLag(max(0.0, now - produced), bound)
