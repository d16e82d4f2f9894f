"""The one bounded produce step every producer shares: queue-full wait, purge, error mapping.

``EventProducer``, its send batches and the replay ``Forwarder`` all queue records through
``produce_bounded`` and purge through ``purge_and_report``, so librdkafka's exceptions are
translated into the pipeline's error tree in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ._errors import (
    DeliveryError,
    FatalProducerError,
    PipelineError,
    QueueFullError,
    RecordTooLargeError,
)

__all__ = ["POLL_EVERY", "DeliveryReport", "produce_bounded", "purge_and_report", "refused"]

DeliveryReport = Callable[[KafkaError | None, Message], None]
POLL_EVERY = 256  # serve delivery reports every this many sends


def produce_bounded(
    producer: Producer,
    topic: str,
    value: bytes | None,
    key: bytes | None,
    headers: Sequence[tuple[str, bytes | None]] | None,
    on_delivery: DeliveryReport,
    max_block: float,
) -> None:
    """Queue one record, waiting up to ``max_block`` seconds for room in a full local queue.

    The wait serves delivery reports (``poll``), which is what frees room.

    Raises:
        QueueFullError: the queue stayed full for ``max_block`` seconds.
        RecordTooLargeError: librdkafka refused the record as too large.
        FatalProducerError: librdkafka reported a fatal error.
        DeliveryError: librdkafka refused the record for another reason.
    """
    deadline = 0.0
    while True:
        try:
            if headers:
                producer.produce(topic, value, key, headers=headers, on_delivery=on_delivery)  # type: ignore[arg-type]
            else:  # an explicit headers=None costs confluent-kafka about a microsecond
                producer.produce(topic, value, key, on_delivery=on_delivery)
            return
        except BufferError:
            now = time.monotonic()
            deadline = deadline or now + max_block
            if now >= deadline:
                raise QueueFullError(
                    f"the local producer queue stayed full for {max_block:g}s "
                    f"({len(producer)} records waiting); is the cluster reachable and "
                    f"{topic} writable?"
                ) from None
            producer.poll(0.05)
        except KafkaException as exc:
            raise refused(exc, topic, len(value or b"")) from exc


def purge_and_report(producer: Producer, timeout: float = 5.0) -> None:
    """Fail every record still queued or in flight, and serve those failure reports now.

    ``flush`` rather than ``poll(0)``: the reports of purged in-flight records may be queued
    a moment later, and a missed report would leave a record counted as neither sent nor failed.
    """
    producer.purge()
    producer.flush(timeout)


def refused(exc: KafkaException, topic: str, size: int) -> PipelineError:
    """The pipeline error for a record librdkafka refused to queue."""
    err = exc.args[0] if exc.args else None
    if not isinstance(err, KafkaError):
        return DeliveryError(f"producing to {topic} failed: {exc}")
    if err.code() == KafkaError.MSG_SIZE_TOO_LARGE:
        return RecordTooLargeError(f"record for {topic} ({size} bytes) is too large: {err.str()}")
    if err.fatal():
        return FatalProducerError(f"producing to {topic} failed fatally: {err.str()}")
    return DeliveryError(f"producing to {topic} failed: {err.str()}")
