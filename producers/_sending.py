"""What a send batch needs from its producer, as a protocol below both (no import cycle).

``EventProducer`` satisfies ``RecordSender``; ``SendBatch`` depends on the protocol only, so
the batch module never imports the producer module. ``BytesSender`` is the narrower contract
of code that only forwards pre-encoded records (the worker's retry and dead-letter copies):
``EventProducer`` and the test kit's in-memory producer satisfy it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from confluent_kafka import KafkaError, Message

from pipeline.avro._events import Event

from ._client import ClientHolder
from ._delivery import DeliveryCallback, DeliveryFuture
from ._headers import HeaderInput
from ._metrics import ProducerMetrics

__all__ = ["BytesSender", "Key", "RecordSender"]

Key = bytes | str | Callable[[Any], bytes | str | None] | None


class RecordSender(Protocol):
    """Encode, route and queue one record: the producer's steps that a batch reuses."""

    metrics: ProducerMetrics
    _size_check_above: int
    """Records no bigger than this skip the per-record size check."""

    def _encode(
        self,
        event: Event,
        key: Key,
        topic: str | None,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
    ) -> tuple[str, bytes, bytes | None, list[tuple[str, bytes | None]]]:
        """Encode ``event``: ``(topic, value, key bytes, wire headers)``."""

    def _route_bytes(
        self,
        topic: str,
        headers: HeaderInput,
        deliver_at: datetime | None,
        delay: timedelta | None,
    ) -> tuple[str, list[tuple[str, bytes | None]] | None]:
        """Where pre-encoded bytes go, and their wire headers (None when there are none)."""

    def _produce(
        self,
        holder: ClientHolder,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        report: Callable[[KafkaError | None, Message], None],
    ) -> None:
        """Queue one record on ``holder``'s client (bounded wait, errors translated)."""


class BytesSender(Protocol):
    """Queue pre-encoded bytes with their headers; report delivery (``send_bytes``)."""

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: HeaderInput = None,
        deliver_at: datetime | None = None,
        delay: timedelta | None = None,
        on_delivery: DeliveryCallback | None = None,
    ) -> DeliveryFuture | None:
        """Queue ``value`` for ``topic`` (through the scheduler when delayed)."""
