"""Producer crash test: the broker is kill -9ed mid-stream; nothing acknowledged is lost."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from prometheus_client import CollectorRegistry

from pipeline import load_settings
from pipeline._codec import Codec
from pipeline._demo_events import Address, LineItem, OrderPlaced
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


def test_broker_killed_mid_stream_loses_nothing_acknowledged(
    private_kafka: PrivateKafka,
) -> None:
    bootstrap = private_kafka.up(brokers=1)
    topic = "crash-" + uuid.uuid4().hex[:8]
    create_topic(bootstrap, topic, partitions=4)
    settings = load_settings(bootstrap_servers=bootstrap)
    producer = EventProducer(
        settings,
        registry=CollectorRegistry(),
        max_block=120,
        config={"message.timeout.ms": 120_000, "queue.buffering.max.messages": 20_000},
    )
    futures: list[tuple[int, DeliveryFuture]] = []

    def kill_and_restart() -> None:
        wait_until(lambda: len(futures) > EVENTS // 3, timeout=120)
        (pid,) = private_kafka.pids().values()
        os.kill(pid, signal.SIGKILL)
        time.sleep(2)  # the broker stays down for a while: this is the fault, not a wait
        private_kafka.up(brokers=1)

    chaos = threading.Thread(target=kill_and_restart)
    chaos.start()
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

    codec = Codec.from_settings(settings)
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
