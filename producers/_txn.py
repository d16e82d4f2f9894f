"""Transactional client calls: retried while librdkafka says they may be, errors as ProduceError."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException

from pipeline._errors import ProduceError
from pipeline._retriable import retry_retriable

__all__ = ["call", "commit", "retrying"]


def call(fn: Callable[[], object], doing: str) -> None:
    try:
        fn()
    except KafkaException as exc:
        raise ProduceError(f"{doing} failed: {exc.args[0]}") from exc


def retrying(fn: Callable[[float], object], doing: str, timeout: float) -> None:
    """``fn(remaining_seconds)``, retried while librdkafka says it may be; errors as
    ``ProduceError``."""
    try:
        retry_retriable(fn, timeout)
    except KafkaException as exc:
        raise ProduceError(f"{doing} failed: {exc.args[0].str()}") from exc


def commit(client: Any, timeout: float) -> None:
    """Commit, retrying retriable errors; abort and raise when the transaction is doomed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.commit_transaction(max(0.1, deadline - time.monotonic()))
            return
        except KafkaException as exc:
            err = exc.args[0]
            if err.retriable() and time.monotonic() < deadline:
                continue
            if err.txn_requires_abort():
                client.abort_transaction(timeout)
            raise ProduceError(f"committing the transaction failed: {err.str()}") from exc
