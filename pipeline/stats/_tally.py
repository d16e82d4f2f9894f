"""Pure folds over record headers: retry copies, redrive writes, dead and expired messages.

A redriven record that fails again is dead-lettered with the ``pipeline-redriven-at`` value of
the redrive write it came from (the worker keeps headers), so matching values, not clocks,
tell whether a dead letter was redriven since: a dead letter is redriven when the retry topic
holds a redrive write for the same original coordinates with a later ``pipeline-redriven-at``
(a first failure, without the header, is older than any write).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline._headers import (
    ATTEMPT,
    ERROR_TYPE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
    get_header,
)

__all__ = ["EXPIRED_ERROR_TYPE", "DeadLetterTally", "RetryTally", "completed_count", "origin"]

EXPIRED_ERROR_TYPE = b"expired"
"""The ``pipeline-error-type`` a worker writes for a record whose expiry time had passed."""

Headers = Sequence[tuple[str, bytes | None]] | None
Origin = tuple[bytes, bytes, bytes]


def origin(headers: Headers) -> Origin | None:
    """The original coordinates (topic, partition, offset header values), or None."""
    topic = get_header(headers, ORIGINAL_TOPIC)
    partition = get_header(headers, ORIGINAL_PARTITION)
    offset = get_header(headers, ORIGINAL_OFFSET)
    if topic is None or partition is None or offset is None:
        return None
    return topic, partition, offset


@dataclass
class RetryTally:
    """Records of ``<group>.retry``: who wrote them, and the latest redrive per original."""

    worker_copies: int = 0
    """Retry copies a worker wrote (they carry ``pipeline-attempt``)."""
    redrive_writes: int = 0
    """Records ``pipeline dlq redrive`` wrote (``pipeline-redriven-at``, no attempt header)."""
    other: int = 0
    """Anything else (written by hand or by another tool)."""
    latest_redrive: dict[Origin, bytes] = field(default_factory=dict)

    def add(self, headers: Headers) -> None:
        """Count one record of the retry topic."""
        if get_header(headers, ATTEMPT) is not None:
            self.worker_copies += 1
            return
        redriven_at = get_header(headers, REDRIVEN_AT)
        if redriven_at is None:
            self.other += 1
            return
        self.redrive_writes += 1
        where = origin(headers)
        if where is not None and redriven_at > self.latest_redrive.get(where, b""):
            self.latest_redrive[where] = redriven_at


@dataclass
class DeadLetterTally:
    """Dead letters folded per original record (a message and its copies count once)."""

    records: int = 0
    """Every DLQ record read (copies and crash duplicates included)."""
    _latest: dict[object, tuple[bytes, bool]] = field(default_factory=dict)

    def add(self, headers: Headers, partition: int, offset: int) -> None:
        """Count one DLQ record (records of a partition in offset order)."""
        self.records += 1
        where: object = origin(headers) or ("dlq", partition, offset)
        generation = get_header(headers, REDRIVEN_AT) or b""
        is_expired = get_header(headers, ERROR_TYPE) == EXPIRED_ERROR_TYPE
        seen = self._latest.get(where)
        if seen is None or generation >= seen[0]:
            self._latest[where] = (generation, is_expired)

    def counts(self, retry: RetryTally) -> tuple[int, int]:
        """``(dead, expired)``: messages whose latest dead letter was not redriven since."""
        dead = expired = 0
        for where, (generation, is_expired) in self._latest.items():
            written = retry.latest_redrive.get(where) if isinstance(where, tuple) else None
            if written is not None and written > generation:
                continue  # redriven after its latest failure
            if is_expired:
                expired += 1
            else:
                dead += 1
        return dead, expired


def completed_count(read: int, retry_copies: int, dead_letters: int) -> int:
    """Records finished without a retry or dead-letter copy.

    Args:
        read: offsets the group has read past in its source topics and its retry topic
            (committed offset minus log start, per partition).
        retry_copies: retry copies its workers wrote (retry topic and scheduler backlog).
        dead_letters: records of its dead-letter topic.

    Every record read has one outcome (finished, retried or dead-lettered), so the finished
    ones are the rest; floored at 0 (retention can delete a source record before its copies).
    """
    return max(0, read - retry_copies - dead_letters)


def sum_read(positions: Iterable[tuple[int | None, int]]) -> int:
    """Offsets read past: ``max(committed, log_start) - log_start`` over ``(committed,
    log_start)`` pairs; a partition without a committed offset has read nothing."""
    return sum(max(c, start) - start for c, start in positions if c is not None)
