"""A token bucket: records per second with a small burst (thread-safe).

Workers enforce it by pausing partitions (``consumers._gates``), never by sleeping on the
poll thread; a rate-limited producer waits for a token on the sending thread (``wait``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline._errors import ConfigError

__all__ = ["RateLimit", "TokenBucket"]


@dataclass(frozen=True)
class RateLimit:
    """At most ``per_second`` records a second on average, ``burst`` at once.

    ``burst`` defaults to a tenth of a second's worth (at least 1), so over any ``T`` seconds
    at most ``per_second * T + burst`` records pass.
    """

    per_second: float
    burst: float | None = None

    def __post_init__(self) -> None:
        if not self.per_second > 0:
            raise ConfigError(f"a rate limit must be > 0 records per second, got {self.per_second}")
        if self.burst is not None and self.burst < 1:
            raise ConfigError(f"a rate limit burst must be >= 1, got {self.burst}")

    @property
    def capacity(self) -> float:
        """The bucket size."""
        return self.burst if self.burst is not None else max(1.0, self.per_second / 10)


class TokenBucket:
    """Tokens refill at ``limit.per_second`` up to ``limit.capacity``; one record takes one."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self._rate = limit.per_second
        self._capacity = limit.capacity
        self._tokens = self._capacity
        self._at = now
        self._lock = threading.Lock()

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(self._capacity, self._tokens + (now - self._at) * self._rate)
            self._at = now

    def take(self, now: float, count: int = 1) -> bool:
        """Take ``count`` tokens if there are that many."""
        with self._lock:
            self._refill(now)
            if self._tokens >= count:
                self._tokens -= count
                return True
            return False

    def wait(
        self,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> bool:
        """Take one token, waiting up to ``timeout`` seconds for it (a caller's thread only)."""
        now = clock()
        deadline = now + timeout
        while not self.take(now):
            with self._lock:
                missing = (1 - self._tokens) / self._rate
            if now + missing > deadline:
                return False
            sleep(missing)
            now = clock()
        return True

    def available(self, now: float) -> int:
        """Whole tokens available now."""
        with self._lock:
            self._refill(now)
            return int(self._tokens)

    def give_back(self, count: int = 1) -> None:
        """Return tokens taken for records that did not run."""
        with self._lock:
            self._tokens = min(self._capacity, self._tokens + count)
