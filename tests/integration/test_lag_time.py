"""Time lag and status on the real broker: a consumer held behind, and a SIGSTOPped worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline import Settings
from pipeline.lag import LagOptions, LagPoller, StatusThresholds
from tests.helpers import wait_until
from tests.integration.test_lag_support import create_topic, group_consumer, join

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]


class SteadyProducer:
    """Produce ``rate`` records a second until stopped; remembers each offset's timestamp."""

    def __init__(self, servers: str, topic: str, rate: float) -> None:
        self.times: dict[int, float] = {}
        self._producer = Producer({"bootstrap.servers": servers, "linger.ms": 0})
        self._topic, self._rate = topic, rate
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _delivered(self, err: object, msg: object) -> None:
        if err is None:
            self.times[msg.offset()] = msg.timestamp()[1] / 1000.0  # type: ignore[attr-defined]

    def _run(self) -> None:
        while not self._stop.is_set():
            self._producer.produce(self._topic, b"x", partition=0, on_delivery=self._delivered)
            self._producer.poll(0)
            self._stop.wait(1 / self._rate)
        self._producer.flush(10)

    def __enter__(self) -> SteadyProducer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)


class HeldConsumer:
    """Consume, but only records at least ``behind`` seconds old; commit after each one."""

    def __init__(self, servers: str, topic: str, group: str, behind: float) -> None:
        self._consumer = group_consumer(servers, group)
        self._topic, self._behind = topic, behind
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        join(self._consumer, self._topic, 1)
        while not self._stop.is_set():
            msg = self._consumer.poll(0.1)
            if msg is None or msg.error():
                continue
            due = msg.timestamp()[1] / 1000.0 + self._behind
            self._stop.wait(max(0.0, due - time.time()))
            self._consumer.commit(msg, asynchronous=False)  # commits offset + 1

    def __enter__(self) -> HeldConsumer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(15)
        self._consumer.close()


@pytest.fixture
def poller_factory(bootstrap_servers: str) -> Iterator[Callable[[LagOptions], LagPoller]]:
    made: list[LagPoller] = []

    def make(options: LagOptions) -> LagPoller:
        poller = LagPoller(Settings(bootstrap_servers=bootstrap_servers), options)
        made.append(poller)
        return poller

    yield make
    for poller in made:
        poller.stop()


def test_time_lag_of_a_consumer_held_behind(
    bootstrap_servers: str,
    unique: Callable[[str], str],
    poller_factory: Callable[[LagOptions], LagPoller],
) -> None:
    topic, group, behind = unique("lag-time"), unique("lag-held"), 6.0
    create_topic(bootstrap_servers, topic)
    pattern = re.compile(re.escape(group))
    interpolated = poller_factory(LagOptions(groups=pattern, interval=1.0))
    exact = poller_factory(LagOptions(groups=pattern, interval=1.0, exact=True))
    with (
        SteadyProducer(bootstrap_servers, topic, rate=50) as producer,
        HeldConsumer(bootstrap_servers, topic, group, behind),
    ):
        interpolated.start()
        exact.start()
        wait_until(lambda: group in interpolated.snapshot.groups, timeout=30)
        wait_until(lambda: interpolated.snapshot.polls > behind + 3, timeout=60)
        checks = 0
        for _ in range(5):
            seen = interpolated.snapshot.polls
            wait_until(lambda seen=seen: interpolated.snapshot.polls > seen, timeout=10)
            for poller, tolerance in ((interpolated, 2.0), (exact, 1.0)):
                snap = poller.snapshot
                part = snap.groups[group].partitions[0]
                truth = snap.taken_at - producer.times[part.committed]
                assert abs(part.lag_seconds - truth) <= tolerance, (
                    poller.options.exact,
                    part,
                    truth,
                )
                assert not part.lag_seconds_lower_bound
                assert truth == pytest.approx(behind, abs=1.5)
                checks += 1
        assert checks == 10


def test_sigstopped_worker_stalls_then_recovers(
    bootstrap_servers: str,
    unique: Callable[[str], str],
    poller_factory: Callable[[LagOptions], LagPoller],
) -> None:
    topic, group = unique("lag-stop"), unique("lag-worker")
    create_topic(bootstrap_servers, topic)
    thresholds = StatusThresholds(window_seconds=6, stall_seconds=3, min_samples=3)
    interval = 0.5
    poller = poller_factory(
        LagOptions(groups=re.compile(re.escape(group)), interval=interval, thresholds=thresholds)
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "tests.integration.test_lag_support",
        bootstrap_servers,
        topic,
        group,
    ]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    try:
        with SteadyProducer(bootstrap_servers, topic, rate=20):
            poller.start()

            def status() -> str | None:
                g = poller.snapshot.groups.get(group)
                return g.status.name if g is not None and g.partitions else None

            wait_until(
                lambda: status() == "OK" and poller.snapshot.groups[group].lag < 50, timeout=60
            )
            os.kill(proc.pid, signal.SIGSTOP)
            stopped = time.monotonic()
            # Documented bound: STALL after stall_seconds, STOP after window_seconds (+ a poll).
            wait_until(lambda: status() in ("STALL", "STOP"), timeout=thresholds.window_seconds + 5)
            assert time.monotonic() - stopped <= thresholds.window_seconds + 2 * interval + 1
            wait_until(lambda: status() == "STOP", timeout=thresholds.window_seconds + 5)
            os.kill(proc.pid, signal.SIGCONT)
            wait_until(lambda: status() == "OK", timeout=30)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        proc.wait(10)
