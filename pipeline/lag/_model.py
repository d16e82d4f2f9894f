"""The lag snapshot: immutable per-partition and per-group records, and the status scale."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = [
    "GroupLag",
    "LagSnapshot",
    "PartitionLag",
    "PartitionOffsets",
    "Status",
]


class Status(enum.IntEnum):
    """Burrow-like consumer status; the integer value is the severity (the worst wins)."""

    OK = 0
    """Lag is zero, or commits move and lag is not growing."""
    WARN = 1
    """Commits move but lag grew over every sample of the window."""
    REWIND = 2
    """The committed offset went backwards (a reset or a replay)."""
    STALL = 3
    """Lag is above zero and the committed offset has not moved for ``stall_seconds``."""
    STOP = 4
    """Lag is above zero and the committed offset has not moved for the whole window."""
    ORPHANED = 5
    """The group is Stable and subscribed to the topic (a member owns one of its partitions),
    but no member has owned this partition for ``orphan_seconds``: nobody will read it until
    the next rebalance."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionOffsets:
    """The log offsets of one partition, as of one poll."""

    topic: str
    partition: int
    log_start: int
    """Earliest offset still in the log (retention moves it)."""
    high_watermark: int
    """End of the log, including records of open transactions."""
    stable_offset: int
    """Last stable offset: the end a ``read_committed`` consumer can reach."""
    stale: bool = False
    """True when the last attempt to read these offsets failed (the values are older)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionLag:
    """Lag of one consumer group on one partition."""

    group: str
    topic: str
    partition: int
    committed: int | None
    """The group's committed offset; None when it has none here (see :attr:`no_commit`)."""
    end_offset: int
    """The end lag is measured against: stable offset (read_committed) or high watermark."""
    lag: int
    """Records left to read: never negative, floored at the log start."""
    offset_expired: bool
    """Retention deleted the committed position (``committed < log_start``)."""
    lag_seconds: float
    """Age of the record at the committed offset; 0 when caught up."""
    lag_seconds_lower_bound: bool
    """``lag_seconds`` is a lower bound: the record is older than the sampled history."""
    status: Status = Status.OK
    stale: bool = False
    unowned_seconds: float | None = None
    """Seconds no member of the Stable group has owned this partition of a topic it consumes
    (None when a member owns it, or the group is not Stable); ORPHANED from ``orphan_seconds``."""

    @property
    def no_commit(self) -> bool:
        """A member is assigned this partition but the group never committed on it.

        Its lag is what the group's ``auto.offset.reset`` would consume (``GroupLag.offset_reset``).
        """
        return self.committed is None


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupLag:
    """One consumer group: its description and its partitions' lag."""

    group: str
    state: str
    """Coordinator state: Stable, Empty, PreparingRebalance, CompletingRebalance, Dead, ..."""
    protocol: str
    """``classic`` or ``consumer`` (KIP-848)."""
    assignor: str = ""
    members: int = 0
    assigned_partitions: int = 0
    orphaned_partitions: int = 0
    """Partitions with status ORPHANED."""
    isolation: str = "read_committed"
    """How lag is measured: ``read_committed`` (stable offset) or ``read_uncommitted``."""
    offset_reset: str = "earliest"
    """Where ``no_commit`` partitions are assumed to start: ``earliest`` or ``latest``."""
    partitions: tuple[PartitionLag, ...] = ()
    status: Status = Status.OK
    stale: bool = False
    """True when a call for this group failed in the last poll (the data is older)."""
    error: str | None = None
    updated_at: float = 0.0
    """Wall time of the last successful read of this group."""

    @property
    def lag(self) -> int:
        """Total offset lag over every partition, ``no_commit`` ones included."""
        return sum(p.lag for p in self.partitions)

    @property
    def lag_seconds(self) -> float:
        """The largest time lag over every partition."""
        return max((p.lag_seconds for p in self.partitions), default=0.0)

    @property
    def lag_seconds_lower_bound(self) -> bool:
        """True when the largest time lag is only a lower bound."""
        worst = max(self.partitions, key=lambda p: p.lag_seconds, default=None)
        return worst is not None and worst.lag_seconds_lower_bound


@dataclass(frozen=True, kw_only=True, slots=True)
class LagSnapshot:
    """Everything one poll learned; scrapes and ``lag show`` read only this."""

    taken_at: float = 0.0
    """Wall time the poll finished (0 before the first poll)."""
    poll_seconds: float = 0.0
    groups: Mapping[str, GroupLag] = field(default_factory=dict)
    offsets: Mapping[tuple[str, int], PartitionOffsets] = field(default_factory=dict)
    polls: int = 0
    errors: Mapping[str, int] = field(default_factory=dict)
    """Failed calls since start, by call name (``list_groups``, ``committed``, ...)."""
    ok: bool = False
    """The last poll completed without any failed call."""
