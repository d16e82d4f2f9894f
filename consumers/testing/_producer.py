"""The kit's transport: an ``EventProducer`` that stores records in memory, and a scheduler.

``MemoryProducer`` is the real ``EventProducer`` (encoding, CloudEvents headers, keys, delayed
sends, delivery futures and callbacks, metrics) with one step replaced: the record goes into
a :class:`MemoryBroker` partition instead of to librdkafka, and its delivery report comes back
at once. Delayed records land in the scheduler topic, where ``MemoryScheduler`` holds them
until the fake clock reaches their due time and then forwards them to their target topic, as
``pipeline scheduler run`` does (scheduler headers removed, ``pipeline-delivered-at`` added).
The scheduler's delay tiers are not modelled: a record is forwarded exactly when due.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, cast

from confluent_kafka import KafkaError, Message

from pipeline._delay import parse_schedule
from pipeline._errors import ConfigError, DecodeError
from pipeline._headers import DELIVERED_AT, ERROR_MESSAGE, ERROR_TYPE, SCHEDULER_HEADERS, without
from pipeline._names import SCHEDULER_DLQ_TOPIC
from pipeline._settings import Settings
from producers import EventProducer, SendBatch
from producers._client import ClientHolder
from producers._record_size import check_record_size

from ._clock import FakeClock
from ._memory import MemoryBroker, MemoryConsumer, MemoryMessage

__all__ = ["MemoryProducer", "MemoryScheduler", "MemoryTransport"]


class MemoryScheduler:
    """Holds records sent to ``topic`` until they are due, then forwards them."""

    def __init__(self, broker: MemoryBroker, topic: str) -> None:
        self.topic = topic
        self._broker = broker
        self._held: list[tuple[int, int, MemoryMessage, str]] = []
        self._seq = 0

    def hold(self, msg: MemoryMessage, now_ms: int) -> None:
        """Take a record of the scheduler topic (invalid ones go to the scheduler's DLQ)."""
        headers = msg.headers() or []
        try:
            target, due = parse_schedule(headers)
        except DecodeError as exc:
            extra = [(ERROR_TYPE, b"invalid-schedule"), (ERROR_MESSAGE, str(exc).encode())]
            self._broker.append(
                SCHEDULER_DLQ_TOPIC, msg.key(), msg.value(), [*headers, *extra], now_ms
            )
            return
        self._seq += 1
        heapq.heappush(self._held, (due, self._seq, msg, target))

    def __len__(self) -> int:
        return len(self._held)

    def next_due(self) -> int | None:
        """The earliest due time held (epoch ms), or None."""
        return self._held[0][0] if self._held else None

    def release(self, now_ms: int) -> int:
        """Forward every record due at ``now_ms`` (in due order); return how many."""
        held, count = self._held, 0
        while held and held[0][0] <= now_ms:
            _, _, msg, target = heapq.heappop(held)
            headers = [*without(msg.headers(), SCHEDULER_HEADERS), (DELIVERED_AT, b"%d" % now_ms)]
            self._broker.append(target, msg.key(), msg.value(), headers, now_ms)
            count += 1
        return count


class MemoryProducer(EventProducer):
    """An :class:`producers.EventProducer` whose records go to a :class:`MemoryBroker`.

    Everything but the hand-over to the client is the real producer. Delivery reports run
    synchronously, inside the send. Not supported: :meth:`batch` and transactions.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        scheduler: MemoryScheduler,
        clock: FakeClock,
        settings: Settings | None = None,
        **options: Any,
    ) -> None:
        if options.get("transactional_id") is not None:
            raise ConfigError("the test kit does not model transactions (exactly-once)")
        super().__init__(settings, **options)
        self._broker = broker
        self._scheduler = scheduler
        self._clock = clock.time
        self._kit_clock = clock

    def _produce(
        self,
        holder: ClientHolder,
        topic: str,
        value: bytes | None,
        key: bytes | None,
        headers: list[tuple[str, bytes | None]] | None,
        report: Callable[[KafkaError | None, Message], None],
    ) -> None:
        check_record_size(topic, value, key, headers, self._size_check_above, self._max_bytes)
        now_ms = self._kit_clock.ms()
        msg = self._broker.append(topic, key, value, list(headers or []), now_ms)
        if topic == self._scheduler.topic:
            self._scheduler.hold(msg, now_ms)
        report(None, cast(Message, msg))

    def batch(self, timeout: float = 60.0) -> SendBatch:
        """Not in the test kit: send records one by one."""
        raise ConfigError("the test kit's producer has no batch(); use send()")

    @contextmanager
    def transaction(self, timeout: float = 30.0) -> Iterator[EventProducer]:
        """Not in the test kit."""
        raise ConfigError("the test kit does not model transactions (exactly-once)")
        yield self  # pragma: no cover

    def flush(self, timeout: float = 30.0) -> int:
        """Nothing is ever pending."""
        return 0

    def close(self, timeout: float = 30.0) -> None:
        """Nothing to flush."""

    def __len__(self) -> int:
        return 0


class MemoryTransport:
    """The worker's clients over one broker, scheduler and clock (see ``consumers._transport``)."""

    serial = True

    def __init__(self, broker: MemoryBroker, scheduler: MemoryScheduler, clock: FakeClock) -> None:
        self._broker = broker
        self._scheduler = scheduler
        self._clock = clock
        self.monotonic: Callable[[], float] = clock.monotonic

    def consumer(self, config: dict[str, Any]) -> MemoryConsumer:
        """A consumer of ``config["group.id"]`` over the broker."""
        return MemoryConsumer(self._broker, config)

    def producer(self, settings: Settings, **options: Any) -> MemoryProducer:
        """A producer into the broker (delayed records through the scheduler)."""
        return MemoryProducer(self._broker, self._scheduler, self._clock, settings, **options)
