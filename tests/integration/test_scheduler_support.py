"""Helpers for the scheduler integration tests (no tests here)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from pipeline._delay import scheduled_headers
from pipeline._settings import Settings
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._service import Scheduler
from pipeline.scheduler._topics import ensure_scheduler_topics
from tests.helpers import wait_until


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def settings_for(bootstrap: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap)


def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 3) -> None:
    names = list(names)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions) for n in names])
    for future in futures.values():
        future.result(timeout=30)
    wanted = set(names)
    # Topic metadata reaches every broker a little after creation; readers must not miss it.
    wait_until(lambda: wanted <= set(admin.list_topics(timeout=10).topics), 30)


def setup(bootstrap: str, config: SchedulerConfig, targets: Iterable[str], partitions: int = 3):
    ensure_scheduler_topics(settings_for(bootstrap), config, partitions=partitions)
    create_topics(bootstrap, targets, partitions)


@dataclass
class Running:
    scheduler: Scheduler
    thread: threading.Thread
    registry: CollectorRegistry
    errors: list[BaseException]

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


@contextmanager
def running(bootstrap: str, config: SchedulerConfig) -> Iterator[Running]:
    registry = CollectorRegistry()
    scheduler = Scheduler(settings_for(bootstrap), config, registry=registry)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            scheduler.run()
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        wait_until(lambda: scheduler.ready() or errors, 60)  # joined the group, has partitions
        yield Running(scheduler, thread, registry, errors)
    finally:
        scheduler.stop()
        thread.join(timeout=60)
    assert not thread.is_alive(), "scheduler did not stop"
    if errors:
        raise AssertionError(f"the scheduler failed: {errors!r}") from errors[0]


def produce(
    bootstrap: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    count = 0
    for key, value, headers in records:
        producer.produce(topic, key=key, value=value, headers=headers)
        producer.poll(0)
        count += 1
    assert producer.flush(30) == 0
    return count


def scheduled(target: str, key: bytes, value: bytes, due_ms: int, extra=()):
    return key, value, [*extra, *scheduled_headers(target, due_ms)]


@dataclass
class Received:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    at_ms: int


class Collector:
    """Read topics from the beginning, recording arrival time (read_committed)."""

    def __init__(self, bootstrap: str, topics: list[str], group: str) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        self.consumer.subscribe(topics)
        self.records: list[Received] = []

    def poll(self, seconds: float = 0.2) -> list[Received]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(1000, 0.05):
                if msg.error():
                    continue
                self.records.append(
                    Received(msg.topic(), msg.key(), msg.value(), msg.headers() or [], now_ms())
                )
        return self.records

    def close(self) -> None:
        self.consumer.close()
