"""The lag poller: one admin round per interval, folded into an immutable snapshot."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from pipeline._admin import admin_client
from pipeline._errors import PipelineError
from pipeline._settings import Settings

from ._fetch import TP, AdminFetcher, GroupDescription, GroupListing
from ._math import Isolation, choose_isolation, offset_lag
from ._model import GroupLag, LagSnapshot, PartitionLag, PartitionOffsets, Status
from ._options import LagOptions
from ._orphans import OrphanClock, unowned
from ._reader import RecordProbe, RecordReader
from ._status import PartitionWindow, worst
from ._timelag import OffsetTimeTable

__all__ = ["LagPoller"]

_LOG = logging.getLogger("pipeline.lag")
_Key = tuple[str, str, int]  # group, topic, partition
_ProbeKey = tuple[TP, int, Isolation]  # partition, position, isolation the record is read at


@dataclasses.dataclass(slots=True)
class _Pending:
    """One partition's offset lag, before time lag and record probes are applied."""

    group: str
    tp: TP
    committed: int | None
    """None: the partition is assigned but nothing is committed (``no_commit``)."""
    isolation: Isolation
    position: int
    end: int
    lag: int
    expired: bool
    probe: bool


class LagPoller:
    """Poll consumer-group lag and keep the latest :class:`LagSnapshot`.

    ``poll_once()`` runs one round in the caller's thread; ``start()`` runs rounds every
    ``options.interval`` seconds in a daemon thread. ``on_snapshot`` is called with each new
    snapshot, in the polling thread (the exporter pre-renders ``/metrics`` there). Readers take
    ``snapshot`` (an immutable object swapped atomically), so they never wait for, or call, Kafka.
    A failed call marks only the groups (or partitions) it concerned as stale and keeps their
    last good values; the time-lag history is never dropped for a failure, only when its topic
    or group is gone.
    """

    def __init__(
        self,
        settings: Settings,
        options: LagOptions | None = None,
        *,
        admin: AdminClient | None = None,
        clock: Callable[[], float] = time.time,
        on_snapshot: Callable[[LagSnapshot], None] | None = None,
    ) -> None:
        self._settings = settings
        self._on_snapshot = on_snapshot
        self.options = options or LagOptions()
        self._admin = admin
        self._clock = clock
        self._snapshot = LagSnapshot()
        self._errors: Counter[str] = Counter()
        self._tables: dict[TP, OffsetTimeTable] = {}
        self._windows: dict[_Key, PartitionWindow] = {}
        self._last_seen: dict[_Key, tuple[int, int]] = {}
        self._probes: dict[_ProbeKey, tuple[RecordProbe, int]] = {}
        self._uncommitted: set[str] = set()
        self._orphans = OrphanClock()
        self._counts: dict[str, int] = {}
        self._reader: RecordReader | None = None
        self._fetcher: AdminFetcher | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_attempt = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def snapshot(self) -> LagSnapshot:
        """The latest snapshot (empty, with ``taken_at == 0``, before the first poll)."""
        return self._snapshot

    def start(self) -> None:
        """Poll in a daemon thread until ``stop()``; a second call does nothing."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pipeline-lag-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and close the clients."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.options.timeout * 3 + 5)
            self._thread = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def healthy(self) -> bool:
        """The poll thread is alive and attempted a poll recently."""
        limit = self.options.interval * 3 + self.options.timeout * 4
        alive = self._thread is not None and self._thread.is_alive()
        return alive and time.monotonic() - self._last_attempt < limit

    def ready(self) -> bool:
        """A snapshot has been taken."""
        return self._snapshot.taken_at > 0

    def _run(self) -> None:
        if self.ready():  # a poll_once() just ran (``lag serve`` checks Kafka before serving)
            self._stop.wait(
                max(0.0, self.options.interval - (self._clock() - self._snapshot.taken_at))
            )
        while not self._stop.is_set():
            started = time.monotonic()
            self.poll_once()
            self._stop.wait(max(0.0, self.options.interval - (time.monotonic() - started)))

    # -- one round --------------------------------------------------------------------------------

    def _fetch(self) -> AdminFetcher:
        if self._fetcher is None:
            admin = self._admin or admin_client(self._settings)
            self._fetcher = AdminFetcher(
                admin,
                timeout=self.options.timeout,
                concurrency=self.options.concurrency,
                servers=self._settings.bootstrap_servers,
            )
        return self._fetcher

    def poll_once(self, *, strict: bool = False) -> LagSnapshot:
        """Run one poll round, publish and return the new snapshot.

        Never raises, unless ``strict``: then a round that failed as a whole (Kafka unreachable,
        groups not listed) raises its ``PipelineError`` and publishes nothing, so a one-shot
        caller such as ``lag show`` can exit 1 instead of showing an empty table. Failures of
        single groups or partitions never raise: those are marked ``stale``.
        """
        self._last_attempt = time.monotonic()
        started = time.perf_counter()
        failed_before = sum(self._errors.values())
        try:
            groups, offsets = self._round()
        except PipelineError as exc:
            if strict:
                raise
            _LOG.warning("lag poll failed: %s", exc)
            groups = {
                g: dataclasses.replace(v, stale=True) for g, v in self.snapshot.groups.items()
            }
            offsets = {
                tp: dataclasses.replace(o, stale=True) for tp, o in self.snapshot.offsets.items()
            }
        except Exception:  # the poll thread must survive anything; the error is counted
            _LOG.exception("lag poll crashed")
            self._errors["poll"] += 1
            groups, offsets = dict(self.snapshot.groups), dict(self.snapshot.offsets)
        snap = LagSnapshot(
            taken_at=self._clock(),
            poll_seconds=time.perf_counter() - started,
            groups=groups,
            offsets=offsets,
            polls=self.snapshot.polls + 1,
            errors=dict(self._errors),
            ok=sum(self._errors.values()) == failed_before,
        )
        self._snapshot = snap
        if self._on_snapshot is not None:
            try:
                self._on_snapshot(snap)
            except Exception:  # a broken listener must not stop the polls
                _LOG.exception("snapshot listener failed")
        return snap

    def _round(self) -> tuple[dict[str, GroupLag], dict[TP, PartitionOffsets]]:
        fetch = self._fetch()
        try:
            listing = [g for g in fetch.list_groups() if self.options.watches(g.group)]
        except PipelineError:
            self._errors["list_groups"] += 1
            raise
        names = sorted(g.group for g in listing)
        described = fetch.describe(names) if names else {}
        committed = fetch.committed(names)
        self._errors["describe"] += sum(isinstance(v, PipelineError) for v in described.values())
        self._errors["committed"] += sum(isinstance(v, PipelineError) for v in committed.values())
        try:
            self._counts = fetch.partition_counts()
        except PipelineError:
            self._errors["metadata"] += 1
            if not self._counts:
                raise
        topics = {t for c in committed.values() if isinstance(c, dict) for t, _ in c}
        topics |= {
            t for d in described.values() if isinstance(d, GroupDescription) for t, _ in d.assigned
        }
        wanted = [
            (t, p) for t in sorted(topics & self._counts.keys()) for p in range(self._counts[t])
        ]
        now = self._clock()
        offsets = self._log_offsets(fetch, wanted, now)
        self._forget(set(names), set(offsets))
        self._orphans.forget(set(names))
        pending: dict[str, list[_Pending]] = {}
        orphaned: dict[str, dict[TP, float]] = {}
        for g in listing:
            c, d = committed.get(g.group), described.get(g.group)
            if isinstance(c, dict) and isinstance(d, GroupDescription):
                lost = unowned(d.state, d.assigned, self._counts)
                orphaned[g.group] = self._orphans.update(g.group, lost, now)
                pending[g.group] = self._offset_lags(g.group, c, d.assigned | lost, offsets)
        probes = self._read_records(pending, offsets)
        groups = {}
        for g in listing:
            if g.group in pending:
                d = described[g.group]
                assert isinstance(d, GroupDescription)
                groups[g.group] = self._group(
                    d, pending[g.group], probes, offsets, now, orphaned[g.group]
                )
            else:
                groups[g.group] = self._stale_group(
                    g, committed.get(g.group), described.get(g.group)
                )
        return groups, offsets

    def _log_offsets(
        self, fetch: AdminFetcher, wanted: list[TP], now: float
    ) -> dict[TP, PartitionOffsets]:
        previous = self.snapshot.offsets
        out: dict[TP, PartitionOffsets] = {}
        for tp, value in fetch.log_offsets(wanted).items():
            if isinstance(value, PartitionOffsets):
                out[tp] = value
                table = self._tables.get(tp)
                if table is None:
                    table = self._tables[tp] = OffsetTimeTable(self.options.history)
                table.add(value.high_watermark, now)
            else:
                self._errors["list_offsets"] += 1
                if tp in previous:
                    out[tp] = dataclasses.replace(previous[tp], stale=True)
        return out

    def _forget(self, groups: set[str], tps: set[TP]) -> None:
        """Drop state of deleted groups and of partitions nobody watches any more."""
        for tp in [tp for tp in self._tables if tp not in tps]:
            del self._tables[tp]
        for key in [k for k in self._windows if k[0] not in groups or k[1:] not in tps]:
            del self._windows[key]
            self._last_seen.pop(key, None)
        self._uncommitted &= groups

    def _offset_lags(
        self,
        group: str,
        committed: dict[TP, int],
        assigned: frozenset[TP],
        offsets: dict[TP, PartitionOffsets],
    ) -> list[_Pending]:
        """Offset lag of every committed partition, and of every assigned one without a commit.

        An assigned partition with no committed offset is lag the group will have to read (or
        skip) by its ``auto.offset.reset``: it is kept, with ``committed=None``.
        """
        mode = choose_isolation(
            self.options.isolation, committed, offsets, group in self._uncommitted
        )
        if mode is Isolation.READ_UNCOMMITTED and self.options.isolation is Isolation.AUTO:
            self._uncommitted.add(group)
        out = []
        for tp in sorted(committed.keys() | assigned):
            log = offsets.get(tp)
            if log is None:  # deleted topic, or never read successfully
                continue
            c = committed.get(tp)
            ol = offset_lag(c, log, mode, self.options.offset_reset)
            key = (group, *tp)
            seen = (-1 if c is None else c, ol.end_offset)
            idle = self._last_seen.get(key) == seen
            self._last_seen[key] = seen
            probe = idle and 0 < ol.lag <= self.options.marker_probe_max
            out.append(
                _Pending(
                    group,
                    tp,
                    c,
                    mode,
                    ol.position,
                    ol.end_offset,
                    ol.lag,
                    ol.offset_expired,
                    probe,
                )
            )
        return out

    def _read_records(
        self, pending: dict[str, list[_Pending]], offsets: dict[TP, PartitionOffsets]
    ) -> dict[_ProbeKey, RecordProbe]:
        """Read records for marker probes and exact mode, at each group's isolation level.

        Cached by (partition, position, isolation): a read_committed read skips aborted records,
        a read_uncommitted one does not, so one position can have two answers.
        """
        wanted: dict[_ProbeKey, int] = {}
        for rows in pending.values():
            for r in rows:
                if r.lag > 0 and (r.probe or self.options.exact):
                    wanted[(r.tp, r.position, r.isolation)] = r.end
        valid = {}
        for key, end in wanted.items():
            hit = self._probes.get(key)
            if hit is not None and (hit[0].offset is not None or hit[1] == end):
                valid[key] = hit
        self._probes = valid
        todo: dict[Isolation, dict[TP, int]] = {}
        for tp, position, isolation in wanted:
            per = todo.setdefault(isolation, {})
            if (tp, position, isolation) not in valid and tp not in per:
                per[tp] = position
        for isolation, positions in todo.items():
            if not positions:
                continue
            reader = self._reader
            if reader is None:
                reader = self._reader = RecordReader(
                    self._settings, max_partitions=self.options.exact_max_partitions
                )
            try:
                for tp, probe in reader.read(positions, isolation).items():
                    key = (tp, positions[tp], isolation)
                    self._probes[key] = (probe, wanted[key])
            except PipelineError as exc:
                self._errors["read_records"] += 1
                _LOG.warning("%s", exc)
        return {k: v[0] for k, v in self._probes.items()}

    def _group(
        self,
        d: GroupDescription,
        rows: list[_Pending],
        probes: dict[_ProbeKey, RecordProbe],
        offsets: dict[TP, PartitionOffsets],
        now: float,
        orphaned: dict[TP, float],
    ) -> GroupLag:
        parts = []
        orphan_after = self.options.thresholds.orphan_seconds
        for r in rows:
            lag, seconds, bound = r.lag, 0.0, False
            probe = probes.get((r.tp, r.position, r.isolation))
            if lag > 0 and probe is not None and (probe.offset is None or probe.offset >= r.end):
                # Nothing a consumer at this isolation level receives is left: only transaction
                # markers (and, read_committed, aborted records).
                lag = 0
            elif lag > 0:
                if self.options.exact and probe is not None and probe.timestamp is not None:
                    seconds = max(0.0, now - probe.timestamp)
                else:
                    tl = self._tables[r.tp].lag(r.position, lag, now)
                    seconds, bound = tl.seconds, tl.lower_bound
            key = (r.group, *r.tp)
            window = self._windows.get(key)
            if window is None:
                window = self._windows[key] = PartitionWindow(self.options.thresholds)
            status = window.add(now, -1 if r.committed is None else r.committed, lag)
            unowned_s = orphaned.get(r.tp)
            if unowned_s is not None and unowned_s >= orphan_after:
                status = Status.ORPHANED
            parts.append(
                PartitionLag(
                    group=r.group,
                    topic=r.tp[0],
                    partition=r.tp[1],
                    committed=r.committed,
                    end_offset=r.end,
                    lag=lag,
                    offset_expired=r.expired,
                    lag_seconds=seconds,
                    lag_seconds_lower_bound=bound,
                    status=status,
                    stale=offsets[r.tp].stale,
                    unowned_seconds=unowned_s,
                )
            )
        return GroupLag(
            group=d.group,
            state=d.state,
            protocol=d.protocol,
            assignor=d.assignor,
            members=d.members,
            assigned_partitions=len(d.assigned),
            orphaned_partitions=sum(p.status is Status.ORPHANED for p in parts),
            isolation=(
                "read_uncommitted"
                if self.options.isolation is Isolation.READ_UNCOMMITTED
                or d.group in self._uncommitted
                else "read_committed"
            ),
            offset_reset=self.options.offset_reset.value,
            partitions=tuple(parts),
            status=worst([p.status for p in parts]),
            stale=any(p.stale for p in parts),
            updated_at=now,
        )

    def _stale_group(self, listing: GroupListing, committed: object, described: object) -> GroupLag:
        error = next((str(v) for v in (described, committed) if isinstance(v, PipelineError)), None)
        previous = self.snapshot.groups.get(listing.group)
        if previous is not None:
            return dataclasses.replace(previous, stale=True, error=error)
        return GroupLag(
            group=listing.group,
            state=listing.state,
            protocol=listing.protocol,
            stale=True,
            error=error,
        )
