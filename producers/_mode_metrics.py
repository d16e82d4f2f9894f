"""Metrics of the delivery modes: fire-and-forget drops, replies and quorum outcomes."""

from __future__ import annotations

import threading

from prometheus_client import REGISTRY, CollectorRegistry, Counter

from pipeline._labels import TOPIC

__all__ = ["ModeMetrics", "shared_mode_metrics"]

_shared: ModeMetrics | None = None
_lock = threading.Lock()


class ModeMetrics:
    """``pipeline_producer_records_dropped_total``, ``pipeline_rpc_*`` and quorum counters.

    Reply outcomes: ``ok``, ``error`` (a remote exception), ``late`` (after its request timed
    out: dropped), ``unknown`` (no or an unknown correlation id: dropped), ``malformed`` (the
    request fails with the decode error). Request outcomes: ``ok``, ``remote_error``,
    ``timeout``, ``failed``. Quorum outcomes: ``reached``, ``not_reached``.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        registry = REGISTRY if registry is None else registry
        self.dropped = Counter(
            "pipeline_producer_records_dropped",
            "Fire-and-forget records the cluster did not take (counted, never raised).",
            [TOPIC],
            registry=registry,
        )
        self.replies = Counter(
            "pipeline_rpc_replies",
            "Replies received by request(), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.requests = Counter(
            "pipeline_rpc_requests",
            "Requests sent by request(), by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.quorum = Counter(
            "pipeline_quorum_sends",
            "Quorum sends, by outcome.",
            ["outcome"],
            registry=registry,
        )


def shared_mode_metrics() -> ModeMetrics:
    """One collector on the global registry, shared by producers built without a registry."""
    global _shared
    with _lock:
        if _shared is None:
            _shared = ModeMetrics()
        return _shared
