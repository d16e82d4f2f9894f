"""Read the record at a committed offset: its timestamp (exact mode) or that none is left.

Cost is bounded: at most ``max_partitions`` partitions per call, one small fetch each
(``fetch.message.max.bytes`` = 64 KiB), within ``timeout`` seconds; the caller caches results by
(partition, offset, isolation), so a consumer that does not move is read once. The reader reads
at the group's isolation level (one assign-only consumer per level, made when first needed): a
read_committed consumer skips aborted records, a read_uncommitted one receives them, so "no
record left" means the same thing for the reader as for the group. It never joins or commits to
a group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from pipeline._errors import PipelineError
from pipeline._settings import Settings

from ._math import Isolation

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
    """Reads the first record at or after given offsets (no group, no commits)."""

    def __init__(self, settings: Settings, *, max_partitions: int = 100, timeout: float = 2.0):
        self._settings = settings
        self.max_partitions = max_partitions
        self.timeout = timeout
        self._consumers: dict[Isolation, Consumer] = {}

    def _client(self, isolation: Isolation) -> Consumer:
        consumer = self._consumers.get(isolation)
        if consumer is None:
            conf = self._settings.consumer_config(
                group_id="pipeline-lag-reader",
                **{
                    "enable.partition.eof": True,
                    "isolation.level": isolation.value,
                    "fetch.message.max.bytes": 65536,
                    "queued.max.messages.kbytes": 1024,
                    "fetch.wait.max.ms": 50,
                },
            )
            conf.pop("group.protocol", None)
            conf.pop("partition.assignment.strategy", None)
            consumer = self._consumers[isolation] = Consumer(conf)
        return consumer

    def read(
        self, positions: dict[TP, int], isolation: Isolation = Isolation.READ_COMMITTED
    ) -> dict[TP, RecordProbe]:
        """Probe up to ``max_partitions`` positions; unanswered ones are left out.

        Args:
            positions: the offset to read from, per partition.
            isolation: read as a read_committed or a read_uncommitted consumer would.

        Raises:
            PipelineError: the reader could not be created or assigned.
            ValueError: ``isolation`` is AUTO (resolve it per group first).
        """
        if isolation is Isolation.AUTO:
            raise ValueError("resolve Isolation.AUTO before reading records")
        wanted = dict(list(positions.items())[: self.max_partitions])
        if not wanted:
            return {}
        try:
            consumer = self._client(isolation)
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
        """Close the consumers that were created."""
        consumers, self._consumers = self._consumers, {}
        for consumer in consumers.values():
            consumer.close()
