"""Prometheus metrics of the scheduler: one facade, label names fixed here."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SchedulerMetrics"]

_PREFIX = "pipeline_scheduler"
TIER_LABEL = "tier"
REASON_LABEL = "reason"
_LATENESS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SchedulerMetrics:
    """Every metric the scheduler exports, registered in an injected registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._forwarded = Counter(
            f"{_PREFIX}_forwarded_total",
            "Records delivered to their target topic.",
            registry=registry,
        )
        self._lateness = Histogram(
            f"{_PREFIX}_lateness_seconds",
            "Delivery time minus due time, by the scheduler's clock.",
            buckets=_LATENESS_BUCKETS,
            registry=registry,
        )
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

    def forwarded(self, lateness_s: float) -> None:
        """One record went to its target ``lateness_s`` seconds after it was due."""
        self._forwarded.inc()
        self._lateness.observe(max(lateness_s, 0.0))

    def hopped(self, tier: str) -> None:
        """One record was written to delay tier ``tier``."""
        self._hops.labels(tier).inc()

    def invalid(self, reason: str) -> None:
        """One record was dead-lettered for ``reason``."""
        self._invalid.labels(reason).inc()

    def pending(self, tier: str, count: int) -> None:
        """Set the pending count of ``tier`` (``entry`` for the scheduler topic)."""
        self._pending.labels(tier).set(count)

    def held(self, count: int) -> None:
        """Set the number of records held in memory."""
        self._held.set(count)
