"""Pure logic of ``pipeline.stats``: header folds, completed arithmetic, model, collector."""

from __future__ import annotations

import re

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from pipeline import ConfigError, WorkerMetricsError
from pipeline._headers import (
    ATTEMPT,
    ERROR_TYPE,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TOPIC,
    REDRIVEN_AT,
)
from pipeline.stats import (
    STATES,
    DeadLetterTally,
    GroupStats,
    RetryTally,
    StatsCollector,
    StatsOptions,
    StatsSnapshot,
    completed_count,
    read_in_flight,
    with_in_flight,
)
from pipeline.stats._reader import scheduler_topics
from pipeline.stats._scan import cut_ranges
from pipeline.stats._tally import sum_read
from pipeline.stats._workers import parse_in_flight

Headers = list[tuple[str, bytes | None]]


def at(offset: int, *extra: tuple[str, bytes]) -> Headers:
    return [
        (ORIGINAL_TOPIC, b"orders"),
        (ORIGINAL_PARTITION, b"0"),
        (ORIGINAL_OFFSET, str(offset).encode()),
        *extra,
    ]


def dead_letter(offset: int, error: bytes = b"x.Boom", redriven_at: bytes | None = None) -> Headers:
    extra = [(ERROR_TYPE, error), (ATTEMPT, b"3")]
    if redriven_at is not None:
        extra.append((REDRIVEN_AT, redriven_at))
    return at(offset, *extra)


T1, T2 = b"2026-12-03T10:00:00.000Z", b"2026-12-03T11:00:00.000Z"


def test_retry_tally_tells_worker_copies_from_redrive_writes() -> None:
    tally = RetryTally()
    tally.add(at(1, (ATTEMPT, b"2")))
    tally.add(at(2, (REDRIVEN_AT, T1)))
    tally.add(at(2, (REDRIVEN_AT, T1), (ATTEMPT, b"2")))  # a redriven record retried again
    tally.add(at(2, (REDRIVEN_AT, T2)))
    tally.add([])
    assert (tally.worker_copies, tally.redrive_writes, tally.other) == (2, 2, 1)
    assert tally.latest_redrive == {(b"orders", b"0", b"2"): T2}


def test_a_dead_letter_is_dead_until_redriven_and_again_after_it_fails_again() -> None:
    retry, dlq = RetryTally(), DeadLetterTally()
    dlq.add(dead_letter(1), 0, 0)
    dlq.add(dead_letter(2), 0, 1)
    dlq.add(dead_letter(3, b"expired"), 0, 2)
    assert dlq.counts(retry) == (2, 1)
    retry.add(at(1, (REDRIVEN_AT, T1)))  # offset 1 redriven
    assert dlq.counts(retry) == (1, 1)
    dlq.add(dead_letter(1, redriven_at=T1), 0, 3)  # ... and failed again: a copy
    assert dlq.counts(retry) == (2, 1)
    retry.add(at(1, (REDRIVEN_AT, T2)))  # redriven with --again
    assert dlq.counts(retry) == (1, 1)
    assert dlq.records == 4


def test_crash_duplicates_and_records_without_origin() -> None:
    retry, dlq = RetryTally(), DeadLetterTally()
    dlq.add(dead_letter(5), 0, 0)
    dlq.add(dead_letter(5), 1, 0)  # dead-lettered twice by a worker that crashed: one message
    dlq.add([(ERROR_TYPE, b"undecodable")], 0, 1)  # no origin headers: a message of its own
    dlq.add([(ERROR_TYPE, b"undecodable")], 0, 2)
    assert dlq.counts(retry) == (3, 0)
    retry.add(at(5, (REDRIVEN_AT, T1)))
    assert dlq.counts(retry) == (2, 0)


def test_expired_is_the_state_of_the_latest_copy() -> None:
    retry, dlq = RetryTally(), DeadLetterTally()
    dlq.add(dead_letter(1, b"x.Boom"), 0, 0)
    retry.add(at(1, (REDRIVEN_AT, T1)))
    dlq.add(dead_letter(1, b"expired", redriven_at=T1), 0, 1)
    assert dlq.counts(retry) == (0, 1)


def test_completed_is_read_minus_copies_floored_at_zero() -> None:
    assert sum_read([(10, 0), (None, 0), (3, 5), (7, 2)]) == 10 + 0 + 0 + 5
    assert completed_count(52, 5, 8) == 39
    assert completed_count(3, 5, 8) == 0


def test_scheduler_topics_are_the_entry_and_its_duration_tiers() -> None:
    names = ["s", "s.1s", "s.10m", "s.dlq", "s.retry", "sx.1s", "other", "s.1s.x"]
    assert scheduler_topics(names, "s") == ["s", "s.10m", "s.1s"]


def test_exactness_and_json_keys() -> None:
    g = GroupStats(group="g", pending=3, dead=1, completed=9)
    doc = g.to_json()
    assert set(doc) == {"group", "state", "members", "topics", "exact", "truncated", "error"} | set(
        STATES
    )
    assert doc["in_flight"] is None
    assert doc["exact"]["pending"]
    assert doc["exact"]["dead"]
    assert not doc["exact"]["completed"]
    cut = GroupStats(group="g", truncated=True)
    assert cut.exact("pending")
    assert not cut.exact("dead")
    failed = GroupStats(group="g", error="boom")
    assert not any(failed.exact(s) for s in STATES)


def test_collector_exports_one_series_per_state_except_in_flight() -> None:
    snap = StatsSnapshot(
        taken_at=1.0, groups={"g": GroupStats(group="g", pending=3, dead=2, redriven=1)}
    )
    registry = CollectorRegistry()
    registry.register(StatsCollector(lambda: snap))
    text = generate_latest(registry).decode()
    assert 'pipeline_consumergroup_messages{group="g",state="pending"} 3.0' in text
    assert 'pipeline_consumergroup_messages{group="g",state="dead"} 2.0' in text
    assert 'pipeline_consumergroup_messages{group="g",state="redriven"} 1.0' in text
    assert 'state="in_flight"' not in text
    assert 'pipeline_consumergroup_messages_exact{group="g",state="completed"} 0.0' in text
    samples = [ln for ln in text.splitlines() if ln.startswith("pipeline_consumergroup_messages{")]
    assert len(samples) == len(STATES) - 1


def test_in_flight_is_summed_per_group_from_worker_metrics() -> None:
    text = (
        "# HELP pipeline_worker_in_flight Records dispatched, not finished.\n"
        "# TYPE pipeline_worker_in_flight gauge\n"
        'pipeline_worker_in_flight{group="a"} 3.0\n'
        'pipeline_worker_in_flight{group="b"} 1.0\n'
        'pipeline_worker_paused_partitions{group="a"} 7.0\n'
    )
    assert parse_in_flight(text) == {"a": 3, "b": 1}
    assert parse_in_flight("") == {}
    with pytest.raises(WorkerMetricsError, match="not Prometheus metrics"):
        parse_in_flight("pipeline_worker_in_flight{group= 3\n")
    snap = StatsSnapshot(groups={"a": GroupStats(group="a"), "c": GroupStats(group="c")})
    got = with_in_flight(snap, {"a": 3, "b": 1})
    assert got.groups["a"].in_flight == 3
    assert got.groups["c"].in_flight is None
    assert not got.groups["a"].exact("in_flight")


def test_a_worker_url_must_be_http() -> None:
    with pytest.raises(WorkerMetricsError, match="is not http"):
        read_in_flight(["file:///etc/passwd"])


def test_cut_ranges_keeps_the_newest_records_of_each_topic() -> None:
    ranges = {("a", 0): (0, 10), ("a", 1): (5, 6), ("b", 0): (3, 3), ("c", 0): (0, 4)}
    kept, cut = cut_ranges(ranges, 8)
    assert kept == {("a", 0): (6, 10), ("a", 1): (5, 6), ("c", 0): (0, 4)}
    assert cut == {"a"}


def test_internal_groups_are_left_out_and_the_pattern_filters() -> None:
    options = StatsOptions(scheduler_group="sched")
    assert options.watches("payments")
    assert not options.watches("payments.dlq-redrive")
    assert not options.watches("sched")
    only = StatsOptions(groups=re.compile("^pay"))
    assert only.watches("payments")
    assert not only.watches("orders")
    with pytest.raises(ConfigError, match="max_scan"):
        StatsOptions(max_scan=0)
