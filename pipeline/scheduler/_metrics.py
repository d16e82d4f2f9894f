"""Prometheus metrics of the scheduler: one facade, label names fixed here.

The forwarding loop records per-record figures into plain Python counters (a few hundred
nanoseconds each) and ``flush()`` publishes them once per loop round, so a busy scheduler does
not pay for a locked Prometheus update per record.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["SchedulerMetrics"]

_PREFIX = "pipeline_scheduler"
TIER_LABEL = "tier"
REASON_LABEL = "reason"
_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _BatchedHistogram(Collector):
    """A histogram fed in batches: ``add`` merges counts gathered by the loop, under a lock."""

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self._name = name
        self._doc = documentation
        self._bounds = bounds
        inf = float("inf")
        self._labels = [floatToGoString(b) for b in (*bounds, inf)]  # type: ignore[no-untyped-call]
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()

    def add(self, counts: list[int], total: float) -> None:
        """Merge per-bucket counts (not cumulative, last one is +Inf) and their sum."""
        with self._lock:
            mine = self._counts
            for i, n in enumerate(counts):
                if n:
                    mine[i] += n
            self._sum += total

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self._name, self._doc)

    def collect(self) -> Iterator[HistogramMetricFamily | GaugeMetricFamily]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        buckets, running = [], 0
        for label, n in zip(self._labels, counts, strict=True):
            running += n
            buckets.append((label, float(running)))
        yield HistogramMetricFamily(self._name, self._doc, buckets=buckets, sum_value=total)
        yield GaugeMetricFamily(f"{self._name}_created", self._doc, value=self._created)


class SchedulerMetrics:
    """Every metric the scheduler exports, registered in an injected registry.

    ``forwarded`` and ``hopped`` only count in memory; ``flush`` publishes (the scheduler calls
    it every loop round, before it can block).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._forwarded = Counter(
            f"{_PREFIX}_forwarded_total",
            "Records delivered to their target topic.",
            registry=registry,
        )
        self._lateness = _BatchedHistogram(
            f"{_PREFIX}_lateness_seconds",
            "Delivery time minus due time, by the scheduler's clock.",
            _LATENESS_BUCKETS,
        )
        registry.register(self._lateness)
        self._hops = Counter(
            f"{_PREFIX}_tier_hops_total",
            "Records written to a delay tier.",
            [TIER_LABEL],
            registry=registry,
        )
        self._invalid = Counter(
            f"{_PREFIX}_invalid_total",
            "Records sent to the scheduler dead-letter topic.",
            [REASON_LABEL],
            registry=registry,
        )
        self._pending = Gauge(
            f"{_PREFIX}_pending",
            "Records waiting in a tier (or the entry topic), from consumer lag.",
            [TIER_LABEL],
            registry=registry,
        )
        self._held = Gauge(
            f"{_PREFIX}_held",
            "Records waiting in memory for their final due time.",
            registry=registry,
        )
        self._bounds = _LATENESS_BUCKETS
        self._late_counts = [0] * (len(_LATENESS_BUCKETS) + 1)
        self._late_sum = 0.0
        self._forwards = 0
        self._hop_counts: dict[str, int] = {}

    def forwarded(self, lateness_s: float) -> None:
        """One record went to its target ``lateness_s`` seconds after it was due."""
        self._forwards += 1
        if lateness_s > 0.0:
            self._late_sum += lateness_s
            self._late_counts[bisect_left(self._bounds, lateness_s)] += 1
        else:
            self._late_counts[0] += 1

    def forwarded_all(self, now_ms: int, dues_ms: list[int]) -> None:
        """Records due at ``dues_ms`` went to their targets at ``now_ms`` (never before)."""
        self._forwards += len(dues_ms)
        counts, bounds = self._late_counts, self._bounds
        total = 0.0
        for due in dues_ms:
            late = (now_ms - due) / 1000
            if late > 0.0:
                total += late
                counts[bisect_left(bounds, late)] += 1
            else:
                counts[0] += 1
        self._late_sum += total

    def hopped(self, tier: str) -> None:
        """One record was written to delay tier ``tier``."""
        counts = self._hop_counts
        counts[tier] = counts.get(tier, 0) + 1

    def flush(self) -> None:
        """Publish what ``forwarded`` and ``hopped`` counted since the last flush."""
        if self._forwards:
            self._lateness.add(self._late_counts, self._late_sum)
            self._forwarded.inc(self._forwards)
            self._late_counts = [0] * len(self._late_counts)
            self._late_sum = 0.0
            self._forwards = 0
        if self._hop_counts:
            for tier, n in self._hop_counts.items():
                self._hops.labels(tier).inc(n)
            self._hop_counts = {}

    def invalid(self, reason: str) -> None:
        """One record was dead-lettered for ``reason``."""
        self._invalid.labels(reason).inc()

    def pending(self, tier: str, count: int) -> None:
        """Set the pending count of ``tier`` (``entry`` for the scheduler topic)."""
        self._pending.labels(tier).set(count)

    def held(self, count: int) -> None:
        """Set the number of records held in memory."""
        self._held.set(count)
