"""Worker failures on the real broker: retries through the scheduler, dead letters, poison input."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource

from consumers import (
    Context,
    DeadLetter,
    RetryLater,
    RetryPolicy,
    Skip,
    Worker,
    ensure_worker_topics,
    exponential,
)
from examples.orders.events import ReminderDue
from pipeline._headers import (
    ATTEMPT,
    CONSUMER_GROUP,
    ERROR_MESSAGE,
    ERROR_TRACE,
    ERROR_TYPE,
    EXPIRES_AT,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    get_header,
)
from pipeline.scheduler._records import SchedulerConfig
from producers import EventProducer
from tests.helpers import read_topic, wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    reminder,
    running,
    settings_for,
)

pytestmark = pytest.mark.kafka


class Boom(Exception):
    """The test handler's failure."""


def make_worker(bootstrap: str, topic: str, group: str, **options: Any) -> Worker:
    options.setdefault("commit_interval_s", 0.2)
    options.setdefault(
        "retry", RetryPolicy(max_attempts=4, backoff=exponential(0.3, 2.0, 5.0, jitter=0))
    )
    return Worker(group=group, topics=[topic], settings=settings_for(bootstrap), **options)


def send(bootstrap: str, topic: str, *events: tuple[str, ReminderDue], **kw: Any) -> None:
    with EventProducer(settings_for(bootstrap)) as producer:
        for key, event in events:
            producer.send(event, key=key, topic=topic, **kw)


def test_poison_key_retries_with_growing_delays_then_one_dead_letter(
    bootstrap_servers: str, unique: Callable[[str], str], scheduler: SchedulerConfig
) -> None:
    topic, group = unique("wk-poison"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    attempts: list[tuple[int, float]] = []
    others: list[tuple[str, float]] = []
    worker = make_worker(
        bootstrap_servers,
        topic,
        group,
        scheduler_topic=scheduler.topic,
        retry=RetryPolicy(
            max_attempts=4, in_place_attempts=2, backoff=exponential(0.3, 2.0, 5.0, jitter=0)
        ),
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        if ctx.key == b"poison":
            attempts.append((ctx.attempt, time.monotonic()))
            raise Boom(f"cannot handle {event.message}")
        others.append((event.message, time.monotonic()))

    with running(worker) as state:
        send(
            bootstrap_servers,
            topic,
            ("poison", reminder("poison", 0)),
            *[(f"k{i}", reminder(f"k{i}", i)) for i in range(20)],
        )
        wait_until(lambda: len(attempts) >= 4, timeout=30)
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 1, timeout=20, idle=1.5)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [21], timeout=20)
        assert (
            state.sample(
                "pipeline_worker_records_total",
                topic=topic,
                event_type="reminders.ReminderDue",
                outcome="retried",
            )
            == 1
        )
    assert [a for a, _ in attempts] == [1, 2, 3, 4]
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(attempts)]
    assert [g >= floor for g, floor in zip(gaps, (0.25, 0.55, 1.15), strict=True)] == [True] * 3
    assert gaps[0] < gaps[1] < gaps[2]
    assert len(others) == 20
    assert max(t for _, t in others) < attempts[3][1]  # they flowed while it retried
    assert len(dlq) == 1
    record = dlq[0]
    headers = record.headers() or []
    assert record.key() == b"poison"
    assert get_header(headers, ERROR_TYPE) == f"{__name__}.Boom".encode()
    assert b"cannot handle" in (get_header(headers, ERROR_MESSAGE) or b"")
    assert b"Traceback" in (get_header(headers, ERROR_TRACE) or b"")
    assert get_header(headers, ATTEMPT) == b"4"
    assert get_header(headers, ORIGINAL_TOPIC) == topic.encode()
    assert get_header(headers, ORIGINAL_PARTITION) == b"0"
    assert get_header(headers, ORIGINAL_OFFSET) == b"0"
    assert get_header(headers, CONSUMER_GROUP) == group.encode()
    assert get_header(headers, FAILED_AT)
    assert [k for k, _ in headers].count(ATTEMPT) == 1


def test_corrupt_bytes_go_to_the_dlq_raw_and_the_worker_keeps_going(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-corrupt"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    good = EventProducer(settings_for(bootstrap_servers)).codec.encode(reminder("k", 1))
    corrupt = [b"\x00\x00\x00\x00\x07garbage", good[:-3], b"\xc3\x01" + bytes(range(40))]
    handled: list[str] = []
    worker = make_worker(bootstrap_servers, topic, group)

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        handled.append(event.message)

    producer = Producer({"bootstrap.servers": bootstrap_servers})
    for i, value in enumerate([*corrupt, good]):
        producer.produce(topic, value, key=f"c{i}".encode())
    assert producer.flush(10) == 0
    with running(worker) as state:
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 3, timeout=30, idle=1.0)
        wait_until(lambda: handled == ["k:1"], timeout=10)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [4], timeout=10)
        assert state.worker.healthy()
    assert sorted(m.value() for m in dlq) == sorted(corrupt)
    for m in dlq:
        assert get_header(m.headers(), ERROR_TYPE) == b"undecodable"
        assert get_header(m.headers(), ATTEMPT) == b"1"


def test_signals_tombstones_and_expired(
    bootstrap_servers: str, unique: Callable[[str], str], scheduler: SchedulerConfig
) -> None:
    topic, group = unique("wk-signals"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    calls: list[tuple[str, int]] = []
    worker = make_worker(bootstrap_servers, topic, group, scheduler_topic=scheduler.topic)

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        calls.append((event.message, ctx.attempt))
        if event.message == "skip":
            raise Skip()
        if event.message == "later" and ctx.attempt == 1:
            raise RetryLater(0.2)
        if event.message == "dead":
            raise DeadLetter("not for us")

    past = str(int(time.time() * 1000) - 1000)
    send(
        bootstrap_servers,
        topic,
        ("a", reminder("a", 0, "skip")),
        ("b", reminder("b", 0, "later")),
        ("c", reminder("c", 0, "dead")),
    )
    send(bootstrap_servers, topic, ("d", reminder("d", 0, "old")), headers={EXPIRES_AT: past})
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, None, key=b"gone")  # a tombstone: no handler accepts them here
    assert producer.flush(10) == 0
    with running(worker) as state:
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 2, timeout=30, idle=1.0)
        wait_until(lambda: ("later", 2) in calls, timeout=20)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [5], timeout=10)
        sample = state.sample
        et = "reminders.ReminderDue"
        assert (
            sample("pipeline_worker_records_total", topic=topic, event_type=et, outcome="skipped")
            == 1
        )
        assert (
            sample(
                "pipeline_worker_records_total",
                topic=topic,
                event_type="tombstone",
                outcome="skipped",
            )
            == 1
        )
        assert (
            sample("pipeline_worker_records_total", topic=topic, event_type="-", outcome="expired")
            == 1
        )
    assert ("old", 1) not in calls
    types = {get_header(m.headers(), ERROR_TYPE): m for m in dlq}
    assert set(types) == {b"dead_letter", b"expired"}
    assert get_header(types[b"dead_letter"].headers(), ERROR_MESSAGE) == b"not for us"


def test_tombstones_reach_a_handler_that_accepts_them(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-tomb"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    seen: list[tuple[bytes | None, object]] = []
    worker = make_worker(bootstrap_servers, topic, group)

    @worker.handler(ReminderDue, tombstones=True)
    def handle(event: ReminderDue | None, ctx: Context) -> None:
        seen.append((ctx.key, event))

    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, None, key=b"gone")
    assert producer.flush(10) == 0
    # The handler's model names topic "reminders"; make it the handler of any topic instead.
    worker.tombstone_handlers[None] = worker.tombstone_handlers.pop("reminders")
    with running(worker):
        wait_until(lambda: seen == [(b"gone", None)], timeout=20)


def _set_max_bytes(bootstrap: str, topic: str, value: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(
        ConfigResource.Type.TOPIC,
        topic,
        incremental_configs=[
            ConfigEntry("max.message.bytes", value, incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(timeout=30)


def _dead_lettering_worker(bootstrap: str, topic: str, group: str) -> Worker:
    """A worker whose handler dead-letters every record, with its topics created."""
    create_topics(bootstrap, [topic], partitions=1)
    worker = make_worker(
        bootstrap,
        topic,
        group,
        retry=RetryPolicy(max_attempts=1),
        write_backoff=exponential(0.2, 2.0, 1.0, jitter=0),
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        raise DeadLetter("always")

    ensure_worker_topics(settings_for(bootstrap), group, partitions=1)
    return worker


def test_unwritable_dlq_blocks_the_commit_until_repaired(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-dlqfull"), unique("wk-g")
    worker = _dead_lettering_worker(bootstrap_servers, topic, group)
    _set_max_bytes(bootstrap_servers, worker.dlq_topic, "100")  # too small for any DLQ copy
    send(bootstrap_servers, topic, ("k", reminder("k", 0, "x" * 300)))
    with running(worker, create=False) as state:
        wait_until(
            lambda: (
                state.sample("pipeline_worker_write_failures_total", topic=worker.dlq_topic) >= 3
            ),
            timeout=30,
        )
        assert committed(bootstrap_servers, group, topic, 1)[0] < 1  # not past the record
        assert (
            state.sample("pipeline_worker_pending_writes")
            + state.sample("pipeline_worker_in_flight")
            >= 1
        )
        _set_max_bytes(bootstrap_servers, worker.dlq_topic, "1048588")
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 1, timeout=30, idle=1.0)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [1], timeout=20)
    assert len(dlq) == 1
    assert dlq[0].key() == b"k"


def test_deleted_dlq_blocks_the_commit_until_recreated(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-dlqgone"), unique("wk-g")
    worker = _dead_lettering_worker(bootstrap_servers, topic, group)
    settings = settings_for(bootstrap_servers)
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    admin.delete_topics([worker.dlq_topic])[worker.dlq_topic].result(timeout=30)
    wait_until(
        lambda: worker.dlq_topic not in admin.list_topics(timeout=10).topics, timeout=30
    )  # the broker does not auto-create topics, so the DLQ stays gone until we recreate it
    send(bootstrap_servers, topic, ("k", reminder("k", 0, "lost?")))
    with running(worker, create=False) as state:
        wait_until(
            lambda: (
                state.sample("pipeline_worker_write_failures_total", topic=worker.dlq_topic) >= 2
            ),
            timeout=60,
        )
        assert committed(bootstrap_servers, group, topic, 1)[0] < 1  # not past the record
        ensure_worker_topics(settings, group, partitions=1)  # the repair: recreate the DLQ
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 1, timeout=60, idle=1.0)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [1], timeout=30)
    assert len(dlq) == 1
    assert dlq[0].key() == b"k"
