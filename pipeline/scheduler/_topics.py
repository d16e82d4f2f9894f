"""The scheduler's own topics: idempotent creation and a cached target-topic existence check."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from pipeline._errors import KafkaOperationError, KafkaUnavailableError, PipelineError, TopicError
from pipeline._settings import Settings

from ._records import SchedulerConfig

__all__ = ["TopicExistence", "ensure_scheduler_topics", "scheduler_topics", "translate"]

_UNAVAILABLE = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}


def translate(exc: KafkaException, doing: str) -> PipelineError:
    """Turn a confluent-kafka exception into the pipeline's error tree."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    text = err.str() if err is not None else str(exc)
    if err is not None and err.code() in _UNAVAILABLE:
        return KafkaUnavailableError(f"cannot reach Kafka while {doing}: {text}")
    return KafkaOperationError(f"{doing} failed: {text}")


def scheduler_topics(config: SchedulerConfig) -> list[str]:
    """Every topic the scheduler uses: entry, tiers (ascending) and dead letters."""
    return [config.topic, *config.tier_topics, config.dlq_topic]


def ensure_scheduler_topics(
    settings: Settings,
    config: SchedulerConfig,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    timeout: float = 30.0,
) -> list[str]:
    """Create the scheduler's topics that do not exist yet; existing ones are left alone.

    Entry and tier topics get the same partition count: instances use the range assignor, so
    partition ``p`` of every scheduler topic lands on the same instance and a key never
    leaves it on its way through the tiers.

    Args:
        settings: connection settings.
        config: names the topics.
        partitions: partitions of every topic.
        replication_factor: -1 uses the broker default.
        timeout: seconds to wait for the cluster.

    Returns:
        The names of the topics that were created.

    Raises:
        TopicError: a topic could not be created.
        KafkaUnavailableError: no broker answered.
    """
    admin = AdminClient(settings.admin_config())
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise translate(exc, "listing topics") from exc
    wanted = [t for t in scheduler_topics(config) if t not in existing]
    if not wanted:
        return []
    new = [
        NewTopic(t, num_partitions=partitions, replication_factor=replication_factor)
        for t in wanted
    ]
    created = []
    for topic, future in admin.create_topics(new, request_timeout=timeout).items():
        try:
            future.result(timeout=timeout)
            created.append(topic)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise TopicError(f"creating topic {topic} failed: {exc}") from exc
    return created


class TopicExistence:
    """Does a topic exist? Answers from a cache that expires (positive 60 s, negative 5 s)."""

    def __init__(self, client: Any, ttl: float = 60.0, negative_ttl: float = 5.0) -> None:
        self._client = client
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._cache: dict[str, tuple[bool, float]] = {}

    def exists(self, topic: str) -> bool:
        """True when the cluster knows ``topic``; a metadata failure counts as existing."""
        now = time.monotonic()
        hit = self._cache.get(topic)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            meta = self._client.list_topics(topic=topic, timeout=5.0)
            info = meta.topics.get(topic)
            found = info is not None and info.error is None and bool(info.partitions)
        except KafkaException:
            # Unknown is not "missing": the record keeps waiting and is checked again later.
            return True
        self._cache[topic] = (found, now + (self._ttl if found else self._negative_ttl))
        return found

    def forget(self, topic: str) -> None:
        """Drop the cached answer for ``topic`` (after a delivery said it is gone)."""
        self._cache.pop(topic, None)
