"""Test helpers: bounded waits on a condition (never a bare sleep)."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

import pytest
from confluent_kafka import Consumer, Message
from confluent_kafka.admin import AdminClient, NewTopic

T = TypeVar("T")


def env_values(output: str) -> dict[str, str]:
    """``NAME=value`` pairs from ``scripts/kafka-local env`` (``export NAME=value`` lines)."""
    pairs = (line.removeprefix("export ").partition("=") for line in output.splitlines())
    return {name.strip(): value.strip() for name, sep, value in pairs if sep}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], T], timeout: float = 30.0, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns a truthy value or ``timeout`` passes (then fail)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s: {condition}")
        time.sleep(interval)


def read_topic(
    bootstrap_servers: str,
    topic: str,
    expected: int,
    *,
    timeout: float = 30.0,
    read_committed: bool = False,
    idle: float = 0.0,
) -> list[Message]:
    """Read a topic from the beginning until ``expected`` records (then ``idle`` more seconds).

    ``idle`` > 0 keeps reading that long after reaching ``expected``, so a test can prove no
    extra record arrives. Fails the test if fewer than ``expected`` arrive within ``timeout``.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed" if read_committed else "read_uncommitted",
        }
    )
    consumer.subscribe([topic])
    out: list[Message] = []
    deadline = time.monotonic() + timeout
    reached: float | None = None
    try:
        while time.monotonic() < deadline:
            if reached is not None and time.monotonic() - reached >= idle:
                break
            for msg in consumer.consume(500, 0.2):
                if msg.error() is None:
                    out.append(msg)
            if reached is None and len(out) >= expected:
                reached = time.monotonic()
    finally:
        consumer.close()
    if len(out) < expected:
        pytest.fail(f"read {len(out)} of {expected} records from {topic} within {timeout}s")
    return out


def create_topic(bootstrap_servers: str, topic: str, partitions: int = 1, **configs: str) -> None:
    """Create a topic and wait until it exists."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    new = NewTopic(topic, partitions, config={k.replace("_", "."): v for k, v in configs.items()})
    admin.create_topics([new])[topic].result(timeout=30)
