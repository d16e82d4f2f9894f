"""`pipeline offsets reset` against the real broker."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from tests.helpers import create_topic, wait_until
from tests.integration.test_ops_support import run, run_json

pytestmark = pytest.mark.kafka


def _setup(bootstrap: str, topic: str, group: str) -> None:
    """30 records on 3 partitions (10 each); the group has committed offset 6 everywhere."""
    create_topic(bootstrap, topic, partitions=3)
    producer = Producer({"bootstrap.servers": bootstrap})
    for p in range(3):
        for i in range(10):
            producer.produce(topic, b"v", f"k{i}".encode(), partition=p)
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, 6) for p in range(3)], asynchronous=False)
    finally:
        consumer.close()


def _committed(bootstrap: str, topic: str, group: str) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
        return {tp.partition: tp.offset for tp in found}
    finally:
        consumer.close()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--shift-by", "-4"], {0: 2, 1: 2, 2: 2}),
        (["--to-earliest", "--partition", "1"], {0: 6, 1: 0, 2: 6}),
        (["--to-latest"], {0: 10, 1: 10, 2: 10}),
        (["--to-offset", "99", "-p", "0", "-p", "2"], {0: 10, 1: 6, 2: 10}),
        (["--to-datetime", "-1h"], {0: 0, 1: 0, 2: 0}),
        (["--to-datetime", "now"], {0: 10, 1: 10, 2: 10}),
    ],
    ids=["shift", "earliest-one-partition", "latest", "offset-clamped", "datetime", "now"],
)
def test_reset_moves_offsets_exactly_as_the_table_said(
    bootstrap_servers: str,
    unique: Callable[[str], str],
    args: list[str],
    expected: dict[int, int],
) -> None:
    topic, group = unique("ops-off"), unique("ops-off-g")
    _setup(bootstrap_servers, topic, group)
    base = ["offsets", "reset", "--group", group, "--topic", topic, *args]

    plan = run_json(bootstrap_servers, *base)
    assert plan["dry_run"] is True
    assert _committed(bootstrap_servers, topic, group) == {0: 6, 1: 6, 2: 6}, "dry run moved"
    table = {row["partition"]: row for row in plan["partitions"]}
    assert all(row["current"] == 6 and row["log_end"] == 10 for row in table.values())
    assert all(row["lag_after"] == 10 - row["new"] for row in table.values())

    done = run_json(bootstrap_servers, *base, "--execute")
    assert done["dry_run"] is False
    assert done["partitions"] == plan["partitions"]
    moved = {p: row["new"] for p, row in table.items()}
    assert _committed(bootstrap_servers, topic, group) == {0: 6, 1: 6, 2: 6, **moved}
    assert {0: 6, 1: 6, 2: 6, **moved} == expected


def test_dry_run_table_for_people(bootstrap_servers: str, unique: Callable[[str], str]) -> None:
    topic, group = unique("ops-off"), unique("ops-off-g")
    _setup(bootstrap_servers, topic, group)
    result = run(bootstrap_servers, "offsets", "reset", "-g", group, "-t", topic, "--to-earliest")
    assert result.exit_code == 0, result.output
    assert "lag after" in result.output
    assert "dry run: nothing changed" in result.output


def test_refuses_while_the_group_has_active_members(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("ops-off"), unique("ops-off-g")
    _setup(bootstrap_servers, topic, group)
    client_id = unique("busy-client")
    member = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "client.id": client_id,
            "enable.auto.commit": False,
        }
    )
    try:
        member.subscribe([topic])
        wait_until(lambda: member.poll(0.1) is not None or member.assignment(), timeout=30)
        result = run(
            bootstrap_servers, "offsets", "reset", "-g", group, "-t", topic,
            "--to-earliest", "--execute",
        )  # fmt: skip
    finally:
        member.close()
    assert result.exit_code == 1
    assert "1 active member(s)" in result.output
    assert client_id in result.output
    assert "Traceback" not in result.output
    # The member never commits: the offsets are still the ones set up, not the earliest.
    assert _committed(bootstrap_servers, topic, group) == {0: 6, 1: 6, 2: 6}
