"""The per-state counts of one consumer group, and what each count means."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["EXACT", "STATES", "STATE_DOCS", "GroupStats", "StatsSnapshot"]

STATE_DOCS: Mapping[str, str] = {
    "pending": "records of the source topics the group has not read yet (lag)",
    "in_flight": "records a worker dispatched and has not finished: not in Kafka "
    "(pipeline_worker_in_flight); null here",
    "retrying": "retry copies waiting: in the scheduler backlog for <group>.retry, plus the "
    "group's lag on <group>.retry",
    "dead": "messages in <group>.dlq not redriven since their latest copy (expired excluded)",
    "expired": "messages dead-lettered because pipeline-expires-at had passed, not redriven",
    "completed": "records the group finished (handled or skipped) in the retained logs: "
    "read offsets of the source and retry topics minus retry copies and dead letters",
    "retried": "retry copies the group's workers wrote (pipeline-attempt set), in the retained "
    "retry topic and the scheduler backlog",
    "redriven": "records `pipeline dlq redrive` wrote to <group>.retry, in the retained log",
}
"""Every state, in display order: current states first, then totals over the retained logs."""

STATES: tuple[str, ...] = tuple(STATE_DOCS)

EXACT: Mapping[str, bool] = {
    "pending": True,
    "in_flight": False,
    "retrying": False,
    "dead": True,
    "expired": True,
    "completed": False,
    "retried": False,
    "redriven": True,
}
"""Which counts are exact for what the logs hold at read time, and which are estimates.

``retrying`` and ``retried`` count a record that the scheduler is moving between two of its
topics twice for an instant; ``completed`` is offset arithmetic (transaction markers,
compaction, crash duplicates and retention skew it). A truncated scan makes every count
that reads records an estimate too (``GroupStats.truncated``).
"""

_SCANNED = {"retrying", "retried", "dead", "expired", "completed", "redriven"}


@dataclass(frozen=True, kw_only=True, slots=True)
class GroupStats:
    """The counts of one consumer group, as of one read."""

    group: str
    state: str = "Unknown"
    """Coordinator state: Stable, Empty, ..."""
    members: int = 0
    topics: tuple[str, ...] = ()
    """Source topics: those the group commits on or is assigned, its retry topic excluded."""
    pending: int = 0
    in_flight: int | None = None
    retrying: int = 0
    dead: int = 0
    expired: int = 0
    completed: int = 0
    retried: int = 0
    redriven: int = 0
    truncated: bool = False
    """A scan stopped at ``StatsOptions.max_scan`` records: scanned counts are lower bounds."""
    error: str | None = None
    """Why some counts could not be read (they are then 0 and not exact)."""

    def count(self, state: str) -> int | None:
        """The count of ``state`` (one of :data:`STATES`)."""
        value: int | None = getattr(self, state)
        return value

    def exact(self, state: str) -> bool:
        """Whether ``state``'s count is exact for what the logs held at read time."""
        if self.error is not None or (self.truncated and state in _SCANNED):
            return False
        return EXACT[state]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: ``group``, ``state``, ``members``, ``topics``, one key per state,
        ``exact`` (state -> bool), ``truncated`` and ``error``."""
        return {
            "group": self.group,
            "state": self.state,
            "members": self.members,
            "topics": list(self.topics),
            **{s: self.count(s) for s in STATES},
            "exact": {s: self.exact(s) for s in STATES},
            "truncated": self.truncated,
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class StatsSnapshot:
    """Every group's counts from one read (``taken_at`` 0 before the first)."""

    taken_at: float = 0.0
    read_seconds: float = 0.0
    groups: Mapping[str, GroupStats] = field(default_factory=dict)
    ok: bool = False
    """The last read had no failure."""
