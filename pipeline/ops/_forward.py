"""Forwarding already-encoded records through the idempotent producer, at copy-loop speed.

Replay copies records byte for byte: there is nothing to encode and nothing to build per
record but the produce call. ``Forwarder`` is that loop's producer: the settings' idempotent
config (``acks=all``), delivery reports for failures only (a success costs no callback), one
callback per caller-chosen group, reports served on the caller's thread, and every failure
reported: a failed delivery reaches its callback, a fatal producer error stops the next send,
and records still queued at close are purged so their callbacks fail rather than vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from pipeline._errors import (
    FatalProducerError,
    KafkaOperationError,
)
from pipeline._produce import POLL_EVERY, DeliveryReport, produce_bounded, purge_and_report
from pipeline._settings import Settings

__all__ = ["Forwarder"]

_Wire = list[tuple[str, str | bytes | None]]


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
