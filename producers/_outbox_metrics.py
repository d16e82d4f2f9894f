"""Outbox metrics: plain counters bumped by the outbox threads, exported on scrape.

``pipeline_producer_outbox_records`` (depth), ``_bytes``, ``_oldest_age_seconds`` (gauges)
and ``pipeline_producer_outbox_stored_total``, ``_drained_total``, ``_failed_total`` per topic.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline._labels import TOPIC

__all__ = ["OutboxMetrics"]


class OutboxMetrics(Collector):
    """Counts records stored, drained and failed per topic; reads depth and age on scrape."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.stored_count: dict[str, int] = {}
        self.drained_count: dict[str, int] = {}
        self.failed_count: dict[str, int] = {}
        self.depth: Callable[[], tuple[int, int]] = lambda: (0, 0)
        self.oldest: Callable[[], float | None] = lambda: None
        (REGISTRY if registry is None else registry).register(self)

    def stored(self, topic: str, count: int = 1) -> None:
        """Records went into the outbox (durably written)."""
        self.stored_count[topic] = self.stored_count.get(topic, 0) + count

    def drained(self, topic: str, count: int = 1) -> None:
        """Records left the outbox: Kafka acknowledged them."""
        self.drained_count[topic] = self.drained_count.get(topic, 0) + count

    def failed(self, topic: str, count: int = 1) -> None:
        """Attempts to send records back failed (the records stay in the outbox)."""
        self.failed_count[topic] = self.failed_count.get(topic, 0) + count

    def collect(self) -> Iterator[Metric]:
        """Build the metric families (called on scrape)."""
        records, size = self.depth()
        yield GaugeMetricFamily(
            "pipeline_producer_outbox_records", "Records waiting in the outbox.", value=records
        )
        yield GaugeMetricFamily(
            "pipeline_producer_outbox_bytes", "Bytes of the records in the outbox.", value=size
        )
        oldest = self.oldest()
        yield GaugeMetricFamily(
            "pipeline_producer_outbox_oldest_age_seconds",
            "Age of the record at the head of the outbox (0 when empty).",
            value=0.0 if oldest is None else max(0.0, time.time() - oldest),
        )
        for name, doc, counts in (
            ("stored", "Records written to the outbox.", self.stored_count),
            ("drained", "Outbox records acknowledged by Kafka.", self.drained_count),
            ("failed", "Attempts to send outbox records that failed.", self.failed_count),
        ):
            family = CounterMetricFamily(f"pipeline_producer_outbox_{name}", doc, labels=[TOPIC])
            for topic, count in sorted(counts.items()):
                family.add_metric([topic], count)
            yield family
