"""EventProducer against the real broker: partitioning, headers, futures, errors, transactions."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from examples.orders.events import Address, LineItem, OrderPlaced
from pipeline import (
    ConfigError,
    DeliveryError,
    EncodeError,
    QueueFullError,
    RecordTooLargeError,
    UndeliveredRecordsError,
    load_settings,
)
from pipeline._headers import CE_ID, CE_SOURCE, CE_SPECVERSION, CE_TIME, CE_TYPE, get_header
from pipeline.avro._codec import Codec
from producers import AsyncEventProducer, DeliveryResult, EventProducer
from tests.helpers import create_topic, read_topic
from tests.integration.test_lag_support import kafka_jars

pytestmark = pytest.mark.kafka


def order(note: str | None = None, customer: str = "c-1") -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id=customer,
        placed_at=datetime.now(UTC).replace(microsecond=0),
        items=[LineItem(sku="sku-1", quantity=2, unit_price=Decimal("9.99"))],
        total=Decimal("19.98"),
        shipping_address=Address(line1="1 Main St", city="Lyon", postal_code="69001", country="FR"),
        note=note,
    )


def murmur2(data: bytes) -> int:
    """Kafka's Java ``Utils.murmur2`` (seed 0x9747b28c), written out independently."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = length % 4
    tail = length - rest
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def java_partition(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


@pytest.fixture
def settings(bootstrap_servers: str):  # type: ignore[no-untyped-def]
    return load_settings(bootstrap_servers=bootstrap_servers)


@pytest.fixture
def producer(settings) -> Iterator[EventProducer]:  # type: ignore[no-untyped-def]
    with EventProducer(settings, registry=CollectorRegistry()) as p:
        yield p


def test_murmur2_helper_matches_known_java_values() -> None:
    # Values from Kafka's UtilsTest.testMurmur2 (org.apache.kafka.common.utils).
    assert murmur2(b"21") == 0xFFFFFFFF & -973932308
    assert murmur2(b"foobar") == 0xFFFFFFFF & -790332482
    assert murmur2(b"a-little-bit-long-string") == 0xFFFFFFFF & -985981536


def test_key_partition_matches_java_client(
    bootstrap_servers: str, unique: Callable[[str], str], producer: EventProducer
) -> None:
    topic = unique("p-murmur")
    create_topic(bootstrap_servers, topic, partitions=6)
    keys = [f"order-{i}" for i in range(60)]
    futures = [producer.send(order(), key=k, topic=topic) for k in keys]
    for key, future in zip(keys, futures, strict=True):
        assert future is not None
        result = future.result(timeout=30)
        assert result.topic == topic
        assert result.partition == java_partition(key.encode(), 6), key


def test_key_partition_matches_the_java_producer(
    bootstrap_servers: str, unique: Callable[[str], str], producer: EventProducer
) -> None:
    """The same keys, sent by Kafka's own Java console producer and by ours, land alike."""
    java_topic, our_topic = unique("p-java"), unique("p-ours")
    for topic in (java_topic, our_topic):
        create_topic(bootstrap_servers, topic, partitions=6)
    keys = [f"customer-{i}" for i in range(40)]
    proc = subprocess.run(
        [
            "java", "-Xmx256m", "-cp", kafka_jars(), "org.apache.kafka.tools.ConsoleProducer",
            "--bootstrap-server", bootstrap_servers, "--topic", java_topic,
            "--reader-property", "parse.key=true", "--reader-property", "key.separator=:",
        ],
        input="".join(f"{k}:v\n" for k in keys),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    java = {m.key(): m.partition() for m in read_topic(bootstrap_servers, java_topic, len(keys))}
    futures = [producer.send(order(), key=k, topic=our_topic) for k in keys]
    ours = {}
    for key, future in zip(keys, futures, strict=True):
        assert future is not None
        ours[key.encode()] = future.result(timeout=30).partition
    assert ours == java
    assert len(set(java.values())) > 1  # the keys spread over partitions: a real comparison


def test_headers_and_round_trip(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    topic = unique("p-headers")
    create_topic(bootstrap_servers, topic)
    event = order(note="with headers")
    with EventProducer(settings, source="orders-svc", registry=CollectorRegistry()) as p:
        future = p.send(event, key=lambda e: e.customer_id, topic=topic, headers={"x-team": "a"})
        assert future is not None
        offset = future.result(timeout=30).offset
    (msg,) = read_topic(bootstrap_servers, topic, 1)
    assert msg.offset() == offset
    assert msg.key() == b"c-1"
    headers = msg.headers()
    assert get_header(headers, CE_SPECVERSION) == b"1.0"
    assert uuid.UUID((get_header(headers, CE_ID) or b"").decode()).version == 4
    assert get_header(headers, CE_SOURCE) == b"orders-svc"
    assert get_header(headers, CE_TYPE) == b"orders.OrderPlaced"
    sent_at = datetime.fromisoformat((get_header(headers, CE_TIME) or b"").decode())
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert get_header(headers, "content-type") == b"application/avro"
    assert get_header(headers, "x-team") == b"a"
    decoded = Codec.from_settings(settings).decode(msg.value() or b"", OrderPlaced)
    assert decoded == event


def test_context_manager_flushes_on_exit(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    topic = unique("p-flush")
    create_topic(bootstrap_servers, topic, partitions=3)
    registry = CollectorRegistry()
    with EventProducer(settings, registry=registry, config={"linger.ms": 1000}) as p:
        futures = p.send_many(
            [order() for _ in range(200)], key=lambda e: str(e.order_id), topic=topic
        )
        assert not all(f.done() for f in futures)  # lingering: nothing sent yet
    assert all(f.done() and f.exception() is None for f in futures)
    assert len(read_topic(bootstrap_servers, topic, 200, idle=0.5)) == 200
    sent = registry.get_sample_value("pipeline_producer_records_sent_total", {"topic": topic})
    assert sent == 200


def test_validation_and_encoding_errors_raise_before_queueing(producer: EventProducer) -> None:
    with pytest.raises(ConfigError, match="takes a pipeline Event"):
        producer.send({"order_id": "x"}, topic="t")  # type: ignore[arg-type]
    bad = OrderPlaced.model_construct(**{**order().__dict__, "customer_id": 42})
    with pytest.raises(EncodeError, match="customer_id"):
        producer.send(bad, topic="t")
    with pytest.raises(ConfigError, match="deliver_at or delay"):
        producer.send(order(), topic="t", delay=timedelta(1), deliver_at=datetime.now(UTC))
    with pytest.raises(ConfigError, match="timezone-aware"):
        producer.send(order(), topic="t", deliver_at=datetime.now())
    assert len(producer) == 0


def test_oversize_record_names_size_and_limit(settings) -> None:  # type: ignore[no-untyped-def]
    p = EventProducer(settings, registry=CollectorRegistry(), config={"message.max.bytes": 10_000})
    with pytest.raises(RecordTooLargeError, match=r"is \d+ bytes, over .*message.max.bytes=10000"):
        p.send(order(note="x" * 20_000), topic="anything")
    assert len(p) == 0
    p.close()


def test_delivery_failure_fails_the_future(
    producer: EventProducer, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    p = EventProducer(settings, registry=CollectorRegistry(), config={"message.timeout.ms": 3000})
    future = p.send(order(), topic=unique("p-missing"))  # auto-create is off: no such topic
    assert future is not None
    with pytest.raises(DeliveryError, match="not delivered"):
        future.result(timeout=30)
    p.close()


def test_close_reports_undelivered_records() -> None:
    settings = load_settings(bootstrap_servers="127.0.0.1:1")  # nothing listens there
    p = EventProducer(settings, registry=CollectorRegistry())
    futures = [p.send(order(), topic="t") for _ in range(5)]
    with pytest.raises(UndeliveredRecordsError, match="5 record"):
        p.close(timeout=0.5)
    for future in futures:
        assert future is not None
        assert isinstance(future.exception(timeout=5), DeliveryError)


def unreachable_producer(max_block: float = 0.3, queue: int = 3) -> EventProducer:
    """A producer whose broker never answers and whose local queue holds ``queue`` records."""
    settings = load_settings(bootstrap_servers="127.0.0.1:1")  # nothing listens there
    return EventProducer(
        settings,
        registry=CollectorRegistry(),
        max_block=max_block,
        config={"queue.buffering.max.messages": queue},
    )


def test_full_queue_blocks_then_raises() -> None:
    p = unreachable_producer()
    for _ in range(3):
        p.send(order(), topic="t")
    with pytest.raises(QueueFullError, match=r"stayed full for 0\.3s"):
        p.send(order(), topic="t")
    with pytest.raises(UndeliveredRecordsError):
        p.close(timeout=0.2)


def test_delayed_send_writes_the_scheduler_record(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    scheduler = unique("p-sched")
    create_topic(bootstrap_servers, scheduler)
    due = datetime.now(UTC) + timedelta(minutes=5)
    with EventProducer(settings, registry=CollectorRegistry(), scheduler_topic=scheduler) as p:
        a = p.send(order(), key="k1", topic="orders.later", deliver_at=due)
        b = p.send(order(), key="k2", topic="orders.later", delay=timedelta(seconds=30))
        assert a is not None
        assert b is not None
        assert a.result(timeout=30).topic == scheduler
    msgs = read_topic(bootstrap_servers, scheduler, 2)
    by_key = {m.key(): m.headers() for m in msgs}
    assert get_header(by_key[b"k1"], "pipeline-target-topic") == b"orders.later"
    assert (
        get_header(by_key[b"k1"], "pipeline-deliver-at")
        == str(int(due.timestamp() * 1000)).encode()
    )
    later = int(get_header(by_key[b"k2"], "pipeline-deliver-at") or b"0")
    expected = (datetime.now(UTC) + timedelta(seconds=30)).timestamp() * 1000
    assert abs(later - expected) < 10_000
    assert get_header(by_key[b"k2"], CE_TYPE) == b"orders.OrderPlaced"  # original headers kept


def test_transaction_commit_visible_abort_not(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    first, second = unique("p-tx-a"), unique("p-tx-b")
    create_topic(bootstrap_servers, first)
    create_topic(bootstrap_servers, second)
    with EventProducer(settings, registry=CollectorRegistry(), transactional_id=unique("tx")) as p:
        with p.transaction():
            p.send(order(note="committed"), topic=first)
            p.send(order(note="committed"), topic=second)
        with pytest.raises(RuntimeError, match="boom"):
            _abort_after_sending(p, first, second)
    codec = Codec.from_settings(settings)
    for topic in (first, second):
        msgs = read_topic(bootstrap_servers, topic, 1, read_committed=True, idle=1.0)
        notes = [codec.decode(m.value() or b"", OrderPlaced).note for m in msgs]
        assert notes == ["committed"]
        # The aborted records were written, just never visible to read_committed readers.
        assert len(read_topic(bootstrap_servers, topic, 2, idle=0.5)) == 2


def _abort_after_sending(p: EventProducer, *topics: str) -> None:
    with p.transaction():
        for topic in topics:
            p.send(order(note="aborted"), topic=topic)
        p.flush()
        raise RuntimeError("boom")


def test_transaction_needs_transactional_id(producer: EventProducer) -> None:
    with pytest.raises(ConfigError, match="transactional_id"), producer.transaction():
        pass


def test_async_producer_batches_wakeups(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    topic = unique("p-async")
    create_topic(bootstrap_servers, topic, partitions=2)

    async def main() -> tuple[int, int]:
        async with AsyncEventProducer(settings=settings, registry=CollectorRegistry()) as ap:
            pending = [ap.queue(order(), key=str(i), topic=topic) for i in range(500)]
            results = await asyncio.gather(*pending)
            one = await ap.send(order(), key="last", topic=topic)
            assert one.topic == topic
            return len({(r.partition, r.offset) for r in results}), ap.wakeups

    distinct, wakeups = asyncio.run(main())
    assert distinct == 500
    assert wakeups < 100  # one wake-up per delivery batch, not one per record


def test_async_send_many_returns_results_in_order(
    bootstrap_servers: str, unique: Callable[[str], str], settings
) -> None:  # type: ignore[no-untyped-def]
    topic = unique("p-async-many")
    create_topic(bootstrap_servers, topic, partitions=3)
    events = [order(note=f"n{i}") for i in range(300)]

    async def main() -> tuple[list[DeliveryResult], list[DeliveryResult]]:
        async with AsyncEventProducer(settings=settings, registry=CollectorRegistry()) as ap:
            results = await ap.send_many(events, key=lambda e: e.customer_id, topic=topic)
            empty = await ap.send_many([], topic=topic)
            return results, empty

    results, empty = asyncio.run(main())
    assert empty == []
    assert len(results) == 300
    assert len({(r.partition, r.offset) for r in results}) == 300
    msgs = read_topic(bootstrap_servers, topic, 300)
    by_place = {(m.partition(), m.offset()): m.value() for m in msgs}
    codec = Codec.from_settings(settings, [OrderPlaced])
    for event, result in zip(events, results, strict=True):  # result i is event i's record
        assert result.topic == topic
        assert codec.decode(by_place[(result.partition, result.offset)]) == event
