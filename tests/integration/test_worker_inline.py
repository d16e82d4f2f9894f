"""Handlers run on the poll thread (``WorkerOptions.inline``): the guarantees stay the same.

A stuck handler on the poll thread hands polling to the watchdog and its batch to the worker
threads, with its key's later records held back; a first attempt that fails and is retried in
place goes on on a worker thread (the poll thread never sleeps through a backoff).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry

from consumers import Context, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue
from producers import EventProducer
from tests.helpers import wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    reminder,
    running,
    settings_for,
)


def _send(bootstrap: str, topic: str, records: list[tuple[str, int]]) -> None:
    with EventProducer(settings_for(bootstrap), registry=CollectorRegistry()) as producer:
        for key, seq in records:
            producer.send(reminder(key, seq), key=key, topic=topic)


def _on_pool(name: str) -> bool:
    return name.startswith("worker-")


def test_stuck_inline_handler_hands_over_and_keeps_key_order(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-inl-stuck"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    records = [("a", 0)] + [(f"b{k}", s) for s in range(5) for k in range(8)]
    records += [("a", s) for s in range(1, 5)]
    _send(bootstrap_servers, topic, records)
    gate = threading.Event()
    lock = threading.Lock()
    seen: dict[str, list[int]] = defaultdict(list)
    threads: dict[tuple[str, int], str] = {}
    worker = Worker(
        group=group, topics=[topic], settings=settings_for(bootstrap_servers), concurrency=4
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        key = (ctx.key or b"").decode()
        if (key, event.attempt) == ("a", 0):
            gate.wait(30)  # stuck on the poll thread (the first batch runs there)
        with lock:
            seen[key].append(event.attempt)
            threads[(key, event.attempt)] = threading.current_thread().name

    with running(worker) as state:
        others = len(records) - 5
        # Other keys are handled on the worker threads while a:0 is stuck ...
        wait_until(lambda: sum(len(v) for k, v in seen.items() if k != "a") == others)
        assert seen["a"] == []  # ... and the later records of key a wait for it.
        gate.set()
        wait_until(lambda: len(seen["a"]) == 5)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [len(records)])
        ok = state.sample(
            "pipeline_worker_records_total",
            topic=topic,
            event_type="reminders.ReminderDue",
            outcome="ok",
        )
        assert ok == len(records)
    assert not _on_pool(threads[("a", 0)])  # it did run on the poll thread
    assert any(_on_pool(threads[(f"b{k}", 4)]) for k in range(8))
    assert seen["a"] == [0, 1, 2, 3, 4]
    assert all(seen[f"b{k}"] == list(range(5)) for k in range(8))


@pytest.mark.parametrize("inline", [True, False])
def test_in_place_retry_goes_on_on_a_worker_thread(
    bootstrap_servers: str, unique: Callable[[str], str], inline: bool
) -> None:
    topic, group = unique("wk-inl-retry"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    records = [("x", 0), ("y", 0), ("x", 1), ("y", 1), ("x", 2)]
    _send(bootstrap_servers, topic, records)
    lock = threading.Lock()
    calls: list[tuple[str, int, int, str]] = []  # key, seq, attempt, thread
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=4,
        inline=inline,
        retry=RetryPolicy(
            max_attempts=3, in_place_attempts=3, backoff=exponential(base=0.05, jitter=0)
        ),
    )

    @worker.handler(ReminderDue)
    def handle(event: ReminderDue, ctx: Context) -> None:
        key = (ctx.key or b"").decode()
        with lock:
            calls.append((key, event.attempt, ctx.attempt, threading.current_thread().name))
        if (key, event.attempt) == ("x", 0) and ctx.attempt < 3:
            raise ConnectionError("flaky")

    with running(worker) as state:
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [len(records)])
        labels = {"topic": topic, "event_type": "reminders.ReminderDue"}
        assert state.sample("pipeline_worker_records_total", outcome="ok", **labels) == 5
        # Every attempt is timed: the two failed ones too.
        assert state.sample("pipeline_worker_handler_duration_seconds_count", **labels) == 7
    x0 = [(attempt, name) for key, seq, attempt, name in calls if (key, seq) == ("x", 0)]
    assert [attempt for attempt, _ in x0] == [1, 2, 3]
    assert all(_on_pool(name) for _, name in x0[1:])  # the backoffs were waited there
    xs = [seq for key, seq, attempt, _ in calls if key == "x" and attempt == 1]
    assert xs == [0, 1, 2]
    assert calls.index(("x", 1, 1, next(n for k, s, a, n in calls if (k, s) == ("x", 1)))) > (
        calls.index(("x", 0, 3, x0[2][1]))
    )  # x:1 only after x:0 finally succeeded
