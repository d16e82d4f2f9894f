"""Control-flow signals a handler raises to skip, retry later or dead-letter a record.

They are not errors: they never count as failures and never carry a traceback to the DLQ.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = ["ControlSignal", "DeadLetter", "RetryLater", "Skip"]


class ControlSignal(Exception):
    """Base of the handler control-flow signals."""


class Skip(ControlSignal):
    """Treat the record as handled without doing anything more (counted as ``skipped``)."""


class RetryLater(ControlSignal):
    """Hand the record to the retry topic, to be delivered again after ``delay``.

    Each hop counts as an attempt; when the retry policy's attempts are used up the record is
    dead-lettered with error type ``retry_later``.
    """

    def __init__(self, delay: float | timedelta) -> None:
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        self.delay = seconds
        super().__init__(f"retry later in {seconds:g}s")


class DeadLetter(ControlSignal):
    """Send the record to the dead-letter topic now, with ``reason`` as the error message."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
