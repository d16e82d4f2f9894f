"""Consumer-group lag monitor: poller, lag math, time lag, status and Prometheus collector."""

from ._collector import COMPAT_LABELS, GROUP_LABELS, PARTITION_LABELS, TOPIC_LABELS, LagCollector
from ._exposition import LagExposition, LagHTTPServer
from ._math import Isolation, OffsetLag, choose_isolation, offset_lag
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
