"""Scheduler fault test: kill -9 the scheduler three times and the broker once; nothing is lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer

from pipeline._delay import scheduled_headers
from pipeline._headers import DELIVERED_AT, get_header
from pipeline.scheduler._records import SchedulerConfig
from tests.conftest import KAFKA_LOCAL
from tests.integration.test_scheduler_support import Collector, now_ms, setup

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

PORT = 19092
RECORDS = 20_000


@pytest.fixture(scope="module")
def private_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A one-broker cluster of our own on 19092, so killing it disturbs nobody."""
    home = tmp_path_factory.mktemp("kafka-private")
    env = {**os.environ, "KAFKA_LOCAL_HOME": str(home), "KAFKA_LOCAL_PORT": str(PORT)}
    subprocess.run([sys.executable, str(KAFKA_LOCAL), "up"], check=True, env=env)
    try:
        yield f"127.0.0.1:{PORT}", home
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "down"], check=False, env=env)


class Supervisor:
    """Runs ``pipeline scheduler run`` as a child process and restarts it when it dies."""

    def __init__(self, servers: str, config: SchedulerConfig) -> None:
        self.cmd = [
            sys.executable, "-m", "pipeline", "--bootstrap-servers", servers, "scheduler", "run",
            "--topic", config.topic, "--tiers", ",".join(config.tiers),
            "--dlq-topic", config.dlq_topic, "--group", config.group,
            "--instance-id", config.instance_id, "--no-create-topics", "--metrics-port", "0",
        ]  # fmt: skip
        if config.exactly_once:
            self.cmd.append("--exactly-once")
        self.proc: subprocess.Popen[bytes] | None = None
        self.unexpected_exits = 0

    def ensure(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            self.unexpected_exits += 1
            self.proc = None
        if self.proc is None:
            self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(60)


def _kill_broker(home: Path) -> None:
    os.kill(int((home / "node-1.pid").read_text().strip()), signal.SIGKILL)


@pytest.mark.parametrize("exactly_once", [False, True], ids=["at-least-once", "exactly-once"])
def test_kill_scheduler_and_broker_loses_nothing(private_cluster, unique, exactly_once):
    servers, home = private_cluster
    base = unique("faults")
    config = SchedulerConfig(
        topic=base, dlq_topic=f"{base}.dlq", group=base, instance_id="fixed",
        tiers=("1s", "5s", "30s", "2m"), exactly_once=exactly_once,
    )  # fmt: skip
    target = f"{base}-target"
    setup(servers, config, [target], partitions=3)
    collector = Collector(servers, [target], unique("reader"))
    sup = Supervisor(servers, config)
    sup.ensure()
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 20})
    rng = random.Random(7)
    for i in range(RECORDS):
        due = now_ms() + rng.randint(5_000, 60_000)
        headers = [("x-due", str(due).encode()), *scheduled_headers(target, due)]
        producer.produce(config.topic, key=f"k{i % 997}".encode(), value=str(i).encode(),
                         headers=headers)  # fmt: skip
        producer.poll(0)
    assert producer.flush(60) == 0
    start = time.monotonic()
    kills = sorted(rng.uniform(3, 50) for _ in range(3))
    broker_kill = rng.uniform(20, 45)
    events = sorted([(t, "scheduler") for t in kills] + [(broker_kill, "broker")])
    env = {**os.environ, "KAFKA_LOCAL_HOME": str(home), "KAFKA_LOCAL_PORT": str(PORT)}
    deadline = start + 240
    while time.monotonic() < deadline:
        collector.poll(0.5)
        if events and time.monotonic() - start >= events[0][0]:
            _, what = events.pop(0)
            if what == "scheduler":
                sup.kill9()
            else:
                _kill_broker(home)
                time.sleep(2)  # the broker stays down for a while, then comes back
                subprocess.run([sys.executable, str(KAFKA_LOCAL), "up"], check=True, env=env)
        sup.ensure()
        if not events and len({r.value for r in collector.records}) >= RECORDS:
            break
    collector.poll(5.0)  # late duplicates, if any, show up too
    sup.stop()
    collector.close()

    counts = Counter(int(r.value) for r in collector.records)
    lost = RECORDS - len(counts)
    duplicates = sum(c - 1 for c in counts.values())
    early = sum(
        1
        for r in collector.records
        if r.at_ms < int(get_header(r.headers, "x-due"))
        or int(get_header(r.headers, DELIVERED_AT)) < int(get_header(r.headers, "x-due"))
    )
    mode = "exactly-once" if exactly_once else "at-least-once"
    print(f"\n[{mode}] lost={lost} early={early} duplicates={duplicates} "
          f"unexpected_exits={sup.unexpected_exits}")  # fmt: skip
    assert lost == 0
    assert early == 0
    if exactly_once:
        assert duplicates == 0
