"""Scheduler pieces that need no broker: record format, tiers, commit metadata, held heap, HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from confluent_kafka import TopicPartition
from prometheus_client import CollectorRegistry, Counter

from pipeline._delay import format_duration, parse_duration, parse_schedule, scheduled_headers
from pipeline._errors import ConfigError, DecodeError
from pipeline._headers import DELIVER_AT, DELIVERED_AT, SCHEDULER_SEQ, TARGET_TOPIC
from pipeline._http import ServiceHTTPServer
from pipeline._settings import Settings
from pipeline.scheduler._records import SchedulerConfig, decode_pending, encode_pending
from pipeline.scheduler._service import Scheduler
from pipeline.scheduler._state import (
    HeldRecords,
    Outgoing,
    PartitionState,
    forward_headers,
    hop_headers,
    record_seq,
)
from pipeline.scheduler._topics import TopicExistence


def test_scheduled_headers_round_trip():
    headers = scheduled_headers("orders", 1763800000000)
    assert headers == [(DELIVER_AT, b"1763800000000"), (TARGET_TOPIC, b"orders")]
    assert parse_schedule([("other", b"x"), *headers]) == ("orders", 1763800000000)


@pytest.mark.parametrize("bad", ["", "has space", "x" * 250])
def test_scheduled_headers_rejects_bad_topics(bad):
    with pytest.raises(ValueError, match="invalid target topic"):
        scheduled_headers(bad, 1)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ([(TARGET_TOPIC, b"t")], "missing header pipeline-deliver-at"),
        ([(DELIVER_AT, b"1")], "missing header pipeline-target-topic"),
        ([(DELIVER_AT, b"-5"), (TARGET_TOPIC, b"t")], "not epoch milliseconds"),
        ([(DELIVER_AT, b"12.5"), (TARGET_TOPIC, b"t")], "not epoch milliseconds"),
        ([(DELIVER_AT, b"1"), (TARGET_TOPIC, b"\xff")], "not UTF-8"),
        ([(DELIVER_AT, b"1"), (TARGET_TOPIC, b"a b")], "not a valid topic"),
        ([(DELIVER_AT, None), (TARGET_TOPIC, b"t")], "missing header"),
    ],
)
def test_parse_schedule_rejects_bad_headers(headers, message):
    with pytest.raises(DecodeError, match=message):
        parse_schedule(headers)


def test_durations():
    assert [parse_duration(t) for t in ("500ms", "1s", "2m", "1h", "1d")] == [
        500,
        1000,
        120_000,
        3_600_000,
        86_400_000,
    ]
    assert [format_duration(ms) for ms in (500, 1000, 120_000, 86_400_000)] == [
        "500ms",
        "1s",
        "2m",
        "1d",
    ]
    for bad in ("0s", "1w", "s", "-1s"):
        with pytest.raises(ConfigError):
            parse_duration(bad)


def test_config_tier_choice_leaves_the_lead_for_memory():
    config = SchedulerConfig(tiers=("5s", "1s", "30s"), lead_ms=500, instance_id="a")
    assert config.tier_ms == (1000, 5000, 30000)
    assert list(config.tier_topics) == [
        "pipeline.scheduler.1s",
        "pipeline.scheduler.5s",
        "pipeline.scheduler.30s",
    ]
    assert config.choose_tier(1499) is None  # held in memory
    assert config.choose_tier(1500) == 1000
    assert config.choose_tier(5499) == 1000
    assert config.choose_tier(5500) == 5000
    assert config.choose_tier(10**9) == 30000
    assert config.hold_window_ms == 1500
    assert config.transactional_id == "pipeline-scheduler.a"


def test_config_validation():
    with pytest.raises(ConfigError):
        SchedulerConfig(tiers=())
    with pytest.raises(ConfigError):
        SchedulerConfig(tiers=("1s", "1000ms"))
    with pytest.raises(ConfigError):
        SchedulerConfig(topic="bad topic")


@pytest.mark.parametrize(
    "pending",
    [set(), {100}, {100, 101, 102}, {100, 150, 151, 190}, set(range(100, 5000, 3))],
)
def test_pending_metadata_round_trip(pending):
    next_offset = 5000
    offset, meta = encode_pending(next_offset, pending)
    assert len(meta) < 4096
    restored_next, restored = decode_pending(offset, meta)
    if not pending:
        assert (offset, meta) == (next_offset, "")
        return
    assert offset == min(pending)
    assert restored <= pending
    # Nothing pending is ever treated as done: anything cut from the list is re-read.
    done = set(range(offset, restored_next)) - restored
    assert not done & pending
    if len(pending) < 100:
        assert restored == pending
        assert restored_next == next_offset


def test_damaged_metadata_skips_nothing():
    assert decode_pending(7, "garbage") == (7, frozenset())
    assert decode_pending(7, "s1:zz:x.y") == (7, frozenset())
    assert decode_pending(-1001, "") == (0, frozenset())


def test_partition_state_skips_work_done_by_a_previous_owner():
    offset, meta = encode_pending(20, {10, 15})
    state = PartitionState.restored("t", 0, "1s", 1000, offset, meta)
    assert state.next_offset == 10
    assert not state.already_done(10)
    assert state.already_done(11)
    assert not state.already_done(15)
    assert not state.already_done(20)


def _out(due: int, part: PartitionState, offset: int) -> Outgoing:
    out = Outgoing("forward", "t", b"k", b"v", [], part, offset)
    out.due_ms = due
    return out


def test_held_records_come_out_in_due_then_sequence_order():
    part = PartitionState("s", 0, "entry", None)
    held = HeldRecords()
    held.push(_out(200, part, 3), seq=3)
    held.push(_out(100, part, 5), seq=5)
    held.push(_out(200, part, 1), seq=1)
    assert held.next_due() == 100
    assert held.pop_due(99) == []
    assert [o.offset for o in held.pop_due(200)] == [5, 1, 3]
    assert part.held == 0


def test_held_records_of_a_revoked_partition_are_dropped():
    part = PartitionState("s", 0, "entry", None)
    held = HeldRecords()
    held.push(_out(100, part, 1), seq=1)
    part.alive = False
    assert held.next_due() is None
    assert held.pop_due(1000) == []


def test_header_rewrites():
    original = [("a", b"1"), *scheduled_headers("t", 5)]
    hopped = hop_headers(original, seq=42)
    assert hopped[:3] == original
    assert record_seq(hopped, offset=7) == 42
    assert record_seq(original, offset=7) == 7
    forwarded = forward_headers(hop_headers(hopped, 42), now_ms=99)
    assert forwarded == [("a", b"1"), (DELIVERED_AT, b"99")]
    assert SCHEDULER_SEQ not in dict(forwarded)


def test_scheduler_construction_touches_no_network():
    scheduler = Scheduler(Settings(bootstrap_servers="127.0.0.1:1"), SchedulerConfig())
    assert scheduler.healthy()
    assert not scheduler.ready()
    assert scheduler.assignment == []


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_http_server_serves_metrics_and_probes():
    registry = CollectorRegistry()
    Counter("pipeline_test_things_total", "Things.", registry=registry).inc(3)
    state = {"ready": False}

    def broken() -> bool:
        raise RuntimeError("boom")

    with ServiceHTTPServer(registry, lambda: True, lambda: state["ready"]) as server:
        assert server.port != 0
        status, body = _get(server.url + "/metrics")
        assert status == 200
        assert "pipeline_test_things_total 3.0" in body
        assert _get(server.url + "/healthz")[0] == 200
        assert _get(server.url + "/readyz")[0] == 503
        state["ready"] = True
        assert _get(server.url + "/readyz")[0] == 200
        assert _get(server.url + "/nope")[0] == 404
    with ServiceHTTPServer(registry, broken, broken) as server:
        assert _get(server.url + "/healthz")[0] == 503


def test_batched_metrics_match_a_prometheus_histogram():
    from prometheus_client import Histogram, generate_latest

    from pipeline.scheduler._metrics import _LATENESS_BUCKETS, SchedulerMetrics

    registry = CollectorRegistry()
    metrics = SchedulerMetrics(registry)
    reference = CollectorRegistry()
    histogram = Histogram(
        "pipeline_scheduler_lateness_seconds", "x", buckets=_LATENESS_BUCKETS, registry=reference
    )
    values = [0.0, -0.5, 0.005, 0.0051, 0.3, 1.0, 59.9, 61.0, 1000.0]
    for value in values:
        metrics.forwarded(value)
        histogram.observe(max(value, 0.0))
    metrics.hopped("1s")
    metrics.hopped("1s")
    assert registry.get_sample_value("pipeline_scheduler_forwarded_total") == 0  # not flushed
    metrics.flush()
    metrics.flush()  # nothing new: no change

    def samples(reg: CollectorRegistry) -> list[str]:
        lines = generate_latest(reg).decode().splitlines()
        return [ln for ln in lines if ln.startswith("pipeline_scheduler_lateness_seconds_")]

    ours = [ln for ln in samples(registry) if "_created" not in ln]
    assert ours == [ln for ln in samples(reference) if "_created" not in ln]
    assert registry.get_sample_value("pipeline_scheduler_forwarded_total") == len(values)
    assert registry.get_sample_value("pipeline_scheduler_tier_hops_total", {"tier": "1s"}) == 2


class _FakeConsumer:
    """Records what the scheduler asks of its consumer; committed offsets come from a dict."""

    def __init__(self, committed: dict[tuple[str, int], int]) -> None:
        self.stored = committed
        self.calls: list[tuple[str, list[tuple[str, int, int]]]] = []

    def _log(self, name: str, tps: list[TopicPartition]) -> None:
        self.calls.append((name, [(tp.topic, tp.partition, tp.offset) for tp in tps]))

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.stored.get((tp.topic, tp.partition), -1001))
            for tp in tps
        ]

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        self._log("commit", offsets)

    def resume(self, tps: list[TopicPartition]) -> None:
        self._log("resume", tps)

    def seek(self, tp: TopicPartition) -> None:
        self._log("seek", [tp])


class _FakeProducer:
    def __init__(self, unacknowledged: int = 0) -> None:
        self.unacknowledged = unacknowledged
        self.flushes = 0

    def flush(self, timeout: float) -> int:
        self.flushes += 1
        return self.unacknowledged

    def list_topics(self, topic: str, timeout: float):  # pragma: no cover - not reached
        raise AssertionError("no metadata lookups expected")


class _FakeError:
    def str(self) -> str:
        return "Local: Message timed out"


class _FakeDelivered:
    def topic(self) -> str:
        return "target"


def _offline_scheduler(producer: _FakeProducer, consumer: _FakeConsumer) -> Scheduler:
    scheduler = Scheduler(Settings(bootstrap_servers="127.0.0.1:1"), SchedulerConfig(topic="s"))
    scheduler._producer = producer
    scheduler._consumer = consumer
    scheduler._topics = TopicExistence(producer)
    return scheduler


def test_a_failed_delivery_stops_commits_and_rereads_the_partition_from_its_commit():
    consumer = _FakeConsumer({("s", 0): 40, ("s", 1): 7})
    producer = _FakeProducer()
    scheduler = _offline_scheduler(producer, consumer)
    scheduler._on_assign(consumer, [TopicPartition("s", 0), TopicPartition("s", 1)])
    assert consumer.calls == [("resume", [("s", 0, -1001), ("s", 1, -1001)])]
    broken, fine = scheduler._parts[("s", 0)], scheduler._parts[("s", 1)]
    broken.next_offset, fine.next_offset = 50, 9
    callback = scheduler._errback(broken)
    assert callback is scheduler._errback(broken)  # one object per partition, not per record
    callback(_FakeError(), _FakeDelivered())
    consumer.calls.clear()
    scheduler._commit()
    assert producer.flushes == 1  # in-flight records settle before any offset moves
    assert consumer.calls == [("commit", [("s", 1, 9)])]  # the broken partition stays behind
    consumer.calls.clear()
    scheduler._rewind_broken()
    assert not broken.alive
    again = scheduler._parts[("s", 0)]
    assert again is not broken
    assert again.next_offset == 40
    assert consumer.calls == [("resume", [("s", 0, -1001)]), ("seek", [("s", 0, 40)])]
    callback(_FakeError(), _FakeDelivered())  # late failure reports of the old state: ignored
    assert not scheduler._broken


def test_nothing_is_committed_while_records_are_unacknowledged():
    consumer = _FakeConsumer({("s", 0): 3})
    scheduler = _offline_scheduler(_FakeProducer(unacknowledged=2), consumer)
    scheduler._on_assign(consumer, [TopicPartition("s", 0)])
    scheduler._parts[("s", 0)].next_offset = 10
    consumer.calls.clear()
    scheduler._commit()
    assert consumer.calls == []
