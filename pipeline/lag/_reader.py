"""Read the record at a committed offset: its timestamp (exact mode) or that none is left.

Cost is bounded: at most ``max_partitions`` partitions per call, one small fetch each
(``fetch.message.max.bytes`` = 64 KiB), within ``timeout`` seconds; the caller caches results by
(partition, offset), so a consumer that does not move is read once. The reader is an assign-only
consumer: it never joins or commits to a group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline._errors import PipelineError
from pipeline._settings import Settings

__all__ = ["RecordProbe", "RecordReader"]

TP = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RecordProbe:
    """What a read from an offset found."""

    offset: int | None
    """Offset of the first readable record at or after the position; None if there is none."""
    timestamp: float | None
    """Its timestamp in seconds (CreateTime or LogAppendTime), None if there is no record."""


class RecordReader:
    """Reads the first record at or after given offsets, read_committed (no group, no commits)."""

    def __init__(self, settings: Settings, *, max_partitions: int = 100, timeout: float = 2.0):
        self._settings = settings
        self.max_partitions = max_partitions
        self.timeout = timeout
        self._consumer: Consumer | None = None

    def _client(self) -> Consumer:
        if self._consumer is None:
            conf = self._settings.consumer_config(
                group_id="pipeline-lag-reader",
                **{
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                    "fetch.message.max.bytes": 65536,
                    "queued.max.messages.kbytes": 1024,
                    "fetch.wait.max.ms": 50,
                },
            )
            conf.pop("group.protocol", None)
            conf.pop("partition.assignment.strategy", None)
            self._consumer = Consumer(conf)
        return self._consumer

    def read(self, positions: dict[TP, int]) -> dict[TP, RecordProbe]:
        """Probe up to ``max_partitions`` positions; unanswered ones are left out.

        Raises:
            PipelineError: the reader could not be created or assigned.
        """
        wanted = dict(list(positions.items())[: self.max_partitions])
        if not wanted:
            return {}
        try:
            consumer = self._client()
            consumer.assign([TopicPartition(t, p, off) for (t, p), off in wanted.items()])
        except KafkaException as exc:
            raise PipelineError(f"lag reader failed: {exc}") from exc
        found: dict[TP, RecordProbe] = {}
        deadline = time.monotonic() + self.timeout
        try:
            while len(found) < len(wanted) and time.monotonic() < deadline:
                for msg in consumer.consume(num_messages=500, timeout=0.1):
                    tp = (msg.topic() or "", msg.partition() or 0)
                    if tp in found or tp not in wanted:
                        continue
                    err = msg.error()
                    if err is not None:
                        if err.code() == KafkaError._PARTITION_EOF:
                            found[tp] = RecordProbe(None, None)
                        continue
                    offset = msg.offset()
                    if offset is None or offset < wanted[tp]:
                        continue
                    _, ts = msg.timestamp()
                    found[tp] = RecordProbe(offset, ts / 1000.0 if ts > 0 else None)
        finally:
            consumer.unassign()
        return found

    def close(self) -> None:
        """Close the consumer, if one was created."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close()
