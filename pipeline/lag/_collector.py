"""Prometheus collector over the lag snapshot: a scrape reads memory, never Kafka."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from ._model import LagSnapshot

__all__ = [
    "COMPAT_LABELS",
    "GROUP_LABELS",
    "PARTITION_LABELS",
    "PREFIX",
    "TOPIC_LABELS",
    "LagCollector",
]

PREFIX = "pipeline_"
GROUP_LABELS = ("group",)
PARTITION_LABELS = ("group", "topic", "partition")
TOPIC_LABELS = ("topic", "partition")
INFO_LABELS = ("group", "state", "protocol", "assignor", "isolation")
COMPAT_LABELS = ("consumergroup", "topic", "partition")
"""kafka_exporter's label names, for ``--compat kafka_exporter``."""


def _gauge(name: str, doc: str, labels: tuple[str, ...]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class LagCollector(Collector):
    """Serve a :class:`LagSnapshot` as metrics.

    Args:
        snapshot: returns the current snapshot (for example ``LagPoller.snapshot``'s getter).
        compat_kafka_exporter: also export kafka_exporter's ``kafka_consumergroup_*`` names.
        clock: wall clock, for the snapshot age.
        age: export ``pipeline_lag_snapshot_age_seconds`` (off when a cache adds it per scrape).
    """

    def __init__(
        self,
        snapshot: Callable[[], LagSnapshot],
        *,
        compat_kafka_exporter: bool = False,
        clock: Callable[[], float] = time.time,
        age: bool = True,
    ) -> None:
        self._snapshot = snapshot
        self._compat = compat_kafka_exporter
        self._clock = clock
        self._age = age

    def describe(self) -> list[GaugeMetricFamily]:
        """No eager collection at registration (the snapshot may be empty)."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self._snapshot()
        yield from self._partition_metrics(snap)
        yield from self._group_metrics(snap)
        yield from self._topic_metrics(snap)
        yield from self._self_metrics(snap)
        if self._compat:
            yield from self._compat_metrics(snap)

    def _partition_metrics(self, snap: LagSnapshot) -> Iterator[GaugeMetricFamily]:
        p = PREFIX + "consumergroup_"
        lag = _gauge(
            p + "lag", "Records the group has left to read (end - committed).", PARTITION_LABELS
        )
        secs = _gauge(
            p + "lag_seconds",
            "Age of the record at the committed offset, in seconds; 0 when caught up.",
            PARTITION_LABELS,
        )
        bound = _gauge(
            p + "lag_seconds_is_lower_bound",
            "1 when lag_seconds is only a lower bound (older than the sampled history).",
            PARTITION_LABELS,
        )
        committed = _gauge(
            p + "committed_offset",
            "Committed offset (no sample when nothing is committed: see no_commit).",
            PARTITION_LABELS,
        )
        no_commit = _gauge(
            p + "no_commit",
            "1 when a member is assigned the partition but the group never committed on it "
            "(lag assumes the group's auto.offset.reset).",
            PARTITION_LABELS,
        )
        expired = _gauge(
            p + "offset_expired",
            "1 when retention deleted the committed position (lag counts from the log start).",
            PARTITION_LABELS,
        )
        status = _gauge(
            p + "partition_status",
            "Partition status: 0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ORPHANED.",
            PARTITION_LABELS,
        )
        for group in snap.groups.values():
            for part in group.partitions:
                labels = [part.group, part.topic, str(part.partition)]
                lag.add_metric(labels, part.lag)
                secs.add_metric(labels, part.lag_seconds)
                bound.add_metric(labels, float(part.lag_seconds_lower_bound))
                if part.committed is not None:
                    committed.add_metric(labels, part.committed)
                no_commit.add_metric(labels, float(part.no_commit))
                expired.add_metric(labels, float(part.offset_expired))
                status.add_metric(labels, int(part.status))
        yield from (lag, secs, bound, committed, no_commit, expired, status)

    def _group_metrics(self, snap: LagSnapshot) -> Iterator[GaugeMetricFamily]:
        p = PREFIX + "consumergroup_"
        status = _gauge(
            p + "status",
            "Group status, the worst partition's: "
            "0 OK, 1 WARN, 2 REWIND, 3 STALL, 4 STOP, 5 ORPHANED.",
            GROUP_LABELS,
        )
        members = _gauge(p + "members", "Members in the group.", GROUP_LABELS)
        orphaned = _gauge(
            p + "orphaned_partitions",
            "Partitions of consumed topics that no member of the Stable group has owned for "
            "orphan_seconds (status ORPHANED).",
            GROUP_LABELS,
        )
        lag_sum = _gauge(p + "lag_sum", "Total records the group has left to read.", GROUP_LABELS)
        secs_max = _gauge(
            p + "lag_seconds_max", "Largest lag_seconds over the group's partitions.", GROUP_LABELS
        )
        stale = _gauge(
            p + "stale",
            "1 when the last poll failed for this group (values are older).",
            GROUP_LABELS,
        )
        info = _gauge(p + "info", "Group description; the value is always 1.", INFO_LABELS)
        for g in snap.groups.values():
            status.add_metric([g.group], int(g.status))
            members.add_metric([g.group], g.members)
            orphaned.add_metric([g.group], g.orphaned_partitions)
            lag_sum.add_metric([g.group], g.lag)
            secs_max.add_metric([g.group], g.lag_seconds)
            stale.add_metric([g.group], float(g.stale))
            info.add_metric([g.group, g.state, g.protocol, g.assignor, g.isolation], 1)
        yield from (status, members, orphaned, lag_sum, secs_max, stale, info)

    def _topic_metrics(self, snap: LagSnapshot) -> Iterator[GaugeMetricFamily]:
        end = _gauge(
            PREFIX + "partition_end_offset", "High watermark of the partition.", TOPIC_LABELS
        )
        stable = _gauge(
            PREFIX + "partition_stable_offset", "Last stable offset of the partition.", TOPIC_LABELS
        )
        start = _gauge(
            PREFIX + "partition_log_start_offset",
            "Log start offset of the partition.",
            TOPIC_LABELS,
        )
        for (topic, partition), o in snap.offsets.items():
            labels = [topic, str(partition)]
            end.add_metric(labels, o.high_watermark)
            stable.add_metric(labels, o.stable_offset)
            start.add_metric(labels, o.log_start)
        yield from (end, stable, start)

    def _self_metrics(self, snap: LagSnapshot) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        p = PREFIX + "lag_"
        yield GaugeMetricFamily(
            p + "poll_duration_seconds",
            "Duration of the last poll, in seconds.",
            value=snap.poll_seconds,
        )
        if self._age:
            age = self._clock() - snap.taken_at if snap.taken_at else float("inf")
            yield GaugeMetricFamily(
                p + "snapshot_age_seconds",
                "Seconds since the snapshot was taken (+Inf before the first).",
                value=age,
            )
        yield GaugeMetricFamily(
            p + "snapshot_timestamp_seconds",
            "Unix time the snapshot was taken.",
            value=snap.taken_at,
        )
        yield GaugeMetricFamily(
            p + "last_poll_ok", "1 when the last poll had no failed call.", value=float(snap.ok)
        )
        yield GaugeMetricFamily(p + "groups", "Groups in the snapshot.", value=len(snap.groups))
        yield CounterMetricFamily(p + "polls", "Polls run.", value=snap.polls)
        errors = CounterMetricFamily(
            p + "poll_errors", "Failed admin calls, by call.", labels=["call"]
        )
        for call in (
            "list_groups",
            "describe",
            "committed",
            "metadata",
            "list_offsets",
            "read_records",
            "poll",
        ):
            errors.add_metric([call], snap.errors.get(call, 0))
        yield errors

    def _compat_metrics(self, snap: LagSnapshot) -> Iterator[GaugeMetricFamily]:
        k = "kafka_consumergroup_"
        lag = _gauge(
            k + "lag",
            "Current approximate lag of a consumer group at topic/partition.",
            COMPAT_LABELS,
        )
        current = _gauge(
            k + "current_offset",
            "Committed offset of a consumer group at topic/partition.",
            COMPAT_LABELS,
        )
        lag_sum = _gauge(
            k + "lag_sum",
            "Current approximate lag of a consumer group at topic.",
            ("consumergroup", "topic"),
        )
        members = _gauge(
            k + "members", "Amount of members in a consumer group.", ("consumergroup",)
        )
        for g in snap.groups.values():
            members.add_metric([g.group], g.members)
            sums: dict[str, int] = {}
            for part in g.partitions:
                labels = [g.group, part.topic, str(part.partition)]
                lag.add_metric(labels, part.lag)
                # kafka_exporter reports -1 for a partition without a committed offset.
                current.add_metric(labels, -1 if part.committed is None else part.committed)
                sums[part.topic] = sums.get(part.topic, 0) + part.lag
            for topic, total in sums.items():
                lag_sum.add_metric([g.group, topic], total)
        t = "kafka_topic_partition"
        newest = _gauge(
            t + "_current_offset",
            "Current offset of a broker at topic/partition.",
            ("topic", "partition"),
        )
        oldest = _gauge(
            t + "_oldest_offset",
            "Oldest offset of a broker at topic/partition.",
            ("topic", "partition"),
        )
        counts: dict[str, int] = {}
        for (topic, partition), o in snap.offsets.items():
            newest.add_metric([topic, str(partition)], o.high_watermark)
            oldest.add_metric([topic, str(partition)], o.log_start)
            counts[topic] = counts.get(topic, 0) + 1
        parts = _gauge("kafka_topic_partitions", "Number of partitions for this topic.", ("topic",))
        for topic, n in counts.items():
            parts.add_metric([topic], n)
        yield from (lag, current, lag_sum, members, newest, oldest, parts)
