"""Forwarding already-encoded records through the idempotent producer, at copy-loop speed.

Replay copies records byte for byte: there is nothing to encode and nothing to build per
record but the produce call. ``Forwarder`` is that loop's producer: the settings' idempotent
config (``acks=all``), delivery reports for failures only (a success costs no callback), one
callback per caller-chosen group, reports served on the caller's thread, and every failure
reported: a failed delivery reaches its callback, a fatal producer error stops the next send,
and records still queued at close are purged so their callbacks fail rather than vanish.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from ._errors import (
    DeliveryError,
    FatalProducerError,
    KafkaOperationError,
    PipelineError,
    QueueFullError,
    RecordTooLargeError,
)
from ._settings import Settings

__all__ = ["DeliveryReport", "Forwarder", "produce_bounded", "purge_and_report", "refused"]

DeliveryReport = Callable[[KafkaError | None, Message], None]
_Wire = list[tuple[str, str | bytes | None]]
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


class Forwarder:
    """Write raw key, value and headers to Kafka with the idempotent producer.

    Not thread-safe: one thread sends, and delivery callbacks run on it (in ``send``, ``poll``
    and ``close``).

    Args:
        settings: connection settings (producer config: idempotence, ``acks=all``).
        max_block: seconds ``send`` waits for room in a full local queue.
        config: librdkafka overrides.

    Only failed records reach their ``on_delivery`` (``delivery.report.only.error``): a record
    is delivered once :meth:`close` has drained the producer without reporting it, and a
    success costs no callback.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        max_block: float = 60.0,
        config: dict[str, Any] | None = None,
    ) -> None:
        conf = settings.producer_config(**(config or {}))
        conf["delivery.report.only.error"] = True
        conf["error_cb"] = self._on_error
        self._fatal: KafkaError | None = None
        self._max_block = max_block
        self._sends = 0
        try:
            self._producer = Producer(conf)
        except KafkaException as exc:
            raise KafkaOperationError(f"creating the producer failed: {exc.args[0]}") from exc

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes | None]] | None,
        on_delivery: DeliveryReport,
    ) -> None:
        """Queue one record; ``on_delivery(err, msg)`` is called if it is not delivered.

        Raises:
            FatalProducerError: the idempotent producer hit a fatal error (nothing more is sent).
            QueueFullError: the local queue stayed full for ``max_block`` seconds.
            DeliveryError: librdkafka refused the record (too large, unknown topic, ...).
        """
        if self._fatal is not None:
            raise FatalProducerError(f"the idempotent producer failed: {self._fatal.str()}")
        producer = self._producer
        produce_bounded(producer, topic, value, key, headers, on_delivery, self._max_block)
        self._sends += 1
        if self._sends % POLL_EVERY == 0:
            producer.poll(0)

    def poll(self, timeout: float = 0.0) -> None:
        """Serve delivery reports (also a bounded wait, for rate limiting)."""
        self._producer.poll(timeout)

    def close(self, timeout: float = 60.0) -> int:
        """Wait up to ``timeout`` for every delivery report; return how many never came.

        Records still queued after ``timeout`` are purged: their callbacks receive an error.
        """
        remaining = int(self._producer.flush(timeout))
        if remaining:
            purge_and_report(self._producer)
        return remaining
