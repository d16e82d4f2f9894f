"""Scheduler options, tier ladder and commit-metadata codec: pure functions, no Kafka.

The delayed-record headers and durations are the shared contract in ``pipeline._delay``.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from pipeline._delay import TOPIC_NAME, format_duration, parse_duration
from pipeline._errors import ConfigError
from pipeline._names import SCHEDULER_DLQ_TOPIC, SCHEDULER_GROUP, SCHEDULER_TOPIC

__all__ = [
    "DEFAULT_TIERS",
    "SchedulerConfig",
    "decode_pending",
    "encode_pending",
]

# A doubling ladder: any delay takes about log2(delay in seconds) / 2 hops, a third of what the
# 1s/5s/30s/2m/... ladder of DESIGN section 7 needs, at the cost of more (idle, free) topics.
DEFAULT_TIERS = (
    "1s", "2s", "4s", "8s", "16s", "32s", "1m", "2m", "4m", "8m", "16m", "32m",
    "1h", "2h", "4h", "8h", "16h", "1d",
)  # fmt: skip
# Kafka's default offset.metadata.max.bytes is 4096; stay well below it.
_METADATA_LIMIT = 3500


def _default_instance() -> str:
    return socket.gethostname() or "scheduler"


@dataclass(frozen=True, kw_only=True)
class SchedulerConfig:
    """Options of the scheduler service (connection settings live in ``Settings``).

    Attributes:
        topic: where delayed records enter.
        tiers: the delay ladder, for example ``("1s", "5s", "30s")``; each one is a topic
            ``<topic>.<tier>``.
        dlq_topic: where invalid records go, with error headers.
        group: the consumer group shared by every instance.
        instance_id: stable per instance; names the transactional id in exactly-once mode, so
            a restarted instance fences and aborts its predecessor's open transaction.
        exactly_once: forward and commit offsets in one Kafka transaction.
        lead_ms: a record leaves its last tier at least this long before it is due, so the
            final wait (and the per-key order of equal due times) happens in memory.
        commit_interval_s: how often offsets are committed (and transactions closed).
        poll_interval_s: the longest the loop sleeps in ``consume``; bounds lateness.
        max_held_per_partition: records held in memory per partition before it is paused.
        batch_size: records taken per ``consume`` call.
    """

    topic: str = SCHEDULER_TOPIC
    tiers: tuple[str, ...] = DEFAULT_TIERS
    dlq_topic: str = SCHEDULER_DLQ_TOPIC
    group: str = SCHEDULER_GROUP
    instance_id: str = field(default_factory=_default_instance)
    exactly_once: bool = False
    lead_ms: int = 500
    commit_interval_s: float | None = None
    poll_interval_s: float = 0.05
    max_held_per_partition: int = 2000
    batch_size: int = 500

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ConfigError("the scheduler needs at least one delay tier")
        ms = [parse_duration(t) for t in self.tiers]
        if len(set(ms)) != len(ms):
            raise ConfigError(f"duplicate delay tiers in {self.tiers}")
        for name in (self.topic, self.dlq_topic):
            if not TOPIC_NAME.match(name):
                raise ConfigError(f"invalid topic name {name!r}")
        if self.lead_ms < 0 or self.max_held_per_partition < 1 or self.batch_size < 1:
            raise ConfigError("lead_ms must be >= 0, max_held_per_partition and batch_size >= 1")

    @cached_property
    def tier_ms(self) -> tuple[int, ...]:
        """Tier delays in milliseconds, ascending."""
        return tuple(sorted(parse_duration(t) for t in self.tiers))

    @cached_property
    def tier_topics(self) -> dict[str, int]:
        """Tier topic name -> its delay in milliseconds, ascending by delay."""
        return {f"{self.topic}.{format_duration(ms)}": ms for ms in self.tier_ms}

    @property
    def hold_window_ms(self) -> int:
        """Records due within this window wait in memory instead of in a tier."""
        return self.tier_ms[0] + self.lead_ms

    @property
    def commit_interval(self) -> float:
        """Seconds between commits: 0.1 in exactly-once mode (it bounds visibility), else 1."""
        if self.commit_interval_s is not None:
            return self.commit_interval_s
        return 0.1 if self.exactly_once else 1.0

    @property
    def transactional_id(self) -> str:
        """The transactional id of this instance."""
        return f"{self.group}.{self.instance_id}"

    def choose_tier(self, remaining_ms: int) -> int | None:
        """The largest tier that leaves at least ``lead_ms`` before the due time, or None."""
        best = None
        for ms in self.tier_ms:
            if ms <= remaining_ms - self.lead_ms:
                best = ms
        return best


def _b36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def encode_pending(next_offset: int, pending: Iterable[int]) -> tuple[int, str]:
    """Encode a partition's progress as a commit offset plus metadata.

    Everything below ``next_offset`` has been read; ``pending`` are the offsets among those
    that are not done yet (held in memory or not acknowledged). The commit offset is the lowest
    pending offset, and the metadata lists the pending offsets as runs, so a restarted instance
    skips the records that were already done instead of sending them twice.

    Returns:
        ``(offset, metadata)`` for ``TopicPartition(topic, partition, offset, metadata=...)``.
        When the runs do not fit Kafka's metadata limit the list is cut, and the records past
        the cut count as not done (they may be sent again after a crash, never lost).
    """
    todo = sorted(o for o in pending if o < next_offset)
    if not todo:
        return next_offset, ""
    runs: list[list[int]] = [[todo[0], 1]]
    for offset in todo[1:]:
        if offset == runs[-1][0] + runs[-1][1]:
            runs[-1][1] += 1
        else:
            runs.append([offset, 1])
    parts: list[str] = []
    size, end, upto = 0, todo[0], next_offset
    for start, length in runs:
        piece = f"{_b36(start - end)}.{_b36(length)}"
        if size + len(piece) + 24 > _METADATA_LIMIT:
            upto = start
            break
        parts.append(piece)
        size += len(piece) + 1
        end = start + length
    return todo[0], f"s1:{_b36(upto)}:{','.join(parts)}"


def decode_pending(offset: int, metadata: str | None) -> tuple[int, frozenset[int]]:
    """Invert ``encode_pending``: ``(next_offset, pending)`` for a committed offset.

    Offsets in ``[offset, next_offset)`` that are not in ``pending`` are done. Unknown or
    damaged metadata means nothing is known past ``offset`` (so nothing is skipped).
    """
    if offset < 0 or not metadata or not metadata.startswith("s1:"):
        return max(offset, 0), frozenset()
    try:
        _, upto, runs = metadata.split(":", 2)
        next_offset = int(upto, 36)
        pending: set[int] = set()
        end = offset
        for piece in filter(None, runs.split(",")):
            gap, length = (int(x, 36) for x in piece.split("."))
            pending.update(range(end + gap, end + gap + length))
            end += gap + length
    except ValueError:
        return offset, frozenset()
    if next_offset < offset or (pending and min(pending) != offset):
        return offset, frozenset()
    return next_offset, frozenset(pending)
