"""Handling one record on a worker thread: decode, call the handler, retry or dead-letter."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from pipeline._errors import DecodeError
from pipeline._headers import CE_ID, EXPIRES_AT, ORIGINAL_TOPIC, Headers, get_header
from pipeline._names import priority_level
from pipeline.avro._codec import Codec

from ._batch import BatchWork, run_batch
from ._context import Context, RawRecord, record_context
from ._dead_letter import (
    CopyWriter,
    WriteJob,
    dead_letter_headers,
    error_type_of,
    retry_headers,
    trace_of,
)
from ._dedup import DedupWindow
from ._expiry import expired
from ._gates import Gates
from ._metrics import WorkerMetrics
from ._reply import Responder, request_fields
from ._signals import DeadLetter, RetryLater, Skip
from ._spec import HandlerSpec, WorkerSpec
from ._work import Work, attempt_of

__all__ = ["Processor", "expired"]

_LOG = logging.getLogger("consumers")
Finish = Callable[[Work, bool], None]


class Processor:
    """The function the keyed executor runs for each record (the worker's error boundary)."""

    def __init__(
        self,
        worker: WorkerSpec,
        codec: Codec,
        producer: Any,
        writer: CopyWriter,
        metrics: WorkerMetrics,
        finish: Finish,
        stopping: threading.Event,
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        self._worker = worker
        self._group = worker.group
        self._policy = worker.options.retry
        self._codec = codec
        self._producer = producer
        self._writer = writer
        self._metrics = metrics
        self._finish = finish
        self._stopping = stopping
        self._loop = loop
        self._retry_topic = worker.retry_topic
        self._dlq_topic = worker.dlq_topic
        self.dedup: dict[object, DedupWindow] = {}
        self._subjects: dict[bytes, tuple[str, HandlerSpec | None]] = {}
        self.on_error: Callable[[BaseException], None] = lambda exc: None
        self.responder = Responder(producer, worker.group, worker.registry)  # request-reply
        self.gates: Gates | None = None  # breakers and rate limits, when the worker has any
        self.finish_ok: Callable[[list[Work]], None] = self._finish_each
        # ``AsyncExecution``: the event loop runs every record; ``_invoke`` leaves the
        # handler call in ``deferred`` for ``run_async`` to await.
        self.deferring = False
        self.deferred: tuple[Any, ...] | None = None

    def __call__(self, work: Work) -> None:
        """Handle ``work`` on a worker thread."""
        if work.part.revoked and work.__class__ is not BatchWork:
            self._finish(work, True)
            return
        try:
            if work.__class__ is BatchWork:
                run_batch(self, work)
                return
            resume = work.resume
            if resume is None:
                self._process(work, False)
            else:
                work.resume = None
                self._resume(work, *resume)
        except Exception as exc:  # a bug or a broken producer: stop the worker, lose nothing
            self._crashed(work, exc)

    def _crashed(self, work: Work, exc: Exception) -> None:
        _LOG.error("%s: processing failed unexpectedly", work.where, exc_info=exc)
        self._finish(work, True)
        self.on_error(exc)

    def _finish_each(self, works: list[Work]) -> None:
        for work in works:
            self._finish(work, False)

    def inline(self, work: Work) -> bool:
        """Handle ``work`` on the poll thread; False when it must go on on a worker thread.

        That is when its first attempt failed and is to be retried in place after a backoff:
        the poll thread never waits for one. ``work.resume`` then holds where to go on (for
        a batch too).
        """
        try:
            if work.__class__ is BatchWork:
                run_batch(self, work, inline=True)
            else:
                self._process(work, True)
        except Exception as exc:  # a bug or a broken producer: stop the worker, lose nothing
            self._crashed(work, exc)
            return True
        return work.resume is None

    def spec_of(self, value: bytes) -> tuple[str, HandlerSpec | None]:
        """The subject and handler of a record value (cached per schema fingerprint)."""
        prefix = value[:10]
        known = self._subjects.get(prefix)
        if known is not None:
            return known
        subject = self._codec.subject_of(value)  # raises DecodeError for a bad header
        known = (subject, self._worker.handlers.get(subject))
        if len(self._subjects) < 1024:  # fingerprints of the catalog: a handful
            self._subjects[prefix] = known
        return known

    def _process(self, work: Work, inline: bool) -> None:
        msg = work.msg
        headers = cast(Headers, msg.headers())
        if headers:
            attempt = attempt_of(headers)
            if expired(get_header(headers, EXPIRES_AT), time.time_ns() // 1_000_000):
                self._dead_letter(work, "expired", "the event expired", "", attempt, "expired", "-")
                return
            work.request = fields = request_fields(headers)
            if fields is not None and self.responder.expired(fields):
                self._metrics.outcome(work.part.topic, "unknown", "expired")
                self._finish(work, False)  # its caller gave up: skipped, counted
                return
        else:
            headers = []
            attempt = 1
        value = msg.value()
        if value is None:
            self._tombstone(work, attempt, inline)
            return
        seen: tuple[DedupWindow, bytes] | None = None
        if self.dedup:
            window = self.dedup.get(work.part)
            event_id = get_header(headers, CE_ID) if window is not None else None
            if window is not None and event_id is not None:
                if window.seen(event_id):
                    self._metrics.outcome(work.part.topic, "unknown", "duplicate")
                    self._finish(work, False)
                    return
                if event_id:
                    seen = (window, event_id)
        try:
            subject, spec = self.spec_of(value)
            event = None if spec is None else self._codec.decode(value, spec.model)
        except DecodeError as exc:
            self._dead_letter(work, "undecodable", str(exc), trace_of(exc), attempt)
            return
        if spec is None:
            self._unknown(work, subject, attempt, inline)
            return
        self._invoke(work, spec, event, attempt, headers, inline, seen)

    def _tombstone(self, work: Work, attempt: int, inline: bool) -> None:
        topic = work.part.topic
        if topic == self._retry_topic:
            origin = get_header(work.headers, ORIGINAL_TOPIC)
            topic = origin.decode() if origin else topic
        tombstones = self._worker.tombstone_handlers
        level = priority_level(topic)  # a level topic's tombstones go to its base topic's handler
        base = topic if level is None else level[0]
        spec = tombstones.get(topic) or tombstones.get(base) or tombstones.get(None)
        if spec is None:
            self._metrics.outcome(work.part.topic, "tombstone", "skipped")
            self._finish(work, False)
            return
        self._invoke(work, spec, None, attempt, None, inline)

    def _unknown(self, work: Work, subject: str, attempt: int, inline: bool) -> None:
        spec = self._worker.fallback_handler
        if spec is None:
            message = f"no handler for event type {subject}"
            self._dead_letter(work, "unknown_event_type", message, "", attempt, label=subject)
            return
        msg = work.msg
        raw = RawRecord(
            work.part.topic,
            work.part.partition,
            work.offset,
            msg.key(),
            msg.value(),
            work.headers,
            msg.timestamp()[1],
        )
        self._invoke(work, spec, raw, attempt, None, inline)

    def _call(self, spec: HandlerSpec, arg: Any, ctx: Context) -> Any:
        """Run the handler; return what it returned (a reply, for a request)."""
        if spec.batch:  # a record the poll thread did not batch (a retry copy's tombstone...)
            call: Any = spec.fn([arg], [ctx])
        else:
            call = spec.fn(arg, ctx)
        if not spec.is_async:
            return call
        if self._loop is None:  # pragma: no cover - the runner starts a loop for async handlers
            raise RuntimeError("no event loop for async handlers")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def _invoke(
        self,
        work: Work,
        spec: HandlerSpec,
        arg: Any,
        attempt: int,
        headers: Headers | None = None,
        inline: bool = False,
        seen: tuple[DedupWindow, bytes] | None = None,
    ) -> None:
        """Run the handler with in-place attempts (on the poll thread: the first one only).

        On success the record is finished with ``work.label`` and ``work.took`` set: the poll
        thread counts it (outcome ``ok``, handler run time) in batches. ``seen``: remember
        the event id once handled.
        """
        clock, gates = time.perf_counter, self.gates
        if gates is not None and not gates.admit(work, spec):
            return  # parked by a breaker or rate limit: it runs later, still in flight
        if self.deferring and spec.is_async:  # on the event loop: ``run_async`` awaits it
            self.deferred = (work, spec, arg, attempt, headers, seen)
            return
        while True:
            ctx = record_context(work, attempt, headers, self._group, self._producer)
            start = clock()
            try:
                result = self._call(spec, arg, ctx)
            except Exception as exc:
                if self._failed(
                    work, spec, arg, exc, clock() - start, attempt, headers, inline, seen
                ):
                    attempt += 1
                    continue
                return
            self._succeeded(work, spec, result, clock() - start, seen)
            return

    def _succeeded(
        self,
        work: Work,
        spec: HandlerSpec,
        result: Any,
        took: float,
        seen: tuple[DedupWindow, bytes] | None,
    ) -> None:
        work.took = took
        work.label = spec.event_type
        if work.request is not None:
            self.responder.succeeded(work.request, result)
        if self.gates is not None:
            self.gates.succeeded(spec)
        if seen is not None:
            seen[0].add(seen[1])
        self._finish(work, False)

    def _failed(
        self,
        work: Work,
        spec: HandlerSpec,
        arg: Any,
        exc: Exception,
        took: float,
        attempt: int,
        headers: Headers | None,
        inline: bool,
        seen: tuple[DedupWindow, bytes] | None,
    ) -> bool:
        """After a failed attempt: True to try again in place now (after its backoff).

        ``inline``: never wait for a backoff here; when the next attempt is in place,
        ``work.resume`` says where to go on instead.
        """
        label, gates = spec.event_type, self.gates
        self._metrics.handled(work.part.topic, label, took)
        if isinstance(exc, (Skip, RetryLater, DeadLetter)):
            if gates is not None:
                gates.succeeded(spec)
            self._signalled(work, exc, attempt, label)
            return False
        if work.request is not None and self.responder.failed(work.request, exc):
            self._finish(work, False)  # the caller gets a RemoteError, not a retry
            return False
        if gates is not None and gates.failed(work, spec, exc):
            return False  # the breaker holds it: not charged, it runs again later
        if inline and self._in_place_next(exc, attempt):
            work.resume = (spec, arg, attempt, headers, seen, exc)
            return False
        return self._again_in_place(work, exc, attempt, label)

    async def run_async(self, work: Work) -> None:
        """Handle ``work`` on the event loop (``AsyncExecution``, every handler ``async``).

        The synchronous part (headers, decoding, dead letters) runs as on a thread; the
        handler is awaited here, and an in-place retry's backoff is an ``asyncio.sleep``.
        """
        self(work)
        deferred = self.deferred
        if deferred is None:
            return
        self.deferred = None
        try:
            await self._invoke_async(*deferred)
        except Exception as exc:  # a bug or a broken producer: stop the worker, lose nothing
            self._crashed(work, exc)

    async def _invoke_async(
        self,
        work: Work,
        spec: HandlerSpec,
        arg: Any,
        attempt: int,
        headers: Headers | None,
        seen: tuple[DedupWindow, bytes] | None,
    ) -> None:
        clock = time.perf_counter
        while True:
            ctx = record_context(work, attempt, headers, self._group, self._producer)
            start = clock()
            try:
                result = await spec.fn(arg, ctx)
            except Exception as exc:
                self._failed(work, spec, arg, exc, clock() - start, attempt, headers, True, seen)
                if work.resume is None:
                    return
                work.resume = None
                delay = self._policy.backoff.delay(attempt)
                _LOG.info(
                    "%s: attempt %d failed (%r); again in %.2fs", work.where, attempt, exc, delay
                )
                if await self._back_off(delay):
                    self._finish(work, True)  # shutting down: not committed, redelivered later
                    return
                attempt += 1
                continue
            self._succeeded(work, spec, result, clock() - start, seen)
            return

    async def _back_off(self, delay: float) -> bool:
        """Sleep ``delay`` seconds on the event loop; True when the worker stops meanwhile."""
        deadline = time.monotonic() + delay
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, 0.1))
        return True

    def _resume(
        self,
        work: Work,
        spec: HandlerSpec,
        arg: Any,
        attempt: int,
        headers: Headers | None,
        seen: tuple[DedupWindow, bytes] | None,
        exc: Exception,
    ) -> None:
        """Go on after a first attempt on the poll thread failed: back off, then retry here."""
        if self._again_in_place(work, exc, attempt, spec.event_type):
            self._invoke(work, spec, arg, attempt + 1, headers, False, seen)

    def _signalled(self, work: Work, signal: Exception, attempt: int, label: str) -> None:
        if isinstance(signal, RetryLater):
            self._retry_later(work, attempt, signal.delay, label)
        elif isinstance(signal, DeadLetter):
            self._dead_letter(work, "dead_letter", signal.reason, "", attempt, label=label)
        else:  # Skip
            self._metrics.outcome(work.part.topic, label, "skipped")
            self._finish(work, False)

    def _in_place_next(self, exc: Exception, attempt: int) -> bool:
        """Whether the next attempt after this failure runs in place (after a backoff)."""
        policy = self._policy
        return policy.retryable(exc) and not policy.exhausted(attempt) and policy.in_place(attempt)

    def _again_in_place(self, work: Work, exc: Exception, attempt: int, label: str) -> bool:
        """Decide after a failure: True to retry in place now; else the record is handed off."""
        policy = self._policy
        if not policy.retryable(exc) or policy.exhausted(attempt):
            _LOG.warning("%s: attempt %d failed, dead-lettering: %r", work.where, attempt, exc)
            self._dead_letter(
                work, error_type_of(exc), str(exc), trace_of(exc), attempt, label=label
            )
            return False
        delay = policy.backoff.delay(attempt)
        if policy.in_place(attempt):
            _LOG.info("%s: attempt %d failed (%r); again in %.2fs", work.where, attempt, exc, delay)
            if self._stopping.wait(delay):
                self._finish(work, True)  # shutting down: not committed, redelivered later
                return False
            return True
        _LOG.info("%s: attempt %d failed (%r); retry in %.2fs", work.where, attempt, exc, delay)
        self._retry(work, attempt + 1, delay, label)
        return False

    def _retry_later(self, work: Work, attempt: int, delay: float, label: str) -> None:
        if self._policy.exhausted(attempt):
            message = f"still asked to retry later after {attempt} attempt(s)"
            self._dead_letter(work, "retry_later", message, "", attempt, label=label)
        else:
            self._retry(work, attempt + 1, delay, label)

    def _retry(self, work: Work, next_attempt: int, delay: float, label: str) -> None:
        def done() -> None:
            self._metrics.outcome(work.part.topic, label, "retried")
            self._finish(work, False)

        headers = retry_headers(work, next_attempt)
        self._writer.write(WriteJob(work, self._retry_topic, headers, delay, done))

    def _dead_letter(
        self,
        work: Work,
        error_type: str,
        message: str,
        trace: str,
        attempts: int,
        outcome: str = "dead_lettered",
        label: str = "unknown",
    ) -> None:
        _LOG.warning("%s: dead-lettering (%s): %s", work.where, error_type, message)

        def done() -> None:
            self._metrics.outcome(work.part.topic, label, outcome)
            self._finish(work, False)

        headers = dead_letter_headers(work, self._group, error_type, message, trace, attempts)
        self._writer.write(WriteJob(work, self._dlq_topic, headers, None, done))
