"""Internal topic and group names, each rule defined once (DESIGN section 4).

Producers, workers, the scheduler and the ops tools all derive these names from here, so a
group's retry topic is spelled the same by the worker that writes it and the tool that reads it.
"""

from __future__ import annotations

import re

from ._errors import ConfigError

__all__ = [
    "MAX_PRIORITY_LEVELS",
    "SCHEDULER_DLQ_TOPIC",
    "SCHEDULER_GROUP",
    "SCHEDULER_TOPIC",
    "broadcast_group",
    "dlq_topic",
    "priority_level",
    "priority_topic",
    "priority_topics",
    "redrive_group",
    "reply_topic",
    "retry_topic",
]

SCHEDULER_TOPIC = "pipeline.scheduler"
"""Where delayed records enter; its delay tiers are ``<topic>.<tier>``."""
SCHEDULER_GROUP = "pipeline-scheduler"
"""The consumer group shared by every scheduler instance."""
SCHEDULER_DLQ_TOPIC = "pipeline.scheduler.dlq"
"""Where the scheduler puts records it cannot schedule, with error headers."""


def dlq_topic(group: str) -> str:
    """The dead-letter topic of a consumer group."""
    return f"{group}.dlq"


def retry_topic(group: str) -> str:
    """The retry topic of a consumer group (only that group reads it)."""
    return f"{group}.retry"


def redrive_group(group: str) -> str:
    """The consumer group that tracks how far ``pipeline dlq redrive`` got."""
    return f"{group}.dlq-redrive"


def reply_topic(client_id: str, token: str) -> str:
    """The reply (and quorum acknowledgement) topic of one client process.

    ``pipeline.reply.<client id>.<token>``: the client creates it on first use and deletes it
    on close; ``token`` (random per process) keeps two processes of one service apart.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", client_id)[:100]
    return f"pipeline.reply.{safe}.{token}"


def broadcast_group(group: str, instance_id: str) -> str:
    """The group id a broadcast instance stores its positions under (never a shared group)."""
    return f"{group}.broadcast.{instance_id}"


MAX_PRIORITY_LEVELS = 10
"""A topic has at most ten priority levels, ``.p0`` to ``.p9``."""

_PRIORITY = re.compile(r"^(?P<base>.+)\.p(?P<level>[0-9])$")


def priority_topic(topic: str, level: int) -> str:
    """The Kafka topic of one priority level: ``<topic>.p<level>``, ``.p0`` the highest."""
    if not 0 <= level < MAX_PRIORITY_LEVELS:
        raise ConfigError(f"priority level must be 0..{MAX_PRIORITY_LEVELS - 1}, got {level}")
    return f"{topic}.p{level}"


def priority_topics(topic: str, levels: int) -> list[str]:
    """All level topics of a topic with ``levels`` priority levels, highest first."""
    if not 1 <= levels <= MAX_PRIORITY_LEVELS:
        raise ConfigError(f"priority levels must be 1..{MAX_PRIORITY_LEVELS}, got {levels}")
    return [priority_topic(topic, level) for level in range(levels)]


def priority_level(topic: str) -> tuple[str, int] | None:
    """``(base topic, level)`` of a priority level topic, or None for any other topic."""
    match = _PRIORITY.match(topic)
    if match is None:
        return None
    return match["base"], int(match["level"])
