"""Unit tests of the poller (a fake admin client) and the collector (a fresh registry)."""

from __future__ import annotations

import concurrent.futures
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    ConsumerGroupType,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import (
    ConsumerGroupDescription,
    ConsumerGroupListing,
    ListConsumerGroupsResult,
    ListOffsetsResultInfo,
    MemberAssignment,
    MemberDescription,
)
from prometheus_client import CollectorRegistry, generate_latest

from pipeline import Settings
from pipeline.cli.lag import parse_duration
from pipeline.lag import LagCollector, LagOptions, LagPoller, StatusThresholds
from pipeline.lag._render import snapshot_json, snapshot_rows, sparkline


def done(value: Any) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)
    return future


def fail(msg: str = "boom") -> KafkaException:
    return KafkaException(KafkaError(KafkaError.REQUEST_TIMED_OUT, msg))


class FakeAdmin:
    """Two groups on one 2-partition topic; calls can be made to fail one by one."""

    def __init__(self) -> None:
        self.groups = {"g1": {("t", 0): 10, ("t", 1): 20}, "g2": {("t", 0): 5}}
        self.high = {("t", 0): 100, ("t", 1): 100}
        self.fail_offsets_for: set[str] = set()
        self.fail_list = False
        self.fail_list_offsets = False
        self.topics = {"t": 2}

    def list_consumer_groups(self, **_: Any) -> concurrent.futures.Future[Any]:
        if self.fail_list:
            return done(fail())
        valid = [
            ConsumerGroupListing(g, False, ConsumerGroupState.STABLE, ConsumerGroupType.CLASSIC)
            for g in self.groups
        ]
        return done(ListConsumerGroupsResult(valid=valid, errors=[]))

    def describe_consumer_groups(self, ids: list[str], **_: Any) -> dict[str, Any]:
        out = {}
        for g in ids:
            member = MemberDescription("m1", "c1", "h", MemberAssignment([TopicPartition("t", 0)]))
            out[g] = done(
                ConsumerGroupDescription(
                    g,
                    False,
                    [member],
                    "range",
                    ConsumerGroupState.STABLE,
                    None,
                    type=ConsumerGroupType.CONSUMER if g == "g2" else ConsumerGroupType.CLASSIC,
                )
            )
        return out

    def list_consumer_group_offsets(self, request: list[Any], **_: Any) -> dict[str, Any]:
        g = request[0].group_id
        if g in self.fail_offsets_for:
            return {g: done(fail())}
        tps = [TopicPartition(t, p, o) for (t, p), o in self.groups[g].items()]
        return {g: done(ConsumerGroupTopicPartitions(g, tps))}

    def list_topics(self, **_: Any) -> Any:
        topics = {
            name: SimpleNamespace(error=None, partitions=dict.fromkeys(range(n)))
            for name, n in self.topics.items()
        }
        return SimpleNamespace(topics=topics)

    def list_offsets(self, request: dict[TopicPartition, Any], **_: Any) -> dict[Any, Any]:
        out = {}
        for tp, spec in request.items():
            if self.fail_list_offsets:
                out[tp] = done(fail())
                continue
            value = (
                0 if type(spec).__name__ == "EarliestSpec" else self.high[(tp.topic, tp.partition)]
            )
            out[tp] = done(ListOffsetsResultInfo(value, -1, 0))
        return out


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def rig() -> tuple[FakeAdmin, LagPoller, Clock]:
    admin, clock = FakeAdmin(), Clock()
    options = LagOptions(
        interval=1,
        marker_probe_max=0,
        thresholds=StatusThresholds(window_seconds=10, stall_seconds=4, min_samples=3),
    )
    poller = LagPoller(Settings(), options, admin=admin, clock=clock)  # type: ignore[arg-type]
    return admin, poller, clock


def tick(poller: LagPoller, clock: Clock, admin: FakeAdmin, produced: int = 10) -> None:
    clock.now += 1
    admin.high = {tp: v + produced for tp, v in admin.high.items()}
    poller.poll_once()


def test_poll_builds_the_snapshot(rig: tuple[FakeAdmin, LagPoller, Clock]) -> None:
    _, poller, _ = rig
    snap = poller.poll_once()
    assert snap.ok
    g1 = snap.groups["g1"]
    assert [p.lag for p in g1.partitions] == [90, 80]
    assert (g1.protocol, snap.groups["g2"].protocol) == ("classic", "consumer")
    assert g1.members == 1
    assert snap.offsets[("t", 1)].high_watermark == 100


def test_one_failed_group_goes_stale_and_keeps_the_rest(
    rig: tuple[FakeAdmin, LagPoller, Clock],
) -> None:
    admin, poller, clock = rig
    for _ in range(3):
        tick(poller, clock, admin)
    before = poller.snapshot.groups["g2"]
    admin.fail_offsets_for = {"g2"}
    tick(poller, clock, admin)
    snap = poller.snapshot
    assert not snap.ok
    assert snap.errors["committed"] == 1
    assert snap.groups["g2"].stale
    assert snap.groups["g2"].partitions == before.partitions  # last good values kept
    assert not snap.groups["g1"].stale
    assert snap.groups["g1"].partitions[0].lag == 130
    # time-lag history survived the failure
    assert snap.groups["g1"].partitions[0].lag_seconds == pytest.approx(
        3.0, abs=0.01
    )  # since the first sample
    assert snap.groups["g1"].partitions[0].lag_seconds_lower_bound


def test_failed_list_marks_everything_stale_without_wiping(
    rig: tuple[FakeAdmin, LagPoller, Clock],
) -> None:
    admin, poller, clock = rig
    tick(poller, clock, admin)
    admin.fail_list = True
    tick(poller, clock, admin)
    snap = poller.snapshot
    assert set(snap.groups) == {"g1", "g2"}
    assert all(g.stale for g in snap.groups.values())
    assert snap.errors["list_groups"] == 1
    admin.fail_list = False
    tick(poller, clock, admin)
    assert not any(g.stale for g in poller.snapshot.groups.values())


def test_failed_list_offsets_keeps_previous_offsets(
    rig: tuple[FakeAdmin, LagPoller, Clock],
) -> None:
    admin, poller, clock = rig
    tick(poller, clock, admin)
    admin.fail_list_offsets = True
    tick(poller, clock, admin)
    snap = poller.snapshot
    assert snap.offsets[("t", 0)].stale
    assert snap.groups["g1"].stale
    assert snap.groups["g1"].partitions[0].lag == 100


def test_deleted_groups_and_topics_disappear(rig: tuple[FakeAdmin, LagPoller, Clock]) -> None:
    admin, poller, clock = rig
    tick(poller, clock, admin)
    del admin.groups["g2"]
    admin.topics = {}
    tick(poller, clock, admin)
    snap = poller.snapshot
    assert set(snap.groups) == {"g1"}
    assert snap.groups["g1"].partitions == ()
    assert snap.offsets == {}


def test_interpolated_time_lag_and_stall(rig: tuple[FakeAdmin, LagPoller, Clock]) -> None:
    admin, poller, clock = rig
    for _ in range(8):
        tick(poller, clock, admin)  # 10 records/s; g1 never commits
    part = poller.snapshot.groups["g1"].partitions[0]
    assert part.lag_seconds_lower_bound  # committed offset 10 predates the history
    admin.groups["g1"][("t", 0)] = 150  # record 150 was produced between samples
    tick(poller, clock, admin)
    part = poller.snapshot.groups["g1"].partitions[0]
    assert not part.lag_seconds_lower_bound
    assert part.lag_seconds > 0
    assert poller.snapshot.groups["g2"].status.name in ("STALL", "STOP")


def test_collector_serves_snapshot_without_calling_kafka(
    rig: tuple[FakeAdmin, LagPoller, Clock],
) -> None:
    admin, poller, clock = rig
    tick(poller, clock, admin)
    registry = CollectorRegistry()
    registry.register(
        LagCollector(lambda: poller.snapshot, compat_kafka_exporter=True, clock=clock)
    )
    admin.fail_list = True  # a scrape must not notice
    text = generate_latest(registry).decode()
    assert 'pipeline_consumergroup_lag{group="g1",partition="0",topic="t"} 100.0' in text
    assert 'kafka_consumergroup_lag{consumergroup="g1",partition="0",topic="t"} 100.0' in text
    assert 'kafka_consumergroup_lag_sum{consumergroup="g1",topic="t"} 190.0' in text
    assert 'pipeline_partition_end_offset{partition="1",topic="t"} 110.0' in text
    assert "pipeline_lag_snapshot_age_seconds 0.0" in text
    assert (
        'pipeline_consumergroup_info{assignor="range",group="g2",isolation="read_committed",'
        'protocol="consumer",state="Stable"} 1.0' in text
    )
    assert 'pipeline_lag_poll_errors_total{call="list_groups"} 0.0' in text
    assert registry.get_sample_value("pipeline_consumergroup_members", {"group": "g1"}) == 1


def test_collector_without_compat_and_before_first_poll() -> None:
    registry = CollectorRegistry()
    poller = LagPoller(Settings())
    registry.register(LagCollector(lambda: poller.snapshot))
    text = generate_latest(registry).decode()
    assert "kafka_consumergroup_lag" not in text
    assert "pipeline_lag_snapshot_age_seconds +Inf" in text


def test_render(rig: tuple[FakeAdmin, LagPoller, Clock]) -> None:
    _, poller, _ = rig
    snap = poller.poll_once()
    rows = snapshot_rows(snap)
    # The fake's only member owns t[0] of the 2 partitions: t[1] is flagged unowned (not yet
    # ORPHANED: that takes orphan_seconds of polls).
    assert rows[0][:7] == ["g1", "Stable", "OK", 1, "t", 2, "170 (unowned)"]
    data = snapshot_json(snap, "g2")
    assert [g["group"] for g in data["groups"]] == ["g2"]
    assert sparkline([0, 5, 10]) == "▁▄█"
    assert sparkline([0, 0]) == "▁▁"


def test_parse_duration() -> None:
    assert parse_duration("10s") == 10
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration("3") == 3


def test_cli_rejects_bad_options(clean_env: pytest.MonkeyPatch) -> None:
    from pipeline.cli import cli

    result = CliRunner().invoke(cli, ["lag", "show", "--interval", "fast"])
    assert result.exit_code == 2
    assert "not a duration" in result.output
    result = CliRunner().invoke(cli, ["lag", "serve", "--window", "1s", "--stall", "5s"])
    assert result.exit_code == 1
    assert "stall_seconds" in result.output


def test_fast_exposition_matches_prometheus_client(rig: tuple[FakeAdmin, LagPoller, Clock]) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from pipeline.lag import LagExposition
    from pipeline.lag._exposition import render_text

    admin, poller, clock = rig
    admin.groups['we"ird\\grp'] = {("t", 1): 3}
    tick(poller, clock, admin)
    collector = LagCollector(lambda: poller.snapshot, compat_kafka_exporter=True, clock=clock)
    registry = CollectorRegistry()
    registry.register(collector)

    def samples(text: str) -> set[tuple[str, tuple[tuple[str, str], ...], float]]:
        return {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    assert samples(render_text(collector).decode()) == samples(generate_latest(registry).decode())
    exposition = LagExposition(lambda: poller.snapshot, clock=clock)
    clock.now += 7
    body = exposition.render().decode()
    ages = [line for line in body.splitlines() if line.startswith("pipeline_lag_snapshot_age")]
    assert ages == ["pipeline_lag_snapshot_age_seconds 7.0"]


@pytest.mark.parametrize("compat", [False, True])
def test_snapshot_text_is_byte_identical_to_the_collector(
    rig: tuple[FakeAdmin, LagPoller, Clock], compat: bool
) -> None:
    from pipeline.lag import LagExposition
    from pipeline.lag._exposition import render_text

    admin, poller, clock = rig
    admin.groups['we"ird\\grp'] = {("t", 1): 3}
    tick(poller, clock, admin)
    tick(poller, clock, admin)
    snap = poller.snapshot
    assert any(p.committed is None or p.lag for g in snap.groups.values() for p in g.partitions)
    collector = LagCollector(lambda: snap, compat_kafka_exporter=compat, age=False)
    exposition = LagExposition(lambda: snap, compat_kafka_exporter=compat, clock=clock)
    body = exposition.render()
    expected = render_text(collector)
    assert body.startswith(expected)
    assert b'we\\"ird\\\\grp' in expected


def test_metrics_are_served_gzipped_to_a_scraper_that_accepts_it(
    rig: tuple[FakeAdmin, LagPoller, Clock],
) -> None:
    import gzip
    import urllib.request

    from pipeline.lag import LagExposition, LagHTTPServer

    admin, poller, clock = rig
    tick(poller, clock, admin)
    exposition = LagExposition(lambda: poller.snapshot, compat_kafka_exporter=True, clock=clock)
    poller_snapshot = poller.snapshot
    exposition.refresh(poller_snapshot)
    with LagHTTPServer(exposition, lambda: True, lambda: True) as server:
        plain = urllib.request.urlopen(f"{server.url}/metrics", timeout=10)
        request = urllib.request.Request(
            f"{server.url}/metrics", headers={"Accept-Encoding": "gzip"}
        )
        packed = urllib.request.urlopen(request, timeout=10)
        assert plain.headers.get("Content-Encoding") is None
        assert packed.headers["Content-Encoding"] == "gzip"
        body, zipped = plain.read(), packed.read()
    assert len(zipped) < len(body)
    assert gzip.decompress(zipped) == body
    assert b"pipeline_lag_snapshot_age_seconds" in body
    assert b"kafka_consumergroup_lag{" in body
