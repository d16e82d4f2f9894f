"""Turn a lag snapshot into table rows, JSON and sparklines for ``pipeline lag show``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._model import GroupLag, LagSnapshot, Status

__all__ = ["TABLE_COLUMNS", "format_seconds", "snapshot_json", "snapshot_rows", "sparkline"]

TABLE_COLUMNS = (
    "group",
    "state",
    "status",
    "members",
    "topic",
    "partitions",
    "lag",
    "lag seconds",
)
_BARS = "▁▂▃▄▅▆▇█"


def format_seconds(seconds: float, lower_bound: bool) -> str:
    """``12.3s``, or ``≥12.3s`` when the value is only a lower bound."""
    return f"{'≥' if lower_bound else ''}{seconds:.1f}s"


def sparkline(values: Sequence[float]) -> str:
    """A one-line bar chart of ``values`` (scaled from 0 to their maximum)."""
    top = max(values, default=0.0)
    if top <= 0 or not math.isfinite(top):
        return _BARS[0] * len(values)
    return "".join(_BARS[min(len(_BARS) - 1, int(v / top * (len(_BARS) - 1)))] for v in values)


def _topic_rows(group: GroupLag) -> list[list[Any]]:
    topics = sorted({p.topic for p in group.partitions})
    status = group.status.name + (" (stale)" if group.stale else "")
    head = [group.group, group.state, status, group.members]
    if not topics:
        return [[*head, "-", 0, 0, "-"]]
    rows = []
    for topic in topics:
        parts = [p for p in group.partitions if p.topic == topic]
        worst = max(parts, key=lambda p: p.lag_seconds)
        lag = sum(p.lag for p in parts)
        flags = [
            flag
            for flag, on in (
                ("expired", any(p.offset_expired for p in parts)),
                ("no_commit", any(p.no_commit for p in parts)),
                ("orphaned", any(p.status is Status.ORPHANED for p in parts)),
                (
                    "unowned",
                    any(p.unowned_seconds is not None for p in parts)
                    and all(p.status is not Status.ORPHANED for p in parts),
                ),
            )
            if on
        ]
        shown = f"{lag} ({', '.join(flags)})" if flags else str(lag)
        seconds = format_seconds(worst.lag_seconds, worst.lag_seconds_lower_bound)
        rows.append([*head, topic, len(parts), shown, seconds])
    return rows


def snapshot_rows(snapshot: LagSnapshot, group: str | None = None) -> list[list[Any]]:
    """One row per (group, topic), in :data:`TABLE_COLUMNS` order."""
    rows: list[list[Any]] = []
    for name in sorted(snapshot.groups):
        if group is None or name == group:
            rows.extend(_topic_rows(snapshot.groups[name]))
    return rows


def snapshot_json(snapshot: LagSnapshot, group: str | None = None) -> dict[str, Any]:
    """The snapshot as plain JSON-ready data (groups with their partitions)."""
    groups = []
    for name in sorted(snapshot.groups):
        g = snapshot.groups[name]
        if group is not None and name != group:
            continue
        groups.append(
            {
                "group": g.group,
                "state": g.state,
                "protocol": g.protocol,
                "assignor": g.assignor,
                "members": g.members,
                "orphaned_partitions": g.orphaned_partitions,
                "isolation": g.isolation,
                "offset_reset": g.offset_reset,
                "status": g.status.name,
                "stale": g.stale,
                "error": g.error,
                "lag": g.lag,
                "lag_seconds": round(g.lag_seconds, 3),
                "lag_seconds_is_lower_bound": g.lag_seconds_lower_bound,
                "partitions": [
                    {
                        "topic": p.topic,
                        "partition": p.partition,
                        "committed_offset": p.committed,
                        "no_commit": p.no_commit,
                        "end_offset": p.end_offset,
                        "lag": p.lag,
                        "offset_expired": p.offset_expired,
                        "lag_seconds": round(p.lag_seconds, 3),
                        "lag_seconds_is_lower_bound": p.lag_seconds_lower_bound,
                        "status": p.status.name,
                        "stale": p.stale,
                        "unowned_seconds": (
                            None if p.unowned_seconds is None else round(p.unowned_seconds, 3)
                        ),
                    }
                    for p in g.partitions
                ],
            }
        )
    return {"taken_at": snapshot.taken_at, "poll_seconds": snapshot.poll_seconds, "groups": groups}
