"""What a handler gets besides the event: where the record came from, and a producer."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

from pipeline._headers import Headers, get_header

if TYPE_CHECKING:
    from producers import EventProducer

    from ._work import Work

__all__ = ["Context", "RawRecord", "record_context"]


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


class _RecordContext(Context):
    """A :class:`Context` that reads its fields from the record when they are asked for.

    The worker builds one per handler call; most handlers look at few fields or none, so
    filling all nine up front (a frozen dataclass sets each through ``object.__setattr__``)
    would cost more than the call. It behaves as a ``Context``: equal to, printed as and
    copied (``dataclasses.replace``, ``copy``, pickle) into a plain one.
    """

    __slots__ = ("_r",)
    _r: tuple[Work, int, Headers | None, str, EventProducer]

    def __new__(cls, *args: Any, **kwargs: Any) -> Context:  # type: ignore[misc]
        return Context(*args, **kwargs)  # dataclasses.replace() builds a plain Context

    @property
    def key(self) -> bytes | None:
        return self._r[0].msg.key()

    @property
    def headers(self) -> Headers:
        headers = self._r[2]
        return self._r[0].headers if headers is None else headers

    @property
    def topic(self) -> str:
        return self._r[0].part.topic

    @property
    def partition(self) -> int:
        return self._r[0].part.partition

    @property
    def offset(self) -> int:
        return self._r[0].offset

    @property
    def timestamp_ms(self) -> int:
        return self._r[0].msg.timestamp()[1]

    @property
    def attempt(self) -> int:
        return self._r[1]

    @property
    def group(self) -> str:
        return self._r[3]

    @property
    def producer(self) -> EventProducer:
        return self._r[4]

    def plain(self) -> Context:
        """The same context as a plain :class:`Context`."""
        return Context(*(getattr(self, f.name) for f in fields(Context)))

    def __eq__(self, other: object) -> bool:
        return self.plain() == other

    def __hash__(self) -> int:
        return hash(self.plain())

    def __repr__(self) -> str:
        return repr(self.plain())

    def __reduce__(self) -> tuple[Any, ...]:
        return (Context, tuple(getattr(self, f.name) for f in fields(Context)))


_new = object.__new__
_set = object.__setattr__


def record_context(
    work: Work, attempt: int, headers: Headers | None, group: str, producer: EventProducer
) -> Context:
    """The context of a handler call on ``work`` (``headers`` None: the record's own)."""
    ctx = _new(_RecordContext)
    _set(ctx, "_r", (work, attempt, headers, group, producer))
    return ctx
