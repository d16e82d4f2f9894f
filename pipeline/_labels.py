"""Prometheus label names, defined once for every metric the pipeline exports."""

from __future__ import annotations

__all__ = [
    "BREAKER",
    "EVENT_TYPE",
    "GROUP",
    "OUTCOME",
    "PARTITION",
    "REASON",
    "STATE",
    "TIER",
    "TOPIC",
]

GROUP = "group"
TOPIC = "topic"
PARTITION = "partition"
EVENT_TYPE = "event_type"
OUTCOME = "outcome"
REASON = "reason"
STATE = "state"
TIER = "tier"
BREAKER = "breaker"
