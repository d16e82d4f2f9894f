"""Helpers for the operations-CLI tests (no tests here): records, dead letters, offsets."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from click.testing import CliRunner, Result
from confluent_kafka import Consumer, Message, Producer, TopicPartition

from examples.orders.events import (
    Address,
    LineItem,
    OrderPlaced,
    PaymentCaptured,
    PaymentMethod,
)
from pipeline import load_settings
from pipeline._headers import (
    ATTEMPT,
    CE_TYPE,
    CONSUMER_GROUP,
    ERROR_MESSAGE,
    ERROR_TRACE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
)
from pipeline.avro._codec import Codec
from pipeline.cli import cli


@dataclass(frozen=True)
class Sent:
    """One record a test wrote: what it is and where it landed."""

    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int
    subject: str
    customer: str | None
    partition: int = -1
    offset: int = -1


def codec(bootstrap: str) -> Codec:
    return Codec.from_settings(load_settings(bootstrap_servers=bootstrap))


def order(customer: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id=customer,
        placed_at=datetime.now(UTC).replace(microsecond=0),
        items=[LineItem(sku="sku-1", quantity=1, unit_price=Decimal("4.50"))],
        total=Decimal("4.50"),
        shipping_address=Address(line1="1 Main St", city="Lyon", postal_code="1", country="FR"),
    )


def payment() -> PaymentCaptured:
    return PaymentCaptured(
        payment_id=uuid.uuid4(),
        order_id=uuid.uuid4(),
        amount=Decimal("9.99"),
        currency="EUR",
        method=PaymentMethod.CARD,
        captured_at=datetime.now(UTC).replace(microsecond=0),
    )


def produce(bootstrap: str, topic: str, records: list[Sent]) -> list[Sent]:
    """Write records with their own timestamps; return them with partition and offset."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    placed: dict[int, Sent] = {}

    def delivered(index: int) -> Any:
        def callback(err: Any, msg: Message) -> None:
            assert err is None, err
            r = records[index]
            placed[index] = Sent(
                r.key, r.value, r.headers, r.timestamp, r.subject, r.customer,
                msg.partition(), msg.offset(),  # type: ignore[arg-type]
            )  # fmt: skip

        return callback

    for i, r in enumerate(records):
        producer.produce(
            topic, r.value, r.key, headers=list(r.headers), timestamp=r.timestamp,
            on_delivery=delivered(i),
        )  # fmt: skip
    assert producer.flush(30) == 0
    return [placed[i] for i in range(len(records))]


def end_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ops-test-watermarks"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def start_offsets(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "ops-test-watermarks"})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def run(bootstrap: str, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--bootstrap-servers", bootstrap, *args], input=input)


def run_json(bootstrap: str, *args: str) -> Any:
    result = run(bootstrap, *args, "-o", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def dead_letter(
    key: str,
    value: bytes | None,
    *,
    group: str,
    error_type: str,
    origin: tuple[str, int, int],
    attempts: int = 3,
) -> Sent:
    """A record exactly as the worker dead-letters it (the contract of consumers/)."""
    topic, partition, offset = origin
    headers = (
        (CE_TYPE, b"orders.OrderPlaced"),
        (ERROR_TYPE, error_type.encode()),
        (ERROR_MESSAGE, f"{error_type} while handling {key}".encode()),
        (ERROR_TRACE, b"Traceback (most recent call last):\n  ...\n"),
        (ATTEMPT, str(attempts).encode()),
        (ORIGINAL_TOPIC, topic.encode()),
        (ORIGINAL_PARTITION, str(partition).encode()),
        (ORIGINAL_OFFSET, str(offset).encode()),
        (ORIGINAL_TIMESTAMP, b"1700000000000"),
        (CONSUMER_GROUP, group.encode()),
        (FAILED_AT, datetime.now(UTC).isoformat().encode()),
    )
    return Sent(key.encode(), value or b"", headers, 0, "orders.OrderPlaced", None)
