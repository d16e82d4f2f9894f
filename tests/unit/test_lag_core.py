"""Unit tests of lag math, the time-lag table and the status rules (no Kafka)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.lag import (
    Isolation,
    OffsetReset,
    OffsetTimeTable,
    PartitionOffsets,
    PartitionWindow,
    Status,
    StatusThresholds,
    choose_isolation,
    offset_lag,
    worst,
)


def log(start: int = 0, high: int = 100, stable: int | None = None) -> PartitionOffsets:
    return PartitionOffsets(
        topic="t",
        partition=0,
        log_start=start,
        high_watermark=high,
        stable_offset=high if stable is None else stable,
    )


def test_read_committed_measures_against_stable_offset() -> None:
    assert offset_lag(90, log(high=100, stable=95), Isolation.READ_COMMITTED).lag == 5
    assert offset_lag(90, log(high=100, stable=95), Isolation.READ_UNCOMMITTED).lag == 10


def test_lag_floored_at_log_start_and_flagged() -> None:
    result = offset_lag(10, log(start=30, high=50), Isolation.READ_UNCOMMITTED)
    assert (result.lag, result.offset_expired) == (20, True)
    assert (
        offset_lag(30, log(start=30, high=50), Isolation.READ_UNCOMMITTED).offset_expired is False
    )


def test_no_commit_lag_follows_the_offset_reset() -> None:
    partition = log(start=30, high=100, stable=90)
    earliest = offset_lag(None, partition, Isolation.READ_COMMITTED, OffsetReset.EARLIEST)
    assert (earliest.lag, earliest.position, earliest.offset_expired) == (60, 30, False)
    latest = offset_lag(None, partition, Isolation.READ_UNCOMMITTED, OffsetReset.LATEST)
    assert (latest.lag, latest.position, latest.end_offset) == (0, 100, 100)


@given(
    committed=st.integers(-2, 10**6),
    start=st.integers(0, 10**6),
    extra=st.integers(0, 10**6),
    open_txn=st.integers(0, 10**3),
    mode=st.sampled_from(list(Isolation)),
)
def test_lag_never_negative(
    committed: int, start: int, extra: int, open_txn: int, mode: Isolation
) -> None:
    high = start + extra + open_txn
    result = offset_lag(committed, log(start, high, start + extra), mode)
    assert result.lag >= 0
    assert result.lag <= high - start


def test_auto_isolation_detects_readers_past_the_stable_offset() -> None:
    offsets = {("t", 0): log(high=100, stable=90)}
    assert (
        choose_isolation(Isolation.AUTO, {("t", 0): 90}, offsets, False) is Isolation.READ_COMMITTED
    )
    assert (
        choose_isolation(Isolation.AUTO, {("t", 0): 95}, offsets, False)
        is Isolation.READ_UNCOMMITTED
    )
    assert (
        choose_isolation(Isolation.AUTO, {("t", 0): 10}, offsets, True)
        is Isolation.READ_UNCOMMITTED
    )
    assert (
        choose_isolation(Isolation.READ_COMMITTED, {("t", 0): 95}, offsets, True)
        is Isolation.READ_COMMITTED
    )


def test_time_lag_interpolates_between_samples() -> None:
    table = OffsetTimeTable()
    for second in range(0, 101, 10):
        table.add(second * 10, 1000.0 + second)  # 10 records a second; record n at 1000 + (n+1)/10
    lag = table.lag(committed=499, offset_lag=501, now=1100.0)
    assert lag.lower_bound is False
    assert lag.seconds == pytest.approx(50.0)


def test_time_lag_caught_up_is_zero() -> None:
    table = OffsetTimeTable()
    table.add(0, 0.0)
    table.add(100, 10.0)
    assert table.lag(100, 0, 20.0).seconds == 0.0
    assert table.lag(100, 5, 20.0).seconds == 0.0  # not produced by the last sample yet


def test_time_lag_never_extrapolates_before_history() -> None:
    table = OffsetTimeTable()
    table.add(500, 100.0)
    table.add(600, 110.0)
    lag = table.lag(committed=100, offset_lag=500, now=110.0)
    assert lag.lower_bound is True
    assert lag.seconds == pytest.approx(10.0)  # at least since the oldest sample, no guess


def test_idle_runs_are_compressed_and_ring_is_bounded() -> None:
    table = OffsetTimeTable(capacity=4)
    for t in range(100):
        table.add(7, float(t))
    assert len(table) == 2
    for t in range(100, 110):
        table.add(t, float(t))
    assert len(table) == 4


def test_truncated_log_resets_the_table() -> None:
    table = OffsetTimeTable()
    table.add(100, 1.0)
    table.add(5, 2.0)
    assert table.oldest == (5, 2.0)


@given(
    st.lists(st.tuples(st.integers(0, 1000), st.floats(0, 1e6)), min_size=1, max_size=50),
    st.integers(0, 2000),
    st.floats(0, 2e6),
)
def test_time_lag_is_finite_and_not_negative(
    samples: list[tuple[int, float]], committed: int, now: float
) -> None:
    table = OffsetTimeTable(capacity=8)
    for offset, at in sorted(samples, key=lambda s: s[1]):
        table.add(offset, at)
    lag = table.lag(committed, 1, max(now, max(s[1] for s in samples)))
    assert math.isfinite(lag.seconds)
    assert lag.seconds >= 0


TH = StatusThresholds(window_seconds=10, stall_seconds=4, min_samples=3)


def feed(samples: list[tuple[float, int, int]]) -> Status:
    window = PartitionWindow(TH)
    status = Status.OK
    for at, committed, lag in samples:
        status = window.add(at, committed, lag)
    return status


def test_status_ok_when_caught_up_or_moving() -> None:
    assert feed([(0, 10, 0), (1, 10, 0), (20, 10, 0)]) is Status.OK
    assert feed([(0, 10, 5), (1, 20, 4), (2, 30, 5), (3, 40, 3)]) is Status.OK


def test_status_warn_when_lag_grows_while_moving() -> None:
    assert feed([(0, 10, 5), (1, 20, 6), (2, 30, 8), (3, 40, 9)]) is Status.WARN


def test_status_stall_then_stop_when_commits_do_not_move() -> None:
    assert feed([(0, 10, 5), (2, 10, 6), (4, 10, 7)]) is Status.STALL
    assert feed([(0, 10, 5), (5, 10, 6), (10.5, 10, 7)]) is Status.STOP


def test_status_rewind_and_recovery() -> None:
    assert feed([(0, 50, 5), (1, 20, 35)]) is Status.REWIND
    window = PartitionWindow(TH)
    for at in range(12):
        window.add(float(at), 10, 5)
    assert window.evaluate(11.0) is Status.STOP
    assert window.add(12.0, 15, 0) is Status.OK


def test_worst_and_threshold_validation() -> None:
    assert worst([Status.OK, Status.STALL, Status.WARN]) is Status.STALL
    assert worst([]) is Status.OK
    with pytest.raises(ValueError, match="stall_seconds"):
        StatusThresholds(window_seconds=5, stall_seconds=10)
