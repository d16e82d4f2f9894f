"""Consumer-group lag monitor: poller, lag math, time lag, status and Prometheus collector.

What it holds: the background ``LagPoller`` (admin client: groups, committed and end offsets),
offset and time lag, Burrow-like status, the snapshot model, the custom Prometheus collector
and its HTTP exposition (``pipeline lag serve``), and the table and JSON rendering of
``pipeline lag show``.

It may import the core (``pipeline._*``). It never imports another capability package,
``producers``, ``consumers`` or ``pipeline.cli``.
"""

from ._collector import COMPAT_LABELS, GROUP_LABELS, PARTITION_LABELS, TOPIC_LABELS, LagCollector
from ._exposition import LagExposition, LagHTTPServer
from ._math import Isolation, OffsetLag, OffsetReset, choose_isolation, offset_lag
from ._model import GroupLag, LagSnapshot, PartitionLag, PartitionOffsets, Status
from ._options import LagOptions
from ._poller import LagPoller
from ._reader import RecordProbe, RecordReader
from ._status import PartitionWindow, StatusThresholds, worst
from ._timelag import OffsetTimeTable, TimeLag

__all__ = [
    "COMPAT_LABELS",
    "GROUP_LABELS",
    "PARTITION_LABELS",
    "TOPIC_LABELS",
    "GroupLag",
    "Isolation",
    "LagCollector",
    "LagExposition",
    "LagHTTPServer",
    "LagOptions",
    "LagPoller",
    "LagSnapshot",
    "OffsetLag",
    "OffsetReset",
    "OffsetTimeTable",
    "PartitionLag",
    "PartitionOffsets",
    "PartitionWindow",
    "RecordProbe",
    "RecordReader",
    "Status",
    "StatusThresholds",
    "TimeLag",
    "choose_isolation",
    "offset_lag",
    "worst",
]
