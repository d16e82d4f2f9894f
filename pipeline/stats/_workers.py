"""``in_flight`` from the workers themselves: ``pipeline_worker_in_flight`` on their /metrics.

Kafka cannot know what a worker dispatched and has not finished (the committed offset stays
below it), so ``pipeline stats --worker URL`` asks the workers.
"""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

from prometheus_client.parser import text_string_to_metric_families

from pipeline._errors import WorkerMetricsError
from pipeline._labels import GROUP

from ._model import StatsSnapshot

__all__ = ["IN_FLIGHT_METRIC", "parse_in_flight", "read_in_flight", "with_in_flight"]

IN_FLIGHT_METRIC = "pipeline_worker_in_flight"


def parse_in_flight(text: str) -> dict[str, int]:
    """``pipeline_worker_in_flight`` per group in one exposition text.

    Raises:
        WorkerMetricsError: the text is not the Prometheus text format.
    """
    out: dict[str, int] = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name != IN_FLIGHT_METRIC:
                continue
            for sample in family.samples:
                group = sample.labels.get(GROUP)
                if group is not None:
                    out[group] = out.get(group, 0) + int(sample.value)
    except ValueError as exc:
        raise WorkerMetricsError(f"not Prometheus metrics: {exc}") from None
    return out


def _metrics_url(url: str) -> str:
    base = url.rstrip("/")
    return base if base.endswith("/metrics") else base + "/metrics"


def read_in_flight(urls: Sequence[str], timeout: float = 5.0) -> dict[str, int]:
    """Sum ``pipeline_worker_in_flight`` per group over the workers' ``/metrics``.

    Args:
        urls: each worker's base URL (``http://host:port``) or its ``/metrics`` URL.
        timeout: seconds per request.

    Raises:
        WorkerMetricsError: a worker could not be read (names its URL).
    """
    total: dict[str, int] = {}
    for url in urls:
        target = _metrics_url(url)
        if not target.startswith(("http://", "https://")):
            raise WorkerMetricsError(f"worker URL {url!r} is not http:// or https://")
        try:
            with urllib.request.urlopen(target, timeout=timeout) as response:
                text = response.read().decode("utf-8", "replace")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            raise WorkerMetricsError(f"cannot read worker metrics at {target}: {reason}") from None
        try:
            found = parse_in_flight(text)
        except WorkerMetricsError as exc:
            raise WorkerMetricsError(f"{target}: {exc}") from None
        for group, n in found.items():
            total[group] = total.get(group, 0) + n
    return total


def with_in_flight(snap: StatsSnapshot, in_flight: Mapping[str, int]) -> StatsSnapshot:
    """The snapshot with ``in_flight`` set for the groups some worker reported."""
    groups = {
        name: dataclasses.replace(g, in_flight=in_flight[name]) if name in in_flight else g
        for name, g in snap.groups.items()
    }
    return dataclasses.replace(snap, groups=groups)
