"""Prometheus metrics of the flow gates: circuit breakers and records parked by them."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from pipeline._labels import BREAKER, GROUP, REASON, STATE

from ._breaker import STATES

__all__ = ["GateMetrics"]


class GateMetrics:
    """Breaker state and transitions, and records parked by breakers and rate limits."""

    def __init__(self, registry: CollectorRegistry, group: str) -> None:
        self.group = group
        self._state = Gauge(
            "pipeline_worker_breaker_state",
            "Circuit breaker state: 0 closed, 1 open, 2 half-open.",
            [GROUP, BREAKER],
            registry=registry,
        )
        self._transitions = Counter(
            "pipeline_worker_breaker_transitions_total",
            "Circuit breaker transitions, by the state entered.",
            [GROUP, BREAKER, STATE],
            registry=registry,
        )
        self._parked = Gauge(
            "pipeline_worker_parked_records",
            "Records held back (in flight, not failed, not committed) by a breaker or rate limit.",
            [GROUP, REASON],
            registry=registry,
        )

    def breaker(self, name: str, state: str, entered: list[str]) -> None:
        """Set a breaker's state and count the states it entered since the last call."""
        self._state.labels(self.group, name).set(STATES.index(state))
        for to in entered:
            self._transitions.labels(self.group, name, to).inc()

    def parked(self, reason: str, count: int) -> None:
        """Set how many records ``reason`` holds back."""
        self._parked.labels(self.group, reason).set(count)
