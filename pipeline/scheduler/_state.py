"""In-memory state of the scheduler: per-partition progress and the heap of held records."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from pipeline._headers import (
    DELIVERED_AT,
    ERROR_MESSAGE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    SCHEDULER_HEADERS,
    SCHEDULER_SEQ,
    Headers,
    get_header,
    without,
)

from ._records import decode_pending, encode_pending

__all__ = [
    "HeldRecords",
    "Outgoing",
    "PartitionState",
    "dead_letter_headers",
    "forward_headers",
    "hop_headers",
    "record_seq",
]


@dataclass(eq=False)
class PartitionState:
    """Progress of one assigned partition of the entry topic or of a tier topic.

    ``next_offset`` is one past the last record taken; ``pending`` holds the offsets taken but
    not done (held in memory or parked; records in flight are settled by the producer flush
    that precedes every at-least-once commit, and by the transaction otherwise). Offsets in
    ``[committed, restore_next)`` and not in ``restore_pending`` were done by a previous owner
    and are skipped. ``parked`` holds records of a tier partition that were fetched before they
    exit their tier, as ``(exit_ms, offset, message)`` in offset (so exit) order: they wait in
    memory instead of being fetched again after a pause. ``callback`` is the delivery callback
    shared by every record sent on behalf of this partition.
    """

    topic: str
    partition: int
    tier: str
    tier_ms: int | None
    next_offset: int = -1
    pending: set[int] = field(default_factory=set)
    held: int = 0
    restore_next: int = 0
    restore_pending: frozenset[int] = frozenset()
    paused: bool = False
    resume_at_ms: int | None = None
    last_commit: tuple[int, str] | None = None
    alive: bool = True
    parked: deque[tuple[int, int, Any]] = field(default_factory=deque)
    callback: Any = None

    @classmethod
    def restored(
        cls, topic: str, partition: int, tier: str, tier_ms: int | None, committed: int, meta: str
    ) -> PartitionState:
        """State of a partition just assigned, from its committed offset and metadata."""
        restore_next, restore_pending = decode_pending(committed, meta)
        return cls(
            topic,
            partition,
            tier,
            tier_ms,
            next_offset=committed if committed >= 0 else -1,
            restore_next=restore_next,
            restore_pending=restore_pending,
            last_commit=(committed, meta) if committed >= 0 else None,
        )

    def already_done(self, offset: int) -> bool:
        """True when a previous owner finished this offset (committed in the metadata)."""
        return offset < self.restore_next and offset not in self.restore_pending

    def commit_point(self) -> tuple[int, str] | None:
        """``(offset, metadata)`` to commit, or None when nothing changed since the last one."""
        if self.next_offset < 0:
            return None
        point = encode_pending(self.next_offset, self.pending)
        return None if point == self.last_commit else point


@dataclass(eq=False, slots=True)
class Outgoing:
    """One record the scheduler writes: a forward, a tier hop or a dead letter."""

    kind: str
    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers
    source: PartitionState
    offset: int
    partition: int = -1
    timestamp: int = 0
    due_ms: int = 0


class HeldRecords:
    """Records due soon, ordered by (due time, entry sequence); stale entries are skipped."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, int, Outgoing]] = []
        self._tie = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    def push(self, out: Outgoing, seq: int) -> None:
        """Hold ``out`` until ``out.due_ms``."""
        out.source.held += 1
        out.source.pending.add(out.offset)
        heapq.heappush(self._heap, (out.due_ms, seq, next(self._tie), out))

    def next_due(self) -> int | None:
        """Due time of the first held record, or None."""
        while self._heap and not self._heap[0][3].source.alive:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def next_due_before(self, now_ms: int) -> bool:
        """True when the first entry (possibly of a revoked partition) is due at ``now_ms``."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= now_ms

    def pop_due(self, now_ms: int) -> list[Outgoing]:
        """Remove and return every live record due at or before ``now_ms``, in order."""
        out = []
        while self._heap and self._heap[0][0] <= now_ms:
            record = heapq.heappop(self._heap)[3]
            if record.source.alive:
                record.source.held -= 1
                out.append(record)
        return out

    def clear(self) -> None:
        """Forget every held record (after a rewind they are read again from Kafka)."""
        self._heap.clear()


def record_seq(headers: Headers | None, offset: int) -> int:
    """The entry offset carried through tier hops; a record on the entry topic uses its own."""
    raw = get_header(headers, SCHEDULER_SEQ)
    return int(raw) if raw is not None and raw.isdigit() else offset


def hop_headers(headers: Headers | None, seq: int) -> Headers:
    """Headers for a tier hop: everything kept, plus the entry sequence."""
    return [*without(headers, (SCHEDULER_SEQ,)), (SCHEDULER_SEQ, str(seq).encode())]


def forward_headers(headers: Headers | None, now_ms: int) -> Headers:
    """Headers for the target topic: scheduler headers removed, delivery time added."""
    return [*without(headers, SCHEDULER_HEADERS), (DELIVERED_AT, str(now_ms).encode())]


def dead_letter_headers(
    headers: Headers | None, origin: tuple[str, int, int], reason: str, message: str, now_ms: int
) -> Headers:
    """Original headers plus the error and origin (topic, partition, offset) headers."""
    topic, partition, offset = origin
    extra: Headers = [
        (ERROR_TYPE, reason.encode()),
        (ERROR_MESSAGE, message.encode("utf-8", "replace")[:1000]),
        (ORIGINAL_TOPIC, topic.encode()),
        (ORIGINAL_PARTITION, str(partition).encode()),
        (ORIGINAL_OFFSET, str(offset).encode()),
        (FAILED_AT, str(now_ms).encode()),
    ]
    return [*(headers or []), *extra]
