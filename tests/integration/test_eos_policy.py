"""Exactly-once worker transactions (real broker): the size trigger and the commit when idle."""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from tests.helpers import read_topic, wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    running,
    settings_for,
)

pytestmark = pytest.mark.kafka


def _high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex})
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def _transform_worker(bootstrap: str, unique: Callable[[str], str], topic: str, output: str,
                      **options: object) -> Worker:  # fmt: skip
    worker = Worker(
        group=unique("eos-g"),
        topics=[topic],
        settings=settings_for(bootstrap),
        exactly_once=True,
        instance_id=unique("inst"),
        **options,  # type: ignore[arg-type]
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        ctx.producer.send(event, key=ctx.key, topic=output)

    return worker


def test_small_transactions_commit_everything_once_in_order(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, output = unique("eos-size"), unique("eos-size-out")
    create_topics(bootstrap_servers, [topic, output], partitions=2)
    total = produce_reminders(bootstrap_servers, topic, keys=10, per_key=20)
    # Batches of at most 5 records, a commit once a transaction holds 7: many transactions.
    worker = _transform_worker(
        bootstrap_servers, unique, topic, output, batch_size=5, transaction_records=7,
        transaction_interval_s=60.0,
    )  # fmt: skip
    with running(worker):
        records = read_topic(
            bootstrap_servers, output, total, timeout=90, read_committed=True, idle=1.0
        )
        wait_until(
            lambda: (
                sum(max(0, o) for o in committed(bootstrap_servers, worker.group, topic, 2))
                == total
            ),
            timeout=20,
        )
    assert len(records) == total
    seen: dict[bytes, list[int]] = defaultdict(list)
    for msg in records:
        found = re.search(rb"k\d+:(\d+)", msg.value())  # type: ignore[arg-type]
        assert found is not None
        seen[msg.key()].append(int(found.group(1)))  # type: ignore[index]
    assert len(seen) == 10
    assert all(seqs == list(range(20)) for seqs in seen.values())  # once each, in key order
    # Each committed transaction leaves one marker per output partition it wrote to: the
    # offsets above the records. 200 records at most 12 per transaction: at least 17.
    markers = sum(_high_watermarks(bootstrap_servers, output, 2)) - total
    assert markers >= total // 12


def test_caught_up_worker_commits_without_waiting_for_the_interval(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, output = unique("eos-idle"), unique("eos-idle-out")
    create_topics(bootstrap_servers, [topic, output], partitions=2)
    # Neither trigger can fire within the test: only the commit when a poll is empty can.
    worker = _transform_worker(
        bootstrap_servers, unique, topic, output, transaction_records=1_000_000,
        transaction_interval_s=300.0,
    )  # fmt: skip
    with running(worker):
        wait_until(lambda: bool(worker_assigned(bootstrap_servers, worker.group)), timeout=30)
        total = produce_reminders(bootstrap_servers, topic, keys=4, per_key=5)
        # read_topic fails the test unless all of them are committed within 30 s.
        records = read_topic(bootstrap_servers, output, total, timeout=30, read_committed=True)
    assert len(records) == total


def worker_assigned(bootstrap: str, group: str) -> bool:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return any(m.assignment.topic_partitions for m in desc.members)


def test_an_aborted_transaction_is_handled_again_from_the_committed_offsets(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    """A send the broker refuses (here: larger than the topic's max.message.bytes) dooms the
    transaction; the worker aborts it, consumes again from the committed offsets, and goes on:
    the output is every input record once, and the refused send is never visible."""
    topic, output, side = unique("eos-abort"), unique("eos-abort-out"), unique("eos-abort-side")
    create_topics(bootstrap_servers, [topic, output], partitions=2)
    create_topics(bootstrap_servers, [side], partitions=1, **{"max.message.bytes": "2000"})
    total = produce_reminders(bootstrap_servers, topic, keys=10, per_key=20)
    poison = "k3:7"  # the record whose first handling also sends a record too large for ``side``
    handled: list[str] = []
    worker = Worker(
        group=unique("eos-g"),
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        exactly_once=True,
        instance_id=unique("inst"),
        transaction_records=50,
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        handled.append(event.message)
        if event.message == poison and handled.count(poison) == 1:
            noise = "".join(uuid.uuid4().hex for _ in range(600))  # 19 KB, even compressed
            big = event.model_copy(update={"message": noise})
            ctx.producer.send(big, key=ctx.key, topic=side)
        ctx.producer.send(event, key=ctx.key, topic=output)

    with running(worker) as state:
        records = read_topic(
            bootstrap_servers, output, total, timeout=90, read_committed=True, idle=2.0
        )
        aborted = state.sample("pipeline_worker_transactions_aborted_total")
    codec_keys = [(m.key(), m.value()) for m in records]
    assert len(records) == total, f"{len(records)} records for {total} inputs"
    assert len(set(codec_keys)) == total  # each once: the aborted copies are not visible
    assert aborted >= 1
    assert handled.count(poison) == 2  # handled again after the abort
    assert len(handled) > total  # the aborted transaction's records ran twice
    assert read_topic(bootstrap_servers, side, 0, timeout=5, read_committed=True, idle=1.0) == []
