"""The worker's part of orphaned partitions: it owns nothing of a topic it subscribes to while
its Stable group leaves partitions of that topic unowned, so it rejoins (a new join starts the
rebalance that hands them out). The check runs on its own thread: the poll loop reads a value."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from pipeline._admin import admin_client
from pipeline._orphans import STABLE, unowned
from pipeline._settings import Settings

__all__ = ["OrphanWatch"]

_LOG = logging.getLogger("consumers")


def _state(value: Any) -> str:
    name = getattr(value, "name", str(value))
    return "Stable" if name == "STABLE" else name


class OrphanWatch:
    """Checks, every ``every_s`` while the worker owns no partition of one of its topics,
    whether the group leaves partitions of that topic unowned (then it should rejoin)."""

    def __init__(
        self, settings: Settings, group: str, topics: list[str], every_s: float = 10.0
    ) -> None:
        self._settings = settings
        self.group = group
        self.topics = list(topics)
        self.every_s = every_s
        self._admin: Any = None
        self._next = time.monotonic() + every_s
        self._thread: threading.Thread | None = None
        self._found: frozenset[tuple[str, int]] = frozenset()
        self._candidates: list[str] = []
        self.rejoins = 0

    def due(self, now: float, owned_topics: set[str]) -> frozenset[tuple[str, int]]:
        """The unowned partitions to rejoin for (empty: nothing to do now). Never blocks."""
        candidates = [t for t in self.topics if t not in owned_topics]
        if not candidates:
            self._found = frozenset()
            self._next = max(self._next, now + self.every_s)
            return frozenset()
        found = frozenset(tp for tp in self._found if tp[0] in candidates)
        self._found = frozenset()
        if found:
            self.rejoins += 1
            self._next = now + self.every_s  # let the rebalance finish before checking again
            return found
        if now >= self._next and (self._thread is None or not self._thread.is_alive()):
            self._next = now + self.every_s
            self._candidates = candidates
            self._thread = threading.Thread(
                target=self._check, name=f"orphans-{self.group}", daemon=True
            )
            self._thread.start()
        return frozenset()

    def _check(self) -> None:
        try:
            if self._admin is None:
                self._admin = admin_client(self._settings)
            futures = self._admin.describe_consumer_groups([self.group], request_timeout=10)
            d = futures[self.group].result(timeout=15)
            owned = [
                (tp.topic, tp.partition)
                for m in d.members
                for tp in (m.assignment.topic_partitions if m.assignment else [])
            ]
            topics = self._candidates
            meta = self._admin.list_topics(timeout=10)
            counts = {t: len(meta.topics[t].partitions) for t in topics if t in meta.topics}
            self._found = unowned(_state(d.state), owned, counts, topics)
        except Exception as exc:  # a check that fails just waits for the next one
            _LOG.debug("orphan check of group %s failed: %s", self.group, exc)

    def __repr__(self) -> str:
        return f"OrphanWatch({self.group!r}, every {self.every_s}s, {STABLE} groups only)"
