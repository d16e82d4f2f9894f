"""Unit tests of the worker's pure parts: offsets, backoff, policy, dedup, keyed execution."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, TopicPartition
from prometheus_client import CollectorRegistry

import consumers
from consumers import Dedup, RetryLater, RetryPolicy, exponential
from consumers._commits import Committer
from consumers._dedup import DedupWindow
from consumers._keyed import KeyedExecutor
from consumers._metrics import WorkerMetrics
from consumers._offsets import OffsetTracker, PartitionState
from consumers._process import expired
from pipeline._errors import ConfigError


def test_all_is_sorted_and_complete() -> None:
    assert consumers.__all__ == sorted(consumers.__all__)
    for name in consumers.__all__:
        assert hasattr(consumers, name)


def test_position_is_lowest_incomplete_offset() -> None:
    tracker = OffsetTracker()
    assert tracker.position is None
    for offset in (10, 11, 13, 14):  # 12 is a gap (compaction or a transaction marker)
        tracker.add(offset)
    assert tracker.position == 10
    tracker.complete(11)
    tracker.complete(14)
    assert tracker.position == 10
    tracker.complete(10)
    assert tracker.position == 13
    tracker.complete(13)
    assert tracker.position == 15
    assert tracker.outstanding == 0


def test_offsets_must_increase() -> None:
    tracker = OffsetTracker()
    tracker.add(5)
    with pytest.raises(ValueError, match="dispatched after"):
        tracker.add(5)


def test_commit_due_only_when_moved() -> None:
    part = PartitionState("t", 0)
    part.tracker.add(0)
    assert part.commit_due() == 0
    part.committed = 0
    assert part.commit_due() is None
    part.tracker.complete(0)
    assert part.commit_due() == 1


def test_backoff_grows_and_caps() -> None:
    backoff = exponential(base=0.2, factor=2, max=1.0, jitter=0)
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_backoff_jitter_stays_in_band() -> None:
    backoff = exponential(base=1.0, factor=2, max=100, jitter=0.2)
    assert backoff.delay(1, rand=lambda: 0.0) == pytest.approx(0.8)
    assert backoff.delay(1, rand=lambda: 1.0) == pytest.approx(1.2)


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ConfigError):
        exponential(factor=0.5)


def test_policy_classifies_errors() -> None:
    policy = RetryPolicy(
        max_attempts=4, in_place_attempts=2, retry_on=(OSError,), dead_letter_on=(TimeoutError,)
    )
    assert policy.retryable(OSError())
    assert not policy.retryable(TimeoutError())  # an OSError, but dead_letter_on wins
    assert not policy.retryable(ValueError())
    assert policy.in_place(1)
    assert not policy.in_place(2)
    assert not policy.exhausted(3)
    assert policy.exhausted(4)


def test_retry_later_takes_seconds() -> None:
    assert RetryLater(1.5).delay == 1.5
    with pytest.raises(ValueError, match="negative"):
        RetryLater(-1)


def test_dedup_window_bounds_count_and_age() -> None:
    now = [0.0]
    window = DedupWindow(Dedup(max_ids=2, window_s=10), clock=lambda: now[0])
    window.add(b"a")
    window.add(b"b")
    window.add(b"c")  # evicts a
    assert not window.seen(b"a")
    assert window.seen(b"b")
    assert window.seen(b"c")
    now[0] = 10.5
    window.add(b"d")
    now[0] = 10.6
    assert not window.seen(b"b")
    assert window.seen(b"d")


@pytest.mark.parametrize(
    ("value", "due"), [(b"1000", True), (b"99999999999999", False), (None, False)]
)
def test_expired_epoch_ms(value: bytes | None, due: bool) -> None:
    assert expired(value, 2000) is due


def test_expired_iso() -> None:
    assert expired(b"2001-01-01T00:00:00+00:00", int(time.time() * 1000))
    assert not expired(b"not a time", 0)


def test_keyed_executor_keeps_key_order_and_runs_keys_in_parallel() -> None:
    seen: dict[str, list[int]] = defaultdict(list)
    running = [0]
    peak = [0]
    lock = threading.Lock()
    done = threading.Event()
    total = 8 * 25

    def run(item: tuple[str, int]) -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.001)
        with lock:
            running[0] -= 1
            seen[item[0]].append(item[1])
            if sum(map(len, seen.values())) == total:
                done.set()

    executor: KeyedExecutor[tuple[str, int]] = KeyedExecutor(run, concurrency=4)
    items = [(f"k{k}", (f"k{k}", i)) for i in range(25) for k in range(8)]
    executor.submit_many(items[:100])  # type: ignore[arg-type]
    for key, item in items[100:]:
        executor.submit(key, item)
    assert done.wait(10)
    executor.shutdown()
    assert all(seq == list(range(25)) for seq in seen.values())
    assert peak[0] > 1
    assert executor.busy_keys == 0


def test_keyed_executor_claimed_key_waits_for_release() -> None:
    ran: list[int] = []
    finished = threading.Event()

    def run(item: int) -> None:
        ran.append(item)
        if len(ran) == 4:
            finished.set()

    executor: KeyedExecutor[int] = KeyedExecutor(run, concurrency=2)
    try:
        executor.claim("k")  # its item runs elsewhere (on the poll thread)
        executor.submit_many([("k", 2), ("k", 3), ("other", 10)])
        deadline = time.monotonic() + 5
        while 10 not in ran and time.monotonic() < deadline:
            time.sleep(0.005)
        assert ran == [10]  # the claimed key's items wait ...
        executor.release("k", 1)  # ... until the claim ends, after the item handed back
        assert finished.wait(5)
    finally:
        executor.shutdown()
    assert ran == [10, 1, 2, 3]
    assert executor.busy_keys == 0


def test_handler_durations_match_a_prometheus_histogram() -> None:
    from prometheus_client import CollectorRegistry, Histogram

    from consumers._metrics import _BUCKETS, WorkerMetrics

    values = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.2, 31.0, 0.0005]
    ours = CollectorRegistry()
    metrics = WorkerMetrics(ours, "g")
    metrics.handled_ok({("t", "e"): values[:5]})
    for value in values[5:]:
        metrics.handled("t", "e", value)
    theirs = CollectorRegistry()
    histogram = Histogram(
        "pipeline_worker_handler_duration_seconds",
        "x",
        ["group", "topic", "event_type"],
        buckets=_BUCKETS,
        registry=theirs,
    )
    for value in values:
        histogram.labels("g", "t", "e").observe(value)
    labels = {"group": "g", "topic": "t", "event_type": "e"}
    name = "pipeline_worker_handler_duration_seconds"
    for le in [*(str(float(b)) for b in _BUCKETS), "+Inf"]:
        key = f"{name}_bucket"
        assert ours.get_sample_value(key, {**labels, "le": le}) == theirs.get_sample_value(
            key, {**labels, "le": le}
        ), le
    for suffix in ("_count", "_sum"):
        assert ours.get_sample_value(name + suffix, labels) == pytest.approx(
            theirs.get_sample_value(name + suffix, labels)
        )
    assert ours.get_sample_value("pipeline_worker_records_total", {**labels, "outcome": "ok"}) == 5


def test_record_context_reads_the_record_and_acts_as_a_context() -> None:
    import copy
    import dataclasses
    import pickle

    from confluent_kafka import Message

    from consumers import Context
    from consumers._context import record_context
    from consumers._work import Work

    msg = Message(topic="t", partition=2, offset=7, key=b"k", value=b"v", headers=[("h", b"1")])
    work = Work(PartitionState("t", 2), msg, 7)
    ctx = record_context(work, 3, None, "g", None)  # type: ignore[arg-type]
    plain = Context(b"k", [("h", b"1")], "t", 2, 7, msg.timestamp()[1], 3, "g", None)  # type: ignore[arg-type]
    assert isinstance(ctx, Context)
    assert ctx == plain
    assert plain == ctx
    assert repr(ctx) == repr(plain)
    assert (ctx.header("h"), ctx.where) == (b"1", "t[2]@7")
    assert copy.copy(ctx) == plain
    assert pickle.loads(pickle.dumps(ctx)) == plain
    replaced = dataclasses.replace(ctx, attempt=4)
    assert type(replaced) is Context
    assert (replaced.attempt, replaced.key) == (4, b"k")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.attempt = 5  # type: ignore[misc]


class _RefusingConsumer:
    """A consumer whose synchronous commit refuses one partition (as the broker reports it)."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.calls: list[list[tuple[int, int]]] = []

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> list[SimpleNamespace]:
        assert not asynchronous
        self.calls.append([(tp.partition, tp.offset) for tp in offsets])
        too_large = KafkaError(KafkaError.OFFSET_METADATA_TOO_LARGE)
        return [
            SimpleNamespace(
                topic=tp.topic,
                partition=tp.partition,
                offset=tp.offset,
                error=too_large if tp.partition == self.refuse else None,
            )
            for tp in offsets
        ]


def test_a_refused_partition_is_committed_again() -> None:
    parts = [PartitionState("t", p) for p in (0, 1)]
    for part in parts:
        part.tracker.add(0)
        part.tracker.complete(0)
    consumer = _RefusingConsumer(refuse=1)
    committer = Committer(consumer, WorkerMetrics(CollectorRegistry(), "g"))
    committer.commit(parts, sync=True)
    assert [p.committed for p in parts] == [1, None]
    consumer.refuse = -1
    committer.commit(parts, sync=True)  # only the refused one is due again
    assert consumer.calls == [[(0, 1), (1, 1)], [(1, 1)]]
    assert [p.committed for p in parts] == [1, 1]
