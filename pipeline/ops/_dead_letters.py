"""Dead-letter records as the tools see them: parsed error headers, filters, redrive headers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from confluent_kafka import Message

from pipeline._headers import (
    ATTEMPT,
    CONSUMER_GROUP,
    ERROR_HEADERS,
    ERROR_MESSAGE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
    Headers,
    get_header,
    without,
)

__all__ = ["DeadLetter", "DeadLetterFilter", "redrive_headers"]


def _text(headers: Headers, name: str) -> str | None:
    value = get_header(headers, name)
    return None if value is None else value.decode("utf-8", errors="replace")


def _int(headers: Headers, name: str) -> int | None:
    text = _text(headers, name)
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of ``<group>.dlq`` with its error headers parsed (missing ones are None)."""

    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    error_type: str | None
    error_message: str | None
    attempts: int | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    original_timestamp_ms: int | None
    failed_at: str | None

    @classmethod
    def from_message(cls, msg: Message) -> DeadLetter:
        """Parse a consumed DLQ record."""
        headers = cast(Headers, msg.headers() or [])
        return cls(
            partition=cast(int, msg.partition()),
            offset=cast(int, msg.offset()),
            timestamp_ms=msg.timestamp()[1],
            key=msg.key(),
            value=msg.value(),
            headers=headers,
            error_type=_text(headers, ERROR_TYPE),
            error_message=_text(headers, ERROR_MESSAGE),
            attempts=_int(headers, ATTEMPT),
            original_topic=_text(headers, ORIGINAL_TOPIC),
            original_partition=_int(headers, ORIGINAL_PARTITION),
            original_offset=_int(headers, ORIGINAL_OFFSET),
            original_timestamp_ms=_int(headers, ORIGINAL_TIMESTAMP),
            failed_at=_text(headers, FAILED_AT),
        )

    @property
    def original(self) -> str:
        """``topic[partition]@offset`` of the record before it failed."""
        if self.original_topic is None:
            return "-"
        return f"{self.original_topic}[{self.original_partition}]@{self.original_offset}"

    def summary(self) -> dict[str, Any]:
        """The list view of this record, JSON-ready."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "failed_at": self.failed_at,
            "original": self.original,
            "original_topic": self.original_topic,
            "original_partition": self.original_partition,
            "original_offset": self.original_offset,
            "key": self.key.decode("utf-8", errors="replace") if self.key is not None else None,
            "error_type": self.error_type,
            "error_message": self.error_message,
            "attempts": self.attempts,
            "consumer_group": _text(self.headers, CONSUMER_GROUP),
        }


def redrive_headers(
    headers: Sequence[tuple[str, bytes | None]], now: datetime | None = None
) -> Headers:
    """The headers of a redriven copy: originals minus error headers and attempt count,
    plus ``pipeline-redriven-at`` (ISO-8601 UTC)."""
    when = (now or datetime.now(UTC)).astimezone(UTC).isoformat(timespec="milliseconds")
    out = without(headers, {*ERROR_HEADERS, ATTEMPT, REDRIVEN_AT})
    out.append((REDRIVEN_AT, when.replace("+00:00", "Z").encode()))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetterFilter:
    """Which dead letters a list or redrive selects.

    ``error_type`` matches the full qualified name or its last dotted part (``ValueError``
    matches ``builtins.ValueError``).
    """

    since_ms: int | None = None
    until_ms: int | None = None
    error_type: str | None = None
    key: bytes | None = None

    def matches(self, record: DeadLetter) -> bool:
        """Whether the record passes every filter."""
        if self.since_ms is not None and record.timestamp_ms < self.since_ms:
            return False
        if self.until_ms is not None and record.timestamp_ms >= self.until_ms:
            return False
        if self.key is not None and record.key != self.key:
            return False
        if self.error_type is not None:
            found = record.error_type or ""
            if found != self.error_type and found.rpartition(".")[2] != self.error_type:
                return False
        return True
