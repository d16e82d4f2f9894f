"""The delayed-record contract: durations, and the headers that make a record wait.

Producers write these headers (``send(..., delay=...)``), workers write them for retries, and
the scheduler reads them (DESIGN sections 3 and 7).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ._errors import ConfigError, DecodeError
from ._headers import DELIVER_AT, TARGET_TOPIC, get_header

__all__ = [
    "TOPIC_NAME",
    "format_duration",
    "parse_duration",
    "parse_schedule",
    "scheduled_headers",
]

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
"""What Kafka accepts as a topic name."""


def parse_duration(text: str) -> int:
    """Parse ``500ms``, ``5s``, ``2m``, ``1h`` or ``1d`` into milliseconds.

    Raises:
        ConfigError: the text is not a positive whole number followed by a unit.
    """
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) <= 0:
        raise ConfigError(f"bad duration {text!r}: use a positive number and ms, s, m, h or d")
    return int(match.group(1)) * _UNITS_MS[match.group(2)]


def format_duration(ms: int) -> str:
    """Format milliseconds with the largest unit that divides them (``120000`` -> ``2m``)."""
    for unit in ("d", "h", "m", "s"):
        if ms % _UNITS_MS[unit] == 0:
            return f"{ms // _UNITS_MS[unit]}{unit}"
    return f"{ms}ms"


def scheduled_headers(target_topic: str, deliver_at_ms: int) -> list[tuple[str, bytes]]:
    """The two headers that turn a record in ``pipeline.scheduler`` into a delayed record.

    Args:
        target_topic: where the scheduler delivers the record.
        deliver_at_ms: the due time, epoch milliseconds.

    Raises:
        ValueError: the topic name is not a valid Kafka topic name or the time is negative.
    """
    if not TOPIC_NAME.match(target_topic):
        raise ValueError(f"invalid target topic name {target_topic!r}")
    if deliver_at_ms < 0:
        raise ValueError(f"deliver_at_ms must not be negative, got {deliver_at_ms}")
    return [(DELIVER_AT, str(int(deliver_at_ms)).encode()), (TARGET_TOPIC, target_topic.encode())]


def parse_schedule(headers: Sequence[tuple[str, bytes | None]] | None) -> tuple[str, int]:
    """Read ``(target_topic, due_ms)`` from a scheduler record's headers.

    Raises:
        DecodeError: a header is missing, not ASCII decimal, or names an invalid topic.
    """
    raw_due = get_header(headers, DELIVER_AT)
    raw_target = get_header(headers, TARGET_TOPIC)
    if raw_due is None:
        raise DecodeError(f"missing header {DELIVER_AT}")
    if raw_target is None:
        raise DecodeError(f"missing header {TARGET_TOPIC}")
    if not raw_due.isdigit() or len(raw_due) > 16:
        raise DecodeError(f"header {DELIVER_AT} is not epoch milliseconds: {raw_due[:40]!r}")
    try:
        target = raw_target.decode("utf-8")
    except UnicodeDecodeError:
        raise DecodeError(f"header {TARGET_TOPIC} is not UTF-8: {raw_target[:40]!r}") from None
    if not TOPIC_NAME.match(target):
        raise DecodeError(f"header {TARGET_TOPIC} is not a valid topic name: {target[:60]!r}")
    return target, int(raw_due)
