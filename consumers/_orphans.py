"""The worker's part of orphaned partitions: it owns nothing of a topic it subscribes to while
its Stable group leaves partitions of that topic unowned, so it rejoins (a new join starts the
rebalance that hands them out). The check runs on its own thread: the poll loop reads a value.
Its admin calls run in a child process (``_orphan_probe``): a librdkafka abort in them during a
broker bounce must not take the worker down."""

from __future__ import annotations

import logging
import threading
import time

from pipeline._orphans import STABLE, unowned
from pipeline._settings import Settings

from ._orphan_probe import OrphanProbe, ProbeDied

__all__ = ["OrphanWatch"]

_LOG = logging.getLogger("consumers")


class OrphanWatch:
    """Checks, every ``every_s`` while the worker owns no partition of one of its topics,
    whether the group leaves partitions of that topic unowned (then it should rejoin)."""

    def __init__(
        self, settings: Settings, group: str, topics: list[str], every_s: float = 10.0
    ) -> None:
        self._probe = OrphanProbe(settings.admin_config())
        self.group = group
        self.topics = list(topics)
        self.every_s = every_s
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
        topics = self._candidates
        try:
            state, owned, counts = self._probe.check(self.group, topics)
            self._found = unowned(state, owned, counts, topics)
        except ProbeDied as exc:  # librdkafka#5397 (see _orphan_probe): the worker goes on
            _LOG.warning("orphan check of group %s: %s; it starts again", self.group, exc)
        except Exception as exc:  # a check that fails just waits for the next one
            _LOG.debug("orphan check of group %s failed: %s", self.group, exc)

    def close(self) -> None:
        """Stop the check (its admin process); the worker is stopping."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout=1.0)
        self._probe.close()

    def __repr__(self) -> str:
        return f"OrphanWatch({self.group!r}, every {self.every_s}s, {STABLE} groups only)"
