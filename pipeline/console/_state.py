"""What the console serves: one snapshot per refresh, built from the lag poller and the ops tools.

The lag poller (``pipeline.lag``) keeps offset lag, time lag and status. Beside it, a refresh
thread reads what the poller does not know: each group's dead letters (``<group>.dlq``: records
held, and those past the redrive position that ``pipeline dlq redrive`` would still consider) and
the scheduler backlog per tier (``pipeline.scheduler``'s status). A ``StatsPoller``
(``pipeline.stats``, the reader behind ``pipeline stats``) reads the per-state counts on its own,
slower interval. Requests read only the latest :class:`ConsoleSnapshot`, swapped atomically, so
no request waits for Kafka.

A group's ``counts`` is an open mapping: ``lag``, ``dlq_pending``, ``dlq_records``, and once the
stats poller has read the group, the per-state counts ``pending``, ``retrying``, ``dead``,
``expired``, ``completed``, ``retried`` and ``redriven`` (README "Per-state counts"). The API and
the page show every key they find.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from pipeline._errors import PipelineError
from pipeline._names import dlq_topic, redrive_group
from pipeline._settings import Settings
from pipeline.lag import GroupLag, LagOptions, LagPoller, LagSnapshot
from pipeline.ops._redrive import read_positions
from pipeline.ops._window import window_consumer
from pipeline.scheduler._records import SchedulerConfig
from pipeline.scheduler._status import TierStatus, scheduler_status
from pipeline.stats import STATES, StatsOptions, StatsPoller
from pipeline.stats import GroupStats as StateCounts

__all__ = ["ConsoleSnapshot", "ConsoleState", "DeadLetterCounts", "GroupStats"]

_LOG = logging.getLogger("pipeline.console")
HISTORY = 120
"""Lag samples kept per group for the sparklines (one per poll)."""


@dataclass(frozen=True, slots=True)
class DeadLetterCounts:
    """The dead letters of one group: held in ``<group>.dlq``, and not yet redriven."""

    records: int
    """Records the DLQ holds (end minus log start, over every partition)."""
    pending: int
    """Records past the redrive position: what the next ``dlq redrive`` run will consider."""


@dataclass(frozen=True, slots=True)
class GroupStats:
    """One consumer group as the console shows it."""

    group: str
    status: str
    state: str
    members: int
    partitions: int
    lag: int
    lag_seconds: float
    lag_seconds_lower_bound: bool
    stale: bool
    dlq: DeadLetterCounts | None
    """None when the group has no ``<group>.dlq`` topic."""
    history: tuple[tuple[float, int], ...]
    counts: Mapping[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON form of ``GET /api/v1/stats`` (one element of ``groups``)."""
        return {
            "group": self.group,
            "status": self.status,
            "state": self.state,
            "members": self.members,
            "partitions": self.partitions,
            "lag": self.lag,
            "lag_seconds": round(self.lag_seconds, 3),
            "lag_seconds_lower_bound": self.lag_seconds_lower_bound,
            "stale": self.stale,
            "dlq_topic": dlq_topic(self.group) if self.dlq is not None else None,
            "dlq_records": self.dlq.records if self.dlq is not None else None,
            "dlq_pending": self.dlq.pending if self.dlq is not None else None,
            "counts": dict(self.counts),
            "history": [[round(t, 3), lag] for t, lag in self.history],
        }


@dataclass(frozen=True, slots=True)
class ConsoleSnapshot:
    """Everything the console serves, as of ``taken_at``."""

    taken_at: float = 0.0
    lag: LagSnapshot = field(default_factory=LagSnapshot)
    groups: Mapping[str, GroupStats] = field(default_factory=dict)
    scheduler: tuple[TierStatus, ...] = ()
    stats: Mapping[str, Any] = field(default_factory=dict)
    """The pre-built body of ``GET /api/v1/stats``."""


def _group_stats(
    lag: GroupLag,
    dlq: DeadLetterCounts | None,
    history: tuple[tuple[float, int], ...],
    states: StateCounts | None = None,
) -> GroupStats:
    counts = {"lag": lag.lag}
    if dlq is not None:
        counts |= {"dlq_pending": dlq.pending, "dlq_records": dlq.records}
    if states is not None and states.error is None:
        for state in STATES:
            value = states.count(state)
            if value is not None:  # in_flight lives in the workers: not in Kafka
                counts[state] = value
    return GroupStats(
        group=lag.group,
        status=lag.status.name,
        state=lag.state,
        members=lag.members,
        partitions=len(lag.partitions),
        lag=lag.lag,
        lag_seconds=lag.lag_seconds,
        lag_seconds_lower_bound=lag.lag_seconds_lower_bound,
        stale=lag.stale,
        dlq=dlq,
        history=history,
        counts=counts,
    )


class ConsoleState:
    """The lag poller, the dead-letter and scheduler refresh, and the snapshot built from them.

    Args:
        settings: connection settings.
        interval: seconds between refreshes (lag polls and DLQ/scheduler reads).
        scheduler: the scheduler whose backlog is shown (its default topics and group).
        options: the lag poller's options (its ``interval`` is replaced by ``interval``).
        stats_interval: seconds between per-state count reads (they scan the retry, dead-letter
            and scheduler topics, so more slowly than the lag); None: no per-state counts.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        interval: float = 5.0,
        scheduler: SchedulerConfig | None = None,
        options: LagOptions | None = None,
        clock: Callable[[], float] = time.time,
        stats_interval: float | None = 30.0,
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.scheduler_config = scheduler or SchedulerConfig()
        lag_options = dataclasses.replace(options or LagOptions(), interval=interval)
        self.poller = LagPoller(settings, lag_options, on_snapshot=self._on_lag)
        self.stats: StatsPoller | None = None
        if stats_interval is not None:
            stats_options = StatsOptions(
                scheduler_topic=self.scheduler_config.topic,
                scheduler_group=self.scheduler_config.group,
                groups=lag_options.groups,
            )
            self.stats = StatsPoller(settings, stats_options, interval=stats_interval)
        self._clock = clock
        self._history: dict[str, deque[tuple[float, int]]] = {}
        self._dlq: dict[str, DeadLetterCounts] = {}
        self._tiers: tuple[TierStatus, ...] = ()
        self._consumers: dict[str, Consumer] = {}
        self._probe: Consumer | None = None
        self._lock = threading.RLock()  # the DLQ consumers, the counts and the rebuild
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refreshed = False
        self.snapshot = ConsoleSnapshot()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the lag poller, the stats poller and the refresh thread."""
        self.poller.start()
        if self.stats is not None:
            self.stats.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="console-refresh", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop both threads and close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.poller.stop()
        if self.stats is not None:
            self.stats.stop()
        with self._lock:
            for consumer in [*self._consumers.values(), *filter(None, [self._probe])]:
                consumer.close()
            self._consumers.clear()
            self._probe = None

    def healthy(self) -> bool:
        """The poller thread polls, and the refresh thread is alive."""
        alive = self._thread is not None and self._thread.is_alive()
        return alive and self.poller.healthy()

    def ready(self) -> bool:
        """A lag snapshot exists, and the dead letters of its groups and the scheduler were read."""
        return self.poller.ready() and self._refreshed

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.refresh()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    # -- refresh ---------------------------------------------------------------------------------

    def _on_lag(self, snap: LagSnapshot) -> None:
        with self._lock:
            for name, group in snap.groups.items():
                self._history.setdefault(name, deque(maxlen=HISTORY)).append(
                    (snap.taken_at, group.lag)
                )
            for gone in set(self._history) - set(snap.groups):
                del self._history[gone]
            self.rebuild()

    def refresh(self, groups: list[str] | None = None) -> None:
        """Read dead-letter counts (of ``groups``, or of every known group) and the scheduler."""
        polled = self.poller.ready()  # the groups below are those of a real poll
        names = groups if groups is not None else sorted(self.poller.snapshot.groups)
        with self._lock:
            for name in names:
                try:
                    counts = self._read_dlq(name)
                except (PipelineError, KafkaException) as exc:
                    _LOG.warning("reading the dead letters of %s failed: %s", name, exc)
                    continue
                if counts is None:
                    self._dlq.pop(name, None)
                else:
                    self._dlq[name] = counts
            if groups is None:
                for gone in set(self._consumers) - set(names):  # the group is gone
                    self._consumers.pop(gone).close()
                    self._dlq.pop(gone, None)
                try:
                    self._tiers = tuple(scheduler_status(self.settings, self.scheduler_config))
                except PipelineError as exc:
                    _LOG.warning("reading the scheduler backlog failed: %s", exc)
                self._refreshed = self._refreshed or polled
            self.rebuild()

    def _read_dlq(self, group: str) -> DeadLetterCounts | None:
        topic = dlq_topic(group)
        if self._probe is None:
            self._probe = window_consumer(self.settings)
        meta = self._probe.list_topics(topic, timeout=10)
        found = meta.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        consumer = self._consumers.get(group)
        if consumer is None:  # never subscribes: it reads the position, never joins the group
            consumer = self._consumers[group] = window_consumer(self.settings, redrive_group(group))
        partitions = sorted(found.partitions)
        positions = read_positions(consumer, topic, partitions)
        records = pending = 0
        for p in partitions:
            low, high = self._probe.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            start = max(low, positions[p].offset) if p in positions else low
            records += max(0, high - low)
            pending += max(0, high - start)
        return DeadLetterCounts(records=records, pending=pending)

    def rebuild(self) -> None:
        """Build a new snapshot from the latest lag snapshot and counts (cheap, no Kafka)."""
        with self._lock:
            self._rebuild()

    def _rebuild(self) -> None:
        lag = self.poller.snapshot
        states = self.stats.snapshot.groups if self.stats is not None else {}
        groups = {
            name: _group_stats(
                g,
                self._dlq.get(name),
                tuple(self._history.get(name, ((lag.taken_at, g.lag),))),
                states.get(name),
            )
            for name, g in sorted(lag.groups.items())
        }
        tiers = self._tiers
        taken = self._clock()
        stats = {
            "taken_at": taken,
            "lag_taken_at": lag.taken_at,
            "lag_ok": lag.ok,
            "groups": [g.summary() for g in groups.values()],
            "scheduler": [dataclasses.asdict(t) for t in tiers],
            "scheduler_pending": sum(t.pending for t in tiers),
        }
        self.snapshot = ConsoleSnapshot(
            taken_at=taken, lag=lag, groups=groups, scheduler=tiers, stats=stats
        )
