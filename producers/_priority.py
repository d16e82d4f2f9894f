"""Which topic a send with ``priority=`` goes to: the level topic ``<topic>.p<N>``."""

from __future__ import annotations

from collections.abc import Mapping

from pipeline._errors import ConfigError
from pipeline._names import priority_topic, priority_topics

__all__ = ["check_levels", "priority_target"]


def check_levels(levels: Mapping[str, int] | None) -> dict[str, int]:
    """Validate a producer's declared priority levels (topic -> how many levels).

    Raises:
        ConfigError: a level count is not an int from 1 to 10.
    """
    out: dict[str, int] = {}
    for topic, count in (levels or {}).items():
        if isinstance(count, bool) or not isinstance(count, int):
            raise ConfigError(f"priorities of {topic}: levels must be an int, got {count!r}")
        priority_topics(topic, count)  # validates the count
        out[topic] = count
    return out


def priority_target(topic: str, priority: int | None, levels: Mapping[str, int]) -> str:
    """The topic a send for ``topic`` goes to.

    ``priority=N`` is ``<topic>.p<N>`` (0 the highest). ``priority=None`` is the lowest level of
    a topic whose levels the producer declared, else ``topic`` itself (a topic without levels).

    Raises:
        ConfigError: ``priority`` is not an int, or not a level of the topic (0..levels-1 when
            declared, else 0..9).
    """
    declared = levels.get(topic)
    if priority is None:
        return topic if declared is None else priority_topic(topic, declared - 1)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise ConfigError(f"priority must be an int level (0 is the highest), got {priority!r}")
    if declared is not None and not 0 <= priority < declared:
        raise ConfigError(
            f"priority of {topic} must be 0..{declared - 1} ({declared} levels), got {priority}"
        )
    return priority_topic(topic, priority)
