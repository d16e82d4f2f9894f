"""The delayed-delivery scheduler service: a consumer group that moves records through tiers.

What it holds: the ``Scheduler`` service and its options (``SchedulerConfig``, the tier
ladder), its in-memory state, commits and transactions, its own topics, pending-record lag,
metrics and ``pipeline scheduler status``. The delayed-record contract that producers and
workers write (durations, due-time headers, topic names) is core: ``pipeline._delay`` and
``pipeline._names``.

It may import the core (``pipeline._*``). It never imports another capability package,
``producers``, ``consumers`` or ``pipeline.cli``.
"""

from pipeline._headers import DELIVERED_AT

from ._metrics import SchedulerMetrics
from ._records import DEFAULT_TIERS, SchedulerConfig
from ._service import Scheduler
from ._status import TierStatus, scheduler_status
from ._topics import ensure_scheduler_topics, scheduler_topics

__all__ = [
    "DEFAULT_TIERS",
    "DELIVERED_AT",
    "Scheduler",
    "SchedulerConfig",
    "SchedulerMetrics",
    "TierStatus",
    "ensure_scheduler_topics",
    "scheduler_status",
    "scheduler_topics",
]
