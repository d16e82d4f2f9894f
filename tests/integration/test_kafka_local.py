"""scripts/kafka-local: one-line errors, and a private 3-broker cluster that survives kill -9."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from tests.conftest import PrivateKafka
from tests.faults import kill_leader, partition_leader
from tests.helpers import create_topic, env_values, wait_until

REPO = Path(__file__).resolve().parents[2]
KAFKA_LOCAL = [sys.executable, str(REPO / "scripts" / "kafka-local")]


def _run(
    args: list[str], env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KAFKA_LOCAL, *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def _free_port_block(size: int) -> int:
    """A base port where base..base+size-1 and the controller ports (+1000) are free."""
    for base in range(21092, 40000, 10):
        ports = [*range(base, base + size), *range(base + 1000, base + 1000 + size)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port block")


def _free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def private_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_LOCAL_HOME": str(tmp_path / "cluster"),
        "KAFKA_LOCAL_PORT": str(_free_port_block(3)),
    }


def test_port_in_use_is_one_line_error(private_env: dict[str, str]) -> None:
    port = int(private_env["KAFKA_LOCAL_PORT"])
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        proc = _run(["up"], private_env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"kafka-local: error: port {port} on 127.0.0.1 is already in use by another process"
    )


def test_missing_java_is_one_line_error(private_env: dict[str, str], tmp_path: Path) -> None:
    env = {**private_env, "PATH": str(tmp_path / "empty-bin"), "JAVA_HOME": ""}
    proc = _run(["up"], env)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "kafka-local: error: Java 17 or newer is required but `java` was not found on PATH"
    )


def test_status_without_cluster(private_env: dict[str, str]) -> None:
    proc = _run(["status"], private_env)
    assert proc.returncode == 1
    assert "no cluster" in proc.stdout


@pytest.fixture
def three_brokers(private_env: dict[str, str]) -> Iterator[dict[str, str]]:
    try:
        up = _run(["up", "--brokers", "3"], private_env)
        assert up.returncode == 0, up.stderr + up.stdout
        yield private_env
    finally:
        _run(["down"], private_env)


def _status(env: dict[str, str]) -> dict[int, tuple[int, str]]:
    out = _run(["status"], env).stdout
    return {
        int(m["node"]): (int(m["port"]), m["pid"])
        for m in re.finditer(r"node=(?P<node>\d) port=(?P<port>\d+) \S+ pid=(?P<pid>\S+)", out)
    }


@pytest.mark.kafka
@pytest.mark.slow
def test_three_brokers_survive_kill_and_restart(three_brokers: dict[str, str]) -> None:
    env = three_brokers
    bootstrap = env_values(_run(["env"], env).stdout)["PIPELINE_BOOTSTRAP_SERVERS"]
    assert len(bootstrap.split(",")) == 3
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(timeout=30)
    assert len(meta.brokers) == 3
    # Internal topics are replicated three ways with min.insync.replicas=2.
    admin.create_topics([NewTopic("rf-check", 3)])["rf-check"].result(timeout=30)
    meta = admin.list_topics(topic="rf-check", timeout=30)
    assert all(len(p.replicas) == 3 for p in meta.topics["rf-check"].partitions.values())

    nodes = _status(env)
    assert set(nodes) == {1, 2, 3}
    os.kill(int(nodes[2][1]), signal.SIGKILL)
    stopped = _run(["status"], env)
    assert stopped.returncode == 1
    assert re.search(r"node=2 .* pid=- stopped", stopped.stdout)

    again = _run(["up"], env)  # restarts just the missing node, on the same data
    assert again.returncode == 0, again.stderr
    after = _status(env)
    assert after[1] == nodes[1]
    assert after[3] == nodes[3]
    assert after[2][1] != nodes[2][1]
    meta = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30)
    assert "rf-check" in meta.topics
    assert len(meta.brokers) == 3


def test_node_commands_without_cluster_are_one_line_errors(private_env: dict[str, str]) -> None:
    for command in ("kill", "stop", "start"):
        proc = _run([command, "1"], private_env)
        assert proc.returncode == 1
        assert (
            proc.stderr.strip() == "kafka-local: error: no cluster (run `scripts/kafka-local up`)"
        )


@pytest.mark.kafka
@pytest.mark.slow
def test_kill_stop_start_one_node(
    private_kafka: PrivateKafka, unique: Callable[[str], str]
) -> None:
    bootstrap = private_kafka.up(3)
    topic = unique("leader")
    create_topic(bootstrap, topic)
    before = private_kafka.pids()
    leader = kill_leader(private_kafka, topic)
    assert leader not in private_kafka.pids()
    # The other two nodes elect a new leader (RF 3, min.insync.replicas 2).
    assert wait_until(lambda: partition_leader(bootstrap, topic) != leader, timeout=60)

    def error(*args: str) -> str:
        proc = private_kafka.run(*args)
        assert proc.returncode == 1, proc.stdout
        return proc.stderr.strip()

    assert error("kill", str(leader)) == f"kafka-local: error: node {leader} is not running"
    assert error("stop", str(leader)) == f"kafka-local: error: node {leader} is not running"
    assert error("kill", "4") == "kafka-local: error: unknown node 4: this cluster has nodes 1..3"
    assert error("start", "0") == "kafka-local: error: unknown node 0: this cluster has nodes 1..3"

    private_kafka.node("start", leader)  # returns once the node is back in the metadata
    assert len(AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).brokers) == 3
    after = private_kafka.pids()
    assert set(after) == {1, 2, 3}
    assert after[leader] != before[leader]
    assert error("start", str(leader)) == f"kafka-local: error: node {leader} is already running"

    other = next(n for n in (1, 2, 3) if n != leader)
    private_kafka.node("stop", other)  # SIGTERM, returns once the process has exited
    assert other not in private_kafka.pids()
    assert {n: after[n] for n in private_kafka.pids()} == {
        n: p for n, p in after.items() if n != other
    }
