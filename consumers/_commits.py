"""Batched offset commits: asynchronous on an interval or count, synchronous on revoke/shutdown."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from ._metrics import WorkerMetrics
from ._offsets import PartitionState
from ._options import WorkerOptions

__all__ = ["Committer", "commit_points"]

_LOG = logging.getLogger("consumers")


def commit_points(parts: Iterable[PartitionState]) -> list[tuple[PartitionState, int]]:
    """Partitions whose commit position moved, with that position."""
    out = []
    for part in parts:
        position = part.commit_due()
        if position is not None:
            out.append((part, position))
    return out


class Committer:
    """Commits positions of the poll thread's partitions; measures commit latency."""

    def __init__(self, consumer: Any, metrics: WorkerMetrics) -> None:
        self._consumer = consumer
        self._metrics = metrics
        self._last = time.monotonic()
        self._finished = 0
        self._sent: deque[float] = deque()
        self.lookup: Callable[[tuple[str, int]], PartitionState | None] = lambda key: None

    def finished(self, count: int) -> None:
        """Count records finished since the last commit."""
        self._finished += count

    def maybe_commit(self, parts: Iterable[PartitionState], options: WorkerOptions) -> None:
        """Commit asynchronously when the interval passed or enough records finished."""
        now = time.monotonic()
        if self._finished < options.commit_every and now - self._last < options.commit_interval_s:
            return
        self._last = now
        self._finished = 0
        self.commit(parts, sync=False)

    def commit(self, parts: Iterable[PartitionState], *, sync: bool) -> None:
        """Commit every moved position (``sync``: wait for the result; raise nothing)."""
        points = commit_points(parts)
        if not points:
            return
        offsets = [TopicPartition(p.topic, p.partition, pos) for p, pos in points]
        start = time.monotonic()
        try:
            if sync:
                result = self._consumer.commit(offsets=offsets, asynchronous=False)
                failed = [tp for tp in result or () if tp.error is not None]
                self._metrics.committed(time.monotonic() - start, not failed)
                if failed:
                    _LOG.warning("commit failed for %s (retried with the next commit)", failed)
                    refused = {(tp.topic, tp.partition) for tp in failed}
                    points = [pp for pp in points if (pp[0].topic, pp[0].partition) not in refused]
            else:
                self._sent.append(start)
                self._consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            self._metrics.committed(time.monotonic() - start, False)
            err = exc.args[0] if exc.args else exc
            if isinstance(err, KafkaError) and err.code() == KafkaError._NO_OFFSET:
                return
            _LOG.warning("commit failed: %s (it is retried with the next commit)", err)
            return
        for part, position in points:
            part.committed = position

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The ``on_commit`` callback: latency of asynchronous commits and failures."""
        if not self._sent:  # pragma: no cover - only asynchronous commits report here
            return
        start = self._sent.popleft()
        failed = err is not None or any(tp.error is not None for tp in partitions)
        self._metrics.committed(time.monotonic() - start, not failed)
        if failed:
            _LOG.warning("asynchronous commit failed: %s", err or partitions)
            for tp in partitions:  # commit these again with the next batch
                part = self.lookup((tp.topic, tp.partition))
                if part is not None and (err is not None or tp.error is not None):
                    part.committed = None
