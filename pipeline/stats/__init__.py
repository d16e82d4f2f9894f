"""Per-state message counts of consumer groups, read from Kafka alone (no worker needed).

What it holds: the lifecycle counts queue users know (pending, in flight, completed,
retrying, retried, dead, expired, redriven) as a consumer group's topics hold them: committed
offsets and watermarks, the scheduler backlog, the retry topic and the dead-letter topic
(``StatsReader``), the pure folds over their headers (``_tally``), the snapshot model, a
background ``StatsPoller`` and its Prometheus collector (``pipeline_consumergroup_messages``,
served by ``pipeline lag serve``) and ``in_flight`` read from the workers' ``/metrics``
(``read_in_flight``). ``pipeline stats`` and the ops console are front ends.

It may import the core (``pipeline._*``), ``pipeline.lag`` (admin fetches, lag math) and
``pipeline.ops`` (its read-window consumer). It never imports ``producers``,
``consumers``, ``pipeline.scheduler`` or ``pipeline.cli``.
"""

from ._collector import StatsCollector
from ._model import STATE_DOCS, STATES, GroupStats, StatsSnapshot
from ._poller import StatsPoller
from ._reader import StatsOptions, StatsReader
from ._tally import DeadLetterTally, RetryTally, completed_count
from ._workers import read_in_flight, with_in_flight

__all__ = [
    "STATES",
    "STATE_DOCS",
    "DeadLetterTally",
    "GroupStats",
    "RetryTally",
    "StatsCollector",
    "StatsOptions",
    "StatsPoller",
    "StatsReader",
    "StatsSnapshot",
    "completed_count",
    "read_in_flight",
    "with_in_flight",
]
