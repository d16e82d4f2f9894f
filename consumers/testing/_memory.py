"""In-memory partitioned topics, and a consumer over them shaped like confluent-kafka's.

Records go to partitions as the Java client and librdkafka's ``murmur2_random`` put them:
``murmur2(key) & 0x7fffffff % partitions``. Records without a key go round-robin (librdkafka
picks a random partition; the kit stays deterministic). Topics are created on first use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TopicPartition

from pipeline._headers import Headers

__all__ = ["MemoryBroker", "MemoryConsumer", "MemoryMessage", "murmur2"]


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (seed ``0x9747b28c``), as an unsigned 32-bit value."""
    m, length = 0x5BD1E995, len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    tail = length - length % 4
    for i in range(0, tail, 4):
        k = (int.from_bytes(data[i : i + 4], "little") * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h = ((h ^ data[tail]) * m) & 0xFFFFFFFF
    h = ((h ^ (h >> 13)) * m) & 0xFFFFFFFF
    return h ^ (h >> 15)


class MemoryMessage:
    """One stored record, with the accessors of ``confluent_kafka.Message`` the worker uses."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._headers = key, value, headers
        self._timestamp = timestamp_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> Headers | None:
        return list(self._headers) if self._headers else None  # a fresh list, as consumed

    def timestamp(self) -> tuple[int, int]:
        return TIMESTAMP_CREATE_TIME, self._timestamp

    def error(self) -> None:
        return None

    def latency(self) -> float:
        return 0.0

    def __len__(self) -> int:
        return len(self._value or b"")


class MemoryBroker:
    """Topics as lists of partitions of records, and the offsets each group committed."""

    def __init__(self, partitions: int = 3) -> None:
        self.partitions = partitions
        self.topics: dict[str, list[list[MemoryMessage]]] = {}
        self.committed: dict[tuple[str, str, int], int] = {}
        self._round_robin = 0

    def create(self, topic: str, partitions: int | None = None) -> list[list[MemoryMessage]]:
        """The partitions of ``topic``, created if new."""
        parts = self.topics.get(topic)
        if parts is None:
            parts = self.topics[topic] = [[] for _ in range(partitions or self.partitions)]
        return parts

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """Where a record of ``key`` goes (murmur2, as the Java client)."""
        count = len(self.create(topic))
        if key is None:
            self._round_robin += 1
            return self._round_robin % count
        return (murmur2(key) & 0x7FFFFFFF) % count

    def append(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp_ms: int,
    ) -> MemoryMessage:
        """Store a record at the end of its key's partition."""
        partition = self.partition_for(topic, key)
        log = self.topics[topic][partition]
        msg = MemoryMessage(topic, partition, len(log), key, value, headers, timestamp_ms)
        log.append(msg)
        return msg

    def records(self, topic: str) -> list[MemoryMessage]:
        """Every record of ``topic``, partition by partition."""
        return [m for log in self.topics.get(topic, []) for m in log]


class MemoryConsumer:
    """A consumer of one group over a :class:`MemoryBroker`: every partition is its own.

    It gets every partition of the topics it subscribes to (also those created later, as
    the next rebalance would give them), starts at the committed offset or the beginning,
    and never waits: ``consume`` returns what is there now.
    """

    def __init__(self, broker: MemoryBroker, config: dict[str, Any]) -> None:
        self._broker = broker
        self._group: str = config["group.id"]
        self._on_commit: Callable[[Any, list[TopicPartition]], None] | None = config.get(
            "on_commit"
        )
        self._subscribed: list[str] = []
        self._on_assign: Callable[[Any, list[TopicPartition]], None] | None = None
        self._positions: dict[tuple[str, int], int] = {}
        self._paused: set[tuple[str, int]] = set()
        self.closed = False

    def subscribe(
        self,
        topics: list[str],
        on_assign: Callable[[Any, list[TopicPartition]], None] | None = None,
        on_revoke: Callable[[Any, list[TopicPartition]], None] | None = None,
        on_lost: Callable[[Any, list[TopicPartition]], None] | None = None,
    ) -> None:
        self._subscribed = list(topics)
        self._on_assign = on_assign

    def _matches(self, topic: str) -> bool:
        return any(
            re.match(s, topic) if s.startswith("^") else s == topic for s in self._subscribed
        )

    def _rebalance(self) -> None:
        """Assign partitions of subscribed topics that appeared since the last call."""
        new: list[TopicPartition] = []
        for topic, parts in self._broker.topics.items():
            if not self._matches(topic):
                continue
            for p in range(len(parts)):
                if (topic, p) not in self._positions:
                    start = self._broker.committed.get((self._group, topic, p), 0)
                    self._positions[(topic, p)] = start
                    new.append(TopicPartition(topic, p))
        if new and self._on_assign is not None:
            self._on_assign(self, new)

    def pending(self) -> int:
        """Records of subscribed topics not consumed yet (paused partitions included)."""
        self._rebalance()
        topics = self._broker.topics
        return sum(len(topics[t][p]) - pos for (t, p), pos in self._positions.items())

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[MemoryMessage]:
        """Up to ``num_messages`` records, partition by partition; never waits."""
        self._rebalance()
        out: list[MemoryMessage] = []
        topics = self._broker.topics
        for where, position in self._positions.items():
            if where in self._paused or len(out) >= num_messages:
                continue
            log = topics[where[0]][where[1]]
            taken = log[position : position + num_messages - len(out)]
            self._positions[where] = position + len(taken)
            out.extend(taken)
        return out

    def commit(
        self, offsets: list[TopicPartition] | None = None, asynchronous: bool = True
    ) -> list[TopicPartition] | None:
        for tp in offsets or []:
            self._broker.committed[(self._group, tp.topic, tp.partition)] = tp.offset
        if asynchronous:
            if self._on_commit is not None:
                self._on_commit(None, list(offsets or []))
            return None
        return list(offsets or [])

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self._positions]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The next offset to consume of each partition (-1001 when not assigned)."""
        positions = self._positions
        return [
            TopicPartition(tp.topic, tp.partition, positions.get((tp.topic, tp.partition), -1001))
            for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int]:
        """``(0, end offset)`` of a partition (nothing is ever deleted here)."""
        return 0, len(self._broker.topics[partition.topic][partition.partition])

    def pause(self, partitions: list[TopicPartition]) -> None:
        self._paused.update((tp.topic, tp.partition) for tp in partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        self._paused.difference_update((tp.topic, tp.partition) for tp in partitions)

    def close(self) -> None:
        self.closed = True
