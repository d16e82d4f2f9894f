"""Orphaned partitions: a Stable group consumes a topic, but no member owns one of its partitions.

Defined once here for the lag monitor (status ORPHANED) and the worker (which rejoins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = ["STABLE", "unowned"]

STABLE = "Stable"
"""The coordinator state in which every partition of a consumed topic should have an owner."""


def unowned(
    state: str,
    assigned: Iterable[tuple[str, int]],
    counts: Mapping[str, int],
    topics: Iterable[str] | None = None,
) -> frozenset[tuple[str, int]]:
    """Partitions of ``topics`` that no member of a Stable group owns.

    ``topics`` defaults to the topics some member owns a partition of (what the group is seen to
    consume). Empty for any other state: during a rebalance partitions are unowned by design.
    ``counts`` maps a topic to its partition count; a topic missing there is skipped.
    """
    if state != STABLE:
        return frozenset()
    owned = set(assigned)
    consumed = {t for t, _ in owned} if topics is None else set(topics)
    return frozenset(
        (t, p) for t in consumed for p in range(counts.get(t, 0)) if (t, p) not in owned
    )
