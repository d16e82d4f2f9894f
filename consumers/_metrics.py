"""Prometheus metrics of a worker: one method per event, label names from ``pipeline._labels``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from pipeline._labels import EVENT_TYPE, GROUP, OUTCOME, TOPIC

__all__ = ["OUTCOMES", "WorkerMetrics"]

OUTCOMES = ("ok", "retried", "dead_lettered", "skipped", "expired", "duplicate")
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


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
        self._duration = Histogram(
            "pipeline_worker_handler_duration_seconds",
            "Handler run time per attempt.",
            [GROUP, TOPIC, EVENT_TYPE],
            buckets=_BUCKETS,
            registry=registry,
        )
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
        gauge: Callable[[str, str], Any] = lambda name, doc: Gauge(  # noqa: E731
            name, doc, [GROUP], registry=registry
        ).labels(group)
        self.in_flight = gauge("pipeline_worker_in_flight", "Records dispatched, not finished.")
        self.paused = gauge("pipeline_worker_paused_partitions", "Partitions paused.")
        self.assigned = gauge("pipeline_worker_assigned_partitions", "Partitions assigned.")
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
        self._timers: dict[tuple[str, str], Any] = {}

    def outcome(self, topic: str, event_type: str, outcome: str) -> None:
        """Count one finished record."""
        key = (topic, event_type, outcome)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._records.labels(
                self.group, topic, event_type, outcome
            )
        child.inc()

    def handled(self, topic: str, event_type: str, seconds: float) -> None:
        """Observe one handler run."""
        key = (topic, event_type)
        child = self._timers.get(key)
        if child is None:
            child = self._timers[key] = self._duration.labels(self.group, topic, event_type)
        child.observe(seconds)

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
