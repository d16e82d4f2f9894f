"""Orphaned partitions on a real broker: a Stable group that leaves partitions unowned.

The state is built deterministically: member A joins a 1-partition topic with a metadata
refresh of an hour, then the topic grows to 3 partitions. No member's metadata sees the new
partitions, so no rebalance happens: the group stays Stable with partitions 1 and 2 owned by
nobody (the state a static member under cooperative-sticky can leave behind, see README).
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewPartitions
from prometheus_client import CollectorRegistry

from consumers import Context, Worker
from consumers._orphan_probe import OrphanProbe, ProbeDied, ProbeResult
from examples.orders.events import ReminderDue
from pipeline._orphans import unowned
from pipeline._settings import Settings
from pipeline.cli import cli
from pipeline.lag import LagCollector, LagOptions, LagPoller, Status, StatusThresholds
from tests.helpers import wait_until
from tests.integration.test_lag_support import create_topic, group_consumer, join
from tests.integration.test_worker_procs import group_settled
from tests.integration.test_worker_support import running

pytestmark = pytest.mark.kafka

STALE_METADATA = {"topic.metadata.refresh.interval.ms": 3_600_000}
GROUP_CONF = {
    **STALE_METADATA,
    "partition.assignment.strategy": "cooperative-sticky",
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
}


@dataclass
class Orphaned:
    topic: str
    group: str
    member: Consumer


def _grow(servers: str, topic: str, to: int) -> None:
    admin = AdminClient({"bootstrap.servers": servers})
    admin.create_partitions([NewPartitions(topic, to)])[topic].result(timeout=30)


def _owned(servers: str, group: str, topic: str, members: int = 1) -> set[int] | None:
    """Partitions of ``topic`` owned in ``group``, or None while it is not Stable with at
    least ``members`` members."""
    admin = AdminClient({"bootstrap.servers": servers})
    try:
        d = admin.describe_consumer_groups([group])[group].result(timeout=10)
    except Exception:
        return None
    if d.state.name != "STABLE" or len(d.members) < members:
        return None
    return {
        tp.partition
        for m in d.members
        for tp in (m.assignment.topic_partitions if m.assignment else [])
        if tp.topic == topic
    }


@pytest.fixture
def orphaned(bootstrap_servers: str, unique: Callable[[str], str]) -> Iterator[Orphaned]:
    topic, group = unique("orphan"), unique("orphan-g")
    create_topic(bootstrap_servers, topic, partitions=1)
    member = group_consumer(bootstrap_servers, group, **GROUP_CONF)
    join(member, topic, 1)
    wait_until(lambda: group_settled(bootstrap_servers, group, topic, 1, members=1), timeout=60)
    stop = threading.Event()
    lock = threading.Lock()

    def keep_polling() -> None:  # member A stays alive and in the group
        while not stop.is_set():
            with lock:
                member.poll(0.2)

    thread = threading.Thread(target=keep_polling, daemon=True)
    thread.start()
    _grow(bootstrap_servers, topic, 3)
    try:
        yield Orphaned(topic, group, member)
    finally:
        stop.set()
        thread.join(10)
        member.close()


def test_lag_monitor_reports_orphaned(bootstrap_servers: str, orphaned: Orphaned) -> None:
    options = LagOptions(
        groups=re.compile(f"^{re.escape(orphaned.group)}$"),
        thresholds=StatusThresholds(orphan_seconds=1.0),
    )
    poller = LagPoller(Settings(bootstrap_servers=bootstrap_servers), options)

    def statuses() -> dict[int, Status] | None:
        g = poller.poll_once().groups.get(orphaned.group)
        if g is None:
            return None
        got = {p.partition: p.status for p in g.partitions if p.topic == orphaned.topic}
        return got if got.get(1) is Status.ORPHANED and got.get(2) is Status.ORPHANED else None

    try:
        got = wait_until(statuses, timeout=60, interval=0.5)
        snap = poller.snapshot
    finally:
        poller.stop()
    assert got[0] is not Status.ORPHANED  # member A owns partition 0
    g = snap.groups[orphaned.group]
    assert (g.state, g.status, g.orphaned_partitions) == ("Stable", Status.ORPHANED, 2)
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: snap))
    labels = {"group": orphaned.group}
    assert registry.get_sample_value("pipeline_consumergroup_orphaned_partitions", labels) == 2
    assert registry.get_sample_value("pipeline_consumergroup_status", labels) == 5
    # `pipeline lag show` polls once: --orphan-after 0s reports what is unowned right now.
    args = ["--bootstrap-servers", bootstrap_servers, "lag", "show", "--group", orphaned.group]
    result = CliRunner().invoke(cli, [*args, "--orphan-after", "0s", "--output", "json"])
    assert result.exit_code == 0, result.output
    (shown,) = json.loads(result.output)["groups"]
    assert shown["status"] == "ORPHANED"
    assert shown["orphaned_partitions"] == 2
    by_partition = {p["partition"]: p for p in shown["partitions"]}
    assert by_partition[1]["status"] == by_partition[2]["status"] == "ORPHANED"
    assert by_partition[0]["unowned_seconds"] is None
    table = CliRunner().invoke(cli, args, env={"COLUMNS": "200"})  # default 30 s: not yet
    assert table.exit_code == 0, table.output
    assert "unowned" in table.output


def test_worker_that_owns_nothing_rejoins(
    bootstrap_servers: str, unique: Callable[[str], str]
) -> None:
    topic, group = unique("orphan-w"), unique("orphan-wg")
    create_topic(bootstrap_servers, topic, partitions=1)
    member = group_consumer(bootstrap_servers, group, **GROUP_CONF)
    join(member, topic, 1)
    worker = Worker(
        group,
        [topic],
        settings=Settings(bootstrap_servers=bootstrap_servers),
        orphan_check_s=2.0,
        consumer_config=STALE_METADATA,
    )

    @worker.handler(ReminderDue)
    def handle(_event: ReminderDue, _ctx: Context) -> None:
        pass

    stop = threading.Event()
    poller = threading.Thread(target=lambda: [member.poll(0.2) for _ in iter(stop.is_set, True)])
    poller.start()
    try:
        with running(worker):
            # The worker joined a 1-partition topic that A owns: it owns nothing, nothing is lost.
            wait_until(lambda: _owned(bootstrap_servers, group, topic, 2) == {0}, timeout=60)
            _grow(bootstrap_servers, topic, 3)
            # Partitions 1 and 2 are unowned; the worker sees that and rejoins, and the
            # rebalance hands them out (the assignor balances over every topic, so A may get
            # them: the worker also owns the retry topic's partitions).
            wait_until(lambda: _owned(bootstrap_servers, group, topic, 2) == {0, 1, 2}, timeout=90)
            assert worker._runner is not None
            assert worker._runner.orphans is not None
            assert worker._runner.orphans.rejoins >= 1
    finally:
        stop.set()
        poller.join(10)
        member.close()


def test_orphan_probe_reports_the_group_and_survives_a_dead_child(
    bootstrap_servers: str, orphaned: Orphaned
) -> None:
    """The orphan check's admin process (librdkafka#5397 can abort it during a broker bounce):
    it answers with the real group; killed as librdkafka's abort kills it (SIGABRT) or hung,
    one check fails, naming how, and the next one starts a new child and answers again."""
    probe = OrphanProbe(Settings(bootstrap_servers=bootstrap_servers).admin_config(), 3.0)
    try:

        def check() -> ProbeResult | None:
            got = probe.check(orphaned.group, [orphaned.topic])
            return got if got[0] == "Stable" and got[2] == {orphaned.topic: 3} else None

        state, owned, counts = wait_until(check, timeout=60, interval=0.5)
        assert [tp for tp in owned if tp[0] == orphaned.topic] == [(orphaned.topic, 0)]
        assert unowned(state, owned, counts, [orphaned.topic]) == {
            (orphaned.topic, 1),
            (orphaned.topic, 2),
        }
        for sig, how in ((signal.SIGABRT, "exited with -6"), (signal.SIGSTOP, "in time")):
            child = probe._child
            assert child is not None
            os.kill(child.pid, sig)
            with pytest.raises(ProbeDied, match=how):
                probe.check(orphaned.group, [orphaned.topic])
            assert child.poll() is not None  # the dead or hung child is gone
            assert probe.check(orphaned.group, [orphaned.topic])[2] == {orphaned.topic: 3}
        assert probe.restarts == 2
    finally:
        probe.close()
    assert probe._child is None
