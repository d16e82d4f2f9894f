"""Producer metrics: plain counters on the hot path, exported by a custom Prometheus collector.

Delivery callbacks only bump ints and a bucket array (no locks, no label lookups); a scrape
turns them into ``pipeline_producer_*`` metric families.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from pipeline._labels import TOPIC

__all__ = ["ProducerMetrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ProducerMetrics(Collector):
    """Records sent and failed per topic, delivery latency histogram, local queue depth."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.sent: dict[str, int] = {}
        self.failed_count: dict[str, int] = {}
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._latency_sum = 0.0
        self.queue_depth: Callable[[], int] = lambda: 0
        (REGISTRY if registry is None else registry).register(self)

    def delivered(self, topic: str, latency_s: float) -> None:
        """One record was acknowledged after ``latency_s`` seconds."""
        sent = self.sent
        sent[topic] = sent.get(topic, 0) + 1
        self._buckets[bisect_left(LATENCY_BUCKETS, latency_s)] += 1
        self._latency_sum += latency_s

    def delivered_many(self, topic: str, count: int) -> None:
        """``count`` records were acknowledged (a send batch: no latency is observed)."""
        self.sent[topic] = self.sent.get(topic, 0) + count

    def failed(self, topic: str) -> None:
        """One record failed."""
        self.failed_count[topic] = self.failed_count.get(topic, 0) + 1

    def collect(self) -> Iterator[Metric]:
        """Build the metric families from the current counters (called on scrape)."""
        sent = CounterMetricFamily(
            "pipeline_producer_records_sent", "Records acknowledged by the cluster.", labels=[TOPIC]
        )
        for topic, count in sorted(self.sent.items()):
            sent.add_metric([topic], count)
        failed = CounterMetricFamily(
            "pipeline_producer_records_failed", "Records whose delivery failed.", labels=[TOPIC]
        )
        for topic, count in sorted(self.failed_count.items()):
            failed.add_metric([topic], count)
        cumulative, buckets = 0, []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), self._buckets, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        latency = HistogramMetricFamily(
            "pipeline_producer_delivery_latency_seconds",
            "Time from send() to the delivery report.",
            buckets=buckets,
            sum_value=self._latency_sum,
        )
        depth = GaugeMetricFamily(
            "pipeline_producer_queue_depth",
            "Records waiting in the local producer queue or in flight.",
            value=self.queue_depth(),
        )
        yield from (sent, failed, latency, depth)
