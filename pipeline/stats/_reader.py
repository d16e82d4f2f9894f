"""Read the per-state counts of consumer groups from Kafka: offsets, watermarks and headers.

One read lists the groups, describes them, fetches committed offsets (the groups' and the
scheduler's) and log offsets through the lag monitor's ``AdminFetcher``, then reads headers
in one pass over every partition concerned: the scheduler backlog (counted per target topic)
and each group's retry and dead-letter topics from their log start. Records are read
``read_committed``, up to the last stable offset, so aborted records and open transactions
are never counted.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from pipeline._admin import admin_client
from pipeline._delay import parse_duration
from pipeline._errors import ConfigError, KafkaOperationError, PipelineError
from pipeline._headers import TARGET_TOPIC, get_header
from pipeline._names import SCHEDULER_GROUP, SCHEDULER_TOPIC, dlq_topic, redrive_group, retry_topic
from pipeline._settings import Settings
from pipeline.lag import Isolation, OffsetReset, PartitionOffsets, offset_lag
from pipeline.lag._fetch import AdminFetcher, GroupDescription
from pipeline.ops._window import window_consumer

from ._model import GroupStats, StatsSnapshot
from ._scan import TP, cut_ranges, scan
from ._tally import DeadLetterTally, RetryTally, completed_count, sum_read

__all__ = ["StatsOptions", "StatsReader", "scheduler_topics"]

_Headers = list[tuple[str, bytes | None]]
_Fold = Callable[[int, int, _Headers], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsOptions:
    """What a read looks at.

    Args:
        scheduler_topic: the scheduler's entry topic; its tiers are ``<topic>.<duration>``.
        scheduler_group: the scheduler's consumer group (its committed offsets bound the backlog).
        max_scan: records read at most per topic (the newest are kept); beyond it the counts
            that read records are lower bounds (``GroupStats.truncated``).
        timeout: seconds per Kafka request.
        groups: only groups this pattern finds (``re.search``), when reading every group.
    """

    scheduler_topic: str = SCHEDULER_TOPIC
    scheduler_group: str = SCHEDULER_GROUP
    max_scan: int = 1_000_000
    timeout: float = 10.0
    groups: re.Pattern[str] | None = None

    def __post_init__(self) -> None:
        if self.max_scan < 1:
            raise ConfigError(f"max_scan must be at least 1, got {self.max_scan}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")

    def watches(self, group: str) -> bool:
        """True when ``group`` is read: it passes ``groups`` and is not internal."""
        if group == self.scheduler_group or group.endswith(redrive_group("")):
            return False  # the redrive trackers and the scheduler have no lifecycle of their own
        return self.groups is None or self.groups.search(group) is not None


def scheduler_topics(topics: Iterable[str], entry: str) -> list[str]:
    """The entry topic and every ``<entry>.<duration>`` tier among ``topics``."""
    out = []
    for name in topics:
        if name == entry:
            out.append(name)
        elif name.startswith(entry + "."):
            try:
                parse_duration(name[len(entry) + 1 :])
            except ConfigError:
                continue
            out.append(name)
    return sorted(out)


@dataclass
class _Group:
    """One group being read: its description, commits and what its topics' records fold into."""

    d: GroupDescription
    committed: dict[TP, int]
    sources: list[str]
    retry: RetryTally = field(default_factory=RetryTally)
    dlq: DeadLetterTally = field(default_factory=DeadLetterTally)

    @property
    def topics(self) -> list[str]:
        return [*self.sources, retry_topic(self.d.group), dlq_topic(self.d.group)]

    def fold_retry(self, _partition: int, _offset: int, headers: _Headers) -> None:
        self.retry.add(headers)

    def fold_dlq(self, partition: int, offset: int, headers: _Headers) -> None:
        self.dlq.add(headers, partition, offset)


class StatsReader:
    """Read :class:`GroupStats` for every consumer group, or one; no worker needs to run.

    Args:
        settings: connection settings.
        options: scheduler names, scan limit, timeouts.
        admin: an admin client to reuse (one is built otherwise).
    """

    def __init__(
        self,
        settings: Settings,
        options: StatsOptions | None = None,
        *,
        admin: AdminClient | None = None,
    ) -> None:
        self._settings = settings
        self.options = options or StatsOptions()
        self._admin = admin
        self._fetcher: AdminFetcher | None = None
        self._consumer: Consumer | None = None

    def close(self) -> None:
        """Close the record consumer (each read closes it too; the reader stays usable)."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def read(self, group: str | None = None) -> StatsSnapshot:
        """Read every group's counts (or only ``group``'s).

        Raises:
            KafkaUnavailableError: the cluster cannot be reached.
            KafkaOperationError: ``group`` does not exist, or listing the groups failed.
        """
        try:
            return self._read(group)
        finally:
            # A fresh consumer per read: a reused one keeps the end-of-partition state of the
            # last read's partitions, and its next read of them would wait.
            self.close()

    def _read(self, group: str | None) -> StatsSnapshot:
        started = time.perf_counter()
        fetch = self._fetch()
        listing = {g.group: g for g in fetch.list_groups()}
        if group is not None and group not in listing:
            raise KafkaOperationError(
                f"consumer group {group!r} does not exist (`pipeline stats` lists every group)"
            )
        names = [group] if group else sorted(g for g in listing if self.options.watches(g))
        described = fetch.describe(names) if names else {}
        committed = fetch.committed([*names, self.options.scheduler_group])
        counts = fetch.partition_counts()
        out: dict[str, GroupStats] = {}
        groups: dict[str, _Group] = {}
        for name in names:
            c, d = committed.get(name), described.get(name)
            if isinstance(d, GroupDescription) and isinstance(c, dict):
                retry = retry_topic(name)
                sources = sorted({t for t, _ in c.keys() | d.assigned} - {retry})
                groups[name] = _Group(d, c, [t for t in sources if t in counts])
            else:
                error = c if isinstance(c, PipelineError) else d
                out[name] = GroupStats(
                    group=name, state=listing[name].state, error=str(error or "not described")
                )
        sched = scheduler_topics(counts, self.options.scheduler_topic)
        wanted = {t for g in groups.values() for t in g.topics if t in counts} | set(sched)
        offsets, failed = self._offsets(fetch, [(t, p) for t in wanted for p in range(counts[t])])
        backlog: Counter[bytes] = Counter()
        cut = self._read_records(offsets, committed, sched, groups, backlog)
        for name, g in groups.items():
            broken = failed & set(g.topics)
            if broken:
                out[name] = GroupStats(
                    group=name,
                    state=g.d.state,
                    members=g.d.members,
                    error=f"reading the offsets of {', '.join(sorted(broken))} failed",
                )
                continue
            truncated = bool(cut & {*g.topics, *sched})
            out[name] = _counts(g, offsets, backlog, truncated)
        return StatsSnapshot(
            taken_at=time.time(),
            read_seconds=time.perf_counter() - started,
            groups=dict(sorted(out.items())),
            ok=not failed and all(g.error is None for g in out.values()),
        )

    # -- pieces ----------------------------------------------------------------------------------

    def _fetch(self) -> AdminFetcher:
        if self._fetcher is None:
            admin = self._admin or admin_client(self._settings)
            self._fetcher = AdminFetcher(
                admin, timeout=self.options.timeout, servers=self._settings.bootstrap_servers
            )
        return self._fetcher

    def _offsets(
        self, fetch: AdminFetcher, tps: list[TP]
    ) -> tuple[dict[TP, PartitionOffsets], set[str]]:
        """Log offsets, and the topics whose offsets could not be read."""
        out, failed = {}, set()
        for tp, value in fetch.log_offsets(tps).items():
            if isinstance(value, PipelineError):
                failed.add(tp[0])
            else:
                out[tp] = value
        return out, failed

    def _read_records(
        self,
        offsets: Mapping[TP, PartitionOffsets],
        committed: Mapping[str, dict[TP, int] | PipelineError],
        sched: list[str],
        groups: Mapping[str, _Group],
        backlog: Counter[bytes],
    ) -> set[str]:
        """Fold the scheduler backlog and each group's retry and DLQ records; the topics cut."""
        folds: dict[str, _Fold] = {}

        def count_target(_p: int, _o: int, headers: _Headers) -> None:
            backlog[get_header(headers, TARGET_TOPIC) or b""] += 1

        for topic in sched:
            folds[topic] = count_target
        for g in groups.values():
            folds[retry_topic(g.d.group)] = g.fold_retry
            folds[dlq_topic(g.d.group)] = g.fold_dlq
        positions = committed.get(self.options.scheduler_group)
        # The scheduler's backlog starts at its committed offsets (none yet: everything waits).
        start = {tp: o for tp, o in positions.items() if tp[0] in sched} if isinstance(
            positions, dict
        ) else {}  # fmt: skip
        ranges = {
            tp: (max(start.get(tp, o.log_start), o.log_start), o.stable_offset)
            for tp, o in offsets.items()
            if tp[0] in folds
        }
        ranges, cut = cut_ranges(ranges, self.options.max_scan)
        if ranges:
            if self._consumer is None:
                conf = {"isolation.level": "read_committed"}
                self._consumer = window_consumer(self._settings, **conf)
            for msg in scan(self._consumer, ranges, self.options.timeout * 3):
                folds[msg.topic() or ""](
                    msg.partition() or 0, msg.offset() or 0, cast(_Headers, msg.headers() or [])
                )
        return cut


def _counts(
    g: _Group, offsets: Mapping[TP, PartitionOffsets], backlog: Counter[bytes], truncated: bool
) -> GroupStats:
    """The counts of one group from its offsets and folded records."""
    retry = retry_topic(g.d.group)
    pending = retry_lag = read = 0
    for (topic, partition), log in offsets.items():
        if topic not in g.sources and topic != retry:
            continue
        c = g.committed.get((topic, partition))
        if topic != retry and c is None and (topic, partition) not in g.d.assigned:
            continue
        lag = offset_lag(c, log, Isolation.READ_COMMITTED, OffsetReset.EARLIEST).lag
        if topic == retry:
            retry_lag += lag
        else:
            pending += lag
        read += sum_read([(c, log.log_start)])
    dead, expired = g.dlq.counts(g.retry)
    waiting = backlog.get(retry.encode(), 0)
    retried = g.retry.worker_copies + waiting
    return GroupStats(
        group=g.d.group,
        state=g.d.state,
        members=g.d.members,
        topics=tuple(g.sources),
        pending=pending,
        retrying=waiting + retry_lag,
        dead=dead,
        expired=expired,
        completed=completed_count(read, retried, g.dlq.records),
        retried=retried,
        redriven=g.retry.redrive_writes,
        truncated=truncated,
    )
