"""Delivery modes (real broker): fire-and-forget, exactly-once by enum, broadcast, quorum."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest
from prometheus_client import CollectorRegistry

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from pipeline import ConfigError, DeliveryGuarantee, QuorumNotReached
from producers import EventProducer, QuorumFuture
from tests.helpers import read_topic, wait_until
from tests.integration.test_worker_support import (
    Running,
    create_topics,
    reminder,
    running,
    settings_for,
    wait_ready,
)

pytestmark = pytest.mark.kafka


def test_fire_and_forget_delivers_without_futures_and_counts_drops(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("ff")
    create_topics(bootstrap_servers, [topic], partitions=2)
    registry = CollectorRegistry()
    with EventProducer(settings_for(bootstrap_servers), registry=registry) as producer:
        for i in range(200):
            sent = producer.send(
                reminder(f"k{i}", i), topic=topic, guarantee=DeliveryGuarantee.FIRE_AND_FORGET
            )
            assert sent is None
        assert producer.flush(30) == 0
        ff = producer.modes.fire_and_forget._holder._config  # the separate client's config
        assert ff["enable.idempotence"] is False
        assert ff["acks"] == 1
        assert ff["retries"] == 0
    records = read_topic(bootstrap_servers, topic, 200, idle=0.5)
    assert len(records) == 200  # no retries, but nothing lost on a healthy broker either
    assert not registry.get_sample_value(
        "pipeline_producer_records_dropped_total", {"topic": topic}
    )


def test_fire_and_forget_counts_records_the_cluster_refuses(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("ff-refused")
    create_topics(bootstrap_servers, [topic], partitions=1, **{"max.message.bytes": "2000"})
    registry = CollectorRegistry()
    with EventProducer(settings_for(bootstrap_servers), registry=registry) as producer:
        noise = os.urandom(4000).hex()  # incompressible: over the topic's 2000-byte limit
        producer.send(reminder("k", 1, noise), topic=topic, guarantee="fire-and-forget")
        producer.flush(30)  # its own batch: the broker refuses a whole batch
        producer.send(reminder("k", 2), topic=topic, guarantee="fire-and-forget")
        producer.flush(30)
        dropped = registry.get_sample_value(
            "pipeline_producer_records_dropped_total", {"topic": topic}
        )
        assert dropped == 1
    assert [m.value() is not None for m in read_topic(bootstrap_servers, topic, 1)] == [True]


def test_bad_guarantee_arguments_are_config_errors() -> None:
    producer = EventProducer(settings_for("127.0.0.1:1"), registry=CollectorRegistry())
    with pytest.raises(ConfigError, match="unknown delivery guarantee"):
        producer.send(reminder("k", 1), topic="t", guarantee="sometimes")
    with pytest.raises(ConfigError, match="needs required_acks"):
        producer.send(reminder("k", 1), topic="t", guarantee=DeliveryGuarantee.QUORUM)
    with pytest.raises(ConfigError, match="only for guarantee=QUORUM"):
        producer.send(reminder("k", 1), topic="t", required_acks=2)
    with pytest.raises(ConfigError, match="chosen on the worker"):
        producer.send(reminder("k", 1), topic="t", guarantee=DeliveryGuarantee.BROADCAST)
    with pytest.raises(ConfigError, match="producer-side mode"):
        Worker(group="g", topics=["t"], guarantee=DeliveryGuarantee.QUORUM)
    with pytest.raises(ConfigError, match="contradicts"):
        Worker(group="g", topics=["t"], guarantee="broadcast", exactly_once=True)


def test_exactly_once_is_chosen_through_the_enum(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    source, out, group = unique("eo-in"), unique("eo-out"), unique("eo-g")
    create_topics(bootstrap_servers, [source, out], partitions=1)
    worker = Worker(
        group=group,
        topics=[source],
        settings=settings_for(bootstrap_servers),
        guarantee=DeliveryGuarantee.EXACTLY_ONCE,
    )
    assert worker.options.exactly_once

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        ctx.producer.send(event, topic=out)

    with EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as producer:
        for i in range(5):
            producer.send(reminder("k", i), topic=source)
    with running(worker):
        records = read_topic(bootstrap_servers, out, 5, read_committed=True, idle=0.5)
    assert len(records) == 5


# -- broadcast -------------------------------------------------------------------------------


def broadcast_worker(
    bootstrap: str, group: str, topic: str, seen: list[str], instance_id: str | None
) -> Worker:
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap),
        guarantee=DeliveryGuarantee.BROADCAST,
        instance_id=instance_id,
        commit_interval_s=0.2,
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        seen.append(event.message)

    return worker


@contextmanager
def all_running(workers: list[Worker]) -> Iterator[list[Running]]:
    with ExitStack() as stack:
        states = [stack.enter_context(running(w, create=False)) for w in workers]
        for state in states:
            wait_ready(state)
        yield states


def test_broadcast_every_instance_gets_every_record_and_a_stable_id_resumes(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("bc"), unique("bc-g")
    create_topics(bootstrap_servers, [topic], partitions=3)
    seen: list[list[str]] = [[], [], []]
    ids = ["a", None, None]  # one instance with a stable id, two without
    workers = [broadcast_worker(bootstrap_servers, group, topic, seen[i], ids[i]) for i in range(3)]
    first = [f"m{i}" for i in range(30)]
    with (
        all_running(workers),
        EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as producer,
    ):
        for i, message in enumerate(first):
            producer.send(reminder(f"k{i}", i, message), topic=topic)
        producer.flush(10)
        wait_until(lambda: all(len(s) >= 30 for s in seen), timeout=30)
    assert [sorted(s) for s in seen] == [sorted(first)] * 3
    # while instance "a" is down, more records arrive; restarted, it resumes where it was
    second = [f"n{i}" for i in range(20)]
    with EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as producer:
        for i, message in enumerate(second):
            producer.send(reminder(f"k{i}", i, message), topic=topic)
    resumed: list[str] = []
    again = broadcast_worker(bootstrap_servers, group, topic, resumed, "a")
    with running(again, create=False):
        wait_until(lambda: len(resumed) >= 20, timeout=30)
    assert sorted(resumed) == sorted(second)  # none of the first 30 again, none of the 20 lost


# -- quorum ----------------------------------------------------------------------------------


def acking_worker(bootstrap: str, group: str, topic: str) -> Worker:
    worker = Worker(group=group, topics=[topic], settings=settings_for(bootstrap))

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        return None

    return worker


def test_quorum_of_three_groups_with_one_stopped(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic = unique("qu")
    create_topics(bootstrap_servers, [topic], partitions=3)
    groups = [unique("qu-a"), unique("qu-b"), unique("qu-c")]
    up = [acking_worker(bootstrap_servers, g, topic) for g in groups[:2]]  # groups[2] stopped
    registry = CollectorRegistry()
    with (
        all_running(up),
        EventProducer(settings_for(bootstrap_servers), registry=registry) as producer,
    ):
        two = producer.send(
            reminder("k", 1),
            topic=topic,
            guarantee=DeliveryGuarantee.QUORUM,
            required_acks=2,
            timeout=20,
        )
        assert isinstance(two, QuorumFuture)
        result = two.result(30)
        assert sorted(result.acked) == sorted(groups[:2])
        started = time.monotonic()
        three = producer.send(
            reminder("k", 2),
            topic=topic,
            guarantee=DeliveryGuarantee.QUORUM,
            required_acks=3,
            timeout=3,
        )
        with pytest.raises(QuorumNotReached) as caught:
            three.result(30)
        took = time.monotonic() - started
        assert 2.5 <= took < 10, took
        assert sorted(caught.value.acked) == sorted(groups[:2])
        assert caught.value.missing(groups) == [groups[2]]  # names the stopped group
        assert caught.value.required == 3
    assert registry.get_sample_value("pipeline_quorum_sends_total", {"outcome": "reached"}) == 1
    assert registry.get_sample_value("pipeline_quorum_sends_total", {"outcome": "not_reached"}) == 1


def test_quorum_counts_broadcast_instances(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("qu-bc"), unique("qu-bc-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    seen: list[list[str]] = [[], []]
    workers = [
        broadcast_worker(bootstrap_servers, group, topic, seen[i], f"i{i}") for i in range(2)
    ]
    with (
        all_running(workers),
        EventProducer(settings_for(bootstrap_servers), registry=CollectorRegistry()) as producer,
    ):
        future = producer.send(
            reminder("k", 1), topic=topic, guarantee="quorum", required_acks=2, timeout=20
        )
        assert sorted(future.result(30).acked) == ["i0", "i1"]  # type: ignore[union-attr]
