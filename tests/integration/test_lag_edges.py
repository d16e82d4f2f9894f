"""Lag edge cases on the real broker, against the Kafka CLI's consumer-groups ``--describe``.

* A live member owns a partition it never committed on: the CLI shows the row with
  ``CURRENT-OFFSET -`` and ``LAG -``; we show it too, flagged ``no_commit``, with the lag the
  group's ``auto.offset.reset`` would consume (earliest by default: end - log start; latest: 0).
* The records left are all aborted-transaction records (plus the abort marker): a
  read_uncommitted consumer receives them, so under ``--isolation read_uncommitted`` they are
  lag, as the CLI says; a read_committed consumer skips them, so they are not. ``auto`` treats a
  group with no live member and no committed offset past the last stable offset as
  read_committed.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer, Producer, TopicPartition
from prometheus_client import CollectorRegistry, generate_latest

from pipeline import Settings
from pipeline.cli import cli
from pipeline.lag import Isolation, LagCollector, LagOptions, LagPoller
from tests.integration.test_lag_support import (
    commit,
    create_topic,
    group_consumer,
    join,
    kafka_cli_describe,
    produce,
)

pytestmark = pytest.mark.kafka

COUNTS = [20, 20, 20, 20, 20, 618]
COMMITTED = [10, 10, 10, 10, 10]  # nothing on partition 5


def _show(servers: str, group: str, *extra: str) -> dict[str, Any]:
    args = ["--bootstrap-servers", servers, "lag", "show", "--group", group, "-o", "json"]
    result = CliRunner().invoke(cli, [*args, *extra])
    assert result.exit_code == 0, result.output
    (g,) = json.loads(result.output)["groups"]
    assert isinstance(g, dict)
    return g


@dataclass
class Owned:
    servers: str
    topic: str
    group: str


@pytest.fixture(scope="module")
def owned(bootstrap_servers: str) -> Iterator[Owned]:
    """A live member holding all 6 partitions, with commits on 5 of them."""
    tag = uuid.uuid4().hex[:10]
    topic, group = f"lag-nocommit-{tag}", f"lag-nocommit-g-{tag}"
    create_topic(bootstrap_servers, topic, partitions=6)
    produce(bootstrap_servers, topic, COUNTS)
    consumer = group_consumer(bootstrap_servers, group)
    join(consumer, topic, 6)
    commit(consumer, topic, COMMITTED)  # partitions 0-4 only
    try:
        yield Owned(bootstrap_servers, topic, group)
    finally:
        consumer.close()


def test_owned_partition_without_commit_is_shown(owned: Owned) -> None:
    g = _show(owned.servers, owned.group)
    assert (g["state"], g["members"]) == ("Stable", 1)
    parts = {p["partition"]: p for p in g["partitions"] if p["topic"] == owned.topic}
    assert sorted(parts) == list(range(6))
    five = parts[5]
    assert five["no_commit"] is True
    assert five["committed_offset"] is None
    assert (five["end_offset"], five["lag"]) == (618, 618)  # earliest: end - log start
    for p in range(5):
        assert parts[p]["no_commit"] is False
        assert (parts[p]["committed_offset"], parts[p]["lag"]) == (10, 10)
    assert g["lag"] == 5 * 10 + 618  # the group total includes it
    assert g["offset_reset"] == "earliest"

    cli_rows = kafka_cli_describe(owned.servers, [owned.group])
    assert cli_rows[(owned.group, owned.topic, 5)] == (None, 618, None)  # CLI: offset, lag "-"
    for p in range(5):
        assert cli_rows[(owned.group, owned.topic, p)] == (10, 20, parts[p]["lag"])


def test_latest_reset_counts_no_lag(owned: Owned) -> None:
    g = _show(owned.servers, owned.group, "--offset-reset", "latest")
    five = next(p for p in g["partitions"] if p["partition"] == 5)
    assert (five["no_commit"], five["committed_offset"], five["lag"]) == (True, None, 0)
    assert g["lag"] == 5 * 10
    assert g["offset_reset"] == "latest"


def test_table_flags_no_commit(owned: Owned) -> None:
    args = ["--bootstrap-servers", owned.servers, "lag", "show", "--group", owned.group]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if owned.topic in line)
    assert "668 (no_commit)" in row
    assert "│ 6 " in row  # all six partitions


def test_metrics_flag_no_commit(owned: Owned) -> None:
    options = LagOptions(groups=re.compile(f"^{owned.group}$"), interval=1.0)
    poller = LagPoller(Settings(bootstrap_servers=owned.servers), options)
    try:
        poller.poll_once()
        registry = CollectorRegistry()
        registry.register(LagCollector(lambda: poller.snapshot, compat_kafka_exporter=True))
        body = generate_latest(registry).decode()
    finally:
        poller.stop()
    g, t = owned.group, owned.topic
    five = f'group="{g}",partition="5",topic="{t}"'  # prometheus_client sorts the labels
    zero = f'group="{g}",partition="0",topic="{t}"'
    assert f"pipeline_consumergroup_no_commit{{{five}}} 1.0" in body
    assert f"pipeline_consumergroup_no_commit{{{zero}}} 0.0" in body
    assert f"pipeline_consumergroup_lag{{{five}}} 618.0" in body
    assert f"pipeline_consumergroup_committed_offset{{{zero}}} 10.0" in body
    assert f"pipeline_consumergroup_committed_offset{{{five}}}" not in body  # no value to give
    assert f'pipeline_consumergroup_lag_sum{{group="{g}"}} 668.0' in body
    compat = f'consumergroup="{g}",partition="5",topic="{t}"'
    assert f"kafka_consumergroup_current_offset{{{compat}}} -1.0" in body  # as kafka_exporter


# -- aborted transactions -------------------------------------------------------------------------


@dataclass
class Aborted:
    servers: str
    topic: str
    many: str
    """Empty group committed before 17 aborted records and their abort marker."""
    few: str
    """Empty group committed before 5 aborted records (few enough for the marker probe)."""
    few_topic: str


def _abort(servers: str, topic: str, count: int, txn_id: str) -> None:
    producer = Producer({"bootstrap.servers": servers, "transactional.id": txn_id})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"kept", partition=0)
    producer.commit_transaction(30)  # record 0, commit marker 1
    producer.begin_transaction()
    for i in range(count):
        producer.produce(topic, b"aborted-%d" % i, partition=0)
    producer.flush(30)
    producer.abort_transaction(30)  # records 2..count+1, abort marker count+2


def _committed_group(servers: str, topic: str, group: str, offset: int) -> None:
    consumer: Consumer = group_consumer(servers, group)
    join(consumer, topic, 1)
    consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    consumer.close()


@pytest.fixture(scope="module")
def aborted(bootstrap_servers: str) -> Aborted:
    tag = uuid.uuid4().hex[:10]
    topic, few_topic = f"lag-abort-{tag}", f"lag-abort-few-{tag}"
    create_topic(bootstrap_servers, topic)
    create_topic(bootstrap_servers, few_topic)
    _abort(bootstrap_servers, topic, 17, f"lag-abort-tx-{tag}")
    _abort(bootstrap_servers, few_topic, 5, f"lag-abort-few-tx-{tag}")
    many, few = f"lag-abort-g-{tag}", f"lag-abort-few-g-{tag}"
    _committed_group(bootstrap_servers, topic, many, 2)  # past the kept record and its marker
    _committed_group(bootstrap_servers, few_topic, few, 2)
    return Aborted(bootstrap_servers, topic, many, few, few_topic)


def test_aborted_records_are_lag_under_read_uncommitted(aborted: Aborted) -> None:
    cli_rows = kafka_cli_describe(aborted.servers, [aborted.many])
    java = cli_rows[(aborted.many, aborted.topic, 0)]
    assert java == (2, 20, 18)  # 17 aborted records and the abort marker
    g = _show(aborted.servers, aborted.many, "--isolation", "read_uncommitted")
    (p,) = g["partitions"]
    assert (p["committed_offset"], p["end_offset"], p["lag"]) == java
    assert p["lag_seconds"] > 0  # exact mode: the first aborted record has an age
    assert g["isolation"] == "read_uncommitted"


def test_aborted_records_are_not_lag_under_read_committed(aborted: Aborted) -> None:
    for isolation in ("read_committed", "auto"):
        g = _show(aborted.servers, aborted.many, "--isolation", isolation)
        (p,) = g["partitions"]
        assert (p["committed_offset"], p["end_offset"], p["lag"]) == (2, 20, 0), isolation
        # auto, no member and nothing committed past the last stable offset: read_committed
        assert g["isolation"] == "read_committed", isolation


@pytest.mark.parametrize(
    ("isolation", "lag"), [(Isolation.READ_UNCOMMITTED, 6), (Isolation.READ_COMMITTED, 0)]
)
def test_marker_probe_respects_isolation(aborted: Aborted, isolation: Isolation, lag: int) -> None:
    """Interpolated mode: an idle partition with little lag is read once (the marker probe)."""
    options = LagOptions(groups=re.compile(f"^{aborted.few}$"), interval=1.0, isolation=isolation)
    poller = LagPoller(Settings(bootstrap_servers=aborted.servers), options)
    try:
        poller.poll_once()
        snap = poller.poll_once()  # the second poll sees the partition idle and probes it
    finally:
        poller.stop()
    (p,) = snap.groups[aborted.few].partitions
    assert (p.committed, p.end_offset, p.lag) == (2, 8, lag)
    java = kafka_cli_describe(aborted.servers, [aborted.few])[(aborted.few, aborted.few_topic, 0)]
    assert java == (2, 8, 6)
