"""Pending records per tier, from the lag of the partitions an instance owns (never blocks)."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from pipeline._settings import Settings

from ._metrics import SchedulerMetrics
from ._state import PartitionState

__all__ = ["LagProbe"]

_LOG = logging.getLogger("pipeline.scheduler")


class LagProbe:
    """Every ``interval`` seconds ask for end offsets and set ``pipeline_scheduler_pending``.

    The request is asynchronous: the scheduler loop checks the futures on later ticks, so a
    slow broker never delays forwarding.
    """

    def __init__(self, settings: Settings, metrics: SchedulerMetrics, interval: float = 5.0):
        self._admin = AdminClient(settings.admin_config())
        self._metrics = metrics
        self._interval = interval
        self._next = 0.0
        self._inflight: tuple[list[PartitionState], dict[Any, Future[Any]]] | None = None
        self._tiers: set[str] = set()

    def maybe_probe(self, parts: Sequence[PartitionState]) -> None:
        """Collect a finished probe, or start a new one when the interval has passed."""
        if self._inflight is not None:
            owned, futures = self._inflight
            if all(f.done() for f in futures.values()):
                self._inflight = None
                self._publish(owned, futures)
            return
        now = time.monotonic()
        if now < self._next or not parts:
            return
        self._next = now + self._interval
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        request = {TopicPartition(p.topic, p.partition): latest for p in parts}
        try:
            self._inflight = (list(parts), self._admin.list_offsets(request, request_timeout=5))
        except KafkaException as exc:
            _LOG.debug("lag probe failed: %s", exc)

    def _publish(self, owned: list[PartitionState], futures: dict[Any, Future[Any]]) -> None:
        ends = {}
        for tp, future in futures.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException:
                return
        pending: dict[str, int] = defaultdict(int)
        for part in owned:
            end = ends.get((part.topic, part.partition))
            if end is None or not part.alive:
                continue
            start = min(part.pending, default=part.next_offset)
            pending[part.tier] += max(0, end - start) if start >= 0 else 0
        for tier in self._tiers - set(pending):
            self._metrics.pending(tier, 0)
        for tier, count in pending.items():
            self._metrics.pending(tier, count)
        self._tiers |= set(pending)

    def close(self) -> None:
        """Forget any probe in flight."""
        self._inflight = None
