"""Reading a window of a topic: offsets from times or numbers, assign, consume to fixed ends.

The window is fixed when it is resolved: ``[start, end)`` per partition, where ``end`` is the
high watermark seen then (or the first offset at ``until``). Records produced later are not
read, so a copy of a live topic terminates and copies exactly what the window held.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline._admin import kafka_error, missing_topic
from pipeline._errors import ConfigError, KafkaOperationError, KafkaUnavailableError
from pipeline._settings import Settings

__all__ = [
    "PartitionRange",
    "WindowReader",
    "committed_offsets",
    "resolve_window",
    "topic_partitions",
    "window_consumer",
]

_LOG = logging.getLogger("pipeline.window")
METADATA_TIMEOUT_S = 5.0
# Errors that end a read: retrying cannot fix them.
_FATAL_CODES = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``[start, end)`` of one partition; ``end`` None means follow without end."""

    partition: int
    start: int
    end: int | None
    low: int = 0
    high: int = 0

    @property
    def size(self) -> int:
        """How many offsets the range spans (0 when following)."""
        return 0 if self.end is None else max(0, self.end - self.start)


def window_consumer(settings: Settings, group_id: str | None = None, **overrides: Any) -> Consumer:
    """A consumer that never commits unless told to (a throwaway group id by default)."""
    config = settings.consumer_config(
        group_id or f"pipeline-cli-{uuid.uuid4().hex[:12]}",
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 100, **overrides},
    )
    try:
        return Consumer(config)
    except KafkaException as exc:
        raise kafka_error(exc, "creating a consumer") from exc


def topic_partitions(
    consumer: Consumer,
    topic: str,
    wanted: Sequence[int] = (),
    *,
    settings: Settings | None = None,
    timeout: float = METADATA_TIMEOUT_S,
) -> list[int]:
    """The partition ids of ``topic`` (only ``wanted`` ones when given, each checked).

    Raises:
        KafkaUnavailableError: no broker answered.
        TopicError: the topic does not exist.
        ConfigError: a wanted partition does not exist.
    """
    servers = settings.bootstrap_servers if settings is not None else None
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, "fetching metadata", servers) from exc
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise missing_topic(topic, found)
    existing = sorted(found.partitions)
    if not wanted:
        return existing
    missing = sorted(set(wanted) - set(existing))
    if missing:
        raise ConfigError(
            f"topic {topic!r} has partitions 0-{existing[-1]}; no partition "
            + ", ".join(str(p) for p in missing)
        )
    return sorted(set(wanted))


def _watermarks(consumer: Consumer, topic: str, partition: int, timeout: float) -> tuple[int, int]:
    try:
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout
        )
    except KafkaException as exc:
        raise kafka_error(exc, f"reading offsets of {topic}[{partition}]") from exc
    return int(low), int(high)


def _offsets_at(
    consumer: Consumer, topic: str, partitions: Sequence[int], ms: int, timeout: float
) -> dict[int, int]:
    """First offset at or after ``ms`` per partition (-1: none yet)."""
    request = [TopicPartition(topic, p, ms) for p in partitions]
    try:
        found = consumer.offsets_for_times(request, timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, f"looking up offsets of {topic} by time") from exc
    out = {}
    for tp in found:
        if tp.error is not None:
            raise KafkaOperationError(f"looking up {topic}[{tp.partition}] by time: {tp.error}")
        out[tp.partition] = tp.offset
    return out


def resolve_window(
    consumer: Consumer,
    topic: str,
    partitions: Sequence[int],
    *,
    since_ms: int | None = None,
    until_ms: int | None = None,
    start_offsets: Mapping[int, int] | None = None,
    end_offsets: Mapping[int, int] | None = None,
    follow: bool = False,
    timeout: float = 10.0,
) -> list[PartitionRange]:
    """Fix ``[start, end)`` per partition from times (``offsets_for_times``) or offsets.

    Offsets are clamped to what the log holds. Without a start, a range starts at the log start;
    without an end, at the high watermark seen now (or never ends when ``follow``).
    """
    since = _offsets_at(consumer, topic, partitions, since_ms, timeout) if since_ms else {}
    until = _offsets_at(consumer, topic, partitions, until_ms, timeout) if until_ms else {}
    ranges = []
    for p in partitions:
        low, high = _watermarks(consumer, topic, p, timeout)
        start = low
        if p in since:
            start = high if since[p] < 0 else since[p]
        if start_offsets and p in start_offsets:
            start = start_offsets[p]
        start = min(max(start, low), high)
        end: int | None = None if follow else high
        if p in until and until[p] >= 0:
            end = until[p]
        if end_offsets and p in end_offsets:
            end = end_offsets[p]
        if end is not None:
            end = max(min(end, high), start)
        ranges.append(PartitionRange(p, start, end, low, high))
    return ranges


def committed_offsets(
    consumer: Consumer, topic: str, partitions: Sequence[int], timeout: float = 10.0
) -> dict[int, int]:
    """The consumer group's committed offsets (partitions without one are left out)."""
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=timeout)
    except KafkaException as exc:
        raise kafka_error(exc, f"reading committed offsets of {topic}") from exc
    return {tp.partition: tp.offset for tp in found if tp.offset >= 0 and tp.error is None}


class WindowReader:
    """Consume fixed ranges of one topic in batches, stopping each partition at its end.

    Args:
        consumer: a consumer built by :func:`window_consumer` (``enable.partition.eof`` on).
        topic: the topic.
        ranges: from :func:`resolve_window`; empty ranges are skipped.
        batch: records per ``consume`` call.
        stall_timeout: give up when no record or end arrives for this long.
    """

    def __init__(
        self,
        consumer: Consumer,
        topic: str,
        ranges: Sequence[PartitionRange],
        *,
        batch: int = 1000,
        stall_timeout: float = 30.0,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._ends = {r.partition: r.end for r in ranges if r.end is None or r.size > 0}
        self._starts = {r.partition: r.start for r in ranges if r.partition in self._ends}
        self._batch = batch
        self._stall_timeout = stall_timeout

    @property
    def done(self) -> bool:
        """Whether every bounded partition reached its end."""
        return not self._ends

    def batches(self, poll_timeout: float = 0.5) -> Iterator[list[Message]]:
        """Yield batches of records inside the ranges until every partition is done.

        Raises:
            KafkaUnavailableError: nothing arrived for ``stall_timeout`` seconds.
            KafkaOperationError: the topic vanished or access was refused.
        """
        if not self._ends:
            return
        self._consumer.assign([TopicPartition(self._topic, p, o) for p, o in self._starts.items()])
        last_progress = time.monotonic()
        while self._ends:
            messages = self._consumer.consume(self._batch, poll_timeout)
            out = self._inside(messages)
            if messages:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > self._stall_timeout:
                raise KafkaUnavailableError(
                    f"no record arrived from {self._topic} for {self._stall_timeout:g}s; "
                    f"partitions {sorted(self._ends)} did not reach their end offsets"
                )
            if out:
                yield out

    def _inside(self, messages: list[Message]) -> list[Message]:
        """The records of a batch inside their ranges (the common case inlined: it is hot)."""
        ends = self._ends
        out = []
        for msg in messages:
            if msg.error() is None:
                end = ends.get(msg.partition(), -1)  # type: ignore[arg-type]
                if end is None or msg.offset() + 1 < end:  # type: ignore[operator]
                    out.append(msg)
                    continue
            if self._keep(msg):
                out.append(msg)
        return out

    def _keep(self, msg: Message) -> bool:
        err = msg.error()
        partition = msg.partition()
        assert partition is not None
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if self._ends.get(partition, 0) is not None:
                    self._finish(partition)
                return False
            if err.fatal() or err.code() in _FATAL_CODES:
                raise KafkaOperationError(f"reading {self._topic}: {err.str()}")
            _LOG.warning("reading %s: %s", self._topic, err.str())
            return False
        if partition not in self._ends:
            return False
        offset = msg.offset()
        assert offset is not None
        end = self._ends[partition]
        if end is not None and offset >= end:
            self._finish(partition)
            return False
        if end is not None and offset + 1 >= end:
            self._finish(partition)
        return True

    def _finish(self, partition: int) -> None:
        self._ends.pop(partition, None)
        with contextlib.suppress(KafkaException):  # pausing an unassigned partition
            self._consumer.pause([TopicPartition(self._topic, partition)])
