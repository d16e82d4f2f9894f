"""Helpers for the console tests (no tests here): a lagging group with real dead letters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from confluent_kafka import Consumer, TopicPartition

from pipeline import load_settings
from pipeline.cli.console import build_services, close_services
from pipeline.console import ConsoleServices
from pipeline.lag import LagOptions
from tests.helpers import create_topic, wait_until
from tests.integration.test_ops_support import Sent, codec, dead_letter, order, produce

SCRIPT = "<script>window.pwned=1</script>"
TOKEN = "s3cret-console-token"


@dataclass(frozen=True)
class World:
    group: str
    source: str
    dead: list[Sent]
    lag: int


def make_world(bootstrap: str, group: str, *, letters: int = 4, lag: int = 7) -> World:
    """``group`` lags ``lag`` records on its source topic; ``<group>.dlq`` holds ``letters`` dead
    letters as the worker writes them (one holds a ``<script>`` value), plus ``<group>.retry``."""
    source = f"{group}-orders"
    create_topic(bootstrap, source, partitions=1)
    create_topic(bootstrap, f"{group}.dlq", partitions=1)
    create_topic(bootstrap, f"{group}.retry", partitions=1)
    c = codec(bootstrap)
    records = [
        dead_letter(f"key-{i}", c.encode(order(f"customer-{i}")), group=group,
                    error_type="builtins.ValueError", origin=(source, 0, i))
        for i in range(letters - 1)
    ]  # fmt: skip
    records.append(
        dead_letter("key-script", SCRIPT.encode(), group=group, error_type="undecodable",
                    origin=(source, 0, letters - 1))
    )  # fmt: skip
    dead = produce(bootstrap, f"{group}.dlq", records)
    plain = [Sent(f"k{i}".encode(), b"x", (), 0, "-", None) for i in range(lag + 3)]
    produce(bootstrap, source, plain)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        consumer.commit(offsets=[TopicPartition(source, 0, 3)], asynchronous=False)
    finally:
        consumer.close()
    return World(group, source, dead, lag)


@contextmanager
def console_services(
    bootstrap: str, group: str, token: str | None = TOKEN
) -> Iterator[ConsoleServices]:
    """Started console services watching ``group`` only, once its first snapshot shows it."""
    settings = load_settings(bootstrap_servers=bootstrap)
    options = LagOptions(groups=re.compile(f"^{re.escape(group)}$"))
    services = build_services(settings, token=token, interval=1.0, options=options)
    services.state.start()
    try:
        wait_until(lambda: group in services.state.snapshot.groups and services.state.ready())
        wait_until(lambda: services.state.snapshot.groups[group].dlq is not None)
        # the per-state counts (pipeline.stats) of the first stats read, merged by a lag poll
        wait_until(lambda: "dead" in services.state.snapshot.groups[group].counts, timeout=60)
        yield services
    finally:
        close_services(services)
