"""Per-partition offset tracking: the commit position is the lowest offset not yet completed."""

from __future__ import annotations

from collections import deque

__all__ = ["OffsetTracker", "PartitionState"]


class OffsetTracker:
    """Offsets dispatched in order, completed in any order.

    ``position`` is the offset to commit: the lowest dispatched offset that is not complete, or
    one past the highest dispatched offset when all are complete. Offsets may have gaps
    (compaction, transaction markers); only dispatched offsets count. Not thread-safe: the poll
    thread owns it.
    """

    __slots__ = ("_done", "_high", "_pending")

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._high = -1

    def add(self, offset: int) -> None:
        """Record a dispatched offset (offsets arrive in increasing order)."""
        if offset <= self._high:
            raise ValueError(f"offset {offset} dispatched after {self._high}")
        self._pending.append(offset)
        self._high = offset

    def complete(self, offset: int) -> None:
        """Mark a dispatched offset complete."""
        pending = self._pending
        if pending and pending[0] == offset:
            pending.popleft()
            done = self._done
            while pending and pending[0] in done:
                done.discard(pending.popleft())
        else:
            self._done.add(offset)

    @property
    def position(self) -> int | None:
        """The offset to commit, or None when nothing was dispatched yet."""
        if self._pending:
            return self._pending[0]
        return self._high + 1 if self._high >= 0 else None

    @property
    def outstanding(self) -> int:
        """Dispatched offsets not yet complete."""
        return len(self._pending) - len(self._done)


class PartitionState:
    """What the worker knows about one assigned partition (owned by the poll thread).

    A new object is made on every assignment, so completions of work from an earlier
    assignment (after a revoke) can be recognised and ignored.
    """

    __slots__ = ("at_end", "committed", "in_flight", "partition", "revoked", "topic", "tracker")

    def __init__(self, topic: str, partition: int) -> None:
        self.topic = topic
        self.partition = partition
        self.tracker = OffsetTracker()
        self.committed: int | None = None
        self.in_flight = 0
        # Read by worker threads: queued work of a revoked partition is dropped, not run.
        self.revoked = False
        # Consumed to the end of the log (librdkafka's partition EOF, and no record since).
        self.at_end = False

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"

    def commit_due(self) -> int | None:
        """The position to commit if it moved since the last commit, else None."""
        position = self.tracker.position
        if position is None or position == self.committed:
            return None
        return position
