"""Retry and dead-letter copies: their headers, and a writer that never gives up on them.

A source offset is completed only when its copy's delivery report arrives. A failed write is
retried with backoff (counted in ``pipeline_worker_write_failures_total`` and logged) for as
long as it takes, so nothing is lost and nothing is committed too early.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pipeline._errors import PipelineError
from pipeline._headers import (
    ATTEMPT,
    CONSUMER_GROUP,
    ERROR_HEADERS,
    ERROR_MESSAGE,
    ERROR_TRACE,
    ERROR_TYPE,
    FAILED_AT,
    ORIGINAL_OFFSET,
    ORIGINAL_PARTITION,
    ORIGINAL_TIMESTAMP,
    ORIGINAL_TOPIC,
    Headers,
    get_header,
    without,
)

from ._metrics import WorkerMetrics
from ._policy import Backoff
from ._work import Work

if TYPE_CHECKING:
    from producers import DeliveryResult
    from producers._sending import BytesSender

__all__ = ["CopyWriter", "WriteJob", "dead_letter_headers", "retry_headers"]

_LOG = logging.getLogger("consumers")
MESSAGE_LIMIT = 1024
TRACE_LIMIT = 8192
_STALE = ERROR_HEADERS | {ATTEMPT}  # a new failure replaces these


def _truncate(text: str, limit: int) -> bytes:
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return data
    return data[: limit - 3] + b"..."


def _origin(work: Work, headers: Headers) -> Headers:
    """Original-coordinate headers of the first delivery, unless a retry hop already has them."""
    if get_header(headers, ORIGINAL_TOPIC) is not None:
        return []
    msg = work.msg
    return [
        (ORIGINAL_TOPIC, msg.topic().encode()),  # type: ignore[union-attr]
        (ORIGINAL_PARTITION, str(msg.partition()).encode()),
        (ORIGINAL_OFFSET, str(work.offset).encode()),
        (ORIGINAL_TIMESTAMP, str(msg.timestamp()[1]).encode()),
    ]


def retry_headers(work: Work, next_attempt: int) -> Headers:
    """Headers of the retry copy: old error/attempt headers dropped, attempt and origin added."""
    headers = work.headers
    out = without(headers, _STALE)
    out.append((ATTEMPT, str(next_attempt).encode()))
    out.extend(_origin(work, headers))
    return out


def dead_letter_headers(
    work: Work, group: str, error_type: str, message: str, trace: str, attempts: int
) -> Headers:
    """Headers of the DLQ copy: the original ones plus the error headers the ops CLI reads."""
    headers = work.headers
    out = without(headers, _STALE | {CONSUMER_GROUP})
    out.extend(_origin(work, headers))
    out.extend(
        [
            (ERROR_TYPE, error_type.encode()),
            (ERROR_MESSAGE, _truncate(message, MESSAGE_LIMIT)),
            (ERROR_TRACE, _truncate(trace, TRACE_LIMIT)),
            (ATTEMPT, str(attempts).encode()),
            (CONSUMER_GROUP, group.encode()),
            (FAILED_AT, datetime.now(UTC).isoformat(timespec="milliseconds").encode()),
        ]
    )
    return out


def error_type_of(exc: BaseException) -> str:
    """The exception's qualified name, as the ``pipeline-error-type`` header carries it."""
    cls = type(exc)
    return f"{cls.__module__}.{cls.__qualname__}"


def trace_of(exc: BaseException) -> str:
    """The formatted traceback of ``exc``."""
    return "".join(traceback.format_exception(exc))


@dataclass(eq=False)
class WriteJob:
    """One copy to write; ``done`` runs once its delivery report is positive."""

    work: Work
    topic: str
    headers: Headers
    delay: float | None
    done: Callable[[], None]
    failures: int = 0
    due: float = field(default=0.0)


class CopyWriter:
    """Write retry and dead-letter copies; retry failed writes with backoff until they land."""

    def __init__(
        self,
        producer: BytesSender,
        metrics: WorkerMetrics,
        backoff: Backoff,
        *,
        give_up: bool = False,
    ) -> None:
        self._producer = producer
        self._metrics = metrics
        self._backoff = backoff
        self._give_up = give_up  # exactly-once: a failed write aborts the transaction instead
        self._lock = threading.Lock()
        self._waiting: list[WriteJob] = []
        self.failed: list[WriteJob] = []

    @property
    def pending(self) -> int:
        """Copies waiting to be written again."""
        return len(self._waiting)

    def write(self, job: WriteJob) -> None:
        """Queue the copy for ``job.topic`` (through the scheduler when it has a delay)."""
        msg = job.work.msg
        try:
            self._producer.send_bytes(
                job.topic,
                msg.value(),
                key=msg.key(),
                headers=job.headers,
                delay=None if job.delay is None else timedelta(seconds=job.delay),
                on_delivery=lambda result, error: self._on_delivery(job, result, error),
            )
        except PipelineError as exc:
            self._failed(job, exc)

    def _on_delivery(
        self, job: WriteJob, result: DeliveryResult | None, error: PipelineError | None
    ) -> None:
        if error is None:
            if job.failures:
                _LOG.warning(
                    "%s: copy written to %s after %d failure(s)",
                    job.work.where,
                    job.topic,
                    job.failures,
                )
            job.done()
        else:
            self._failed(job, error)

    def _failed(self, job: WriteJob, error: BaseException) -> None:
        job.failures += 1
        self._metrics.write_failed(job.topic)
        if self._give_up:
            with self._lock:
                self.failed.append(job)
            _LOG.error("%s: writing a copy to %s failed: %s", job.work.where, job.topic, error)
            return
        wait = self._backoff.delay(job.failures)
        _LOG.error(
            "%s: writing a copy to %s failed (%d time(s)): %s; offset not committed, "
            "trying again in %.1fs",
            job.work.where,
            job.topic,
            job.failures,
            error,
            wait,
        )
        job.due = time.monotonic() + wait
        with self._lock:
            self._waiting.append(job)
        self._metrics.pending_writes.set(len(self._waiting))

    def resend_due(self) -> None:
        """Write again every failed copy whose backoff has passed (called by the poll loop)."""
        if not self._waiting:
            return
        now = time.monotonic()
        with self._lock:
            due = [j for j in self._waiting if j.due <= now]
            self._waiting = [j for j in self._waiting if j.due > now]
        self._metrics.pending_writes.set(len(self._waiting))
        for job in due:
            self.write(job)

    def abandon(self, keep: Callable[[WriteJob], bool]) -> list[WriteJob]:
        """Drop waiting copies for which ``keep`` is false (their partition was revoked)."""
        with self._lock:
            dropped = [j for j in self._waiting if not keep(j)]
            self._waiting = [j for j in self._waiting if keep(j)]
        self._metrics.pending_writes.set(len(self._waiting))
        return dropped
