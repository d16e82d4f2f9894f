"""Prometheus collector over the stats snapshot: ``pipeline_consumergroup_messages{state}``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from pipeline._labels import GROUP, STATE

from ._model import STATES, StatsSnapshot

__all__ = ["StatsCollector"]

_HELP = (
    "Messages of a consumer group by lifecycle state, read from Kafka: pending (lag), retrying "
    "(scheduler backlog and lag of <group>.retry), dead and expired (in <group>.dlq, not "
    "redriven since), and totals over the retained logs: completed, retried, redriven. "
    "See README 'Per-state counts'."
)


class StatsCollector(Collector):
    """Serve a :class:`StatsSnapshot` (``StatsPoller.snapshot``) as gauges.

    ``in_flight`` is not in Kafka, so it has no sample here: workers export it as
    ``pipeline_worker_in_flight``.
    """

    def __init__(
        self, snapshot: Callable[[], StatsSnapshot], errors: Callable[[], int] = lambda: 0
    ) -> None:
        self._snapshot = snapshot
        self._errors = errors

    def describe(self) -> list[GaugeMetricFamily]:
        """No eager collection at registration."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        snap = self._snapshot()
        messages = GaugeMetricFamily(
            "pipeline_consumergroup_messages", _HELP, labels=[GROUP, STATE]
        )
        exact = GaugeMetricFamily(
            "pipeline_consumergroup_messages_exact",
            "1 when pipeline_consumergroup_messages of this state is exact for what the logs "
            "held at read time, 0 when it is an estimate.",
            labels=[GROUP, STATE],
        )
        for g in snap.groups.values():
            for state in STATES:
                value = g.count(state)
                if value is None:
                    continue
                messages.add_metric([g.group, state], value)
                exact.add_metric([g.group, state], float(g.exact(state)))
        yield messages
        yield exact
        yield GaugeMetricFamily(
            "pipeline_stats_snapshot_timestamp_seconds",
            "Unix time the per-state counts were read (0 before the first read).",
            value=snap.taken_at,
        )
        yield GaugeMetricFamily(
            "pipeline_stats_read_duration_seconds",
            "Duration of the last read of the per-state counts, in seconds.",
            value=snap.read_seconds,
        )
        yield CounterMetricFamily(
            "pipeline_stats_read_errors", "Reads of the per-state counts that failed.",
            value=self._errors(),
        )  # fmt: skip
