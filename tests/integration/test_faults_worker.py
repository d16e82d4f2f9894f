"""C4 and T2: workers consuming while the partition leader is kill -9'd 5 times and restarted.

The input is produced during the bounces (so the workers are busy when the leader dies); the
verifier reads the OUTPUT topic the workers write (tests.workers.transformer), independent of
any worker counter. Private 3-broker cluster (RF 3, min.insync.replicas 2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client import CollectorRegistry

from consumers import ensure_worker_topics
from examples.orders.events import ReminderDue
from producers import DeliveryFuture, EventProducer
from tests.conftest import PrivateKafka
from tests.faults import LeaderBouncer, audit, send_paced
from tests.helpers import read_topic
from tests.integration.test_worker_procs import Proc, worker_proc
from tests.integration.test_worker_support import create_topics, reminder, settings_for

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

KEYS = 200
RECORDS = 20_000
BOUNCES = 5
PARTITIONS = 3
MAX_IN_FLIGHT = 2000  # the worker default (PIPELINE_WORKER_MAX_IN_FLIGHT)
TRANSFORMER = "tests.workers.transformer:app"


def _written_not_committed(bootstrap: str, group: str, topic: str, output: str) -> int:
    """Records on the output topic minus input offsets the group has committed: what a worker
    could write again if it lost its position now (the in-flight window at a crash)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        written = sum(
            consumer.get_watermark_offsets(TopicPartition(output, p), timeout=10)[1]
            for p in range(PARTITIONS)
        )
        parts = consumer.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], 10)
        return max(0, written - sum(max(tp.offset, 0) for tp in parts))
    except Exception:  # the leader is moving: no sample this time; the bound stays conservative
        return MAX_IN_FLIGHT
    finally:
        consumer.close()


def _run(
    private_kafka: PrivateKafka,
    unique: Callable[[str], str],
    tmp_path: Path,
    workers: int,
    *extra: str,
) -> tuple[list[tuple[bytes, int]], set[int], list[int], list[int]]:
    """Bounce the input's leader while ``workers`` transformers run; return what the verifier
    read (key, seq), the acknowledged input seqs, the killed nodes and the in-flight samples."""
    bootstrap = private_kafka.up(3)
    topic, output, group = unique("flt-in"), unique("flt-out"), unique("flt-g")
    create_topics(bootstrap, [topic, output], partitions=PARTITIONS)
    ensure_worker_topics(settings_for(bootstrap), group, partitions=1)
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
        "PIPELINE_CONSUMER__SESSION__TIMEOUT__MS": "6000",
        "WORKER_GROUP": group,
        "WORKER_TOPIC": topic,
        "WORKER_OUTPUT_TOPIC": output,
    }
    procs: list[Proc] = [
        worker_proc(TRANSFORMER, tmp_path / f"w{i}.log", env, "--concurrency", "2", *extra)
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    samples: list[int] = []
    producer = EventProducer(settings_for(bootstrap), registry=CollectorRegistry())
    try:
        bouncer = LeaderBouncer(
            private_kafka,
            topic,
            times=BOUNCES,
            gap=1.0,
            before_kill=lambda _: samples.append(
                _written_not_committed(bootstrap, group, topic, output)
            ),
        ).start()

        def send(seq: int) -> DeliveryFuture:
            key = f"k{seq % KEYS}"
            return producer.send(reminder(key, seq), key=key, topic=topic)

        futures = send_paced(send, RECORDS, bouncer, chunk=200, every=1.0)
        killed = bouncer.join(timeout=600)
        producer.flush(120)
        acked = {
            seq
            for seq, f in enumerate(futures)
            if isinstance(f, DeliveryFuture) and f.done() and f.exception(timeout=0) is None
        }
        records = read_topic(
            bootstrap, output, len(acked), timeout=300, read_committed=True, idle=5.0
        )
        for proc in procs:
            assert proc.alive(), f"a worker exited; see {proc.log}"
    finally:
        producer.close()
        for proc in procs:
            if proc.alive():
                proc.terminate()
    codec = EventProducer(settings_for(bootstrap), registry=CollectorRegistry()).codec
    pairs = [
        (m.key() or b"", codec.decode(m.value() or b"", ReminderDue).attempt)
        for m in sorted(records, key=lambda m: (m.partition(), m.offset()))
    ]
    return pairs, acked, killed, samples


def test_c4_three_workers_through_leader_bounces(
    private_kafka: PrivateKafka, unique: Callable[[str], str], tmp_path: Path
) -> None:
    pairs, acked, killed, samples = _run(private_kafka, unique, tmp_path, 3)
    figures = audit(pairs, acked)
    bound = sum(samples) + BOUNCES * MAX_IN_FLIGHT
    print(
        figures.line(
            "C4",
            acked_input=len(acked),
            leaders_killed=killed,
            written_not_committed_at_each_kill=samples,
            duplicate_bound=bound,
        )
    )
    assert len(killed) == BOUNCES
    assert figures.lost == 0
    assert figures.duplicates <= bound
    assert figures.order_violations == 0


def test_t2_exactly_once_worker_through_leader_bounces(
    private_kafka: PrivateKafka, unique: Callable[[str], str], tmp_path: Path
) -> None:
    # A stable instance id gives a stable transactional id. Not --static: a static member is
    # fenced by its own group.instance.id when the group coordinator moves, a fatal consumer
    # error (librdkafka#3437, apache/kafka#23542; README "Fault tests").
    pairs, acked, killed, _ = _run(
        private_kafka, unique, tmp_path, 1, "--exactly-once", "--instance-id", "t2-eos"
    )
    figures = audit(pairs, acked)
    print(figures.line("T2", acked_input=len(acked), leaders_killed=killed))
    assert len(killed) == BOUNCES
    assert figures.lost == 0
    assert figures.duplicates == 0
    assert figures.order_violations == 0
