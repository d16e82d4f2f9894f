"""Operational tools on recorded data: replay, offset resets, read windows and dead letters.

What it holds: reading a fixed window of a topic (``WindowReader``), record filters and the
replay token bucket, consumer-group offset resets, dead-letter records as the tools see them,
and the ``Forwarder`` that copies raw records at copy-loop speed. The ``pipeline`` CLI and the
ops console are thin front ends over these.

It may import the core (``pipeline._*``) and ``pipeline.avro``. It never imports
``producers``, ``consumers``, another service package or ``pipeline.cli``.
"""

from ._dead_letters import DeadLetter, DeadLetterFilter, redrive_headers
from ._forward import Forwarder
from ._offsets import GroupMember, OffsetMove, ResetTarget, ResetTo, apply_reset, plan_reset
from ._replay import PartitionCounts, RecordFilter, TokenBucket, parse_where
from ._window import PartitionRange, WindowReader, resolve_window, topic_partitions

__all__ = [
    "DeadLetter",
    "DeadLetterFilter",
    "Forwarder",
    "GroupMember",
    "OffsetMove",
    "PartitionCounts",
    "PartitionRange",
    "RecordFilter",
    "ResetTarget",
    "ResetTo",
    "TokenBucket",
    "WindowReader",
    "apply_reset",
    "parse_where",
    "plan_reset",
    "redrive_headers",
    "resolve_window",
    "topic_partitions",
]
