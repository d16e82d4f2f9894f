"""``async def`` handlers on the real broker: they run as tasks on the worker's event loop.

With every handler ``async`` the worker runs records on one event loop thread
(``AsyncExecution``), not on a thread per record in flight; per-key order, commits after
handling, in-place retries (their backoff awaited) and dead letters hold as on threads.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from collections.abc import Callable

import pytest

from consumers import Context, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue
from pipeline._headers import ATTEMPT, get_header
from tests.helpers import read_topic, wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    running,
    settings_for,
)

pytestmark = pytest.mark.kafka


def test_async_handlers_run_on_the_event_loop_in_key_order_and_are_committed(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-aio"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    total = produce_reminders(bootstrap_servers, topic, keys=100, per_key=10)
    seen: dict[str, list[int]] = defaultdict(list)
    active, peak, threads, most_threads = [0], [0], set(), [0]
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        concurrency=200,
        commit_interval_s=0.2,
    )

    @worker.handler(ReminderDue)
    async def handle(event: ReminderDue, ctx: Context) -> None:
        threads.add(threading.get_ident())
        active[0] += 1
        peak[0] = max(peak[0], active[0])
        most_threads[0] = max(most_threads[0], threading.active_count())
        await asyncio.sleep(0.005)
        active[0] -= 1
        seen[(ctx.key or b"").decode()].append(event.attempt)

    with running(worker) as state:
        wait_until(lambda: sum(map(len, seen.values())) >= total, timeout=60)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [total], timeout=20)
        ok = state.sample(
            "pipeline_worker_records_total",
            topic=topic,
            event_type="reminders.ReminderDue",
            outcome="ok",
        )
        assert ok == total
    assert all(seqs == list(range(10)) for seqs in seen.values())
    assert len(seen) == 100
    assert peak[0] > 20, "records of different keys did not wait together"
    assert len(threads) == 1, "async handlers ran on more than the event loop's thread"
    # 200 records may be in flight at once; they are coroutines, not threads
    assert most_threads[0] < 40


def test_async_handler_retries_in_place_after_a_backoff_then_dead_letters(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-aio-retry"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=1)
    total = produce_reminders(bootstrap_servers, topic, keys=4, per_key=5)  # k0..k3
    attempts: dict[str, int] = defaultdict(int)
    handled: dict[str, list[int]] = defaultdict(list)
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        commit_interval_s=0.2,
        retry=RetryPolicy(max_attempts=3, in_place_attempts=3, backoff=exponential(0.05, 2, 1, 0)),
    )

    @worker.handler(ReminderDue)
    async def handle(event: ReminderDue, ctx: Context) -> None:
        key = (ctx.key or b"").decode()
        attempts[event.message] += 1
        if key == "k0":
            raise RuntimeError("downstream refused k0")  # every attempt: dead-lettered
        if key == "k1" and ctx.attempt == 1:
            raise ConnectionError("flaky once")  # the second attempt, in place, succeeds
        handled[key].append(event.attempt)

    with running(worker) as state:
        dlq = read_topic(bootstrap_servers, worker.dlq_topic, 5, timeout=60, idle=0.5)
        wait_until(lambda: committed(bootstrap_servers, group, topic, 1) == [total], timeout=30)
        dead = state.sample(
            "pipeline_worker_records_total",
            topic=topic,
            event_type="reminders.ReminderDue",
            outcome="dead_lettered",
        )
    assert dead == 5
    assert sorted((m.key() or b"").decode() for m in dlq) == ["k0"] * 5
    assert all(get_header(m.headers(), ATTEMPT) == b"3" for m in dlq)
    assert all(attempts[f"k0:{seq}"] == 3 for seq in range(5))
    assert all(attempts[f"k1:{seq}"] == 2 for seq in range(5))
    assert handled["k1"] == list(range(5))  # in key order despite the retries
    assert handled["k2"] == handled["k3"] == list(range(5))
