"""The Parity scenario on the real broker, with the real scheduler service in-process.

The body is ``tests.parity.run_scenario``, the one the test kit runs in
``tests/unit/test_testkit_parity.py``; both must give the same outcomes (``tests.parity.check``).
Here the clock is the wall clock: ``advance`` lets the time pass (the scheduler must not
deliver early), and ``run_until_idle`` waits, bounded, until nothing can run now.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
from confluent_kafka import Consumer, TopicPartition

from consumers import Worker
from examples.orders.events import ReminderDue
from pipeline._delay import parse_schedule
from pipeline._headers import ORIGINAL_TOPIC, get_header
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._topics import ensure_scheduler_topics
from producers import EventProducer
from tests.helpers import wait_until
from tests.integration.test_scheduler_support import running as running_scheduler
from tests.integration.test_worker_support import create_topics, running, settings_for, wait_ready
from tests.parity import DeadLetterSeen, check, make_app, run_scenario

pytestmark = pytest.mark.kafka
PARTITIONS = 3


class BrokerHarness:
    """The scenario's steps on a running worker and scheduler."""

    def __init__(self, bootstrap: str, worker: Worker, topic: str, scheduler_topic: str) -> None:
        self.worker, self.topic, self.scheduler_topic = worker, topic, scheduler_topic
        settings = settings_for(bootstrap)
        self.producer = EventProducer(settings, scheduler_topic=scheduler_topic)
        self.codec = self.producer.codec
        self.direct = 0  # records sent straight to the topic (not through the scheduler)
        self.group_view = Consumer({"bootstrap.servers": bootstrap, "group.id": worker.group})
        self.reader = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"parity-{uuid.uuid4().hex[:8]}"}
        )
        self.reader.assign(
            [TopicPartition(t, p, 0) for t in (scheduler_topic, worker.dlq_topic)
             for p in range(PARTITIONS)]
        )  # fmt: skip
        self.due_ms: list[int] = []  # due times of the records that entered the scheduler
        self.dlq: list[DeadLetterSeen] = []

    def close(self) -> None:
        self.producer.close()
        self.group_view.close()
        self.reader.close()

    def send(self, event: ReminderDue, *, key: str, headers: dict[str, str] | None = None) -> None:
        self.producer.send(event, key=key, topic=self.topic, headers=headers)
        self.direct += 1
        assert self.producer.flush(10) == 0

    def send_later(self, event: ReminderDue, *, key: str, delay: timedelta) -> None:
        self.producer.send(event, key=key, topic=self.topic, delay=delay)
        assert self.producer.flush(10) == 0

    def _read(self) -> None:
        for msg in self.reader.consume(500, 0.1):
            if msg.error() is not None:
                continue
            headers = msg.headers() or []
            if msg.topic() == self.scheduler_topic:
                self.due_ms.append(parse_schedule(headers)[1])
                continue
            event = self.codec.decode(msg.value() or b"", ReminderDue)
            error_type = (get_header(headers, "pipeline-error-type") or b"").decode()
            attempt = int(get_header(headers, "pipeline-attempt") or b"1")
            origin = (get_header(headers, ORIGINAL_TOPIC) or b"").decode()
            self.dlq.append((event.message, error_type, attempt, origin))

    def _ends(self, topic: str) -> list[int]:
        return [
            self.group_view.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        ]

    def _idle(self) -> bool:
        """Caught up: nothing in flight, everything committed, every due record delivered."""
        self._read()
        if self.worker.status().get("in_flight"):
            return False
        topics = (self.topic, self.worker.retry_topic)
        ends = {t: self._ends(t) for t in topics}
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        committed = self.group_view.committed(tps, timeout=10)
        if [max(tp.offset, 0) for tp in committed] != [*ends[topics[0]], *ends[topics[1]]]:
            return False
        if sum(self._ends(self.scheduler_topic)) != len(self.due_ms):
            return False  # the reader has not seen every scheduled record yet
        now = time.time_ns() // 1_000_000
        due = sum(1 for d in self.due_ms if d <= now)
        delivered = sum(ends[topics[1]]) + sum(ends[topics[0]]) - self.direct
        return delivered >= due and sum(self._ends(self.worker.dlq_topic)) == len(self.dlq)

    def run_until_idle(self) -> None:
        wait_until(self._idle, timeout=30, interval=0.1)

    def advance(self, seconds: float) -> None:
        until = time.monotonic() + seconds  # real time has to pass for the real scheduler
        wait_until(lambda: time.monotonic() >= until, timeout=seconds + 5, interval=0.1)

    def dead_letters(self) -> list[DeadLetterSeen]:
        self._read()
        return sorted(self.dlq)


def test_parity_scenario_on_the_broker(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group, base = unique("parity-in"), unique("parity-g"), unique("parity-sched")
    config = SchedulerConfig(
        topic=base, tiers=("1s", "5s"), dlq_topic=f"{base}.dlq", group=f"{base}-g",
        instance_id=unique("inst"),
    )  # fmt: skip
    ensure_scheduler_topics(settings_for(bootstrap_servers), config, partitions=PARTITIONS)
    create_topics(bootstrap_servers, [topic], partitions=PARTITIONS)
    calls: list[tuple[str, int]] = []
    app = make_app(
        group,
        topic,
        calls,
        settings=settings_for(bootstrap_servers),
        scheduler_topic=config.topic,
        commit_interval_s=0.2,
    )
    with running_scheduler(bootstrap_servers, config), running(app) as state:
        wait_ready(state)
        harness = BrokerHarness(bootstrap_servers, app, topic, config.topic)
        try:
            outcome = run_scenario(harness, calls, app.registry)
        finally:
            harness.close()
    check(outcome, topic)
