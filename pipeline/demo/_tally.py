"""Reads the demo's topics from where they stood at the start and counts what happened."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from examples.orders.events import OrderPlaced, PaymentCaptured, ReminderDue, ShipmentRequested
from examples.orders.names import DemoNames
from pipeline._errors import DecodeError, PipelineError
from pipeline._headers import DELIVERED_AT, ERROR_TYPE, Headers, get_header
from pipeline._names import dlq_topic, retry_topic
from pipeline._settings import Settings
from pipeline.avro._codec import Codec

__all__ = ["DeadLetterSeen", "Tally"]


def _high_watermark(consumer: Consumer, tp: TopicPartition, timeout: float = 30.0) -> int:
    """The end offset of ``tp``, retrying while a new topic's leaders settle."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, high = consumer.get_watermark_offsets(tp, timeout=10)
            return int(high)
        except KafkaException as exc:
            if time.monotonic() > deadline:
                raise PipelineError(f"end offset of {tp.topic}[{tp.partition}]: {exc}") from exc
            time.sleep(0.5)


@dataclass(frozen=True)
class DeadLetterSeen:
    """One dead letter of the run."""

    group: str
    partition: int
    offset: int
    key: str
    error_type: str


@dataclass
class Tally:
    """Counts of one run, built from the records written after :meth:`mark_start`."""

    names: DemoNames
    settings: Settings
    orders: set[str] = field(default_factory=set)
    order_records: int = 0
    poison_orders: set[str] = field(default_factory=set)
    payments: Counter[str] = field(default_factory=Counter)
    shipments: Counter[str] = field(default_factory=Counter)
    reminders: Counter[str] = field(default_factory=Counter)
    lateness_ms: list[int] = field(default_factory=list)
    early: list[tuple[str, int]] = field(default_factory=list)
    retries: Counter[str] = field(default_factory=Counter)
    dead_letters: list[DeadLetterSeen] = field(default_factory=list)
    undecodable: int = 0
    _consumer: Consumer | None = field(default=None, repr=False)
    _codec: Codec | None = field(default=None, repr=False)
    _topics: dict[str, str] = field(default_factory=dict, repr=False)

    def topics(self) -> dict[str, str]:
        """Topic -> what it holds."""
        n = self.names
        kinds = {
            n.orders: "orders",
            n.payments: "payments",
            n.shipments: "shipments",
            n.reminders: "reminders",
        }
        for group in n.worker_groups:
            kinds[retry_topic(group)] = f"retry:{group}"
            kinds[dlq_topic(group)] = f"dlq:{group}"
        return kinds

    def mark_start(self) -> None:
        """Remember the end of every demo topic: only later records count."""
        self._topics = self.topics()
        self._codec = Codec.from_settings(
            self.settings, [OrderPlaced, PaymentCaptured, ShipmentRequested, ReminderDue]
        )
        consumer = Consumer(
            self.settings.consumer_config(
                f"demo-tally-{uuid.uuid4().hex[:12]}", **{"fetch.wait.max.ms": 100}
            )
        )
        metadata = consumer.list_topics(timeout=10)
        assignment = []
        for topic in self._topics:
            meta = metadata.topics.get(topic)
            if meta is None or meta.error is not None:
                continue  # not created (yet): a worker that never started
            for partition in meta.partitions:
                high = _high_watermark(consumer, TopicPartition(topic, partition))
                assignment.append(TopicPartition(topic, partition, high if high >= 0 else 0))
        consumer.assign(assignment)
        self._consumer = consumer

    def poll(self, max_seconds: float = 0.5) -> int:
        """Read what arrived, for about ``max_seconds`` at most; return how many records."""
        assert self._consumer is not None
        count = 0
        deadline = time.monotonic() + max_seconds
        while (left := deadline - time.monotonic()) > 0:
            batch = self._consumer.consume(1000, left if count == 0 else min(left, 0.05))
            if not batch:
                break
            for msg in batch:
                error = msg.error()
                if error is None:
                    self._add(msg)
                    count += 1
                elif error.code() != KafkaError._PARTITION_EOF:
                    raise PipelineError(f"reading {msg.topic()}: {error}")
        return count

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def _add(self, msg: Message) -> None:
        topic = msg.topic() or ""
        kind = self._topics.get(topic, "")
        key = (msg.key() or b"").decode(errors="replace")
        if kind.startswith("retry:"):
            self.retries[kind.partition(":")[2]] += 1
            return
        if kind.startswith("dlq:"):
            error = get_header(cast(Headers, msg.headers() or []), ERROR_TYPE) or b""
            self.dead_letters.append(
                DeadLetterSeen(
                    kind.partition(":")[2],
                    msg.partition() or 0,
                    msg.offset() or 0,
                    key,
                    error.decode(errors="replace"),
                )
            )
            return
        assert self._codec is not None
        try:
            event = self._codec.decode(msg.value() or b"")
        except DecodeError:
            self.undecodable += 1
            return
        if isinstance(event, OrderPlaced):
            self.order_records += 1
            self.orders.add(str(event.order_id))
            if event.customer_id.startswith("poison-"):
                self.poison_orders.add(str(event.order_id))
        elif isinstance(event, PaymentCaptured):
            self.payments[str(event.order_id)] += 1
        elif isinstance(event, ShipmentRequested):
            self.shipments[str(event.order_id)] += 1
        elif isinstance(event, ReminderDue):
            self._reminder(event, msg)

    def _reminder(self, event: ReminderDue, msg: Message) -> None:
        rid = str(event.reminder_id)
        self.reminders[rid] += 1
        if self.reminders[rid] > 1:
            return
        due_ms = int(event.due_at.timestamp() * 1000)
        header = get_header(cast(Headers, msg.headers() or []), DELIVERED_AT)
        delivered_ms = int(header) if header else int(msg.timestamp()[1])
        lateness = delivered_ms - due_ms
        self.lateness_ms.append(lateness)
        if lateness < 0:
            self.early.append((rid, lateness))

    # -- derived --------------------------------------------------------------------------------

    @property
    def paid(self) -> set[str]:
        return set(self.payments) & self.orders

    @property
    def dead_lettered_orders(self) -> set[str]:
        group = self.names.payments_group
        return {d.key for d in self.dead_letters if d.group == group} & self.orders

    def lost_orders(self) -> set[str]:
        """Orders neither paid nor dead-lettered by payments."""
        return self.orders - self.paid - self.dead_lettered_orders

    def unshipped(self) -> set[str]:
        """Paid orders fulfillment has not (yet) asked to ship."""
        return self.paid - set(self.shipments)

    def duplicates(self) -> dict[str, int]:
        """Extra copies per output (at-least-once may repeat; reported, not a failure)."""
        dlq = Counter(d.key for d in self.dead_letters)
        return {
            "payments": sum(c - 1 for c in self.payments.values() if c > 1),
            "shipments": sum(c - 1 for c in self.shipments.values() if c > 1),
            "reminders": sum(c - 1 for c in self.reminders.values() if c > 1),
            "dead_letters": sum(c - 1 for c in dlq.values() if c > 1),
        }
