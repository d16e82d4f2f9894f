"""Batch handlers on the real broker: a handler that fails half its records, both semantics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from consumers import Context, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._topics import ensure_scheduler_topics
from tests.helpers import read_topic, wait_until
from tests.integration.test_scheduler_support import running as running_scheduler
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    running,
    settings_for,
)

pytestmark = pytest.mark.kafka

KEYS, PER_KEY = 20, 10
TOTAL = KEYS * PER_KEY
ALL = sorted(f"k{k}:{s}" for k in range(KEYS) for s in range(PER_KEY))


@pytest.fixture
def scheduler(bootstrap_servers: str, unique: Callable[[str], str]) -> Iterator[SchedulerConfig]:
    """A scheduler service: failed records come back through it to ``<group>.retry``."""
    base = unique("wk-sched")
    config = SchedulerConfig(
        topic=base, tiers=("1s",), dlq_topic=f"{base}.dlq", group=f"{base}-g", instance_id=base
    )
    ensure_scheduler_topics(settings_for(bootstrap_servers), config, partitions=1)
    with running_scheduler(bootstrap_servers, config):
        yield config


def _worker(bootstrap: str, topic: str, group: str, sched: SchedulerConfig) -> Worker:
    return Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap),
        commit_interval_s=0.2,
        scheduler_topic=sched.topic,
        retry=RetryPolicy(max_attempts=3, in_place_attempts=2, backoff=exponential(0.2, 2, 1, 0)),
    )


def test_batch_per_record_outcomes_fail_half_then_retry_them(
    bootstrap_servers: str, unique: Callable[[str], str], scheduler: SchedulerConfig
) -> None:
    topic, group = unique("wk-batch"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    produce_reminders(bootstrap_servers, topic, keys=KEYS, per_key=PER_KEY)
    lock = threading.Lock()
    ok: list[str] = []
    failed: list[str] = []
    sizes: list[int] = []
    worker = _worker(bootstrap_servers, topic, group, scheduler)

    @worker.batch_handler(ReminderDue, max_records=50, max_wait=0.2)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> dict[int, Exception]:
        failures: dict[int, Exception] = {}
        with lock:
            sizes.append(len(events))
            for i, (event, ctx) in enumerate(zip(events, ctxs, strict=True)):
                if event.attempt % 2 and ctx.attempt == 1:  # half of the records, once
                    failures[i] = ConnectionError(f"no {event.message}")
                    failed.append(event.message)
                else:
                    ok.append(event.message)
        return failures

    with running(worker) as state:
        wait_until(lambda: len(ok) >= TOTAL, timeout=90)
        wait_until(lambda: sum(committed(bootstrap_servers, group, topic, 2)) == TOTAL, timeout=20)
        retried = state.sample(
            "pipeline_worker_records_total",
            topic=topic,
            event_type="reminders.ReminderDue",
            outcome="retried",
        )
    assert sorted(ok) == ALL  # each record completed once
    assert len(failed) == TOTAL // 2
    assert retried == TOTAL // 2
    assert max(sizes) > 1, "records were never grouped"
    assert read_topic(bootstrap_servers, worker.dlq_topic, 0, timeout=5, idle=1.0) == []


def test_batch_raising_retries_the_whole_batch(
    bootstrap_servers: str, unique: Callable[[str], str], scheduler: SchedulerConfig
) -> None:
    topic, group = unique("wk-batch-raise"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    produce_reminders(bootstrap_servers, topic, keys=KEYS, per_key=PER_KEY)
    lock = threading.Lock()
    ok: list[str] = []
    calls: list[tuple[int, int]] = []  # (records, attempt)
    worker = _worker(bootstrap_servers, topic, group, scheduler)

    @worker.batch_handler(ReminderDue, max_records=50, max_wait=0.2)
    def handle(events: list[ReminderDue], ctxs: list[Context]) -> None:
        attempt = ctxs[0].attempt
        with lock:
            calls.append((len(events), attempt))
        bad = sum(e.attempt % 2 for e in events)  # half of the records are "bad" ...
        if bad and attempt == 1:  # ... and fail their whole batch, the first time
            raise ConnectionError(f"{bad} of {len(events)} records refused")
        with lock:
            ok.extend(e.message for e in events)

    with running(worker):
        wait_until(lambda: len(ok) >= TOTAL, timeout=90)
        wait_until(lambda: sum(committed(bootstrap_servers, group, topic, 2)) == TOTAL, timeout=20)
    assert sorted(ok) == ALL
    first = sum(n for n, a in calls if a == 1)
    again = sum(n for n, a in calls if a == 2)
    assert first == TOTAL  # every record was in a failed batch once ...
    assert again == TOTAL  # ... and the whole batch ran again in place
    assert read_topic(bootstrap_servers, worker.dlq_topic, 0, timeout=5, idle=1.0) == []
