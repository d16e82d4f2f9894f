"""Internal topic and group names, each rule defined once (DESIGN section 4).

Producers, workers, the scheduler and the ops tools all derive these names from here, so a
group's retry topic is spelled the same by the worker that writes it and the tool that reads it.
"""

from __future__ import annotations

__all__ = [
    "SCHEDULER_DLQ_TOPIC",
    "SCHEDULER_GROUP",
    "SCHEDULER_TOPIC",
    "dlq_topic",
    "redrive_group",
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
