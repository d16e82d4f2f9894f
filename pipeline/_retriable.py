"""Kafka client calls retried while librdkafka says they may be (a coordinator or leader moved)."""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import KafkaException

__all__ = ["retry_retriable"]

_BACKOFF_S = 0.05  # between attempts: the new coordinator or leader is loading its state


def retry_retriable(fn: Callable[[float], object], timeout: float) -> None:
    """Call ``fn(remaining_seconds)`` again while it raises a retriable ``KafkaException``,
    until ``timeout`` seconds have passed; then, or on any other error, the error is raised.

    For transactional calls librdkafka documents as retriable (``send_offsets_to_transaction``,
    ``commit_transaction``, ``abort_transaction``): after ``NOT_COORDINATOR`` or a timeout
    the call may simply be made again.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            fn(max(0.1, deadline - time.monotonic()))
            return
        except KafkaException as exc:
            if exc.args[0].retriable() and time.monotonic() < deadline:
                time.sleep(_BACKOFF_S)
                continue
            raise
