"""Broadcast mode: every instance reads every partition of its topics, with ``assign()``.

There is no shared consumer group. An instance with a stable id (``instance_id``) stores its
positions under its own group id, ``<group>.broadcast.<instance id>``, and resumes from them
after a restart; an instance without one starts at the end of each partition (only records
produced while it runs), under a throwaway id ``<group>.broadcast.anon-<random>``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from pipeline._errors import ConfigError, ConsumeError
from pipeline._names import broadcast_group

from ._options import WorkerOptions

__all__ = ["Broadcast"]

_LOG = logging.getLogger("consumers")
_TIMEOUT_S = 15.0
_T = TypeVar("_T")


class Broadcast:
    """Who this broadcast instance is, and how it places itself on every partition."""

    def __init__(self, group: str, options: WorkerOptions) -> None:
        self.stable = options.instance_id is not None
        self.identity = options.instance_id or f"anon-{uuid.uuid4().hex[:10]}"
        self.group_id = broadcast_group(group, self.identity)

    def assign(
        self,
        consumer: Any,
        topics: list[str],
        on_assign: Callable[[Any, list[TopicPartition]], None],
    ) -> None:
        """Assign every partition of ``topics`` at a concrete position, then report it.

        Positions are resolved here (stored offset, else the current end), not lazily by
        librdkafka, so a record produced after this returns is always read.
        """
        if not topics:
            raise ConfigError("a BROADCAST worker takes topics=[...], not a pattern")
        try:
            partitions = [
                TopicPartition(topic, p)
                for topic in topics
                for p in sorted(_partitions(consumer, topic))
            ]
            stored = consumer.committed(partitions, timeout=_TIMEOUT_S) if self.stable else []
            start = {(tp.topic, tp.partition): tp.offset for tp in stored if tp.offset >= 0}
            for tp in partitions:
                offset = start.get((tp.topic, tp.partition))
                if offset is None:
                    offset = _end(consumer, tp)
                tp.offset = offset
        except KafkaException as exc:
            raise ConsumeError(f"broadcast assignment failed: {exc.args[0]}") from exc
        consumer.assign(partitions)
        on_assign(consumer, partitions)
        _LOG.info(
            "broadcast instance %s reads %d partition(s) (%s)",
            self.identity,
            len(partitions),
            "resuming from stored positions" if self.stable else "from the end",
        )


_TRANSIENT = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,
    KafkaError._TRANSPORT,
}


def _end(consumer: Any, tp: TopicPartition) -> int:
    """The partition's end offset, waiting (up to the timeout) while its leader is elected.

    A topic created a moment ago may have no leader yet: that is not a reason to fail.
    """

    def end() -> int:
        _low, high = consumer.get_watermark_offsets(tp, timeout=_TIMEOUT_S)
        return int(high)

    return _with_backoff(end, retry_on=_transient)


def _partitions(consumer: Any, topic: str) -> list[int]:
    """The topic's partitions; metadata of a topic created a moment ago may lag: wait a bit."""

    def partitions() -> list[int]:
        meta = consumer.list_topics(topic, timeout=_TIMEOUT_S).topics.get(topic)
        if meta is not None and meta.error is None and meta.partitions:
            return list(meta.partitions)
        raise ConsumeError(f"broadcast: topic {topic} does not exist (create it first)")

    return _with_backoff(partitions, retry_on=lambda exc: isinstance(exc, ConsumeError))


def _transient(exc: Exception) -> bool:
    """Whether ``exc`` is a Kafka error that a moment's wait may cure (no leader yet, ...)."""
    err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
    return isinstance(exc, KafkaException) and err is not None and err.code() in _TRANSIENT


def _with_backoff(attempt: Callable[[], _T], *, retry_on: Callable[[Exception], bool]) -> _T:
    """``attempt()``, tried again while it raises what ``retry_on`` accepts, up to the timeout.

    Between tries a bounded back-off (0.05 s, doubling, at most 1 s); once the timeout has
    passed, the last error is raised as it is.
    """
    deadline = time.monotonic() + _TIMEOUT_S
    delay = 0.05
    while True:
        try:
            return attempt()
        except Exception as exc:
            if not retry_on(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(delay)  # bounded back-off: the broker may not have caught up yet
        delay = min(delay * 2, 1.0)
