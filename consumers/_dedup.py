"""A per-partition window of handled event ids, bounded by count and age (in memory)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from pipeline._errors import ConfigError

__all__ = ["Dedup", "DedupWindow"]


@dataclass(frozen=True, kw_only=True)
class Dedup:
    """Skip records whose ``ce_id`` this group already handled recently.

    Attributes:
        max_ids: ids remembered per partition.
        window_s: how long an id is remembered.
    """

    max_ids: int = 100_000
    window_s: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_ids < 1 or self.window_s <= 0:
            raise ConfigError("dedup needs max_ids >= 1 and window_s > 0")


class DedupWindow:
    """Ids seen in one partition; thread-safe (worker threads check and add)."""

    def __init__(self, config: Dedup, clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._seen)

    def seen(self, event_id: bytes) -> bool:
        """Whether ``event_id`` was added within the window."""
        with self._lock:
            self._expire()
            return event_id in self._seen

    def add(self, event_id: bytes) -> None:
        """Remember ``event_id`` as handled now."""
        with self._lock:
            self._seen[event_id] = self._clock()
            self._seen.move_to_end(event_id)
            while len(self._seen) > self._config.max_ids:
                self._seen.popitem(last=False)

    def _expire(self) -> None:
        horizon = self._clock() - self._config.window_s
        seen = self._seen
        while seen:
            oldest = next(iter(seen.values()))
            if oldest >= horizon:
                break
            seen.popitem(last=False)
