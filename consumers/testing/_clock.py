"""The test kit's clock: time moves only when the test (or an in-place retry's wait) says so."""

from __future__ import annotations

import threading

__all__ = ["ClockEvent", "FakeClock"]


class FakeClock:
    """Seconds since the epoch, starting at ``start``; :meth:`advance` moves it forward."""

    def __init__(self, start: float) -> None:
        self._now = start
        self._lock = threading.Lock()

    def time(self) -> float:
        """Now, in seconds since the epoch (``time.time`` of the kit)."""
        return self._now

    def monotonic(self) -> float:
        """Now, as a monotonic clock (the same value: it never goes back)."""
        return self._now

    def ms(self) -> int:
        """Now, in epoch milliseconds."""
        return int(self._now * 1000)

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` forward (never back)."""
        with self._lock:
            self._now += max(0.0, seconds)

    def move_to(self, at: float) -> None:
        """Move the clock to ``at`` if that is later than now."""
        with self._lock:
            self._now = max(self._now, at)


class ClockEvent(threading.Event):
    """The worker's stop event, whose ``wait(timeout)`` lets fake time pass instead of real.

    The processor waits on it for an in-place retry's backoff; under the kit that wait moves
    the clock by the backoff and returns at once.
    """

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def wait(self, timeout: float | None = None) -> bool:
        if not self.is_set() and timeout:
            self._clock.advance(timeout)
        return self.is_set()
