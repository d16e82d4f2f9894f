"""``TestPipeline``: a worker app over in-memory partitions, on a clock the test advances."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import TypeVar

from prometheus_client import CollectorRegistry

from consumers._app import Worker
from consumers._priority import subscription
from consumers._runner import Runner
from pipeline._errors import (
    ConfigError,
    ConsumeError,
    DecodeError,
    PipelineError,
    RemoteError,
    RequestTimeout,
)
from pipeline._headers import (
    ATTEMPT,
    CORRELATION_ID,
    DEADLINE,
    ERROR_MESSAGE,
    ERROR_TYPE,
    ORIGINAL_TOPIC,
    REPLY_TO,
    Headers,
    get_header,
)
from pipeline._names import dlq_topic
from pipeline.avro._codec import Codec
from pipeline.avro._events import Event
from producers import DeliveryResult, Key
from producers._headers import new_event_id

from ._clock import ClockEvent, FakeClock
from ._memory import MemoryBroker, MemoryMessage
from ._producer import MemoryScheduler, MemoryTransport

__all__ = ["REPLY_TOPIC", "Record", "TestPipeline"]

REPLY_TOPIC = "testkit.replies"
"""Where :meth:`TestPipeline.request` asks handlers to reply (``pipeline-reply-to``)."""

R = TypeVar("R", bound=Event)


@dataclass(frozen=True)
class Record:
    """A stored record, decoded when its schema is known (``event`` None otherwise)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int
    event: Event | None

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        return get_header(self.headers, name)

    def _text(self, name: str) -> str | None:
        raw = get_header(self.headers, name)
        return None if raw is None else raw.decode("utf-8", "replace")

    @property
    def error_type(self) -> str | None:
        """``pipeline-error-type`` of a dead letter (the exception's qualified name)."""
        return self._text(ERROR_TYPE)

    @property
    def error_message(self) -> str | None:
        """``pipeline-error-message`` of a dead letter."""
        return self._text(ERROR_MESSAGE)

    @property
    def original_topic(self) -> str | None:
        """Where a retry or dead-letter copy was first consumed from."""
        return self._text(ORIGINAL_TOPIC)

    @property
    def attempt(self) -> int:
        """``pipeline-attempt`` (1 when absent)."""
        raw = get_header(self.headers, ATTEMPT)
        return int(raw) if raw is not None and raw.isdigit() else 1


class TestPipeline:
    """Run a ``Worker`` app's own processing code over in-memory partitions.

    The worker's poll loop, decoding, handlers (sync and async), in-place and scheduled
    retries, dead letters, dedup, offsets and commits all run as in production; only the
    Kafka clients are replaced (by in-memory partitions, keyed with murmur2 as the Java
    client) and the scheduler service (by one that forwards a delayed record when the fake
    clock reaches its due time). Every record runs on the calling thread, in order, so a test
    is deterministic and never sleeps::

        tp = TestPipeline(app)
        tp.send(OrderPlaced(...), key="o-1")
        tp.run_until_idle()
        assert tp.dead_letters() == []

    Args:
        app: the worker (not running; exactly-once mode is not modelled).
        partitions: partitions of every topic.
        start: the fake clock's start, epoch seconds (default: now).
        max_rounds: rounds of the poll loop one ``run_until_idle`` may take before it gives
            up (a handler that feeds its own input never gets idle).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Worker,
        *,
        partitions: int = 3,
        start: float | None = None,
        max_rounds: int = 10_000,
    ) -> None:
        if app.options.exactly_once:
            raise ConfigError("the test kit does not model exactly-once workers")
        if not app.handlers and app.fallback_handler is None:
            raise ConfigError(f"worker {app.group} has no handlers")
        self.app = app
        self.clock = FakeClock(time.time() if start is None else start)
        self.broker = MemoryBroker(partitions)
        self._scheduler = MemoryScheduler(self.broker, app.options.scheduler_topic)
        transport = MemoryTransport(self.broker, self._scheduler, self.clock)
        self._max_rounds = max_rounds
        for topic in [*subscription(app.topics, app.priorities), app.retry_topic, app.dlq_topic]:
            self.broker.create(topic)
        self._runner = Runner(app, ClockEvent(self.clock), transport)
        self._runner.start()
        self._closed = False
        worker_producer = self._runner.producer
        self.codec: Codec = worker_producer.codec
        self.producer = transport.producer(
            worker_producer.settings,
            codec=self.codec,
            registry=CollectorRegistry(),
            scheduler_topic=app.options.scheduler_topic,
            priorities={t: spec.levels for t, spec in app.priorities.items()},
        )

    # -- input --------------------------------------------------------------------------------

    def send(
        self,
        event: Event,
        *,
        key: Key = None,
        topic: str | None = None,
        headers: dict[str, str | bytes] | None = None,
        delay: timedelta | float | None = None,
        deliver_at: datetime | None = None,
        priority: int | None = None,
    ) -> DeliveryResult:
        """Send ``event`` as ``EventProducer.send`` would (``delay`` in seconds or a timedelta).

        ``priority`` picks a level of a topic the app gave priorities (None: its lowest).
        Nothing runs until :meth:`run_until_idle` or :meth:`advance`.
        """
        if isinstance(delay, int | float):
            delay = timedelta(seconds=delay)
        future = self.producer.send(
            event,
            key=key,
            topic=topic,
            headers=headers,
            delay=delay,
            deliver_at=deliver_at,
            priority=priority,
        )
        assert future is not None
        return future.result()

    def send_bytes(
        self,
        topic: str,
        value: bytes | None,
        *,
        key: bytes | str | None = None,
        headers: dict[str, str | bytes] | None = None,
    ) -> DeliveryResult:
        """Store raw bytes (poison input, tombstones) as they are."""
        future = self.producer.send_bytes(topic, value, key=key, headers=headers)
        assert future is not None
        return future.result()

    def request(
        self,
        event: Event,
        reply: type[R],
        *,
        key: Key = None,
        topic: str | None = None,
        timeout: float = 5.0,
    ) -> R:
        """Send a request as ``EventProducer.request`` does, run the worker, return the reply.

        The request carries the same headers (``pipeline-reply-to``, ``pipeline-correlation-id``,
        ``pipeline-deadline``); the handler's reply is read from :data:`REPLY_TOPIC`.

        Raises:
            RemoteError: the handler raised (or returned no reply).
            RequestTimeout: the worker is idle and no reply came (no handler, a passed
                deadline, a retry still waiting on the fake clock).
            DecodeError: the reply does not decode as ``reply``.
        """
        cid = new_event_id()
        deadline = str(int((time.time() + timeout) * 1000))
        self.broker.create(REPLY_TOPIC)
        headers: dict[str, str | bytes] = {
            CORRELATION_ID: cid,
            DEADLINE: deadline,
            REPLY_TO: REPLY_TOPIC,
        }
        self.send(event, key=key, topic=topic, headers=headers)
        self.run_until_idle()
        for msg in self.broker.records(REPLY_TOPIC):
            found = msg.headers() or []
            if get_header(found, CORRELATION_ID) != cid:
                continue
            error_type = get_header(found, ERROR_TYPE)
            if error_type is not None:
                message = (get_header(found, ERROR_MESSAGE) or b"").decode("utf-8", "replace")
                raise RemoteError(error_type.decode("utf-8", "replace"), message)
            value = msg.value()
            if value is None:
                raise DecodeError("the reply has neither a value nor an error type")
            return self.codec.decode(value, reply)
        raise RequestTimeout(f"no reply to the {type(event).__name__} request (worker idle)")

    # -- running ------------------------------------------------------------------------------

    def run_until_idle(self) -> int:
        """Run the worker until nothing is left that can run now; return the rounds taken.

        Delayed records (retries) due at the current fake time are delivered first; later
        ones wait for :meth:`advance`.

        Raises:
            ConsumeError: the worker failed (a bug in the engine, not a handler error: those
                are retried and dead-lettered), or it did not get idle in ``max_rounds``.
        """
        runner, consumer = self._runner, self._runner.consumer
        quiet = 0  # rounds with only parked records left (a breaker or rate limit holds them)
        for rounds in range(self._max_rounds):
            self._scheduler.release(self.clock.ms())
            runner.raise_error()
            parked = 0 if runner.gates is None else runner.gates.parked
            if not consumer.pending() and runner.batcher is not None and runner.batcher.held:
                runner.flush_batches()  # input drained: batches still filling run now
            if not consumer.pending() and runner.flow.in_flight == parked:
                if parked and quiet < 2:
                    quiet += 1  # let the gates release what may run at this fake time
                else:
                    next_due = self._scheduler.next_due()
                    if next_due is None or next_due > self.clock.ms():
                        return rounds
            else:
                quiet = 0
            runner.step()
        raise ConsumeError(
            f"worker {self.app.group} still busy after {self._max_rounds} rounds "
            "(does a handler feed its own input?)"
        )

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of fake time pass, running what becomes due on the way.

        Delayed records are delivered in due order, each at its due time, and the worker
        runs until idle after each, so a retry that fails again is scheduled from the
        time it ran, as on a real clock.
        """
        target = self.clock.time() + seconds
        self.run_until_idle()
        while (due := self._scheduler.next_due()) is not None and due <= target * 1000:
            self.clock.move_to(due / 1000)
            self.run_until_idle()
        self.clock.move_to(target)
        self.run_until_idle()

    @property
    def scheduled(self) -> int:
        """Delayed records waiting for their due time."""
        return len(self._scheduler)

    # -- output -------------------------------------------------------------------------------

    def topic(self, name: str) -> list[Record]:
        """Every record of topic ``name``, partition by partition, decoded."""
        return [self._record(m) for m in self.broker.records(name)]

    def dead_letters(self, group: str | None = None) -> list[Record]:
        """The dead letters of ``group`` (default: the app's), with their error headers."""
        if group is None or group == self.app.group:
            return self.topic(self.app.dlq_topic)
        return self.topic(dlq_topic(group))

    def _record(self, msg: MemoryMessage) -> Record:
        value, event = msg.value(), None
        if value is not None:
            try:
                spec = self.app.handlers.get(self.codec.subject_of(value))
                event = self.codec.decode(value, None if spec is None else spec.model)
            except PipelineError:
                event = None
        return Record(
            msg.topic(),
            msg.partition(),
            msg.offset(),
            msg.key(),
            value,
            msg.headers() or [],
            msg.timestamp()[1],
            event,
        )

    # -- lifetime -----------------------------------------------------------------------------

    def close(self) -> None:
        """Commit and stop the worker's loop (its event loop thread, if any)."""
        if not self._closed:
            self._closed = True
            self._runner.close()

    def __enter__(self) -> TestPipeline:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
