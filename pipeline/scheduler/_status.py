"""``pipeline scheduler status``: pending records per tier and the next due times, from Kafka."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline._delay import format_duration, parse_schedule
from pipeline._errors import DecodeError
from pipeline._headers import Headers
from pipeline._settings import Settings

from ._records import SchedulerConfig
from ._topics import translate

__all__ = ["TierStatus", "scheduler_status"]


@dataclass(frozen=True)
class TierStatus:
    """Pending records of one scheduler topic (``entry`` or a tier) and its earliest heads.

    ``next_exit_ms`` is when the first head leaves its tier; ``next_due_ms`` is the earliest
    due time among the partition heads (a head is the next record the group will read).
    """

    tier: str
    topic: str
    pending: int
    next_exit_ms: int | None
    next_due_ms: int | None


def scheduler_status(
    settings: Settings, config: SchedulerConfig, timeout: float = 10.0
) -> list[TierStatus]:
    """Read the group's committed offsets and the head record of every pending partition.

    Raises:
        KafkaUnavailableError: the cluster cannot be reached.
        KafkaOperationError: the cluster refused a request.
    """
    conf = settings.consumer_config(config.group, **{"isolation.level": "read_committed"})
    consumer = Consumer(conf)  # never subscribes, so it never joins the group
    try:
        return _status(consumer, config, timeout)
    except KafkaException as exc:
        raise translate(exc, "reading scheduler status") from exc
    finally:
        consumer.close()


def _status(consumer: Consumer, config: SchedulerConfig, timeout: float) -> list[TierStatus]:
    tiers: dict[str, int | None] = {config.topic: None, **config.tier_topics}
    meta = consumer.list_topics(timeout=timeout)
    tps = [
        TopicPartition(topic, p)
        for topic in tiers
        if topic in meta.topics
        for p in meta.topics[topic].partitions
    ]
    committed = {(tp.topic, tp.partition): tp.offset for tp in consumer.committed(tps, timeout)}
    pending: dict[str, int] = dict.fromkeys(tiers, 0)
    heads: list[TopicPartition] = []
    for tp in tps:
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        start = max(committed.get((tp.topic, tp.partition), -1), low)
        if high > start:
            pending[tp.topic] += high - start
            heads.append(TopicPartition(tp.topic, tp.partition, start))
    exits, dues = _read_heads(consumer, heads, tiers, timeout)
    return [
        TierStatus(
            "entry" if ms is None else format_duration(ms),
            topic,
            pending[topic],
            exits.get(topic),
            dues.get(topic),
        )
        for topic, ms in tiers.items()
    ]


def _read_heads(
    consumer: Consumer,
    heads: list[TopicPartition],
    tiers: dict[str, int | None],
    timeout: float,
) -> tuple[dict[str, int], dict[str, int]]:
    exits: dict[str, int] = {}
    dues: dict[str, int] = {}
    if not heads:
        return exits, dues
    consumer.assign(heads)
    wanted = {(tp.topic, tp.partition) for tp in heads}
    deadline = time.monotonic() + timeout
    while wanted and time.monotonic() < deadline:
        for msg in consumer.consume(len(wanted), 0.2):
            key = (msg.topic() or "", msg.partition() or 0)
            if msg.error() or key not in wanted:
                continue
            wanted.discard(key)
            consumer.pause([TopicPartition(*key)])
            topic, tier_ms = key[0], tiers[key[0]]
            if tier_ms is not None:
                exit_ms = msg.timestamp()[1] + tier_ms
                exits[topic] = min(exits.get(topic, exit_ms), exit_ms)
            try:
                due = parse_schedule(cast(Headers, msg.headers()))[1]
            except DecodeError:
                continue
            dues[topic] = min(dues.get(topic, due), due)
    return exits, dues
