"""Batch handlers: records of one partition grouped on the poll thread, run as one call.

The poll thread peeks at each consumed record's event type (a cached look-up of its schema
fingerprint). Records of a batch handler's type are held per partition, in offset order,
until ``max_records`` are there, the oldest waited ``max_wait``, or the partition is consumed
to its end (nothing more to wait for); the batch then goes to the
worker threads as one item, in a lane of its partition, so batches of one partition run one
at a time and in order. Every other record (other types, tombstones, undecodable ones) takes
the usual per-record path.

Failure semantics (README "Batch handlers"):

- the handler returns None: every record completed;
- it returns a mapping ``{index: exception}``: those records failed, each on its own (the
  retry topic or the dead-letter queue per the retry policy; control signals such as
  ``RetryLater`` or ``DeadLetter`` may be the values); the others completed;
- it raises: the whole batch failed. It runs again in place while the retry policy allows
  in-place attempts (after the backoff), then each record goes on alone via the retry topic
  (or the dead-letter queue when it has no attempt left or the error is not retryable).

Offsets move only for records that completed (or whose retry or dead-letter copy is
written), as for per-record handlers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from pipeline._errors import DecodeError
from pipeline._headers import CE_ID, EXPIRES_AT, Headers, get_header

from ._context import record_context
from ._dead_letter import error_type_of, trace_of
from ._expiry import expired
from ._signals import DeadLetter, RetryLater, Skip
from ._spec import HandlerSpec
from ._work import Work, attempt_of

if TYPE_CHECKING:
    from ._offsets import PartitionState

__all__ = ["BatchWork", "Batcher", "run_batch"]

_LOG = logging.getLogger("consumers")
Item = tuple[Any, Work]


class BatchWork(Work):
    """Consecutive records of one partition for one batch handler (one executor item)."""

    __slots__ = ("records", "spec")

    def __init__(self, part: PartitionState, records: list[Work], spec: HandlerSpec) -> None:
        first = records[0]
        super().__init__(part, first.msg, first.offset)
        self.records = records
        self.spec = spec
        self.weight = len(records)


class Batcher:
    """Groups records of batch handlers per partition (poll thread only)."""

    def __init__(
        self, spec_of: Callable[[bytes], tuple[str, HandlerSpec | None]], clock: Callable[[], float]
    ) -> None:
        self._spec_of = spec_of
        self._clock = clock
        self._open: dict[tuple[int, int], tuple[float, list[Work], HandlerSpec]] = {}

    def split(self, items: list[Item]) -> tuple[list[Item], list[Item]]:
        """Take the batch records out of dispatched ``items``: (per-record items, full batches)."""
        rest: list[Item] = []
        full: list[Item] = []
        open_, spec_of = self._open, self._spec_of
        now = 0.0
        for item in items:
            work = item[1]
            value = work.msg.value()
            if value is None:
                rest.append(item)
                continue
            try:
                spec = spec_of(value)[1]
            except DecodeError:
                spec = None
            if spec is None or not spec.batch:
                rest.append(item)
                continue
            where = (id(work.part), id(spec))
            pending = open_.get(where)
            if pending is None:
                now = now or self._clock()
                pending = open_[where] = (now, [], spec)
            records = pending[1]
            records.append(work)
            if len(records) >= spec.max_records:
                del open_[where]
                full.append((("batch", work.part), BatchWork(work.part, records, spec)))
        return rest, full

    def due(self, now: float) -> list[Item]:
        """Batches whose oldest record waited ``max_wait``, or that cannot grow: their
        partition was consumed to its end (librdkafka's partition EOF) or revoked."""
        if not self._open:
            return []
        out: list[Item] = []
        for where, (since, records, spec) in list(self._open.items()):
            part = records[0].part
            if now - since >= spec.max_wait or part.at_end or part.revoked:
                del self._open[where]
                out.append((("batch", part), BatchWork(part, records, spec)))
        return out

    @property
    def held(self) -> int:
        """Records waiting for their batch to fill."""
        return sum(len(r) for _, r, _ in self._open.values())


def run_batch(proc: Any, batch: BatchWork, inline: bool = False) -> None:
    """Run one batch; ``proc`` is the ``Processor`` (the error boundary).

    On the poll thread (``inline``) a failed attempt that is to be retried in place is not
    waited for: ``batch.resume`` then holds where to go on, and the batch goes to a worker
    thread, which backs off and retries it (see ``Processor.inline``).
    """
    resume = batch.resume
    if resume is None:
        state = _prepare(proc, batch)
        if state is None:
            return
        extra = 0
    else:
        batch.resume = None
        state, extra, delay = resume
        if batch.part.revoked or proc._stopping.wait(delay):
            for work in state.works:
                proc._finish(work, True)  # revoked or shutting down: redelivered later
            return
    _attempts(proc, batch, state, extra, inline)


class _Prepared:
    """A batch's records that are to be handled, decoded, with their attempts and event ids."""

    __slots__ = ("attempts", "events", "seen", "window", "works")

    def __init__(self, window: Any) -> None:
        self.works: list[Work] = []
        self.events: list[Any] = []
        self.attempts: list[int] = []
        self.seen: list[bytes | None] = []  # event ids to remember once handled (dedup)
        self.window = window


def _prepare(proc: Any, batch: BatchWork) -> _Prepared | None:
    """Decode the batch; finish revoked, expired, duplicate and undecodable records on the way."""
    spec, codec = batch.spec, proc._codec
    now_ms = time.time_ns() // 1_000_000
    window = proc.dedup.get(batch.part) if proc.dedup else None
    state = _Prepared(window)
    works, events, attempts, seen = state.works, state.events, state.attempts, state.seen
    ids: set[bytes] = set()  # event ids already in this batch
    decode, model = codec.decode, spec.model
    for work in batch.records:
        if work.part.revoked:
            proc._finish(work, True)
            continue
        headers = cast(Headers, work.msg.headers() or [])
        attempt = attempt_of(headers) if headers else 1
        if headers and expired(get_header(headers, EXPIRES_AT), now_ms):
            proc._dead_letter(work, "expired", "the event expired", "", attempt, "expired", "-")
            continue
        event_id = get_header(headers, CE_ID) if window is not None else None
        if window is not None and event_id and (event_id in ids or window.seen(event_id)):
            proc._metrics.outcome(work.part.topic, "unknown", "duplicate")
            proc._finish(work, False)
            continue
        try:
            events.append(decode(cast(bytes, work.msg.value()), model))
        except DecodeError as exc:
            proc._dead_letter(work, "undecodable", str(exc), trace_of(exc), attempt)
            continue
        works.append(work)
        attempts.append(attempt)
        seen.append(event_id)
        if event_id:
            ids.add(event_id)
    return state if works else None


def _attempts(proc: Any, batch: BatchWork, state: _Prepared, extra: int, inline: bool) -> None:
    """Call the handler (again, in place, while the policy allows) and settle each record."""
    works, events, attempts = state.works, state.events, state.attempts
    spec, policy = batch.spec, proc._policy
    label, topic = spec.event_type, batch.part.topic
    clock = time.perf_counter
    while True:
        group, producer = proc._group, proc._producer
        ctxs = [
            record_context(w, a + extra, None, group, producer)
            for w, a in zip(works, attempts, strict=True)
        ]
        start = clock()
        try:
            result = spec.fn(events, ctxs)
            if spec.is_async:
                assert proc._loop is not None
                result = asyncio.run_coroutine_threadsafe(result, proc._loop).result()
            failures = _failures(result, len(works))
        except Exception as exc:
            took = clock() - start
            proc._metrics.handled(topic, label, took)
            if isinstance(exc, (Skip, RetryLater, DeadLetter)):
                for work, attempt in zip(works, attempts, strict=True):
                    proc._signalled(work, exc, attempt + extra, label)
                return
            attempt = max(attempts) + extra
            if policy.retryable(exc) and policy.in_place(attempt):
                delay = policy.backoff.delay(attempt)
                _LOG.info(
                    "%s: batch of %d failed (%r); again in %.2fs",
                    batch.where,
                    len(works),
                    exc,
                    delay,
                )
                if inline:  # the poll thread never waits for a backoff: a thread goes on
                    batch.resume = (state, extra + 1, delay)
                    return
                if proc._stopping.wait(delay):
                    for work in works:
                        proc._finish(work, True)  # shutting down: redelivered later
                    return
                extra += 1
                continue
            _LOG.warning("%s: batch of %d failed: %r", batch.where, len(works), exc)
            for work, attempt in zip(works, attempts, strict=True):
                _hand_off(proc, work, exc, attempt + extra, label)
            return
        took = (clock() - start) / len(works)
        window, seen = state.window, state.seen
        done: list[Work] = []
        for i, (work, attempt) in enumerate(zip(works, attempts, strict=True)):
            failure = failures.get(i)
            if failure is None:
                work.took, work.label = took, label
                done.append(work)
                event_id = seen[i]
                if window is not None and event_id:
                    window.add(event_id)
            elif isinstance(failure, (Skip, RetryLater, DeadLetter)):
                proc._signalled(work, failure, attempt + extra, label)
            else:
                _hand_off(proc, work, failure, attempt + extra, label)
        proc.finish_ok(done)
        return


def _failures(result: object, count: int) -> Mapping[int, Exception]:
    """The per-record failures a batch handler returned (None: none)."""
    if result is None:
        return {}
    if not isinstance(result, Mapping) or not all(
        isinstance(i, int) and 0 <= i < count and isinstance(e, Exception)
        for i, e in result.items()
    ):
        raise TypeError(
            "a batch handler returns None or {index: exception} for the records that failed, "
            f"got {type(result).__name__}"
        )
    return result


def _hand_off(proc: Any, work: Work, exc: Exception, attempt: int, label: str) -> None:
    """One record of a batch failed: retry it via the retry topic, or dead-letter it."""
    policy = proc._policy
    if not policy.retryable(exc) or policy.exhausted(attempt):
        proc._dead_letter(work, error_type_of(exc), str(exc), trace_of(exc), attempt, label=label)
        return
    proc._retry(work, attempt + 1, policy.backoff.delay(attempt), label)
