"""What a handler gets besides the event: where the record came from, and a producer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline._headers import Headers, get_header

if TYPE_CHECKING:
    from producers import EventProducer

__all__ = ["Context", "RawRecord"]


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as consumed, for fallback handlers and tombstones (value may be None)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class Context:
    """The context of one handler call.

    Attributes:
        key: the record key.
        headers: the record headers as consumed.
        topic: the topic it was consumed from (``<group>.retry`` for a retry).
        partition: its partition.
        offset: its offset.
        timestamp_ms: the record timestamp.
        attempt: 1 for the first attempt, then 2, 3, ... (in place or via the retry topic).
        group: the consumer group.
        producer: send follow-up events with it; in exactly-once mode its sends are part of
            the transaction that commits this record's offset.
    """

    key: bytes | None
    headers: Headers
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    attempt: int
    group: str
    producer: EventProducer

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        return get_header(self.headers, name)

    @property
    def where(self) -> str:
        """``topic[partition]@offset``, as logs write it."""
        return f"{self.topic}[{self.partition}]@{self.offset}"
