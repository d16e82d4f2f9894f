"""P2: 50k records with acks=all and idempotence while the partition leader is kill -9'd 5 times.

Every acknowledged record is read exactly once, in per-key order, and every record that was not
acknowledged was reported to its caller (a failed future). Private 3-broker cluster (RF 3,
min.insync.replicas 2).
"""

from __future__ import annotations

import time
import uuid

import pytest
from prometheus_client import CollectorRegistry

from pipeline import DeliveryError, load_settings
from producers import DeliveryFuture, EventProducer
from tests.conftest import PrivateKafka
from tests.faults import LeaderBouncer, audit
from tests.helpers import create_topic, read_topic, wait_until

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS = 50_000
KEYS = 200
BOUNCES = 5
CHUNK = 500
CHUNK_EVERY_S = 1.2  # 100 chunks over 120 s at most, or faster once the bounces are over


def test_p2_produce_through_leader_bounces(private_kafka: PrivateKafka) -> None:
    bootstrap = private_kafka.up(3)
    topic = f"p2-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=1)
    producer = EventProducer(
        load_settings(bootstrap_servers=bootstrap), registry=CollectorRegistry()
    )
    warm = producer.send_bytes(topic, b"-1", key=b"warm")
    assert warm is not None
    warm.result(timeout=60)
    futures: list[DeliveryFuture] = []
    sent_at_kill: list[int] = []
    bouncer = LeaderBouncer(
        private_kafka,
        topic,
        times=BOUNCES,
        gap=1.0,
        before_kill=lambda _: sent_at_kill.append(len(futures)),
    ).start()
    started = time.monotonic()
    for seq in range(RECORDS):
        future = producer.send_bytes(topic, str(seq).encode(), key=f"key-{seq % KEYS}")
        assert future is not None
        futures.append(future)
        if seq % CHUNK == CHUNK - 1:  # paces the sends across the bounces; it waits for nothing
            due = started + CHUNK_EVERY_S * (seq + 1) / CHUNK
            while not bouncer.done and time.monotonic() < due:
                time.sleep(0.05)
    killed = bouncer.join(timeout=600)
    wait_until(lambda: producer.flush(1) == 0 and all(f.done() for f in futures), timeout=300)
    producer.close()
    errors = [f.exception(timeout=0) for f in futures]
    failed = {seq for seq, e in enumerate(errors) if e is not None}
    assert all(isinstance(e, DeliveryError) for e in errors if e is not None), {
        type(e).__name__ for e in errors if e is not None
    }
    acked = set(range(RECORDS)) - failed
    msgs = read_topic(bootstrap, topic, len(acked) + 1, timeout=180, idle=3.0)
    pairs = [
        (m.key() or b"", int(m.value() or b"-1"))
        for m in sorted(msgs, key=lambda m: m.offset())
        if m.key() != b"warm"
    ]
    figures = audit(pairs, acked)
    print(
        figures.line(
            "P2",
            sent=RECORDS,
            acked=len(acked),
            failed_reported=len(failed),
            failed_but_written=figures.unexpected,
            leaders_killed=killed,
            sent_at_each_kill=sent_at_kill,
        )
    )
    assert len(killed) == BOUNCES
    assert all(0 < n < RECORDS for n in sent_at_kill)  # every kill hit the stream mid-way
    assert all(f.done() for f in futures)  # every send resolved: acked, or failed to its caller
    assert figures.lost == 0
    assert figures.duplicates == 0
    assert figures.order_violations == 0
