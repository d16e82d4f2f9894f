"""One unit of work: a consumed record and the partition state it belongs to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from pipeline._headers import ATTEMPT, Headers, get_header

if TYPE_CHECKING:
    from confluent_kafka import Message

    from ._offsets import PartitionState

__all__ = ["Work", "attempt_of"]


def attempt_of(headers: Headers) -> int:
    """The attempt number a record carries (1 when it has no valid ``pipeline-attempt``)."""
    raw = get_header(headers, ATTEMPT)
    if raw is None:
        return 1
    try:
        return max(1, int(raw))
    except ValueError:
        return 1


class Work:
    """A record on its way through the worker; ``part`` identifies the assignment it came from.

    ``label`` and ``took`` are set when the handler succeeded: the poll thread counts the
    record (outcome ``ok``) and its handler run time when it takes the completion, in
    batches. ``resume`` holds a failed first attempt that is to be retried in place on a
    worker thread (a record handled on the poll thread never waits for a backoff there).
    ``weight`` is how many records it stands for (more for a batch), for per-record measures.
    """

    __slots__ = (
        "admitted",
        "label",
        "msg",
        "offset",
        "part",
        "request",
        "resume",
        "took",
        "weight",
    )

    def __init__(self, part: PartitionState, msg: Message, offset: int) -> None:
        self.part = part
        self.msg = msg
        self.offset = offset
        self.label: str | None = None
        self.took = 0.0
        self.resume: Any = None
        self.request: dict[str, bytes | None] | None = None  # request/quorum headers, if any
        self.admitted = False  # let go by a flow gate (``_gates``): its leave is taken
        self.weight = 1  # records it stands for (a batch: its records)

    @property
    def headers(self) -> Headers:
        """The record headers (an empty list when it has none)."""
        return cast(Headers, self.msg.headers() or [])

    @property
    def where(self) -> str:
        """``topic[partition]@offset``."""
        return f"{self.part}@{self.offset}"
