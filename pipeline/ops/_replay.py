"""Record filters, a token bucket and per-partition counts for replay and dead-letter tools."""

from __future__ import annotations

import datetime as dt
import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Message

from pipeline._errors import ConfigError, DecodeError
from pipeline._headers import CE_TYPE, Headers, get_header
from pipeline.avro._codec import Codec

__all__ = ["PartitionCounts", "RecordFilter", "TokenBucket", "field_text", "parse_where"]


def parse_where(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """Parse ``FIELD=VALUE`` filters (``FIELD`` may be dotted: ``shipping_address.city``).

    Raises:
        ConfigError: an item has no ``=`` or an empty field name.
    """
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--where {item!r} is not FIELD=VALUE")
        out.append((name.strip(), value))
    return tuple(out)


def field_text(value: Any) -> str:
    """How a decoded Avro value compares against a ``--where`` value (JSON-like text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return str(value.value)
    return str(value)


_MISSING = object()


def _lookup(datum: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(datum, dict) or part not in datum:
            return _MISSING
        datum = datum[part]
    return datum


@dataclass(kw_only=True)
class RecordFilter:
    """Which records a replay selects; decodes a value only when a ``where`` filter needs it.

    Attributes:
        key: exact key bytes.
        subject: the event type: the ``ce_type`` header, else the writer schema's subject.
        where: ``(dotted field, text)`` pairs that must all equal (see :func:`field_text`).
        since_ms: records with an earlier timestamp are left out.
        until_ms: records at or after this timestamp are left out.
        codec: needed for ``where`` and for ``subject`` on records without ``ce_type``.
    """

    key: bytes | None = None
    subject: str | None = None
    where: tuple[tuple[str, str], ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    codec: Codec | None = None
    undecodable: int = field(default=0, init=False)

    @property
    def trivial(self) -> bool:
        """Whether every record in the window matches (no per-record work needed)."""
        return (
            self.key is None
            and self.subject is None
            and not self.where
            and self.since_ms is None
            and self.until_ms is None
        )

    def matches(self, msg: Message) -> bool:
        """Whether ``msg`` passes every filter (undecodable values fail decode filters)."""
        if self.since_ms is not None or self.until_ms is not None:
            ts = msg.timestamp()[1]
            if self.since_ms is not None and ts < self.since_ms:
                return False
            if self.until_ms is not None and ts >= self.until_ms:
                return False
        if self.key is not None and msg.key() != self.key:
            return False
        if self.subject is None and not self.where:
            return True
        value = msg.value()
        if value is None:
            return False
        try:
            return self._matches_value(msg, value)
        except DecodeError:
            self.undecodable += 1
            return False

    def _matches_value(self, msg: Message, value: bytes) -> bool:
        assert self.codec is not None
        if self.subject is not None:
            ce_type = get_header(cast(Headers, msg.headers()), CE_TYPE)
            subject = ce_type.decode(errors="replace") if ce_type else None
            if subject is None:
                subject = self.codec.subject_of(value)
            if subject != self.subject:
                return False
        if not self.where:
            return True
        _, datum = self.codec.decode_datum(value)
        for path, expected in self.where:
            found = _lookup(datum, path)
            if found is _MISSING or field_text(found) != expected:
                return False
        return True


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, with a one-second burst."""

    def __init__(self, rate: float, clock: Any = time.monotonic, sleep: Any = time.sleep) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self._tokens = self.capacity
        self._clock = clock
        self._sleep = sleep
        self._last = clock()

    def acquire(self, n: int = 1) -> None:
        """Block until ``n`` tokens are available, then take them."""
        while True:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            needed = min(n, self.capacity) - self._tokens
            if needed <= 1e-9:  # float dust must not make a wait that never ends
                self._tokens -= n
                return
            self._sleep(min(1.0, max(needed / self.rate, 0.001)))


@dataclass
class PartitionCounts:
    """What happened to one source partition."""

    partition: int
    start: int
    end: int | None
    read: int = 0
    matched: int = 0
    written: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        """The counts as a JSON-ready dict."""
        return {
            "partition": self.partition,
            "start": self.start,
            "end": self.end,
            "read": self.read,
            "matched": self.matched,
            "written": self.written,
            "failed": self.failed,
        }
