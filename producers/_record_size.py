"""The size check before a record is queued: over ``message.max.bytes`` raises, nothing is sent."""

from __future__ import annotations

from pipeline._errors import RecordTooLargeError

__all__ = ["check_record_size"]

_HEADER_OVERHEAD = 16  # approximate per-header framing bytes in a record batch


def check_record_size(
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: list[tuple[str, bytes | None]] | None,
    check_above: int,
    max_bytes: int,
) -> None:
    """Raise when the record (value, key and headers) is over ``max_bytes``.

    A record whose value and key are no bigger than ``check_above`` is not counted further:
    the producer sets it low enough that headers cannot push such a record over.

    Raises:
        RecordTooLargeError: the record is over ``max_bytes`` (``message.max.bytes``).
    """
    size = len(value or b"") + len(key or b"")
    if size <= check_above:
        return
    size += sum(len(k) + len(v or b"") + _HEADER_OVERHEAD for k, v in headers or [])
    if size > max_bytes:
        raise RecordTooLargeError(
            f"record for {topic} is {size} bytes, over the producer limit "
            f"message.max.bytes={max_bytes}"
        )
