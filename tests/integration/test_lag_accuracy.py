"""Lag accuracy on the real broker, against the Kafka CLI's consumer-groups ``--describe``.

Cases where the CLI is wrong, and what we report instead:

* transactional topic with an open transaction: the CLI measures against the high watermark, so
  a caught-up read_committed consumer shows the open transaction's records as lag; we measure
  against the last stable offset (0).
* a consumer that committed ``last offset + 1`` on a transactional topic points at the commit
  marker: the CLI shows 1 record of lag forever; we read the partition once and report 0.
* committed offset deleted by retention: the CLI counts the deleted records; we count from the
  log start and set ``offset_expired``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pipeline import Settings
from pipeline.lag import LagOptions, LagPoller, LagSnapshot
from tests.helpers import wait_until
from tests.integration.test_lag_support import (
    CliRow,
    commit,
    create_topic,
    group_consumer,
    join,
    kafka_cli_describe,
    produce,
)

pytestmark = pytest.mark.kafka

PER_PARTITION = [30, 30, 30]
COMMITS = [10, 20, 30]


@dataclass
class World:
    """Every case, set up once; ``ours`` and ``cli`` are read at the same moment."""

    names: dict[str, str] = field(default_factory=dict)
    ours: LagSnapshot = field(default_factory=LagSnapshot)
    cli: dict[tuple[str, str, int], CliRow] = field(default_factory=dict)
    closers: list[Consumer] = field(default_factory=list)


def _ours(world: World, case: str, topic_case: str, partition: int) -> tuple[int, bool]:
    group = world.ours.groups[world.names[case]]
    part = next(
        p
        for p in group.partitions
        if p.topic == world.names[topic_case] and p.partition == partition
    )
    return part.lag, part.offset_expired


def _setup_plain(world: World, servers: str, tag: str) -> None:
    topic = world.names["topic"] = f"lag-acc-{tag}"
    create_topic(servers, topic, partitions=3)
    produce(servers, topic, PER_PARTITION)
    for case, extra in (("classic", {}), ("kip848", {"group.protocol": "consumer"})):
        group = world.names[case] = f"lag-{case}-{tag}"
        consumer = group_consumer(servers, group, **extra)
        join(consumer, topic, 3)
        commit(consumer, topic, COMMITS)
        world.closers.append(consumer)  # stays a member: the group is Stable
    empty = world.names["empty"] = f"lag-empty-{tag}"
    consumer = group_consumer(servers, empty)
    join(consumer, topic, 3)
    commit(consumer, topic, [5, 5, 5])
    consumer.close()


def _setup_expired(world: World, servers: str, tag: str) -> None:
    topic = world.names["expired_topic"] = f"lag-exp-{tag}"
    create_topic(servers, topic)
    produce(servers, topic, [50])
    group = world.names["expired"] = f"lag-expired-{tag}"
    consumer = group_consumer(servers, group)
    join(consumer, topic, 1)
    commit(consumer, topic, [10])
    consumer.close()
    admin = AdminClient({"bootstrap.servers": servers})
    for future in admin.delete_records([TopicPartition(topic, 0, 30)]).values():
        future.result(timeout=30)


def _setup_transactions(world: World, servers: str, tag: str) -> Producer:
    """Two transactional topics: one with an open transaction, one with a committed one."""
    open_topic = world.names["txn_topic"] = f"lag-txn-{tag}"
    done_topic = world.names["marker_topic"] = f"lag-mark-{tag}"
    create_topic(servers, open_topic)
    create_topic(servers, done_topic)
    producer = Producer({"bootstrap.servers": servers, "transactional.id": f"lag-tx-{tag}"})
    producer.init_transactions(30)
    for topic in (open_topic, done_topic):
        producer.begin_transaction()
        for i in range(10):
            producer.produce(topic, b"c%d" % i, partition=0)
        producer.commit_transaction(30)  # records 0-9, commit marker at 10
    # Read_committed consumer, caught up: commit() stores its position, past the marker (11).
    rc = world.names["txn_rc"] = f"lag-txnrc-{tag}"
    consumer = group_consumer(servers, rc, **{"isolation.level": "read_committed"})
    join(consumer, open_topic, 1)
    wait_until(
        lambda: (
            (consumer.poll(0.2), consumer.position([TopicPartition(open_topic, 0)]))[1][0].offset
            == 11
        )
    )
    consumer.commit(asynchronous=False)
    consumer.close()
    # A consumer that committed last offset + 1 = 10: the commit marker, not a record.
    marker = world.names["txn_marker"] = f"lag-txnmark-{tag}"
    consumer = group_consumer(servers, marker)
    join(consumer, done_topic, 1)
    commit(consumer, done_topic, [10])
    consumer.close()
    # Now an open transaction of 5 records on the first topic.
    producer.begin_transaction()
    for i in range(5):
        producer.produce(open_topic, b"o%d" % i, partition=0)
    producer.flush(30)
    # A read_uncommitted consumer that read the open records too (committed 16 > LSO 11).
    ru = world.names["txn_ru"] = f"lag-txnru-{tag}"
    consumer = group_consumer(servers, ru, **{"isolation.level": "read_uncommitted"})
    join(consumer, open_topic, 1)
    commit(consumer, open_topic, [16])
    consumer.close()
    return producer


def _setup_rebalancing(world: World, servers: str, tag: str) -> None:
    """A classic group held in PreparingRebalance: member A stops polling, B joins."""
    topic = world.names["topic"]
    group = world.names["rebalancing"] = f"lag-rebal-{tag}"
    a = group_consumer(
        servers, group, **{"max.poll.interval.ms": 90000, "session.timeout.ms": 45000}
    )
    join(a, topic, 3)
    commit(a, topic, COMMITS)
    b = group_consumer(servers, group)
    b.subscribe([topic])
    world.closers += [a, b]
    admin = AdminClient({"bootstrap.servers": servers})

    def rebalancing() -> bool:
        b.poll(0.1)
        d = admin.describe_consumer_groups([group])[group].result(timeout=10)
        return "REBALANC" in d.state.name

    wait_until(rebalancing, timeout=30)


@pytest.fixture(scope="module")
def world(bootstrap_servers: str) -> Iterator[World]:
    tag = uuid.uuid4().hex[:10]
    w = World()
    _setup_plain(w, bootstrap_servers, tag)
    _setup_expired(w, bootstrap_servers, tag)
    producer = _setup_transactions(w, bootstrap_servers, tag)
    _setup_rebalancing(w, bootstrap_servers, tag)
    groups = [w.names[k] for k in w.names if not k.endswith("topic")]
    options = LagOptions(groups=re.compile(tag), interval=1.0)
    poller = LagPoller(Settings(bootstrap_servers=bootstrap_servers), options)
    try:
        poller.poll_once()
        w.ours = poller.poll_once()  # a second poll: idle partitions get their marker probe
        w.cli = kafka_cli_describe(bootstrap_servers, groups)
        yield w
    finally:
        poller.stop()
        producer.abort_transaction(30)
        for consumer in w.closers:
            consumer.close()


def _cli_lag(world: World, case: str, topic_case: str, partition: int) -> int | None:
    return world.cli[(world.names[case], world.names[topic_case], partition)][2]


@pytest.mark.parametrize("case", ["classic", "kip848", "empty", "rebalancing"])
def test_lag_equals_kafka_cli(world: World, case: str) -> None:
    group = world.ours.groups[world.names[case]]
    assert len(group.partitions) == 3
    for p in range(3):
        ours, expired = _ours(world, case, "topic", p)
        assert ours == _cli_lag(world, case, "topic", p), (case, p)
        assert not expired
    expected = {"classic": 30, "kip848": 30, "empty": 75, "rebalancing": 30}[case]
    assert group.lag == expected


def test_group_kinds_and_states(world: World) -> None:
    groups = world.ours.groups
    assert groups[world.names["classic"]].protocol == "classic"
    assert groups[world.names["classic"]].state == "Stable"
    assert groups[world.names["classic"]].members == 1
    assert groups[world.names["kip848"]].protocol == "consumer"
    assert groups[world.names["kip848"]].state == "Stable"
    assert groups[world.names["kip848"]].members == 1
    assert groups[world.names["empty"]].state == "Empty"
    assert groups[world.names["empty"]].members == 0
    assert groups[world.names["rebalancing"]].state in ("PreparingRebalance", "CompletingRebalance")


def test_open_transaction_is_not_lag_for_read_committed(world: World) -> None:
    assert _cli_lag(world, "txn_rc", "txn_topic", 0) == 5  # the CLI counts the open records
    assert _ours(world, "txn_rc", "txn_topic", 0) == (0, False)
    assert world.ours.groups[world.names["txn_rc"]].isolation == "read_committed"


def test_read_uncommitted_group_is_detected(world: World) -> None:
    assert _cli_lag(world, "txn_ru", "txn_topic", 0) == 0
    assert _ours(world, "txn_ru", "txn_topic", 0) == (0, False)
    assert world.ours.groups[world.names["txn_ru"]].isolation == "read_uncommitted"


def test_commit_marker_leaves_no_phantom_lag(world: World) -> None:
    assert _cli_lag(world, "txn_marker", "marker_topic", 0) == 1  # the marker, not a record
    assert _ours(world, "txn_marker", "marker_topic", 0) == (0, False)


def test_offset_deleted_by_retention(world: World) -> None:
    assert _cli_lag(world, "expired", "expired_topic", 0) == 40  # counts 20 deleted records
    assert _ours(world, "expired", "expired_topic", 0) == (20, True)


def test_never_negative(world: World) -> None:
    for group in world.ours.groups.values():
        for part in group.partitions:
            assert part.lag >= 0
            assert part.lag_seconds >= 0
