"""Offset lag arithmetic: which end to measure against, the log-start floor, never negative."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ._model import PartitionOffsets

__all__ = ["Isolation", "OffsetLag", "OffsetReset", "choose_isolation", "offset_lag"]


class Isolation(enum.Enum):
    """How a group's lag is measured."""

    AUTO = "auto"
    """read_committed until the group is seen past the stable offset, then read_uncommitted."""
    READ_COMMITTED = "read_committed"
    """Against the last stable offset: open transactions are not lag."""
    READ_UNCOMMITTED = "read_uncommitted"
    """Against the high watermark."""


class OffsetReset(enum.Enum):
    """Where a group starts on a partition it has no committed offset for.

    The broker does not know a group's ``auto.offset.reset`` (a consumer setting), so the lag
    monitor is told: the default is this project's consumer default, ``earliest``.
    """

    EARLIEST = "earliest"
    """From the log start: every record still in the log is lag."""
    LATEST = "latest"
    """From the end: no lag."""


@dataclass(frozen=True, slots=True)
class OffsetLag:
    """Result of :func:`offset_lag`."""

    end_offset: int
    lag: int
    offset_expired: bool
    position: int = 0
    """Where the group will read next: the committed offset floored at the log start, or the
    reset position when nothing is committed."""


def choose_isolation(
    mode: Isolation,
    committed: dict[tuple[str, int], int],
    offsets: dict[tuple[str, int], PartitionOffsets],
    seen_uncommitted: bool,
) -> Isolation:
    """Resolve ``AUTO`` for one group.

    A read_committed consumer can never be past the last stable offset, so a committed offset
    beyond it proves the group reads uncommitted data; librdkafka's default (and this project's
    workers) is read_committed, so that is the assumption until proven otherwise. The proof is
    sticky (``seen_uncommitted``) because the evidence disappears when the transaction ends.
    """
    if mode is not Isolation.AUTO:
        return mode
    if seen_uncommitted:
        return Isolation.READ_UNCOMMITTED
    for tp, offset in committed.items():
        log = offsets.get(tp)
        if log is not None and offset > log.stable_offset:
            return Isolation.READ_UNCOMMITTED
    return Isolation.READ_COMMITTED


def offset_lag(
    committed: int | None,
    log: PartitionOffsets,
    isolation: Isolation,
    reset: OffsetReset = OffsetReset.EARLIEST,
) -> OffsetLag:
    """Lag of a committed offset against a partition's log.

    Args:
        committed: the group's committed offset (the next record it will read), or None when
            the group has none on this partition.
        log: the partition's log start, high watermark and last stable offset.
        isolation: READ_COMMITTED measures against the stable offset, anything else against
            the high watermark.
        reset: where a group without a committed offset starts (its ``auto.offset.reset``).

    Returns:
        The end used, the lag (``end - max(committed, log_start)``, floored at 0) and whether
        retention deleted the committed position. A consumer whose position was deleted restarts
        at the log start (or the end), so records before the log start are not lag. Without a
        committed offset the position is the log start (``earliest``) or the end (``latest``).
    """
    end = log.stable_offset if isolation is Isolation.READ_COMMITTED else log.high_watermark
    end = max(end, log.log_start, 0)
    if committed is None:
        position = log.log_start if reset is OffsetReset.EARLIEST else end
        return OffsetLag(end, max(0, end - position), False, max(0, position))
    expired = 0 <= committed < log.log_start
    position = max(committed, log.log_start)
    return OffsetLag(
        end_offset=end, lag=max(0, end - position), offset_expired=expired, position=position
    )
