"""Why each partition is paused: one place that owns ``consumer.pause`` and ``resume``.

Several parts of the poll loop stop a partition for their own reasons: the in-flight limit, a
circuit breaker, a rate limit, a priority level waiting for higher levels. A partition is paused
while any reason holds it and resumes only when the last one lets go, so one reason never
resumes what another paused. Reasons hold either every assigned partition (``hold_all``, which
also covers partitions assigned later) or named ones (``hold``). ``apply`` makes the consumer
match, pausing and resuming only what changed since the last call (poll thread only).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from confluent_kafka import TopicPartition

__all__ = ["TP", "PauseSet"]

TP = tuple[str, int]
"""A partition as ``(topic, partition)``."""


class PauseSet:
    """The reasons that hold partitions paused, and what the consumer has paused."""

    def __init__(self) -> None:
        self._all: set[str] = set()
        self._held: dict[str, set[TP]] = {}
        self._paused: set[TP] = set()  # what the consumer was last told

    def hold_all(self, reason: str) -> None:
        """Hold every assigned partition, now and after later assignments."""
        self._all.add(reason)

    def hold(self, reason: str, partitions: Iterable[TP]) -> None:
        """Hold ``partitions`` for ``reason`` (added to what it already holds)."""
        self._held.setdefault(reason, set()).update(partitions)

    def release(self, reason: str, partitions: Iterable[TP] | None = None) -> None:
        """Let go of ``partitions`` (default: everything ``reason`` holds, ``hold_all`` too)."""
        if partitions is None:
            self._all.discard(reason)
            self._held.pop(reason, None)
            return
        held = self._held.get(reason)
        if held is not None:
            held.difference_update(partitions)
            if not held:
                del self._held[reason]

    def holds(self, reason: str) -> bool:
        """Whether ``reason`` holds anything."""
        return reason in self._all or bool(self._held.get(reason))

    def reasons(self, tp: TP) -> list[str]:
        """The reasons that hold one partition, sorted."""
        found = set(self._all)
        found.update(r for r, held in self._held.items() if tp in held)
        return sorted(found)

    def wanted(self, assignment: Iterable[TP]) -> set[TP]:
        """The assigned partitions that some reason holds."""
        assigned = set(assignment)
        if self._all:
            return assigned
        wanted: set[TP] = set()
        for held in self._held.values():
            wanted |= held & assigned
        return wanted

    @property
    def paused(self) -> frozenset[TP]:
        """What the consumer has paused after the last ``apply``."""
        return frozenset(self._paused)

    def forget(self, partitions: Iterable[TP]) -> None:
        """Partitions left this worker: the consumer no longer has them paused."""
        gone = set(partitions)
        self._paused -= gone
        for reason in list(self._held):
            self.release(reason, gone)

    def apply(self, consumer: Any, assignment: Iterable[TP]) -> int:
        """Pause newly held partitions and resume released ones; return how many are paused."""
        if not self._all and not self._held and not self._paused:
            return 0  # the common case, once a tick: nothing held, nothing paused
        wanted = self.wanted(assignment)
        pause = wanted - self._paused
        resume = self._paused - wanted
        if pause:
            consumer.pause([TopicPartition(t, p) for t, p in sorted(pause)])
        if resume:
            consumer.resume([TopicPartition(t, p) for t, p in sorted(resume)])
        self._paused = wanted
        return len(wanted)
