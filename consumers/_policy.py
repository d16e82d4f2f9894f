"""Retry policy of a worker: how many attempts, which errors, and exponential backoff."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline._errors import ConfigError

__all__ = ["Backoff", "RetryPolicy", "exponential"]


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """Exponential backoff: ``base * factor ** (attempt - 1)``, capped at ``max``, with jitter.

    Attributes:
        base: seconds before the second attempt.
        factor: growth per attempt.
        max: upper bound in seconds (before jitter).
        jitter: relative spread; 0.2 draws uniformly from [0.8, 1.2] of the delay.
    """

    base: float = 1.0
    factor: float = 2.0
    max: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max < 0 or not 0 <= self.jitter < 1:
            raise ConfigError("backoff needs base >= 0, factor >= 1, max >= 0 and 0 <= jitter < 1")

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        raw = min(self.max, self.base * self.factor ** max(0, attempt - 1))
        if self.jitter:
            raw *= 1 - self.jitter + 2 * self.jitter * rand()
        return raw


def exponential(
    base: float = 1.0, factor: float = 2.0, max: float = 300.0, jitter: float = 0.1
) -> Backoff:
    """Build an exponential :class:`Backoff` (seconds)."""
    return Backoff(base=base, factor=factor, max=max, jitter=jitter)


def _default_retry_on() -> tuple[type[BaseException], ...]:
    return (Exception,)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How a worker retries a failing handler.

    Attempts count handler invocations. The first ``in_place_attempts`` run back to back in the
    worker (blocking that key, so order is kept); later ones go through the scheduler to
    ``<group>.retry`` while the partition moves on. After ``max_attempts`` the record is
    dead-lettered.

    Attributes:
        max_attempts: total attempts, at least 1.
        backoff: the delay before each next attempt.
        in_place_attempts: attempts made in place before the first hop to the retry topic.
        retry_on: exception types that are retried; others are dead-lettered at once.
        dead_letter_on: exception types dead-lettered at once (checked before ``retry_on``).
    """

    max_attempts: int = 5
    backoff: Backoff = field(default_factory=Backoff)
    in_place_attempts: int = 1
    retry_on: tuple[type[BaseException], ...] = field(default_factory=_default_retry_on)
    dead_letter_on: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.in_place_attempts < 1:
            raise ConfigError("max_attempts and in_place_attempts must be >= 1")

    def retryable(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be retried at all."""
        if self.dead_letter_on and isinstance(exc, self.dead_letter_on):
            return False
        return isinstance(exc, self.retry_on)

    def in_place(self, attempt: int) -> bool:
        """Whether the attempt after ``attempt`` runs in place (not via the retry topic)."""
        return attempt < min(self.in_place_attempts, self.max_attempts)

    def exhausted(self, attempt: int) -> bool:
        """Whether no attempt is left after ``attempt``."""
        return attempt >= self.max_attempts
