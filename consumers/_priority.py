"""Priority levels: which level of a topic the worker consumes, by weighted fair scheduling.

A topic with N levels is N Kafka topics, ``<topic>.p0`` (highest) to ``<topic>.p<N-1>``, and
the worker subscribes to all of them. Once a tick :class:`PriorityScheduler` reads which levels
have records queued in Kafka (the cached high watermark above the consumed position: no network
call) and, while two or more levels of a topic have, lets one of them be consumed and holds the
partitions of the other queued levels paused (reason ``"priority"``, through the
:class:`~consumers._pauses.PauseSet`; pausing also drops what librdkafka prefetched for them, so
a low-priority backlog already fetched does not stand in front of high-priority records). Levels
with nothing queued stay unpaused, so a new record of any level is seen at once.

Which level (:class:`Stride`, stride scheduling): each level keeps a pass, advanced by records
consumed divided by its weight, and the queued level with the lowest pass is served. A level
that was idle rejoins at the lowest pass of the queued levels (idle time earns no credit); a
higher level that is not ahead of the serving one takes over at once (high goes first); the
serving level otherwise keeps its turn until its pass is ``quantum`` above another queued
level's (fewer pause and resume switches). While levels stay queued, level L gets
``weights[L] / sum(weights of the queued levels)`` of the records: a low level is never starved.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from pipeline._errors import ConfigError
from pipeline._names import priority_topics

from ._offsets import PartitionState
from ._pauses import TP, PauseSet

__all__ = [
    "PREFETCH",
    "PRIORITY",
    "Priorities",
    "PriorityScheduler",
    "Stride",
    "default_weights",
    "subscription",
]

PRIORITY = "priority"
"""The pause reason of a priority level waiting for its turn."""

PREFETCH: Mapping[str, Any] = {
    "queued.min.messages": 1000,
    "max.partition.fetch.bytes": 65536,
    "fetch.queue.backoff.ms": 20,
    "fetch.wait.max.ms": 50,
}
"""Consumer defaults of a worker with priorities (its ``consumer_config`` wins). A level is
seen to have records only once librdkafka fetched some of it, and with its defaults (100 000
records and 1 MB a partition prefetched, a second of fetch backoff once a queue is full) a
new high-priority record was fetched 0.5 to 2.5 s late behind a low-priority backlog; with
these, within about 0.1 s. A small prefetch also makes a switch between levels cheap."""

LOW_IN_FLIGHT = 1000
"""The least default ``low_in_flight``: two consume batches, so a worker whose cheap handlers
moved to the threads does not pause and refetch its lowest level after every batch."""

WATCH_INTERVAL_S = 0.02
"""How often the watermark watcher asks the broker for the end offsets of the higher levels."""

_LOG = logging.getLogger("consumers")


def default_weights(levels: int) -> tuple[float, ...]:
    """The default weights: each level twice the next, ``p0`` highest (3 levels: 4, 2, 1)."""
    return tuple(float(2 ** (levels - 1 - level)) for level in range(levels))


@dataclass(frozen=True)
class Priorities:
    """The priority levels of one topic, as a worker consumes them.

    Attributes:
        topic: the base topic name (``orders``: the levels are ``orders.p0`` ...).
        levels: how many levels, 1 to 10.
        weights: one positive weight a level, ``p0`` first (default: :func:`default_weights`).
            While several levels have records queued, each gets its weight's share.
        quantum: records a level of weight 1 takes in one turn before another queued level
            may take over (a turn is ``quantum * weight`` records; a higher level preempts).
        low_in_flight: records of the levels below ``p0`` dispatched and not finished; at this
            many those levels pause, and they resume at half of it. A high-priority record
            waits for the lower ones already dispatched, so this bounds that wait (default
            ``max(1000, 8 * concurrency)``; ``WorkerOptions.max_in_flight`` still applies).
    """

    topic: str
    levels: int
    weights: tuple[float, ...] | None = None
    quantum: int = 500
    low_in_flight: int | None = None

    def __post_init__(self) -> None:
        topics = priority_topics(self.topic, self.levels)  # validates levels
        weights = default_weights(self.levels) if self.weights is None else tuple(self.weights)
        if len(weights) != self.levels:
            raise ConfigError(
                f"priorities of {self.topic}: {len(weights)} weight(s) for {self.levels} levels"
            )
        for weight in weights:
            if isinstance(weight, bool) or not isinstance(weight, int | float):
                raise ConfigError(f"priorities of {self.topic}: weight {weight!r} is not a number")
            if not (math.isfinite(weight) and weight > 0):
                raise ConfigError(f"priorities of {self.topic}: weights must be > 0, got {weight}")
        if self.quantum < 1:
            raise ConfigError(f"priorities of {self.topic}: quantum must be >= 1")
        if self.low_in_flight is not None and self.low_in_flight < 1:
            raise ConfigError(f"priorities of {self.topic}: low_in_flight must be >= 1")
        object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        object.__setattr__(self, "_topics", topics)

    @property
    def topics(self) -> list[str]:
        """The level topics, highest first."""
        return list(self._topics)  # type: ignore[attr-defined]

    @property
    def shares(self) -> tuple[float, ...]:
        """Each level's share of the records while every level has records queued."""
        weights = self.weights or ()
        total = sum(weights)
        return tuple(w / total for w in weights)


def subscription(topics: Iterable[str], priorities: Mapping[str, Priorities]) -> list[str]:
    """The topics to subscribe to: every level topic in place of a topic with priorities."""
    out: list[str] = []
    for topic in topics:
        spec = priorities.get(topic)
        out.extend(spec.topics if spec is not None else [topic])
    return out


class Stride:
    """Which level of one topic to serve (pure logic, no Kafka).

    Call :meth:`update` once a tick with the levels that have records queued and the records
    consumed per level since the last call; it returns the level to serve, or None when fewer
    than two levels are queued (then nothing needs pausing).
    """

    def __init__(self, weights: Iterable[float], quantum: float) -> None:
        self.weights = tuple(weights)
        self.quantum = quantum
        self.passes = [0.0] * len(self.weights)
        self.queued: frozenset[int] = frozenset()
        self.serving: int | None = None

    def update(self, queued: Iterable[int], consumed: Mapping[int, int]) -> int | None:
        """Account for ``consumed`` records; pick the level to serve among ``queued``."""
        passes, weights = self.passes, self.weights
        for level, count in consumed.items():
            passes[level] += count / weights[level]
        now = frozenset(queued)
        before = self.queued
        if before:
            floor = min(passes[level] for level in before)
            for level in now - before:  # idle time earns no credit
                passes[level] = max(passes[level], floor)
        self.queued = now
        if len(now) < 2:
            self.serving = next(iter(now), None)
            return None
        best = min(now, key=lambda level: (passes[level], level))
        serving = self.serving
        if serving not in now:
            serving = best
        elif best < serving and passes[best] <= passes[serving]:
            serving = best  # a higher level that is not ahead goes first
        elif passes[serving] - passes[best] >= self.quantum:
            serving = best  # the turn is over
        self.serving = serving
        return serving


class _Levels:
    """One topic with priorities: its scheduler and the last consumed position a partition."""

    def __init__(self, spec: Priorities, low_in_flight: int) -> None:
        self.spec = spec
        self.low_in_flight = spec.low_in_flight or low_in_flight
        self.capped = False  # the levels below p0 are at their in-flight limit
        self.stride = Stride(spec.weights or (), spec.quantum)
        self.positions: dict[TP, int] = {}
        self.ends: dict[TP, int] = {}  # end-of-partition offsets, until a record is consumed


class _Watcher:
    """Asks the broker for the end offsets of the higher levels' partitions, off the poll thread.

    librdkafka learns a partition's high watermark only from its own fetches, and while a
    lower level's backlog is being fetched a new high-priority record was seen up to seconds
    late. This thread lists the end offsets every ``WATCH_INTERVAL_S`` (one small request a
    partition) so the poll thread sees queued high-priority records within that time.
    """

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.watch: list[TP] = []  # replaced, never mutated, by the poll thread
        self.highs: dict[TP, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-priority", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        consumer = self._consumer
        while not self._stop.wait(WATCH_INTERVAL_S):
            for tp in self.watch:
                try:
                    _low, high = consumer.get_watermark_offsets(
                        TopicPartition(*tp), timeout=1.0, cached=False
                    )
                except KafkaException as exc:
                    _LOG.debug("priority: end offset of %s[%d]: %s", tp[0], tp[1], exc)
                    continue
                except RuntimeError:  # the consumer was closed
                    return
                self.highs[tp] = high

    def stop(self) -> None:
        """Stop asking and wait for a request in progress (before the consumer closes)."""
        self._stop.set()
        self._thread.join(timeout=2.0)


class PriorityScheduler:
    """Holds the partitions of queued levels paused while another level has its turn.

    Args:
        specs: the topics with priorities.
        pauses: the worker's pause reasons (applied by the poll loop after :meth:`tick`).
        concurrency: the worker's, for the default ``low_in_flight``.
    """

    def __init__(
        self, specs: Iterable[Priorities], pauses: PauseSet, concurrency: int = 16
    ) -> None:
        self._pauses = pauses
        self._watcher: _Watcher | None = None
        self._watched: frozenset[TP] = frozenset()
        self._levels: dict[str, tuple[_Levels, int]] = {}
        self.topics: list[_Levels] = []
        for spec in specs:
            levels = _Levels(spec, max(LOW_IN_FLIGHT, 8 * concurrency))
            self.topics.append(levels)
            for level, name in enumerate(spec.topics):
                self._levels[name] = (levels, level)

    def level_of(self, topic: str) -> tuple[str, int] | None:
        """``(base topic, level)`` of a level topic this worker schedules, else None."""
        found = self._levels.get(topic)
        return None if found is None else (found[0].spec.topic, found[1])

    def tick(self, consumer: Any, parts: Mapping[TP, PartitionState]) -> None:
        """Read what is queued and consumed per level; hold the waiting levels paused."""
        mine = [(tp, self._levels[tp[0]]) for tp in parts if tp[0] in self._levels]
        if not mine:
            self._pauses.release(PRIORITY)
            return
        self._watch(consumer, mine)
        remote = self._watcher.highs if self._watcher is not None else {}
        try:
            found = consumer.position([TopicPartition(t, p) for (t, p), _ in mine])
            positions = {(tp.topic, tp.partition): tp.offset for tp in found}
        except KafkaException as exc:  # pragma: no cover - a local call; keep the last state
            _LOG.debug("priority: reading positions: %s", exc)
            return
        queued: dict[int, set[int]] = {}
        consumed: dict[int, dict[int, int]] = {}
        low_in_flight: dict[int, int] = {}
        for tp, (levels, level) in mine:
            key = id(levels)
            if level:
                low_in_flight[key] = low_in_flight.get(key, 0) + parts[tp].in_flight
            position = positions.get(tp, OFFSET_INVALID)
            if position < 0:  # nothing consumed since the assignment: the end seen, if any
                position = levels.ends.get(tp, OFFSET_INVALID)
            if _queued(consumer, tp, position, parts[tp], remote.get(tp, OFFSET_INVALID)):
                queued.setdefault(key, set()).add(level)
            last = levels.positions.get(tp)
            if position >= 0:
                levels.positions[tp] = position
                if last is not None and position > last:
                    counts = consumed.setdefault(key, {})
                    counts[level] = counts.get(level, 0) + position - last
        hold: list[TP] = []
        for levels in self.topics:
            key = id(levels)
            waiting = queued.get(key, set())
            serving = levels.stride.update(waiting, consumed.get(key, {}))
            held = set()
            if serving is not None:
                held = {levels.spec.topics[level] for level in waiting if level != serving}
            limit, dispatched = levels.low_in_flight, low_in_flight.get(key, 0)
            levels.capped = dispatched >= limit or (levels.capped and dispatched > limit // 2)
            if levels.capped:
                held.update(levels.spec.topics[1:])
            hold.extend(tp for tp, _ in mine if tp[0] in held)
        self._pauses.release(PRIORITY)
        if hold:
            self._pauses.hold(PRIORITY, hold)

    def _watch(self, consumer: Any, mine: list[tuple[TP, tuple[_Levels, int]]]) -> None:
        """Keep the watcher on the assigned partitions of every level but the lowest."""
        if not isinstance(consumer, Consumer):
            return  # the test kit's consumer knows its end offsets
        if self._watcher is None:
            self._watcher = _Watcher(consumer)
        watched = frozenset(tp for tp, (lv, level) in mine if level < lv.spec.levels - 1)
        if watched != self._watched:
            self._watched = watched
            self._watcher.watch = sorted(watched)

    def close(self) -> None:
        """Stop the watermark watcher (before the consumer closes)."""
        if self._watcher is not None:
            self._watcher.stop()

    def at_end(self, tp: TP, offset: int) -> None:
        """A partition reached its end at ``offset`` (librdkafka's partition EOF event).

        Until a record of it is consumed, the consumer reports no position for it; this end
        offset tells whether records arrived since.
        """
        found = self._levels.get(tp[0])
        if found is not None and offset >= 0:
            found[0].ends[tp] = offset

    def forget(self, partitions: Iterable[TP]) -> None:
        """Partitions left this worker: drop what was known of them."""
        for tp in partitions:
            found = self._levels.get(tp[0])
            if found is not None:
                found[0].positions.pop(tp, None)
                found[0].ends.pop(tp, None)


def _queued(consumer: Any, tp: TP, position: int, part: PartitionState, remote: int) -> bool:
    """Whether a partition has records in Kafka that were not consumed yet.

    The high watermark is librdkafka's cached one (updated by its fetches; a paused
    partition keeps its last one, so a waiting level stays queued). Before the first record or
    watermark is known, a partition counts as queued until its end-of-partition event.
    ``remote`` is the end offset the watcher last read from the broker (negative: none).
    ``position`` is the consumed position, or the end-of-partition offset before the first
    record (negative: unknown).
    """
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)
    except KafkaException:
        high = OFFSET_INVALID
    high = max(high if high is not None else OFFSET_INVALID, remote)  # what the watcher saw
    if high < 0 or position < 0:
        return not part.at_end
    return bool(high > position)
