"""Where a worker's records come from and go to: the Kafka clients, or the test kit's memory.

The poll loop (``Runner``) builds its consumer and producer through a ``Transport``. The
default, ``KafkaTransport``, builds a ``confluent_kafka.Consumer`` and an ``EventProducer``;
``consumers.testing`` passes one that keeps partitions in memory and runs every record on the
poll thread, on a clock the test advances. Everything above the two clients (decoding,
handlers, retries, dead letters, offsets, commits) is the same code either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer

from pipeline._settings import Settings
from producers import EventProducer

__all__ = ["KafkaTransport", "Transport"]


class Transport(Protocol):
    """Builds a worker's clients.

    Attributes:
        serial: run every record on the poll thread, one after the other, in-place retries
            included (deterministic: the test kit); False lets the worker choose its threads.
        monotonic: the clock of dedup windows (seconds).
    """

    serial: bool
    monotonic: Callable[[], float]

    def consumer(self, config: dict[str, Any]) -> Any:
        """A consumer shaped like ``confluent_kafka.Consumer`` for this librdkafka config."""

    def producer(self, settings: Settings, **options: Any) -> EventProducer:
        """The worker's producer: ``EventProducer(settings, **options)`` or one like it."""


class KafkaTransport:
    """The real clients (the default of every worker)."""

    serial = False
    monotonic = staticmethod(time.monotonic)

    def consumer(self, config: dict[str, Any]) -> Any:
        """A ``confluent_kafka.Consumer``."""
        return Consumer(config)

    def producer(self, settings: Settings, **options: Any) -> EventProducer:
        """An ``EventProducer``."""
        return EventProducer(settings, **options)
