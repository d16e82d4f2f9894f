"""Consumer-group offset resets through the admin client: plan, check the group, apply."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline._admin import kafka_error, missing_topic, resolve
from pipeline._errors import ConfigError, KafkaOperationError, PipelineError

__all__ = [
    "GroupMember",
    "OffsetMove",
    "ResetTarget",
    "ResetTo",
    "apply_reset",
    "group_members",
    "plan_reset",
    "topic_partition_ids",
]

TIMEOUT_S = 10.0


class ResetTo(enum.Enum):
    """Where a reset moves each partition's committed offset."""

    DATETIME = "datetime"
    """The first offset whose timestamp is at or after a time (the log end if none)."""
    EARLIEST = "earliest"
    """The log start."""
    LATEST = "latest"
    """The log end: skip everything not yet consumed."""
    SHIFT = "shift"
    """The committed offset plus N (negative N re-reads); clamped to the log."""
    OFFSET = "offset"
    """An absolute offset; clamped to the log."""


@dataclass(frozen=True, slots=True)
class ResetTarget:
    """A reset kind and its number (a timestamp in ms, a shift, or an offset)."""

    kind: ResetTo
    value: int = 0


@dataclass(frozen=True, slots=True)
class GroupMember:
    """An active member of a consumer group."""

    member_id: str
    client_id: str
    host: str

    def __str__(self) -> str:
        return f"{self.client_id} ({self.member_id}) on {self.host}"


@dataclass(frozen=True, slots=True)
class OffsetMove:
    """One partition's committed offset, before and after a reset."""

    partition: int
    current: int | None
    new: int
    log_start: int
    log_end: int

    @property
    def lag_before(self) -> int | None:
        """Lag at the current committed offset (None when nothing is committed)."""
        return None if self.current is None else max(0, self.log_end - self.current)

    @property
    def lag_after(self) -> int:
        """Lag once the new offset is committed."""
        return max(0, self.log_end - self.new)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "partition": self.partition,
            "current": self.current,
            "new": self.new,
            "log_start": self.log_start,
            "log_end": self.log_end,
            "lag_before": self.lag_before,
            "lag_after": self.lag_after,
        }


def topic_partition_ids(
    admin: AdminClient, topic: str, wanted: Sequence[int] = (), servers: str | None = None
) -> list[int]:
    """Partition ids of ``topic`` (checked against ``wanted``).

    Raises:
        KafkaUnavailableError: no broker answered. TopicError: no such topic.
        ConfigError: a wanted partition does not exist.
    """
    try:
        meta = admin.list_topics(topic, timeout=5.0)
    except KafkaException as exc:
        raise kafka_error(exc, "fetching metadata", servers) from exc
    found = meta.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise missing_topic(topic, found)
    existing = sorted(found.partitions)
    missing = sorted(set(wanted) - set(existing))
    if missing:
        raise ConfigError(f"topic {topic!r} has no partition {', '.join(map(str, missing))}")
    return sorted(set(wanted)) if wanted else existing


def group_members(admin: AdminClient, group: str) -> list[GroupMember]:
    """The group's active members (none for an empty or unknown group)."""
    try:
        future = admin.describe_consumer_groups([group], request_timeout=TIMEOUT_S)[group]
        description = future.result(timeout=TIMEOUT_S + 5)
    except KafkaException as exc:
        err = exc.args[0] if exc.args else None
        if isinstance(err, KafkaError) and err.code() == KafkaError.GROUP_ID_NOT_FOUND:
            return []
        raise kafka_error(exc, f"describing group {group}") from exc
    return [GroupMember(m.member_id, m.client_id, m.host) for m in description.members or []]


def _log_offsets(
    admin: AdminClient, topic: str, partitions: Sequence[int], spec: OffsetSpec, what: str
) -> dict[int, int]:
    request = {TopicPartition(topic, p): spec for p in partitions}
    try:
        futures = admin.list_offsets(request, request_timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise kafka_error(exc, f"listing {what} offsets of {topic}") from exc
    return {
        tp.partition: int(resolve(f, f"listing {what} offsets of {topic}", TIMEOUT_S + 5).offset)
        for tp, f in futures.items()
    }


def _committed(
    admin: AdminClient, group: str, topic: str, partitions: Sequence[int]
) -> dict[int, int]:
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p) for p in partitions])
    try:
        futures = admin.list_consumer_group_offsets([request], request_timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise kafka_error(exc, f"fetching offsets of group {group}") from exc
    result = resolve(futures[group], f"fetching offsets of group {group}", TIMEOUT_S + 5)
    return {
        tp.partition: tp.offset
        for tp in result.topic_partitions or []
        if tp.offset >= 0 and tp.error is None
    }


def plan_reset(
    admin: AdminClient,
    group: str,
    topic: str,
    partitions: Sequence[int],
    target: ResetTarget,
) -> list[OffsetMove]:
    """Compute the new committed offset of each partition; changes nothing.

    Raises:
        PipelineError: a lookup failed.
    """
    # OffsetSpec's earliest/latest factories are untyped in confluent-kafka 2.16.
    first: OffsetSpec = OffsetSpec.earliest()  # type: ignore[no-untyped-call]
    last: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    earliest = _log_offsets(admin, topic, partitions, first, "earliest")
    latest = _log_offsets(admin, topic, partitions, last, "latest")
    current = _committed(admin, group, topic, partitions)
    at_time: dict[int, int] = {}
    if target.kind is ResetTo.DATETIME:
        spec = OffsetSpec.for_timestamp(target.value)
        at_time = _log_offsets(admin, topic, partitions, spec, "by-time")
    moves = []
    for p in partitions:
        low, high = earliest[p], latest[p]
        if target.kind is ResetTo.EARLIEST:
            new = low
        elif target.kind is ResetTo.LATEST:
            new = high
        elif target.kind is ResetTo.OFFSET:
            new = target.value
        elif target.kind is ResetTo.SHIFT:
            new = current.get(p, low) + target.value
        else:
            new = at_time[p] if at_time.get(p, -1) >= 0 else high
        moves.append(OffsetMove(p, current.get(p), min(max(new, low), high), low, high))
    return moves


def apply_reset(admin: AdminClient, group: str, topic: str, moves: Sequence[OffsetMove]) -> None:
    """Commit the planned offsets for the group.

    Raises:
        KafkaOperationError: the broker refused (for example, the group became active).
    """
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(topic, m.partition, m.new) for m in moves]
    )
    try:
        futures = admin.alter_consumer_group_offsets([request], request_timeout=TIMEOUT_S)
    except KafkaException as exc:
        raise kafka_error(exc, f"altering offsets of group {group}") from exc
    try:
        result = resolve(futures[group], f"altering offsets of group {group}", TIMEOUT_S + 5)
    except PipelineError as exc:
        raise KafkaOperationError(f"{exc} (is the group active again?)") from exc
    failed = [f"{tp.partition}: {tp.error}" for tp in result.topic_partitions or [] if tp.error]
    if failed:
        raise KafkaOperationError(
            f"altering offsets of group {group} failed for partition(s) " + "; ".join(failed)
        )
