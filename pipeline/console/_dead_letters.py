"""Dead letters page by page, decoded, in (partition, offset) order, through the ops readers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipeline._names import dlq_topic
from pipeline._settings import Settings
from pipeline.avro._codec import Codec
from pipeline.ops._dead_letters import DeadLetter, DeadLetterFilter
from pipeline.ops._display import decode_value, header_text
from pipeline.ops._redrive import is_copy
from pipeline.ops._window import WindowReader, resolve_window, topic_partitions, window_consumer

__all__ = ["Cursor", "DeadLetterPage", "dead_letter_detail", "read_page"]

Cursor = tuple[int, int]
"""``(partition, offset)``: a page starts after it. Written ``P:O`` in the API."""


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    """One page of dead letters and where the next one starts (None: this was the last)."""

    topic: str
    records: list[dict[str, Any]]
    next: Cursor | None


def dead_letter_detail(record: DeadLetter, codec: Codec | None) -> dict[str, Any]:
    """A dead letter as JSON: its summary, the decoded value and every header (text or hex)."""
    schema, value, error = decode_value(codec, record.value)
    return {
        **record.summary(),
        "timestamp_ms": record.timestamp_ms,
        "redriven_before": is_copy(record),
        "schema": schema,
        "value": value,
        "decode_error": error,
        "headers": header_text(record.headers),
    }


def read_page(
    settings: Settings,
    group: str,
    *,
    limit: int,
    after: Cursor | None = None,
    selector: DeadLetterFilter | None = None,
    codec: Codec | None = None,
) -> DeadLetterPage:
    """Up to ``limit`` dead letters of ``group`` after ``after`` that pass ``selector``.

    Partitions are read one after the other, each from its start (or from just after the
    cursor), and only as far as the page needs.

    Raises:
        TopicError: ``<group>.dlq`` does not exist.
        KafkaUnavailableError: Kafka cannot be reached.
    """
    topic = dlq_topic(group)
    selector = selector or DeadLetterFilter()
    found: list[dict[str, Any]] = []
    consumer = window_consumer(settings)
    try:
        partitions = topic_partitions(consumer, topic, settings=settings)
        for partition in partitions:
            if after is not None and partition < after[0]:
                continue
            start = {partition: after[1] + 1} if after is not None and partition == after[0] else {}
            ranges = resolve_window(
                consumer, topic, [partition], start_offsets=start or None,
                until_ms=selector.until_ms,
            )  # fmt: skip
            for batch in WindowReader(consumer, topic, ranges).batches():
                for msg in batch:
                    record = DeadLetter.from_message(msg)
                    if not selector.matches(record):
                        continue
                    if len(found) == limit:
                        last = found[-1]
                        return DeadLetterPage(topic, found, (last["partition"], last["offset"]))
                    found.append(dead_letter_detail(record, codec))
    finally:
        consumer.close()
    return DeadLetterPage(topic, found, None)
