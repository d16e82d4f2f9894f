"""Read the per-state counts of consumer groups from Kafka: offsets, watermarks and headers.

One read lists the groups, describes them, fetches committed offsets (the groups' and the
scheduler's) and log offsets through the lag monitor's ``AdminFetcher``, then reads headers:
the scheduler backlog once (counted per target topic), and each group's retry and
dead-letter topics from their log start. Records are read ``read_committed``, up to the last
stable offset, so aborted records and open transactions are never counted.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from pipeline._admin import admin_client, kafka_error
from pipeline._delay import parse_duration
from pipeline._errors import ConfigError, KafkaOperationError, PipelineError
from pipeline._headers import TARGET_TOPIC, get_header
from pipeline._names import SCHEDULER_GROUP, SCHEDULER_TOPIC, dlq_topic, redrive_group, retry_topic
from pipeline._settings import Settings
from pipeline.lag import Isolation, OffsetReset, PartitionOffsets, offset_lag
from pipeline.lag._fetch import TP, AdminFetcher, GroupDescription
from pipeline.ops import PartitionRange, WindowReader
from pipeline.ops._window import window_consumer

from ._model import GroupStats, StatsSnapshot
from ._tally import DeadLetterTally, RetryTally, completed_count, sum_read

__all__ = ["StatsOptions", "StatsReader", "scheduler_topics"]

_Headers = list[tuple[str, bytes | None]]
_Batch = list[tuple[int, int, _Headers]]


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

    def watches(self, group: str) -> bool:
        """True when ``group`` is read: it passes ``groups`` and is not internal."""
        if group == self.scheduler_group or group.endswith(redrive_group("")):
            return False  # the redrive trackers and the scheduler have no lifecycle of their own
        return self.groups is None or self.groups.search(group) is not None

    def __post_init__(self) -> None:
        if self.max_scan < 1:
            raise ConfigError(f"max_scan must be at least 1, got {self.max_scan}")
        if self.timeout <= 0:
            raise ConfigError(f"timeout must be positive, got {self.timeout}")


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
            # A fresh consumer per read: a reused one keeps the pauses and end-of-partition
            # state of the last read's partitions, and its next read of them would wait.
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
        backlog, backlog_truncated = self._backlog(fetch, committed, counts)
        out: dict[str, GroupStats] = {}
        ok = True
        for name in names:
            c, d = committed.get(name), described.get(name)
            listed = listing[name]
            if isinstance(c, PipelineError) or isinstance(d, PipelineError) or d is None:
                error = c if isinstance(c, PipelineError) else d
                out[name] = GroupStats(
                    group=name, state=listed.state, error=str(error or "not described")
                )
                ok = False
                continue
            assert c is not None
            try:
                stats = self._group(fetch, d, c, counts, backlog)
            except PipelineError as exc:
                stats = GroupStats(group=name, state=d.state, members=d.members, error=str(exc))
                ok = False
            if backlog_truncated and not stats.truncated:
                stats = dataclasses.replace(stats, truncated=True)
            out[name] = stats
        return StatsSnapshot(
            taken_at=time.time(), read_seconds=time.perf_counter() - started, groups=out, ok=ok
        )

    # -- pieces ----------------------------------------------------------------------------------

    def _fetch(self) -> AdminFetcher:
        if self._fetcher is None:
            admin = self._admin or admin_client(self._settings)
            self._fetcher = AdminFetcher(
                admin, timeout=self.options.timeout, servers=self._settings.bootstrap_servers
            )
        return self._fetcher

    def _records(self) -> Consumer:
        if self._consumer is None:
            self._consumer = window_consumer(
                self._settings, **{"isolation.level": "read_committed"}
            )
        return self._consumer

    def _offsets(self, fetch: AdminFetcher, tps: list[TP]) -> dict[TP, PartitionOffsets]:
        out = {}
        for tp, value in fetch.log_offsets(tps).items():
            if isinstance(value, PipelineError):
                raise value
            out[tp] = value
        return out

    def _scan(
        self, topic: str, offsets: Mapping[TP, PartitionOffsets], start: Mapping[int, int]
    ) -> tuple[Iterable[_Batch], bool]:
        """Ranges ``[start, stable)`` of ``topic``, cut to the newest ``max_scan`` records."""
        parts = {p: o for (t, p), o in offsets.items() if t == topic}
        ranges, truncated = [], False
        share = max(1, self.options.max_scan // max(1, len(parts)))
        for p, o in sorted(parts.items()):
            begin = max(start.get(p, o.log_start), o.log_start)
            end = max(o.stable_offset, begin)
            if end - begin > share:
                begin, truncated = end - share, True
            if end > begin:
                ranges.append(PartitionRange(p, begin, end))
        if not ranges:
            return [], truncated
        reader = WindowReader(
            self._records(), topic, ranges, stall_timeout=self.options.timeout * 3
        )

        def batches() -> Iterable[_Batch]:
            try:
                for batch in reader.batches():
                    yield [
                        (m.partition() or 0, m.offset() or 0, cast(_Headers, m.headers() or []))
                        for m in batch
                    ]
            except KafkaException as exc:
                raise kafka_error(exc, f"reading {topic}") from exc

        return batches(), truncated

    def _backlog(
        self,
        fetch: AdminFetcher,
        committed: Mapping[str, dict[TP, int] | PipelineError],
        counts: Mapping[str, int],
    ) -> tuple[Counter[bytes], bool]:
        """Records waiting in the scheduler, per ``pipeline-target-topic`` value."""
        topics = scheduler_topics(counts, self.options.scheduler_topic)
        found: Counter[bytes] = Counter()
        truncated = False
        positions = committed.get(self.options.scheduler_group)
        if not isinstance(positions, dict):
            positions = {}  # no scheduler group yet: everything in its topics waits
        for topic in topics:
            offsets = self._offsets(fetch, [(topic, p) for p in range(counts[topic])])
            start = {p: o for (t, p), o in positions.items() if t == topic}
            batches, cut = self._scan(topic, offsets, start)
            truncated |= cut
            for batch in batches:
                for _, _, headers in batch:
                    found[get_header(headers, TARGET_TOPIC) or b""] += 1
        return found, truncated

    def _group(
        self,
        fetch: AdminFetcher,
        d: GroupDescription,
        committed: dict[TP, int],
        counts: Mapping[str, int],
        backlog: Counter[bytes],
    ) -> GroupStats:
        retry, dlq = retry_topic(d.group), dlq_topic(d.group)
        sources = sorted({t for t, _ in committed.keys() | d.assigned} - {retry})
        topics = [t for t in (*sources, retry, dlq) if t in counts]
        offsets = self._offsets(fetch, [(t, p) for t in topics for p in range(counts[t])])
        pending = retry_lag = read = 0
        for (topic, partition), log in offsets.items():
            if topic == dlq:
                continue
            c = committed.get((topic, partition))
            if topic != retry and c is None and (topic, partition) not in d.assigned:
                continue
            lag = offset_lag(c, log, Isolation.READ_COMMITTED, OffsetReset.EARLIEST).lag
            if topic == retry:
                retry_lag += lag
            else:
                pending += lag
            read += sum_read([(c, log.log_start)])
        tally, truncated = RetryTally(), False
        batches, cut = self._scan(retry, offsets, {})
        truncated |= cut
        for batch in batches:
            for _, _, headers in batch:
                tally.add(headers)
        dead_letters = DeadLetterTally()
        batches, cut = self._scan(dlq, offsets, {})
        truncated |= cut
        for batch in batches:
            for partition, offset, headers in batch:
                dead_letters.add(headers, partition, offset)
        dead, expired = dead_letters.counts(tally)
        waiting = backlog.get(retry.encode(), 0)
        retried = tally.worker_copies + waiting
        return GroupStats(
            group=d.group,
            state=d.state,
            members=d.members,
            topics=tuple(sources),
            pending=pending,
            retrying=waiting + retry_lag,
            dead=dead,
            expired=expired,
            completed=completed_count(read, retried, dead_letters.records),
            retried=retried,
            redriven=tally.redrive_writes,
            truncated=truncated,
        )
