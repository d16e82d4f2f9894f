"""RPC against worker processes: 1,000 async requests in flight, and a worker killed with -9."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import ConsumerGroupState, KafkaException
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry

from consumers import ensure_worker_topics
from examples.orders.events import ReminderDue
from pipeline import RemoteError, RequestTimeout
from producers import AsyncEventProducer
from tests.helpers import free_port, wait_until
from tests.integration.test_worker_procs import Proc, worker_proc
from tests.integration.test_worker_support import create_topics, reminder, settings_for

pytestmark = pytest.mark.kafka


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_workers(
    bootstrap: str, topic: str, group: str, tmp_path: Path, sleep_ms: int
) -> list[Proc]:
    ensure_worker_topics(settings_for(bootstrap), group, partitions=1)
    env = {
        "PIPELINE_BOOTSTRAP_SERVERS": bootstrap,
        "WORKER_GROUP": group,
        "WORKER_TOPIC": topic,
        "WORKER_SLEEP_MS": str(sleep_ms),
    }
    ports = [free_port(), free_port()]
    procs = [
        worker_proc(
            "tests.workers.echo:app",
            tmp_path / f"w{i}.log",
            env,
            "--metrics-port",
            str(port),
            "--metrics-host",
            "127.0.0.1",
        ).start()
        for i, port in enumerate(ports)
    ]
    wait_until(lambda: all(_ready(p) for p in ports), timeout=60)
    # Ready only means "owns a partition": it may be the retry topic's. Both must own some of
    # `topic`, or killing one kills nobody's requests.
    wait_until(lambda: _each_member_owns(bootstrap, group, topic, 2), timeout=60)
    return procs


def _each_member_owns(bootstrap: str, group: str, topic: str, members: int) -> bool:
    """The group is stable with ``members`` members, each owning a partition of ``topic``."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        found = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except KafkaException:  # the coordinator is loading, or the group is rebalancing
        return False
    if found.state != ConsumerGroupState.STABLE or len(found.members) != members:
        return False
    return all(
        m.assignment is not None and any(tp.topic == topic for tp in m.assignment.topic_partitions)
        for m in found.members
    )


async def _ask(
    producer: AsyncEventProducer, topic: str, i: int, timeout: float
) -> ReminderDue | BaseException:
    try:
        return await producer.request(
            reminder(f"k{i}", i, f"m{i}"), reply=ReminderDue, topic=topic, timeout=timeout
        )
    except (RequestTimeout, RemoteError) as exc:
        return exc


def test_a_thousand_async_requests_against_two_worker_processes(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group = unique("rpcp"), unique("rpcp-g")
    create_topics(bootstrap_servers, [topic], partitions=4)
    procs = start_workers(bootstrap_servers, topic, group, tmp_path, sleep_ms=0)

    async def main() -> list[ReminderDue | BaseException]:
        async with AsyncEventProducer(
            settings=settings_for(bootstrap_servers), registry=CollectorRegistry()
        ) as producer:
            return await asyncio.gather(*(_ask(producer, topic, i, 30.0) for i in range(1000)))

    try:
        outcomes = asyncio.run(main())
    finally:
        for proc in procs:
            proc.terminate()
    replies = [o for o in outcomes if isinstance(o, ReminderDue)]
    assert len(replies) == 1000, [o for o in outcomes if not isinstance(o, ReminderDue)][:3]
    assert [r.message for r in replies] == [f"echo:m{i}" for i in range(1000)]
    pids = {r.tags[0] for r in replies}
    assert len(pids) == 2, "one worker process answered everything"


def test_kill_9_of_one_worker_gives_timeouts_never_a_wrong_reply(
    bootstrap_servers: str, unique: Callable[[str], str], tmp_path: Path
) -> None:
    topic, group = unique("rpck"), unique("rpck-g")
    create_topics(bootstrap_servers, [topic], partitions=4)
    # 200 ms a request: the killed worker still has requests queued when it dies (at 20 ms
    # a quiet machine answered all 600 before the kill)
    procs = start_workers(bootstrap_servers, topic, group, tmp_path, sleep_ms=200)
    answered = [0]

    async def ask(producer: AsyncEventProducer, i: int) -> ReminderDue | BaseException:
        outcome = await _ask(producer, topic, i, 6.0)
        answered[0] += 1
        return outcome

    async def main() -> list[ReminderDue | BaseException]:
        async with AsyncEventProducer(
            settings=settings_for(bootstrap_servers), registry=CollectorRegistry()
        ) as producer:
            tasks = [asyncio.ensure_future(ask(producer, i)) for i in range(600)]
            while answered[0] < 50:  # mid-run: some answered, most still in flight
                await asyncio.sleep(0.01)
            procs[0].kill()
            return await asyncio.gather(*tasks)

    try:
        outcomes = asyncio.run(main())
    finally:
        for proc in procs:
            if proc.alive():
                proc.terminate()
    timeouts = [o for o in outcomes if isinstance(o, RequestTimeout)]
    wrong = [
        (i, o)
        for i, o in enumerate(outcomes)
        if not isinstance(o, RequestTimeout)
        and not (isinstance(o, ReminderDue) and o.message == f"echo:m{i}")
    ]
    assert not wrong, wrong[:5]
    assert timeouts, "killing a worker mid-run timed out no request"
    assert len(timeouts) < len(outcomes), "the surviving worker answered nothing"
