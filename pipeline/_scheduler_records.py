"""Scheduler record format, tier ladder and commit-metadata codec: pure functions, no Kafka."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ._errors import ConfigError, DecodeError
from ._headers import DELIVER_AT, TARGET_TOPIC, get_header

__all__ = [
    "DEFAULT_TIERS",
    "SchedulerConfig",
    "decode_pending",
    "encode_pending",
    "format_duration",
    "parse_duration",
    "parse_schedule",
    "scheduled_headers",
]

# A doubling ladder: any delay takes about log2(delay in seconds) / 2 hops, a third of what the
# 1s/5s/30s/2m/... ladder of DESIGN section 7 needs, at the cost of more (idle, free) topics.
DEFAULT_TIERS = (
    "1s", "2s", "4s", "8s", "16s", "32s", "1m", "2m", "4m", "8m", "16m", "32m",
    "1h", "2h", "4h", "8h", "16h", "1d",
)  # fmt: skip
_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(\d+)(ms|s|m|h|d)$")
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# Kafka's default offset.metadata.max.bytes is 4096; stay well below it.
_METADATA_LIMIT = 3500


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
    if not _TOPIC.match(target_topic):
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
    if not _TOPIC.match(target):
        raise DecodeError(f"header {TARGET_TOPIC} is not a valid topic name: {target[:60]!r}")
    return target, int(raw_due)


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

    topic: str = "pipeline.scheduler"
    tiers: tuple[str, ...] = DEFAULT_TIERS
    dlq_topic: str = "pipeline.scheduler.dlq"
    group: str = "pipeline-scheduler"
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
            if not _TOPIC.match(name):
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
