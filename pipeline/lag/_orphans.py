"""Orphaned partitions: a Stable group consumes a topic, but nobody owns one of its partitions."""

from __future__ import annotations

from pipeline._orphans import unowned

__all__ = ["OrphanClock", "unowned"]

TP = tuple[str, int]


class OrphanClock:
    """How long each (group, partition) has been unowned, over consecutive polls."""

    __slots__ = ("_since",)

    def __init__(self) -> None:
        self._since: dict[tuple[str, str, int], float] = {}

    def update(self, group: str, unowned_now: frozenset[TP], now: float) -> dict[TP, float]:
        """Record this poll's unowned partitions of ``group``; return seconds unowned for each."""
        for key in [k for k in self._since if k[0] == group and k[1:] not in unowned_now]:
            del self._since[key]
        out = {}
        for tp in unowned_now:
            since = self._since.setdefault((group, *tp), now)
            out[tp] = now - since
        return out

    def forget(self, groups: set[str]) -> None:
        """Drop the clocks of groups that are gone (or not watched)."""
        for key in [k for k in self._since if k[0] not in groups]:
            del self._since[key]
