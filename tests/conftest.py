"""Shared fixtures: a real Kafka for integration tests, unique names, fresh metric registries."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._topics import ensure_scheduler_topics
from tests.helpers import env_values
from tests.integration.test_scheduler_support import running as running_scheduler
from tests.integration.test_scheduler_support import settings_for

REPO = Path(__file__).resolve().parent.parent
KAFKA_LOCAL = REPO / "scripts" / "kafka-local"


def _reachable(servers: str) -> bool:
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host or "localhost", int(port)), timeout=1):
                return True
        except (OSError, ValueError):
            continue
    return False


@pytest.fixture(scope="session")
def bootstrap_servers() -> Iterator[str]:
    """PIPELINE_BOOTSTRAP_SERVERS if it answers; otherwise a local broker started for the run."""
    servers = os.environ.get("PIPELINE_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    if _reachable(servers):
        yield servers
        return
    subprocess.run([sys.executable, str(KAFKA_LOCAL), "up"], check=True)
    try:
        yield "127.0.0.1:9092"
    finally:
        subprocess.run([sys.executable, str(KAFKA_LOCAL), "down"], check=False)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a factory of uuid-suffixed names, so tests never share topics or groups."""

    def make(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    return make


@pytest.fixture
def scheduler(bootstrap_servers: str, unique: Callable[[str], str]) -> Iterator[SchedulerConfig]:
    """A running scheduler service (tiers 1s and 5s) on topics of its own, for worker retries."""
    base = unique("sched")
    config = SchedulerConfig(
        topic=base,
        tiers=("1s", "5s"),
        dlq_topic=f"{base}.dlq",
        group=f"{base}-g",
        instance_id=unique("inst"),
    )
    ensure_scheduler_topics(settings_for(bootstrap_servers), config, partitions=1)
    with running_scheduler(bootstrap_servers, config):
        yield config


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Remove every PIPELINE_* variable, so settings tests see only what they set."""
    for name in list(os.environ):
        if name.startswith("PIPELINE_"):
            monkeypatch.delenv(name)
    return monkeypatch


class PrivateKafka:
    """A cluster of our own (scripts/kafka-local on free ports), for tests that kill brokers."""

    def __init__(self, home: Path) -> None:
        self.env = {
            **os.environ,
            "KAFKA_LOCAL_HOME": str(home),
            "KAFKA_LOCAL_PORT": str(_free_port_block(3)),
            # A shared 2-core machine with several clusters: a JVM can take a minute to start.
            "KAFKA_LOCAL_READY_TIMEOUT": os.environ.get("KAFKA_LOCAL_READY_TIMEOUT", "240"),
        }
        self.bootstrap = ""

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        """Run scripts/kafka-local with this cluster's environment."""
        return subprocess.run(
            [sys.executable, str(KAFKA_LOCAL), *args],
            capture_output=True, text=True, env=self.env, timeout=timeout,
        )  # fmt: skip

    def up(self, brokers: int = 1) -> str:
        """Start (or restart missing nodes); return the bootstrap servers.

        Other clusters on this machine pick free ports too: when a first start loses that race
        (a port taken between the check and the bind), it retries on another block.
        """
        for attempt in range(3):
            proc = self.run("up", "--brokers", str(brokers))
            raced = "in use" in proc.stderr or "exited during start-up" in proc.stderr
            if proc.returncode == 0 or self.bootstrap or not raced or attempt == 2:
                break
            self.run("down")
            self.env["KAFKA_LOCAL_PORT"] = str(_free_port_block(3))
        assert proc.returncode == 0, proc.stderr + proc.stdout
        self.bootstrap = env_values(self.run("env").stdout)["PIPELINE_BOOTSTRAP_SERVERS"]
        return self.bootstrap

    def node(self, command: str, node: int, timeout: float = 300) -> None:
        """``kill``, ``stop`` or ``start`` one node (scripts/kafka-local); fail on an error."""
        proc = self.run(command, str(node), timeout=timeout)
        assert proc.returncode == 0, proc.stderr + proc.stdout

    def pids(self) -> dict[int, int]:
        """Running broker pids by node id."""
        out = {}
        for line in self.run("status").stdout.splitlines():
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            if fields.get("pid", "-") != "-":
                out[int(fields["node"])] = int(fields["pid"])
        return out


def _free_port_block(size: int) -> int:
    """A base port where base..base+size-1 and the controller ports (+1000) are free."""
    # Below Linux's ephemeral range (32768-60999): a client reconnecting to a killed broker's
    # port there can be given that very port as its own and connect to itself (TCP
    # self-connect), holding the port so the broker cannot start again.
    start = random.randrange(21092, 31000, 10)  # spread the private clusters of parallel runs
    for base in [*range(start, 31500, 10), *range(21092, start, 10)]:
        ports = [*range(base, base + size), *range(base + 1000, base + 1000 + size)]
        if all(_port_free(p) for p in ports):
            return base
    raise RuntimeError("no free port block")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def private_kafka(tmp_path: Path) -> Iterator[PrivateKafka]:
    """A private cluster, stopped and deleted after the test; call ``.up(brokers)`` to start."""
    cluster = PrivateKafka(tmp_path / "kafka")
    try:
        yield cluster
    finally:
        cluster.run("down")
