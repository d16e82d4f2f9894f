"""S4: the scheduler while the leader of its topic is kill -9'd 5 times and restarted.

Records due 5-60 s ahead go through the scheduler's tiers to a target topic; a read_committed
collector records when each arrives. 0 lost, 0 early (by arrival time and by the scheduler's
delivered-at header). Private 3-broker cluster (RF 3, min.insync.replicas 2).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest
from confluent_kafka import Producer

from pipeline._delay import scheduled_headers
from pipeline._headers import DELIVERED_AT, get_header
from pipeline.scheduler._records import SchedulerConfig
from tests.conftest import PrivateKafka
from tests.faults import LeaderBouncer
from tests.integration.test_scheduler_support import Collector, now_ms, running, setup

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(900)]

RECORDS = 10_000
BOUNCES = 5


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_s4_scheduler_through_leader_bounces(
    private_kafka: PrivateKafka, unique: Callable[[str], str], exactly_once: bool
) -> None:
    servers = private_kafka.up(3)
    base = unique("s4")
    config = SchedulerConfig(
        topic=base, dlq_topic=f"{base}.dlq", group=base, instance_id="fixed",
        tiers=("1s", "5s", "30s"), exactly_once=exactly_once,
    )  # fmt: skip
    target = f"{base}-target"
    setup(servers, config, [target], partitions=3)
    collector = Collector(servers, [target], unique("s4-reader"))
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20, "acks": "all"})
    rng = random.Random(16)
    for i in range(RECORDS):
        due = now_ms() + rng.randint(5_000, 60_000)
        headers = [("x-due", str(due).encode()), *scheduled_headers(target, due)]
        producer.produce(config.topic, key=f"k{i % 997}".encode(), value=str(i).encode(),
                         headers=headers)  # fmt: skip
        producer.poll(0)
    assert producer.flush(60) == 0
    with running(servers, config):
        bouncer = LeaderBouncer(private_kafka, config.topic, times=BOUNCES, gap=2.0).start()
        deadline = time.monotonic() + 360
        while time.monotonic() < deadline:
            collector.poll(0.5)
            if bouncer.done and len({r.value for r in collector.records}) >= RECORDS:
                break
        killed = bouncer.join(timeout=60)
        collector.poll(5.0)  # late duplicates, if any, show up too
    collector.close()
    counts = Counter(int(r.value or b"-1") for r in collector.records)
    lost = len(set(range(RECORDS)) - set(counts))
    duplicates = sum(c - 1 for c in counts.values())
    early = sum(
        1
        for r in collector.records
        if r.at_ms < int(get_header(r.headers, "x-due"))
        or int(get_header(r.headers, DELIVERED_AT)) < int(get_header(r.headers, "x-due"))
    )
    mode = "exactly-once" if exactly_once else "at-least-once"
    print(
        f"\nS4 [{mode}]: scheduled {RECORDS}, read {len(collector.records)}, lost {lost}, "
        f"early {early}, duplicates {duplicates}, leaders killed {killed}"
    )
    assert len(killed) == BOUNCES
    assert lost == 0
    assert early == 0
    if exactly_once:
        assert duplicates == 0
