"""Read fixed offset ranges of many partitions at once, with one consumer and one assignment.

Every partition is read concurrently (a range per topic would cost a fetch round trip, about
half a second, each), and a partition is done at its end offset or at end-of-partition
(the last offsets of a read_committed range can be transaction markers, never delivered).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pipeline._admin import kafka_error
from pipeline._errors import KafkaOperationError, KafkaUnavailableError

__all__ = ["TP", "cut_ranges", "scan"]

TP = tuple[str, int]
_FATAL = {
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError._UNKNOWN_TOPIC,
}


def cut_ranges(
    ranges: Mapping[TP, tuple[int, int]], max_per_topic: int
) -> tuple[dict[TP, tuple[int, int]], set[str]]:
    """Keep the newest ``max_per_topic`` records of each topic (split evenly over its
    partitions); also return the topics that were cut."""
    per_topic: dict[str, int] = {}
    for topic, _ in ranges:
        per_topic[topic] = per_topic.get(topic, 0) + 1
    out, cut = {}, set()
    for (topic, partition), (start, end) in ranges.items():
        share = max(1, max_per_topic // per_topic[topic])
        if end - start > share:
            start = end - share
            cut.add(topic)
        if end > start:
            out[(topic, partition)] = (start, end)
    return out, cut


def scan(
    consumer: Consumer, ranges: Mapping[TP, tuple[int, int]], stall_timeout: float = 30.0
) -> Iterator[Message]:
    """Yield every record in ``[start, end)`` of each partition (in offset order per partition).

    Raises:
        KafkaUnavailableError: nothing arrived for ``stall_timeout`` seconds.
        KafkaOperationError: a topic vanished or access was refused.
    """
    ends = {tp: end for tp, (start, end) in ranges.items() if end > start}
    if not ends:
        return
    try:
        consumer.assign([TopicPartition(t, p, ranges[(t, p)][0]) for t, p in ends])
    except KafkaException as exc:
        raise kafka_error(exc, "assigning partitions to read") from exc
    last = time.monotonic()
    while ends:
        try:
            messages = consumer.consume(1000, 0.1)
        except KafkaException as exc:
            raise kafka_error(exc, "reading records") from exc
        now = time.monotonic()
        if messages:
            last = now
        elif now - last > stall_timeout:
            raise KafkaUnavailableError(
                f"no record arrived for {stall_timeout:g}s; {len(ends)} partition(s) "
                "did not reach their end offsets"
            )
        for msg in messages:
            tp = (msg.topic() or "", msg.partition() or 0)
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    ends.pop(tp, None)
                elif err.fatal() or err.code() in _FATAL:
                    raise KafkaOperationError(f"reading {tp[0]}: {err.str()}")
                continue
            end = ends.get(tp)
            offset = msg.offset() or 0
            if end is None:
                continue
            if offset >= end:
                ends.pop(tp)
                continue
            yield msg
            if offset + 1 >= end:
                ends.pop(tp)
