"""The producer outbox on a real broker: kill -9 with records stored, then a restart drains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from pipeline import load_settings
from producers import DeliveryFuture, EventProducer
from tests.conftest import REPO
from tests.helpers import create_topic, free_port, read_topic

pytestmark = pytest.mark.kafka

STORED = 3_000
KEYS = 50

CHILD = textwrap.dedent(
    """
    import sys
    from prometheus_client import CollectorRegistry
    from pipeline import load_settings
    from producers import EventProducer

    path, port, topic, count, keys = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])
    producer = EventProducer(
        load_settings(bootstrap_servers=f"127.0.0.1:{port}"),  # nothing listens: Kafka is down
        registry=CollectorRegistry(),
        outbox=path,
        config={"message.timeout.ms": 1000},
    )
    futures = [
        producer.send_bytes(topic, str(i).encode(), key=f"k{i % keys}") for i in range(count)
    ]
    stored = sum(f.result(timeout=60).stored for f in futures)
    print(f"STORED {stored}", flush=True)
    sys.stdin.read()  # wait here, outbox open, until killed
    """
)


def order_and_duplicates(msgs: list[Message]) -> tuple[set[int], int]:
    """Every seq seen, and the duplicate count; asserts first sightings keep per-key order."""
    seen: dict[int, int] = defaultdict(int)
    last: dict[bytes, int] = {}
    for msg in sorted(msgs, key=lambda m: (m.partition(), m.offset())):
        seq = int(msg.value() or b"-1")
        seen[seq] += 1
        if seen[seq] > 1:
            continue  # a re-sent copy; its first copy was checked
        key = msg.key() or b""
        assert seq > last.get(key, -1), f"per-key order broken for {key!r} at {seq}"
        last[key] = seq
    return set(seen), sum(n - 1 for n in seen.values())


def test_kill_9_with_records_stored_then_restart_drains_all(
    tmp_path: Path, bootstrap_servers: str
) -> None:
    path = tmp_path / "outbox.db"
    topic = f"outbox-kill-{uuid.uuid4().hex[:8]}"
    with subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(free_port()), topic, str(STORED), str(KEYS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # librdkafka's refused connections
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    ) as child:
        try:
            assert child.stdout is not None
            line = child.stdout.readline()  # bounded: the child's own result(timeout=60)
            assert line.strip() == f"STORED {STORED}"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    create_topic(bootstrap_servers, topic, partitions=3)
    registry = CollectorRegistry()
    producer = EventProducer(
        load_settings(bootstrap_servers=bootstrap_servers), registry=registry, outbox=path
    )
    assert producer.outbox is not None
    assert producer.outbox.records == STORED  # everything the killed process stored survived
    # New sends of the same keys queue behind the stored records.
    later: list[DeliveryFuture] = []
    for i in range(STORED, STORED + 200):
        future = producer.send_bytes(topic, str(i).encode(), key=f"k{i % KEYS}")
        assert future is not None
        later.append(future)
    assert producer.outbox.drain(timeout=120) == 0
    assert producer.flush(60) == 0
    assert all(f.done() for f in later)
    drained = registry.get_sample_value("pipeline_producer_outbox_drained_total", {"topic": topic})
    assert drained == STORED + 200  # the later sends went through the outbox, behind
    assert registry.get_sample_value("pipeline_producer_outbox_records") == 0
    producer.close()

    msgs = read_topic(bootstrap_servers, topic, STORED + 200, timeout=60, idle=1.0)
    seen, duplicates = order_and_duplicates(msgs)
    assert seen == set(range(STORED + 200))  # 0 lost
    assert duplicates == 0  # nothing reached Kafka before the kill, so nothing is re-sent
