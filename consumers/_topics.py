"""The internal topics of a worker's group: ``<group>.retry`` and ``<group>.dlq``."""

from __future__ import annotations

from pipeline._names import dlq_topic as default_dlq_topic
from pipeline._names import retry_topic as default_retry_topic
from pipeline._settings import Settings
from pipeline._topics import TopicReport, TopicSpec, ensure_topics

__all__ = ["ensure_worker_topics", "worker_topic_specs"]


def worker_topic_specs(
    group: str,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    retry_topic: str | None = None,
    dlq_topic: str | None = None,
) -> list[TopicSpec]:
    """Specs of the group's retry and dead-letter topics (the DLQ keeps records 30 days)."""
    return [
        TopicSpec(retry_topic or default_retry_topic(group), partitions, replication_factor),
        TopicSpec(
            dlq_topic or default_dlq_topic(group),
            partitions,
            replication_factor,
            configs={"retention.ms": str(30 * 24 * 3600 * 1000)},
        ),
    ]


def ensure_worker_topics(
    settings: Settings,
    group: str,
    *,
    partitions: int = 6,
    replication_factor: int = -1,
    retry_topic: str | None = None,
    dlq_topic: str | None = None,
) -> TopicReport:
    """Create ``<group>.retry`` and ``<group>.dlq`` when missing (idempotent; never alters).

    Raises:
        KafkaUnavailableError: no broker answered.
        TopicError: a topic could not be created.
    """
    specs = worker_topic_specs(
        group,
        partitions=partitions,
        replication_factor=replication_factor,
        retry_topic=retry_topic,
        dlq_topic=dlq_topic,
    )
    return ensure_topics(settings, specs)
