"""EventProducer.batch() against the real broker: delivery, per-key order, every failure listed."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from pipeline import (
    BatchDeliveryError,
    ConfigError,
    DeliveryError,
    ProduceError,
    QueueFullError,
    RecordTooLargeError,
    load_settings,
)
from pipeline._headers import CE_TYPE, get_header
from pipeline.avro._codec import Codec
from producers import EventProducer
from tests.helpers import create_topic, read_topic
from tests.integration.test_producer import order, unreachable_producer

pytestmark = pytest.mark.kafka


def sample(registry: CollectorRegistry, name: str, topic: str) -> float | None:
    return registry.get_sample_value(name, {"topic": topic})


def test_batch_delivers_typed_and_bytes_in_key_order(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    settings = load_settings(bootstrap_servers=bootstrap_servers)
    topic = unique("b-ok")
    create_topic(bootstrap_servers, topic, partitions=3)
    registry = CollectorRegistry()
    events = [order(customer=f"c-{i % 7}") for i in range(150)]
    with EventProducer(settings, registry=registry) as p:
        with p.batch() as batch:
            for i, event in enumerate(events):
                batch.send(event, key=event.customer_id, topic=topic)
                batch.send_bytes(
                    topic, f"{i}".encode(), key=f"raw-{i % 5}", headers={"x-seq": str(i)}
                )
        assert batch.queued == 300
        assert batch.sent == 300
        assert batch.failed == []
    assert sample(registry, "pipeline_producer_records_sent_total", topic) == 300

    records = read_topic(bootstrap_servers, topic, 300, idle=1.0)
    assert len(records) == 300
    codec = Codec.from_settings(settings)
    typed: dict[bytes, list[str]] = {}
    raw: dict[bytes, list[int]] = {}
    for msg in records:
        key = msg.key() or b""
        if key.startswith(b"raw-"):
            assert get_header(msg.headers(), "x-seq") == msg.value()
            raw.setdefault(key, []).append(int(msg.value() or b""))
        else:
            assert get_header(msg.headers(), CE_TYPE) == b"orders.OrderPlaced"
            decoded = codec.decode(msg.value() or b"", type(events[0]))
            typed.setdefault(key, []).append(str(decoded.order_id))
    for k, seqs in raw.items():  # each key's records arrive in the order they were sent
        assert seqs == sorted(seqs), k
    for k, ids in typed.items():
        sent = [str(e.order_id) for e in events if e.customer_id.encode() == k]
        assert ids == sent, k


def test_batch_lists_every_failed_record_with_its_bytes(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    settings = load_settings(bootstrap_servers=bootstrap_servers)
    ok_topic, small_topic = unique("b-fine"), unique("b-small")
    create_topic(bootstrap_servers, ok_topic)
    create_topic(bootstrap_servers, small_topic, max_message_bytes="2000")
    registry = CollectorRegistry()
    big = [os.urandom(5000) for _ in range(3)]  # incompressible; over the topic limit (2000)
    with EventProducer(settings, registry=registry) as p:
        batch = p.batch()
        for i in range(5):
            batch.send_bytes(ok_topic, b"small", key=f"k{i}")
        for i, value in enumerate(big):
            batch.send_bytes(small_topic, value, key=f"big{i}", headers=[("h", b"v")])
        with pytest.raises(BatchDeliveryError, match=r"3 of 8 record\(s\)") as raised:
            batch.wait()
    failed = raised.value.failed
    assert failed == batch.failed
    assert sorted(f.key or b"" for f in failed) == [b"big0", b"big1", b"big2"]
    for record in failed:
        assert record.topic == small_topic
        assert record.value == big[int((record.key or b"")[3:])]
        assert list(record.headers) == [("h", b"v")]
        assert isinstance(record.error, DeliveryError)
        assert "not delivered" in str(record.error)
    assert batch.sent == 5
    assert sample(registry, "pipeline_producer_records_sent_total", ok_topic) == 5
    assert sample(registry, "pipeline_producer_records_failed_total", small_topic) == 3
    assert len(read_topic(bootstrap_servers, ok_topic, 5, idle=0.5)) == 5


def test_batch_timeout_reports_records_it_could_not_deliver() -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:1")  # nothing listens there
    values = [uuid.uuid4().bytes for _ in range(5)]
    p = EventProducer(settings, registry=CollectorRegistry())
    batch = p.batch(timeout=0.5)
    for value in values:
        batch.send_bytes("t", value)
    with pytest.raises(BatchDeliveryError, match=r"5 of 5") as raised:
        batch.__exit__(None, None, None)  # what leaving a `with` block does
    assert sorted(f.value or b"" for f in raised.value.failed) == sorted(values)
    assert batch.sent == 0
    p.close(timeout=1)


def test_batch_rules() -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:1")
    transactional = EventProducer(settings, registry=CollectorRegistry(), transactional_id="t")
    with pytest.raises(ConfigError, match="not transactional"):
        transactional.batch()
    p = EventProducer(settings, registry=CollectorRegistry())
    first = p.batch()
    with pytest.raises(ConfigError, match="still open"):
        p.batch()
    first.wait()  # nothing queued: closes at once
    with pytest.raises(ProduceError, match="closed"):
        first.send_bytes("t", b"late")
    with p.batch() as second:  # a new batch may start once the first is closed
        assert second.queued == 0
    p.close(timeout=1)


def test_batch_body_error_wins_but_failures_are_still_listed() -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:1")
    p = EventProducer(settings, registry=CollectorRegistry())
    batch = p.batch(timeout=0.3)

    def body() -> None:
        with batch:
            batch.send_bytes("t", b"queued", key="k")
            raise KeyError("the caller's own bug")

    with pytest.raises(KeyError, match="own bug"):
        body()
    assert [(f.key, f.value) for f in batch.failed] == [(b"k", b"queued")]
    assert batch.closed
    p.close(timeout=1)


def test_batch_full_queue_blocks_then_raises_and_queued_records_are_listed() -> None:
    p = unreachable_producer()
    batch = p.batch(timeout=0.3)
    for i in range(3):
        batch.send_bytes("t", b"v", key=f"k{i}")
    with pytest.raises(QueueFullError, match=r"stayed full for 0\.3s"):
        batch.send_bytes("t", b"v", key="k3")
    with pytest.raises(RecordTooLargeError, match="over the producer limit"):
        batch.send_bytes("t", b"x" * 2_000_000)
    with pytest.raises(BatchDeliveryError, match="3 of 3"):
        batch.wait()
    assert sorted(f.key or b"" for f in batch.failed) == [b"k0", b"k1", b"k2"]
    p.close(timeout=0.2)
