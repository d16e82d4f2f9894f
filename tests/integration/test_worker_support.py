"""Helpers for the worker integration tests (no tests here)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from consumers import Worker, ensure_worker_topics
from examples.orders.events import ReminderDue, ReminderKind
from pipeline._settings import Settings
from producers import EventProducer


def settings_for(bootstrap: str) -> Settings:
    return Settings(bootstrap_servers=bootstrap)


def create_topics(bootstrap: str, names: list[str], partitions: int = 3, **configs: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, config=dict(configs)) for n in names]
    )
    for future in futures.values():
        future.result(timeout=30)


def reminder(key: str, seq: int, message: str | None = None) -> ReminderDue:
    now = datetime.now(UTC).replace(microsecond=0)
    return ReminderDue(
        reminder_id=uuid.uuid4(),
        due_at=now,
        due_date=now.date(),
        kind=ReminderKind.REVIEW_REQUEST,
        message=message or f"{key}:{seq}",
        attempt=seq,
    )


def produce_reminders(bootstrap: str, topic: str, keys: int, per_key: int, **send: Any) -> int:
    """Send ``per_key`` events for each of ``keys`` keys, interleaved, seq = 0..per_key-1."""
    with EventProducer(settings_for(bootstrap), registry=CollectorRegistry()) as producer:
        for seq in range(per_key):
            for k in range(keys):
                producer.send(reminder(f"k{k}", seq), key=f"k{k}", topic=topic, **send)
    return keys * per_key


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return [tp.offset for tp in tps]
    finally:
        consumer.close()


@dataclass
class Running:
    worker: Worker
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)

    def sample(self, name: str, **labels: str) -> float:
        labels.setdefault("group", self.worker.group)
        return self.worker.registry.get_sample_value(name, labels) or 0.0


@contextmanager
def running(worker: Worker, *, create: bool = True, stop_timeout: float = 60) -> Iterator[Running]:
    assert worker.settings is not None
    if create:
        ensure_worker_topics(worker.settings, worker.group, partitions=3)
    state = Running(worker, threading.Thread(target=lambda: None))

    def target() -> None:
        try:
            worker.run()
        except BaseException as exc:  # surfaced by the test
            state.errors.append(exc)

    state.thread = threading.Thread(target=target, daemon=True)
    state.thread.start()
    try:
        yield state
    finally:
        worker.stop()
        state.thread.join(timeout=stop_timeout)
    assert not state.thread.is_alive(), "worker did not stop"
    assert not state.errors, state.errors


def wait_ready(state: Running, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not state.worker.ready():
        assert not state.errors, state.errors
        if time.monotonic() > deadline:
            raise AssertionError("worker not ready in time")
        time.sleep(0.05)
