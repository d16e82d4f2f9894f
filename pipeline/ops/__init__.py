"""Operational tools on recorded data: replay, offset resets, read windows and dead letters.

What it holds: reading a fixed window of a topic (``WindowReader``), record filters and the
replay token bucket, consumer-group offset resets, dead-letter records as the tools see them
(grouped by original record, and the once-only redrive position and plan),
and the ``Forwarder`` that copies raw records at copy-loop speed. The ``pipeline`` CLI and the
ops console are thin front ends over these.

It may import the core (``pipeline._*``) and ``pipeline.avro``. It never imports
``producers``, ``consumers``, another service package or ``pipeline.cli``.
"""

from ._dead_letters import DeadLetter, DeadLetterFilter, redrive_headers
from ._forward import Forwarder
from ._offsets import GroupMember, OffsetMove, ResetTarget, ResetTo, apply_reset, plan_reset
from ._redrive import DeadLetterGroup, RedrivePlan, RedrivePosition, group_dead_letters
from ._replay import PartitionCounts, RecordFilter, TokenBucket, parse_where
from ._window import PartitionRange, WindowReader, resolve_window, topic_partitions

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "DeadLetterGroup",
    "Forwarder",
    "GroupMember",
    "OffsetMove",
    "PartitionCounts",
    "PartitionRange",
    "RecordFilter",
    "RedrivePlan",
    "RedrivePosition",
    "ResetTarget",
    "ResetTo",
    "TokenBucket",
    "WindowReader",
    "apply_reset",
    "group_dead_letters",
    "parse_where",
    "plan_reset",
    "redrive_headers",
    "resolve_window",
    "topic_partitions",
]
