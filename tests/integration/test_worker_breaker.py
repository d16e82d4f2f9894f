"""Circuit breaker on the real broker: opens on a failing downstream, pauses, probes, recovers."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Callable

import pytest

from consumers import Context, RetryPolicy, Worker, exponential
from examples.orders.events import ReminderDue
from pipeline._http import ServiceHTTPServer
from tests.helpers import read_topic, wait_until
from tests.integration.test_worker_support import (
    committed,
    create_topics,
    produce_reminders,
    running,
    settings_for,
)

pytestmark = pytest.mark.kafka


def test_breaker_opens_pauses_probes_and_recovers_losing_nothing(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("wk-breaker"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=2)
    total = produce_reminders(bootstrap_servers, topic, keys=20, per_key=10)
    down = threading.Event()
    down.set()
    lock = threading.Lock()
    handled: list[str] = []
    calls = [0]
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        commit_interval_s=0.2,
        # Failures while the breaker is closed retry in place; none may reach the DLQ.
        retry=RetryPolicy(max_attempts=5, in_place_attempts=5, backoff=exponential(0.05, 2, 1, 0)),
    )
    worker.breaker("downstream", failure_rate=0.5, min_calls=5, window_s=30, cooldown_s=1.0)

    @worker.handler(ReminderDue, breaker="downstream")
    def handle(event: ReminderDue, ctx: Context) -> None:
        with lock:
            calls[0] += 1
        if down.is_set():
            raise ConnectionError("downstream unavailable")
        with lock:
            handled.append(event.message)

    server = ServiceHTTPServer(
        worker.registry, worker.healthy, worker.ready, status=worker.status
    )  # what `pipeline worker run --metrics-port` serves
    server.start()

    def healthz() -> dict[str, object]:
        with urllib.request.urlopen(f"{server.url}/healthz", timeout=5) as response:
            return dict(json.loads(response.read()))

    with running(worker) as state:
        wait_until(lambda: worker.status().get("breakers") == {"downstream": "open"}, timeout=60)
        wait_until(lambda: worker.status()["paused_partitions"] == 2, timeout=10)
        # While it is open: polling goes on (healthy), nothing is committed, few calls are made.
        wait_until(
            lambda: (
                state.sample("pipeline_worker_breaker_state", breaker="downstream") in (1.0, 2.0)
            ),
            timeout=5,
        )

        def opened() -> float:
            return state.sample(
                "pipeline_worker_breaker_transitions_total", breaker="downstream", state="open"
            )

        wait_until(lambda: opened() >= 2, timeout=20)  # half-opened, the probe failed, open
        calls_before = calls[0]
        wait_until(lambda: opened() >= 3, timeout=20)  # one more cool-down and probe
        assert calls[0] - calls_before <= 2, "an open breaker kept calling the handler"
        assert worker.healthy()
        body = healthz()
        assert body["status"] == "ok"
        assert body["breakers"] == {"downstream": "open"} or body["breakers"] == {
            "downstream": "half_open"
        }
        assert 0 <= body["in_flight"] - body["parked"] <= 1  # all parked (but a probe)
        assert body["paused_partitions"] == 2
        assert max(committed(bootstrap_servers, group, topic, 2)) <= 0  # nothing handled
        assert body["parked"] > 0
        down.clear()  # the downstream recovers
        wait_until(lambda: len(handled) >= total, timeout=60)
        wait_until(lambda: worker.status()["breakers"] == {"downstream": "closed"}, timeout=10)
        wait_until(lambda: sum(committed(bootstrap_servers, group, topic, 2)) == total, timeout=20)
        assert worker.status()["paused_partitions"] == 0
        assert healthz()["breakers"] == {"downstream": "closed"}
        assert state.sample("pipeline_worker_breaker_state", breaker="downstream") == 0.0
        for entered in ("open", "half_open", "closed"):
            assert (
                state.sample(
                    "pipeline_worker_breaker_transitions_total", breaker="downstream", state=entered
                )
                >= 1
            ), entered
        dead = state.sample(
            "pipeline_worker_records_total",
            topic=topic,
            event_type="reminders.ReminderDue",
            outcome="dead_lettered",
        )
        assert dead == 0
    server.stop()
    assert sorted(set(handled)) == sorted(f"k{k}:{s}" for k in range(20) for s in range(10))
    assert read_topic(bootstrap_servers, worker.dlq_topic, 0, timeout=5, idle=1.0) == []
