"""Outage test: 20k events, 200 keys, the broker stopped for 30 s mid-stream, then started.

With the outbox every send resolves delivered or stored, nothing is lost, per-key order holds,
and duplicates stay under the stated bound. Without it, the same run reports failures.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from pipeline import DeliveryError, load_settings
from producers import DeliveryFuture, EventProducer
from tests.conftest import PrivateKafka
from tests.helpers import create_topic, read_topic, wait_until
from tests.integration.test_outbox import order_and_duplicates

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

EVENTS = 20_000
KEYS = 200
OUTAGE_S = 30.0
BEFORE, DURING = 7_000, 6_000  # sent before the stop, and paced across the outage


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _send(producer: EventProducer, topic: str, seq: int) -> DeliveryFuture:
    future = producer.send_bytes(topic, str(seq).encode(), key=f"key-{seq % KEYS}")
    assert future is not None
    return future


def _run(
    private_kafka: PrivateKafka, outbox: Path | None
) -> tuple[str, str, list[DeliveryFuture], int, EventProducer]:
    """Send the stream across the outage; return the futures and the unacked count at the stop."""
    bootstrap = private_kafka.up(brokers=1)
    topic = f"outage-{uuid.uuid4().hex[:8]}"
    create_topic(bootstrap, topic, partitions=4)
    producer = EventProducer(
        load_settings(bootstrap_servers=bootstrap),
        registry=CollectorRegistry(),
        outbox=outbox,
        config={"message.timeout.ms": 5_000},  # shorter than the outage: live sends time out
    )
    warm = producer.send_bytes(topic, b"-1", key=b"warm")  # connected before the clock starts
    assert warm is not None
    assert not warm.result(timeout=60).stored
    futures = [_send(producer, topic, seq) for seq in range(BEFORE)]
    (pid,) = private_kafka.pids().values()
    unacked_at_stop = sum(not f.done() for f in futures)
    os.kill(pid, signal.SIGTERM)
    stopped = time.monotonic()
    wait_until(lambda: not _alive(pid), timeout=60)
    for i, seq in enumerate(range(BEFORE, BEFORE + DURING)):  # paced over the outage
        futures.append(_send(producer, topic, seq))
        if i % 200 == 199:  # the fault lasts OUTAGE_S: this paces sends, it waits for nothing
            time.sleep(max(0.0, stopped + OUTAGE_S * (i + 1) / DURING - time.monotonic()))
    private_kafka.up(brokers=1)
    futures.extend(_send(producer, topic, seq) for seq in range(BEFORE + DURING, EVENTS))
    wait_until(lambda: producer.flush(1) == 0 and all(f.done() for f in futures), timeout=180)
    return bootstrap, topic, futures, unacked_at_stop, producer


def test_outage_with_outbox_loses_nothing(private_kafka: PrivateKafka, tmp_path: Path) -> None:
    bootstrap, topic, futures, unacked_at_stop, producer = _run(private_kafka, tmp_path / "ob.db")
    results = [f.result(timeout=0) for f in futures]  # raises if any send failed
    stored = sum(r.stored for r in results)
    assert producer.outbox is not None
    assert producer.outbox.drain(timeout=240) == 0
    failed_attempts = sum(producer.outbox._metrics.failed_count.values())
    producer.close()
    msgs = read_topic(bootstrap, topic, EVENTS + 1, timeout=120, idle=2.0)
    seen, duplicates = order_and_duplicates([m for m in msgs if m.key() != b"warm"])
    bound = unacked_at_stop + failed_attempts
    print(
        f"delivered {EVENTS - stored}, stored {stored}, lost {len(set(range(EVENTS)) - seen)}, "
        f"duplicates {duplicates} (bound {bound}: {unacked_at_stop} unacknowledged at the stop "
        f"+ {failed_attempts} failed send-back attempts)"
    )
    assert stored >= DURING  # the outage went to the outbox
    assert seen >= set(range(EVENTS))  # 0 lost
    assert duplicates <= bound


def test_outage_without_outbox_reports_failures(private_kafka: PrivateKafka) -> None:
    bootstrap, topic, futures, _, producer = _run(private_kafka, None)
    producer.close()
    errors = [f.exception(timeout=0) for f in futures]
    failed = {seq for seq, e in enumerate(errors) if e is not None}
    assert all(isinstance(e, DeliveryError) for e in errors if e is not None)
    print(f"delivered {EVENTS - len(failed)}, failed (reported) {len(failed)}")
    # The contrast: most of the outage's sends fail (those sent in its last message.timeout.ms
    # may still be delivered once the broker is back).
    assert len(failed) >= DURING // 2
    msgs = read_topic(bootstrap, topic, EVENTS - len(failed), timeout=120, idle=2.0)
    seen, _ = order_and_duplicates([m for m in msgs if m.key() != b"warm"])
    assert seen >= set(range(EVENTS)) - failed  # every send not reported failed is there
