"""Rate limits on the real broker: within 10% over 10 s, and the poll loop keeps going."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from consumers import Context, Worker
from examples.orders.events import ReminderDue
from tests.helpers import wait_until
from tests.integration.test_worker_support import (
    create_topics,
    produce_reminders,
    running,
    settings_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

RATE = 200.0


@pytest.mark.parametrize("where", ["worker", "handler"])
def test_rate_limit_holds_within_ten_percent_over_ten_seconds(
    bootstrap_servers: str, unique: Callable[[str], str], where: str
) -> None:
    topic, group = unique("wk-rate"), unique("wk-g")
    create_topics(bootstrap_servers, [topic], partitions=3)
    total = produce_reminders(bootstrap_servers, topic, keys=100, per_key=30)  # 15 s at 200/s
    times: list[float] = []
    lock = threading.Lock()
    worker = Worker(
        group=group,
        topics=[topic],
        settings=settings_for(bootstrap_servers),
        consumer_config={"max.poll.interval.ms": 10_000},
    )
    if where == "worker":
        worker.limit_rate(RATE)

    @worker.handler(ReminderDue, rate=RATE if where == "handler" else None)
    def handle(event: ReminderDue, ctx: Context) -> None:
        with lock:
            times.append(time.monotonic())

    gaps, paused = [0.0], [0]
    unhealthy: list[float] = []
    watching = threading.Event()

    def watch() -> None:  # the loop's heartbeat: it must never stall
        while not watching.wait(0.05):
            runner = worker._runner
            if runner is None or not runner.parts:
                continue
            gaps[0] = max(gaps[0], time.monotonic() - runner._heartbeat)
            paused[0] = max(paused[0], len(runner.flow.pauses.paused))
            if not worker.healthy():
                unhealthy.append(time.monotonic())

    with running(worker) as state:
        threading.Thread(target=watch, daemon=True).start()
        wait_until(lambda: len(times) >= 1, timeout=60)
        start = times[0]
        wait_until(lambda: time.monotonic() - start >= 11.0, timeout=30, interval=0.2)
        window = [t for t in times if start + 0.5 <= t < start + 10.5]
        watching.set()
        revoked = state.sample("pipeline_worker_rebalances_total", kind="revoked")
        lost = state.sample("pipeline_worker_rebalances_total", kind="lost")
    rate = len(window) / 10.0
    assert abs(rate - RATE) <= 0.1 * RATE, f"{rate:.1f}/s against a limit of {RATE}/s"
    assert len(times) < total, "the limit let everything through"
    assert gaps[0] < 1.0, f"the poll loop stalled for {gaps[0]:.2f}s"
    assert not unhealthy
    assert revoked == 0
    assert lost == 0
    assert paused[0] > 0, "the limit was not enforced by pausing partitions"
    print(f"{where}: {rate:.1f} records/s against {RATE}/s, longest loop gap {gaps[0]:.3f}s")
