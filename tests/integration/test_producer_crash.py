"""Producer crash test: the broker is kill -9ed mid-stream; nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from examples.orders.events import Address, LineItem, OrderPlaced
from pipeline import BatchDeliveryError, load_settings
from pipeline.avro._codec import Codec
from producers import DeliveryFuture, EventProducer
from tests.conftest import PrivateKafka
from tests.helpers import create_topic, read_topic, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 50_000
KEYS = 200


def _event(seq: int) -> OrderPlaced:
    return OrderPlaced(
        order_id=uuid.uuid4(),
        customer_id=f"c-{seq % KEYS}",
        placed_at=datetime.now(UTC).replace(microsecond=0),
        items=[LineItem(sku="s", quantity=1, unit_price=Decimal("1.00"))],
        total=Decimal("1.00"),
        shipping_address=Address(line1="1", city="c", postal_code="p", country="FR"),
        note=str(seq),
    )


def _producer(
    private_kafka: PrivateKafka, timeout_ms: int = 120_000
) -> tuple[str, str, EventProducer]:
    bootstrap = private_kafka.up(brokers=1)
    topic, warm_topic = "crash-" + uuid.uuid4().hex[:8], "warm-" + uuid.uuid4().hex[:8]
    create_topic(bootstrap, topic, partitions=4)
    create_topic(bootstrap, warm_topic)
    producer = EventProducer(
        load_settings(bootstrap_servers=bootstrap),
        registry=CollectorRegistry(),
        max_block=120,
        config={"message.timeout.ms": timeout_ms, "queue.buffering.max.messages": 20_000},
    )
    warm = producer.send(_event(-1), topic=warm_topic)  # the cluster answers before the stream
    assert warm is not None
    warm.result(timeout=60)
    # The bulk client of batch() is a second client with its own connection and idempotent
    # producer id: cold, it could still be waiting for that id when the broker is killed, and
    # then not one record of the batch is delivered. Warm it too.
    with producer.batch(timeout=60) as warm_batch:
        warm_batch.send(_event(-1), topic=warm_topic)
    return bootstrap, topic, producer


def _chaos(private_kafka: PrivateKafka, sent: Callable[[], int]) -> threading.Thread:
    """kill -9 the broker once a third of the events are sent, then restart it."""

    def kill_and_restart() -> None:
        wait_until(lambda: sent() > EVENTS // 3, timeout=120)
        (pid,) = private_kafka.pids().values()
        os.kill(pid, signal.SIGKILL)
        time.sleep(2)  # the broker stays down for a while: this is the fault, not a wait
        private_kafka.up(brokers=1)

    chaos = threading.Thread(target=kill_and_restart)
    chaos.start()
    return chaos


@pytest.mark.parametrize("timeout_ms", [120_000, 3_000], ids=["outlasts-outage", "times-out"])
def test_broker_killed_mid_stream_loses_nothing_acknowledged(
    private_kafka: PrivateKafka, timeout_ms: int
) -> None:
    bootstrap, topic, producer = _producer(private_kafka, timeout_ms)
    futures: list[tuple[int, DeliveryFuture]] = []
    chaos = _chaos(private_kafka, lambda: len(futures))
    for seq in range(EVENTS):
        event = _event(seq)
        future = producer.send(event, key=event.customer_id, topic=topic)
        assert future is not None
        futures.append((seq, future))
    chaos.join(timeout=300)
    producer.flush(150)
    producer.close(30)

    ok = {seq for seq, f in futures if f.exception(timeout=0) is None}
    failed = [(seq, f.exception(timeout=0)) for seq, f in futures if seq not in ok]
    print(f"acknowledged {len(ok)}, failed (reported) {len(failed)}")
    assert len(ok) + len(failed) == EVENTS  # every send has an outcome
    _check_outcomes(timeout_ms, len(ok), len(failed))
    _check_topic(bootstrap, topic, producer.codec, ok)


@pytest.mark.parametrize("timeout_ms", [120_000, 3_000], ids=["outlasts-outage", "times-out"])
def test_broker_killed_mid_batch_lists_every_failure(
    private_kafka: PrivateKafka, timeout_ms: int
) -> None:
    bootstrap, topic, producer = _producer(private_kafka, timeout_ms)
    sent = 0
    chaos = _chaos(private_kafka, lambda: sent)
    batch = producer.batch(timeout=150)
    for seq in range(EVENTS):
        event = _event(seq)
        batch.send(event, key=event.customer_id, topic=topic)
        sent += 1
    chaos.join(timeout=300)
    with contextlib.suppress(BatchDeliveryError):  # raised only if some failed: batch.failed
        batch.wait()
    producer.close(30)

    codec = producer.codec
    failed = {int(codec.decode(f.value or b"", OrderPlaced).note or "-1") for f in batch.failed}
    assert len(failed) == len(batch.failed)  # each failure names one distinct event
    print(f"delivered {batch.sent}, failed (listed) {len(failed)}")
    _check_outcomes(timeout_ms, batch.sent, len(failed))
    assert batch.sent + len(failed) == EVENTS  # every record has an outcome
    _check_topic(bootstrap, topic, codec, set(range(EVENTS)) - failed)


def _check_outcomes(timeout_ms: int, delivered: int, failed: int) -> None:
    """Records sent before the kill are delivered; with a short timeout, the outage fails some."""
    assert delivered > 0
    if timeout_ms < 10_000:  # the broker is down for longer (2 s, then a JVM start)
        assert failed > 0
    else:
        assert failed == 0


def _check_topic(bootstrap: str, topic: str, codec: Codec, ok: set[int]) -> None:
    """Every event in ``ok`` is in the topic exactly once, each key's events in send order."""
    msgs = read_topic(bootstrap, topic, len(ok), timeout=120, read_committed=True, idle=2.0)
    seen: dict[int, int] = defaultdict(int)
    last_by_key: dict[bytes, int] = {}
    for msg in sorted(msgs, key=lambda m: (m.partition(), m.offset())):
        seq = int(codec.decode(msg.value() or b"", OrderPlaced).note or "-1")
        seen[seq] += 1
        key = msg.key() or b""
        assert seq > last_by_key.get(key, -1), f"per-key order broken for {key!r}"
        last_by_key[key] = seq
    assert {s for s, n in seen.items() if n > 1} == set()  # idempotence: no duplicates
    assert ok <= set(seen)  # every acknowledged event is there exactly once
