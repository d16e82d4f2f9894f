"""Worker on the real broker: per-key order, parallelism, commits, backpressure, slow handlers."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable

import pytest

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from tests.helpers import wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    running,
    settings_for,
    wait_ready,
)

pytestmark = pytest.mark.kafka


def test_keys_in_order_parallel_within_a_partition_and_committed(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-order"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)  # one partition: parallelism is per key
    total = produce_reminders(bootstrap_servers, topic, keys=20, per_key=15)
    seen: dict[str, list[int]] = defaultdict(list)
    lock = threading.Lock()
    active, peak = [0], [0]
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=8,
        commit_interval_s=0.2,
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.003)
        with lock:
            active[0] -= 1
            seen[(ctx.key or b"").decode()].append(event.attempt)

    with running(worker) as state:
        wait_until(lambda: sum(map(len, seen.values())) >= total, timeout=60)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [total], timeout=20)
        assert (
            state.sample(
                "pipeline_worker_records_total",
                topic=topic,
                event_type="reminders.ReminderDue",
                outcome="ok",
            )
            == total
        )
    assert all(seqs == list(range(15)) for seqs in seen.values())
    assert peak[0] > 1, "different keys of one partition never ran in parallel"


def test_graceful_stop_drains_and_commits(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-drain"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    total = produce_reminders(bootstrap_servers, topic, keys=10, per_key=10)
    handled: list[int] = []
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=4,
        commit_interval_s=60,
    )  # only the shutdown commit counts

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        time.sleep(0.002)
        handled.append(1)

    with running(worker):
        wait_until(lambda: len(handled) >= total, timeout=60)
    assert sum(max(0, o) for o in committed(bootstrap_servers, group, topic, 2)) == total


def test_backpressure_pauses_then_resumes(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-bp"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    total = produce_reminders(bootstrap_servers, topic, keys=4, per_key=15)
    handled: list[int] = []
    release = threading.Event()
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=2,
        max_in_flight=10,
        pause_after_s=0.0,
        batch_size=50,
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        # Stall until the test has seen the pause: in-flight work is full and nothing finishes.
        release.wait(timeout=30)
        handled.append(1)

    with running(worker) as state:
        wait_until(lambda: state.sample("pipeline_worker_paused_partitions") > 0, timeout=30)
        assert state.sample("pipeline_worker_in_flight") <= 10
        assert handled == []
        release.set()
        wait_until(lambda: len(handled) >= total, timeout=60)
        wait_until(lambda: state.sample("pipeline_worker_paused_partitions") == 0, timeout=10)
        # Resumed means at most half the limit in flight; the rest drains within a poll tick.
        wait_until(lambda: state.sample("pipeline_worker_in_flight") == 0, timeout=5)


def test_handler_slower_than_max_poll_interval_causes_no_rebalance(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-slow"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=3)
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=4,
        consumer_config={"max.poll.interval.ms": 6000, "session.timeout.ms": 6000},
    )
    release = threading.Event()
    handled: list[str] = []

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        if event.message == "slow":
            release.wait(12)  # 2x max.poll.interval.ms
        handled.append(event.message)

    from prometheus_client import CollectorRegistry

    from producers import EventProducer
    from tests.integration.test_worker_support import reminder

    with running(worker) as state:
        wait_ready(state)
        assigned = state.sample("pipeline_worker_rebalances_total", kind="assigned")
        with EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as p:
            p.send(reminder("slow-key", 0, "slow"), key="slow-key", topic=topic).result(10)
            start = time.monotonic()
            count = 0
            while time.monotonic() - start < 12:  # other keys (and partitions) keep flowing
                p.send(reminder(f"k{count}", count), key=f"k{count}", topic=topic)
                count += 1
                time.sleep(0.05)
            p.flush()
        wait_until(lambda: len(handled) >= count + 1, timeout=30)
        assert handled.index("slow") >= count - 20, "fast records waited for the slow one"
        assert state.sample("pipeline_worker_rebalances_total", kind="revoked") == 0
        assert state.sample("pipeline_worker_rebalances_total", kind="lost") == 0
        assert state.sample("pipeline_worker_rebalances_total", kind="assigned") == assigned


def test_async_handlers_dedup_and_unknown_event_types(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    from confluent_kafka import Producer

    from consumers import Dedup
    from examples.orders.events import PaymentCaptured
    from pipeline._headers import CE_ID, ERROR_TYPE, get_header
    from producers import EventProducer
    from tests.helpers import read_topic
    from tests.integration.test_worker_support import reminder

    topic, group = unique("wk-async"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    seen: list[str] = []
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        dedup=Dedup(max_ids=100, window_s=60),
        commit_interval_s=0.2,
    )

    @worker.handler(ReminderDue)
    async def handle(event: ReminderDue, ctx: Context) -> None:
        seen.append(event.message)

    codec = EventProducer(settings_for(bootstrap_servers)).codec
    value = codec.encode(reminder("k", 1))
    headers = [(CE_ID, b"same-id")]
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, value, key=b"k", headers=headers)
    producer.produce(topic, value, key=b"k", headers=headers)  # a producer-side duplicate
    payment = PaymentCaptured.model_validate(
        {
            "payment_id": "6f1c1f9e-8f7e-4f59-9a51-5f0d7a0c1a11",
            "order_id": "6f1c1f9e-8f7e-4f59-9a51-5f0d7a0c1a12",
            "amount": "1.00",
            "currency": "EUR",
            "method": "CARD",
            "captured_at": "2024-01-01T00:00:00Z",
        }
    )
    producer.produce(topic, codec.encode(payment), key=b"p")
    assert producer.flush(10) == 0
    with running(worker) as state:
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 1, timeout=30, idle=0.5)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [3], timeout=20)
        assert (
            state.sample(
                "pipeline_worker_records_total",
                topic=topic,
                event_type="unknown",
                outcome="duplicate",
            )
            == 1
        )
    assert seen == ["k:1"]
    assert get_header(dlq[0].headers(), ERROR_TYPE) == b"unknown_event_type"
    assert dlq[0].key() == b"p"


def test_exactly_once_transform_in_process(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    from tests.helpers import read_topic

    topic, output, group = unique("wk-eos"), unique("wk-eos-out"), unique("wk-g")
    create_topics(bootstrap_servers, [topic, output], partitions=2)
    total = produce_reminders(bootstrap_servers, topic, keys=10, per_key=20)
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        exactly_once=True,
        instance_id=unique("inst"),
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        ctx.producer.send(event, key=ctx.key, topic=output)

    with running(worker):
        records = read_topic(
            bootstrap_servers, output, total, timeout=60, read_committed=True, idle=1.0
        )
        wait_until(
            lambda: sum(max(0, o) for o in committed(bootstrap_servers, group, topic, 2)) == total,
            timeout=20,
        )
    assert len(records) == total
