"""Delivery results and futures: every send ends in a result or an exception, never in silence."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from confluent_kafka import KafkaError, Message

from pipeline._errors import DeliveryError, PipelineError

__all__ = [
    "DeliveryCallback",
    "DeliveryFuture",
    "DeliveryResult",
    "DeliveryStatus",
    "MetricsSink",
    "UserReport",
    "delivery_error",
    "result_of",
]


class DeliveryStatus(Enum):
    """How a send ended well."""

    DELIVERED = "delivered"
    """The cluster acknowledged the record (``partition`` and ``offset`` say where)."""
    STORED = "stored"
    """Kafka could not take it; it is durably in the producer outbox and is sent later.

    ``partition`` and ``offset`` are -1: the record has no place in Kafka yet."""


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """Where a record went: the cluster's coordinates, or the outbox (``stored``)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    status: DeliveryStatus = DeliveryStatus.DELIVERED

    @property
    def stored(self) -> bool:
        """Whether the record went to the outbox instead of Kafka (for now)."""
        return self.status is DeliveryStatus.STORED


_Where = tuple[str, int, int, int]  # topic, partition, offset, timestamp (ms): a result's fields
_LOCK = threading.Lock()  # guards only the rare paths: waiting and adding callbacks


class MetricsSink(Protocol):
    """Where delivery outcomes are counted."""

    def delivered(self, topic: str, latency_s: float) -> None: ...  # pragma: no cover

    def failed(self, topic: str) -> None: ...  # pragma: no cover


class DeliveryFuture:
    """The future delivery result of one record.

    ``result()`` returns a :class:`DeliveryResult` or raises :class:`pipeline.DeliveryError`
    (another ``ProduceError`` for local failures). It has the familiar ``done``, ``result``,
    ``exception`` and ``add_done_callback`` methods, but is lighter than a
    ``concurrent.futures.Future``: resolving it takes no lock, no condition variable is built
    unless someone waits, and the result object is built only when asked for. It keeps the
    record's coordinates, not the delivered message (whose payload copy would stay alive as
    long as the future). ``as_concurrent()`` bridges to the standard type.
    """

    __slots__ = ("_callbacks", "_error", "_event", "_metrics", "_state", "_where")

    def __init__(self, metrics: MetricsSink | None = None) -> None:
        self._state = False
        self._where: _Where | None = None
        self._error: BaseException | None = None
        self._event: threading.Event | None = None
        self._callbacks: list[Callable[[DeliveryFuture], object]] | None = None
        self._metrics = metrics

    def report(self, err: KafkaError | None, msg: Message) -> None:
        """The librdkafka delivery callback of this record: count it, then resolve."""
        metrics = self._metrics
        if err is None:  # the hot path, with _resolve inlined
            topic = msg.topic() or ""
            if metrics is not None and type(msg) is Message:
                metrics.delivered(topic, msg.latency() or 0.0)
            self._where = (topic, msg.partition() or 0, msg.offset() or 0, msg.timestamp()[1])
            self._state = True
            if self._event is not None:
                self._event.set()
            if self._callbacks is not None:
                self._run_callbacks()
            return
        topic = msg.topic() or ""
        if metrics is not None:
            metrics.failed(topic)
        self._resolve(None, delivery_error(err, topic, msg.key()))

    def _resolve(self, where: _Where | None, error: BaseException | None) -> None:
        # Lock-free: waiters and callback adders re-check _state after publishing themselves.
        self._where, self._error = where, error
        self._state = True
        event = self._event
        if event is not None:
            event.set()
        if self._callbacks is not None:
            self._run_callbacks()

    def _run_callbacks(self) -> None:
        with _LOCK:  # whoever gets here first takes the list; each callback runs once
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks or ():
            callback(self)

    def set_result(self, msg: Message) -> None:
        """Resolve with an acknowledged message."""
        self._resolve(_where_of(msg), None)

    def set_exception(self, error: BaseException) -> None:
        """Resolve with a failure."""
        self._resolve(None, error)

    def done(self) -> bool:
        """Whether the delivery report has arrived."""
        return self._state

    def _wait(self, timeout: float | None) -> None:
        if self._state:
            return
        with _LOCK:
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if self._state:  # resolved before it could see our event
            return
        if not event.wait(timeout):
            raise TimeoutError(f"no delivery report within {timeout}s")

    def result(self, timeout: float | None = None) -> DeliveryResult:
        """Wait for the delivery report; raise its error if the record was not delivered."""
        self._wait(timeout)
        if self._error is not None:
            raise self._error
        assert self._where is not None
        return _result(self._where)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the delivery report; return its error, or None when delivered."""
        self._wait(timeout)
        return self._error

    def add_done_callback(self, fn: Callable[[DeliveryFuture], object]) -> None:
        """Call ``fn(future)`` when resolved (at once if it already is)."""
        with _LOCK:
            added = not self._state
            if added:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(fn)
        if not added:
            fn(self)
        elif self._state:  # resolved meanwhile, maybe without seeing our list
            self._run_callbacks()

    def as_concurrent(self) -> Future[DeliveryResult]:
        """A ``concurrent.futures.Future`` mirroring this one (for ``asyncio.wrap_future``)."""
        out: Future[DeliveryResult] = Future()

        def copy(done: DeliveryFuture) -> None:
            if done._error is not None:
                out.set_exception(done._error)
            else:
                out.set_result(done.result())

        self.add_done_callback(copy)
        return out


DeliveryCallback = Callable[[DeliveryResult | None, PipelineError | None], None]


class UserReport:
    """Adapts a user's ``(result, error)`` callback to librdkafka's ``(err, msg)`` one."""

    __slots__ = ("metrics", "user")

    def __init__(self, user: DeliveryCallback, metrics: MetricsSink | None) -> None:
        self.user = user
        self.metrics = metrics

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        topic = msg.topic() or ""
        if err is not None:
            if self.metrics is not None:
                self.metrics.failed(topic)
            self.user(None, delivery_error(err, topic, msg.key()))
            return
        if self.metrics is not None and type(msg) is Message:
            self.metrics.delivered(topic, msg.latency() or 0.0)
        self.user(result_of(msg), None)


def delivery_error(err: KafkaError, topic: str, key: bytes | None) -> DeliveryError:
    """Describe a failed delivery report as a ``DeliveryError``."""
    shown = key[:64].decode("utf-8", "backslashreplace") if key is not None else None
    fatal = " (fatal)" if err.fatal() else ""
    error = DeliveryError(f"record for {topic} (key {shown!r}) not delivered{fatal}: {err.str()}")
    error.kafka_error = err  # type: ignore[attr-defined]
    return error


def result_of(msg: Message) -> DeliveryResult:
    """The delivery result of an acknowledged (or outbox-stored) message."""
    return _result(_where_of(msg))


def _result(where: _Where) -> DeliveryResult:
    if where[1] < 0:  # partition -1: the outbox took the record (see DeliveryStatus.STORED)
        return DeliveryResult(*where, status=DeliveryStatus.STORED)
    return DeliveryResult(*where)


def _where_of(msg: Message) -> _Where:
    return (msg.topic() or "", msg.partition() or 0, msg.offset() or 0, msg.timestamp()[1])
