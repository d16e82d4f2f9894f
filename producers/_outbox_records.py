"""What the outbox is configured with and what moves through it: config, rows, stored reports."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import KafkaError, Message

from ._outbox_file import Synchronous

__all__ = ["DOWN_CODES", "STORABLE_CODES", "OutboxConfig", "PendingRow", "Report", "StoredMessage"]

Report = Callable[[KafkaError | None, Message], None]
# Delivery errors that say Kafka is down (new sends then go straight to the outbox) ...
DOWN_CODES = frozenset(
    {KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT,
     KafkaError._ALL_BROKERS_DOWN}
)  # fmt: skip
# ... and those an outage explains, so the record is stored instead of failed.
STORABLE_CODES = DOWN_CODES | {
    KafkaError._PURGE_QUEUE,
    KafkaError._PURGE_INFLIGHT,
    KafkaError._QUEUE_FULL,
}


@dataclass(frozen=True, kw_only=True)
class OutboxConfig:
    """Where the outbox lives and how much it may hold.

    Args:
        path: the SQLite file (created if missing).
        max_records: the record cap; past it, sends raise ``OutboxFull``.
        max_bytes: the byte cap (key + value + headers + topic of each record).
        synchronous: SQLite ``synchronous``: ``FULL`` (default: a stored record survives power
            loss), ``NORMAL`` (survives a process crash; the last commits may be lost on power
            loss) or ``EXTRA``.
        drain_batch: records sent back per drain pass (the duplicate bound after a crash).
        retry_interval: seconds between drain passes while Kafka does not answer.
    """

    path: Path
    max_records: int = 1_000_000
    max_bytes: int = 1 << 30
    synchronous: Synchronous = "FULL"
    drain_batch: int = 1_000
    retry_interval: float = 1.0


class StoredMessage:
    """What a stored record's delivery callback receives: partition and offset are -1."""

    __slots__ = ("_key", "_topic", "_ts")

    def __init__(self, topic: str, key: bytes | None) -> None:
        self._topic, self._key, self._ts = topic, key, int(time.time() * 1000)

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key

    def partition(self) -> int:
        return -1

    def offset(self) -> int:
        return -1

    def timestamp(self) -> tuple[int, int]:
        return (0, self._ts)

    def latency(self) -> None:
        return None


@dataclass(slots=True)
class PendingRow:
    """A record on its way into the file, with the callback to resolve once it is there."""

    seq: int
    topic: str
    key: bytes | None
    value: bytes | None
    headers: bytes
    report: Report
    from_live: bool  # its key was counted in flight; settle that once it is written

    @property
    def size(self) -> int:
        return len(self.topic) + len(self.key or b"") + len(self.value or b"") + len(self.headers)
