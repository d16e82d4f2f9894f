"""Once-only redrive: the redrive position, what a run sends, and dead letters grouped by origin.

A redriven record that fails again comes back to ``<group>.dlq`` as a new record (a *copy*)
with the same original coordinates (``pipeline-original-topic``, ``-partition``, ``-offset``)
and the ``pipeline-redriven-at`` header the redrive added, which the worker carries through.
Its offset is past the redrive position, so the position alone would send it again.

The position, per DLQ partition, is kept in Kafka in the consumer group
``<group>.dlq-redrive``:

* the committed offset: every record below it was scanned by an executed run;
* the commit metadata ``{"again": A}``: every copy below ``A`` was scanned by an executed
  ``--again`` run (no metadata: ``A`` is the committed offset).

A run reads ``[committed, end)``; an ``--again`` run reads ``[min(A, committed), end)`` but
below the committed offset looks at copies only. A plain run sends first failures and skips
copies; an ``--again`` run sends both. One run sends one copy per original record. So each
record is sent by at most one run, and a copy a plain run skipped is still there for
``--again``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline._admin import kafka_error
from pipeline._headers import ERROR_TRACE, REDRIVEN_AT, get_header, without

from ._dead_letters import DeadLetter, DeadLetterFilter

__all__ = [
    "DeadLetterGroup",
    "DeadLetterGroups",
    "Origin",
    "RedrivePlan",
    "RedrivePosition",
    "Verdict",
    "group_dead_letters",
    "origin_of",
    "read_positions",
    "save_positions",
]

Origin = tuple[str, int, int]


def origin_of(record: DeadLetter) -> Origin | None:
    """The original coordinates of a dead letter (None when a header is missing)."""
    if (
        record.original_topic is None
        or record.original_partition is None
        or record.original_offset is None
    ):
        return None
    return record.original_topic, record.original_partition, record.original_offset


def is_copy(record: DeadLetter) -> bool:
    """Whether the dead letter is a redriven record that failed again."""
    return get_header(record.headers, REDRIVEN_AT) is not None


@dataclass(frozen=True, slots=True)
class RedrivePosition:
    """How far redrive got in one DLQ partition (see the module docstring)."""

    offset: int
    again: int

    @classmethod
    def parse(cls, offset: int, metadata: str | None) -> RedrivePosition:
        """The position from a committed offset and its metadata (bad metadata: ``again`` =
        ``offset``, as for a position saved before copies were tracked)."""
        again = offset
        try:
            found = json.loads(metadata) if metadata else None
        except ValueError:
            found = None
        saved = found.get("again") if isinstance(found, dict) else None
        if isinstance(saved, int) and not isinstance(saved, bool):
            again = min(max(saved, 0), offset)
        return cls(offset, again)

    @property
    def metadata(self) -> str:
        """The commit metadata that stores ``again``."""
        return json.dumps({"again": self.again}, separators=(",", ":"))

    def start(self, again: bool) -> int:
        """Where a run starts reading."""
        return min(self.again, self.offset) if again else self.offset


class Verdict(enum.Enum):
    """What a redrive run does with one dead letter."""

    SEND = "send"
    FILTERED = "filtered"  # the filters leave it out (passed over)
    REDRIVEN = "redriven"  # a copy of an already redriven record; --again sends it
    DUPLICATE = "duplicate"  # same original coordinates as a record this run sends
    SCANNED = "scanned"  # below the position: an earlier run dealt with it


@dataclass
class RedrivePlan:
    """Decide, record by record, what one run sends, and the position it leaves.

    Args:
        selector: the run's filters.
        again: whether copies of already redriven records are sent (``--again``).
        positions: the saved position per partition (partitions without one start at the
            log start and are absent).
    """

    selector: DeadLetterFilter
    again: bool
    positions: Mapping[int, RedrivePosition]
    counts: dict[Verdict, int] = field(default_factory=lambda: dict.fromkeys(Verdict, 0))
    done: dict[int, int] = field(default_factory=dict)
    _sent: set[Origin] = field(default_factory=set)

    def start_offsets(self) -> dict[int, int]:
        """Where the run starts reading, per partition with a saved position."""
        return {p: pos.start(self.again) for p, pos in self.positions.items()}

    def decide(self, record: DeadLetter) -> Verdict:
        """The verdict on the next record of a partition (records come in offset order).

        Call :meth:`handled` once the verdict was acted on (the record queued for sending).
        """
        verdict = self._verdict(record)
        self.counts[verdict] += 1
        return verdict

    def handled(self, record: DeadLetter) -> None:
        """Move the run's position past ``record``."""
        self.done[record.partition] = record.offset + 1

    @property
    def matched(self) -> int:
        """Records the filters select, not dealt with by an earlier run."""
        return sum(self.counts[v] for v in (Verdict.SEND, Verdict.REDRIVEN, Verdict.DUPLICATE))

    def _verdict(self, record: DeadLetter) -> Verdict:
        saved = self.positions.get(record.partition)
        copy = is_copy(record)
        if saved is not None and record.offset < saved.offset and not (self.again and copy):
            return Verdict.SCANNED
        if not self.selector.matches(record):
            return Verdict.FILTERED
        if copy and not self.again:
            return Verdict.REDRIVEN
        origin = origin_of(record)
        if origin is not None:
            if origin in self._sent:
                return Verdict.DUPLICATE
            self._sent.add(origin)
        return Verdict.SEND

    def next_positions(self) -> dict[int, RedrivePosition]:
        """The positions to save for the partitions this run read."""
        out = {}
        for partition, done in self.done.items():
            saved = self.positions.get(partition)
            offset = max(done, saved.offset) if saved is not None else done
            if self.again:
                again = done
            elif saved is None:
                again = 0  # the run skipped copies from the log start on
            else:
                again = saved.again
            out[partition] = RedrivePosition(offset, min(again, offset))
        return out


def read_positions(
    consumer: Consumer, topic: str, partitions: Sequence[int], timeout: float = 10.0
) -> dict[int, RedrivePosition]:
    """The saved redrive positions of the consumer's group (partitions without one left out)."""
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, f"reading the redrive position of {topic}") from exc
    return {
        tp.partition: RedrivePosition.parse(tp.offset, tp.metadata)
        for tp in found
        if tp.offset >= 0 and tp.error is None
    }


def save_positions(
    consumer: Consumer, topic: str, positions: Mapping[int, RedrivePosition], group: str
) -> None:
    """Commit the positions (offset and metadata) in the consumer's group."""
    offsets = [
        TopicPartition(topic, p, pos.offset, metadata=pos.metadata) for p, pos in positions.items()
    ]
    try:
        consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as exc:
        raise kafka_error(exc, f"saving the redrive position in group {group}") from exc


@dataclass
class DeadLetterGroup:
    """Every copy of one original record in a DLQ window: one row of ``pipeline dlq list``.

    A record without original coordinates is a group of its own.
    """

    latest: DeadLetter
    copies: list[tuple[int, int]]
    first_failed_at: str | None
    _first: tuple[int, int, int] = (0, 0, 0)

    @property
    def order(self) -> tuple[int, int, int]:
        """The list order: when the latest copy was dead-lettered, then DLQ partition, offset."""
        return _order(self.latest)

    def add(self, record: DeadLetter) -> None:
        """Count one more copy."""
        self.copies.append((record.partition, record.offset))
        if _order(record) >= self.order:
            self.latest = _slim(record)
        if _order(record) < self._first:
            self._first, self.first_failed_at = _order(record), record.failed_at

    def summary(self) -> dict[str, Any]:
        """The latest copy's list view, plus ``copies`` and the DLQ ``p:offset`` of each."""
        return {
            **self.latest.summary(),
            "copies": len(self.copies),
            "copy_offsets": [f"{p}:{o}" for p, o in sorted(self.copies)],
            "first_failed_at": self.first_failed_at,
        }


def _order(record: DeadLetter) -> tuple[int, int, int]:
    return record.timestamp_ms, record.partition, record.offset


def _slim(record: DeadLetter) -> DeadLetter:
    """The record without what a list never shows (value, trace), to bound memory."""
    return dataclasses.replace(record, value=None, headers=without(record.headers, {ERROR_TRACE}))


class DeadLetterGroups:
    """Dead letters grouped by original coordinates as they are read (slim copies kept)."""

    def __init__(self) -> None:
        self._groups: dict[object, DeadLetterGroup] = {}

    def add(self, record: DeadLetter) -> None:
        """Add one dead letter to its group (a new one for a new original)."""
        key: object = origin_of(record) or ("dlq", record.partition, record.offset)
        found = self._groups.get(key)
        if found is None:
            self._groups[key] = DeadLetterGroup(
                _slim(record), [(record.partition, record.offset)], record.failed_at,
                _order(record),
            )  # fmt: skip
        else:
            found.add(record)

    def rows(self) -> list[DeadLetterGroup]:
        """The groups in list order (see ``DeadLetterGroup.order``)."""
        return sorted(self._groups.values(), key=lambda g: g.order)


def group_dead_letters(records: Iterable[DeadLetter]) -> list[DeadLetterGroup]:
    """Group copies by original coordinates; rows in list order (see ``DeadLetterGroup``)."""
    groups = DeadLetterGroups()
    for record in records:
        groups.add(record)
    return groups.rows()
