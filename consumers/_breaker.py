"""A circuit breaker: closed, open after too many failures, half-open probes, closed again.

Pure state (no Kafka): the worker's gates (``_gates``) ask it whether a handler call may run
and tell it how each call ended. Thread-safe: worker threads record outcomes while the poll
thread moves it from open to half-open.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from pipeline._errors import ConfigError

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "STATES", "Breaker", "BreakerConfig"]

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
STATES = (CLOSED, OPEN, HALF_OPEN)
"""Breaker states; the gauge ``pipeline_worker_breaker_state`` is 0, 1, 2 in this order."""


@dataclass(frozen=True, kw_only=True)
class BreakerConfig:
    """When a breaker opens and how long it stays open.

    Attributes:
        failure_rate: the share of failed calls (0 < rate <= 1) over the window that opens it.
        min_calls: calls (failed or not) the window must hold before the rate is judged.
        window_s: the sliding window, in seconds.
        cooldown_s: how long it stays open before it lets one probe record through.
    """

    failure_rate: float = 0.5
    min_calls: int = 10
    window_s: float = 30.0
    cooldown_s: float = 10.0

    def __post_init__(self) -> None:
        if not 0.0 < self.failure_rate <= 1.0:
            raise ConfigError(f"breaker failure_rate must be in (0, 1], got {self.failure_rate}")
        if self.min_calls < 1 or self.window_s <= 0 or self.cooldown_s <= 0:
            raise ConfigError("breaker min_calls must be >= 1, window_s and cooldown_s > 0")


class Breaker:
    """One breaker's state machine over a sliding window of call outcomes."""

    def __init__(self, name: str, config: BreakerConfig) -> None:
        self.name = name
        self.config = config
        self.state = CLOSED
        self.transitions: deque[tuple[str, str]] = deque()  # (from, to), taken by the metrics
        self._calls: deque[tuple[float, bool]] = deque()  # (time, failed) in the window
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False  # half-open: a probe call is out
        self._probe_at = 0.0
        self._lock = threading.Lock()

    def allow(self, now: float) -> bool:
        """Whether a call may run now; in half-open, True once (the probe) until it ends."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN:
                if now - self._opened_at < self.config.cooldown_s:
                    return False
                self._move(HALF_OPEN)
            if self._probing and now - self._probe_at < self.config.cooldown_s:
                return False  # one probe at a time (a lost one is replaced after a cool-down)
            self._probing = True
            self._probe_at = now
            return True

    def tick(self, now: float) -> str:
        """Move open to half-open once the cool-down is over; return the state."""
        with self._lock:
            if self.state == OPEN and now - self._opened_at >= self.config.cooldown_s:
                self._move(HALF_OPEN)
            return self.state

    def record(self, now: float, failed: bool) -> bool:
        """Count one finished call; True when the call is held by the breaker.

        That is when it failed and the breaker is (now) open or was probing: the caller
        keeps the record for later instead of failing it.
        """
        with self._lock:
            if self.state == HALF_OPEN and self._probing:
                self._probing = False
                if failed:
                    self._open(now)
                    return True
                self._move(CLOSED)
                self._calls.clear()
                self._failures = 0
                return False
            if self.state != CLOSED:
                return failed  # a call that started before it opened
            calls, window = self._calls, self.config.window_s
            calls.append((now, failed))
            self._failures += failed
            while calls and calls[0][0] <= now - window:
                self._failures -= calls.popleft()[1]
            if not failed:
                return False
            config = self.config
            if len(calls) >= config.min_calls and self._failures >= config.failure_rate * len(
                calls
            ):
                self._open(now)
                return True
            return False

    def release_probe(self) -> None:
        """A probe that was let through did not call the handler (revoked): let another go."""
        with self._lock:
            self._probing = False

    def _open(self, now: float) -> None:
        self._move(OPEN)
        self._opened_at = now
        self._probing = False
        self._calls.clear()
        self._failures = 0

    def _move(self, state: str) -> None:
        if state != self.state:
            self.transitions.append((self.state, state))
            self.state = state
