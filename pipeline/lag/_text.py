"""The lag snapshot as exposition text, straight from the snapshot: no metric objects.

``render_text(LagCollector(...))`` builds a prometheus_client ``Sample`` (a namedtuple and a
label dict) for each of the ~14 series of a partition, about 7 us a sample: 10,000 partitions
cost over 10 s. This writes the same bytes (the unit tests compare them) from the snapshot's
records directly: the label text of a partition is escaped once and shared by its families.
Help texts and types come from the collector itself (its families over an empty snapshot), so
they are defined once, in ``_collector.py``; the small per-group and self families are still
rendered from the collector's own families.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ._collector import PREFIX, LagCollector
from ._model import LagSnapshot

__all__ = ["SnapshotText", "escape", "family_text", "value_text"]


def value_text(v: float) -> str:
    """A sample value as the text format writes it (``repr`` of the float, ``+Inf``...)."""
    if v == float("inf"):
        return "+Inf"
    if v == float("-inf"):
        return "-Inf"
    if v != v:
        return "NaN"
    return repr(float(v))


def escape(v: str) -> str:
    """A label value, escaped for the text format."""
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def family_text(families: Iterable[Metric]) -> str:
    """Text of prometheus_client families (plain gauges and counters)."""
    out: list[str] = []
    for family in families:
        name = family.name + ("_total" if family.type == "counter" else "")
        doc = family.documentation.replace("\\", "\\\\").replace("\n", "\\n")
        out.append(f"# HELP {name} {doc}\n# TYPE {name} {family.type}\n")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{escape(v)}"' for k, v in sample.labels.items())
                out.append(f"{sample.name}{{{labels}}} {value_text(sample.value)}\n")
            else:
                out.append(f"{sample.name} {value_text(sample.value)}\n")
    return "".join(out)


_ONE, _ZERO = "1.0", "0.0"


class SnapshotText:
    """Render a snapshot as ``LagCollector(..., age=False)`` would, an order of magnitude faster."""

    def __init__(self, collector: LagCollector, *, compat_kafka_exporter: bool = False) -> None:
        self._collector = collector
        self._compat = compat_kafka_exporter
        empty = LagCollector(LagSnapshot, compat_kafka_exporter=True, age=False)
        self._heads = {f.name: self._head(f) for f in empty.collect()}

    @staticmethod
    def _head(family: Metric) -> str:
        return family_text([family])

    def _family(self, name: str, prefix_labels: list[str], values: list[str]) -> Iterator[str]:
        yield self._heads[name]
        line = name + "{"
        pairs = zip(prefix_labels, values, strict=True)
        yield "".join([f"{line}{labels}}} {v}\n" for labels, v in pairs])

    def render(self, snap: LagSnapshot) -> bytes:
        """The exposition text of ``snap`` (no snapshot age: the scrape adds it)."""
        out: list[str] = []
        out.extend(self._partitions(snap))
        out.append(family_text(self._collector._group_metrics(snap)))
        out.extend(self._offsets(snap))
        out.append(family_text(self._collector._self_metrics(snap)))
        if self._compat:
            out.extend(self._compat_text(snap))
        return "".join(out).encode()

    def _partitions(self, snap: LagSnapshot) -> Iterator[str]:
        p = PREFIX + "consumergroup_"
        labels: list[str] = []
        lag: list[str] = []
        secs: list[str] = []
        bound: list[str] = []
        no_commit: list[str] = []
        expired: list[str] = []
        status: list[str] = []
        committed_labels: list[str] = []
        committed: list[str] = []
        for group in snap.groups.values():
            g = f'group="{escape(group.group)}",topic="'
            topics: dict[str, str] = {}
            for part in group.partitions:
                t = topics.get(part.topic)
                if t is None:
                    t = topics[part.topic] = f'{g}{escape(part.topic)}",partition="'
                label = f'{t}{part.partition}"'
                labels.append(label)
                lag.append(repr(float(part.lag)))
                secs.append(value_text(part.lag_seconds))
                bound.append(_ONE if part.lag_seconds_lower_bound else _ZERO)
                if part.committed is not None:
                    committed_labels.append(label)
                    committed.append(repr(float(part.committed)))
                    no_commit.append(_ZERO)
                else:
                    no_commit.append(_ONE)
                expired.append(_ONE if part.offset_expired else _ZERO)
                status.append(repr(float(int(part.status))))
        yield from self._family(p + "lag", labels, lag)
        yield from self._family(p + "lag_seconds", labels, secs)
        yield from self._family(p + "lag_seconds_is_lower_bound", labels, bound)
        yield from self._family(p + "committed_offset", committed_labels, committed)
        yield from self._family(p + "no_commit", labels, no_commit)
        yield from self._family(p + "offset_expired", labels, expired)
        yield from self._family(p + "partition_status", labels, status)

    def _offset_columns(
        self, snap: LagSnapshot
    ) -> tuple[list[str], list[str], list[str], list[str]]:
        labels, end, stable, start = [], [], [], []
        topics: dict[str, str] = {}
        for (topic, partition), o in snap.offsets.items():
            t = topics.get(topic)
            if t is None:
                t = topics[topic] = f'topic="{escape(topic)}",partition="'
            labels.append(f'{t}{partition}"')
            end.append(repr(float(o.high_watermark)))
            stable.append(repr(float(o.stable_offset)))
            start.append(repr(float(o.log_start)))
        return labels, end, stable, start

    def _offsets(self, snap: LagSnapshot) -> Iterator[str]:
        labels, end, stable, start = self._offset_columns(snap)
        yield from self._family(PREFIX + "partition_end_offset", labels, end)
        yield from self._family(PREFIX + "partition_stable_offset", labels, stable)
        yield from self._family(PREFIX + "partition_log_start_offset", labels, start)

    def _compat_text(self, snap: LagSnapshot) -> Iterator[str]:
        k = "kafka_consumergroup_"
        labels: list[str] = []
        lag: list[str] = []
        current: list[str] = []
        lag_sum = GaugeMetricFamily(k + "lag_sum", "", labels=["consumergroup", "topic"])
        members = GaugeMetricFamily(k + "members", "", labels=["consumergroup"])
        for g in snap.groups.values():
            members.add_metric([g.group], g.members)
            head = f'consumergroup="{escape(g.group)}",topic="'
            sums: dict[str, int] = {}
            topics: dict[str, str] = {}
            for part in g.partitions:
                t = topics.get(part.topic)
                if t is None:
                    t = topics[part.topic] = f'{head}{escape(part.topic)}",partition="'
                labels.append(f'{t}{part.partition}"')
                lag.append(repr(float(part.lag)))
                current.append(repr(float(-1 if part.committed is None else part.committed)))
                sums[part.topic] = sums.get(part.topic, 0) + part.lag
            for topic, total in sums.items():
                lag_sum.add_metric([g.group, topic], total)
        yield from self._family(k + "lag", labels, lag)
        yield from self._family(k + "current_offset", labels, current)
        yield from self._small(lag_sum)
        yield from self._small(members)
        offset_labels, end, _, start = self._offset_columns(snap)
        t = "kafka_topic_partition"
        yield from self._family(t + "_current_offset", offset_labels, end)
        yield from self._family(t + "_oldest_offset", offset_labels, start)
        counts: dict[str, int] = {}
        for topic, _ in snap.offsets:
            counts[topic] = counts.get(topic, 0) + 1
        parts_family = GaugeMetricFamily("kafka_topic_partitions", "", labels=["topic"])
        for topic, n in counts.items():
            parts_family.add_metric([topic], n)
        yield from self._small(parts_family)

    def _small(self, family: GaugeMetricFamily) -> Iterator[str]:
        """Samples of a small family under the collector's help text."""
        yield self._heads[family.name]
        text = family_text([family])
        yield text[text.index("\n", text.index("# TYPE")) + 1 :]
