"""Prometheus metrics of a worker: one method per event, label names from ``pipeline._labels``."""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from pipeline._labels import EVENT_TYPE, GROUP, OUTCOME, TOPIC

__all__ = ["OUTCOMES", "WorkerMetrics"]

OUTCOMES = ("ok", "retried", "dead_lettered", "skipped", "expired", "duplicate")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class _Durations(Collector):
    """``pipeline_worker_handler_duration_seconds``: a histogram that takes observations in bulk.

    The poll thread records the run times of a whole batch of handled records at once (one
    lock per batch, not one per bucket per record as ``prometheus_client.Histogram`` does).
    """

    def __init__(self, name: str, doc: str, labels: list[str], buckets: tuple[float, ...]) -> None:
        self._name, self._doc, self._labels = name, doc, labels
        self._bounds = [*buckets, float("inf")]
        # The ``le`` labels as prometheus_client writes them ("0.0005", "1.0", "+Inf").
        self._les = [str(float(b)) for b in buckets] + ["+Inf"]
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe_many(self, labels: tuple[str, ...], seconds: list[float]) -> None:
        """Add observations for one label set."""
        bounds = self._bounds
        hits = [0] * len(bounds)
        for value in seconds:
            hits[bisect_left(bounds, value)] += 1
        total = sum(seconds)
        with self._lock:
            series = self._series.get(labels)
            if series is None:
                series = self._series[labels] = ([0] * len(bounds), [0.0])
            counts = series[0]
            for i, n in enumerate(hits):
                if n:
                    counts[i] += n
            series[1][0] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self._name, self._doc, labels=self._labels)
        with self._lock:
            snapshot = [(k, list(c), s[0]) for k, (c, s) in self._series.items()]
        for labels, counts, total in snapshot:
            cumulative, running = [], 0
            for le, n in zip(self._les, counts, strict=True):
                running += n
                cumulative.append((le, float(running)))
            family.add_metric(list(labels), cumulative, total)
        yield family

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._doc, labels=self._labels)


class WorkerMetrics:
    """The worker's metrics; children are cached so the hot path skips label lookups."""

    def __init__(self, registry: CollectorRegistry, group: str) -> None:
        self.group = group
        self._records = Counter(
            "pipeline_worker_records_total",
            "Records finished, by outcome.",
            [GROUP, TOPIC, EVENT_TYPE, OUTCOME],
            registry=registry,
        )
        self._duration = _Durations(
            "pipeline_worker_handler_duration_seconds",
            "Handler run time per attempt.",
            [GROUP, TOPIC, EVENT_TYPE],
            _BUCKETS,
        )
        registry.register(self._duration)
        self._commit = Histogram(
            "pipeline_worker_commit_latency_seconds",
            "Time from a commit request to its result.",
            [GROUP],
            buckets=_BUCKETS,
            registry=registry,
        ).labels(group)
        self._commit_failures = Counter(
            "pipeline_worker_commit_failures_total",
            "Offset commits that failed.",
            [GROUP],
            registry=registry,
        ).labels(group)
        self.transactions_aborted = Counter(
            "pipeline_worker_transactions_aborted_total",
            "Exactly-once transactions aborted and handled again from the committed offsets "
            "(a partition leader or the transaction coordinator moved).",
            [GROUP],
            registry=registry,
        ).labels(group)
        gauge: Callable[[str, str], Any] = lambda name, doc: Gauge(  # noqa: E731
            name, doc, [GROUP], registry=registry
        ).labels(group)
        self.in_flight = gauge("pipeline_worker_in_flight", "Records dispatched, not finished.")
        self.paused = gauge("pipeline_worker_paused_partitions", "Partitions paused.")
        self.assigned = gauge("pipeline_worker_assigned_partitions", "Partitions assigned.")
        self.since_progress = gauge(
            "pipeline_worker_seconds_since_progress",
            "Seconds since the worker last finished a record or was caught up with nothing to "
            "do; it grows while the worker is stuck, owns no partitions, or its group rebalances.",
        )
        self.pending_writes = gauge(
            "pipeline_worker_pending_writes",
            "Retry or dead-letter copies waiting to be written again after a failure.",
        )
        self._write_failures = Counter(
            "pipeline_worker_write_failures_total",
            "Failed writes of retry or dead-letter copies (each is retried).",
            [GROUP, TOPIC],
            registry=registry,
        )
        self._rebalances = Counter(
            "pipeline_worker_rebalances_total",
            "Partitions assigned, revoked or lost.",
            [GROUP, "kind"],
            registry=registry,
        )
        self._children: dict[tuple[str, str, str], Any] = {}

    def outcome(self, topic: str, event_type: str, outcome: str, count: int = 1) -> None:
        """Count finished records (one by default)."""
        key = (topic, event_type, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._records.labels(
                self.group, topic, event_type, outcome
            )
        child.inc(count)

    def handled(self, topic: str, event_type: str, seconds: float) -> None:
        """Observe one handler run."""
        self._duration.observe_many((self.group, topic, event_type), [seconds])

    def handled_ok(self, batch: dict[tuple[str, str], list[float]]) -> None:
        """Count records handled successfully, with their handler run times, per topic and type.

        The poll thread calls it once per batch of completions (one update per label set).
        """
        group, observe = self.group, self._duration.observe_many
        for (topic, event_type), seconds in batch.items():
            observe((group, topic, event_type), seconds)
            self.outcome(topic, event_type, "ok", len(seconds))

    def committed(self, seconds: float, ok: bool) -> None:
        """Observe one commit."""
        self._commit.observe(seconds)
        if not ok:
            self._commit_failures.inc()

    def write_failed(self, topic: str) -> None:
        """Count one failed retry/dead-letter write."""
        self._write_failures.labels(self.group, topic).inc()

    def rebalanced(self, kind: str, count: int) -> None:
        """Count partitions assigned, revoked or lost."""
        self._rebalances.labels(self.group, kind).inc(count)
