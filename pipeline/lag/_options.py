"""Options of the lag monitor, grouped in one frozen dataclass."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ._math import Isolation, OffsetReset
from ._status import StatusThresholds

__all__ = ["LagOptions"]


@dataclass(frozen=True, kw_only=True, slots=True)
class LagOptions:
    """How often and how hard the poller works, and which groups it watches."""

    interval: float = 10.0
    """Seconds between polls."""
    groups: re.Pattern[str] | None = None
    """Only groups whose id matches (``re.search``); None watches every group."""
    isolation: Isolation = Isolation.AUTO
    """Which end offset lag is measured against; see :class:`Isolation`."""
    offset_reset: OffsetReset = OffsetReset.EARLIEST
    """Where a group starts on an assigned partition it has no committed offset for (its
    consumers' ``auto.offset.reset``, which the broker does not know)."""
    exact: bool = False
    """Read the timestamp of the record at each lagging committed offset (see RecordReader)."""
    exact_max_partitions: int = 200
    """At most this many record reads per poll (exact mode and marker probes together)."""
    marker_probe_max: int = 10
    """An idle partition whose lag is at most this is read once, at the group's isolation level,
    to see whether only transaction markers remain (and, read_committed, aborted records); if so
    its lag is 0. 0 disables the probe."""
    thresholds: StatusThresholds = field(default_factory=StatusThresholds)
    timeout: float = 10.0
    """Per admin request, in seconds."""
    concurrency: int = 16
    """Committed-offset requests in flight at once."""
    history: int = 1024
    """(end offset, time) samples kept per partition for time lag."""

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ValueError("interval must be positive")
        if self.history < 2:
            raise ValueError("history must be at least 2")

    def watches(self, group: str) -> bool:
        """True when ``group`` passes the ``groups`` filter."""
        return self.groups is None or self.groups.search(group) is not None
