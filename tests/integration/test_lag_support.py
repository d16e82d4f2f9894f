"""Helpers for the lag monitor's integration tests (this module holds no tests)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from tests.helpers import wait_until

JARS = Path(os.environ.get("KAFKA_LOCAL_CACHE", Path.home() / ".cache" / "event-pipeline"))
CLI_CLASS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"

CliRow = tuple[int | None, int | None, int | None]  # current offset, log end offset, lag


def kafka_jars() -> str:
    """Classpath of the cached Kafka jars."""
    found = sorted(JARS.glob("kafka-*/"))
    assert found, f"no Kafka jars under {JARS}"
    return str(found[-1] / "*")


def create_topic(servers: str, name: str, partitions: int = 1, **config: str) -> None:
    """Create a topic and wait until it is usable."""
    admin = AdminClient({"bootstrap.servers": servers})
    topic = NewTopic(name, partitions, 1, config=config)
    admin.create_topics([topic])[name].result(timeout=30)
    wait_until(lambda: name in admin.list_topics(timeout=5).topics, timeout=30)


def produce(servers: str, topic: str, counts: Iterable[int], **conf: object) -> None:
    """Produce ``counts[p]`` small records to partition ``p``."""
    producer = Producer({"bootstrap.servers": servers, "linger.ms": 5, **conf})
    for partition, count in enumerate(counts):
        for i in range(count):
            producer.produce(topic, b"v%d" % i, partition=partition)
    assert producer.flush(30) == 0


def group_consumer(servers: str, group: str, **conf: object) -> Consumer:
    """A consumer of ``group`` with manual commits, reading from the start."""
    return Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **conf,
        }
    )


def join(consumer: Consumer, topic: str, partitions: int, timeout: float = 30) -> None:
    """Subscribe and poll until every partition of ``topic`` is assigned."""
    consumer.subscribe([topic])

    def assigned() -> bool:
        consumer.poll(0.2)
        return len(consumer.assignment()) == partitions

    wait_until(assigned, timeout=timeout)


def commit(consumer: Consumer, topic: str, offsets: Iterable[int]) -> None:
    """Commit explicit offsets, one per partition."""
    tps = [TopicPartition(topic, p, o) for p, o in enumerate(offsets)]
    consumer.commit(offsets=tps, asynchronous=False)


def kafka_cli_describe(servers: str, groups: Iterable[str]) -> dict[tuple[str, str, int], CliRow]:
    """Run the Kafka consumer-groups CLI ``--describe`` and parse its rows."""
    cmd = ["java", "-Xmx256m", "-cp", kafka_jars(), CLI_CLASS, "--bootstrap-server", servers]
    cmd.append("--describe")
    for group in groups:
        cmd += ["--group", group]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    rows: dict[tuple[str, str, int], CliRow] = {}
    for line in out.stdout.splitlines():
        cells = line.split()
        if len(cells) < 6 or cells[0] == "GROUP" or not cells[2].isdigit():
            continue

        def num(cell: str) -> int | None:
            return None if cell == "-" else int(cell)

        rows[(cells[0], cells[1], int(cells[2]))] = (num(cells[3]), num(cells[4]), num(cells[5]))
    return rows


def worker(servers: str, topic: str, group: str) -> None:
    """A plain worker process (for SIGSTOP tests): consume, commit every 0.2 s, forever."""
    import contextlib
    import time

    consumer = group_consumer(servers, group)
    consumer.subscribe([topic])
    last = time.monotonic()
    while True:
        consumer.consume(num_messages=500, timeout=0.1)
        if time.monotonic() - last > 0.2 and consumer.assignment():
            with contextlib.suppress(Exception):  # nothing consumed yet: nothing to commit
                consumer.commit(asynchronous=False)
            last = time.monotonic()


if __name__ == "__main__":
    import sys

    worker(*sys.argv[1:4])
